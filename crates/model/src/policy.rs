//! An app's policy (design §1 "Enforcement"): which transactions of its VEs may commit.
//!
//! A policy is a TOML file (`docs/policy.md`):
//!
//! ```toml
//! [network]
//! default = "allow"                 # what no rule matches: allow (default) or deny
//! [[network.rule]]
//! name = "no-smtp"                  # optional; printed with every denial
//! action = "deny"                   # allow | deny
//! to = ["0.0.0.0/0", "::/0"]        # CIDRs (default: every address)
//! ports = [25, "465-587"]           # ports or ranges (default: every port)
//! proto = "tcp"                     # tcp | udp | any (default)
//! on = ["connect", "send"]          # connect | send | bind (default: connect and send)
//!
//! [files]
//! writable = ["/data/out"]          # the only trees of persistent/shared storage that may be
//!                                   # written (absent: all of it)
//! deny_read = ["/root/.ssh"]        # hidden from the VE
//!
//! [exec]
//! allow = ["/bin", "/usr/bin/python3"]  # the only files the VE may execute (absent: any)
//!
//! [budget]
//! bytes_sent = "10 MiB"             # IP bytes the VE may send out of its network namespace
//! files_written = 100               # storage files the VE may create, write or remove
//!
//! [recovery]
//! preimages = true                  # keep what storage files were before the VE changed them
//! abort_on_close = "denied"         # once the VE had a transaction denied, each storage file
//!                                   # it wrote goes back to its pre-image when it is closed
//! ```
//!
//! Every rule has a number (the `rule` of an aborted transaction): the network rules 1..=n in
//! file order, then `network.default`, `files.writable`, `files.deny_read`, `exec.allow`,
//! `budget.bytes_sent`, `budget.files_written`.
//! Network rules are tried in order; the first that matches decides.
//!
//! This module parses, validates and evaluates policies, and compiles the network rules into
//! the entries of the kernel's longest-prefix-match map. Pure: no I/O.

use crate::InnerPath;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The most rules that apply to one address prefix (the kernel walks them in a bounded loop).
pub const RULES_PER_PREFIX: usize = 32;

/// Slots of the kernel's map of denied VEs (`JCS_TAINT_SLOTS` in the monitor's `monitor.h`):
/// a VE's slot is its id modulo this, and holds its id once the kernel denied it something.
pub const TAINT_SLOTS: u32 = 65536;

/// Protocols (`NetRule::protos` bits).
pub const PROTO_TCP: u8 = 1;
pub const PROTO_UDP: u8 = 2;
/// Any other protocol (ICMP datagram sockets...): only `proto = "any"` rules and the default.
pub const PROTO_OTHER: u8 = 4;
/// Operations (`NetRule::ops` bits).
pub const OP_CONNECT: u8 = 1;
pub const OP_SEND: u8 = 2;
pub const OP_BIND: u8 = 4;

/// A policy that cannot be used, with where in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location.map(|(l, c)| format!("line {l}, column {c}: ")).unwrap_or_default())]
pub struct PolicyError {
    /// 1-based line and column, when the error has a place.
    pub location: Option<(usize, usize)>,
    pub message: String,
}

/// An address prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Cidr {
    pub addr: IpAddr,
    pub bits: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `::1/128`, or a bare address (all its bits). An IPv4-mapped IPv6 prefix
    /// (`::ffff:10.0.0.0/104`) is its IPv4 prefix: the kernel checks a mapped address as IPv4.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, b) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{a:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match b {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("prefix length {b:?} is not 0..={max}"))?,
        };
        let mut c = Cidr { addr, bits };
        if let IpAddr::V6(v6) = addr {
            if let Some(v4) = v6.to_ipv4_mapped() {
                if bits >= 96 {
                    c = Cidr {
                        addr: IpAddr::V4(v4),
                        bits: bits - 96,
                    };
                }
            }
        }
        c.addr = mask(c.addr, c.bits);
        Ok(c)
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        let a = match a {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
            a => a,
        };
        a.is_ipv4() == self.addr.is_ipv4() && mask(a, self.bits) == self.addr
    }

    /// Whether every address of `other` is in `self`.
    pub fn covers(&self, other: &Cidr) -> bool {
        self.addr.is_ipv4() == other.addr.is_ipv4()
            && self.bits <= other.bits
            && mask(other.addr, self.bits) == self.addr
    }

    /// The 16 bytes the kernel's map key holds (IPv4 in the first 4).
    pub fn key_bytes(&self) -> [u8; 16] {
        let mut k = [0u8; 16];
        match self.addr {
            IpAddr::V4(a) => k[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => k = a.octets(),
        }
        k
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

fn mask(a: IpAddr, bits: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let m = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let m = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

/// One network rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NetRule {
    pub id: u32,
    pub name: String,
    pub deny: bool,
    /// Empty: every address.
    pub to: Vec<Cidr>,
    /// Inclusive ranges; empty: every port.
    pub ports: Vec<(u16, u16)>,
    /// `PROTO_*` bits.
    pub protos: u8,
    /// `OP_*` bits.
    pub ops: u8,
}

impl NetRule {
    fn matches(&self, op: u8, proto: u8, addr: IpAddr, port: u16) -> bool {
        self.ops & op != 0
            && self.protos & proto != 0
            && (self.ports.is_empty()
                || self.ports.iter().any(|&(lo, hi)| lo <= port && port <= hi))
            && (self.to.is_empty() || self.to.iter().any(|c| c.contains(addr)))
    }
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Policy {
    /// What no network rule matches is denied.
    pub net_default_deny: bool,
    pub net_rules: Vec<NetRule>,
    /// The trees of persistent/shared storage that may be written; `None`: all.
    pub writable: Option<Vec<InnerPath>>,
    pub deny_read: Vec<InnerPath>,
    /// The only files (or trees) that may be executed; `None`: any.
    pub exec_allow: Option<Vec<InnerPath>>,
    /// Keep the content of every file of persistent or shared storage before the VE first
    /// changes it (`[recovery] preimages = true`): what `jcs abort` restores.
    #[serde(default)]
    pub preimages: bool,
    /// `[budget] bytes_sent`: IP bytes (headers included) the VE may send out of its network
    /// namespace; beyond, every packet is dropped and every send and connect fails.
    #[serde(default)]
    pub bytes_sent: Option<u64>,
    /// `[budget] files_written`: distinct files and directories of persistent or shared
    /// storage the VE may create, write, truncate, replace or remove.
    #[serde(default)]
    pub files_written: Option<u64>,
    /// `[recovery] abort_on_close = "denied"`: once a transaction of the VE was denied, every
    /// storage file it wrote is restored to its pre-image when the VE closes it (and when the
    /// VE ends).
    #[serde(default)]
    pub abort_on_close: bool,
}

/// What a rule number means (the journal keeps this list with each VE's policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RuleInfo {
    pub id: u32,
    pub name: String,
    /// The rule in words: `deny tcp connect,send to 10.0.0.0/8 ports 25`.
    pub text: String,
}

/// A network operation a policy decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetOp {
    Connect,
    Send,
    Bind,
}

impl NetOp {
    fn bit(self) -> u8 {
        match self {
            NetOp::Connect => OP_CONNECT,
            NetOp::Send => OP_SEND,
            NetOp::Bind => OP_BIND,
        }
    }
}

/// One entry of the kernel's longest-prefix-match map: the rules that apply to every address
/// of `prefix`, in policy order, ending with the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LpmEntry {
    pub prefix: Cidr,
    pub rules: Vec<KernelRule>,
}

/// A rule as the kernel checks it: one port range (a rule with several becomes several).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelRule {
    pub port_lo: u16,
    pub port_hi: u16,
    pub protos: u8,
    pub ops: u8,
    pub deny: bool,
    pub id: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    version: Option<toml::Spanned<u32>>,
    network: Option<RawNet>,
    files: Option<RawFiles>,
    exec: Option<RawExec>,
    budget: Option<RawBudget>,
    recovery: Option<RawRecovery>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecovery {
    #[serde(default)]
    preimages: bool,
    abort_on_close: Option<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    bytes_sent: Option<toml::Spanned<RawSize>>,
    files_written: Option<toml::Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(i64),
    Text(String),
}

/// A size: a number of bytes, optionally with a unit (`10 MiB`, `500k`, `2GB`; k/M/G/T are
/// powers of 1000, Ki/Mi/Gi/Ti of 1024; a trailing `B` is optional).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (a number of bytes, or like \"10 MiB\")"))?;
    let unit = unit.trim();
    let unit = unit.strip_suffix(['B', 'b']).unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (k, M, G, T, Ki, Mi, Gi, Ti)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNet {
    default: Option<toml::Spanned<String>>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    action: toml::Spanned<String>,
    to: Option<Vec<toml::Spanned<String>>>,
    ports: Option<Vec<toml::Spanned<RawPort>>>,
    proto: Option<toml::Spanned<String>>,
    on: Option<Vec<toml::Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPort {
    One(i64),
    Range(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    writable: Option<Vec<toml::Spanned<String>>>,
    #[serde(default)]
    deny_read: Vec<toml::Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExec {
    allow: Vec<toml::Spanned<String>>,
}

/// 1-based line and column of byte `off` in `text`.
fn line_col(text: &str, off: usize) -> (usize, usize) {
    let before = &text[..off.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

impl Policy {
    /// Parses and validates a policy file's text.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let raw: Raw = toml::from_str(text).map_err(|e| PolicyError {
            location: e.span().map(|s| line_col(text, s.start)),
            message: e.message().trim().to_string(),
        })?;
        let at = |span: std::ops::Range<usize>, message: String| PolicyError {
            location: Some(line_col(text, span.start)),
            message,
        };
        if let Some(v) = &raw.version {
            if *v.get_ref() != 1 {
                return Err(at(
                    v.span(),
                    format!("policy version {} is not 1 (the only one)", v.get_ref()),
                ));
            }
        }
        let mut p = Policy::default();
        if let Some(net) = raw.network {
            if let Some(d) = &net.default {
                p.net_default_deny = match d.get_ref().as_str() {
                    "allow" => false,
                    "deny" => true,
                    o => return Err(at(d.span(), format!("default = {o:?}: allow or deny"))),
                };
            }
            for (i, r) in net.rule.into_iter().enumerate() {
                let id = i as u32 + 1;
                let deny = match r.action.get_ref().as_str() {
                    "allow" => false,
                    "deny" => true,
                    o => {
                        return Err(at(
                            r.action.span(),
                            format!("action = {o:?}: allow or deny"),
                        ))
                    }
                };
                let mut to = vec![];
                for c in r.to.unwrap_or_default() {
                    to.push(Cidr::parse(c.get_ref()).map_err(|e| at(c.span(), e))?);
                }
                let mut ports = vec![];
                for sp in r.ports.unwrap_or_default() {
                    let bad = |m: String| at(sp.span(), m);
                    let num = |v: i64| {
                        u16::try_from(v).map_err(|_| bad(format!("port {v} is not 0..=65535")))
                    };
                    ports.push(match sp.get_ref() {
                        RawPort::One(v) => (num(*v)?, num(*v)?),
                        RawPort::Range(s) => {
                            let (a, b) = s.split_once('-').unwrap_or((s, s));
                            let p = |x: &str| {
                                x.trim()
                                    .parse::<i64>()
                                    .map_err(|_| {
                                        bad(format!("{s:?} is not a port or a range LO-HI"))
                                    })
                                    .and_then(num)
                            };
                            let (lo, hi) = (p(a)?, p(b)?);
                            if lo > hi {
                                return Err(bad(format!("range {s:?} is empty")));
                            }
                            (lo, hi)
                        }
                    });
                }
                let protos = match r.proto.as_ref().map(|s| s.get_ref().as_str()) {
                    None | Some("any") => PROTO_TCP | PROTO_UDP | PROTO_OTHER,
                    Some("tcp") => PROTO_TCP,
                    Some("udp") => PROTO_UDP,
                    Some(o) => {
                        return Err(at(
                            r.proto.as_ref().expect("some").span(),
                            format!("proto = {o:?}: tcp, udp or any"),
                        ))
                    }
                };
                let mut ops = 0;
                match r.on {
                    None => ops = OP_CONNECT | OP_SEND,
                    Some(list) => {
                        for o in list {
                            ops |= match o.get_ref().as_str() {
                                "connect" => OP_CONNECT,
                                "send" => OP_SEND,
                                "bind" => OP_BIND,
                                x => {
                                    return Err(at(
                                        o.span(),
                                        format!("on = {x:?}: connect, send or bind"),
                                    ))
                                }
                            };
                        }
                        if ops == 0 {
                            return Err(at(
                                r.action.span(),
                                "on = []: the rule would never apply".into(),
                            ));
                        }
                    }
                }
                p.net_rules.push(NetRule {
                    id,
                    name: r.name.unwrap_or_else(|| format!("network.rule[{id}]")),
                    deny,
                    to,
                    ports,
                    protos,
                    ops,
                });
            }
        }
        let paths = |list: Vec<toml::Spanned<String>>,
                     what: &str|
         -> Result<Vec<InnerPath>, PolicyError> {
            list.into_iter()
                .map(|s| {
                    InnerPath::parse(s.get_ref()).map_err(|e| at(s.span(), format!("{what}: {e}")))
                })
                .collect()
        };
        if let Some(f) = raw.files {
            if let Some(w) = f.writable {
                p.writable = Some(paths(w, "writable")?);
            }
            p.deny_read = paths(f.deny_read, "deny_read")?;
        }
        if let Some(e) = raw.exec {
            p.exec_allow = Some(paths(e.allow, "allow")?);
        }
        if let Some(b) = raw.budget {
            if let Some(v) = b.bytes_sent {
                let n = match v.get_ref() {
                    RawSize::Bytes(n) => {
                        u64::try_from(*n).map_err(|_| format!("bytes_sent = {n}: not a size"))
                    }
                    RawSize::Text(t) => parse_size(t),
                }
                .map_err(|m| at(v.span(), format!("bytes_sent: {m}")))?;
                p.bytes_sent = Some(n);
            }
            if let Some(v) = b.files_written {
                let n = u64::try_from(*v.get_ref()).map_err(|_| {
                    at(
                        v.span(),
                        format!("files_written = {}: not a count", v.get_ref()),
                    )
                })?;
                p.files_written = Some(n);
            }
        }
        if let Some(r) = raw.recovery {
            p.preimages = r.preimages;
            if let Some(a) = r.abort_on_close {
                match a.get_ref().as_str() {
                    "denied" => p.abort_on_close = true,
                    "never" => p.abort_on_close = false,
                    o => {
                        return Err(at(
                            a.span(),
                            format!("abort_on_close = {o:?}: \"denied\" or \"never\""),
                        ))
                    }
                }
                if p.abort_on_close && !p.preimages {
                    return Err(at(
                        a.span(),
                        "abort_on_close needs preimages = true (it restores them)".into(),
                    ));
                }
            }
        }
        p.compile_net().map_err(|message| PolicyError {
            location: None,
            message,
        })?;
        Ok(p)
    }

    fn n(&self) -> u32 {
        self.net_rules.len() as u32
    }

    /// The number of `network.default`.
    pub fn default_rule(&self) -> u32 {
        self.n() + 1
    }
    /// The number of `files.writable`.
    pub fn writable_rule(&self) -> u32 {
        self.n() + 2
    }
    /// The number of `files.deny_read`.
    pub fn deny_read_rule(&self) -> u32 {
        self.n() + 3
    }
    /// The number of `exec.allow`.
    pub fn exec_rule(&self) -> u32 {
        self.n() + 4
    }

    /// The number of `budget.bytes_sent`.
    pub fn bytes_sent_rule(&self) -> u32 {
        self.n() + 5
    }
    /// The number of `budget.files_written`.
    pub fn files_written_rule(&self) -> u32 {
        self.n() + 6
    }

    /// Whether the VE's write-intent calls go to a supervisor (pre-images or a files budget).
    pub fn supervised(&self) -> bool {
        self.preimages || self.files_written.is_some()
    }

    /// Whether the policy restricts the network at all.
    pub fn restricts_network(&self) -> bool {
        self.net_default_deny || self.net_rules.iter().any(|r| r.deny)
    }

    /// Every rule with its number, name and meaning.
    pub fn rules(&self) -> Vec<RuleInfo> {
        let mut v: Vec<RuleInfo> = self
            .net_rules
            .iter()
            .map(|r| RuleInfo {
                id: r.id,
                name: r.name.clone(),
                text: describe(r),
            })
            .collect();
        let list = |l: &[InnerPath]| l.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
        v.push(RuleInfo {
            id: self.default_rule(),
            name: "network.default".into(),
            text: if self.net_default_deny {
                "deny what no rule allows".into()
            } else {
                "allow what no rule denies".into()
            },
        });
        v.push(RuleInfo {
            id: self.writable_rule(),
            name: "files.writable".into(),
            text: match &self.writable {
                None => "all persistent and shared storage is writable".into(),
                Some(l) => format!(
                    "write persistent and shared storage only below: {}",
                    list(l)
                ),
            },
        });
        v.push(RuleInfo {
            id: self.deny_read_rule(),
            name: "files.deny_read".into(),
            text: if self.deny_read.is_empty() {
                "nothing hidden".into()
            } else {
                format!("hidden: {}", list(&self.deny_read))
            },
        });
        v.push(RuleInfo {
            id: self.exec_rule(),
            name: "exec.allow".into(),
            text: match &self.exec_allow {
                None => "any file may be executed".into(),
                Some(l) => format!("execute only: {}", list(l)),
            },
        });
        v.push(RuleInfo {
            id: self.bytes_sent_rule(),
            name: "budget.bytes_sent".into(),
            text: match self.bytes_sent {
                None => "no limit on bytes sent".into(),
                Some(n) => format!("send at most {n} bytes (IP packets) out of the VE"),
            },
        });
        v.push(RuleInfo {
            id: self.files_written_rule(),
            name: "budget.files_written".into(),
            text: match self.files_written {
                None => "no limit on files written".into(),
                Some(n) => format!("create, write or remove at most {n} storage files"),
            },
        });
        v
    }

    /// The rule that decides a network operation, and whether it denies (`None`: no rule and
    /// an allowing default).
    pub fn decide_net(&self, op: NetOp, udp: bool, addr: IpAddr, port: u16) -> Option<(u32, bool)> {
        let proto = if udp { PROTO_UDP } else { PROTO_TCP };
        match self
            .net_rules
            .iter()
            .find(|r| r.matches(op.bit(), proto, addr, port))
        {
            Some(r) => Some((r.id, r.deny)),
            None if self.net_default_deny => Some((self.default_rule(), true)),
            None => None,
        }
    }

    /// The rule a write to `path` breaks: a path inside one of `storage` (the VE's persistent
    /// and shared mount points) but outside every writable tree.
    pub fn write_denied(&self, path: &InnerPath, storage: &[InnerPath]) -> Option<u32> {
        storage
            .iter()
            .any(|s| path.is_within(s))
            .then(|| self.storage_write_denied(path))
            .flatten()
    }

    /// The rule a write to `path`, known to be in persistent or shared storage, breaks.
    pub fn storage_write_denied(&self, path: &InnerPath) -> Option<u32> {
        let w = self.writable.as_ref()?;
        (!w.iter().any(|t| path.is_within(t))).then(|| self.writable_rule())
    }

    /// The rule reading `path` breaks.
    pub fn read_denied(&self, path: &InnerPath) -> Option<u32> {
        self.deny_read
            .iter()
            .any(|d| path.is_within(d))
            .then(|| self.deny_read_rule())
    }

    /// The rule executing `path` breaks.
    pub fn exec_denied(&self, path: &InnerPath) -> Option<u32> {
        let a = self.exec_allow.as_ref()?;
        (!a.iter().any(|t| path.is_within(t))).then(|| self.exec_rule())
    }

    /// The network rules as the kernel's longest-prefix-match entries. Every prefix a rule
    /// names (and 0.0.0.0/0, ::/0) gets the rules whose addresses cover it, in policy order,
    /// then the default: the longest prefix that holds an address has exactly the rules that
    /// can match it (prefixes nest), so the kernel's first match is the policy's. Empty when
    /// the policy does not restrict the network.
    pub fn compile_net(&self) -> Result<Vec<LpmEntry>, String> {
        if !self.restricts_network() {
            return Ok(vec![]);
        }
        let any4 = Cidr::parse("0.0.0.0/0").expect("literal");
        let any6 = Cidr::parse("::/0").expect("literal");
        let mut prefixes = vec![any4, any6];
        for r in &self.net_rules {
            for c in &r.to {
                if !prefixes.contains(c) {
                    prefixes.push(*c);
                }
            }
        }
        let mut out = vec![];
        for p in prefixes {
            let mut rules = vec![];
            for r in &self.net_rules {
                let applies = r.to.is_empty() || r.to.iter().any(|c| c.covers(&p));
                if !applies {
                    continue;
                }
                let ranges = if r.ports.is_empty() {
                    vec![(0, u16::MAX)]
                } else {
                    r.ports.clone()
                };
                for (lo, hi) in ranges {
                    rules.push(KernelRule {
                        port_lo: lo,
                        port_hi: hi,
                        protos: r.protos,
                        ops: r.ops,
                        deny: r.deny,
                        id: r.id,
                    });
                }
            }
            rules.push(KernelRule {
                port_lo: 0,
                port_hi: u16::MAX,
                protos: PROTO_TCP | PROTO_UDP | PROTO_OTHER,
                ops: OP_CONNECT | OP_SEND | OP_BIND,
                deny: self.net_default_deny,
                id: self.default_rule(),
            });
            if rules.len() > RULES_PER_PREFIX {
                return Err(format!(
                    "{} network rules (port ranges counted one by one) apply to {p}; at most {RULES_PER_PREFIX} can",
                    rules.len()
                ));
            }
            out.push(LpmEntry { prefix: p, rules });
        }
        Ok(out)
    }
}

/// A network rule in words.
fn describe(r: &NetRule) -> String {
    let proto = match r.protos {
        PROTO_TCP => "tcp",
        PROTO_UDP => "udp",
        _ => "any",
    };
    let ops: Vec<&str> = [
        (OP_CONNECT, "connect"),
        (OP_SEND, "send"),
        (OP_BIND, "bind"),
    ]
    .iter()
    .filter(|(b, _)| r.ops & b != 0)
    .map(|(_, n)| *n)
    .collect();
    let mut s = format!(
        "{} {proto} {}",
        if r.deny { "deny" } else { "allow" },
        ops.join(",")
    );
    if !r.to.is_empty() {
        let to: Vec<String> = r.to.iter().map(|c| c.to_string()).collect();
        s += &format!(
            " {} {}",
            if r.ops == OP_BIND { "at" } else { "to" },
            to.join(" ")
        );
    }
    if !r.ports.is_empty() {
        let ps: Vec<String> = r
            .ports
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        s += &format!(" ports {}", ps.join(","));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[network]
default = "allow"
[[network.rule]]
name = "dns"
action = "allow"
to = ["10.0.0.53"]
ports = [53]
proto = "udp"
[[network.rule]]
name = "no-private"
action = "deny"
to = ["10.0.0.0/8", "192.168.0.0/16"]
[[network.rule]]
action = "deny"
ports = [25, "465-587"]
proto = "tcp"
[[network.rule]]
action = "deny"
on = ["bind"]
ports = ["1-1023"]

[files]
writable = ["/data/out"]
deny_read = ["/root/.ssh"]

[exec]
allow = ["/bin", "/usr/bin/python3"]
"#;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_decides_in_order() {
        let p = Policy::parse(SAMPLE).unwrap();
        assert_eq!(p.net_rules.len(), 4);
        assert_eq!(p.net_rules[2].name, "network.rule[3]");
        // The allow before the deny of 10/8 wins for DNS, and only for UDP port 53.
        assert_eq!(
            p.decide_net(NetOp::Send, true, ip("10.0.0.53"), 53),
            Some((1, false))
        );
        assert_eq!(
            p.decide_net(NetOp::Connect, false, ip("10.0.0.53"), 53),
            Some((2, true))
        );
        assert_eq!(
            p.decide_net(NetOp::Connect, false, ip("192.168.4.4"), 80),
            Some((2, true))
        );
        // A mapped IPv6 address is its IPv4 address.
        assert_eq!(
            p.decide_net(NetOp::Connect, false, ip("::ffff:192.168.4.4"), 80),
            Some((2, true))
        );
        assert_eq!(
            p.decide_net(NetOp::Connect, false, ip("1.2.3.4"), 500),
            Some((3, true))
        );
        assert_eq!(p.decide_net(NetOp::Connect, true, ip("1.2.3.4"), 500), None);
        assert_eq!(p.decide_net(NetOp::Connect, false, ip("1.2.3.4"), 80), None);
        // Bind rules apply to bind only; connect/send rules not to bind.
        assert_eq!(
            p.decide_net(NetOp::Bind, false, ip("0.0.0.0"), 80),
            Some((4, true))
        );
        assert_eq!(p.decide_net(NetOp::Bind, false, ip("10.1.1.1"), 8080), None);
        assert_eq!(p.default_rule(), 5);
        assert_eq!(p.rules().len(), 10);
        let data = InnerPath::parse("/data").unwrap();
        let w =
            |s: &str| p.write_denied(&InnerPath::parse(s).unwrap(), std::slice::from_ref(&data));
        assert_eq!(w("/data/x"), Some(6));
        assert_eq!(w("/data/out/x"), None);
        assert_eq!(w("/etc/passwd"), None, "the dirties are the VE's own");
        assert_eq!(
            p.read_denied(&InnerPath::parse("/root/.ssh/id_rsa").unwrap()),
            Some(7)
        );
        assert_eq!(
            p.read_denied(&InnerPath::parse("/root/.sshx").unwrap()),
            None
        );
        assert_eq!(p.exec_denied(&InnerPath::parse("/bin/sh").unwrap()), None);
        assert_eq!(
            p.exec_denied(&InnerPath::parse("/usr/bin/perl").unwrap()),
            Some(8)
        );
    }

    #[test]
    fn sizes_and_budgets() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("10 MiB"), Ok(10 << 20));
        assert_eq!(parse_size("500k"), Ok(500_000));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999999 TiB").is_err());
        let p = Policy::parse(
            "[[network.rule]]\naction = \"deny\"\nports = [25]\n[budget]\nbytes_sent = \"1 KiB\"\nfiles_written = 3\n",
        )
        .unwrap();
        assert_eq!(p.bytes_sent, Some(1024));
        assert_eq!(p.files_written, Some(3));
        assert_eq!((p.bytes_sent_rule(), p.files_written_rule()), (6, 7));
        assert!(p.supervised() && !p.preimages);
        let names: Vec<String> = p.rules().into_iter().map(|r| r.name).collect();
        assert_eq!(names[5], "budget.bytes_sent");
        assert_eq!(names[6], "budget.files_written");
        let e = Policy::parse("[budget]\nfiles_written = -1\n").unwrap_err();
        assert_eq!(e.location, Some((2, 17)), "{e}");
        let e = Policy::parse("[budget]\nbytes_sent = \"lots\"\n").unwrap_err();
        assert!(e.to_string().contains("not a size"), "{e}");
        // abort_on_close restores pre-images: it needs them.
        let e = Policy::parse("[recovery]\nabort_on_close = \"denied\"\n").unwrap_err();
        assert!(e.to_string().contains("preimages = true"), "{e}");
        let p =
            Policy::parse("[recovery]\npreimages = true\nabort_on_close = \"denied\"\n").unwrap();
        assert!(p.abort_on_close);
        assert!(
            Policy::parse("[recovery]\npreimages = true\nabort_on_close = \"often\"\n").is_err()
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = Policy::parse("[network]\ndefault = \"maybe\"\n").unwrap_err();
        assert_eq!(e.location, Some((2, 11)), "{e}");
        assert!(
            e.to_string()
                .starts_with("line 2, column 11: default = \"maybe\""),
            "{e}"
        );
        let e = Policy::parse("[[network.rule]]\naction = \"deny\"\nto = [\"10.0.0.0/33\"]\n")
            .unwrap_err();
        assert_eq!(e.location, Some((3, 7)), "{e}");
        let e =
            Policy::parse("[[network.rule]]\naction = \"deny\"\nports = [70000]\n").unwrap_err();
        assert!(e.to_string().contains("70000"), "{e}");
        let e = Policy::parse("[files]\nwritable = [\"data\"]\n").unwrap_err();
        assert_eq!(e.location, Some((2, 13)), "{e}");
        let e = Policy::parse("[network]\nnope = 1\n").unwrap_err();
        assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
        assert!(e.message.contains("nope"), "{e}");
        let e = Policy::parse("[network\n").unwrap_err();
        assert!(e.location.is_some(), "{e}");
        let e = Policy::parse("version = 2\n").unwrap_err();
        assert!(e.message.contains("version 2"), "{e}");
    }

    /// The kernel's lookup (longest prefix, then the first matching entry) decides exactly as
    /// the policy does, over many addresses and ports.
    #[test]
    fn compiled_entries_decide_like_the_policy() {
        let p = Policy::parse(SAMPLE).unwrap();
        let entries = p.compile_net().unwrap();
        let kernel = |op: NetOp, udp: bool, a: IpAddr, port: u16| -> Option<(u32, bool)> {
            let e = entries
                .iter()
                .filter(|e| e.prefix.contains(a))
                .max_by_key(|e| e.prefix.bits)?;
            let proto = if udp { PROTO_UDP } else { PROTO_TCP };
            let r = e.rules.iter().find(|r| {
                r.ops & op.bit() != 0
                    && r.protos & proto != 0
                    && r.port_lo <= port
                    && port <= r.port_hi
            })?;
            (r.deny || r.id != p.default_rule()).then_some((r.id, r.deny))
        };
        let addrs = [
            "10.0.0.53",
            "10.0.0.54",
            "10.9.9.9",
            "192.168.0.1",
            "8.8.8.8",
            "::1",
            "::ffff:10.0.0.53",
        ];
        for a in addrs {
            for port in [0u16, 25, 53, 80, 465, 500, 587, 588, 1023, 1024, 65535] {
                for udp in [false, true] {
                    for op in [NetOp::Connect, NetOp::Send, NetOp::Bind] {
                        assert_eq!(
                            kernel(op, udp, ip(a), port),
                            p.decide_net(op, udp, ip(a), port),
                            "{op:?} {udp} {a} {port}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn too_many_rules_on_one_prefix_are_refused() {
        let mut s = String::new();
        for i in 0..40 {
            s += &format!("[[network.rule]]\naction = \"deny\"\nports = [{}]\n", i + 1);
        }
        let e = Policy::parse(&s).unwrap_err();
        assert!(e.message.contains("at most 32"), "{e}");
    }

    #[test]
    fn empty_policy_restricts_nothing() {
        let p = Policy::parse("").unwrap();
        assert!(!p.restricts_network());
        assert!(p.compile_net().unwrap().is_empty());
        assert_eq!(p.decide_net(NetOp::Connect, false, ip("1.1.1.1"), 1), None);
        assert_eq!(
            p.write_denied(&InnerPath::parse("/data/x").unwrap(), &[]),
            None
        );
    }
}
