//! Apps: app branches on templates, with persistent and shared storage; maintenance mode
//! publishes new app versions.

use crate::atomic::build_dir_atomically;
use crate::ves::{launch, Launch};
use crate::{refuse, Context, Result};
use model::{AppSpec, Limits, Name, NetMode};
use std::path::{Path, PathBuf};
use store::Store;

/// Parses `T` or `T:V`.
pub fn parse_template_ref(s: &str) -> Result<(Name, Option<u32>)> {
    match s.split_once(':') {
        Some((n, v)) => Ok((
            Name::parse(n)?,
            Some(v.parse().map_err(|_| {
                crate::LifecycleError::Arg(format!("template version {v:?} is not a number"))
            })?),
        )),
        None => Ok((Name::parse(s)?, None)),
    }
}

/// What `jcs app create` asks for, as given (validated by [`create`]).
#[derive(Debug, Clone)]
pub struct CreateArgs {
    pub name: String,
    /// `NAME` or `NAME:VERSION`.
    pub template: String,
    /// Initial content of the app branch.
    pub from_dir: Option<PathBuf>,
    /// The app's policy (a policy file's text, validated here), for version 1.
    pub policy: Option<(String, String)>,
    /// Directories inside the VE that persist across the app's VEs.
    pub persist: Vec<String>,
    /// `PATH=SHARED`.
    pub share: Vec<String>,
    pub net: NetMode,
    pub cmd: Vec<String>,
}

/// Creates each storage mount point inside the app layer unless the template already has it
/// as a directory; refuses when the template has a non-directory there.
fn add_mount_points(layer: &Path, template: &Path, spec: &AppSpec) -> Result<()> {
    for p in spec.mount_points() {
        if let Ok(m) = std::fs::symlink_metadata(template.join(p.relative())) {
            if m.is_dir() {
                continue;
            }
            refuse!(
                "{p} exists in template {} and is not a directory",
                spec.template
            );
        }
        std::fs::create_dir_all(layer.join(p.relative()))
            .ctx(|| format!("create mount point {p}"))?;
    }
    Ok(())
}

/// Creates an app (its version 1) and its storage directories; nothing is left on failure.
pub fn create(store: &Store, a: CreateArgs) -> Result<AppSpec> {
    let name = Name::parse(&a.name)?;
    // Validate everything before touching the disk.
    let (tname, tver) = parse_template_ref(&a.template)?;
    let latest = store
        .catalog
        .template_latest(&tname)?
        .ctx(|| format!("unknown template {tname} (see jcs template list)"))?;
    let tver = tver.unwrap_or(latest);
    if !store.catalog.template_exists(&tname, tver)? {
        refuse!("template {tname} has no version {tver}");
    }
    if let Some((via, text)) = &a.policy {
        model::policy::Policy::parse(text)
            .map_err(|e| crate::LifecycleError::Arg(format!("--policy {via}: {e}")))?;
    }
    let spec = AppSpec {
        name: name.clone(),
        template: tname,
        template_version: tver,
        persist: a
            .persist
            .iter()
            .map(|p| {
                model::InnerPath::parse(p)
                    .map_err(|e| crate::LifecycleError::Arg(format!("--persist: {e}")))
            })
            .collect::<Result<_>>()?,
        shares: a
            .share
            .iter()
            .map(|s| {
                model::Share::parse(s)
                    .map_err(|e| crate::LifecycleError::Arg(format!("--share: {e}")))
            })
            .collect::<Result<_>>()?,
        net: a.net,
        cmd: a.cmd,
    };
    spec.validate()?;
    if store.catalog.app(&name)?.is_some() {
        refuse!(
            "app {} already exists (jcs app update changes it, jcs app rm removes it)",
            name
        );
    }
    if let Some(d) = &a.from_dir {
        if !d.is_dir() {
            refuse!("--from-dir {} is not a directory", d.display());
        }
    }
    if spec.net == NetMode::Bridge {
        crate::net::bridge_net()?;
    }
    let layer = store.layout.app_layer(&name, 1);
    if store.layout.app_dir(&name).exists() {
        refuse!(
            "{} exists but the catalog has no app {}; remove it first",
            store.layout.app_dir(&name).display(),
            name
        );
    }
    let template_dir = store.layout.template(&spec.template, spec.template_version);
    build_dir_atomically(&layer, |dir| {
        if let Some(src) = &a.from_dir {
            let out = std::process::Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", src.display()))
                .arg(dir)
                .output()
                .ctx(|| "run cp")?;
            if !out.status.success() {
                refuse!(
                    "copy {}: {}",
                    src.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        add_mount_points(dir, &template_dir, &spec)
    })
    .inspect_err(|_| {
        // The app directory did not exist before this command (checked above).
        let _ = std::fs::remove_dir_all(store.layout.app_dir(&name));
    })
    .ctx(|| format!("create app {}", name))?;
    let mut made = vec![];
    let storage = (|| -> Result<()> {
        for p in &spec.persist {
            let d = store.layout.persist(&spec.name, p);
            if !d.exists() {
                std::fs::create_dir_all(&d).ctx(|| format!("create {}", d.display()))?;
                made.push(d);
            }
        }
        for s in &spec.shares {
            let d = store.layout.shared(&s.shared);
            if !d.exists() {
                std::fs::create_dir_all(&d).ctx(|| format!("create {}", d.display()))?;
                made.push(d);
            }
        }
        if let Some((_, text)) = &a.policy {
            let f = store.layout.app_policy(&spec.name, 1);
            crate::atomic::write_file(&f, text.as_bytes())
                .ctx(|| format!("write {}", f.display()))?;
        }
        store.catalog.add_app(
            &spec,
            a.from_dir
                .as_ref()
                .map(|d| format!("dir {}", d.display()))
                .as_deref()
                .unwrap_or("empty"),
        )?;
        Ok(())
    })();
    if let Err(e) = storage {
        for d in made {
            let _ = std::fs::remove_dir(&d);
        }
        let _ = std::fs::remove_dir_all(store.layout.app_dir(&name));
        return Err(e).ctx(|| format!("create app {name}"));
    }
    Ok(spec)
}

/// The app `name`, or a refusal that says how to list them.
pub fn get(store: &Store, name: &Name) -> Result<AppSpec> {
    store
        .catalog
        .app(name)?
        .ctx(|| format!("unknown app {name} (see jcs app list)"))
}

/// What [`rm`] did with the app's persistent storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistentStorage {
    Purged,
    /// Kept at this directory (the app had persistent storage).
    Kept(PathBuf),
    None,
}

/// Removes an app (never while one of its VEs runs); its persistent storage stays unless
/// `purge`.
pub fn rm(store: &Store, name: &Name, purge: bool) -> Result<PersistentStorage> {
    let a = get(store, name)?;
    let running: Vec<String> = store
        .catalog
        .ves()?
        .into_iter()
        .filter(|v| v.app == name.as_str() && store::meta::effective_state(v) == "running")
        .map(|v| v.id.to_string())
        .collect();
    if !running.is_empty() {
        refuse!(
            "app {name} has running VE(s) {}; wait for them to exit",
            running.join(", ")
        );
    }
    store.catalog.remove_app(name)?;
    let dir = store.layout.app_dir(name);
    std::fs::remove_dir_all(&dir).ctx(|| format!("remove {}", dir.display()))?;
    let pdir = store.layout.persist_app(name);
    if purge {
        if pdir.exists() {
            std::fs::remove_dir_all(&pdir).ctx(|| format!("remove {}", pdir.display()))?;
        }
        // (And the names the store kept of it between VEs.)
        for p in &a.persist {
            let _ = std::fs::remove_file(store.layout.names_cache(&store.layout.persist(name, p)));
        }
        Ok(PersistentStorage::Purged)
    } else if !a.persist.is_empty() {
        Ok(PersistentStorage::Kept(pdir))
    } else {
        Ok(PersistentStorage::None)
    }
}

/// How a maintenance run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    /// The command succeeded: this version is published.
    Published(u32),
    /// The command exited with this code: nothing was published; the app stays at `current`.
    Failed { code: i32, current: u32 },
}

/// Maintenance mode: runs `argv` in a VE whose writable branch is the app's next layer, and
/// publishes that layer as a new version when the command succeeds.
pub fn update(
    store: &Store,
    name: &Name,
    argv: Vec<String>,
    net: NetMode,
    limits: Limits,
) -> Result<Updated> {
    let app = get(store, name)?;
    if argv.is_empty() {
        refuse!("give the maintenance command after --, e.g. jcs app update {name} -- apt-get install -y hello");
    }
    let dir = store.layout.app_dir(name);
    let lock = std::fs::File::open(&dir).ctx(|| format!("open {}", dir.display()))?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        refuse!("app {name} is already being updated by another jcs app update");
    }
    let cur = store.catalog.app_latest(name)?;
    let next = cur + 1;
    let dest = store.layout.app_layer(name, next);
    let tmp = dir.join(format!(".{next}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    if dest.exists() {
        refuse!(
            "{} exists but the catalog does not know it; remove it first",
            dest.display()
        );
    }
    std::fs::create_dir(&tmp).ctx(|| format!("create {}", tmp.display()))?;
    let r = launch(
        store,
        Launch {
            app,
            version: cur,
            kind: "maintenance",
            argv: argv.clone(),
            limits,
            net,
            upper: Some(tmp.clone()),
            storage: false,
            extras: Default::default(),
        },
    );
    let (ve_id, code) = match r {
        Ok((id, exit)) => (id, exit.code()),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if code != 0 {
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(Updated::Failed { code, current: cur });
    }
    // The layer is durable before it is published (the VE's overlay, volatile, synced
    // nothing), and so is its name before the catalog says the version exists.
    let sync_fs = |p: &Path| {
        std::fs::File::open(p)
            .and_then(|d| rustix::fs::syncfs(&d).map_err(std::io::Error::from))
            .ctx(|| format!("sync {}", p.display()))
    };
    sync_fs(&tmp)?;
    std::fs::rename(&tmp, &dest).ctx(|| format!("publish {}", dest.display()))?;
    if let Some(parent) = dest.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .ctx(|| format!("sync {}", parent.display()))?;
    }
    crate::ves::set_upper(store, ve_id, &dest)?;
    if let Err(e) =
        store
            .catalog
            .add_app_version(name, next, &format!("update: {}", argv.join(" ")))
    {
        let _ = std::fs::remove_dir_all(&dest);
        return Err(e).ctx(|| "record the new app version");
    }
    Ok(Updated::Published(next))
}

/// An app version's policy: the one its version introduced, else the closest earlier
/// version's (an empty file means none), with the version that set it.
pub fn policy(
    store: &Store,
    name: &Name,
    version: u32,
) -> Result<Option<(u32, model::policy::Policy)>> {
    for v in (1..=version).rev() {
        let f = store.layout.app_policy(name, v);
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).ctx(|| format!("read {}", f.display())),
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        let p = model::policy::Policy::parse(&text).map_err(|e| {
            crate::LifecycleError::Arg(format!(
                "the policy of app {name} v{v} ({}): {e}",
                f.display()
            ))
        })?;
        return Ok(Some((v, p)));
    }
    Ok(None)
}

/// Reads and validates a policy file: the error names the file, line and column.
pub fn read_policy(file: &Path) -> Result<(String, model::policy::Policy)> {
    let text =
        std::fs::read_to_string(file).ctx(|| format!("read the policy {}", file.display()))?;
    let p = model::policy::Policy::parse(&text)
        .map_err(|e| crate::LifecycleError::Arg(format!("{}: {e}", file.display())))?;
    Ok((text, p))
}

/// `jcs app policy`: publishes a new version of the app whose only change is its policy
/// (`None`: no policy). Running VEs keep theirs. Returns the new version.
pub fn set_policy(store: &Store, name: &Name, text: Option<&str>, via: &str) -> Result<u32> {
    get(store, name)?;
    if let Some(t) = text {
        model::policy::Policy::parse(t)
            .map_err(|e| crate::LifecycleError::Arg(format!("{via}: {e}")))?;
    }
    let dir = store.layout.app_dir(name);
    let lock = std::fs::File::open(&dir).ctx(|| format!("open {}", dir.display()))?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        refuse!("app {name} is being updated by another command; try again");
    }
    let next = store.catalog.app_latest(name)? + 1;
    let layer = store.layout.app_layer(name, next);
    let file = store.layout.app_policy(name, next);
    if layer.exists() {
        refuse!(
            "{} exists but the catalog does not know it; remove it first",
            layer.display()
        );
    }
    crate::atomic::write_file(&file, text.unwrap_or("").as_bytes())
        .ctx(|| format!("write {}", file.display()))?;
    let r = std::fs::create_dir(&layer)
        .ctx(|| format!("create {}", layer.display()))
        .and_then(|()| {
            Ok(store.catalog.add_app_version(
                name,
                next,
                &match text {
                    Some(_) => format!("policy: {via}"),
                    None => "policy removed".to_string(),
                },
            )?)
        });
    if let Err(e) = r {
        let _ = std::fs::remove_dir(&layer);
        let _ = std::fs::remove_file(&file);
        return Err(e);
    }
    Ok(next)
}
