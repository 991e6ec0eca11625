//! `jcs recover --from VAR`: recovery after an attack (design §1 "Recovery"). The journal is
//! tracked forward from a source (a malicious endpoint, a trojaned download) to every file and
//! VE its data reached; each contaminated file of persistent or shared storage goes back to
//! its version before the first VE that contaminated it changed it (that VE's pre-image, or
//! removed when that VE created it); the contaminated VEs' dirties are quarantined; the
//! legitimate changes made to those files afterwards are listed as lost with them.
//!
//! A plan is data ([`plan`]); [`apply`] carries it out step by step, each step idempotent, with
//! a recovery journal (`versions/recover/ID.json`, rewritten and synced after every step): a
//! recovery killed at any point converges when run again.

use crate::{Context, Result};
use model::at::{Op, VarDef, VarId};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use store::Store;
use ve::supervise::Undo;

/// One contaminated file.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FileFix {
    /// How `jcs log` names it.
    pub file: String,
    /// Its store-level name where the fix applies (`persist:APP:/docs/report.txt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The VE whose write first carried the contamination into it, and when.
    pub contaminated_by: u64,
    pub first_ns: u64,
    /// `restore` (to the content it had before that VE changed it), `remove` (that VE created
    /// it), or `none` (no pre-image: see `problem`).
    pub action: &'static str,
    /// The clean version: the pre-image's blake3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clean: Option<String>,
    /// Later changes by other VEs that the fix undoes with it: (VE, first write, whether that
    /// VE is contaminated itself).
    pub lost_changes: Vec<LaterChange>,
    /// The name the contaminating VE changed it under, when it has another one now (a later
    /// rename): the fix applies at `path`, its current name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub result: String,
    #[serde(skip)]
    undo: Option<Undo>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LaterChange {
    pub ve: u64,
    pub first_ns: u64,
    pub contaminated: bool,
}

/// One contaminated VE.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VeFix {
    pub ve: u64,
    pub app: String,
    pub state: String,
    /// `quarantine` (its dirties are marked, `ve/N/meta/quarantined.json`), or `end it first`
    /// when it still runs (its memory is contaminated).
    pub action: &'static str,
    pub result: String,
}

/// A recovery plan (and, applied, what each step did).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Plan {
    pub from: String,
    pub at_ns: Option<u64>,
    pub files: Vec<FileFix>,
    pub ves: Vec<VeFix>,
    /// The tracking answer was complete (no gap or damaged stretch could have hidden a flow).
    pub complete: bool,
    pub applied: bool,
    /// Why the journal could not take the restores (None: journaled, or nothing was done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unjournaled: Option<String>,
}

fn writes(op: Op) -> bool {
    matches!(
        op,
        Op::Write
            | Op::Truncate
            | Op::Rename
            | Op::Link
            | Op::Unlink
            | Op::SetXattr
            | Op::Utime
            | Op::Chmod
            | Op::Chown
            | Op::Mmap
    )
}

/// The plan of a recovery from `from` (at or after `at_ns`).
pub fn plan(store: &Store, from: &record::VarQuery, at_ns: Option<u64>) -> Result<Plan> {
    let dir = store.journal_dir();
    // (Through the segment indexes: only the blocks the answer can reach.)
    let answer = query::track::track_store(
        store,
        query::track::Direction::Forward,
        from,
        at_ns,
        None,
        query::track::Source::Transactions,
    )?;
    let loaded = query::track::Loaded::read(&dir)?;
    let ve_of_mem: HashMap<VarId, u64> = loaded
        .vars
        .iter()
        .filter_map(|(id, d)| match d {
            VarDef::Memory { ve } => Some((*id, *ve)),
            _ => None,
        })
        .collect();
    // Contaminated VEs (their memory was reached) and files (a contaminated VE wrote them).
    let mut bad_ves: BTreeSet<u64> = BTreeSet::new();
    let mut bad_files: BTreeMap<VarId, (u64, u64)> = BTreeMap::new(); // file → (VE, first)
    for e in &answer.edges {
        if let Some(ve) = ve_of_mem.get(&e.dst) {
            bad_ves.insert(*ve);
        }
        if loaded.is_file(e.dst) && ve_of_mem.contains_key(&e.src) {
            let entry = bad_files.entry(e.dst).or_insert((e.ve, e.first_ns));
            if e.first_ns < entry.1 {
                *entry = (e.ve, e.first_ns);
            }
        }
    }
    for &s in &answer.starts {
        if let Some(ve) = ve_of_mem.get(&s) {
            bad_ves.insert(*ve);
        }
    }
    let versions = store.layout.versions();
    let mut undo_logs: HashMap<u64, Vec<Undo>> = HashMap::new();
    let mut files = vec![];
    for (var, (ve, first)) in bad_files {
        let label = loaded
            .vars
            .get(&var)
            .map(|d| d.to_string())
            .unwrap_or_else(|| format!("var:{var}"));
        let identity = match loaded.vars.get(&var) {
            Some(VarDef::Inode { dev, ino, .. }) => Some((*dev, *ino)),
            Some(VarDef::File { dev, ino, .. }) => Some((*dev, *ino)),
            _ => None,
        };
        let log = undo_logs.entry(ve).or_insert_with(|| {
            ve::supervise::read_undo(&ve::supervise::undo_path(&versions, ve)).unwrap_or_default()
        });
        // The VE's first entry for this file: its state before that VE.
        let mut entry = identity.and_then(|(d, i)| {
            log.iter()
                .find(|u| {
                    u.dev == d && u.ino == i && matches!(u.what.as_str(), "content" | "created")
                })
                .cloned()
        });
        // Renamed since (in the same storage directory): the fix applies at its name now, the
        // last name the journal bound it to.
        let mut renamed_from = None;
        if let Some(u) = entry.as_mut() {
            let now = loaded
                .names
                .iter()
                .filter(|n| n.var == var && n.store.is_some())
                .max_by_key(|n| n.time_ns);
            if let Some(n) = now.filter(|n| n.bound) {
                let was = format!("{}/{}", u.storage.trim_end_matches('/'), u.rel);
                let store_name = n.store.as_deref().unwrap_or_default();
                let prefix = format!("{}/", u.storage.trim_end_matches('/'));
                if store_name != was {
                    if let Some(rel) = store_name.strip_prefix(&prefix) {
                        u.rel = rel.to_string();
                        renamed_from = Some(was);
                    }
                }
            }
        }
        // Is it a file of the VE's own dirties? Those are quarantined with the VE.
        let in_storage = loaded
            .names
            .iter()
            .any(|n| n.var == var && n.store.is_some());
        if !in_storage && entry.is_none() {
            continue;
        }
        let mut lost: BTreeMap<u64, LaterChange> = BTreeMap::new();
        for a in &loaded.ats {
            if a.dst == var
                && a.ve != ve
                && a.time_ns > first
                && writes(a.op)
                && a.status == model::at::Status::Committed
            {
                lost.entry(a.ve).or_insert(LaterChange {
                    ve: a.ve,
                    first_ns: a.time_ns,
                    contaminated: bad_ves.contains(&a.ve),
                });
            }
        }
        let (action, clean, problem, path) = match &entry {
            Some(u) if u.what == "content" => (
                "restore",
                u.object.clone(),
                None,
                Some(format!("{}/{}", u.storage.trim_end_matches('/'), u.rel)),
            ),
            Some(u) => (
                "remove",
                None,
                None,
                Some(format!("{}/{}", u.storage.trim_end_matches('/'), u.rel)),
            ),
            None => (
                "none",
                None,
                Some(format!(
                    "VE {ve} kept no pre-image of it (its app's policy has no [recovery] preimages = true)"
                )),
                None,
            ),
        };
        files.push(FileFix {
            file: label,
            path,
            contaminated_by: ve,
            first_ns: first,
            action,
            clean,
            lost_changes: lost.into_values().collect(),
            renamed_from,
            problem,
            result: "planned".into(),
            undo: entry,
        });
    }
    let mut ves = vec![];
    for ve in bad_ves {
        let row = store.catalog.ve(model::VeId(ve))?;
        let (app, state) = row
            .as_ref()
            .map(|r| (r.app.clone(), store::meta::effective_state(r)))
            .unwrap_or_default();
        ves.push(VeFix {
            ve,
            app,
            action: if state == "running" || state == "creating" {
                "end it first"
            } else {
                "quarantine"
            },
            state,
            result: "planned".into(),
        });
    }
    Ok(Plan {
        from: from.to_string(),
        at_ns,
        files,
        ves,
        complete: answer.complete(),
        applied: false,
        unjournaled: None,
    })
}

/// Carries out `plan`: every step idempotent, the recovery journal rewritten after each.
pub fn apply(store: &Store, plan: &mut Plan) -> Result<()> {
    let versions = store.layout.versions();
    let rdir = versions.join("recover");
    std::fs::create_dir_all(&rdir).ctx(|| format!("create {}", rdir.display()))?;
    let id = blake3::hash(format!("{}@{:?}", plan.from, plan.at_ns).as_bytes()).to_hex()[..16]
        .to_string();
    let journal = rdir.join(format!("{id}.json"));
    plan.applied = true;
    let save = |p: &Plan| -> Result<()> {
        crate::atomic::write_file(&journal, &serde_json::to_vec_pretty(p).unwrap_or_default())
            .ctx(|| format!("write {}", journal.display()))
    };
    save(plan)?;
    let objects = versions.join("objects");
    for i in 0..plan.files.len() {
        let f = &plan.files[i];
        let result = match (&f.undo, f.action) {
            (Some(u), "restore" | "remove") => {
                let meta = store.ve_meta(model::VeId(f.contaminated_by));
                let dirs: Vec<(String, std::path::PathBuf)> = meta
                    .map(|m| crate::abort::storage_dirs(&m))
                    .unwrap_or_default();
                let dir = |s: &str| dirs.iter().find(|(n, _)| n == s).map(|(_, d)| d.clone());
                match crate::abort::apply_undo(u, &objects, &dir) {
                    Ok(true) => "done".to_string(),
                    Ok(false) => "already".to_string(),
                    Err(e) => format!("failed: {e}"),
                }
            }
            _ => "skipped: no pre-image".to_string(),
        };
        plan.files[i].result = result;
        save(plan)?;
    }
    let by = format!("recover {}", plan.from);
    let done: Vec<record::Restore> = plan
        .files
        .iter()
        .filter(|f| f.result == "done")
        .filter_map(|f| {
            f.undo
                .as_ref()
                .map(|u| crate::abort::restore_of(u, f.action, &by, f.contaminated_by))
        })
        .collect();
    plan.unjournaled = crate::abort::journal(store, done);
    for i in 0..plan.ves.len() {
        let v = &plan.ves[i];
        let result = if v.action == "quarantine" {
            let marker = store
                .layout
                .meta(model::VeId(v.ve))
                .join("quarantined.json");
            if marker.exists() {
                "already".to_string()
            } else {
                match crate::atomic::write_file(
                    &marker,
                    &serde_json::to_vec_pretty(
                        &serde_json::json!({"from": plan.from, "recovery": id}),
                    )
                    .unwrap_or_default(),
                ) {
                    Ok(()) => "done".into(),
                    Err(e) => format!("failed: {e}"),
                }
            }
        } else {
            "skipped: still running".into()
        };
        plan.ves[i].result = result;
        save(plan)?;
    }
    Ok(())
}
