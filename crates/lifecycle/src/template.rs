//! Templates: read-only, versioned base file systems (busybox, debootstrap, a directory, a
//! tarball).

use crate::atomic::build_dir_atomically;
use crate::{refuse, Context, Result};
use model::Name;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use store::Store;

/// Where a template's files come from.
#[derive(Debug, Clone)]
pub enum Source {
    Busybox(PathBuf),
    Debootstrap {
        suite: String,
        mirror: Option<String>,
        /// Packages to add to minbase (debootstrap --include).
        include: Vec<String>,
    },
    Dir(PathBuf),
    Tar(PathBuf),
    /// A container image: an OCI image layout or a docker archive, as one tarball.
    Image(PathBuf),
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Busybox(p) => format!("busybox {}", p.display()),
            Source::Debootstrap { suite, include, .. } if include.is_empty() => {
                format!("debootstrap {suite}")
            }
            Source::Debootstrap { suite, include, .. } => {
                format!("debootstrap {suite} +{}", include.join(","))
            }
            Source::Dir(p) => format!("dir {}", p.display()),
            Source::Tar(p) => format!("tar {}", p.display()),
            Source::Image(p) => format!("image {}", p.display()),
        }
    }
}

/// Directories every VE root needs as mount points or by convention; a template gets them at
/// creation so that a VE does not have to create them in its dirties.
const SKELETON: &[(&str, u32)] = &[
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("etc", 0o755),
    ("run", 0o755),
    ("var", 0o755),
    ("home", 0o755),
];

fn add_skeleton(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (d, mode) in SKELETON {
        let p = dir.join(d);
        if std::fs::symlink_metadata(&p).is_err() {
            std::fs::create_dir(&p).ctx(|| format!("create {}", p.display()))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))?;
        }
    }
    Ok(())
}

/// Whether an ELF file asks for a dynamic loader (has a PT_INTERP program header).
fn is_dynamic_elf(bytes: &[u8]) -> bool {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap_or_default()) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= bytes.len()
            && u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap_or_default()) == 3
    })
}

/// A tiny template: a static busybox at /bin/busybox, /bin/sh, and every applet as a symlink
/// in /usr/bin or /usr/sbin (so /bin and /sbin hold nothing else, and a file a VE drops into
/// /bin is plainly an addition).
fn build_busybox(bb: &Path, dir: &Path) -> Result<()> {
    let bytes = std::fs::read(bb).ctx(|| {
        format!(
            "read {} (install Debian's busybox-static, or set JCS_BUSYBOX)",
            bb.display()
        )
    })?;
    if is_dynamic_elf(&bytes) {
        refuse!("{} is dynamically linked; a template needs a static busybox (apt-get install busybox-static)", bb.display());
    }
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let target = dir.join("bin/busybox");
    std::fs::write(&target, &bytes).ctx(|| format!("write {}", target.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
    let out = Command::new(bb)
        .arg("--list-full")
        .output()
        .ctx(|| format!("run {} --list-full", bb.display()))?;
    if !out.status.success() {
        refuse!("{} --list-full failed", bb.display());
    }
    let list = String::from_utf8_lossy(&out.stdout);
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let name = applet.rsplit('/').next().unwrap_or(applet);
        if name == "busybox" || name.contains("..") {
            continue;
        }
        let sub = if applet.contains("sbin/") {
            "usr/sbin"
        } else {
            "usr/bin"
        };
        let link = dir.join(sub).join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("/bin/busybox", &link)
                .ctx(|| format!("symlink {}", link.display()))?;
        }
    }
    std::os::unix::fs::symlink("busybox", dir.join("bin/sh"))?;
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

fn run_tool(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .ctx(|| format!("{what}: cannot start"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Err(crate::LifecycleError::Tool {
            what: what.into(),
            line: line.into(),
        });
    }
    Ok(())
}

fn copy_dir(src: &Path, dst: &Path) -> Result<()> {
    if !src.is_dir() {
        refuse!("{} is not a directory", src.display());
    }
    run_tool(
        Command::new("cp")
            .arg("-a")
            .arg("--reflink=auto")
            .arg(format!("{}/.", src.display()))
            .arg(dst),
        &format!("copy {}", src.display()),
    )
}

fn extract_tar(tar: &Path, dst: &Path) -> Result<()> {
    if !tar.is_file() {
        refuse!("{} is not a file", tar.display());
    }
    run_tool(
        Command::new("tar")
            .arg("-xpf")
            .arg(tar)
            .arg("-C")
            .arg(dst)
            .arg("--numeric-owner"),
        &format!("extract {}", tar.display()),
    )
}

/// Runs debootstrap; every line of its output goes to `progress` as it comes.
fn debootstrap(
    suite: &str,
    mirror: Option<&str>,
    include: &[String],
    dst: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    if let Some(bad) = include.iter().find(|p| {
        p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.:".contains(c))
    }) {
        refuse!("debootstrap: {bad:?} is not a Debian package name");
    }
    let mut cmd = Command::new("debootstrap");
    cmd.arg("--variant=minbase");
    if !include.is_empty() {
        cmd.arg(format!("--include={}", include.join(",")));
    }
    cmd.arg(suite).arg(dst);
    if let Some(m) = mirror {
        cmd.arg(m);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| "debootstrap: cannot start it (apt-get install debootstrap)")?;
    let stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    let mut n = 0usize;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            n += 1;
            progress(&line.unwrap_or_default());
        }
    }
    let status = child.wait()?;
    let err = err_thread.join().unwrap_or_default();
    if !status.success() {
        let line = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        refuse!("debootstrap {suite} failed after {n} lines of output: {line}");
    }
    Ok(())
}

/// Creates template `name` (its next version) from `source`; `progress` gets the lines of a
/// long build (debootstrap). Returns the version and its directory.
pub fn create(
    store: &Store,
    name: &Name,
    source: Source,
    progress: &mut dyn FnMut(&str),
) -> Result<(u32, PathBuf)> {
    let version = store.catalog.template_latest(name)?.unwrap_or(0) + 1;
    let dest = store.layout.template(name, version);
    if dest.exists() {
        refuse!(
            "{} already exists but the catalog does not know it; remove it first",
            dest.display()
        );
    }
    build_dir_atomically(&dest, |dir| {
        match &source {
            Source::Busybox(bb) => build_busybox(bb, dir)?,
            Source::Dir(src) => copy_dir(src, dir)?,
            Source::Tar(t) => extract_tar(t, dir)?,
            Source::Image(f) => {
                // The unpacked tarball, beside the build (gc removes it if this is killed).
                let scratch = dir.with_file_name(format!(
                    ".image-{}.partial-{}",
                    std::process::id(),
                    std::process::id()
                ));
                let info = crate::image::import(f, dir, &scratch, progress)?;
                let mut line = format!("{}: {} layer(s)", info.format, info.layers);
                if !info.cmd.is_empty() {
                    line.push_str(&format!("; its command: {}", info.cmd.join(" ")));
                }
                if info.skipped_devices > 0 {
                    line.push_str(&format!(
                        "; {} device node(s) left out (a VE gets its own /dev)",
                        info.skipped_devices
                    ));
                }
                if info.skipped_xattrs > 0 {
                    line.push_str(&format!(
                        "; extended attributes of {} file(s) left out (file capabilities too)",
                        info.skipped_xattrs
                    ));
                }
                progress(&line);
            }
            Source::Debootstrap {
                suite,
                mirror,
                include,
            } => debootstrap(suite, mirror.as_deref(), include, dir, progress)?,
        }
        add_skeleton(dir)
    })
    .ctx(|| format!("create template {name}"))?;
    if let Err(e) = store
        .catalog
        .add_template(name, version, &source.describe())
    {
        let _ = std::fs::remove_dir_all(&dest);
        return Err(e).ctx(|| format!("record template {name}"));
    }
    Ok((version, dest))
}

/// Removes a template (every version, or one); refused while an app uses it.
pub fn rm(store: &Store, name: &Name, version: Option<u32>) -> Result<()> {
    if store.catalog.template_latest(name)?.is_none() {
        refuse!("unknown template {name} (see jcs template list)");
    }
    let users: Vec<String> = store
        .catalog
        .apps()?
        .into_iter()
        .filter(|a| a.template == *name && version.is_none_or(|v| a.template_version == v))
        .map(|a| a.name.to_string())
        .collect();
    if !users.is_empty() {
        refuse!(
            "template {name} is used by app(s) {}; remove them first",
            users.join(", ")
        );
    }
    if let Some(v) = version {
        if !store.catalog.template_exists(name, v)? {
            refuse!("template {name} has no version {v}");
        }
    }
    store.catalog.remove_template(name, version)?;
    let dir = match version {
        Some(v) => store.layout.template(name, v),
        None => store.layout.templates().join(name.as_str()),
    };
    std::fs::remove_dir_all(&dir).ctx(|| format!("remove {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_interp_detection() {
        // The running test binary is dynamically linked (it uses the system's libc).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(is_dynamic_elf(&me));
        assert!(!is_dynamic_elf(b"#!/bin/sh\n"));
    }
}
