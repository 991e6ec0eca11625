//! `jcs abort VE`: the VE's work is one transaction, aborted — every file of persistent or
//! shared storage it changed goes back to what it was before (from the pre-images its
//! supervisor kept, `ve::supervise`): contents restored in place (same inode, so hard links
//! see it), with mode, owner and times; what it created removed; what it deleted recreated;
//! what it renamed renamed back. A file changed since by another VE (its undo log names it),
//! or modified after the VE ended, is a conflict: reported, and left alone unless `force`.
//!
//! A running VE is ended first (its cgroup killed, its `jcs run` left to tear it down).
//!
//! Idempotent: every step first checks whether it is done already, so an abort cut short
//! (killed) completes when run again. Host-side, nothing follows a symbolic link the VE left
//! (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` from the storage directory).

use crate::{refuse, Context, Result};
use serde::Serialize;
use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use store::Store;
use ve::supervise::Undo;

/// One step of an abort.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Step {
    /// `restore` (content and attributes), `restore attributes` (mode, owner, times),
    /// `remove` (the VE created it), `recreate` (the VE deleted it), `rename` (back to its name
    /// before the VE).
    pub action: &'static str,
    /// The store-level name: `persist:APP:/data/report.txt`.
    pub file: String,
    /// `rename`: the name it has now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Why the step is not safe: the file changed after this VE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    /// `done`, `already` (nothing to do), `skipped` (a conflict, without --force), `failed: …`,
    /// or `planned` (--dry-run).
    pub result: String,
    #[serde(skip)]
    undo: Undo,
}

/// The answer of [`abort`].
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Aborted {
    pub ve: u64,
    pub dry_run: bool,
    /// The VE was running: it was ended first.
    pub killed: bool,
    /// Why the journal could not take the restores (None: journaled, or nothing was done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unjournaled: Option<String>,
    pub steps: Vec<Step>,
    pub conflicts: usize,
    pub failed: usize,
}

/// Aborts VE `id` (or only plans it, `dry_run`).
pub fn abort(store: &Store, id: model::VeId, dry_run: bool, force: bool) -> Result<Aborted> {
    let row = store
        .catalog
        .ve(id)?
        .ctx(|| format!("no VE {id} (see jcs ps --all)"))?;
    let state = store::meta::effective_state(&row);
    let running = state == "running" || state == "creating";
    if running && dry_run {
        refuse!("VE {id} is running: an abort would end it first (without --dry-run)");
    }
    // A running VE is ended first — its work is the transaction aborted, whole — but only
    // when there is something to undo: its app keeps pre-images.
    let keeps = model::Name::parse(&row.app)
        .ok()
        .and_then(|n| {
            crate::app::policy(store, &n, row.app_version)
                .ok()
                .flatten()
        })
        .is_some_and(|(_, p)| p.preimages);
    if running && !keeps {
        refuse!(
            "VE {id} is running and its app keeps no pre-images ([recovery] preimages = true in its policy): there would be nothing to undo"
        );
    }
    let killed = running && crate::ves::end(store, id, std::time::Duration::from_secs(20))?;
    let row = if killed {
        store.catalog.ve(id)?.unwrap_or(row)
    } else {
        row
    };
    let versions = store.layout.versions();
    let undo = ve::supervise::read_undo(&ve::supervise::undo_path(&versions, id.0))
        .ctx(|| format!("read the undo log of VE {id}"))?;
    if undo.is_empty() {
        let kept = store
            .ve_meta(id)
            .map(|m| !m.storage.is_empty())
            .unwrap_or(false);
        refuse!(
            "VE {id} has no undo log: {}",
            if kept {
                "it changed nothing in persistent or shared storage, or its app keeps no pre-images ([recovery] preimages = true in its policy)"
            } else {
                "it has no persistent or shared storage"
            }
        );
    }
    let meta = store
        .ve_meta(id)
        .ctx(|| format!("VE {id} has no ve.json"))?;
    let dirs = storage_dirs(&meta);
    // Later VEs that changed the same files: their undo logs name them.
    let mut later: Vec<(u64, Vec<Undo>)> = vec![];
    if let Ok(rd) = std::fs::read_dir(versions.join("undo")) {
        for e in rd.flatten() {
            let n = e.file_name();
            let Some(v) = n
                .to_str()
                .and_then(|s| s.strip_suffix(".jsonl"))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if v > id.0 {
                later.push((v, ve::supervise::read_undo(&e.path()).unwrap_or_default()));
            }
        }
    }
    let ended_ns = row.ended_ms.map(|ms| ms * 1_000_000).unwrap_or(i64::MAX);
    let mut steps = vec![];
    for u in undo.iter().rev() {
        let dir = |storage: &str| {
            dirs.iter()
                .find(|(n, _)| n == storage)
                .map(|(_, d)| d.clone())
        };
        let (action, name, from) = match u.what.as_str() {
            "content" => ("restore", (u.storage.clone(), u.rel.clone()), None),
            "attrs" => (
                "restore attributes",
                (u.storage.clone(), u.rel.clone()),
                None,
            ),
            "created" => ("remove", (u.storage.clone(), u.rel.clone()), None),
            "deleted" => ("recreate", (u.storage.clone(), u.rel.clone()), None),
            "renamed" => (
                "rename",
                (u.storage.clone(), u.rel.clone()),
                Some((
                    u.to_storage.clone().unwrap_or_default(),
                    u.to_rel.clone().unwrap_or_default(),
                )),
            ),
            _ => continue,
        };
        let label = |(s, r): &(String, String)| format!("{}/{}", s.trim_end_matches('/'), r);
        // What this step touches now: the file's current name.
        let now = from.clone().unwrap_or_else(|| name.clone());
        let mut conflict = later
            .iter()
            .find(|(_, us)| {
                us.iter().any(|l| {
                    (l.storage == now.0 && l.rel == now.1)
                        || (l.to_storage.as_deref() == Some(&now.0)
                            && l.to_rel.as_deref() == Some(&now.1))
                })
            })
            .map(|(v, _)| format!("VE {v} changed it later"));
        if conflict.is_none() {
            if let Some(d) = dir(&now.0) {
                if let Ok((p, n)) = parent_beneath(&d, &now.1) {
                    if let Ok(st) =
                        rustix::fs::statat(&p, n.as_c_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                    {
                        let m = st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64;
                        // A second of slack: the VE's end is recorded after its last write.
                        if m > ended_ns + 1_000_000_000 && u.what != "deleted" {
                            conflict = Some("modified after the VE ended".into());
                        }
                    }
                }
            }
        }
        steps.push(Step {
            action,
            file: label(&name),
            from: from.as_ref().map(label),
            conflict,
            result: if dry_run {
                "planned".into()
            } else {
                String::new()
            },
            undo: u.clone(),
        });
    }
    let conflicts = steps.iter().filter(|s| s.conflict.is_some()).count();
    let mut failed = 0;
    let mut unjournaled = None;
    if !dry_run {
        for s in &mut steps {
            if s.conflict.is_some() && !force {
                s.result = "skipped".into();
                continue;
            }
            let dir = |storage: &str| {
                dirs.iter()
                    .find(|(n, _)| n == storage)
                    .map(|(_, d)| d.clone())
            };
            s.result = match apply_undo(&s.undo, &versions.join("objects"), &dir) {
                Ok(true) => "done".into(),
                Ok(false) => "already".into(),
                Err(e) => {
                    failed += 1;
                    format!("failed: {e}")
                }
            };
        }
        let done: Vec<record::Restore> = steps
            .iter()
            .filter(|s| s.result == "done")
            .map(|s| restore_of(&s.undo, s.action, &format!("abort ve {id}"), id.0))
            .collect();
        unjournaled = journal(store, done);
        let record = store.layout.meta(id).join("aborted.json");
        let _ = std::fs::write(
            &record,
            serde_json::to_vec_pretty(&serde_json::json!({
                "time_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
                "force": force,
                "steps": steps,
            }))
            .unwrap_or_default(),
        );
    }
    Ok(Aborted {
        ve: id.0,
        dry_run,
        killed,
        unjournaled,
        steps,
        conflicts,
        failed,
    })
}

/// The directory that holds `rel` below `root` (no symbolic link followed, never above
/// `root`), and its last component.
fn parent_beneath(root: &Path, rel: &str) -> io::Result<(OwnedFd, CString)> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let (dir, name) = match rel.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", rel),
    };
    let rootfd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = if dir.is_empty() {
        rootfd
    } else {
        rustix::fs::openat2(
            &rootfd,
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )?
    };
    Ok((
        fd,
        CString::new(name).map_err(|_| io::Error::from(rustix::io::Errno::INVAL))?,
    ))
}

/// The journal record of one undone entry.
pub(crate) fn restore_of(u: &Undo, action: &str, by: &str, ve: u64) -> record::Restore {
    record::Restore {
        time_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
        by: by.into(),
        ve,
        file: format!("{}/{}", u.storage.trim_end_matches('/'), u.rel),
        action: action.into(),
        object: u.object.clone(),
        dev: u.dev,
        ino: u.ino,
    }
}

/// Journals what was put back (through the recorder, started if none runs). Some(why) when
/// it could not: the files are back either way, `ve/N/meta/aborted.json` says so.
pub(crate) fn journal(store: &Store, restores: Vec<record::Restore>) -> Option<String> {
    if restores.is_empty() {
        return None;
    }
    let r = recorder::client::Client::connect_or_start(store.layout.root())
        .map_err(|e| e.to_string())
        .and_then(|mut c| {
            c.call(&recorder::protocol::Request::Restored { restores })
                .map_err(|e| e.to_string())
        });
    match r {
        Ok(recorder::protocol::Response::Ok) => None,
        Ok(recorder::protocol::Response::Error { message }) => Some(message),
        Ok(other) => Some(format!("unexpected answer {other:?}")),
        Err(e) => Some(e),
    }
}

/// Each storage directory of a VE by its store-level name, with its host directory.
pub(crate) fn storage_dirs(meta: &store::VeMeta) -> Vec<(String, PathBuf)> {
    meta.storage
        .iter()
        .map(|(kind, dir, inner)| {
            (
                crate::ves::store_name(&meta.app, kind, dir, inner),
                dir.clone(),
            )
        })
        .collect()
}

/// Undoes one entry of an undo log; Ok(false) when it was undone already.
pub(crate) fn apply_undo(
    u: &Undo,
    objects: &Path,
    dir: &dyn Fn(&str) -> Option<PathBuf>,
) -> io::Result<bool> {
    use rustix::fs::{AtFlags, FileType, Mode};
    let root =
        dir(&u.storage).ok_or_else(|| io::Error::other(format!("no storage {}", u.storage)))?;
    let (p, name) = parent_beneath(&root, &u.rel)?;
    let cur = rustix::fs::statat(&p, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
    let is = |t: FileType| {
        cur.as_ref()
            .is_some_and(|s| FileType::from_raw_mode(s.st_mode) == t)
    };
    match u.what.as_str() {
        "content" => {
            let obj = u
                .object
                .as_deref()
                .ok_or_else(|| io::Error::other("no pre-image"))?;
            if cur.is_some() && !is(FileType::RegularFile) {
                return Err(io::Error::other("no longer a regular file"));
            }
            if cur.is_some()
                && same_content(&p, &name, &objects.join(obj))?
                && same_attrs(cur.as_ref(), u)
            {
                return Ok(false);
            }
            write_content(&p, &name, &objects.join(obj), u)?;
            Ok(true)
        }
        "attrs" => {
            let Some(st) = cur else {
                return Err(io::Error::other("gone"));
            };
            let t = rustix::fs::Timespec {
                tv_sec: u.mtime_ns.div_euclid(1_000_000_000),
                tv_nsec: u.mtime_ns.rem_euclid(1_000_000_000),
            };
            let m = st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64;
            let link = FileType::from_raw_mode(st.st_mode) == FileType::Symlink;
            // Its extended attributes, through a descriptor of the file itself (never a
            // symbolic link's target).
            let file = match (&u.xattrs, link) {
                (Some(_), false) => Some(open_path(&p, &name)?),
                _ => None,
            };
            let xattr_path = file.as_ref().map(proc_path);
            let same_xattrs = match (&u.xattrs, &xattr_path) {
                (Some(want), Some((_, at))) => ve::supervise::read_xattrs(at) == *want,
                _ => true,
            };
            if same_attrs(Some(&st), u) && m == u.mtime_ns && same_xattrs {
                return Ok(false);
            }
            if let (Some(want), Some((_, at))) = (&u.xattrs, &xattr_path) {
                ve::supervise::write_xattrs(at, want)?;
            }
            if !link {
                rustix::fs::chmodat(
                    &p,
                    name.as_c_str(),
                    Mode::from_raw_mode(u.mode),
                    AtFlags::empty(),
                )?;
            }
            rustix::fs::chownat(
                &p,
                name.as_c_str(),
                Some(rustix::process::Uid::from_raw(u.uid)),
                Some(rustix::process::Gid::from_raw(u.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
            rustix::fs::utimensat(
                &p,
                name.as_c_str(),
                &rustix::fs::Timestamps {
                    last_access: t,
                    last_modification: t,
                },
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
            Ok(true)
        }
        "created" => match cur {
            None => Ok(false),
            Some(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                rustix::fs::unlinkat(&p, name.as_c_str(), AtFlags::REMOVEDIR)?;
                Ok(true)
            }
            Some(_) => {
                rustix::fs::unlinkat(&p, name.as_c_str(), AtFlags::empty())?;
                Ok(true)
            }
        },
        "deleted" => {
            if cur.is_some() {
                return Ok(false);
            }
            match u.kind.as_str() {
                "dir" => rustix::fs::mkdirat(&p, name.as_c_str(), Mode::from_raw_mode(u.mode))?,
                "symlink" => {
                    rustix::fs::symlinkat(u.target.as_deref().unwrap_or(""), &p, name.as_c_str())?
                }
                _ => {
                    let obj = u
                        .object
                        .as_deref()
                        .ok_or_else(|| io::Error::other("no pre-image"))?;
                    write_content(&p, &name, &objects.join(obj), u)?;
                }
            }
            if let Some(want) = u.xattrs.as_ref().filter(|x| !x.is_empty()) {
                let fd = open_path(&p, &name)?;
                ve::supervise::write_xattrs(&proc_path(&fd).1, want)?;
            }
            Ok(true)
        }
        "renamed" => {
            let to_root = dir(u.to_storage.as_deref().unwrap_or(""))
                .ok_or_else(|| io::Error::other("no storage for the new name"))?;
            let (tp, tname) = parent_beneath(&to_root, u.to_rel.as_deref().unwrap_or(""))?;
            let there = rustix::fs::statat(&tp, tname.as_c_str(), AtFlags::SYMLINK_NOFOLLOW);
            if u.exchanged {
                // Swapped back already: the file that went to the new name is at the old one.
                if cur
                    .as_ref()
                    .is_some_and(|c| (c.st_dev, c.st_ino) == (u.dev, u.ino))
                {
                    return Ok(false);
                }
                rustix::fs::renameat_with(
                    &tp,
                    tname.as_c_str(),
                    &p,
                    name.as_c_str(),
                    rustix::fs::RenameFlags::EXCHANGE,
                )?;
                return Ok(true);
            }
            if there.is_err() && cur.is_some() {
                return Ok(false); // renamed back already
            }
            rustix::fs::renameat_with(
                &tp,
                tname.as_c_str(),
                &p,
                name.as_c_str(),
                rustix::fs::RenameFlags::NOREPLACE,
            )?;
            Ok(true)
        }
        w => Err(io::Error::other(format!("unknown undo entry {w}"))),
    }
}

/// An O_PATH descriptor of `name` in `dir` itself (a symbolic link is not followed).
fn open_path(dir: &OwnedFd, name: &CString) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name.as_c_str(),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}

/// `/proc/self/fd/N` for a descriptor (valid while the descriptor is open).
fn proc_path(fd: &OwnedFd) -> (i32, CString) {
    use std::os::fd::AsRawFd;
    let n = fd.as_raw_fd();
    (
        n,
        CString::new(format!("/proc/self/fd/{n}")).expect("no NUL in a number"),
    )
}

fn same_attrs(st: Option<&rustix::fs::Stat>, u: &Undo) -> bool {
    st.is_some_and(|s| s.st_mode & 0o7777 == u.mode && s.st_uid == u.uid && s.st_gid == u.gid)
}

fn same_content(p: &OwnedFd, name: &CString, object: &Path) -> io::Result<bool> {
    let f = rustix::fs::openat(
        p,
        name.as_c_str(),
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let hash = |f: std::fs::File| -> io::Result<blake3::Hash> {
        let mut h = blake3::Hasher::new();
        h.update_reader(f)?;
        Ok(h.finalize())
    };
    Ok(hash(std::fs::File::from(f))? == hash(std::fs::File::open(object)?)?)
}

/// Writes the pre-image into the file in place (or a new file), with its mode, owner and
/// modification time.
fn write_content(p: &OwnedFd, name: &CString, object: &Path, u: &Undo) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags, Timespec, Timestamps};
    let f = rustix::fs::openat(
        p,
        name.as_c_str(),
        OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::TRUNC
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC,
        Mode::from_raw_mode(u.mode),
    )?;
    let st = rustix::fs::fstat(&f)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(io::Error::other("not a regular file"));
    }
    let mut out = std::fs::File::from(f);
    let mut src = std::fs::File::open(object)?;
    io::copy(&mut src, &mut out)?;
    out.flush()?;
    rustix::fs::fchmod(out.as_fd(), Mode::from_raw_mode(u.mode))?;
    rustix::fs::fchown(
        out.as_fd(),
        Some(rustix::process::Uid::from_raw(u.uid)),
        Some(rustix::process::Gid::from_raw(u.gid)),
    )?;
    let t = Timespec {
        tv_sec: u.mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: u.mtime_ns.rem_euclid(1_000_000_000),
    };
    rustix::fs::futimens(
        out.as_fd(),
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
    )?;
    out.sync_all()
}
