//! Cgroups of VEs: one cgroup2 directory per VE (its inode is the cgroup id the monitor filters
//! on) plus the memory and pids limits, on pure cgroup2 hosts and on hybrid hosts (v1
//! controllers, cgroup2 at `/sys/fs/cgroup/unified` for tracking only).
//!
//! The layout is detected from `/proc/self/mountinfo` text (pure); all file operations go
//! through [`Fs`].

use crate::fsops::Fs;
use model::Limits;
use serde::Serialize;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The parent directory of every VE cgroup, in each hierarchy.
pub const PARENT: &str = "jcs";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup2 file system is mounted (looked for a cgroup2 entry in {0})")]
    NoCgroup2(String),
    #[error("no {0} controller: it is neither bound to a cgroup v1 hierarchy nor enabled in cgroup2 at {1}")]
    NoController(&'static str, PathBuf),
    #[error("create cgroup {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("set {file} of cgroup {path} to {value}: {source}")]
    Limit {
        path: PathBuf,
        file: &'static str,
        value: String,
        source: io::Error,
    },
    #[error("move pid {pid} into cgroup {path}: {source}")]
    Join {
        pid: i32,
        path: PathBuf,
        source: io::Error,
    },
    #[error("kill the processes of cgroup {path}: {source}")]
    Kill { path: PathBuf, source: io::Error },
    #[error("remove cgroup {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

/// Where the cgroup hierarchies JCS uses are mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CgroupLayout {
    /// Pure cgroup2: memory and pids are cgroup2 controllers.
    Unified { root: PathBuf },
    /// cgroup2 for tracking, memory and pids (and cpu, when mounted) from cgroup v1
    /// hierarchies.
    Hybrid {
        v2: PathBuf,
        memory: PathBuf,
        pids: PathBuf,
        #[serde(skip_serializing_if = "Option::is_none")]
        cpu: Option<PathBuf>,
    },
}

/// Decodes the `\040`-style escapes of mountinfo fields.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One cgroup mount: mount point, file system type, super-block options.
fn cgroup_mounts(mountinfo: &str) -> Vec<(PathBuf, String, Vec<String>)> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let fstype = post[0];
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let opts = post[2].split(',').map(str::to_string).collect();
        out.push((PathBuf::from(unescape(pre[4])), fstype.to_string(), opts));
    }
    out
}

impl CgroupLayout {
    /// Detects the layout from the text of `/proc/self/mountinfo`.
    pub fn detect(mountinfo: &str, source: &str) -> Result<CgroupLayout, CgroupError> {
        let mounts = cgroup_mounts(mountinfo);
        let v2 = mounts
            .iter()
            .filter(|(_, t, _)| t == "cgroup2")
            .map(|(p, _, _)| p.clone())
            // Prefer the conventional locations when a cgroup2 fs is mounted more than once.
            .min_by_key(|p| match p.to_str() {
                Some("/sys/fs/cgroup") => 0,
                Some("/sys/fs/cgroup/unified") => 1,
                _ => 2,
            })
            .ok_or_else(|| CgroupError::NoCgroup2(source.to_string()))?;
        let v1 = |ctl: &str| {
            mounts
                .iter()
                .find(|(_, t, o)| t == "cgroup" && o.iter().any(|x| x == ctl))
                .map(|(p, _, _)| p.clone())
        };
        match (v1("memory"), v1("pids")) {
            (Some(memory), Some(pids)) => Ok(CgroupLayout::Hybrid {
                v2,
                memory,
                pids,
                cpu: v1("cpu"),
            }),
            (None, None) => Ok(CgroupLayout::Unified { root: v2 }),
            (None, Some(_)) => Err(CgroupError::NoController("memory", v2)),
            (Some(_), None) => Err(CgroupError::NoController("pids", v2)),
        }
    }

    /// Reads `/proc/self/mountinfo` and detects the layout.
    pub fn detect_host(proc_root: &Path) -> Result<CgroupLayout, CgroupError> {
        let p = proc_root.join("self/mountinfo");
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        CgroupLayout::detect(&text, &p.display().to_string())
    }

    /// The cgroup2 mount point.
    pub fn v2_root(&self) -> &Path {
        match self {
            CgroupLayout::Unified { root } => root,
            CgroupLayout::Hybrid { v2, .. } => v2,
        }
    }
}

/// The cgroup of one VE, in every hierarchy it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct VeCgroup {
    /// The cgroup2 directory (tracking, and limits on pure cgroup2 hosts).
    pub v2: PathBuf,
    /// cgroup v1 directories (hybrid hosts): memory, pids.
    pub v1: Vec<PathBuf>,
    /// The cgroup id (`bpf_get_current_cgroup_id()`): the inode of the cgroup2 directory.
    pub id: u64,
}

fn mkdir(fs: &dyn Fs, p: &Path) -> Result<(), CgroupError> {
    fs.create_dir(p).map_err(|source| CgroupError::Create {
        path: p.to_path_buf(),
        source,
    })
}

fn set(fs: &dyn Fs, dir: &Path, file: &'static str, value: String) -> Result<(), CgroupError> {
    fs.write(&dir.join(file), &value)
        .map_err(|source| CgroupError::Limit {
            path: dir.to_path_buf(),
            file,
            value,
            source,
        })
}

impl VeCgroup {
    /// Creates the VE's cgroup `jcs/NAME` and sets its limits. On error nothing is left behind.
    pub fn create(
        fs: &dyn Fs,
        layout: &CgroupLayout,
        name: &str,
        limits: &Limits,
    ) -> Result<VeCgroup, CgroupError> {
        let mut created: Vec<PathBuf> = Vec::new();
        let r = Self::create_inner(fs, layout, name, limits, &mut created);
        if r.is_err() {
            for d in created.iter().rev() {
                let _ = fs.remove_dir(d);
            }
        }
        r
    }

    fn create_inner(
        fs: &dyn Fs,
        layout: &CgroupLayout,
        name: &str,
        limits: &Limits,
        created: &mut Vec<PathBuf>,
    ) -> Result<VeCgroup, CgroupError> {
        let mut leaf = |fs: &dyn Fs, root: &Path| -> Result<PathBuf, CgroupError> {
            let parent = root.join(PARENT);
            mkdir(fs, &parent)?;
            let dir = parent.join(name);
            if fs.exists(&dir) {
                return Err(CgroupError::Create {
                    path: dir,
                    source: io::Error::from(io::ErrorKind::AlreadyExists),
                });
            }
            mkdir(fs, &dir)?;
            created.push(dir.clone());
            Ok(dir)
        };
        match layout {
            CgroupLayout::Unified { root } => {
                // Delegate memory and pids (and cpu for a CPU limit) down to jcs/NAME (no-op
                // when already enabled).
                let enable = if limits.cpu_millis.is_some() {
                    "+memory +pids +cpu"
                } else {
                    "+memory +pids"
                }
                .to_string();
                set(fs, root, "cgroup.subtree_control", enable.clone())
                    .map_err(|_| CgroupError::NoController("memory, pids or cpu", root.clone()))?;
                mkdir(fs, &root.join(PARENT))?;
                set(fs, &root.join(PARENT), "cgroup.subtree_control", enable)?;
                let dir = leaf(fs, root)?;
                set(fs, &dir, "memory.max", limits.memory_bytes.to_string())?;
                set(fs, &dir, "pids.max", limits.pids.to_string())?;
                if let Some(q) = limits.cpu_quota_us() {
                    set(
                        fs,
                        &dir,
                        "cpu.max",
                        format!("{q} {}", model::limits::CPU_PERIOD_US),
                    )?;
                }
                let id = fs.ino(&dir).map_err(|source| CgroupError::Create {
                    path: dir.clone(),
                    source,
                })?;
                Ok(VeCgroup {
                    v2: dir,
                    v1: vec![],
                    id,
                })
            }
            CgroupLayout::Hybrid {
                v2,
                memory,
                pids,
                cpu,
            } => {
                let v2dir = leaf(fs, v2)?;
                let mdir = leaf(fs, memory)?;
                set(
                    fs,
                    &mdir,
                    "memory.limit_in_bytes",
                    limits.memory_bytes.to_string(),
                )?;
                let pdir = leaf(fs, pids)?;
                set(fs, &pdir, "pids.max", limits.pids.to_string())?;
                let mut v1 = vec![mdir, pdir];
                if let Some(q) = limits.cpu_quota_us() {
                    let cpu = cpu
                        .as_ref()
                        .ok_or_else(|| CgroupError::NoController("cpu", v2.clone()))?;
                    let cdir = leaf(fs, cpu)?;
                    let period = model::limits::CPU_PERIOD_US.to_string();
                    set(fs, &cdir, "cpu.cfs_period_us", period)?;
                    set(fs, &cdir, "cpu.cfs_quota_us", q.to_string())?;
                    v1.push(cdir);
                }
                let id = fs.ino(&v2dir).map_err(|source| CgroupError::Create {
                    path: v2dir.clone(),
                    source,
                })?;
                Ok(VeCgroup { v2: v2dir, v1, id })
            }
        }
    }

    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.v2).chain(self.v1.iter())
    }

    /// Moves `pid` into the VE's cgroup in every hierarchy.
    pub fn add(&self, fs: &dyn Fs, pid: i32) -> Result<(), CgroupError> {
        for d in self.dirs() {
            Self::join(fs, d, pid)?;
        }
        Ok(())
    }

    /// Moves `pid` into the VE's cgroup2 directory only (the v1 hierarchies are joined by the
    /// process itself, see `launch`).
    pub fn join_v2(&self, fs: &dyn Fs, pid: i32) -> Result<(), CgroupError> {
        Self::join(fs, &self.v2, pid)
    }

    fn join(fs: &dyn Fs, d: &Path, pid: i32) -> Result<(), CgroupError> {
        fs.write(&d.join("cgroup.procs"), &pid.to_string())
            .map_err(|source| CgroupError::Join {
                pid,
                path: d.to_path_buf(),
                source,
            })
    }

    /// The pids currently in the cgroup (cgroup2 view).
    pub fn pids(&self, fs: &dyn Fs) -> Vec<i32> {
        fs.read(&self.v2.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills every process of the VE: `cgroup.kill` where the kernel has it, otherwise SIGKILL
    /// to each listed pid until the cgroup is empty.
    pub fn kill(&self, fs: &dyn Fs) -> Result<(), CgroupError> {
        let killfile = self.v2.join("cgroup.kill");
        if fs.exists(&killfile) {
            return fs
                .write(&killfile, "1")
                .map_err(|source| CgroupError::Kill {
                    path: self.v2.clone(),
                    source,
                });
        }
        for _ in 0..100 {
            let pids = self.pids(fs);
            if pids.is_empty() {
                return Ok(());
            }
            for p in pids {
                // SAFETY: kill(2) with a pid read from our own cgroup and a constant signal.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(CgroupError::Kill {
            path: self.v2.clone(),
            source: io::Error::other("processes survive SIGKILL"),
        })
    }

    /// Removes the cgroup directories, waiting up to `timeout` for exiting processes to leave.
    pub fn remove(&self, fs: &dyn Fs, timeout: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + timeout;
        for d in self.dirs() {
            loop {
                match fs.remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(source) => {
                        return Err(CgroupError::Remove {
                            path: d.clone(),
                            source,
                        })
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsops::RecordingFs;

    const HYBRID: &str = "\
25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
28 25 0:26 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
29 25 0:27 / /sys/fs/cgroup/cpu\\040x rw - cgroup cgroup rw,cpu
";
    const UNIFIED: &str = "\
25 1 0:23 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn detects_hybrid() {
        assert_eq!(
            CgroupLayout::detect(HYBRID, "t").unwrap(),
            CgroupLayout::Hybrid {
                v2: "/sys/fs/cgroup/unified".into(),
                memory: "/sys/fs/cgroup/memory".into(),
                pids: "/sys/fs/cgroup/pids".into(),
                cpu: Some("/sys/fs/cgroup/cpu x".into()),
            }
        );
        assert_eq!(
            cgroup_mounts(HYBRID)[3].0,
            PathBuf::from("/sys/fs/cgroup/cpu x")
        );
    }

    #[test]
    fn detects_unified_and_missing() {
        assert_eq!(
            CgroupLayout::detect(UNIFIED, "t").unwrap(),
            CgroupLayout::Unified {
                root: "/sys/fs/cgroup".into()
            }
        );
        assert!(matches!(
            CgroupLayout::detect("", "t"),
            Err(CgroupError::NoCgroup2(_))
        ));
        let only_pids = format!("{UNIFIED}28 25 0:26 / /x/pids rw - cgroup cgroup rw,pids\n");
        assert!(matches!(
            CgroupLayout::detect(&only_pids, "t"),
            Err(CgroupError::NoController("memory", _))
        ));
    }

    #[test]
    fn hybrid_create_sequence() {
        let fs = RecordingFs::default();
        let l = CgroupLayout::detect(HYBRID, "t").unwrap();
        let cg = VeCgroup::create(
            &fs,
            &l,
            "s-7",
            &Limits {
                memory_bytes: 1000,
                pids: 9,
                cpu_millis: None,
                disk_bytes: None,
            },
        )
        .unwrap();
        assert_eq!(cg.id, 4242);
        assert_eq!(
            fs.ops(),
            vec![
                "mkdir /sys/fs/cgroup/unified/jcs",
                "mkdir /sys/fs/cgroup/unified/jcs/s-7",
                "mkdir /sys/fs/cgroup/memory/jcs",
                "mkdir /sys/fs/cgroup/memory/jcs/s-7",
                "write /sys/fs/cgroup/memory/jcs/s-7/memory.limit_in_bytes 1000",
                "mkdir /sys/fs/cgroup/pids/jcs",
                "mkdir /sys/fs/cgroup/pids/jcs/s-7",
                "write /sys/fs/cgroup/pids/jcs/s-7/pids.max 9",
            ]
        );
        cg.add(&fs, 55).unwrap();
        assert_eq!(fs.ops().len(), 11);
        cg.join_v2(&fs, 56).unwrap();
        assert_eq!(fs.ops().len(), 12);
        assert!(fs.ops()[11].ends_with("unified/jcs/s-7/cgroup.procs 56"));
        assert!(fs.ops()[8].ends_with("unified/jcs/s-7/cgroup.procs 55"));
    }

    #[test]
    fn unified_create_sequence() {
        let fs = RecordingFs::default();
        let l = CgroupLayout::detect(UNIFIED, "t").unwrap();
        let cg = VeCgroup::create(&fs, &l, "s-1", &Limits::default()).unwrap();
        assert!(cg.v1.is_empty());
        let ops = fs.ops();
        assert_eq!(
            ops[0],
            "write /sys/fs/cgroup/cgroup.subtree_control +memory +pids"
        );
        assert!(ops.contains(&format!(
            "write /sys/fs/cgroup/jcs/s-1/memory.max {}",
            1u64 << 30
        )));
        assert!(ops.contains(&"write /sys/fs/cgroup/jcs/s-1/pids.max 1024".to_string()));
    }

    #[test]
    fn existing_cgroup_refused_and_cleaned() {
        let fs = RecordingFs::default();
        fs.dirs
            .borrow_mut()
            .push("/sys/fs/cgroup/pids/jcs/s-2".into());
        let l = CgroupLayout::detect(HYBRID, "t").unwrap();
        assert!(VeCgroup::create(&fs, &l, "s-2", &Limits::default()).is_err());
        let ops = fs.ops();
        // What was created before the failure is removed again, in reverse order.
        assert_eq!(
            &ops[ops.len() - 2..],
            &[
                "rmdir /sys/fs/cgroup/memory/jcs/s-2",
                "rmdir /sys/fs/cgroup/unified/jcs/s-2"
            ]
        );
    }
}
