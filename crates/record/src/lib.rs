//! The journal's records: what the recorder writes into journal blocks and what the queries
//! read back. One enum ([`Record`]), one encoding per kind, versioned by its tag byte, golden
//! tested and fuzzed (`fuzz/fuzz_targets/record.rs`); the variables' stable keys and the
//! typed query that names them on the command line ([`var`]).
//!
//! The journal (`crates/journal`) does not interpret records; this crate does not do I/O.
//! The byte layout is specified in `docs/journal-format.md` ("Records").

pub mod stats;
pub mod tier;
pub mod var;

use analysis::summary::Summary;
use model::at::{At, Name, VarDef, VarId};
pub use stats::VeStats;
pub use tier::Tier;
pub use var::{VarKey, VarQuery};

/// A record's first byte: its kind and the version of its encoding. A new encoding of a kind
/// gets a new tag; readers keep decoding the old tags (stores written by older versions).
pub mod tag {
    /// Variable definitions, binary (version 2).
    pub const VARS: u8 = b'D';
    /// A delta-coded batch of atomic transactions (`model::at::encode_batch`), versions 1 and 2.
    pub const ATS: u8 = b'A';
    /// A VE's kernel counters, binary (version 2).
    pub const STATS: u8 = b'C';
    /// Summaries: a tier byte, then `analysis::summary::encode`, versions 1 and 2.
    pub const SUMMARIES: u8 = b'T';
    /// Names files got and lost (version 2).
    pub const NAMES: u8 = b'N';
    /// What a recorder's opening of the journal repaired (version 2).
    pub const REPAIRS: u8 = b'R';
    /// A VE's policy and how it was enforced, as JSON (version 2).
    pub const POLICY: u8 = b'P';
    /// Files put back by `jcs abort` or `jcs recover`, as JSON (version 2).
    pub const RESTORES: u8 = b'X';
    /// What an exec ran (`model::at::ExecInfo`, JSON), before the exec's transaction.
    pub const EXECS: u8 = b'E';
    /// Which VE a VE number is (`VeInfo`, JSON), when its recording starts.
    pub const VE: u8 = b'W';
    /// Version 1: variable definitions as JSON. Read, never written.
    pub const VARS_JSON: u8 = b'V';
    /// Version 1: a VE's kernel counters as JSON. Read, never written.
    pub const STATS_JSON: u8 = b'S';
}

/// One journal record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Variable definitions, each written before the first transaction that uses it.
    Vars(Vec<(VarId, VarDef)>),
    /// Atomic transactions.
    Ats(Vec<At>),
    /// What the kernel counted for one VE, written when it is unwatched.
    Stats(VeStats),
    /// Summarized transactions of one tier.
    Summaries { tier: Tier, sts: Vec<Summary> },
    /// Names files got and lost, each written before the transactions after it.
    Names(Vec<Name>),
    /// What opening the journal repaired (a torn tail cut, damage set aside), written by the
    /// recorder that opened it: the repairs are part of the hash chain.
    Repairs(Vec<Repair>),
    /// A VE's policy, written when its recording starts (before its first transaction): what
    /// each rule number of its aborted transactions means, and which mechanisms enforced it.
    Policy(VePolicy),
    /// Files of persistent or shared storage put back to an earlier version (`jcs abort`,
    /// `jcs recover`): the journal says what was undone, when, and why.
    Restores(Vec<Restore>),
    /// Who ran what: the command line and ids of execs, each written before its transaction.
    Execs(Vec<model::at::ExecInfo>),
    /// Which VE a VE number is, written when its recording starts: a journal names its VEs'
    /// apps without the catalog (a fleet's collector has only the journal).
    Ve(VeInfo),
}

/// A VE's identity in its store (a `W` record).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct VeInfo {
    pub ve: u64,
    /// When its recording started.
    pub time_ns: u64,
    pub app: String,
    pub app_version: u64,
    /// The name `jcs run --name` gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where its persistent and shared storage and volumes are mounted in it (`/data`): a
    /// path below one of them is storage. (Empty in journals written before it was kept.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storage: Vec<String>,
}

/// One file put back.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Restore {
    pub time_ns: u64,
    /// `abort ve 3`, `recover endpoint:tcp/10.0.0.9:80`.
    pub by: String,
    /// The VE whose change was undone.
    pub ve: u64,
    /// The store-level name: `persist:APP:/docs/report.txt`.
    pub file: String,
    /// `restore`, `restore attributes`, `remove`, `recreate`, `rename`.
    pub action: String,
    /// The version put back (blake3 of its content), for a restore or recreate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The file's identity when the pre-image was kept.
    pub dev: u64,
    pub ino: u64,
}

/// A VE's policy as enforced (a `P` record).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct VePolicy {
    pub ve: u64,
    pub time_ns: u64,
    pub rules: Vec<model::policy::RuleInfo>,
    /// What enforced each part: (`network`, `cgroup sock_addr programs ...`), (`files.writable`,
    /// `read-only mounts ...`)...; a part the policy does not restrict is absent.
    pub enforced: Vec<(String, String)>,
}

/// One repair of the journal when it was opened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Repair {
    pub time_ns: u64,
    /// `torn` (an unfinished last append, nothing acknowledged) or `quarantined` (damage).
    pub kind: String,
    /// The file the cut bytes were set aside in.
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("empty record")]
    Empty,
    #[error("unknown record tag 0x{0:02x}")]
    UnknownTag(u8),
    #[error("transactions: {0}")]
    Ats(#[from] model::at::DecodeError),
    #[error("variable definitions: {0}")]
    Vars(String),
    #[error("counters: {0}")]
    Stats(String),
    #[error("summaries: {0}")]
    Summaries(String),
    #[error("names: {0}")]
    Names(String),
    #[error("repairs: {0}")]
    Repairs(String),
    #[error("policy: {0}")]
    Policy(String),
    #[error("restores: {0}")]
    Restores(String),
    #[error("execs: {0}")]
    Execs(String),
    #[error("VE: {0}")]
    Ve(String),
}

/// The index keys of a transactions record holding `ats` (what [`Record::keys`] gives for
/// `Record::Ats(ats)`, without building it). Transactions between ends among the last four
/// seen (a loop of writes to one file, of opens and closes of it) add nothing: each key is
/// pushed about once per change of ends, not once per transaction (the indexer sorts and
/// dedups what this returns; the journal's writer does it per block, where ends alternating
/// between two made it sort five keys per transaction).
pub fn ats_keys(ats: &[model::at::At], out: &mut Vec<u64>) {
    let mut recent = [None; 4];
    let mut next = 0;
    for a in ats {
        let ends = Some((a.ve, a.op == model::at::Op::Gap, a.src, a.dst));
        if recent.contains(&ends) {
            continue;
        }
        recent[next] = ends;
        next = (next + 1) % recent.len();
        out.push(key::ve(a.ve));
        if a.op == model::at::Op::Gap {
            out.push(key::GAP);
        }
        out.extend([a.src, a.dst].into_iter().filter(|&v| v != 0).map(key::var));
        if a.src != 0 && a.dst != 0 {
            out.extend([key::out_of(a.src), key::into(a.dst)]);
        }
    }
}

/// The index keys of an encoded record (none for one that does not decode).
pub fn keys_of(r: &[u8], out: &mut Vec<u64>) {
    if let Ok(rec) = Record::decode(r) {
        rec.keys(out);
    }
}

impl Record {
    /// [`Record::Ats`] of `ats` encoded as [`Record::encode_bounded`] would, from a slice
    /// (the recorder keeps its buffer of transactions from batch to batch).
    pub fn encode_ats_bounded(ats: &[model::at::At], limit: usize) -> Vec<Vec<u8>> {
        let mut b = vec![tag::ATS];
        model::at::encode_batch_into(ats, &mut b);
        if b.len() <= limit || ats.len() < 2 {
            return vec![b];
        }
        let (front, back) = ats.split_at(ats.len() / 2);
        let mut parts = Record::encode_ats_bounded(front, limit);
        parts.extend(Record::encode_ats_bounded(back, limit));
        parts
    }

    /// The record encoded as records of at most `limit` bytes each: a list record (definitions,
    /// transactions, summaries, names, repairs, restores, execs) whose encoding is larger is
    /// split in halves until each part fits, in order; a part that cannot be split (one
    /// item) is returned as it is. A recorder that drained a long backlog at once made one
    /// transactions record larger than a journal record may be (16 MiB): the journal refused
    /// it and the recorder stopped.
    pub fn encode_bounded(self, limit: usize) -> Vec<Vec<u8>> {
        if let Record::Ats(ats) = &self {
            return Record::encode_ats_bounded(ats, limit);
        }
        let whole = self.encode();
        if whole.len() <= limit {
            return vec![whole];
        }
        fn halves<T>(mut v: Vec<T>, make: impl Fn(Vec<T>) -> Record) -> Option<[Record; 2]> {
            if v.len() < 2 {
                return None;
            }
            let back = v.split_off(v.len() / 2);
            Some([make(v), make(back)])
        }
        let parts = match self {
            Record::Vars(v) => halves(v, Record::Vars),
            Record::Summaries { tier, sts } => halves(sts, |sts| Record::Summaries { tier, sts }),
            Record::Names(v) => halves(v, Record::Names),
            Record::Repairs(v) => halves(v, Record::Repairs),
            Record::Restores(v) => halves(v, Record::Restores),
            Record::Execs(v) => halves(v, Record::Execs),
            Record::Ats(_) | Record::Stats(_) | Record::Policy(_) | Record::Ve(_) => None,
        };
        match parts {
            Some(parts) => parts
                .into_iter()
                .flat_map(|p| p.encode_bounded(limit))
                .collect(),
            None => vec![whole],
        }
    }

    /// The record's bytes (its tag first), in the current version of its kind.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Record::Vars(defs) => {
                let mut b = vec![tag::VARS];
                var::encode_defs(defs, &mut b);
                b
            }
            Record::Ats(ats) => {
                let mut b = vec![tag::ATS];
                model::at::encode_batch_into(ats, &mut b);
                b
            }
            Record::Stats(s) => {
                let mut b = vec![tag::STATS];
                s.encode(&mut b);
                b
            }
            Record::Summaries { tier, sts } => {
                let mut b = vec![tag::SUMMARIES, tier.code()];
                b.extend(analysis::summary::encode(sts));
                b
            }
            Record::Names(names) => {
                let mut b = vec![tag::NAMES];
                encode_names(names, &mut b);
                b
            }
            Record::Repairs(rs) => {
                let mut b = vec![tag::REPAIRS];
                model::leb::put(&mut b, rs.len() as u64);
                for r in rs {
                    model::leb::put(&mut b, r.time_ns);
                    put_str(&mut b, &r.kind);
                    put_str(&mut b, &r.file);
                    put_str(&mut b, &r.reason);
                }
                b
            }
            Record::Policy(p) => {
                let mut b = vec![tag::POLICY];
                b.extend(serde_json::to_vec(p).expect("a policy serializes"));
                b
            }
            Record::Restores(r) => {
                let mut b = vec![tag::RESTORES];
                b.extend(serde_json::to_vec(r).expect("restores serialize"));
                b
            }
            Record::Execs(x) => {
                let mut b = vec![tag::EXECS];
                b.extend(serde_json::to_vec(x).expect("execs serialize"));
                b
            }
            Record::Ve(v) => {
                let mut b = vec![tag::VE];
                b.extend(serde_json::to_vec(v).expect("a VE serializes"));
                b
            }
        }
    }

    /// Decodes a record of any version; rejects anything else without panicking.
    pub fn decode(r: &[u8]) -> Result<Record, RecordError> {
        let (&t, body) = r.split_first().ok_or(RecordError::Empty)?;
        match t {
            tag::VARS => var::decode_defs(body)
                .map(Record::Vars)
                .map_err(RecordError::Vars),
            tag::VARS_JSON => serde_json::from_slice(body)
                .map(Record::Vars)
                .map_err(|e| RecordError::Vars(e.to_string())),
            tag::ATS => Ok(Record::Ats(model::at::decode_batch(body)?)),
            tag::STATS => VeStats::decode(body)
                .map(Record::Stats)
                .map_err(RecordError::Stats),
            tag::STATS_JSON => serde_json::from_slice(body)
                .map(Record::Stats)
                .map_err(|e| RecordError::Stats(e.to_string())),
            tag::SUMMARIES => {
                let (&code, rest) = body
                    .split_first()
                    .ok_or_else(|| RecordError::Summaries("no tier byte".into()))?;
                let tier = Tier::from_code(code)
                    .ok_or_else(|| RecordError::Summaries(format!("unknown tier {code}")))?;
                let sts = analysis::summary::decode(rest)
                    .ok_or_else(|| RecordError::Summaries("do not decode".into()))?;
                Ok(Record::Summaries { tier, sts })
            }
            tag::NAMES => decode_names(body)
                .map(Record::Names)
                .map_err(RecordError::Names),
            tag::REPAIRS => decode_repairs(body)
                .map(Record::Repairs)
                .map_err(RecordError::Repairs),
            tag::POLICY => serde_json::from_slice(body)
                .map(Record::Policy)
                .map_err(|e| RecordError::Policy(e.to_string())),
            tag::RESTORES => serde_json::from_slice(body)
                .map(Record::Restores)
                .map_err(|e| RecordError::Restores(e.to_string())),
            tag::EXECS => serde_json::from_slice(body)
                .map(Record::Execs)
                .map_err(|e| RecordError::Execs(e.to_string())),
            tag::VE => serde_json::from_slice(body)
                .map(Record::Ve)
                .map_err(|e| RecordError::Ve(e.to_string())),
            t => Err(RecordError::UnknownTag(t)),
        }
    }

    /// The index keys of this record ([`key`]): the variables it defines or uses, its VEs.
    pub fn keys(&self, out: &mut Vec<u64>) {
        match self {
            Record::Vars(defs) => out.extend(defs.iter().map(|(id, _)| key::var(*id))),
            Record::Ats(ats) => ats_keys(ats, out),
            Record::Stats(s) => out.push(key::ve(s.ve)),
            Record::Summaries { sts, .. } => {
                for s in sts {
                    out.extend([s.src, s.dst].into_iter().filter(|&v| v != 0).map(key::var));
                    if s.src != 0 && s.dst != 0 {
                        out.extend([key::out_of(s.src), key::into(s.dst)]);
                    }
                }
            }
            Record::Names(names) => {
                for n in names {
                    out.extend([key::ve(n.ve), key::var(n.var)]);
                }
            }
            Record::Repairs(_) => {}
            Record::Policy(p) => out.push(key::ve(p.ve)),
            Record::Restores(rs) => out.extend(rs.iter().map(|r| key::ve(r.ve))),
            Record::Execs(xs) => out.extend(xs.iter().map(|x| key::ve(x.ve))),
            Record::Ve(v) => out.push(key::ve(v.ve)),
        }
    }
}

/// `count, (time_ns, ve, var, path, store + 1 or 0, bound)*`: numbers LEB128, strings
/// length-prefixed UTF-8, `bound` one byte (0 or 1).
fn encode_names(names: &[Name], out: &mut Vec<u8>) {
    use model::leb::put;
    put(out, names.len() as u64);
    for n in names {
        put(out, n.time_ns);
        put(out, n.ve);
        put(out, u64::from(n.var));
        put_str(out, &n.path);
        match &n.store {
            None => put(out, 0),
            Some(s) => {
                put(out, s.len() as u64 + 1);
                out.extend_from_slice(s.as_bytes());
            }
        }
        out.push(u8::from(n.bound));
    }
}

fn decode_repairs(b: &[u8]) -> Result<Vec<Repair>, String> {
    let mut c = Cursor::new(b);
    let n = c.count(4)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Repair {
            time_ns: c.num()?,
            kind: c.string()?,
            file: c.string()?,
            reason: c.string()?,
        });
    }
    c.end()?;
    Ok(out)
}

fn decode_names(b: &[u8]) -> Result<Vec<Name>, String> {
    let mut c = Cursor::new(b);
    let count = c.count(6)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let time_ns = c.num()?;
        let ve = c.num()?;
        let var = VarId::try_from(c.num()?).map_err(|_| "a variable id beyond 32 bits")?;
        let path = c.string()?;
        let store = match c.num()? as usize {
            0 => None,
            n => Some(
                String::from_utf8(c.bytes(n - 1)?.to_vec()).map_err(|_| "a name is not UTF-8")?,
            ),
        };
        let bound = match c.byte()? {
            0 => false,
            1 => true,
            v => return Err(format!("bound is {v}, not 0 or 1")),
        };
        out.push(Name {
            time_ns,
            ve,
            var,
            path,
            store,
            bound,
        });
    }
    c.end()?;
    Ok(out)
}

/// The keys of the per-segment indexes (`journal::index`): a variable, a VE.
pub mod key {
    use model::at::VarId;

    pub const VAR: u64 = 1 << 56;
    pub const VE: u64 = 2 << 56;
    /// Every block that holds a gap (a loss in a VE's record): tracking lists them all.
    pub const GAP: u64 = 3 << 56;
    /// A variable data moved into (a transaction's or summary's destination): what tracking
    /// back reads for it.
    pub const INTO: u64 = 4 << 56;
    /// A variable data moved out of (a source): what tracking forward reads for it.
    pub const OUT_OF: u64 = 5 << 56;

    pub fn var(id: VarId) -> u64 {
        VAR | u64::from(id)
    }

    pub fn ve(ve: u64) -> u64 {
        VE | (ve & (VAR - 1))
    }

    pub fn into(id: VarId) -> u64 {
        INTO | u64::from(id)
    }

    pub fn out_of(id: VarId) -> u64 {
        OUT_OF | u64::from(id)
    }
}

/// Reads LEB128 numbers and length-prefixed bytes; every error is a message.
pub(crate) struct Cursor<'a> {
    pub b: &'a [u8],
    pub o: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b, o: 0 }
    }

    pub fn num(&mut self) -> Result<u64, String> {
        model::leb::get(self.b, &mut self.o).ok_or_else(|| format!("bad number at byte {}", self.o))
    }

    pub fn byte(&mut self) -> Result<u8, String> {
        let v = *self
            .b
            .get(self.o)
            .ok_or_else(|| format!("truncated at byte {}", self.o))?;
        self.o += 1;
        Ok(v)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .o
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("truncated at byte {}", self.o))?;
        let s = &self.b[self.o..end];
        self.o = end;
        Ok(s)
    }

    pub fn string(&mut self) -> Result<String, String> {
        let n = self.num()? as usize;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| "a string is not UTF-8".into())
    }

    /// A count of items of at least `min` bytes each, checked against what is left.
    pub fn count(&mut self, min: usize) -> Result<usize, String> {
        let n = self.num()?;
        if n > ((self.b.len() - self.o) / min.max(1)) as u64 {
            return Err(format!("claims {n} items, more than its bytes can hold"));
        }
        Ok(n as usize)
    }

    pub fn at_end(&self) -> bool {
        self.o >= self.b.len()
    }

    pub fn end(&self) -> Result<(), String> {
        match self.b.len() - self.o {
            0 => Ok(()),
            n => Err(format!("{n} trailing bytes")),
        }
    }
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    model::leb::put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::at::{Op, Status};

    fn at() -> At {
        At {
            time_ns: 1,
            ve: 3,
            pid: 1,
            tid: 1,
            op: Op::Write,
            status: Status::Committed,
            src: 7,
            dst: 9,
            off: 0,
            len: 1,
            result: 1,
        }
    }

    fn samples() -> Vec<Record> {
        vec![
            Record::Vars(var::tests::defs()),
            Record::Ats(vec![at(), at()]),
            Record::Stats(stats::tests::sample()),
            Record::Summaries {
                tier: Tier::T1,
                sts: vec![Summary {
                    src: 7,
                    dst: 9,
                    first: 10,
                    last: 20,
                    src_part: analysis::Part::Whole,
                    dst_part: analysis::Part::Bytes(vec![(0, 5)]),
                    count: 2,
                    bytes: 5,
                }],
            },
            Record::Repairs(vec![Repair {
                time_ns: 9,
                kind: "quarantined".into(),
                file: "0000000000000001.journal.at-80.quarantined".into(),
                reason: "damage at offset 80".into(),
            }]),
            Record::Names(vec![
                Name {
                    time_ns: 5,
                    ve: 2,
                    var: 9,
                    path: "/data/a".into(),
                    store: Some("persist:web:/data/a".into()),
                    bound: true,
                },
                Name {
                    time_ns: 6,
                    ve: 2,
                    var: 9,
                    path: "/x".into(),
                    store: None,
                    bound: false,
                },
            ]),
            Record::Execs(vec![model::at::ExecInfo {
                time_ns: 7,
                ve: 2,
                pid: 40,
                ppid: 39,
                uid: 1000,
                euid: 0,
                gid: 100,
                argv: vec!["sh".into(), "-c".into(), "echo, \"hi\"".into()],
                argv_cut: true,
                cwd: Some("/srv/app".into()),
            }]),
            Record::Ve(VeInfo {
                ve: 2,
                time_ns: 8,
                app: "web".into(),
                app_version: 3,
                name: Some("front".into()),
                storage: vec!["/data".into()],
            }),
        ]
    }

    #[test]
    fn a_ve_record_is_pinned() {
        let r = samples().pop().unwrap().encode();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            r#"W{"ve":2,"time_ns":8,"app":"web","app_version":3,"name":"front","storage":["/data"]}"#
        );
        // A record written before `storage` was kept reads with none.
        let old = br#"W{"ve":2,"time_ns":8,"app":"web","app_version":3,"name":"front"}"#;
        match Record::decode(old).unwrap() {
            Record::Ve(v) => assert!(v.storage.is_empty() && v.app == "web"),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn names_and_file_identities_are_pinned() {
        let hex = |b: Vec<u8>| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(samples()[5].encode()),
            "4e02050209072f646174612f6114706572736973743a7765623a2f646174612f61\
             01060209022f780000"
        );
        let d = VarDef::Inode {
            dev: 1,
            ino: 2,
            gen: 3,
            name: Some("/a".into()),
        };
        let r = Record::Vars(vec![(4, d.clone())]);
        assert_eq!(hex(r.encode()), "4401040601020303 2f61".replace(' ', ""));
        assert_eq!(VarKey::of(&d).as_str(), "n:1:2:3");
        let mut bad = r.encode();
        *bad.last_mut().unwrap() = 0xff; // not UTF-8
        assert!(Record::decode(&bad).is_err());
    }

    #[test]
    fn every_kind_round_trips() {
        for r in samples() {
            assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn keys_of_records() {
        let mut out = vec![];
        Record::Vars(vec![(7, VarDef::Memory { ve: 3 })]).keys(&mut out);
        Record::Ats(vec![at()]).keys(&mut out);
        assert_eq!(
            out,
            vec![
                key::var(7),
                key::ve(3),
                key::var(7),
                key::var(9),
                key::out_of(7),
                key::into(9)
            ]
        );
        // The kinds of key never meet.
        let kinds = [
            key::var(3),
            key::ve(3),
            key::GAP,
            key::into(3),
            key::out_of(3),
        ];
        for (i, a) in kinds.iter().enumerate() {
            assert!(kinds[i + 1..].iter().all(|b| a != b), "{a:#x}");
        }
    }

    /// A record larger than the limit becomes several, each within it, that decode to the
    /// same items in the same order; one within it stays one.
    #[test]
    fn a_record_over_the_limit_is_split_in_order() {
        let ats: Vec<At> = (0..1000u64)
            .map(|i| At {
                time_ns: i,
                off: i * 7,
                ..at()
            })
            .collect();
        let whole = Record::Ats(ats.clone()).encode();
        assert_eq!(
            Record::Ats(ats.clone()).encode_bounded(whole.len()),
            vec![whole.clone()]
        );
        let limit = whole.len() / 10;
        let parts = Record::Ats(ats.clone()).encode_bounded(limit);
        assert!(parts.len() >= 10, "{} parts", parts.len());
        assert!(parts.iter().all(|p| p.len() <= limit));
        let back: Vec<At> = parts
            .iter()
            .flat_map(|p| match Record::decode(p).unwrap() {
                Record::Ats(a) => a,
                r => panic!("{r:?}"),
            })
            .collect();
        assert_eq!(back, ats);
        // One item over the limit cannot be split: it stays whole.
        let one = Record::Ats(vec![at()]);
        assert_eq!(one.clone().encode_bounded(1), vec![one.encode()]);
        // From a slice: the same records.
        for limit in [whole.len(), limit, 1] {
            assert_eq!(
                Record::encode_ats_bounded(&ats, limit),
                Record::Ats(ats.clone()).encode_bounded(limit)
            );
        }
        // Every other list record splits the same way (names here), items in order.
        let Some(Record::Names(one)) = samples()
            .into_iter()
            .find(|r| matches!(r, Record::Names(_)))
        else {
            panic!("a names sample")
        };
        let names: Vec<Name> = (0..200).flat_map(|_| one.clone()).collect();
        let whole = Record::Names(names.clone()).encode();
        let parts = Record::Names(names.clone()).encode_bounded(whole.len() / 10);
        assert!(parts.len() >= 10 && parts.iter().all(|p| p.len() <= whole.len() / 10));
        let back: Vec<Name> = parts
            .iter()
            .flat_map(|p| match Record::decode(p).unwrap() {
                Record::Names(n) => n,
                r => panic!("{r:?}"),
            })
            .collect();
        assert_eq!(back, names);
    }

    /// Runs of transactions between the same ends give the same set of keys as one key list
    /// per transaction would (what the indexer keeps is the set).
    #[test]
    fn keys_of_runs_are_the_keys_of_every_transaction() {
        let mut ats = Vec::new();
        for (i, (ve, src, dst, op)) in [
            (3, 7, 9, Op::Write),
            (3, 7, 9, Op::Write),
            (3, 7, 9, Op::Gap),
            (3, 7, 9, Op::Write),
            (4, 7, 9, Op::Write),
            (4, 0, 9, Op::Write),
            (4, 0, 9, Op::Write),
            (3, 7, 9, Op::Write),
            (3, 9, 7, Op::Read),
        ]
        .into_iter()
        .enumerate()
        {
            ats.push(At {
                time_ns: i as u64,
                ve,
                src,
                dst,
                op,
                ..at()
            });
        }
        let naive = |ats: &[At]| {
            let mut out = std::collections::BTreeSet::new();
            for a in ats {
                let mut k = vec![];
                Record::Ats(vec![*a]).keys(&mut k);
                out.extend(k);
            }
            out
        };
        let mut got = vec![];
        Record::Ats(ats.clone()).keys(&mut got);
        assert!(got.len() < 5 * ats.len(), "runs pushed once: {got:?}");
        assert_eq!(
            got.into_iter().collect::<std::collections::BTreeSet<_>>(),
            naive(&ats)
        );
        assert!(naive(&ats).contains(&key::GAP) && naive(&ats).contains(&key::ve(4)));
    }

    #[test]
    fn version_1_json_records_still_decode() {
        // Bytes as the version-1 daemon wrote them (frozen).
        let v = br#"V[[1,{"kind":"memory","ve":1}],[3,{"kind":"file","dev":65024,"ino":10011812,"path":"/data/in.txt"}],[4,{"kind":"file","dev":65024,"ino":10011489,"path":null}]]"#;
        assert_eq!(
            Record::decode(v).unwrap(),
            Record::Vars(vec![
                (1, VarDef::Memory { ve: 1 }),
                (
                    3,
                    VarDef::File {
                        dev: 65024,
                        ino: 10011812,
                        path: Some("/data/in.txt".into())
                    }
                ),
                (
                    4,
                    VarDef::File {
                        dev: 65024,
                        ino: 10011489,
                        path: None
                    }
                ),
            ])
        );
        let s = br#"S{"ve":2,"seen":9,"emitted":4,"lost":1,"calls":[[0,5],[1,4]],"dropped":3,"dropped_calls":[[3,3]],"arch":"x86_64"}"#;
        let Record::Stats(st) = Record::decode(s).unwrap() else {
            panic!("not stats")
        };
        assert_eq!((st.ve, st.seen, st.lost, st.dropped), (2, 9, 1, 3));
        assert_eq!(st.dropped_calls, vec![(3, 3)]);
    }

    #[test]
    fn golden_bytes() {
        // Part of the journal format: these bytes must never change meaning.
        let hex = |b: Vec<u8>| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let [vars, _, stats, sums, _, _, _, _] = &samples()[..] else {
            unreachable!()
        };
        assert_eq!(
            hex(vars.encode()),
            "4407010501030180fc03a489e3040d2f646174612f696e2e747874040180fc03e186e304\
             000702072f62696e2f7368b81703040a0000013505031020010db8000000000000000000\
             00000189240b04092f746d702f2e583131"
        );
        assert_eq!(
            hex(stats.encode()),
            "430209040103067838365f36340200050104010303"
        );
        assert_eq!(hex(sums.encode()), {
            let mut b = vec![b'T', 1];
            b.extend(analysis::summary::encode(match sums {
                Record::Summaries { sts, .. } => sts,
                _ => unreachable!(),
            }));
            hex(b)
        });
    }

    #[test]
    fn garbage_is_rejected_not_panicked_on() {
        assert_eq!(Record::decode(&[]), Err(RecordError::Empty));
        assert_eq!(Record::decode(b"Zx"), Err(RecordError::UnknownTag(b'Z')));
        assert!(Record::decode(&[tag::ATS, 0xff, 0xff]).is_err());
        assert!(Record::decode(&[tag::SUMMARIES, 9]).is_err());
        // Every byte set to each of a few telling values, and every prefix: no panic.
        for r in samples() {
            let good = r.encode();
            for i in 0..good.len() {
                for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                    let mut m = good.clone();
                    m[i] = v;
                    let _ = Record::decode(&m);
                }
                let _ = Record::decode(&good[..i]);
            }
        }
    }
}
