//! The recorder's whole API: [`Request`] and [`Response`], one JSON object per line over a
//! Unix socket that only root can open.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    Ping,
    /// Start recording cgroup `cgroup_id` as VE `ve`.
    Watch {
        cgroup_id: u64,
        ve: u64,
        /// The host tid of the VE's init, whose own system calls are not recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<u32>,
        /// The directories inside the VE that reach outside it (persistent, shared); with
        /// them, failed lookups elsewhere in its file system are counted, not recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outside: Option<Vec<String>>,
    },
    /// Stop recording it, after everything it did is durable in the journal.
    Unwatch {
        cgroup_id: u64,
    },
    Stats,
    /// Who the daemon is: its pid, its binary, how many VEs it watches.
    Status,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Status {
        pid: u32,
        /// (device, inode) of the daemon's executable: a rebuilt or upgraded jcs differs.
        exe: (u64, u64),
        watched: u64,
    },
    Stats {
        seen: u64,
        skipped: u64,
        emitted: u64,
        lost: u64,
    },
    Error {
        message: String,
    },
}

/// The recorder's socket in the store at `home`.
pub fn socket_path(home: &Path) -> PathBuf {
    home.join("daemon.sock")
}

/// (device, inode) of this process's executable.
pub fn own_exe() -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/exe")
        .map(|m| (m.dev(), m.ino()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_is_one_json_object_per_message() {
        let r = Request::Watch {
            cgroup_id: 9,
            ve: 3,
            init: None,
            outside: None,
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(j, r#"{"request":"watch","cgroup_id":9,"ve":3}"#);
        assert_eq!(serde_json::from_str::<Request>(&j).unwrap(), r);
        let e = Response::Error {
            message: "x".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"response":"error","message":"x"}"#
        );
    }
}
