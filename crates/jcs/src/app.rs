//! `jcs app create|list|show|rm|update`: app branches on templates, with persistent and shared
//! storage; maintenance mode publishes new app versions.

use crate::atomic::build_dir_atomically;
use crate::output::{print_json, time_ms, Table};
use crate::ves::{launch, Launch};
use anyhow::{bail, Context, Result};
use model::{AppSpec, Limits, Name, NetMode};
use std::path::{Path, PathBuf};
use store::Store;

/// Parses `T` or `T:V`.
pub fn parse_template_ref(s: &str) -> Result<(Name, Option<u32>)> {
    match s.split_once(':') {
        Some((n, v)) => Ok((
            Name::parse(n)?,
            Some(
                v.parse()
                    .with_context(|| format!("template version {v:?} is not a number"))?,
            ),
        )),
        None => Ok((Name::parse(s)?, None)),
    }
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Name of the app (letters, digits, '.', '_', '-')
    pub name: String,
    /// Template, as NAME or NAME:VERSION (default: its newest version)
    #[arg(long)]
    pub template: String,
    /// Initial content of the app branch
    #[arg(long, value_name = "DIR")]
    pub from_dir: Option<PathBuf>,
    /// Directory inside the VE that persists across this app's VEs (repeatable)
    #[arg(long, value_name = "PATH")]
    pub persist: Vec<String>,
    /// Mount the shared directory SHARED at PATH (repeatable); several apps can share one
    #[arg(long, value_name = "PATH=SHARED")]
    pub share: Vec<String>,
    /// Network: none (only lo) or bridge (veth into the JCS bridge)
    #[arg(long, default_value = "none")]
    pub net: NetMode,
    /// Default command of the app's VEs (takes the rest of the line)
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "CMD")]
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
            bail!(
                "{p} exists in template {} and is not a directory",
                spec.template
            );
        }
        std::fs::create_dir_all(layer.join(p.relative()))
            .with_context(|| format!("create mount point {p}"))?;
    }
    Ok(())
}

pub fn create(store: &Store, a: CreateArgs, json: bool) -> Result<()> {
    let name = Name::parse(&a.name)?;
    // Validate everything before touching the disk.
    let (tname, tver) = parse_template_ref(&a.template)?;
    let latest = store
        .catalog
        .template_latest(&tname)?
        .with_context(|| format!("unknown template {tname} (see jcs template list)"))?;
    let tver = tver.unwrap_or(latest);
    if !store.catalog.template_exists(&tname, tver)? {
        bail!("template {tname} has no version {tver}");
    }
    let spec = AppSpec {
        name: name.clone(),
        template: tname,
        template_version: tver,
        persist: a
            .persist
            .iter()
            .map(|p| model::InnerPath::parse(p).map_err(|e| anyhow::anyhow!("--persist: {e}")))
            .collect::<Result<_>>()?,
        shares: a
            .share
            .iter()
            .map(|s| model::Share::parse(s).map_err(|e| anyhow::anyhow!("--share: {e}")))
            .collect::<Result<_>>()?,
        net: a.net,
        cmd: a.cmd,
    };
    spec.validate()?;
    if store.catalog.app(&name)?.is_some() {
        bail!(
            "app {} already exists (jcs app update changes it, jcs app rm removes it)",
            name
        );
    }
    if let Some(d) = &a.from_dir {
        if !d.is_dir() {
            bail!("--from-dir {} is not a directory", d.display());
        }
    }
    if spec.net == NetMode::Bridge {
        crate::netsetup::bridge_net()?;
    }
    let layer = store.layout.app_layer(&name, 1);
    if store.layout.app_dir(&name).exists() {
        bail!(
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
                .context("run cp")?;
            if !out.status.success() {
                bail!(
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
    .with_context(|| format!("create app {}", name))?;
    let mut made = vec![];
    let storage = (|| -> Result<()> {
        for p in &spec.persist {
            let d = store.layout.persist(&spec.name, p);
            if !d.exists() {
                std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
                made.push(d);
            }
        }
        for s in &spec.shares {
            let d = store.layout.shared(&s.shared);
            if !d.exists() {
                std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
                made.push(d);
            }
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
        return Err(e.context(format!("create app {}", name)));
    }
    if json {
        return print_json(&serde_json::json!({ "app": spec, "version": 1 }));
    }
    println!(
        "app {} version 1 on template {} v{}",
        spec.name, spec.template, spec.template_version
    );
    Ok(())
}

fn get(store: &Store, name: &Name) -> Result<AppSpec> {
    store
        .catalog
        .app(name)?
        .with_context(|| format!("unknown app {name} (see jcs app list)"))
}

pub fn list(store: &Store, json: bool) -> Result<()> {
    let apps = store.catalog.apps()?;
    if json {
        let v: Vec<_> = apps
            .iter()
            .map(|a| {
                Ok(serde_json::json!({ "app": a, "version": store.catalog.app_latest(&a.name)? }))
            })
            .collect::<Result<_>>()?;
        return print_json(&v);
    }
    let mut t = Table::new(&[
        "NAME", "VERSION", "TEMPLATE", "NET", "PERSIST", "SHARES", "CMD",
    ]);
    for a in apps {
        t.row(vec![
            a.name.to_string(),
            store.catalog.app_latest(&a.name)?.to_string(),
            format!("{}:{}", a.template, a.template_version),
            a.net.to_string(),
            a.persist
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
            a.shares
                .iter()
                .map(|s| format!("{}={}", s.path, s.shared))
                .collect::<Vec<_>>()
                .join(","),
            a.cmd.join(" "),
        ]);
    }
    t.print();
    Ok(())
}

pub fn show(store: &Store, name: &Name, json: bool) -> Result<()> {
    let a = get(store, name)?;
    let versions = store.catalog.app_versions(name)?;
    if json {
        return print_json(&serde_json::json!({ "app": a, "versions": versions }));
    }
    println!("app        {}", a.name);
    println!("template   {} v{}", a.template, a.template_version);
    println!("network    {}", a.net);
    println!(
        "command    {}",
        if a.cmd.is_empty() {
            "-".into()
        } else {
            a.cmd.join(" ")
        }
    );
    for p in &a.persist {
        println!(
            "persist    {p} <- {}",
            store.layout.persist(&a.name, p).display()
        );
    }
    for s in &a.shares {
        println!(
            "shared     {} <- {}",
            s.path,
            store.layout.shared(&s.shared).display()
        );
    }
    for v in versions {
        println!(
            "version    {} ({}, {})",
            v.version,
            v.via,
            time_ms(v.created_ms)
        );
    }
    Ok(())
}

pub fn rm(store: &Store, name: &Name, purge: bool) -> Result<()> {
    let a = get(store, name)?;
    let running: Vec<String> = store
        .catalog
        .ves()?
        .into_iter()
        .filter(|v| v.app == name.as_str() && store::meta::effective_state(v) == "running")
        .map(|v| v.id.to_string())
        .collect();
    if !running.is_empty() {
        bail!(
            "app {name} has running VE(s) {}; wait for them to exit",
            running.join(", ")
        );
    }
    store.catalog.remove_app(name)?;
    let dir = store.layout.app_dir(name);
    std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    let pdir = store.layout.persist_app(name);
    if purge {
        if pdir.exists() {
            std::fs::remove_dir_all(&pdir).with_context(|| format!("remove {}", pdir.display()))?;
        }
        println!("removed app {name} and its persistent storage");
    } else {
        println!("removed app {name}");
        if !a.persist.is_empty() {
            println!(
                "its persistent storage stays in {} (jcs app rm --purge removes it)",
                pdir.display()
            );
        }
    }
    Ok(())
}

/// Maintenance mode: runs `argv` in a VE whose writable branch is the app's next layer, and
/// publishes that layer as a new version when the command succeeds.
pub fn update(
    store: &Store,
    name: &Name,
    argv: Vec<String>,
    net: NetMode,
    limits: Limits,
) -> Result<i32> {
    let app = get(store, name)?;
    if argv.is_empty() {
        bail!("give the maintenance command after --, e.g. jcs app update {name} -- apt-get install -y hello");
    }
    let dir = store.layout.app_dir(name);
    let lock = std::fs::File::open(&dir).with_context(|| format!("open {}", dir.display()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| anyhow::anyhow!("app {name} is already being updated by another jcs app update"),
    )?;
    let cur = store.catalog.app_latest(name)?;
    let next = cur + 1;
    let dest = store.layout.app_layer(name, next);
    let tmp = dir.join(format!(".{next}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    if dest.exists() {
        bail!(
            "{} exists but the catalog does not know it; remove it first",
            dest.display()
        );
    }
    std::fs::create_dir(&tmp).with_context(|| format!("create {}", tmp.display()))?;
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
        eprintln!("jcs: maintenance command exited with {code}; app {name} stays at version {cur}");
        return Ok(code);
    }
    std::fs::rename(&tmp, &dest).with_context(|| format!("publish {}", dest.display()))?;
    crate::ves::set_upper(store, ve_id, &dest)?;
    if let Err(e) =
        store
            .catalog
            .add_app_version(name, next, &format!("update: {}", argv.join(" ")))
    {
        let _ = std::fs::remove_dir_all(&dest);
        return Err(anyhow::Error::from(e).context("record the new app version"));
    }
    println!("app {name} version {next} published");
    Ok(0)
}
