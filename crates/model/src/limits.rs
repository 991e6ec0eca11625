//! Resource limits of a VE.

use serde::{Deserialize, Serialize};

/// Memory, process-count and CPU limits, applied through the VE's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Limits {
    /// Bytes of memory (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`).
    pub memory_bytes: u64,
    /// Number of tasks (`pids.max`).
    pub pids: u64,
    /// CPU time, in thousandths of a CPU (`--cpus 1.5` = 1500; cgroup v2 `cpu.max`, v1
    /// `cpu.cfs_quota_us`); None: no limit.
    #[serde(default)]
    pub cpu_millis: Option<u64>,
    /// Bytes the VE may write into its dirties (`--disk`: a file system of that size of its
    /// own); None: no limit but the store's disk.
    #[serde(default)]
    pub disk_bytes: Option<u64>,
}

/// The CFS period JCS uses for CPU limits, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

impl Limits {
    /// The CFS quota per [`CPU_PERIOD_US`], in microseconds, when CPU time is limited.
    pub fn cpu_quota_us(&self) -> Option<u64> {
        self.cpu_millis.map(|m| m * CPU_PERIOD_US / 1000)
    }
}

/// Why a CPU count does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--cpus {0:?}: expected a number of CPUs such as 0.5, 1 or 2.25 (at least 0.01)")]
pub struct CpusError(pub String);

/// Parses a number of CPUs (`1`, `0.5`, `2.25`) into thousandths.
pub fn parse_cpus(s: &str) -> Result<u64, CpusError> {
    let err = || CpusError(s.into());
    let (int, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let int: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| err())?
    };
    let frac: u64 = format!("{frac:0<3}").parse().map_err(|_| err())?;
    let m = int
        .checked_mul(1000)
        .and_then(|v| v.checked_add(frac))
        .ok_or_else(err)?;
    if m < 10 {
        return Err(err());
    }
    Ok(m)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 1 << 30,
            pids: 1024,
            cpu_millis: None,
            disk_bytes: None,
        }
    }
}

/// Why a size does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("size {0:?}: unknown unit (use k, M, G or T)")]
    Unit(String),
    #[error("size {0:?} is not a number with an optional unit")]
    NotANumber(String),
    #[error("size {0:?} is too large")]
    TooLarge(String),
    #[error("size {0:?} must be greater than zero")]
    Zero(String),
}

/// Parses an age such as `90s`, `10m`, `2h` or `7d`: its length in nanoseconds (None: not an
/// age, or too long).
pub fn parse_age(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(secs)?.checked_mul(1_000_000_000)
}

/// Parses a size such as `512M`, `2G`, `65536` or `64k` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let m = match t[i..].to_ascii_lowercase().trim_end_matches(['b', 'i']) {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return Err(SizeError::Unit(s.into())),
            };
            (&t[..i], m)
        }
    };
    let n: u64 = num.parse().map_err(|_| SizeError::NotANumber(s.into()))?;
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| SizeError::TooLarge(s.into()))?;
    if v == 0 {
        return Err(SizeError::Zero(s.into()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1"), Ok(1000));
        assert_eq!(parse_cpus("0.5"), Ok(500));
        assert_eq!(parse_cpus("2.25"), Ok(2250));
        assert_eq!(parse_cpus(".75"), Ok(750));
        for bad in ["0", "0.001", "x", "1.2345", "-1", "1e3", ""] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        let l = Limits {
            cpu_millis: Some(1500),
            ..Limits::default()
        };
        assert_eq!(l.cpu_quota_us(), Some(150_000));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("0"), Err(SizeError::Zero("0".into())));
        assert_eq!(parse_size("12x"), Err(SizeError::Unit("12x".into())));
        assert_eq!(parse_size("M"), Err(SizeError::NotANumber("M".into())));
        assert_eq!(
            parse_size("99999999999T"),
            Err(SizeError::TooLarge("99999999999T".into()))
        );
    }
}
