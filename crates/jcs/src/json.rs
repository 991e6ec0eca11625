//! The JSON contract: what every `--json` prints, and its JSON Schema.
//!
//! Each output is a Rust type deriving `Serialize` and `schemars::JsonSchema` (here, or in the
//! library that answers). Both the value and the schema go through one convention
//! ([`conventional`], [`schema`]), so they cannot disagree and no command can print its own
//! dialect:
//! - a key `K_ms` (an instant in milliseconds, as the catalog keeps it) becomes `K_ns`;
//! - every `K_ns` (an instant in nanoseconds since the epoch: `_ns`/`_ms` never name a
//!   duration) gets a sibling `K` with the same instant in RFC 3339 (UTC, nanoseconds);
//!   `time_ns` gets `time`;
//! - `mode` (permission bits) is an octal string, `"0644"`.
//!
//! [`OUTPUTS`] lists every output; `jcs schema` prints their schemas and docs/schema/ holds
//! them (a unit test keeps the files equal to the types; an integration test validates what
//! every command prints against them).

use anyhow::Result;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};
use std::io::Write;

/// Prints one object, indented, in the convention.
pub fn print<T: Serialize + ?Sized>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&conventional(v)?)?);
    Ok(())
}

/// Writes one JSON line (a stream's element) in the convention.
pub fn line<T: Serialize + ?Sized>(out: &mut impl Write, v: &T) -> Result<()> {
    writeln!(out, "{}", conventional(v)?)?;
    Ok(())
}

/// `v` as the convention has it.
pub fn conventional<T: Serialize + ?Sized>(v: &T) -> Result<Value> {
    let mut v = serde_json::to_value(v)?;
    convert_value(&mut v);
    Ok(v)
}

/// The name a time key gets beside its `_ns` integer: `started_ns` → `started`, `time_ns`
/// → `time`.
fn time_key(ns_key: &str) -> Option<&str> {
    ns_key.strip_suffix("_ns").filter(|b| !b.is_empty())
}

fn convert_value(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(convert_value),
        Value::Object(m) => {
            let old = std::mem::take(m);
            for (k, mut val) in old {
                convert_value(&mut val);
                if let Some(base) = k.strip_suffix("_ms") {
                    let ns = val.as_i64().map(|ms| i128::from(ms) * 1_000_000);
                    m.insert(format!("{base}_ns"), ns.map_or(Value::Null, num));
                    m.insert(base.to_string(), ns.map_or(Value::Null, rfc3339));
                } else if let Some(base) = time_key(&k) {
                    let ns = val
                        .as_i64()
                        .map(i128::from)
                        .or(val.as_u64().map(i128::from));
                    m.insert(base.to_string(), ns.map_or(Value::Null, rfc3339));
                    m.insert(k, val);
                } else if k == "mode" {
                    let octal = val.as_u64().map(|n| Value::String(format!("{n:04o}")));
                    m.insert(k, octal.unwrap_or(val));
                } else {
                    m.insert(k, val);
                }
            }
        }
        _ => {}
    }
}

fn num(n: i128) -> Value {
    i64::try_from(n)
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(n as f64))
}

fn rfc3339(ns: i128) -> Value {
    Value::String(query::time::time_rfc3339(ns))
}

/// The JSON Schema (2020-12) of `T`'s output, in the convention.
pub fn schema<T: JsonSchema>() -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(T)).expect("a schema is JSON");
    convert_schema(&mut v);
    close_objects(&mut v, false);
    v
}

/// Every object a schema describes says all its keys: `unevaluatedProperties: false`, so a key
/// the types do not have fails validation. Not on the parts of a combination (`oneOf`, …: a
/// flattened enum's variants), which the object that holds them closes.
fn close_objects(v: &mut Value, part: bool) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(|x| close_objects(x, part)),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let combination = matches!(k.as_str(), "oneOf" | "anyOf" | "allOf");
                close_objects(x, combination);
            }
            if !part && m.contains_key("properties") {
                m.insert("unevaluatedProperties".into(), Value::Bool(false));
            }
        }
        _ => {}
    }
}

/// Whether a property's schema allows null (`["integer", "null"]`, or an anyOf with null).
fn nullable(s: &Value) -> bool {
    match &s["type"] {
        Value::Array(t) => t.iter().any(|x| x == "null"),
        _ => s["anyOf"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["type"] == "null")),
    }
}

fn time_schema(null: bool, of: &str) -> Value {
    serde_json::json!({
        "type": if null { serde_json::json!(["string", "null"]) } else { serde_json::json!("string") },
        "format": "date-time",
        "description": format!("{of} in RFC 3339 (UTC, nanoseconds)"),
    })
}

/// Applies the convention to every object schema (its `properties` and `required`).
fn convert_schema(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(convert_schema),
        Value::Object(m) => {
            for (_, x) in m.iter_mut() {
                convert_schema(x);
            }
            let Some(Value::Object(props)) = m.get_mut("properties") else {
                return;
            };
            let mut renamed: Vec<(String, Vec<String>)> = vec![];
            let old = std::mem::take(props);
            for (k, mut s) in old {
                if let Some(base) = k.strip_suffix("_ms") {
                    let ns_key = format!("{base}_ns");
                    assert!(
                        !old_has(props, base) && !old_has(props, &ns_key),
                        "{k}: {base} or {ns_key} is taken"
                    );
                    s["description"] = format!("{base} in nanoseconds since the epoch").into();
                    s.as_object_mut().map(|o| o.remove("format"));
                    props.insert(base.to_string(), time_schema(nullable(&s), &ns_key));
                    props.insert(ns_key.clone(), s);
                    renamed.push((k.clone(), vec![ns_key, base.to_string()]));
                } else if let Some(base) = time_key(&k) {
                    assert!(!old_has(props, base), "{k}: {base} is taken");
                    props.insert(base.to_string(), time_schema(nullable(&s), &k));
                    renamed.push((k.clone(), vec![k.clone(), base.to_string()]));
                    props.insert(k, s);
                } else if k == "mode" {
                    props.insert(
                        k,
                        serde_json::json!({
                            "type": "string", "pattern": "^[0-7]{4,}$",
                            "description": "permission bits, setuid/setgid/sticky, in octal",
                        }),
                    );
                } else {
                    props.insert(k, s);
                }
            }
            if let Some(Value::Array(req)) = m.get_mut("required") {
                let old = std::mem::take(req);
                for r in old {
                    match renamed.iter().find(|(k, _)| r == **k) {
                        Some((_, new)) => req.extend(new.iter().map(|n| Value::from(n.as_str()))),
                        None => req.push(r),
                    }
                }
            }
        }
        _ => {}
    }
}

fn old_has(props: &Map<String, Value>, k: &str) -> bool {
    props.contains_key(k)
}

/// One command's `--json` output.
#[derive(Debug)]
pub struct Output {
    /// The schema's name: docs/schema/NAME.json.
    pub name: &'static str,
    /// The commands that print it (`summarize --dry-run`: with that flag).
    pub commands: &'static [&'static str],
    /// JSON lines (one object per line, each valid by the schema) instead of one object.
    pub lines: bool,
    pub schema: fn() -> Value,
}

macro_rules! outputs {
    ($($name:literal, [$($cmd:literal),+], $lines:literal, $t:ty;)*) => {
        /// Every `--json` output of jcs.
        pub const OUTPUTS: &[Output] = &[
            $(Output { name: $name, commands: &[$($cmd),+], lines: $lines, schema: schema::<$t> },)*
        ];
    };
}

outputs! {
    "doctor", ["doctor"], false, Doctor;
    "template-create", ["template create", "template import"], false, TemplateCreated;
    "template-list", ["template list"], false, Templates;
    "app-create", ["app create"], false, AppVersion;
    "app-list", ["app list"], false, Apps;
    "app-show", ["app show"], false, AppShow;
    "ps", ["ps"], false, Ves;
    "inspect", ["inspect"], false, model::report::IntegrityReport;
    "log", ["log"], true, LogLine;
    "stats", ["stats"], false, Stats;
    "track", ["track back", "track forward"], false, query::track::TrackJson;
    "verify", ["verify"], false, Verified;
    "summarize-dry-run", ["summarize --dry-run"], false, Tiers;
    "summarize", ["summarize"], false, query::summarize::Rewritten;
    "gc", ["gc"], false, lifecycle::ves::Collected;
    "versions-gc", ["versions gc"], false, lifecycle::versions::Collected;
    "abort", ["abort"], false, lifecycle::abort::Aborted;
    "recover", ["recover"], false, lifecycle::recover::Plan;
    "policy-check", ["policy check"], false, PolicyCheck;
    "policy-replay", ["policy replay"], false, query::replay::Replay;
    "ship", ["ship"], false, fleet::ship::ShipReport;
    "collect", ["collect"], false, Vec<fleet::collect::HostReport>;
}

/// `jcs doctor --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Doctor {
    /// Every required feature is present: VEs can run.
    pub ok: bool,
    pub checks: Vec<ve::doctor::Check>,
}

/// `jcs template create --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TemplateCreated {
    pub template: String,
    pub version: u32,
    /// Where its tree is.
    pub path: std::path::PathBuf,
}

/// `jcs template list --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Templates {
    pub templates: Vec<store::catalog::TemplateRow>,
}

/// `jcs app create --json`, and an app of `jcs app list --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AppVersion {
    pub app: model::AppSpec,
    /// Its latest version.
    pub version: u32,
}

/// `jcs app list --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Apps {
    pub apps: Vec<AppVersion>,
}

/// `jcs app show --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AppShow {
    pub app: model::AppSpec,
    pub versions: Vec<store::catalog::AppVersionRow>,
}

/// `jcs ps --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Ves {
    pub ves: Vec<store::VeRow>,
}

/// `jcs summarize --dry-run --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Tiers {
    pub tiers: Vec<query::summarize::TierSize>,
}

/// `jcs verify --json`: the journal's report, and (for a store's journal) its catalog against
/// it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Verified {
    #[serde(flatten)]
    pub journal: journal::VerifyReport,
    /// The catalog's variable dictionary and names against the journal's (null with --dir:
    /// a journal without its store).
    pub catalog: Option<CatalogCheck>,
}

/// What `jcs verify` finds of the catalog: queries (`jcs log --var`, `jcs track`) resolve
/// names and definitions through it, and the journal is their source of truth.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct CatalogCheck {
    /// Variable definitions and name records the journal holds.
    pub definitions: u64,
    pub names: u64,
    /// Catalog entries the journal contradicts — a variable defined as something else, a name
    /// bound to another variable at the same moment — a problem: a query would follow them.
    pub differs: Vec<String>,
    /// In the journal, not in the catalog: a recorder whose catalog write failed (a full
    /// disk); the daemon adds them back as it indexes.
    pub missing_definitions: u64,
    pub missing_names: u64,
    /// In the catalog, not in the journal: written by the recorder just before its journal
    /// got them (while VEs run), left by a recorder killed in between, or added by hand.
    pub extra_definitions: u64,
    pub extra_names: u64,
}

/// `jcs policy check --json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PolicyCheck {
    pub file: std::path::PathBuf,
    pub ok: bool,
    pub rules: Vec<model::policy::RuleInfo>,
}

/// `jcs stats --json`: the journal's counts, and the version store.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Stats {
    #[serde(flatten)]
    pub stats: query::stats::Stats,
    pub version_store: VersionStore,
}

/// The pre-images apps with `[recovery] preimages = true` keep.
#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionStore {
    pub objects: u64,
    pub bytes: u64,
}

/// A line of `jcs log --json`: a transaction, a T1 summary, a repair of the journal, or a
/// file put back.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum LogLine {
    Transaction(Transaction),
    Summary(SummaryLine),
    Repair(RepairLine),
    Restore(RestoreLine),
}

/// A recorded transaction.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Transaction {
    pub time_ns: u64,
    pub ve: u64,
    pub pid: u32,
    pub tid: u32,
    /// `read`, `write`, `exec`, `connect`, … (`jcs log --op` takes them).
    pub op: String,
    /// A file by the name it had in the VE when the call touched it (a rename or link by the
    /// name it gave, an unlink by the one it took), or another variable: `tcp:A:P->B:Q`,
    /// `endpoint:tcp/ADDR:PORT`, `unix:PATH`, `ve:N`, `host:stdout`, `-` (none).
    pub src: String,
    pub dst: String,
    /// A file's identity, `file:[DEV:INO:GEN]` (what `--var` takes: one file whatever its
    /// names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_id: Option<String>,
    /// The offset in the file (0 for an aborted transaction).
    pub off: u64,
    pub len: u64,
    /// The call's result (bytes, a descriptor, 0; -errno when it failed).
    pub result: i64,
    /// `committed`, `aborted` (by the policy) or `failed`.
    pub status: String,
    /// A failed call's errno by name (`ENOENT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// An aborted transaction's rule: its number and its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// An exec's arguments (at most 127 bytes of them; `argv_cut` when there were more),
    /// parent and ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub argv_cut: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub euid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// An exec's working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// Transactions a summary stands for: a T1 summary (`jcs daemon --summarize online`), or an
/// integrity record (what a VE wrote into a file of its dirties over a window).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SummaryLine {
    /// The tier: `T1`, `integrity`.
    pub summary: String,
    /// The VE whose memory is one end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ve: Option<u64>,
    pub first_ns: u64,
    pub last_ns: u64,
    pub src: String,
    pub dst: String,
    /// The byte ranges `[start, end)` of `dst` written; absent: all of it (a truncate, an
    /// attribute, or not a file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Vec<[u64; 2]>>,
    /// The calls it stands for.
    pub count: u64,
    pub bytes: u64,
}

/// A repair of the journal when a recorder opened it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RepairLine {
    /// `torn` or `quarantined`.
    pub repair: String,
    pub time_ns: u64,
    /// Where the cut bytes were set aside.
    pub file: String,
    pub reason: String,
}

/// A file put back by `jcs abort` or `jcs recover`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RestoreLine {
    pub restore: record::Restore,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_modes_follow_the_convention() {
        let v = serde_json::json!({
            "started_ms": 1_795_837_111_500i64, "ended_ms": null,
            "rows": [{"time_ns": 1_795_837_111_000_000_007u64, "mode": 420, "ve": 3}],
        });
        let mut c = v.clone();
        convert_value(&mut c);
        assert_eq!(
            c,
            serde_json::json!({
                "started_ns": 1_795_837_111_500_000_000i64,
                "started": "2026-11-28T03:38:31.500000000Z",
                "ended_ns": null, "ended": null,
                "rows": [{"time_ns": 1_795_837_111_000_000_007u64,
                          "time": "2026-11-28T03:38:31.000000007Z", "mode": "0644", "ve": 3}],
            })
        );
    }

    #[test]
    fn the_schema_follows_the_same_convention() {
        #[derive(Serialize, JsonSchema)]
        #[allow(dead_code)]
        struct T {
            started_ms: i64,
            ended_ms: Option<i64>,
            mode: u32,
        }
        let s = schema::<T>();
        let p = &s["properties"];
        assert_eq!(p["started"]["format"], "date-time");
        assert_eq!(p["started_ns"]["type"], "integer");
        assert_eq!(p["ended"]["type"], serde_json::json!(["string", "null"]));
        assert_eq!(p["mode"]["type"], "string");
        assert!(p.get("started_ms").is_none());
        let req: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert!(
            req.contains(&"started") && req.contains(&"started_ns"),
            "{req:?}"
        );
        assert!(!req.contains(&"started_ms"));
    }

    /// The convention rewrites keys by name; a dictionary (`syscalls_by_name`, `by_op`)
    /// whose keys are system calls or operations must not be touched by it.
    #[test]
    fn no_dictionary_key_looks_like_a_time_or_a_mode() {
        let names = (0..1024)
            .map(monitor::syscalls::name)
            .chain(model::at::Op::names().into_iter().map(String::from));
        for n in names {
            assert!(
                !n.ends_with("_ns") && !n.ends_with("_ms") && n != "mode",
                "{n}"
            );
        }
    }

    /// docs/schema/ holds exactly the schemas the types make
    /// (`cargo run -p jcs -- schema --write docs/schema` rewrites them).
    #[test]
    fn docs_schemas_are_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema");
        for o in OUTPUTS {
            let want = serde_json::to_string_pretty(&(o.schema)()).unwrap() + "\n";
            let path = dir.join(format!("{}.json", o.name));
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                have == want,
                "{} is not what the types make: run `cargo run -p jcs -- schema --write docs/schema`",
                path.display()
            );
        }
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(
            files,
            OUTPUTS.len(),
            "a schema in {} names no output",
            dir.display()
        );
    }
}

#[cfg(test)]
mod every_command {
    use super::OUTPUTS;

    /// Every (sub)command that takes --json prints one of [`OUTPUTS`] (and each output's
    /// command exists): a new --json cannot land without its schema.
    #[test]
    fn every_json_flag_has_a_schema() {
        fn walk(c: &clap::Command, path: &str, found: &mut Vec<String>) {
            if c.get_arguments().any(|a| a.get_id() == "json") {
                found.push(path.to_string());
            }
            for s in c.get_subcommands() {
                let p = if path.is_empty() {
                    s.get_name().to_string()
                } else {
                    format!("{path} {}", s.get_name())
                };
                walk(s, &p, found);
            }
        }
        let mut found = vec![];
        walk(&crate::full_command(), "", &mut found);
        let covered = |cmd: &str| {
            OUTPUTS
                .iter()
                .flat_map(|o| o.commands)
                .any(|c| *c == cmd || c.starts_with(&format!("{cmd} --")))
        };
        let missing: Vec<&String> = found.iter().filter(|c| !covered(c)).collect();
        assert!(missing.is_empty(), "--json without a schema: {missing:?}");
        for c in OUTPUTS.iter().flat_map(|o| o.commands) {
            let base = c.split(" --").next().unwrap();
            assert!(
                found.iter().any(|f| f == base),
                "{c}: no such command with --json"
            );
        }
        assert!(found.len() >= 18, "{found:?}");
    }
}
