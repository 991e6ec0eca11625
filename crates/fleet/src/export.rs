//! `jcs export --format parquet|cdm`: the journal for other tools (JSON lines and CSV are
//! `jcs log`'s own formats, written by the jcs binary).
//!
//! - Parquet (docs/fleet.md): one row per transaction and per summary, every number a signed
//!   64-bit integer (Spark reads unsigned 64-bit columns as decimals), Snappy-compressed
//!   row groups of 64 Ki rows; readable by DuckDB, Spark, ClickHouse and pandas.
//! - CDM: the DARPA Transparent Computing Common Data Model, version 18, in its JSON form
//!   (what `avro-tools tojson` prints of CDM Avro, one datum per line, unions tagged by type):
//!   a `Host`, a `Principal`, a `Subject` per process (per VE and pid, its command line when an
//!   exec recorded one), a `FileObject` per file (and Unix socket name), a `NetFlowObject` per
//!   flow or endpoint, a `SrcSinkObject` per VE's memory, and an `Event` per transaction with
//!   its size and offset. UUIDs are derived from the host name and the variable's id, so two
//!   exports of one journal name the same things the same way.

use crate::{io_err, FleetError, Result};
use model::at::{At, ExecInfo, Name, Op, VarDef, VarId};
use record::{Record, Tier};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
    pub ves: Option<HashSet<u64>>,
}

impl Filter {
    fn at(&self, t: u64, ve: Option<u64>) -> bool {
        self.since_ns.is_none_or(|s| t >= s)
            && self.until_ns.is_none_or(|u| t <= u)
            && match (&self.ves, ve) {
                (None, _) => true,
                (Some(v), Some(ve)) => v.contains(&ve),
                (Some(_), None) => false,
            }
    }
}

/// The journal's records, read once.
#[derive(Debug, Default)]
pub struct Contents {
    pub vars: HashMap<VarId, VarDef>,
    pub names: Vec<Name>,
    pub execs: Vec<ExecInfo>,
    pub ats: Vec<At>,
    pub sums: Vec<(Tier, analysis::summary::Summary)>,
    /// Damaged stretches skipped.
    pub skipped: usize,
}

impl Contents {
    pub fn read(dir: &Path) -> Result<Contents> {
        let storage =
            journal::DirStorage::new(dir).map_err(io_err(format!("open {}", dir.display())))?;
        let (records, skipped) = journal::read_all_tolerant(&storage)?;
        let mut c = Contents {
            skipped: skipped.len(),
            ..Contents::default()
        };
        for (seq, r) in records {
            match Record::decode(&r)
                .map_err(|e| FleetError::Usage(format!("record {seq} does not decode: {e}")))?
            {
                Record::Vars(d) => c.vars.extend(d),
                Record::Ats(a) => c.ats.extend(a),
                Record::Names(n) => c.names.extend(n),
                Record::Execs(x) => c.execs.extend(x),
                Record::Summaries { tier, sts } => {
                    c.sums.extend(sts.into_iter().map(|s| (tier, s)))
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// A variable as people read it: its definition (a file by its first name).
    fn label(&self, v: VarId) -> String {
        match v {
            0 => String::new(),
            v => self
                .vars
                .get(&v)
                .map_or_else(|| format!("var:{v}"), |d| d.to_string()),
        }
    }

    fn ve_of(&self, v: VarId) -> Option<u64> {
        match self.vars.get(&v) {
            Some(VarDef::Memory { ve }) => Some(*ve),
            _ => None,
        }
    }
}

/// Writes the transactions and summaries `filter` selects as Parquet into `out`; returns the
/// rows written.
pub fn parquet(c: &Contents, filter: &Filter, out: std::fs::File) -> Result<u64> {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let perr = |e: parquet::errors::ParquetError| FleetError::Usage(format!("parquet: {e}"));
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message jcs_transaction {
               REQUIRED BYTE_ARRAY kind (UTF8);
               REQUIRED INT64 time_ns; REQUIRED INT64 last_ns;
               REQUIRED INT64 ve; REQUIRED INT64 pid; REQUIRED INT64 tid;
               REQUIRED BYTE_ARRAY op (UTF8); REQUIRED BYTE_ARRAY status (UTF8);
               REQUIRED INT64 src; REQUIRED INT64 dst;
               REQUIRED BYTE_ARRAY src_label (UTF8); REQUIRED BYTE_ARRAY dst_label (UTF8);
               REQUIRED INT64 off; REQUIRED INT64 len; REQUIRED INT64 result; REQUIRED INT64 count;
             }",
        )
        .map_err(perr)?,
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut w = SerializedFileWriter::new(out, schema, props).map_err(perr)?;
    // Columns of one row group: strings, then numbers, in schema order.
    #[derive(Default)]
    struct Group {
        kind: Vec<ByteArray>,
        ints: [Vec<i64>; 11],
        op: Vec<ByteArray>,
        status: Vec<ByteArray>,
        src_label: Vec<ByteArray>,
        dst_label: Vec<ByteArray>,
    }
    let flush = |w: &mut SerializedFileWriter<std::fs::File>, g: &mut Group| -> Result<()> {
        if g.kind.is_empty() {
            return Ok(());
        }
        let mut rg = w.next_row_group().map_err(perr)?;
        // Schema order: kind, time_ns, last_ns, ve, pid, tid, op, status, src, dst, src_label,
        // dst_label, off, len, result, count.
        let mut i = 0;
        while let Some(mut col) = rg.next_column().map_err(perr)? {
            let strings = |k: usize, g: &Group| -> Option<Vec<ByteArray>> {
                match k {
                    0 => Some(g.kind.clone()),
                    6 => Some(g.op.clone()),
                    7 => Some(g.status.clone()),
                    10 => Some(g.src_label.clone()),
                    11 => Some(g.dst_label.clone()),
                    _ => None,
                }
            };
            match strings(i, g) {
                Some(v) => {
                    col.typed::<ByteArrayType>()
                        .write_batch(&v, None, None)
                        .map_err(perr)?;
                }
                None => {
                    let n = match i {
                        1..=5 => i - 1,
                        8 | 9 => i - 3,
                        _ => i - 5,
                    };
                    col.typed::<Int64Type>()
                        .write_batch(&g.ints[n], None, None)
                        .map_err(perr)?;
                }
            }
            col.close().map_err(perr)?;
            i += 1;
        }
        rg.close().map_err(perr)?;
        *g = Group::default();
        Ok(())
    };
    let s = |x: &str| ByteArray::from(x);
    let mut g = Group::default();
    let mut rows = 0u64;
    let push = |g: &mut Group,
                kind: &str,
                nums: [i64; 11],
                op: &str,
                status: &str,
                src: VarId,
                dst: VarId| {
        g.kind.push(s(kind));
        for (k, n) in nums.into_iter().enumerate() {
            g.ints[k].push(n);
        }
        g.op.push(s(op));
        g.status.push(s(status));
        g.src_label.push(s(&c.label(src)));
        g.dst_label.push(s(&c.label(dst)));
    };
    for a in &c.ats {
        if !filter.at(a.time_ns, Some(a.ve)) {
            continue;
        }
        // time_ns, last_ns, ve, pid, tid, src, dst, off, len, result, count
        let nums = [
            a.time_ns as i64,
            a.time_ns as i64,
            a.ve as i64,
            i64::from(a.pid),
            i64::from(a.tid),
            i64::from(a.src),
            i64::from(a.dst),
            a.off as i64,
            a.len as i64,
            a.result,
            1,
        ];
        push(
            &mut g,
            "transaction",
            nums,
            a.op.name(),
            a.status.name(),
            a.src,
            a.dst,
        );
        rows += 1;
        if g.kind.len() >= 1 << 16 {
            flush(&mut w, &mut g)?;
        }
    }
    for (tier, st) in &c.sums {
        let ve = c.ve_of(st.src).or(c.ve_of(st.dst));
        if !filter.at(st.first, ve) {
            continue;
        }
        let nums = [
            st.first as i64,
            st.last as i64,
            ve.unwrap_or(0) as i64,
            0,
            0,
            i64::from(st.src),
            i64::from(st.dst),
            0,
            st.bytes as i64,
            0,
            st.count as i64,
        ];
        push(
            &mut g,
            &format!("summary:{}", tier.name()),
            nums,
            "",
            "committed",
            st.src,
            st.dst,
        );
        rows += 1;
        if g.kind.len() >= 1 << 16 {
            flush(&mut w, &mut g)?;
        }
    }
    flush(&mut w, &mut g)?;
    w.close().map_err(perr)?;
    Ok(rows)
}

const CDM: &str = "com.bbn.tc.schema.avro.cdm18";

/// A UUID (RFC 4122 form, version 5-like bits) from the host and what it names.
fn uuid(host: &str, what: &str) -> String {
    let h = blake3::hash(format!("jcs\0{host}\0{what}").as_bytes());
    let b = h.as_bytes();
    let mut u = [0u8; 16];
    u.copy_from_slice(&b[..16]);
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    let x: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn datum(kind: &str, v: Value) -> Value {
    json!({ "datum": { format!("{CDM}.{kind}"): v }, "CDMVersion": "18", "source": "SOURCE_LINUX_SYSCALL_TRACE" })
}

fn u(id: &str) -> Value {
    json!({ format!("{CDM}.UUID"): id })
}

fn string(s: &str) -> Value {
    json!({ "string": s })
}

fn long(n: u64) -> Value {
    json!({ "long": n as i64 })
}

/// The CDM event type of an operation.
fn event_type(op: Op) -> &'static str {
    match op {
        Op::Open => "EVENT_OPEN",
        Op::Read => "EVENT_READ",
        Op::Write => "EVENT_WRITE",
        Op::Truncate => "EVENT_TRUNCATE",
        Op::Rename => "EVENT_RENAME",
        Op::Link => "EVENT_LINK",
        Op::Unlink | Op::Rmdir => "EVENT_UNLINK",
        Op::Mkdir | Op::Mknod | Op::Symlink | Op::Socket => "EVENT_CREATE_OBJECT",
        Op::Chmod | Op::Chown | Op::SetXattr | Op::Utime => "EVENT_MODIFY_FILE_ATTRIBUTES",
        Op::GetXattr => "EVENT_OTHER",
        Op::Mmap => "EVENT_MMAP",
        Op::Exec => "EVENT_EXECUTE",
        Op::Fork => "EVENT_FORK",
        Op::Exit => "EVENT_EXIT",
        Op::Connect => "EVENT_CONNECT",
        Op::Accept => "EVENT_ACCEPT",
        Op::Bind => "EVENT_BIND",
        Op::Listen => "EVENT_OTHER",
        Op::Send => "EVENT_SENDMSG",
        Op::Recv => "EVENT_RECVMSG",
        Op::Close => "EVENT_CLOSE",
        Op::Gap => "EVENT_OTHER",
    }
}

/// Writes the CDM records of what `filter` selects; returns how many.
pub fn cdm(c: &Contents, filter: &Filter, host: &str, out: &mut dyn Write) -> Result<u64> {
    let mut n = 0u64;
    let mut put = |out: &mut dyn Write, v: Value| -> Result<()> {
        serde_json::to_writer(&mut *out, &v).map_err(|e| FleetError::Usage(e.to_string()))?;
        out.write_all(b"\n").map_err(io_err("write the export"))?;
        n += 1;
        Ok(())
    };
    let host_id = uuid(host, "host");
    put(
        out,
        datum(
            "Host",
            json!({
                "uuid": host_id, "hostName": host, "hostIdentifiers": [], "osDetails": null,
                "hostType": "HOST_SERVER", "interfaces": null,
            }),
        ),
    )?;
    let principal = uuid(host, "principal:root");
    put(
        out,
        datum(
            "Principal",
            json!({
                "uuid": principal, "type": "PRINCIPAL_LOCAL", "userId": "0", "username": null,
                "groupIds": [], "properties": null,
            }),
        ),
    )?;
    let ats: Vec<&At> = c
        .ats
        .iter()
        .filter(|a| filter.at(a.time_ns, Some(a.ve)))
        .collect();
    // The variables and processes the selected transactions name.
    let used: BTreeMap<VarId, &VarDef> = ats
        .iter()
        .flat_map(|a| [a.src, a.dst])
        .filter(|v| *v != 0)
        .filter_map(|v| c.vars.get(&v).map(|d| (v, d)))
        .collect();
    let first_name: HashMap<VarId, &str> = c
        .names
        .iter()
        .rev()
        .map(|x| (x.var, x.path.as_str()))
        .collect();
    for (v, d) in &used {
        let id = uuid(host, &format!("var:{v}"));
        let props = |extra: Value| {
            let mut m = serde_json::Map::new();
            m.insert("jcs_var".into(), json!(v.to_string()));
            m.insert("jcs_label".into(), json!(d.to_string()));
            if let Value::Object(e) = extra {
                m.extend(e);
            }
            json!({ "map": m })
        };
        let base = |extra: Value| json!({ "hostId": u(&host_id), "permission": null, "epoch": null, "properties": props(extra) });
        let rec = match d {
            VarDef::File { .. } | VarDef::Path { .. } | VarDef::Inode { .. } => {
                let path = first_name
                    .get(v)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| d.to_string());
                datum(
                    "FileObject",
                    json!({
                        "uuid": id, "baseObject": base(json!({ "path": path })), "type": "FILE_OBJECT_FILE",
                        "fileDescriptor": null, "localPrincipal": null, "size": null, "peInfo": null, "hashes": null,
                    }),
                )
            }
            VarDef::Unix { path } => datum(
                "FileObject",
                json!({
                    "uuid": id, "baseObject": base(json!({ "path": path })), "type": "FILE_OBJECT_UNIX_SOCKET",
                    "fileDescriptor": null, "localPrincipal": null, "size": null, "peInfo": null, "hashes": null,
                }),
            ),
            VarDef::Flow { udp, from, to } => datum(
                "NetFlowObject",
                json!({
                    "uuid": id, "baseObject": base(json!({})),
                    "localAddress": string(&from.ip().to_string()), "localPort": { "int": from.port() },
                    "remoteAddress": string(&to.ip().to_string()), "remotePort": { "int": to.port() },
                    "ipProtocol": { "int": if *udp { 17 } else { 6 } }, "fileDescriptor": null,
                }),
            ),
            VarDef::Endpoint { addr, port } => datum(
                "NetFlowObject",
                json!({
                    "uuid": id, "baseObject": base(json!({})),
                    "localAddress": null, "localPort": null,
                    "remoteAddress": string(&addr.to_string()), "remotePort": { "int": port },
                    "ipProtocol": null, "fileDescriptor": null,
                }),
            ),
            VarDef::Memory { ve } => datum(
                "SrcSinkObject",
                json!({
                    "uuid": id, "baseObject": base(json!({ "ve": ve.to_string() })),
                    "type": "SRCSINK_PROCESS_MANAGEMENT", "fileDescriptor": null,
                }),
            ),
        };
        put(out, rec)?;
    }
    // A Subject per process, at its first transaction.
    let cmd: HashMap<(u64, u32), &ExecInfo> = c.execs.iter().map(|x| ((x.ve, x.pid), x)).collect();
    let mut subjects: BTreeMap<(u64, u32), u64> = BTreeMap::new();
    for a in &ats {
        let e = subjects.entry((a.ve, a.pid)).or_insert(a.time_ns);
        *e = (*e).min(a.time_ns);
    }
    for (&(ve, pid), &start) in &subjects {
        let x = cmd.get(&(ve, pid));
        put(
            out,
            datum(
                "Subject",
                json!({
                    "uuid": uuid(host, &format!("subject:{ve}:{pid}")), "type": "SUBJECT_PROCESS",
                    "cid": pid, "parentSubject": null, "hostId": u(&host_id), "localPrincipal": u(&principal),
                    "startTimestampNanos": start as i64, "unitId": null, "iteration": null, "count": null,
                    "cmdLine": x.map(|x| string(&x.argv.join(" "))),
                    "privilegeLevel": null, "importedLibraries": null, "exportedLibraries": null,
                    "properties": { "map": { "ve": ve.to_string() } },
                }),
            ),
        )?;
    }
    for (k, a) in ats.iter().enumerate() {
        // The object the call acted on: the file or flow (the VE's memory is the other end).
        let (obj, obj2) = match (c.ve_of(a.src).is_some(), c.ve_of(a.dst).is_some()) {
            (true, _) => (a.dst, a.src),
            _ => (a.src, a.dst),
        };
        let id = |v: VarId| (v != 0).then(|| u(&uuid(host, &format!("var:{v}"))));
        put(
            out,
            datum(
                "Event",
                json!({
                    "uuid": uuid(host, &format!("event:{}:{}:{}:{k}", a.time_ns, a.ve, a.pid)),
                    "sequence": long(k as u64), "type": event_type(a.op), "threadId": { "int": a.tid },
                    "hostId": u(&host_id), "subject": u(&uuid(host, &format!("subject:{}:{}", a.ve, a.pid))),
                    "predicateObject": id(obj), "predicateObjectPath": first_name.get(&obj).map(|p| string(p)),
                    "predicateObject2": id(obj2), "predicateObject2Path": first_name.get(&obj2).map(|p| string(p)),
                    "timestampNanos": a.time_ns as i64, "name": string(a.op.name()), "parameters": null,
                    "location": long(a.off), "size": long(a.len), "programPoint": null,
                    "properties": { "map": { "status": a.status.name(), "result": a.result.to_string(), "ve": a.ve.to_string() } },
                }),
            ),
        )?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let a = uuid("h", "var:1");
        assert_eq!(a, uuid("h", "var:1"));
        assert_ne!(a, uuid("g", "var:1"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn a_filter_selects_by_time_and_ve() {
        let f = Filter {
            since_ns: Some(10),
            until_ns: Some(20),
            ves: Some(HashSet::from([3])),
        };
        assert!(f.at(10, Some(3)) && f.at(20, Some(3)));
        assert!(!f.at(9, Some(3)) && !f.at(21, Some(3)) && !f.at(15, Some(4)) && !f.at(15, None));
        assert!(Filter::default().at(0, None));
    }
}
