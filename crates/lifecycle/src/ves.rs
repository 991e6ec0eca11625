//! Running VEs and looking at them: run (build, record, tear down), the integrity report,
//! removing finished VEs and collecting what dead runs left.

use crate::{refuse, Context, Result};
use model::report::{
    diff_manifests, Change, IntegrityReport, Manifest, Names, StorageChange, Touched,
};
use model::{AppSpec, Limits, NetMode, VeId};
use serde::Serialize;
use std::path::PathBuf;
use store::meta::{effective_state, owner_alive, pid_start_time};
use store::{Store, VeMeta, VeRow};
use ve::fsops::HostFs;
use ve::inspect::Lower;
use ve::launch::{Bind, Exit, HookError, Hooks, VeConfig};

/// The read-only stack of an app version: its layers from `version` down to 1, then the
/// template.
pub fn lower_stack(store: &Store, app: &AppSpec, version: u32) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = (1..=version)
        .rev()
        .map(|k| {
            (
                format!("app {} v{k}", app.name),
                store.layout.app_layer(&app.name, k),
            )
        })
        .collect();
    v.push((
        format!("template {} v{}", app.template, app.template_version),
        store.layout.template(&app.template, app.template_version),
    ));
    v
}

/// How to start one VE.
#[derive(Debug)]
pub struct Launch {
    pub app: AppSpec,
    pub version: u32,
    /// `app` or `maintenance`.
    pub kind: &'static str,
    pub argv: Vec<String>,
    pub limits: Limits,
    pub net: NetMode,
    /// The writable branch when it is not the VE's dirties (maintenance mode: the new layer).
    pub upper: Option<PathBuf>,
    /// Whether to map the app's persistent and shared storage.
    pub storage: bool,
    pub extras: Extras,
}

/// How one run goes beyond the app's settings (`jcs run`'s options; maintenance mode takes
/// the defaults).
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Descriptors after 0-2 that pass into the VE (3..3+N).
    pub preserve_fds: u32,
    /// The VE gets its own pty, proxied to this process's terminal.
    pub tty: bool,
    /// Capabilities kept beyond the default set (a mask of `ve::caps::ADDABLE`).
    pub extra_caps: u64,
    /// A new file to write the VE's id to, as soon as it has one.
    pub id_file: Option<std::path::PathBuf>,
    /// Environment variables for the app (over the defaults: PATH, HOME, TERM, …).
    pub env: Vec<(String, String)>,
    /// The app's working directory (absolute, inside the VE).
    pub workdir: Option<String>,
    /// `--user USER[:GROUP]`, resolved in the VE's /etc/passwd and /etc/group.
    pub user: Option<String>,
    /// Records the kernel dropped make the run fail (exit 122) instead of a warning.
    pub strict_recording: bool,
    /// Host directories mounted into the VE (`-v HOST:PATH[:ro]`): storage like the app's
    /// shared directories, recorded under `volume:HOST`.
    pub volumes: Vec<Volume>,
    /// TCP ports of the host side relayed to the VE's (`-p`; the VE must be on the bridge).
    pub publish: Vec<crate::publish::Publish>,
    /// `--name`: what commands may call the VE instead of its id (unique among the VEs not
    /// removed).
    pub name: Option<String>,
    /// `--stop-timeout`: after the first SIGINT, SIGTERM or SIGHUP to `jcs run` (passed to
    /// the app), how long the app has to end before the VE is killed (None: 10 s).
    pub stop_timeout: Option<std::time::Duration>,
}

/// A host directory mounted into one VE.
#[derive(Debug, Clone)]
pub struct Volume {
    /// Absolute, an existing directory (symbolic links resolved: the user named it).
    pub host: PathBuf,
    pub inner: model::InnerPath,
    pub read_only: bool,
}

impl Volume {
    /// `HOST:PATH[:ro|:rw]`, as docker's `-v` takes it.
    pub fn parse(spec: &str) -> Result<Volume> {
        let bad = |why: &str| {
            crate::LifecycleError::Arg(format!(
                "--volume {spec:?}: {why} (expected HOST:PATH or HOST:PATH:ro, both absolute)"
            ))
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, inner, read_only) = match parts[..] {
            [h, i] => (h, i, false),
            [h, i, "ro"] => (h, i, true),
            [h, i, "rw"] => (h, i, false),
            _ => return Err(bad("not HOST:PATH[:ro]")),
        };
        if !host.starts_with('/') {
            return Err(bad("the host directory must be an absolute path"));
        }
        let inner = model::InnerPath::parse(inner).map_err(|e| bad(&e.to_string()))?;
        let host = std::fs::canonicalize(host).map_err(|e| bad(&format!("{host}: {e}")))?;
        if !host.is_dir() {
            return Err(bad(&format!("{} is not a directory", host.display())));
        }
        Ok(Volume {
            host,
            inner,
            read_only,
        })
    }
}

/// The storage trees before a VE: names only when the recorder will say which files the VE
/// changed ([`named_changes`]), stamps of every entry when nothing records the VE.
enum Before {
    Stamps(Vec<Manifest>),
    /// Each directory's names, and whether they were not all the store's kept snapshot (so
    /// that the snapshot after is kept for the next VE); when they were taken (ns since the
    /// epoch, wall clock: what a file's ctime is compared with when the recording falls short).
    Names(Vec<(Names, bool)>, i128),
}

fn snapshot(store: &Store, storage: &[(String, PathBuf, String)], recorded: bool) -> Before {
    if recorded {
        let taken = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        Before::Names(
            storage
                .iter()
                .map(|(_, dir, _)| {
                    let kept = std::fs::read(store.layout.names_cache(dir))
                        .ok()
                        .and_then(|b| ve::manifest::decode_names(&b))
                        .unwrap_or_default();
                    ve::manifest::scan_names_reusing(dir, kept)
                        .unwrap_or_else(|_| (Names::default(), true))
                })
                .collect(),
            taken,
        )
    } else {
        Before::Stamps(
            storage
                .iter()
                .map(|(_, dir, _)| ve::manifest::scan(dir).unwrap_or_default())
                .collect(),
        )
    }
}

/// What `storage.json` holds: a VE's storage changes and what its reader must know of them
/// (written by `jcs run` when the VE ends; a bare list before the notes existed).
#[derive(Debug, Serialize, serde::Deserialize)]
#[serde(untagged)]
enum StorageFile {
    Report {
        changes: Vec<StorageChange>,
        notes: Vec<String>,
    },
    List(Vec<StorageChange>),
}

/// The VE's changes in its storage trees and the notes they need, from the trees now against
/// `before`.
fn storage_changes(
    store: &Store,
    storage: &[(String, PathBuf, String)],
    layers: Vec<&std::path::Path>,
    before: Before,
    touched: Option<&Touched>,
    ve: VeId,
) -> StorageFile {
    let mut notes = Vec::new();
    let shared = storage.iter().any(|(k, _, _)| k != "persist");
    let changes = match before {
        Before::Stamps(b) => {
            if shared {
                notes.push("shared storage and volumes are compared before/after the VE (it ran unrecorded): a VE running at the same time can contribute to these changes".into());
            }
            stamped_changes(storage, &b)
        }
        Before::Names(b, taken) => {
            // Where the recording falls short, a file whose status changed (ctime) while the
            // VE ran is taken as changed: nothing the VE did is missing, others' changes may
            // be there too.
            let since = match touched {
                None => {
                    notes.push(format!(
                        "the recorder did not say which files VE {ve} changed (it was restarted while the VE ran): a storage file whose status changed while the VE ran (its ctime) is listed as modified, whoever changed it"
                    ));
                    Some(taken)
                }
                Some(t) if !t.complete => {
                    notes.push(format!(
                        "the recording of VE {ve} is incomplete (records lost, a change by a name the recorder could not resolve, or more changes than it keeps): a storage file whose status changed while the VE ran (its ctime) is listed as modified, whoever changed it"
                    ));
                    Some(taken)
                }
                Some(_) => None,
            };
            if shared {
                notes.push("names added or removed in shared storage and volumes are compared before/after the VE: a VE running at the same time can contribute to them (modifications are the VE's own, from its recording)".into());
            }
            named_changes(store, storage, layers, b, touched, since)
        }
    };
    StorageFile::Report { changes, notes }
}

/// A storage change as the report lists it: the file's state now (type, size, hash).
fn change_entry(
    kind: &str,
    dir: &std::path::Path,
    inner: &str,
    rel: &str,
    change: Change,
    before_type: Option<model::report::FileType>,
    deadline: std::time::Instant,
) -> StorageChange {
    let now = match change {
        Change::Deleted => None,
        _ => ve::safefs::lstat(dir, std::path::Path::new(rel)),
    };
    let file_type = now
        .as_ref()
        .map(ve::manifest::file_type)
        .or(before_type)
        .unwrap_or(model::report::FileType::Other);
    let sha256 = match (change, file_type) {
        (Change::Deleted, _) => None,
        (_, model::report::FileType::File) => {
            ve::safefs::sha256(dir, std::path::Path::new(rel), deadline).ok()
        }
        _ => None,
    };
    StorageChange {
        storage: kind.to_string(),
        path: format!("{inner}/{rel}"),
        change,
        file_type,
        size: now.map(|st| st.st_size as u64).unwrap_or(0),
        sha256,
    }
}

/// Names before and after the VE, and the recorder's list of the files it changed: a name
/// added, removed or given to another file is seen in the names; a file that kept its name
/// is modified when the VE changed it by identity, or by a call naming a path that led to it
/// (resolved in the VE's `layers` and storage, through the links on the way: those the VE
/// made and removed too).
fn named_changes(
    store: &Store,
    storage: &[(String, PathBuf, String)],
    layers: Vec<&std::path::Path>,
    before: Vec<(Names, bool)>,
    touched: Option<&Touched>,
    ctime_since: Option<i128>,
) -> Vec<StorageChange> {
    let mut out = Vec::new();
    let deadline = ve::safefs::hash_deadline();
    let files: std::collections::HashSet<(u64, u64)> = touched
        .map(|t| t.files.iter().copied().collect())
        .unwrap_or_default();
    let view = ve::vepath::View::new(
        layers,
        storage
            .iter()
            .map(|(_, dir, inner)| (inner.as_str(), dir.as_path()))
            .collect(),
        touched
            .iter()
            .flat_map(|t| t.links.iter())
            .map(|(l, t)| (l.as_str(), t.as_str()))
            .collect(),
    );
    // Per storage directory, the relative paths of the files calls by name changed.
    let mut by_name = vec![std::collections::HashSet::<String>::new(); storage.len()];
    for (p, nofollow) in touched.iter().flat_map(|t| t.paths.iter()) {
        for (i, rel) in view.storage_of(p, *nofollow) {
            by_name[i].insert(rel);
        }
    }
    for (i, ((kind, dir, inner), (b, listed))) in storage.iter().zip(before).enumerate() {
        let dev = std::fs::metadata(dir)
            .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
            .unwrap_or(u64::MAX);
        let changed = |rel: &str, ino: u64| {
            files.contains(&(dev, ino))
                || by_name[i].contains(rel)
                || ctime_since.is_some_and(|t| {
                    // (A ctime is stamped from a coarse clock, a tick behind, or in whole
                    // seconds: such a margin before the VE's start counts as during it.)
                    ve::safefs::lstat(dir, std::path::Path::new(rel)).is_some_and(|st| {
                        let margin = if st.st_ctime_nsec == 0 {
                            1_000_000_000
                        } else {
                            20_000_000
                        };
                        ve::manifest::ctime_ns(&st) >= t - margin
                    })
                })
        };
        let (list, after, relisted) =
            ve::manifest::names_changed(dir, b, changed).unwrap_or_default();
        if listed || relisted {
            keep_names(store, dir, &after);
        }
        out.extend(
            list.into_iter()
                .map(|(rel, c, t)| change_entry(kind, dir, inner, &rel, c, t, deadline)),
        );
    }
    out
}

/// Keeps `names`, the snapshot of storage directory `dir` after a VE, for the next VE's
/// start ([`snapshot`]); a failure only costs that start a listing.
fn keep_names(store: &Store, dir: &std::path::Path, names: &Names) {
    let path = store.layout.names_cache(dir);
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let kept = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, ve::manifest::encode_names(names)))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = kept {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!("keep the names of {}: {e}", dir.display());
    }
}

/// Stamps before and after the VE (every entry `lstat`ed): for a VE nothing recorded.
fn stamped_changes(
    storage: &[(String, PathBuf, String)],
    before: &[Manifest],
) -> Vec<StorageChange> {
    let mut out = Vec::new();
    let deadline = ve::safefs::hash_deadline();
    for ((kind, dir, inner), b) in storage.iter().zip(before) {
        let after = ve::manifest::scan(dir).unwrap_or_default();
        out.extend(diff_manifests(b, &after).into_iter().map(|(rel, c)| {
            let t = b.get(&rel).map(|s| s.file_type);
            change_entry(kind, dir, inner, &rel, c, t, deadline)
        }));
    }
    out
}

/// The VE's /etc/hosts (the template's, if any, is shadowed): localhost, and `hostname` at
/// `addr`; none when a branch's /etc is not a plain directory (JCS then leaves it alone).
/// Made by the VE's init in a branch of its own (`VeConfig::generated`): nothing is written on
/// the store's disk unless the VE changes it.
fn etc_hosts(lowers: &[(String, PathBuf)], hostname: &str, addr: &str) -> Option<String> {
    let plain_etc = lowers.iter().all(|(_, d)| {
        std::fs::symlink_metadata(d.join("etc"))
            .map(|m| m.is_dir())
            .unwrap_or(true)
    });
    plain_etc.then(|| {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{addr}\t{hostname}\n"
        )
    })
}

fn write_json<T: Serialize>(path: &std::path::Path, v: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v)?)
        .ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).ctx(|| format!("write {}", path.display()))?;
    Ok(())
}

/// The hooks of a VE: the monitor watches its cgroup first (so its first exec is recorded),
/// then the network is attached, then the VE's `meta` directory is made; after it exits, the
/// recording is flushed and the network removed.
struct VeHooks {
    monitor: Option<recorder::MonitorHooks>,
    net: Option<crate::net::BridgeHooks>,
    /// Made here, not before the clone: the parent waits for the init's mounts after its
    /// hooks anyway, and a directory costs 0.1-0.4 ms on a store's ext4 with many recent
    /// deletions (its inode allocator skips recently freed inodes one by one).
    meta: PathBuf,
}

impl Hooks for VeHooks {
    fn before_release(&mut self, pid: i32, cgroup: &ve::VeCgroup) -> Result<(), HookError> {
        if let Some(m) = self.monitor.as_mut() {
            m.before_release(pid, cgroup)?;
        }
        if let Some(n) = self.net.as_mut() {
            n.before_release(pid, cgroup)?;
        }
        std::fs::create_dir(&self.meta)
            .map_err(|e| format!("create {}: {e}", self.meta.display()))?;
        Ok(())
    }

    fn release_data(&self) -> Vec<u8> {
        self.monitor
            .as_ref()
            .map(|m| m.release_data())
            .unwrap_or_default()
    }

    /// The recorder's flush decides whether the VE's record is complete (the error says
    /// so); a network teardown that failed is reported, not mistaken for that.
    fn after_exit(&mut self) -> Result<(), HookError> {
        let m = self
            .monitor
            .as_mut()
            .map(|m| m.after_exit())
            .unwrap_or(Ok(()));
        if let Some(Err(e)) = self.net.as_mut().map(|n| n.after_exit()) {
            tracing::warn!("network teardown: {e}");
        }
        m
    }
}

/// Allocates the next VE id and creates its directory. An id whose directory already exists
/// (a catalog restored from an older backup) is skipped, so ids are never reused.
fn new_ve_dir(store: &Store, l: &Launch) -> Result<VeId> {
    std::fs::create_dir_all(store.layout.ves())
        .ctx(|| format!("create {}", store.layout.ves().display()))?;
    for _ in 0..100 {
        let id = store.catalog.new_ve(
            &l.app.name,
            l.version,
            l.kind,
            &l.argv,
            l.extras.name.as_deref(),
        )?;
        match std::fs::create_dir(store.layout.ve(id)) {
            Ok(()) => return Ok(id),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                store.catalog.ve_ended(
                    id,
                    "failed",
                    None,
                    Some("id skipped: its directory already existed"),
                )?;
            }
            Err(e) => {
                store
                    .catalog
                    .ve_ended(id, "failed", None, Some(&e.to_string()))?;
                return Err(e).ctx(|| format!("create {}", store.layout.ve(id).display()));
            }
        }
    }
    refuse!(
        "could not find a free VE id below {}",
        store.layout.ves().display()
    )
}

/// Builds, runs and tears down one VE. Returns its id and how its command ended.
pub fn launch(store: &Store, l: Launch) -> Result<(VeId, Exit)> {
    // From here on SIGINT, SIGTERM and SIGHUP are caught: one that comes while the VE is made
    // reaches its app once it runs (or ends a start that waits), instead of killing jcs with
    // a catalog row, directories and a cgroup half made.
    ve::launch::catch_signals();
    let cg_layout = ve::CgroupLayout::detect_host(&store.host.proc_root)?;
    let bridge = match l.net {
        NetMode::Bridge => Some(crate::net::bridge_net()?),
        _ => None,
    };
    let lowers = lower_stack(store, &l.app, l.version);
    for (label, dir) in &lowers {
        if !dir.is_dir() {
            refuse!(
                "{label} is missing from the store ({} does not exist); recreate it, or remove app {}",
                dir.display(),
                l.app.name
            );
        }
    }
    crate::timing::mark("cgroup layout");
    // (kind, host directory, inner path) of each persistent and shared directory: where the
    // VE's file system reaches outside it.
    let storage: Vec<(String, PathBuf, String)> = if l.storage {
        l.app
            .persist
            .iter()
            .map(|p| {
                (
                    "persist".to_string(),
                    store.layout.persist(&l.app.name, p),
                    p.to_string(),
                )
            })
            .chain(l.app.shares.iter().map(|s| {
                (
                    "shared".to_string(),
                    store.layout.shared(&s.shared),
                    s.path.to_string(),
                )
            }))
            .chain(
                l.extras
                    .volumes
                    .iter()
                    .map(|v| ("volume".to_string(), v.host.clone(), v.inner.to_string())),
            )
            .collect()
    } else {
        vec![]
    };
    // A volume may not nest in, or hold, another storage mount (nor the store itself).
    for v in &l.extras.volumes {
        for (kind, dir, inner) in &storage {
            let other = model::InnerPath::parse(inner).ok();
            if (kind != "volume" || dir != &v.host || inner != v.inner.as_str())
                && other
                    .as_ref()
                    .is_some_and(|o| o.is_within(&v.inner) || v.inner.is_within(o))
            {
                refuse!(
                    "--volume {}:{}: overlaps the {kind} directory at {inner}",
                    v.host.display(),
                    v.inner
                );
            }
        }
        if store.layout.root().starts_with(&v.host) || v.host.starts_with(store.layout.root()) {
            refuse!(
                "--volume {}: the JCS store ({}) may not be mounted into a VE, nor a directory in it",
                v.host.display(),
                store.layout.root().display()
            );
        }
    }
    // Each with its store-level name: a file below it is named the same in every VE.
    let outside = store_names(&l.app, &storage);
    // The app version's policy (maintenance VEs run without it): its network part is
    // enforced by the recorder, the rest by the VE's start.
    let policy = match l.kind {
        "app" => crate::app::policy(store, &l.app.name, l.version)?.map(|(_, p)| p),
        _ => None,
    };
    let storage_points: Vec<model::InnerPath> = storage
        .iter()
        .filter_map(|(_, _, inner)| model::InnerPath::parse(inner).ok())
        .collect();
    let (mut guard, watch_policy) = match &policy {
        None => (ve::launch::Guard::default(), None),
        Some(p) => {
            let g = ve::launch::Guard::of(p, &storage_points).map_err(|e| {
                crate::LifecycleError::Arg(format!("the policy of app {}: {e}", l.app.name))
            })?;
            let mut enforced = vec![];
            if !g.read_only.is_empty() {
                enforced.push((
                    "files.writable".to_string(),
                    format!(
                        "read-only mounts: {}; writable: {}",
                        join(&g.read_only),
                        join(&g.writable)
                    ),
                ));
            }
            if !g.hide.is_empty() {
                enforced.push((
                    "files.deny_read".to_string(),
                    format!("empty read-only mounts over: {}", join(&g.hide)),
                ));
            }
            if let Some(a) = &g.exec_allow {
                let abi = ve::landlock::abi().map_err(|e| {
                    crate::LifecycleError::Arg(format!(
                        "the policy of app {} has an exec allow-list, which needs Landlock;                          this kernel has none ({e}); see jcs doctor",
                        l.app.name
                    ))
                })?;
                enforced.push((
                    "exec.allow".to_string(),
                    format!("Landlock ABI {abi}: execute only {}", join(a)),
                ));
            }
            (
                g,
                Some(Box::new(recorder::protocol::WatchPolicy {
                    policy: p.clone(),
                    enforced,
                })),
            )
        }
    };
    // Read-only volumes: mounted read-only after the binds.
    guard.read_only.extend(
        l.extras
            .volumes
            .iter()
            .filter(|v| v.read_only)
            .map(|v| v.inner.clone()),
    );
    if recorder::client::monitor_off() && policy.as_ref().is_some_and(|p| p.restricts_network()) {
        refuse!(
            "the policy of app {} restricts the network, which the recorder enforces; it cannot run with JCS_MONITOR=off",
            l.app.name
        );
    }
    // Published ports: bound now, so that a port in use refuses the run before anything
    // exists; relayed once the VE has its address.
    let mut publisher = match (&bridge, l.extras.publish.is_empty()) {
        (_, true) => None,
        (None, false) => refuse!("--publish needs the VE on the bridge (--net bridge)"),
        (Some(_), false) => Some(
            crate::publish::Publisher::bind(&l.extras.publish)
                .map_err(crate::LifecycleError::Arg)?,
        ),
    };
    // Everything above can refuse without leaving anything behind; from here on the VE has
    // its id (and its catalog row).
    let id = new_ve_dir(store, &l)?;
    if let Some(f) = &l.extras.id_file {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(f)
            .and_then(|mut w| writeln!(w, "{}", id.0))
            .ctx(|| format!("--id-file {}", f.display()))?;
    }
    crate::timing::mark("ve row");
    let monitor = recorder::MonitorHooks::new(store.layout.root(), id.0, outside).map(|mut m| {
        m.strict = l.extras.strict_recording;
        m.policy = watch_policy;
        m.tty = l.extras.tty;
        m.info = Some(record::VeInfo {
            ve: id.0,
            time_ns: 0, // (the recorder stamps it when it starts recording)
            app: l.app.name.to_string(),
            app_version: u64::from(l.version),
            name: l.extras.name.clone(),
            storage: storage.iter().map(|(_, _, inner)| inner.clone()).collect(),
        });
        m.ask_early();
        m
    });
    let storage_names = store_names(&l.app, &storage);
    let mut ve_hooks = VeHooks {
        monitor,
        net: crate::net::hooks_for(store, l.net, id)?,
        meta: store.layout.meta(id),
    };
    let monitored = ve_hooks.monitor.is_some();
    let hooks: &mut dyn Hooks = &mut ve_hooks;
    crate::timing::mark("hooks");
    // `--disk`: the writable branch on a file system of its own, mounted while the VE runs.
    let disk = l.limits.disk_bytes.map(|_| {
        (
            store.layout.ve(id).join("disk.img"),
            store.layout.ve(id).join("disk"),
        )
    });
    let (dirties, work) = match &disk {
        Some((_, mnt)) => (mnt.join("dirties"), mnt.join("work")),
        None => (store.layout.dirties(id), store.layout.work(id)),
    };
    let result = (|| -> Result<(VeMeta, Before, ve::launch::Running)> {
        if let (Some((img, mnt)), Some(bytes)) = (&disk, l.limits.disk_bytes) {
            ve::disk::create(img, bytes)?;
            std::fs::create_dir(mnt).ctx(|| format!("create {}", mnt.display()))?;
            ve::disk::mount(img, mnt, false)?;
        }
        for d in [&dirties, &work] {
            std::fs::create_dir(d).ctx(|| format!("create {}", d.display()))?;
        }
        for (_, dir, _) in &storage {
            std::fs::create_dir_all(dir)
                .ctx(|| format!("create storage directory {}", dir.display()))?;
        }
        crate::timing::mark("dirs");
        let upper = l.upper.clone().unwrap_or_else(|| dirties.clone());
        // The VE's own /etc/hosts names it (as docker's does), a file the VE may change like
        // any of its own; not in a maintenance VE's new layer.
        let hosts = match l.upper {
            None => {
                let addr = bridge
                    .as_ref()
                    .map(|b| crate::net::eth_config(b, id).addr.to_string())
                    .unwrap_or_else(|| "127.0.1.1".into());
                etc_hosts(&lowers, &id.hostname(), &addr)
            }
            Some(_) => None,
        };
        let generated: Vec<(String, String)> = hosts
            .iter()
            .map(|h| {
                (
                    "/etc/hosts".to_string(),
                    ve::safefs::sha256_of(h.as_bytes()),
                )
            })
            .collect();
        crate::timing::mark("etc/hosts");
        let meta = VeMeta {
            id: id.0,
            app: l.app.name.to_string(),
            app_version: l.version,
            kind: l.kind.to_string(),
            argv: l.argv.clone(),
            lowers: lowers.clone(),
            upper: upper.clone(),
            storage: storage.clone(),
            net: l.net,
            limits: l.limits,
            cgroup_id: None,
            init_pid: None,
            disk_image: disk.as_ref().map(|(img, _)| img.clone()),
            generated,
        };
        let cfg = VeConfig {
            id,
            rootfs: store.layout.rootfs(id),
            lowers: lowers.iter().map(|(_, p)| p.clone()).collect(),
            upper,
            work,
            generated: hosts
                .map(|h| (PathBuf::from("etc/hosts"), h.into_bytes()))
                .into_iter()
                .collect(),
            binds: storage
                .iter()
                .map(|(_, dir, inner)| Bind {
                    source: dir.clone(),
                    target: model::InnerPath::parse(inner).expect("validated at app create"),
                })
                .collect(),
            net: l.net,
            argv: l.argv.clone(),
            env: vec![
                (
                    "PATH".into(),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ),
                ("HOME".into(), "/root".into()),
                (
                    "TERM".into(),
                    std::env::var("TERM").unwrap_or_else(|_| "xterm".into()),
                ),
                ("HOSTNAME".into(), id.hostname()),
                ("JCS_VE".into(), id.to_string()),
                ("container".into(), "jcs".into()),
            ]
            .into_iter()
            .filter(|(k, _)| !l.extras.env.iter().any(|(u, _)| u == k))
            .chain(l.extras.env.iter().cloned())
            .collect(),
            workdir: l.extras.workdir.clone(),
            user: l.extras.user.clone(),
            cgroup_name: store.cgroup_name(id),
            limits: l.limits,
            eth: bridge.as_ref().map(|b| crate::net::eth_config(b, id)),
            preserve_fds: l.extras.preserve_fds,
            tty: l.extras.tty,
            extra_caps: l.extras.extra_caps,
            guard: guard.clone(),
            preimages: policy
                .as_ref()
                .filter(|p| p.supervised() && !storage.is_empty())
                .map(|p| ve::launch::Preimages {
                    keep: p.preimages,
                    files_written: p.files_written,
                    abort_on_close: p.abort_on_close,
                    ve: id.0,
                    objects: store.layout.versions().join("objects"),
                    undo_log: ve::supervise::undo_path(&store.layout.versions(), id.0),
                    storage: storage_names
                        .iter()
                        .map(|(inner, name)| ve::supervise::Storage {
                            inner: inner.clone(),
                            name: name.clone(),
                        })
                        .collect(),
                }),
        };
        let before = snapshot(store, &storage, monitored);
        crate::timing::mark("snapshot");
        let running = ve::launch::start(&cfg, &cg_layout, &HostFs, &mut *hooks)?;
        Ok((meta, before, running))
    })();
    let (mut meta, before, mut running) = match result {
        Ok(x) => x,
        Err(e) => {
            let _ = hooks.after_exit();
            let msg = crate::describe(&e);
            let _ = store.catalog.ve_ended(id, "failed", None, Some(&msg));
            // Nothing half-created: a VE that never started keeps only its catalog row.
            if let Some((_, mnt)) = &disk {
                let _ = ve::disk::unmount(mnt);
            }
            let _ = std::fs::remove_dir_all(store.layout.ve(id));
            return Err(e).ctx(|| format!("VE {id}"));
        }
    };
    if let Some(t) = l.extras.stop_timeout {
        running.stop_timeout = t;
    }
    meta.cgroup_id = Some(running.cgroup.id);
    meta.init_pid = Some(running.pid);
    let _ = write_json(&store.layout.meta(id).join("ve.json"), &meta);
    store.catalog.ve_running(
        id,
        std::process::id() as i32,
        pid_start_time(std::process::id() as i32).unwrap_or(0),
        running.cgroup.id,
    )?;
    crate::timing::mark("started");
    if let (Some(p), Some(b)) = (publisher.as_mut(), &bridge) {
        p.start(crate::net::eth_config(b, id).addr);
    }
    // `-t`: the proxy between this terminal and the VE's pty ends when the VE's last process
    // closes the pty (and restores the terminal).
    let proxy = running
        .tty_master
        .take()
        .map(|m| std::thread::spawn(move || ve::pty::proxy(m)));
    let exit = running.wait(&HostFs);
    if let Some(p) = publisher {
        p.stop();
    }
    if let Some(Err(e)) = proxy.map(|p| p.join().unwrap_or(Ok(()))) {
        tracing::warn!("the VE's terminal: {e}");
    }
    crate::timing::mark("exited+teardown");
    let recorded = hooks.after_exit();
    crate::timing::mark("unwatched");
    for (n, us) in &running.phases.marks {
        crate::timing::phase(id.0, n, *us);
    }
    let layers = std::iter::once(meta.upper.as_path())
        .chain(meta.lowers.iter().map(|(_, d)| d.as_path()))
        .collect();
    let changes = storage_changes(
        store,
        &meta.storage,
        layers,
        before,
        ve_hooks.monitor.as_ref().and_then(|m| m.changes()),
        id,
    );
    // (A VE without storage has no report: nothing to write, one file fewer per start.)
    if !meta.storage.is_empty() {
        let _ = write_json(&store.layout.meta(id).join("storage.json"), &changes);
    }
    if policy.as_ref().is_some_and(|p| p.abort_on_close) {
        journal_aborted_on_close(store, id);
    }
    if let Some((_, mnt)) = &disk {
        // The dirties stay in the image; `jcs inspect` mounts it again to read them.
        if let Err(e) = ve::disk::unmount(mnt) {
            tracing::warn!("VE {id}: {e}");
        }
    }
    match exit {
        Ok(x) => {
            if let Err(e) = recorded {
                // The recording's state matters more than the catalog's row (which a full
                // disk may refuse too): say both.
                if let Err(c) =
                    store
                        .catalog
                        .ve_ended(id, "exited", Some(x.code()), Some(&e.to_string()))
                {
                    tracing::warn!("VE {id}: the catalog did not take its end: {c}");
                }
                return Err(crate::LifecycleError::Unrecorded {
                    ve: id.0,
                    code: x.code(),
                    why: e.to_string(),
                });
            }
            store.catalog.ve_ended(id, "exited", Some(x.code()), None)?;
            crate::timing::mark("recorded");
            Ok((id, x))
        }
        Err(e) => {
            let msg = e.to_string();
            store.catalog.ve_ended(id, "failed", None, Some(&msg))?;
            Err(e).ctx(|| format!("VE {id}"))
        }
    }
}

/// `jcs exec`: a new process in running VE `id` (see `ve::enter`), recorded as the VE's;
/// returns its exit status. Refused for a VE that is not running, and for one whose app keeps
/// pre-images (its write-intent calls must reach the VE's supervisor, which only the VE's own
/// processes are set up for).
pub fn exec(
    store: &Store,
    id: u64,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    workdir: Option<String>,
    user: Option<String>,
    tty: bool,
) -> Result<i32> {
    let row = ve_row(store, id)?;
    if effective_state(&row) != "running" {
        refuse!("VE {id} is not running ({})", effective_state(&row));
    }
    let meta_path = store.layout.meta(VeId(id)).join("ve.json");
    let meta: VeMeta = serde_json::from_slice(
        &std::fs::read(&meta_path).ctx(|| format!("read {}", meta_path.display()))?,
    )
    .ctx(|| format!("decode {}", meta_path.display()))?;
    let Some(init) = meta.init_pid else {
        refuse!("VE {id} has no init process recorded; it may be starting");
    };
    let app = model::Name::parse(&meta.app)?;
    let policy = if meta.kind == "app" {
        crate::app::policy(store, &app, meta.app_version)?.map(|(_, p)| p)
    } else {
        None
    };
    if policy.as_ref().is_some_and(|p| p.supervised()) {
        refuse!(
            "VE {id}'s app keeps pre-images ([recovery] in its policy): jcs exec cannot give a new process to its supervisor yet"
        );
    }
    let layout = ve::CgroupLayout::detect_host(&store.host.proc_root)?;
    let cg = ve_cgroup(store, VeId(id), &layout);
    // The init must still be the VE's (a pid is reused once its process is gone).
    let in_cgroup = std::fs::read_to_string(format!("/proc/{init}/cgroup"))
        .is_ok_and(|c| c.contains(&store.cgroup_name(VeId(id))));
    if !in_cgroup {
        refuse!("VE {id} is not running (its init {init} is gone)");
    }
    let mut dirs: Vec<PathBuf> = cg.v1.iter().filter(|d| d.exists()).cloned().collect();
    dirs.push(cg.v2.clone());
    let defaults = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("HOME", "/root".to_string()),
        (
            "TERM",
            std::env::var("TERM").unwrap_or_else(|_| "xterm".into()),
        ),
        ("HOSTNAME", VeId(id).hostname()),
        ("JCS_VE", id.to_string()),
        ("container", "jcs".to_string()),
    ];
    let mut all: Vec<(String, String)> = defaults
        .into_iter()
        .filter(|(k, _)| !env.iter().any(|(u, _)| u == k))
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    all.extend(env);
    let env = all;
    let spec = ve::enter::EnterSpec {
        init_pid: init,
        cgroup_dirs: dirs,
        own_net: meta.net != model::NetMode::Host,
        argv,
        env,
        workdir,
        user,
        exec_allow: policy
            .and_then(|p| p.exec_allow)
            .map(|l| l.iter().map(|p| p.as_str().to_string()).collect()),
        tty,
    };
    let cgroup_id = std::fs::metadata(&cg.v2)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .ctx(|| format!("stat {}", cg.v2.display()))?;
    let home = store.layout.root().to_path_buf();
    let mut on_tty = |index: u32| {
        recorder::client::register_tty(&home, cgroup_id, index).map_err(|e| e.to_string())
    };
    let code = ve::enter::exec_in(&spec, &mut on_tty)?;
    // Like `jcs run`: what the command did is in the journal when this returns.
    if let Err(e) = recorder::client::flush(&home, cgroup_id) {
        tracing::warn!("VE {id}: what the command did may not be in the journal yet: {e}");
    }
    Ok(code)
}

/// abort_on_close: journals (`X` records) the files the VE's supervisor put back at a close
/// (its undo log's `aborted-on-close` entries).
fn journal_aborted_on_close(store: &Store, id: VeId) {
    let log = ve::supervise::undo_path(&store.layout.versions(), id.0);
    let restores: Vec<record::Restore> = ve::supervise::read_undo(&log)
        .unwrap_or_default()
        .iter()
        .filter(|u| u.what == "aborted-on-close")
        .map(|u| {
            let action = match u.kind.as_str() {
                "removed" => "remove",
                "emptied" => "empty",
                _ => "restore",
            };
            crate::abort::restore_of(u, action, &format!("abort-on-close ve {id}"), id.0)
        })
        .collect();
    if let Some(why) = crate::abort::journal(store, restores) {
        tracing::warn!("VE {id}: the files put back at their close are not journaled: {why}");
    }
}

/// Each storage directory (kind, host directory, inner path) with its store-level name: a
/// file below it is named the same in every VE.
fn store_names(app: &AppSpec, storage: &[(String, PathBuf, String)]) -> Vec<(String, String)> {
    storage
        .iter()
        .map(|(kind, dir, inner)| {
            (
                inner.clone(),
                store_name(app.name.as_str(), kind, dir, inner),
            )
        })
        .collect()
}

/// The store-level name of a storage directory: `persist:APP:/inner`, `shared:NAME`, or
/// `volume:/host/dir` (a host directory mounted with `-v`).
pub(crate) fn store_name(app: &str, kind: &str, dir: &std::path::Path, inner: &str) -> String {
    match kind {
        "persist" => format!("persist:{app}:{inner}"),
        "volume" => format!("volume:{}", dir.display()),
        _ => format!(
            "shared:{}",
            dir.file_name().unwrap_or_default().to_string_lossy()
        ),
    }
}

fn join(paths: &[model::InnerPath]) -> String {
    if paths.is_empty() {
        return "none".into();
    }
    paths
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records where a VE's writable branch went (maintenance mode publishes it under a new name).
pub fn set_upper(store: &Store, id: VeId, upper: &std::path::Path) -> Result<()> {
    let p = store.layout.meta(id).join("ve.json");
    let mut meta: VeMeta =
        serde_json::from_slice(&std::fs::read(&p).ctx(|| format!("read {}", p.display()))?)?;
    meta.upper = upper.to_path_buf();
    write_json(&p, &meta)
}

/// How `jcs run` runs a VE, beyond the app's own settings.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub limits: Limits,
    /// Instead of the app's network.
    pub net: Option<NetMode>,
    pub extras: Extras,
    /// `--rm-dirties`: once the VE has ended, remove its dirties and metadata as `jcs rm`
    /// does — unless its integrity report flags something (evidence: kept, and said).
    pub rm_dirties: bool,
}

/// Below this much free space on the store's disk (`JCS_LOW_SPACE_MB`, default 64 MiB), `jcs
/// run` warns: when the disk is full, records are dropped (and counted as gaps).
const LOW_SPACE_MB: u64 = 64;

/// Warns when the store's disk is nearly full.
fn warn_if_low_space(root: &std::path::Path) {
    let limit = std::env::var("JCS_LOW_SPACE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LOW_SPACE_MB);
    if let Ok(s) = rustix::fs::statvfs(root) {
        let free = s.f_bavail * s.f_frsize;
        if free < limit << 20 {
            tracing::warn!(
                "the disk of the store at {} has {} MiB free (below {limit} MiB, JCS_LOW_SPACE_MB): \
                 when it is full the record is cut short (a gap says so); free space, or jcs gc / \
                 jcs summarize",
                root.display(),
                free >> 20
            );
        }
    }
}

/// `jcs run`: a fresh VE of the app's newest version runs `argv` (default: the app's
/// command). Returns the command's exit code.
pub fn run(
    store: &Store,
    app_name: &model::Name,
    argv: Vec<String>,
    opts: RunOptions,
) -> Result<i32> {
    let RunOptions {
        limits,
        net,
        extras,
        rm_dirties,
    } = opts;
    let app = store
        .catalog
        .app(app_name)?
        .ctx(|| format!("unknown app {app_name} (see jcs app list)"))?;
    warn_if_low_space(store.layout.root());
    let argv = if argv.is_empty() {
        app.cmd.clone()
    } else {
        argv
    };
    if argv.is_empty() {
        refuse!("app {app_name} has no default command: give one after --, e.g. jcs run {app_name} -- /bin/sh");
    }
    let version = store.catalog.app_latest(app_name)?;
    let net = net.unwrap_or(app.net);
    let (id, exit) = launch(
        store,
        Launch {
            app,
            version,
            kind: "app",
            argv,
            limits,
            net,
            upper: None,
            storage: true,
            extras,
        },
    )?;
    if rm_dirties {
        match flagged(store, id.0) {
            Some(why) => tracing::warn!(
                "kept VE {id}'s dirties despite --rm-dirties: flagged: {why} (jcs inspect {id}; jcs rm {id} removes them)"
            ),
            None => {
                remove_ve(store, &ve_row(store, id.0)?)?;
            }
        }
    }
    Ok(exit.code())
}

/// The VEs, running ones (all with `all`), each with its effective state (a `running` VE
/// whose `jcs run` died is `lost`).
pub fn ps(store: &Store, all: bool) -> Result<Vec<VeRow>> {
    Ok(store
        .catalog
        .ves()?
        .into_iter()
        .map(|mut r| {
            r.state = effective_state(&r);
            r
        })
        .filter(|r| all || r.state == "running" || r.state == "creating")
        .collect())
}

fn ve_row(store: &Store, id: u64) -> Result<VeRow> {
    store
        .catalog
        .ve(VeId(id))?
        .ctx(|| format!("unknown VE {id} (see jcs ps --all)"))
}

/// The integrity report of VE `id`: what it wrote into its dirties and its storage.
pub fn report(store: &Store, id: u64) -> Result<IntegrityReport> {
    let row = ve_row(store, id)?;
    if row.removed {
        refuse!(
            "VE {id}'s dirties were removed (jcs rm or jcs gc); there is nothing left to inspect"
        );
    }
    let meta_path = store.layout.meta(VeId(id)).join("ve.json");
    let meta: VeMeta = serde_json::from_slice(
        &std::fs::read(&meta_path)
            .ctx(|| format!("VE {id} has no metadata at {}", meta_path.display()))?,
    )
    .ctx(|| format!("decode {}", meta_path.display()))?;
    let lowers: Vec<Lower> = meta
        .lowers
        .iter()
        .map(|(label, dir)| Lower {
            label: label.clone(),
            dir: dir.clone(),
        })
        .collect();
    // `--disk`: the dirties are in the VE's image; mounted read-only for the scan unless the
    // VE runs (then it is mounted already).
    let mounted_here = match &meta.disk_image {
        Some(img) if !meta.upper.exists() => {
            let mnt = meta.upper.parent().ctx(|| "the dirties have no parent")?;
            ve::disk::mount(img, mnt, true)?;
            Some(mnt.to_path_buf())
        }
        _ => None,
    };
    let dirties = ve::inspect::scan_dirties(&meta.upper, &lowers)
        .ctx(|| format!("read the dirties of VE {id} at {}", meta.upper.display()));
    if let Some(mnt) = &mounted_here {
        let _ = ve::disk::unmount(mnt);
    }
    let mut dirties = dirties?;
    let mut notes = Vec::new();
    // What JCS made for the VE (its /etc/hosts) is not the VE's, unless the VE changed it.
    // It is in the dirties only then (or, on a kernel that refused its own branch, from the
    // start: dropped from them while unchanged).
    for (path, sha) in &meta.generated {
        let before = dirties.len();
        dirties.retain(|e| !(&e.path == path && e.sha256.as_deref() == Some(sha.as_str())));
        let dropped = dirties.len() < before;
        // (Its directory too, when JCS made it there and nothing else is in it.)
        if dropped {
            if let Some(dir) = std::path::Path::new(path).parent().and_then(|d| d.to_str()) {
                let inside = format!("{dir}/");
                if !dirties.iter().any(|e| e.path.starts_with(&inside)) {
                    dirties.retain(|e| !(e.path == dir && e.file_type == model::FileType::Dir));
                }
            }
        }
        if dropped || !dirties.iter().any(|e| &e.path == path) {
            notes.push(format!(
                "{path}: written by JCS at the VE's start (it names the VE), unchanged"
            ));
        }
    }
    let state = effective_state(&row);
    let storage: Vec<StorageChange> = match std::fs::read(
        store.layout.meta(VeId(id)).join("storage.json"),
    ) {
        Ok(b) => match serde_json::from_slice(&b).ctx(|| "decode storage.json")? {
            StorageFile::Report {
                changes,
                notes: more,
            } => {
                notes.extend(more);
                changes
            }
            // (Written by an older jcs: stamps before and after.)
            StorageFile::List(changes) => {
                if meta.storage.iter().any(|(k, _, _)| k == "shared") {
                    notes.push("shared storage is compared before/after the VE: a VE running at the same time can contribute to these changes".into());
                }
                changes
            }
        },
        // (No storage: no report, and nothing to say.)
        Err(_) if meta.storage.is_empty() => vec![],
        Err(_) => {
            notes.push(format!(
                "VE {id} is {state}: storage changes are computed when it exits"
            ));
            vec![]
        }
    };
    let unhashed = dirties
        .iter()
        .filter(|e| e.file_type == model::FileType::File && e.sha256.is_none())
        .count()
        + storage
            .iter()
            .filter(|c| {
                c.file_type == model::FileType::File
                    && c.change != model::report::Change::Deleted
                    && c.sha256.is_none()
            })
            .count();
    if unhashed > 0 {
        notes.push(format!(
            "{unhashed} file(s) not hashed: larger than {} bytes (JCS_HASH_MAX), past the report's hashing time (JCS_HASH_SECONDS, default 10), or gone before they could be read",
            ve::safefs::hash_limit()
        ));
    }
    if meta.kind == "maintenance" {
        notes.push(format!(
            "maintenance VE: its writes are app {} version layer {}",
            meta.app,
            meta.upper.display()
        ));
    }
    Ok(IntegrityReport {
        ve: id,
        app: meta.app,
        app_version: meta.app_version,
        dirties,
        storage,
        notes,
    })
}

/// Removes a finished VE's directory (dirties, metadata). Never a running VE's.
fn remove_ve(store: &Store, row: &VeRow) -> Result<bool> {
    if owner_alive(row) && (row.state == "running" || row.state == "creating") {
        refuse!(
            "VE {} is running; it can be removed once it has exited",
            row.id
        );
    }
    let id = VeId(row.id);
    // A VE whose `jcs run` died: kill and remove whatever is left of its cgroup first.
    if row.state == "running" || row.state == "creating" {
        clean_stale_cgroup(store, id);
        store.catalog.ve_ended(
            id,
            "lost",
            None,
            Some("its jcs run ended without tearing it down"),
        )?;
    }
    let dir = store.layout.ve(id);
    let existed = dir.exists();
    // A `--disk` image still mounted (its run died before unmounting it).
    if dir.join("disk/dirties").exists() {
        let _ = ve::disk::unmount(&dir.join("disk"));
    }
    if existed {
        std::fs::remove_dir_all(&dir).ctx(|| format!("remove {}", dir.display()))?;
    }
    store.catalog.ve_removed(id)?;
    Ok(existed)
}

/// Ends a running VE: kills every process of its cgroup, then waits (up to `wait`) until its
/// `jcs run` has torn it down and the catalog says it ended. Ok(false) when it was not running.
pub fn end(store: &Store, id: VeId, wait: std::time::Duration) -> Result<bool> {
    stop(store, id, None, wait)
}

/// Stops a running VE: with `grace`, SIGTERM to every process of its cgroup first and SIGKILL
/// (`cgroup.kill`) only to what is left after `grace`; then waits (up to `wait`) until its
/// `jcs run` has torn it down. Ok(false) when it was not running.
pub fn stop(
    store: &Store,
    id: VeId,
    grace: Option<std::time::Duration>,
    wait: std::time::Duration,
) -> Result<bool> {
    let running = |store: &Store| -> Result<bool> {
        let s = effective_state(&ve_row(store, id.0)?);
        Ok(s == "running" || s == "creating")
    };
    if !running(store)? {
        return Ok(false);
    }
    let layout = ve::CgroupLayout::detect_host(&store.host.proc_root)?;
    let cg = ve_cgroup(store, id, &layout);
    let poll = |until: std::time::Instant| -> Result<bool> {
        while std::time::Instant::now() < until {
            if !running(store)? {
                return Ok(true);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(false)
    };
    if let Some(g) = grace {
        for pid in cg.pids(&HostFs) {
            // SAFETY: kill(2) with a pid read from the VE's own cgroup and a constant signal.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if poll(std::time::Instant::now() + g)? {
            return Ok(true);
        }
    }
    cg.kill(&HostFs)?;
    if poll(std::time::Instant::now() + wait)? {
        return Ok(true);
    }
    refuse!(
        "VE {id} was killed but its jcs run has not finished it within {} s; try again",
        wait.as_secs()
    )
}

/// The cgroup directories of VE `id` (its cgroup2 one, and the v1 ones on a hybrid host; a
/// v1 directory that was never made is skipped by whoever removes them).
fn ve_cgroup(store: &Store, id: VeId, layout: &ve::CgroupLayout) -> ve::VeCgroup {
    let name = store.cgroup_name(id);
    let mut v1 = vec![];
    if let ve::CgroupLayout::Hybrid {
        memory, pids, cpu, ..
    } = layout
    {
        v1.push(memory.join(ve::cgroup::PARENT).join(&name));
        v1.push(pids.join(ve::cgroup::PARENT).join(&name));
        if let Some(cpu) = cpu {
            // Only there when the VE had a CPU limit; removing a missing one is a no-op.
            v1.push(cpu.join(ve::cgroup::PARENT).join(&name));
        }
    }
    ve::VeCgroup {
        v2: layout.v2_root().join(ve::cgroup::PARENT).join(&name),
        v1,
        id: 0,
    }
}

fn clean_stale_cgroup(store: &Store, id: VeId) {
    let Ok(layout) = ve::CgroupLayout::detect_host(&store.host.proc_root) else {
        return;
    };
    let cg = ve_cgroup(store, id, &layout);
    if cg.v2.exists() {
        let _ = cg.kill(&HostFs);
    }
    let _ = cg.remove(&HostFs, std::time::Duration::from_secs(5));
}

/// Removes finished VEs' dirties and metadata (never a running VE's). Per id: whether it
/// was removed now (false: it already was).
pub fn rm(store: &Store, ids: &[u64]) -> Result<Vec<(u64, bool)>> {
    let mut out = Vec::new();
    for id in ids {
        let row = ve_row(store, *id)?;
        if row.removed {
            out.push((*id, false));
            continue;
        }
        remove_ve(store, &row)?;
        out.push((*id, true));
    }
    Ok(out)
}

/// What [`gc`] may remove.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcOptions {
    /// Only say what would be removed.
    pub dry_run: bool,
    /// Only VEs that ended before this time (ms since the epoch); the others are kept.
    pub ended_before_ms: Option<i64>,
    /// Also the VEs whose integrity report flags something (by default their dirties are
    /// evidence, kept until `jcs rm` or this).
    pub include_flagged: bool,
}

/// What [`gc`] did (or, with `dry_run`, would do).
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Collected {
    pub dry_run: bool,
    /// Finished VEs whose dirties and metadata were removed.
    pub removed: Vec<u64>,
    /// Running VEs, kept.
    pub running: Vec<u64>,
    /// Finished VEs kept because they ended after `--older-than`.
    pub recent: Vec<u64>,
    /// Finished VEs kept because their integrity report flags something (an executable,
    /// setuid or setgid file, or a system path written into the dirties), or could not be
    /// read: (VE, why).
    pub flagged: Vec<(u64, String)>,
    /// Unfinished template and app builds removed.
    pub partials: Vec<PathBuf>,
    /// Names the store kept of storage directories between VEs (`cache/names/`) that are no
    /// longer any app's existing persistent or shared storage: a removed app's, a directory
    /// deleted by hand, a `--volume`'s (a cache only: the next VE with it lists it anew).
    pub stale_names: Vec<PathBuf>,
}

/// Why VE `id`'s dirties deserve to be kept: what its integrity report flags (None: nothing).
fn flagged(store: &Store, id: u64) -> Option<String> {
    match report(store, id) {
        Err(e) => Some(format!("its integrity report could not be read: {e}")),
        Ok(r) => {
            let hits: Vec<String> = r
                .dirties
                .iter()
                .filter(|e| !e.flags.labels().is_empty())
                .map(|e| format!("{} ({})", e.path, e.flags.labels().join(",")))
                .collect();
            match hits.len() {
                0 => None,
                1 => Some(hits[0].clone()),
                n => Some(format!("{} and {} more", hits[0], n - 1)),
            }
        }
    }
}

/// Removes finished VEs' dirties (all of them, or those that ended before a time), except
/// those whose integrity report flags something unless asked; cleans up after VEs whose `jcs
/// run` died and builds that were killed. `dry_run`: only says what it would remove.
pub fn gc(store: &Store, o: GcOptions) -> Result<Collected> {
    let mut c = Collected {
        dry_run: o.dry_run,
        ..Default::default()
    };
    for row in store.catalog.ves()? {
        if row.removed {
            continue;
        }
        if owner_alive(&row) && (row.state == "running" || row.state == "creating") {
            c.running.push(row.id);
            continue;
        }
        // A VE whose `jcs run` died: its cgroup (and what is left in it) goes now, and it is
        // lost, whatever is kept of it below (its dirties and metadata, as evidence).
        if !o.dry_run && (row.state == "running" || row.state == "creating") {
            clean_stale_cgroup(store, VeId(row.id));
            store.catalog.ve_ended(
                VeId(row.id),
                "lost",
                None,
                Some("its jcs run ended without tearing it down"),
            )?;
        }
        if let Some(before) = o.ended_before_ms {
            if row.ended_ms.unwrap_or(row.started_ms) >= before {
                c.recent.push(row.id);
                continue;
            }
        }
        if !o.include_flagged {
            if let Some(why) = flagged(store, row.id) {
                c.flagged.push((row.id, why));
                continue;
            }
        }
        if !o.dry_run {
            remove_ve(store, &row)?;
        }
        c.removed.push(row.id);
    }
    c.partials = remove_stale_partials(store, o.dry_run)?;
    c.stale_names = remove_stale_names(store, o.dry_run)?;
    Ok(c)
}

/// Removes the kept names ([`keep_names`]) of every directory that is not an existing
/// persistent or shared storage directory of an app in the catalog, and leftovers of writes
/// that did not finish.
fn remove_stale_names(store: &Store, dry_run: bool) -> Result<Vec<PathBuf>> {
    let mut live = std::collections::HashSet::new();
    for app in store.catalog.apps()? {
        let dirs = app
            .persist
            .iter()
            .map(|p| store.layout.persist(&app.name, p))
            .chain(app.shares.iter().map(|s| store.layout.shared(&s.shared)));
        for dir in dirs.filter(|d| d.is_dir()) {
            live.insert(store.layout.names_cache(&dir));
        }
    }
    let top = store.layout.root().join("cache/names");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&top).into_iter().flatten().flatten() {
        let path = e.path();
        if live.contains(&path) {
            continue;
        }
        if !dry_run {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err).ctx(|| format!("remove {}", path.display())),
            }
        }
        out.push(path);
    }
    out.sort();
    Ok(out)
}

/// Removes what a killed `jcs template create`, `app create` or `app update` left: their
/// `.NAME.partial-PID` directories (when PID is gone) and `.N.partial` layers (when no update
/// holds the app's lock).
fn remove_stale_partials(store: &Store, dry_run: bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for top in [store.layout.templates(), store.layout.apps()] {
        for owner in std::fs::read_dir(&top).into_iter().flatten().flatten() {
            let dir = owner.path();
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') || !name.contains(".partial") {
                    continue;
                }
                let stale = match name
                    .rsplit_once(".partial-")
                    .and_then(|(_, pid)| pid.parse::<i32>().ok())
                {
                    Some(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                    // An app update's layer: stale unless an update holds the app's lock.
                    None => std::fs::File::open(&dir)
                        .ok()
                        .map(|f| {
                            rustix::fs::flock(
                                &f,
                                rustix::fs::FlockOperation::NonBlockingLockExclusive,
                            )
                            .is_ok()
                        })
                        .unwrap_or(false),
                };
                if stale {
                    if !dry_run {
                        std::fs::remove_dir_all(e.path())
                            .ctx(|| format!("remove {}", e.path().display()))?;
                    }
                    out.push(e.path());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// The monitor records at exit exactly the calls the pre-image supervisor may answer.
    #[test]
    fn the_supervisors_calls_are_the_monitors_notified_ones() {
        let mut a: Vec<i64> = ve::supervise::notified().iter().map(|c| c.0).collect();
        let mut b: Vec<i64> = monitor::syscalls::notified_calls();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
