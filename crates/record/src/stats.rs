//! `VeStats`: what the kernel counted for one VE, written when it is unwatched.

use crate::Cursor;
use model::leb::put;
use serde::{Deserialize, Serialize};

/// What the kernel counted for one VE (a `C` record; `S` in version-1 journals).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct VeStats {
    pub ve: u64,
    /// System calls its tasks entered.
    pub seen: u64,
    /// Records the kernel emitted (system calls of interest, forks, execs, exits).
    pub emitted: u64,
    /// Records lost because the ring buffer was full (also written as a gap transaction).
    pub lost: u64,
    /// System calls entered, by number (of `arch`).
    pub calls: Vec<(u32, u64)>,
    /// Calls not recorded by classification (in the kernel: what stays inside the VE or moves
    /// no data, e.g. reads of files only in read-only branches, pipes; in the recorder: failed
    /// lookups in the VE's own file system).
    #[serde(default)]
    pub dropped: u64,
    /// The same, by number.
    #[serde(default)]
    pub dropped_calls: Vec<(u32, u64)>,
    pub arch: String,
    /// Calls the VE's policy denied, per rule, as the kernel counted them (exact, whatever the
    /// ring buffer lost).
    #[serde(default)]
    pub denied: Vec<(u32, u64)>,
}

impl VeStats {
    /// `ve seen emitted lost dropped arch n×(nr count) m×(nr count) [k×(rule count)]`, LEB128
    /// numbers; the denials are absent in records written before policies existed.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.ve, self.seen, self.emitted, self.lost, self.dropped] {
            put(out, v);
        }
        crate::put_str(out, &self.arch);
        let denied = (!self.denied.is_empty()).then_some(&self.denied);
        for list in [Some(&self.calls), Some(&self.dropped_calls), denied]
            .into_iter()
            .flatten()
        {
            put(out, list.len() as u64);
            for &(nr, n) in list {
                put(out, u64::from(nr));
                put(out, n);
            }
        }
    }

    pub(crate) fn decode(b: &[u8]) -> Result<VeStats, String> {
        let mut c = Cursor::new(b);
        let mut s = VeStats {
            ve: c.num()?,
            seen: c.num()?,
            emitted: c.num()?,
            lost: c.num()?,
            dropped: c.num()?,
            arch: c.string()?,
            ..Default::default()
        };
        for list in [&mut s.calls, &mut s.dropped_calls] {
            let n = c.count(2)?;
            for _ in 0..n {
                let nr = u32::try_from(c.num()?).map_err(|_| "a call number beyond 32 bits")?;
                list.push((nr, c.num()?));
            }
        }
        if !c.at_end() {
            let n = c.count(2)?;
            for _ in 0..n {
                let rule = u32::try_from(c.num()?).map_err(|_| "a rule number beyond 32 bits")?;
                s.denied.push((rule, c.num()?));
            }
        }
        c.end()?;
        Ok(s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> VeStats {
        VeStats {
            ve: 2,
            seen: 9,
            emitted: 4,
            lost: 1,
            calls: vec![(0, 5), (1, 4)],
            dropped: 3,
            dropped_calls: vec![(3, 3)],
            arch: "x86_64".into(),
            denied: vec![],
        }
    }

    #[test]
    fn round_trips() {
        let mut b = vec![];
        sample().encode(&mut b);
        assert_eq!(VeStats::decode(&b).unwrap(), sample());
        assert!(VeStats::decode(&b[..b.len() - 1]).is_err());
        // With denials: a trailing list that older records do not have.
        let mut d = sample();
        d.denied = vec![(1, 200_000), (5, 3)];
        let mut b2 = vec![];
        d.encode(&mut b2);
        assert_eq!(
            &b2[..b.len()],
            &b[..],
            "the same prefix as a record without denials"
        );
        assert_eq!(VeStats::decode(&b2).unwrap(), d);
        assert!(VeStats::decode(&b2[..b2.len() - 1]).is_err());
    }
}
