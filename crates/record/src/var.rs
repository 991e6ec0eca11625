//! Variables in records: the binary encoding of their definitions, their stable keys, and
//! the typed query that names them on the command line.
//!
//! A variable's *key* ([`VarKey`]) is its identity as the catalog and the queries look it up.
//! It is part of the store's format, pinned by golden tests, and independent of how a
//! variable prints (`Display` of `VarDef` is for people and may change).

use crate::{put_str, Cursor};
use model::at::{VarDef, VarId};
use model::leb::put;
use std::net::IpAddr;

const FILE: u8 = 1;
const PATH: u8 = 2;
const ENDPOINT: u8 = 3;
const UNIX: u8 = 4;
const MEMORY: u8 = 5;
const INODE: u8 = 6;
const FLOW: u8 = 7;

fn put_ip(out: &mut Vec<u8>, addr: &IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(16);
            out.extend_from_slice(&a.octets());
        }
    }
}

fn get_ip(c: &mut Cursor) -> Result<IpAddr, String> {
    Ok(match c.byte()? {
        4 => IpAddr::from(<[u8; 4]>::try_from(c.bytes(4)?).expect("4 bytes")),
        16 => IpAddr::from(<[u8; 16]>::try_from(c.bytes(16)?).expect("16 bytes")),
        n => return Err(format!("an address of {n} bytes")),
    })
}

fn get_port(c: &mut Cursor) -> Result<u16, String> {
    u16::try_from(c.num()?).map_err(|_| "a port beyond 16 bits".into())
}

/// An optional string as length + 1 (0 = none).
fn put_opt(out: &mut Vec<u8>, s: &Option<String>) {
    match s {
        None => put(out, 0),
        Some(p) => {
            put(out, p.len() as u64 + 1);
            out.extend_from_slice(p.as_bytes());
        }
    }
}

fn get_opt(c: &mut Cursor) -> Result<Option<String>, String> {
    Ok(match c.num()? as usize {
        0 => None,
        n => Some(String::from_utf8(c.bytes(n - 1)?.to_vec()).map_err(|_| "a path is not UTF-8")?),
    })
}

/// `count, (id, kind, fields)*`: numbers LEB128, strings length-prefixed UTF-8, an IP as 4
/// or 16 bytes after its length; a file's optional path as length + 1 (0 = none).
pub(crate) fn encode_defs(defs: &[(VarId, VarDef)], out: &mut Vec<u8>) {
    put(out, defs.len() as u64);
    for (id, d) in defs {
        put(out, u64::from(*id));
        match d {
            VarDef::File { dev, ino, path } => {
                out.push(FILE);
                put(out, *dev);
                put(out, *ino);
                put_opt(out, path);
            }
            VarDef::Inode {
                dev,
                ino,
                gen,
                name,
            } => {
                out.push(INODE);
                put(out, *dev);
                put(out, *ino);
                put(out, u64::from(*gen));
                put_opt(out, name);
            }
            VarDef::Path { path } => {
                out.push(PATH);
                put_str(out, path);
            }
            VarDef::Endpoint { addr, port } => {
                out.push(ENDPOINT);
                put_ip(out, addr);
                put(out, u64::from(*port));
            }
            VarDef::Flow { udp, from, to } => {
                out.push(FLOW);
                out.push(u8::from(*udp));
                for a in [from, to] {
                    put_ip(out, &a.ip());
                    put(out, u64::from(a.port()));
                }
            }
            VarDef::Unix { path } => {
                out.push(UNIX);
                put_str(out, path);
            }
            VarDef::Memory { ve } => {
                out.push(MEMORY);
                put(out, *ve);
            }
        }
    }
}

pub(crate) fn decode_defs(b: &[u8]) -> Result<Vec<(VarId, VarDef)>, String> {
    let mut c = Cursor::new(b);
    let n = c.count(3)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = VarId::try_from(c.num()?).map_err(|_| "a variable id beyond 32 bits")?;
        let d = match c.byte()? {
            FILE => {
                let (dev, ino) = (c.num()?, c.num()?);
                let path = get_opt(&mut c)?;
                VarDef::File { dev, ino, path }
            }
            INODE => {
                let (dev, ino) = (c.num()?, c.num()?);
                let gen = u32::try_from(c.num()?).map_err(|_| "a generation beyond 32 bits")?;
                let name = get_opt(&mut c)?;
                VarDef::Inode {
                    dev,
                    ino,
                    gen,
                    name,
                }
            }
            PATH => VarDef::Path { path: c.string()? },
            ENDPOINT => {
                let addr = get_ip(&mut c)?;
                let port = get_port(&mut c)?;
                VarDef::Endpoint { addr, port }
            }
            FLOW => {
                let udp = match c.byte()? {
                    0 => false,
                    1 => true,
                    v => return Err(format!("protocol {v}")),
                };
                let from = std::net::SocketAddr::new(get_ip(&mut c)?, get_port(&mut c)?);
                let to = std::net::SocketAddr::new(get_ip(&mut c)?, get_port(&mut c)?);
                VarDef::Flow { udp, from, to }
            }
            UNIX => VarDef::Unix { path: c.string()? },
            MEMORY => VarDef::Memory { ve: c.num()? },
            k => return Err(format!("unknown variable kind {k}")),
        };
        out.push((id, d));
    }
    c.end()?;
    Ok(out)
}

/// A variable's stable key: `n:DEV:INO:GEN` (a file by identity: device, inode, generation),
/// `c:tcp|udp:FROM:TO` (a flow; FROM and TO as `SocketAddr` prints them), `e:ADDR:PORT` (an
/// endpoint; IPv6 in RFC 5952 form), `u:PATH` (a Unix socket path), `m:VE`
/// (a VE's memory); in journals of version 1 also `f:PATH` (a file by the path it was opened
/// or run by) and `i:DEV:INO` (a file known only by device and inode).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarKey(String);

impl VarKey {
    pub fn of(d: &VarDef) -> VarKey {
        VarKey(match d {
            VarDef::File { path: Some(p), .. } | VarDef::Path { path: p } => format!("f:{p}"),
            VarDef::File {
                dev,
                ino,
                path: None,
            } => format!("i:{dev}:{ino}"),
            VarDef::Inode { dev, ino, gen, .. } => format!("n:{dev}:{ino}:{gen}"),
            VarDef::Endpoint { addr, port } => format!("e:{addr}:{port}"),
            VarDef::Flow { udp, from, to } => {
                format!("c:{}:{from}:{to}", if *udp { "udp" } else { "tcp" })
            }
            VarDef::Unix { path } => format!("u:{path}"),
            VarDef::Memory { ve } => format!("m:{ve}"),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A variable as a user names it: `file:PATH` (a path inside a VE: the file that had that
/// name), `persist:APP:PATH` or `shared:NAME/PATH` (a store-level name), `file:[DEV:INO]` or
/// `file:[DEV:INO:GEN]` (a file by identity), `endpoint:[tcp/|udp/]ADDR:PORT`, `unix:PATH` or
/// `ve:N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarQuery {
    File(String),
    /// A store-level name (`persist:APP:/inner/path`, `shared:NAME/path`).
    Store(String),
    Inode {
        dev: u64,
        ino: u64,
        gen: Option<u32>,
    },
    Endpoint {
        addr: IpAddr,
        port: u16,
    },
    Unix(String),
    Memory(u64),
}

/// What the accepted forms are, for error messages.
pub const VAR_FORMS: &str =
    "file:PATH, persist:APP:PATH, shared:NAME/PATH, volume:HOST/PATH, file:[DEV:INO[:GEN]], \
     endpoint:tcp/ADDR:PORT, unix:PATH, unix:@NAME or ve:N";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("variable {spec:?}: {why}")]
pub struct VarQueryError {
    pub spec: String,
    pub why: String,
}

impl VarQuery {
    pub fn parse(spec: &str) -> Result<VarQuery, VarQueryError> {
        let err = |why: String| VarQueryError {
            spec: spec.into(),
            why,
        };
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| err(format!("expected {VAR_FORMS}")))?;
        match kind {
            "file"
                if rest.starts_with("persist:")
                    || rest.starts_with("shared:")
                    || rest.starts_with("volume:") =>
            {
                VarQuery::parse(rest).map_err(|e| err(e.why))
            }
            "file" => {
                if let Some(id) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                    let n: Vec<&str> = id.split(':').collect();
                    let bad = || err("expected file:[DEV:INO] or file:[DEV:INO:GEN]".into());
                    let (dev, ino) = match n.as_slice() {
                        [d, i] | [d, i, _] => {
                            (d.parse().map_err(|_| bad())?, i.parse().map_err(|_| bad())?)
                        }
                        _ => return Err(bad()),
                    };
                    let gen = match n.get(2) {
                        Some(g) => Some(g.parse().map_err(|_| bad())?),
                        None => None,
                    };
                    return Ok(VarQuery::Inode { dev, ino, gen });
                }
                if !rest.starts_with('/') {
                    return Err(err(
                        "the path must be absolute (the path inside the VE)".into()
                    ));
                }
                Ok(VarQuery::File(rest.into()))
            }
            "persist" => match rest.split_once(':') {
                Some((app, p)) if !app.is_empty() && p.starts_with('/') => {
                    Ok(VarQuery::Store(spec.into()))
                }
                _ => Err(err(
                    "expected persist:APP:PATH (PATH absolute, inside the VE)".into(),
                )),
            },
            "shared" => match rest.split_once('/') {
                Some((name, p)) if !name.is_empty() && !p.is_empty() => {
                    Ok(VarQuery::Store(spec.into()))
                }
                _ => Err(err("expected shared:NAME/PATH".into())),
            },
            // A file of a host directory a VE had mounted (`jcs run -v HOST:PATH`).
            "volume" if rest.starts_with('/') && rest.len() > 1 => Ok(VarQuery::Store(spec.into())),
            "volume" => Err(err(
                "expected volume:HOST/PATH (the file's path on the host)".into(),
            )),
            // A path no recorded bind made (a socket bound to a path by a VE is the file it
            // made: `file:PATH`), or an abstract name (`unix:@name`).
            "unix" if rest.starts_with('/') || (rest.starts_with('@') && rest.len() > 1) => {
                Ok(VarQuery::Unix(rest.into()))
            }
            "unix" => Err(err(
                "expected unix:/PATH (absolute) or unix:@NAME (abstract)".into(),
            )),
            "endpoint" => {
                let r = rest
                    .strip_prefix("tcp/")
                    .or_else(|| rest.strip_prefix("udp/"))
                    .unwrap_or(rest);
                let (addr, port) = r
                    .rsplit_once(':')
                    .ok_or_else(|| err("expected ADDR:PORT".into()))?;
                let addr = addr.trim_start_matches('[').trim_end_matches(']');
                let addr: IpAddr = addr
                    .parse()
                    .map_err(|_| err(format!("{addr:?} is not an IP address")))?;
                let port: u16 = port
                    .parse()
                    .map_err(|_| err(format!("{port:?} is not a port")))?;
                Ok(VarQuery::Endpoint { addr, port })
            }
            "ve" => rest
                .parse()
                .map(VarQuery::Memory)
                .map_err(|_| err(format!("{rest:?} is not a VE id"))),
            _ => Err(err(format!("expected {VAR_FORMS}"))),
        }
    }

    /// Whether this query names files by a name (a path inside a VE, or a store-level name):
    /// a name is an attribute of a file in time, resolved through the journal's `Name`
    /// records (and, for journals of version 1, the path in the definition).
    pub fn by_name(&self) -> bool {
        matches!(self, VarQuery::File(_) | VarQuery::Store(_)) || self.socket_file().is_some()
    }

    /// `unix:/PATH`: also the socket file a VE's bind made there, known by its name.
    pub fn socket_file(&self) -> Option<&str> {
        match self {
            VarQuery::Unix(p) if p.starts_with('/') => Some(p),
            _ => None,
        }
    }

    /// The key every variable this query names by its definition has, when there is exactly
    /// one (not for a file by identity without its generation, a store-level name, nor an
    /// endpoint, which names its flows as well).
    pub fn key(&self) -> Option<VarKey> {
        Some(VarKey(match self {
            VarQuery::File(p) if p.ends_with('*') => return None,
            VarQuery::File(p) => format!("f:{p}"),
            VarQuery::Inode {
                dev,
                ino,
                gen: Some(g),
            } => format!("n:{dev}:{ino}:{g}"),
            // An endpoint names flows too (`c:` keys, to or from it).
            VarQuery::Inode { .. } | VarQuery::Store(_) | VarQuery::Endpoint { .. } => return None,
            VarQuery::Unix(p) => format!("u:{p}"),
            VarQuery::Memory(ve) => format!("m:{ve}"),
        }))
    }

    /// Whether the definition `d` is a variable this query names (names of files known by
    /// identity are matched by [`VarQuery::matches_name`]).
    pub fn matches(&self, d: &VarDef) -> bool {
        match (self, d) {
            (
                VarQuery::Inode { dev, ino, gen },
                VarDef::Inode {
                    dev: d2,
                    ino: i2,
                    gen: g2,
                    ..
                },
            ) => dev == d2 && ino == i2 && gen.is_none_or(|g| g == *g2),
            (
                VarQuery::Inode {
                    dev,
                    ino,
                    gen: None,
                },
                VarDef::File {
                    dev: d2, ino: i2, ..
                },
            ) => dev == d2 && ino == i2,
            // An endpoint: every flow to or from it.
            (VarQuery::Endpoint { addr, port }, VarDef::Flow { from, to, .. }) => [from, to]
                .iter()
                .any(|a| a.ip() == *addr && a.port() == *port),
            (VarQuery::Endpoint { addr, port }, VarDef::Endpoint { addr: a, port: p }) => {
                a == addr && p == port
            }
            (VarQuery::Store(_), _) => false,
            // A prefix: files known by path (failed lookups; version-1 journals) under it.
            (
                VarQuery::File(p),
                VarDef::Path { path }
                | VarDef::File {
                    path: Some(path), ..
                },
            ) if p.ends_with('*') => path.starts_with(&p[..p.len() - 1]),
            (q, d) => q.key().is_some_and(|k| k == VarKey::of(d)),
        }
    }

    /// Whether the name binding `n` names what this query asks for.
    pub fn matches_name(&self, n: &model::at::Name) -> bool {
        match self {
            VarQuery::File(p) => match p.strip_suffix('*') {
                Some(prefix) => n.path.starts_with(prefix),
                None => n.path == *p,
            },
            VarQuery::Store(s) => match (s.strip_suffix('*'), n.store.as_deref()) {
                (Some(prefix), Some(st)) => st.starts_with(prefix),
                (None, st) => st == Some(s.as_str()),
                _ => false,
            },
            q => q.socket_file() == Some(n.path.as_str()),
        }
    }

    /// A name with a final `*` (`file:/data/*`, `persist:web:/data/report*`): every file that
    /// had a name starting with what precedes it. Its prefix, when it is one.
    pub fn prefix(&self) -> Option<&str> {
        match self {
            VarQuery::File(p) | VarQuery::Store(p) => p.strip_suffix('*'),
            _ => None,
        }
    }
}

impl std::fmt::Display for VarQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarQuery::File(p) => write!(f, "file:{p}"),
            VarQuery::Store(s) => write!(f, "{s}"),
            VarQuery::Inode {
                dev,
                ino,
                gen: None,
            } => write!(f, "file:[{dev}:{ino}]"),
            VarQuery::Inode {
                dev,
                ino,
                gen: Some(g),
            } => write!(f, "file:[{dev}:{ino}:{g}]"),
            VarQuery::Endpoint { addr, port } => write!(f, "endpoint:{addr}:{port}"),
            VarQuery::Unix(p) => write!(f, "unix:{p}"),
            VarQuery::Memory(ve) => write!(f, "ve:{ve}"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn defs() -> Vec<(VarId, VarDef)> {
        vec![
            (1, VarDef::Memory { ve: 1 }),
            (
                3,
                VarDef::File {
                    dev: 65024,
                    ino: 10011812,
                    path: Some("/data/in.txt".into()),
                },
            ),
            (
                4,
                VarDef::File {
                    dev: 65024,
                    ino: 10011489,
                    path: None,
                },
            ),
            (
                7,
                VarDef::Path {
                    path: "/bin/sh".into(),
                },
            ),
            (
                3000,
                VarDef::Endpoint {
                    addr: "10.0.0.1".parse().unwrap(),
                    port: 53,
                },
            ),
            (
                5,
                VarDef::Endpoint {
                    addr: "2001:db8::1".parse().unwrap(),
                    port: 4617,
                },
            ),
            (
                11,
                VarDef::Unix {
                    path: "/tmp/.X11".into(),
                },
            ),
        ]
    }

    #[test]
    fn definitions_round_trip() {
        let mut b = vec![];
        encode_defs(&defs(), &mut b);
        assert_eq!(decode_defs(&b).unwrap(), defs());
        assert!(decode_defs(&b[..b.len() - 1]).is_err());
        let mut long = b.clone();
        long.push(0);
        assert!(decode_defs(&long).is_err());
    }

    #[test]
    fn keys_are_pinned() {
        // The catalog stores these: they must never change meaning.
        let keys: Vec<String> = defs()
            .iter()
            .map(|(_, d)| VarKey::of(d).as_str().to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "m:1",
                "f:/data/in.txt",
                "i:65024:10011489",
                "f:/bin/sh",
                "e:10.0.0.1:53",
                "e:2001:db8::1:4617",
                "u:/tmp/.X11"
            ]
        );
    }

    #[test]
    fn queries_match_by_key_not_by_display() {
        let q = |s: &str| VarQuery::parse(s).unwrap();
        let d = defs();
        assert!(q("file:/data/in.txt").matches(&d[1].1));
        assert!(
            q("file:/bin/sh").matches(&d[3].1),
            "a file known by path only"
        );
        assert!(q("file:[65024:10011489]").matches(&d[2].1));
        assert!(q("endpoint:tcp/10.0.0.1:53").matches(&d[4].1));
        assert!(q("endpoint:udp/10.0.0.1:53").matches(&d[4].1));
        assert!(q("endpoint:[2001:db8:0::1]:4617").matches(&d[5].1));
        assert!(q("unix:/tmp/.X11").matches(&d[6].1));
        // unix:/PATH also names the socket file a bind made there, by its name.
        let bound = model::at::Name {
            time_ns: 1,
            ve: 1,
            var: 9,
            path: "/tmp/.X11".into(),
            store: None,
            bound: true,
        };
        assert!(q("unix:/tmp/.X11").by_name() && q("unix:/tmp/.X11").matches_name(&bound));
        assert!(!q("unix:@x").by_name() && !q("file:/tmp/.X12").matches_name(&bound));
        assert!(q("unix:@/tmp/.X11-unix/X0").matches(&VarDef::Unix {
            path: "@/tmp/.X11-unix/X0".into()
        }));
        assert!(q("ve:1").matches(&d[0].1));
        assert!(!q("ve:2").matches(&d[0].1));
        assert!(!q("file:/data").matches(&d[1].1));
        assert_eq!(q("endpoint:[::1]:443").to_string(), "endpoint:::1:443");
        for bad in [
            "file:rel",
            "file:[1]",
            "endpoint:tcp/x:80",
            "endpoint:1.2.3.4",
            "endpoint:1.2.3.4:70000",
            "ve:x",
            "unix:rel",
            "unix:@",
            "nope",
            "disk:/x",
        ] {
            assert!(VarQuery::parse(bad).is_err(), "{bad}");
        }
    }
}
