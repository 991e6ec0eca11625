//! The version store's retention (`jcs versions gc --keep AGE`): the undo logs of VEs that
//! ended before the cut-off go, and so do the objects no remaining undo log names. A VE whose
//! log is gone can no longer be aborted, and a recovery can no longer restore what it changed.

use crate::{Context, Result};
use serde::Serialize;
use std::collections::HashSet;
use store::Store;

/// What [`gc`] removed (or would, `dry_run`).
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Collected {
    /// VEs whose undo logs were removed.
    pub ves: Vec<u64>,
    pub objects: u64,
    pub bytes: u64,
    /// Objects kept (named by a remaining undo log).
    pub kept_objects: u64,
    pub dry_run: bool,
}

/// Removes the undo logs of VEs that ended before `before_ms` (ms since the epoch), then every
/// object no remaining log names.
pub fn gc(store: &Store, before_ms: i64, dry_run: bool) -> Result<Collected> {
    let versions = store.layout.versions();
    let undo_dir = versions.join("undo");
    let mut c = Collected {
        dry_run,
        ..Default::default()
    };
    let mut keep: HashSet<String> = HashSet::new();
    if let Ok(rd) = std::fs::read_dir(&undo_dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(ve) = name
                .to_str()
                .and_then(|s| s.strip_suffix(".jsonl"))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let row = store.catalog.ve(model::VeId(ve))?;
            let ended_before = row
                .as_ref()
                .and_then(|r| r.ended_ms)
                .is_some_and(|t| t < before_ms);
            if ended_before {
                c.ves.push(ve);
                if !dry_run {
                    std::fs::remove_file(e.path())
                        .ctx(|| format!("remove {}", e.path().display()))?;
                }
            } else {
                for u in ve::supervise::read_undo(&e.path()).unwrap_or_default() {
                    keep.extend(u.object);
                }
            }
        }
    }
    c.ves.sort();
    let objects = versions.join("objects");
    if let Ok(rd) = std::fs::read_dir(&objects) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(m) = e.metadata() else { continue };
            // A temporary copy a supervisor is writing (`.HASH.PID`) stays for an hour.
            let fresh = m
                .modified()
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() < 3600);
            if keep.contains(&name) || (name.starts_with('.') && fresh) {
                c.kept_objects += 1;
                continue;
            }
            c.objects += 1;
            c.bytes += m.len();
            if !dry_run {
                std::fs::remove_file(e.path()).ctx(|| format!("remove {}", e.path().display()))?;
            }
        }
    }
    Ok(c)
}
