//! Printing what the `lifecycle` crate does: `jcs template …`, `jcs app …`, `jcs run`, `ps`,
//! `inspect`, `rm`, `gc`. Nothing here changes the store itself.

use crate::json;
use crate::output::{time_ms, Table};
use anyhow::Result;
use lifecycle::app::{PersistentStorage, Updated};
use model::Name;
use std::io::{IsTerminal, Write};
use store::Store;

/// `jcs template create`, with debootstrap's progress on one status line (a terminal) or one
/// line per stage (a log).
pub fn template_create(
    store: &Store,
    name: &Name,
    source: lifecycle::template::Source,
    json: bool,
) -> Result<()> {
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let mut last_stage = String::new();
    let mut shown = false;
    let mut progress = |line: &str| {
        let secs = started.elapsed().as_secs();
        if tty {
            let short: String = line.chars().take(70).collect();
            eprint!("\r\x1b[2K[{secs:>3}s] {name}: {short}");
            let _ = std::io::stderr().flush();
            shown = true;
        } else if let Some(stage) = line
            .strip_prefix("I: ")
            .and_then(|l| l.split_whitespace().next())
        {
            if stage != last_stage {
                eprintln!("[{secs:>3}s] {name}: {line}");
                last_stage = stage.to_string();
            }
        }
    };
    let r = lifecycle::template::create(store, name, source, &mut progress);
    if shown {
        eprintln!();
    }
    let (version, dest) = r?;
    if json {
        json::print(&json::TemplateCreated {
            template: name.to_string(),
            version,
            path: dest,
        })
    } else {
        println!("template {name} version {version} at {}", dest.display());
        Ok(())
    }
}

pub fn template_list(store: &Store, json: bool) -> Result<()> {
    let rows = store.catalog.templates()?;
    if json {
        return json::print(&json::Templates { templates: rows });
    }
    let mut t = Table::new(&["NAME", "VERSION", "SOURCE", "CREATED"]);
    for r in rows {
        t.row(vec![
            r.name,
            r.version.to_string(),
            r.source,
            time_ms(r.created_ms),
        ]);
    }
    t.print();
    Ok(())
}

pub fn template_rm(store: &Store, name: &Name, version: Option<u32>) -> Result<()> {
    lifecycle::template::rm(store, name, version)?;
    println!(
        "removed template {name}{}",
        version.map(|v| format!(" version {v}")).unwrap_or_default()
    );
    Ok(())
}

pub fn app_create(store: &Store, args: lifecycle::app::CreateArgs, json: bool) -> Result<()> {
    let spec = lifecycle::app::create(store, args)?;
    if json {
        return json::print(&json::AppVersion {
            app: spec,
            version: 1,
        });
    }
    println!(
        "app {} version 1 on template {} v{}",
        spec.name, spec.template, spec.template_version
    );
    Ok(())
}

pub fn app_list(store: &Store, json: bool) -> Result<()> {
    let apps = store.catalog.apps()?;
    if json {
        let apps = apps
            .into_iter()
            .map(|a| {
                let version = store.catalog.app_latest(&a.name)?;
                Ok(json::AppVersion { app: a, version })
            })
            .collect::<Result<_>>()?;
        return json::print(&json::Apps { apps });
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

pub fn app_show(store: &Store, name: &Name, json: bool) -> Result<()> {
    let a = lifecycle::app::get(store, name)?;
    let versions = store.catalog.app_versions(name)?;
    if json {
        return json::print(&json::AppShow { app: a, versions });
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

pub fn app_rm(store: &Store, name: &Name, purge: bool) -> Result<()> {
    match lifecycle::app::rm(store, name, purge)? {
        PersistentStorage::Purged => println!("removed app {name} and its persistent storage"),
        PersistentStorage::Kept(dir) => {
            println!("removed app {name}");
            println!(
                "its persistent storage stays in {} (jcs app rm --purge removes it)",
                dir.display()
            );
        }
        PersistentStorage::None => println!("removed app {name}"),
    }
    Ok(())
}

/// `jcs app update`: the maintenance command's exit code.
pub fn app_update(
    store: &Store,
    name: &Name,
    argv: Vec<String>,
    net: model::NetMode,
    limits: model::Limits,
) -> Result<i32> {
    match lifecycle::app::update(store, name, argv, net, limits)? {
        Updated::Published(v) => {
            println!("app {name} version {v} published");
            Ok(0)
        }
        Updated::Failed { code, current } => {
            eprintln!(
                "jcs: maintenance command exited with {code}; app {name} stays at version {current}"
            );
            Ok(code)
        }
    }
}

pub fn ps(store: &Store, all: bool, json: bool) -> Result<()> {
    let rows = lifecycle::ves::ps(store, all)?;
    if json {
        return json::print(&json::Ves { ves: rows });
    }
    let mut t = Table::new(&[
        "ID", "NAME", "APP", "VER", "KIND", "STATE", "STARTED", "ENDED", "EXIT", "COMMAND",
    ]);
    for r in rows {
        t.row(vec![
            r.id.to_string(),
            r.name.unwrap_or_else(|| "-".into()),
            r.app,
            r.app_version.to_string(),
            r.kind,
            if r.removed {
                format!("{} (removed)", r.state)
            } else {
                r.state
            },
            time_ms(r.started_ms),
            r.ended_ms.map(time_ms).unwrap_or_else(|| "-".into()),
            r.exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            one_line(&r.cmd.join(" "), 60),
        ]);
    }
    t.print();
    Ok(())
}

/// Collapses whitespace (a script passed with `sh -c` spans lines) and cuts to `max` chars.
fn one_line(s: &str, max: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max - 1).collect::<String>())
    }
}

pub fn inspect(store: &Store, id: u64, json: bool) -> Result<()> {
    let r = lifecycle::ves::report(store, id)?;
    if json {
        return json::print(&r);
    }
    println!("VE {} (app {} v{})", r.ve, r.app, r.app_version);
    println!("dirties: {} entries", r.dirties.len());
    let mut t = Table::new(&[
        "CHANGE",
        "PATH",
        "TYPE",
        "SIZE",
        "MODE",
        "FLAGS",
        "SHA256 / SHADOWS",
    ]);
    for e in &r.dirties {
        use model::DirtyKind::*;
        let (change, extra) = match &e.kind {
            Added => ("added", String::new()),
            Modified { shadows } => ("modified", format!("shadows {shadows}")),
            Deleted { shadows } => ("deleted", format!("hides {shadows}")),
            Opaque { shadows } => (
                "opaque",
                shadows
                    .clone()
                    .map(|s| format!("replaces dir of {s}"))
                    .unwrap_or_default(),
            ),
        };
        let sha = e.sha256.as_deref().map(|s| &s[..16]).unwrap_or("");
        t.row(vec![
            change.into(),
            e.path.clone(),
            format!("{:?}", e.file_type).to_lowercase(),
            e.size.to_string(),
            format!("{:04o}", e.mode),
            e.flags.labels().join(","),
            [sha, extra.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    t.print();
    println!("storage: {} changes", r.storage.len());
    let mut t = Table::new(&["CHANGE", "STORAGE", "PATH", "SIZE", "SHA256"]);
    for c in &r.storage {
        t.row(vec![
            format!("{:?}", c.change).to_lowercase(),
            c.storage.clone(),
            c.path.clone(),
            c.size.to_string(),
            c.sha256
                .as_deref()
                .map(|s| s[..16].to_string())
                .unwrap_or_default(),
        ]);
    }
    t.print();
    for n in &r.notes {
        println!("note: {n}");
    }
    Ok(())
}

pub fn rm(store: &Store, ids: &[u64]) -> Result<()> {
    for (id, now) in lifecycle::ves::rm(store, ids)? {
        if now {
            println!("removed VE {id}");
        } else {
            println!("VE {id} was already removed");
        }
    }
    Ok(())
}

pub fn gc(store: &Store, o: lifecycle::ves::GcOptions, json: bool) -> Result<()> {
    let c = lifecycle::ves::gc(store, o)?;
    if json {
        return json::print(&c);
    }
    let (verb, build) = if c.dry_run {
        ("would remove", "would be removed")
    } else {
        ("removed", "removed")
    };
    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    if c.dry_run && !c.removed.is_empty() {
        println!("would remove VE(s): {}", ids(&c.removed));
    }
    for (id, why) in &c.flagged {
        println!("kept VE {id}: flagged: {why} (jcs inspect {id}; jcs rm {id} removes it)");
    }
    println!(
        "{verb} {} finished VE(s); kept {} running, {} recent, {} flagged; {} unfinished template/app build(s) {build}; {} stale kept storage listing(s) {build}",
        c.removed.len(),
        c.running.len(),
        c.recent.len(),
        c.flagged.len(),
        c.partials.len(),
        c.stale_names.len()
    );
    Ok(())
}
