//! A process-wide timeline of named points (`JCS_TIMING=1`): where the time of one `jcs run`
//! goes. The CLI prints it at exit.

use std::sync::{LazyLock, Mutex};
use std::time::Instant;

/// When this process started (forced by the CLI first thing).
pub static START: LazyLock<Instant> = LazyLock::new(Instant::now);

static MARKS: Mutex<Vec<(&'static str, u64)>> = Mutex::new(Vec::new());

/// Marks a point on this process's timeline when `JCS_TIMING` is set.
pub fn mark(what: &'static str) {
    if std::env::var_os("JCS_TIMING").is_some() {
        if let Ok(mut v) = MARKS.lock() {
            v.push((what, START.elapsed().as_micros() as u64));
        }
    }
}

/// The points marked so far: (what, microseconds since the start).
pub fn marks() -> Vec<(&'static str, u64)> {
    MARKS.lock().map(|v| v.clone()).unwrap_or_default()
}

/// Records the start phases of VE `ve` (from `ve::launch`) on the timeline's side list.
pub fn phase(ve: u64, what: &'static str, us: u64) {
    if std::env::var_os("JCS_TIMING").is_some() {
        if let Ok(mut v) = PHASES.lock() {
            v.push((ve, what, us));
        }
    }
}

static PHASES: Mutex<Vec<(u64, &'static str, u64)>> = Mutex::new(Vec::new());

/// The VE start phases recorded: (VE, phase, microseconds).
pub fn phases() -> Vec<(u64, &'static str, u64)> {
    PHASES.lock().map(|v| v.clone()).unwrap_or_default()
}
