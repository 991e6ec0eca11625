//! Templates from container images: an OCI image layout or a docker archive, as one tarball
//! (`podman save --format oci-archive`, `skopeo copy … oci-archive:`, `docker save`). Its
//! layers are applied in order into one directory, the template: whiteouts (`.wh.NAME`) remove
//! what lower layers made, an opaque marker (`.wh..wh..opq`) empties its directory first.
//!
//! An image is input JCS does not trust. Every path of a layer is resolved inside the template
//! as if it were the root (`openat2` with `RESOLVE_IN_ROOT`): a symbolic link a lower layer
//! made, even an absolute one or one full of `..`, leads somewhere inside the template, never
//! to the host; the last component is created without following anything (`O_EXCL |
//! O_NOFOLLOW`, `mkdirat`, `symlinkat`). Device nodes are skipped (a VE gets JCS's /dev), and
//! so are extended attributes (file capabilities are lost: said in the summary).

use crate::{refuse, Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// What an image held, for the user.
#[derive(Debug, Default, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ImageInfo {
    /// `oci` or `docker-archive`.
    pub format: String,
    pub layers: usize,
    /// The image's default command (Entrypoint + Cmd), environment and working directory.
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// Entries left out: device nodes, and extended attributes.
    pub skipped_devices: usize,
    pub skipped_xattrs: usize,
}

/// Applies the layers of the image tarball `archive` into `dst` (an empty directory);
/// `scratch` is a directory on the same file system for the unpacked tarball (removed after).
pub fn import(
    archive: &Path,
    dst: &Path,
    scratch: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<ImageInfo> {
    std::fs::create_dir_all(scratch).ctx(|| format!("create {}", scratch.display()))?;
    let r = (|| {
        let f = std::fs::File::open(archive).ctx(|| format!("open {}", archive.display()))?;
        // The outer tarball holds only blobs and JSON: the tar crate refuses any path that
        // would leave `scratch`.
        tar::Archive::new(f)
            .unpack(scratch)
            .ctx(|| format!("{}: not a readable tarball", archive.display()))?;
        let (mut info, layers, config) = layers_of(scratch)?;
        if let Some(c) = config {
            read_config(&c, &mut info);
        }
        let root = rustix::fs::open(dst, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .ctx(|| format!("open {}", dst.display()))?;
        info.layers = layers.len();
        for (i, l) in layers.iter().enumerate() {
            progress(&format!(
                "layer {}/{}: {}",
                i + 1,
                layers.len(),
                l.file_name().unwrap_or_default().to_string_lossy()
            ));
            apply_layer(&root, l, &mut info)
                .ctx(|| format!("layer {} of {}", i + 1, archive.display()))?;
        }
        Ok(info)
    })();
    let _ = std::fs::remove_dir_all(scratch);
    r
}

/// The image's layers in order (bottom first) and its config blob.
fn layers_of(dir: &Path) -> Result<(ImageInfo, Vec<PathBuf>, Option<PathBuf>)> {
    let json = |p: &Path| -> Result<serde_json::Value> {
        let b = std::fs::read(p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&b).ctx(|| format!("decode {}", p.display()))
    };
    let blob = |digest: &str| -> Result<PathBuf> {
        let Some((alg, hex)) = digest.split_once(':') else {
            refuse!("image: a digest without an algorithm: {digest:?}");
        };
        if alg.is_empty()
            || hex.is_empty()
            || !(alg.chars().chain(hex.chars()))
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            refuse!("image: a malformed digest: {digest:?}");
        }
        Ok(dir.join("blobs").join(alg).join(hex))
    };
    if dir.join("index.json").exists() {
        let mut m = json(&dir.join("index.json"))?;
        // An index may point to another index (or list several platforms): down to the
        // manifest of this machine's architecture (or the only one).
        for _ in 0..4 {
            let Some(list) = m["manifests"].as_array().cloned() else {
                break;
            };
            let arch = match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                a => a,
            };
            let pick = list
                .iter()
                .find(|d| d["platform"]["architecture"] == arch)
                .or_else(|| list.first());
            let Some(d) = pick.and_then(|d| d["digest"].as_str()) else {
                refuse!("image: index.json lists no manifest");
            };
            m = json(&blob(d)?)?;
        }
        let Some(layers) = m["layers"].as_array() else {
            refuse!("image: its manifest lists no layers");
        };
        let layers = layers
            .iter()
            .map(|l| blob(l["digest"].as_str().unwrap_or("")))
            .collect::<Result<Vec<_>>>()?;
        let config = m["config"]["digest"].as_str().map(blob).transpose()?;
        let info = ImageInfo {
            format: "oci".into(),
            ..Default::default()
        };
        return Ok((info, layers, config));
    }
    if dir.join("manifest.json").exists() {
        let m = json(&dir.join("manifest.json"))?;
        let Some(layers) = m[0]["Layers"].as_array() else {
            refuse!("image: manifest.json lists no layers");
        };
        let inside = |p: &str| -> Result<PathBuf> {
            if Path::new(p)
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
            {
                refuse!("image: a layer path leaves the archive: {p:?}");
            }
            Ok(dir.join(p))
        };
        let layers = layers
            .iter()
            .map(|l| inside(l.as_str().unwrap_or("")))
            .collect::<Result<Vec<_>>>()?;
        let config = m[0]["Config"].as_str().map(inside).transpose()?;
        let info = ImageInfo {
            format: "docker-archive".into(),
            ..Default::default()
        };
        return Ok((info, layers, config));
    }
    refuse!("image: neither an OCI image layout (index.json) nor a docker archive (manifest.json)")
}

fn read_config(p: &Path, info: &mut ImageInfo) {
    let Ok(v) = std::fs::read(p).map(|b| serde_json::from_slice::<serde_json::Value>(&b)) else {
        return;
    };
    let Ok(v) = v else { return };
    let c = &v["config"];
    let strings = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    info.cmd = [strings(&c["Entrypoint"]), strings(&c["Cmd"])].concat();
    info.env = strings(&c["Env"]);
    info.workdir = c["WorkingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .map(String::from);
}

/// A layer's bytes, decompressed by what they start with (gzip, zstd, or a plain tar).
fn layer_reader(p: &Path) -> Result<Box<dyn Read>> {
    let mut f = std::fs::File::open(p).ctx(|| format!("open {}", p.display()))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).ctx(|| format!("read {}", p.display()))?;
    let f = std::fs::File::open(p).ctx(|| format!("open {}", p.display()))?;
    Ok(match magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(f)),
        [0x28, 0xb5, 0x2f, 0xfd] => {
            Box::new(zstd::stream::read::Decoder::new(f).ctx(|| "a zstd layer")?)
        }
        _ => Box::new(f),
    })
}

/// A layer member's path, relative and without `.`/`..` (None: the root itself).
fn member(path: &Path) -> Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                refuse!("a member path with '..': {}", path.display())
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Opens directory `rel` of the template as if the template were the root.
fn open_in_root(root: &OwnedFd, rel: &Path) -> std::io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    // (Symbolic links are followed, inside the root: a layer's `var/run/x` lands where a lower
    // layer's `var/run -> /run` leads in the image, as in a container.)
    Ok(rustix::fs::openat2(
        root,
        rel,
        OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Opens (making what is missing, 0755) directory `rel` of the template, in root. A dangling
/// symbolic link on the way is followed inside the root and its target made (as `mkdir -p`
/// would in a chroot).
fn make_dirs(root: &OwnedFd, rel: &Path) -> std::io::Result<OwnedFd> {
    make_dirs_depth(root, rel, 0)
}

fn make_dirs_depth(root: &OwnedFd, rel: &Path, depth: u32) -> std::io::Result<OwnedFd> {
    if depth > 40 {
        return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
    }
    let mut at = PathBuf::new();
    let mut fd = open_in_root(root, &at)?;
    for c in rel.components() {
        let parent = at.clone();
        at.push(c);
        fd = match open_in_root(root, &at) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                match rustix::fs::mkdirat(&fd, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) => open_in_root(root, &at)?,
                    Err(rustix::io::Errno::EXIST) => {
                        // A dangling link: its target, inside the root.
                        let t = rustix::fs::readlinkat(&fd, c.as_os_str(), Vec::new())?;
                        let t = Path::new(std::ffi::OsStr::from_bytes(t.as_bytes()));
                        let joined = if t.is_absolute() {
                            t.to_path_buf()
                        } else {
                            parent.join(t)
                        };
                        make_dirs_depth(root, &in_root(&joined), depth + 1)?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e),
        };
    }
    Ok(fd)
}

/// A path inside the root, lexically: `..` stops at the root.
fn in_root(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Removes `name` in `dir`, whatever it is (a directory with everything in it).
fn remove_at(dir: &OwnedFd, name: &std::ffi::OsStr) -> std::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(rustix::io::Errno::ISDIR) | Err(rustix::io::Errno::PERM) => {
            let sub = rustix::fs::openat(
                dir,
                name,
                OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            empty_dir(&sub)?;
            match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes everything in directory `dir`.
fn empty_dir(dir: &OwnedFd) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut names = Vec::new();
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(std::ffi::OsStr::from_bytes(n).to_os_string());
        }
    }
    for n in names {
        remove_at(dir, &n)?;
    }
    Ok(())
}

fn parent_and_name(rel: &Path) -> (PathBuf, std::ffi::OsString) {
    (
        rel.parent().map(Path::to_path_buf).unwrap_or_default(),
        rel.file_name().unwrap_or_default().to_os_string(),
    )
}

/// Applies one layer: its whiteouts first (they remove what lower layers made), then its
/// members.
fn apply_layer(root: &OwnedFd, layer: &Path, info: &mut ImageInfo) -> Result<()> {
    // Pass 1: whiteouts and opaque directories.
    let mut a = tar::Archive::new(layer_reader(layer)?);
    for e in a.entries().ctx(|| "read the layer")? {
        let e = e.ctx(|| "read the layer")?;
        let Some(rel) = member(&e.path().ctx(|| "a member's path")?)? else {
            continue;
        };
        let (parent, name) = parent_and_name(&rel);
        let name = name.to_string_lossy().into_owned();
        if name == ".wh..wh..opq" {
            if let Ok(d) = open_in_root(root, &parent) {
                empty_dir(&d).ctx(|| format!("empty {}", parent.display()))?;
            }
        } else if let Some(gone) = name.strip_prefix(".wh.") {
            if let Ok(d) = open_in_root(root, &parent) {
                remove_at(&d, std::ffi::OsStr::new(gone))
                    .ctx(|| format!("remove {}/{gone}", parent.display()))?;
            }
        }
    }
    // Pass 2: the members.
    let mut a = tar::Archive::new(layer_reader(layer)?);
    for e in a.entries().ctx(|| "read the layer")? {
        let mut e = e.ctx(|| "read the layer")?;
        let Some(rel) = member(&e.path().ctx(|| "a member's path")?)? else {
            continue;
        };
        let (parent, name) = parent_and_name(&rel);
        if name.to_string_lossy().starts_with(".wh.") {
            continue;
        }
        if e.pax_extensions().ok().flatten().is_some_and(|mut x| {
            x.any(|k| k.is_ok_and(|k| k.key().is_ok_and(|k| k.starts_with("SCHILY.xattr."))))
        }) {
            info.skipped_xattrs += 1;
        }
        let h = e.header().clone();
        let mode = Mode::from_raw_mode(h.mode().unwrap_or(0o644) & 0o7777);
        let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
        let dir = make_dirs(root, &parent).ctx(|| format!("make {}", parent.display()))?;
        let what = || rel.display().to_string();
        let owner = |fd: &OwnedFd, name: &std::ffi::OsStr, flags: AtFlags| {
            rustix::fs::chownat(
                fd,
                name,
                Some(rustix::process::Uid::from_raw(uid)),
                Some(rustix::process::Gid::from_raw(gid)),
                flags,
            )
        };
        match h.entry_type() {
            tar::EntryType::Directory => {
                let exists = rustix::fs::openat(
                    &dir,
                    &name,
                    OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .is_ok();
                if !exists {
                    remove_at(&dir, &name).ctx(what)?;
                    rustix::fs::mkdirat(&dir, &name, mode).ctx(what)?;
                }
                owner(&dir, &name, AtFlags::SYMLINK_NOFOLLOW).ctx(what)?;
                rustix::fs::chmodat(&dir, &name, mode, AtFlags::empty()).ctx(what)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_at(&dir, &name).ctx(what)?;
                let fd = rustix::fs::openat(
                    &dir,
                    &name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .ctx(what)?;
                let mut f = std::fs::File::from(fd);
                std::io::copy(&mut e, &mut f).ctx(what)?;
                rustix::fs::fchown(
                    &f,
                    Some(rustix::process::Uid::from_raw(uid)),
                    Some(rustix::process::Gid::from_raw(gid)),
                )
                .ctx(what)?;
                // (After the owner: chown clears setuid and setgid.)
                rustix::fs::fchmod(&f, mode).ctx(what)?;
                if let Ok(t) = h.mtime() {
                    let ts = rustix::fs::Timespec {
                        tv_sec: t as i64,
                        tv_nsec: 0,
                    };
                    let _ = rustix::fs::futimens(
                        &f,
                        &rustix::fs::Timestamps {
                            last_access: ts,
                            last_modification: ts,
                        },
                    );
                }
            }
            tar::EntryType::Symlink => {
                let Some(target) = h.link_name().ok().flatten() else {
                    refuse!("{}: a symbolic link without a target", what());
                };
                remove_at(&dir, &name).ctx(what)?;
                rustix::fs::symlinkat(target.as_ref(), &dir, &name).ctx(what)?;
                owner(&dir, &name, AtFlags::SYMLINK_NOFOLLOW).ctx(what)?;
            }
            tar::EntryType::Link => {
                let Some(target) = h.link_name().ok().flatten() else {
                    refuse!("{}: a hard link without a target", what());
                };
                let Some(t) = member(&target)? else {
                    refuse!("{}: a hard link to the root", what());
                };
                let (tp, tn) = parent_and_name(&t);
                let tdir = open_in_root(root, &tp).ctx(what)?;
                remove_at(&dir, &name).ctx(what)?;
                rustix::fs::linkat(&tdir, &tn, &dir, &name, AtFlags::empty()).ctx(what)?;
            }
            tar::EntryType::Fifo => {
                remove_at(&dir, &name).ctx(what)?;
                rustix::fs::mknodat(&dir, &name, rustix::fs::FileType::Fifo, mode, 0).ctx(what)?;
                owner(&dir, &name, AtFlags::SYMLINK_NOFOLLOW).ctx(what)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => info.skipped_devices += 1,
            // PAX and GNU long-name headers are read by the tar crate; nothing else applies.
            _ => {}
        }
    }
    Ok(())
}
