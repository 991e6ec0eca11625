//! What the store keeps about each VE outside the catalog: `ve/N/meta/ve.json`, and whether
//! the `jcs run` that owns a VE is still alive.

use crate::catalog::VeRow;
use model::{Limits, NetMode};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What `meta/ve.json` records about a VE: enough to read its dirties back later.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VeMeta {
    pub id: u64,
    pub app: String,
    pub app_version: u32,
    pub kind: String,
    pub argv: Vec<String>,
    /// Read-only branches, highest first: (label, host directory).
    pub lowers: Vec<(String, PathBuf)>,
    pub upper: PathBuf,
    /// Storage mounts: (`persist` or `shared`, host directory, path inside the VE).
    pub storage: Vec<(String, PathBuf, String)>,
    pub net: NetMode,
    pub limits: Limits,
    pub cgroup_id: Option<u64>,
    /// Host pid of the VE's init (JCS's own code; a restarted daemon excludes its calls).
    #[serde(default)]
    pub init_pid: Option<i32>,
    /// `--disk`: the image holding the dirties (mounted on the parent of `upper` while the VE
    /// runs, and read-only by `jcs inspect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_image: Option<PathBuf>,
    /// Files JCS wrote into the dirties before the VE started (path inside the VE, sha256 of
    /// what it wrote): `/etc/hosts`, naming the VE. `jcs inspect` reports them only if the VE
    /// changed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generated: Vec<(String, String)>,
}

pub fn pid_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime), counted after the command name's closing parenthesis.
    s.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether the `jcs run` that owns a VE is still alive.
pub fn owner_alive(row: &VeRow) -> bool {
    match (row.pid, row.pid_start) {
        (Some(p), Some(st)) => pid_start_time(p) == Some(st),
        _ => false,
    }
}

/// The state to show: a `running` VE whose owner died is `lost`.
pub fn effective_state(row: &VeRow) -> String {
    if (row.state == "running" || row.state == "creating") && !owner_alive(row) {
        "lost".into()
    } else {
        row.state.clone()
    }
}
