//! The raw calls the VE's init makes to build its file system: mounts, the overlay, the
//! masks of /proc, /dev, the loopback interface. Each returns the failure as text, which the
//! child sends to the parent over the error pipe.

use super::plan::Step;
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub(super) fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

pub(super) fn last_err(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

pub(super) fn sys_mount(
    src: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), String> {
    let (s, t, f, d) = (
        CString::new(src).unwrap_or_default(),
        c(target),
        CString::new(fstype).unwrap_or_default(),
        CString::new(data).unwrap_or_default(),
    );
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            f.as_ptr(),
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                d.as_ptr().cast()
            },
        )
    };
    if r != 0 {
        return Err(last_err("mount"));
    }
    Ok(())
}

/// Creates a mount point inside the merged tree if the branches lack it (it then shows up in
/// the dirties, as every write does).
pub(super) fn ensure_dir(p: &Path) -> Result<(), String> {
    if p.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(p).map_err(|e| format!("create mount point: {e}"))
}

pub(super) fn mount_overlay(
    target: &Path,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    generated: &[(PathBuf, Vec<u8>)],
) -> Result<(), String> {
    use rustix::mount::*;
    // Each layer is named by a descriptor (`/proc/self/fd/N`), not by its host path: the
    // overlay's options, which the VE reads in its mountinfo, then show no path of the store.
    let open_layer = |p: &Path| {
        rustix::fs::open(
            p,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| format!("open layer {}: {e}", p.display()))
    };
    let by_fd = |f: &OwnedFd| format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(f));
    let lower_fds = lowers
        .iter()
        .map(|l| open_layer(l))
        .collect::<Result<Vec<_>, _>>()?;
    let (upper_fd, work_fd) = (open_layer(upper)?, open_layer(work)?);
    // The generated files: a detached tmpfs, the topmost lower. A kernel that takes no
    // detached mount as a layer gets them in the upper instead (as files the VE then has in
    // its dirties from the start).
    let tmp_layer = match generated {
        [] => None,
        files => Some(generated_layer(files)?),
    };
    let fd = match tmp_layer.as_ref().map(|t| {
        let fd = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| format!("fsopen overlay: {e}"))?;
        fsconfig_set_string(&fd, "lowerdir+", by_fd(t))
            .map(|()| fd)
            .or_else(|_| {
                write_generated(&upper_fd, generated)?;
                fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
                    .map_err(|e| format!("fsopen overlay: {e}"))
            })
    }) {
        Some(fd) => fd?,
        None => fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| format!("fsopen overlay: {e}"))?,
    };
    for (l, f) in lowers.iter().zip(&lower_fds) {
        fsconfig_set_string(&fd, "lowerdir+", by_fd(f)).map_err(|e| {
            format!(
                "overlay lowerdir+ {}: {e} (overlayfs with lowerdir+ needs Linux 6.8 or later)",
                l.display()
            )
        })?;
    }
    fsconfig_set_string(&fd, "upperdir", by_fd(&upper_fd))
        .map_err(|e| format!("overlay upperdir {}: {e}", upper.display()))?;
    fsconfig_set_string(&fd, "workdir", by_fd(&work_fd))
        .map_err(|e| format!("overlay workdir {}: {e}", work.display()))?;
    for (k, v) in [
        ("redirect_dir", "off"),
        ("metacopy", "off"),
        ("index", "off"),
    ] {
        fsconfig_set_string(&fd, k, v).map_err(|e| format!("overlay {k}={v}: {e}"))?;
    }
    fsconfig_set_flag(&fd, "volatile").map_err(|e| format!("overlay volatile: {e}"))?;
    fsconfig_create(&fd).map_err(|e| format!("create overlay: {e}"))?;
    // nodev: a device node in any branch (or one the VE makes) is not a device; the VE's
    // devices are the few on the /dev that JCS mounts over it.
    let mnt = fsmount(
        &fd,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(|e| format!("fsmount overlay: {e}"))?;
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| format!("move_mount overlay to {}: {e}", target.display()))
}

/// A detached tmpfs holding `files` (directories 0755, files 0644, owned by root).
fn generated_layer(files: &[(PathBuf, Vec<u8>)]) -> Result<OwnedFd, String> {
    use rustix::mount::*;
    let fs =
        fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| format!("fsopen tmpfs: {e}"))?;
    for (k, v) in [("mode", "0755"), ("size", "1m"), ("nr_inodes", "64")] {
        fsconfig_set_string(&fs, k, v).map_err(|e| format!("tmpfs {k}={v}: {e}"))?;
    }
    fsconfig_create(&fs).map_err(|e| format!("create tmpfs: {e}"))?;
    let root = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| format!("fsmount tmpfs: {e}"))?;
    write_generated(&root, files)?;
    Ok(root)
}

/// Writes `files` below directory `root` (a fresh one: the generated layer, or the VE's new
/// dirties), making their parents; nothing is followed (no symbolic link can be there yet,
/// and none is followed if one were).
fn write_generated(root: &OwnedFd, files: &[(PathBuf, Vec<u8>)]) -> Result<(), String> {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    for (rel, content) in files {
        let err = |e: rustix::io::Errno| format!("write {} for the VE: {e}", rel.display());
        let mut dir: Option<OwnedFd> = None;
        let parts: Vec<_> = rel.components().collect();
        let Some((name, parents)) = parts.split_last() else {
            continue;
        };
        for p in parents {
            let at = dir.as_ref().unwrap_or(root);
            match mkdirat(at, p.as_os_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(err(e)),
            }
            dir = Some(
                openat(
                    at,
                    p.as_os_str(),
                    OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY,
                    Mode::empty(),
                )
                .map_err(err)?,
            );
        }
        let f = openat(
            dir.as_ref().unwrap_or(root),
            name.as_os_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(err)?;
        let mut at = 0;
        while at < content.len() {
            at += rustix::io::write(&f, &content[at..]).map_err(err)?;
        }
    }
    Ok(())
}

/// Opens directory `inner` beneath `root` without following any symlink (creating missing
/// components), so that what a VE's branches hold at a mount point cannot redirect a mount
/// (or a `mkdir`) to the host.
fn open_beneath(root: &Path, inner: &Path) -> Result<OwnedFd, String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let mut cur = rustix::fs::open(root, flags, Mode::empty())
        .map_err(|e| format!("open {}: {e}", root.display()))?;
    let mut so_far = PathBuf::from("/");
    for c in inner.components() {
        so_far.push(c);
        let open =
            |dir: &OwnedFd| rustix::fs::openat2(dir, c.as_os_str(), flags, Mode::empty(), resolve);
        cur = match open(&cur) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(&cur, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(format!("create mount point {}: {e}", so_far.display())),
                }
                open(&cur).map_err(|e| format!("mount point {}: {e}", so_far.display()))?
            }
            Err(rustix::io::Errno::NOTDIR)
                if rustix::fs::statat(
                    &cur,
                    c.as_os_str(),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
                .is_ok_and(|st| {
                    rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink
                }) =>
            {
                return Err(format!(
                    "mount point {} is a symbolic link in the VE's file system; \
                     JCS does not follow it",
                    so_far.display()
                ))
            }
            Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::XDEV) => {
                return Err(format!(
                    "mount point {} is a symbolic link in the VE's file system; \
                     JCS does not follow it",
                    so_far.display()
                ))
            }
            Err(rustix::io::Errno::NOTDIR) => {
                return Err(format!(
                    "mount point {} is not a directory in the VE's file system",
                    so_far.display()
                ))
            }
            Err(e) => return Err(format!("mount point {}: {e}", so_far.display())),
        };
    }
    Ok(cur)
}

/// Binds `source` (recursively, nodev and nosuid) on `inner` beneath `root`, through
/// descriptors only: the mount point is the directory [`open_beneath`] resolved.
fn bind_beneath(source: &Path, root: &Path, inner: &Path) -> Result<(), String> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    let target = open_beneath(root, inner)?;
    let tree = open_tree(
        rustix::fs::CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(|e| format!("open_tree {}: {e}", source.display()))?;
    set_attrs(&tree, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID)
        .map_err(|e| format!("nodev,nosuid on {}: {e}", source.display()))?;
    attach(&tree, &target).map_err(|e| {
        format!(
            "move_mount {} to /{}: {e}",
            source.display(),
            inner.display()
        )
    })
}

/// Attaches the detached mount `tree` on the directory (or file) `target` is open on.
fn attach(tree: &OwnedFd, target: &OwnedFd) -> rustix::io::Result<()> {
    use rustix::mount::{move_mount, MoveMountFlags};
    move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// Binds a directory beneath `root` onto itself (a mount of its own, writable whatever its
/// parent mount becomes).
fn self_bind(root: &Path, inner: &Path) -> Result<(), String> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    let target = open_beneath(root, inner)?;
    let tree = open_tree(
        &target,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| format!("open_tree: {e}"))?;
    attach(&tree, &target).map_err(|e| format!("move_mount: {e}"))
}

/// Hides `inner`: a directory (made when missing, so the VE cannot make it) under an empty
/// read-only tmpfs; anything else under the host's /dev/null on a read-only nodev mount, which
/// no one can open. Never follows a symbolic link.
fn hide(root: &Path, inner: &Path) -> Result<(), String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::mount::{open_tree, OpenTreeFlags};
    let parent = inner.parent().unwrap_or(Path::new(""));
    let name = inner.file_name().ok_or("no name")?;
    let dir = open_beneath(root, parent)?;
    let st = rustix::fs::statat(&dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
    let is_dir = match &st {
        Ok(st) => {
            let t = rustix::fs::FileType::from_raw_mode(st.st_mode);
            if t == rustix::fs::FileType::Symlink {
                return Err(
                    "a symbolic link in the VE's file system; JCS does not follow it".into(),
                );
            }
            t == rustix::fs::FileType::Directory
        }
        Err(_) => true,
    };
    if is_dir {
        let fd = open_beneath(root, inner)?;
        use std::os::fd::AsRawFd;
        let target = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        return sys_mount(
            "tmpfs",
            &target,
            "tmpfs",
            (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC) as libc::c_ulong,
            "size=0,mode=000",
        );
    }
    let target = rustix::fs::openat2(
        &dir,
        name,
        OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| format!("open: {e}"))?;
    let tree = open_tree(
        rustix::fs::CWD,
        "/dev/null",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| format!("open_tree /dev/null: {e}"))?;
    set_attrs(
        &tree,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID,
    )
    .map_err(|e| format!("mount attributes: {e}"))?;
    attach(&tree, &target).map_err(|e| format!("move_mount: {e}"))
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `struct mount_attr` (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, {attr_set: attrs})` on a detached tree.
fn set_attrs(tree: &OwnedFd, attrs: u64) -> io::Result<()> {
    mount_setattr(tree, attrs, true)
}

/// `mount_setattr` on the mount `fd` is at (and, `recursive`, those below it).
fn mount_setattr(tree: &OwnedFd, attrs: u64, recursive: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let a = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid fd, an empty NUL-terminated path, and a correctly sized mount_attr
    // that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 }) as libc::c_uint,
            &a as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Parts of /proc that act on the whole host: read-only in a VE (as container runtimes do).
pub const PROC_READONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];
/// Parts of /proc that expose host memory or secrets: hidden in a VE.
pub const PROC_MASKED: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "acpi",
    "scsi",
];

pub(super) fn mask_proc(proc: &Path) -> Result<(), String> {
    let bind = (libc::MS_BIND | libc::MS_REC) as libc::c_ulong;
    let ro = (libc::MS_BIND
        | libc::MS_REMOUNT
        | libc::MS_RDONLY
        | libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC) as libc::c_ulong;
    for name in PROC_READONLY {
        let p = proc.join(name);
        if std::fs::symlink_metadata(&p).is_err() {
            continue;
        }
        sys_mount(&p.to_string_lossy(), &p, "", bind, "").map_err(|e| format!("{name}: {e}"))?;
        sys_mount("", &p, "", ro, "").map_err(|e| format!("{name} read-only: {e}"))?;
    }
    let empty_ro =
        (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC) as libc::c_ulong;
    for name in PROC_MASKED {
        let p = proc.join(name);
        match std::fs::symlink_metadata(&p) {
            Err(_) => continue,
            Ok(m) if m.is_dir() => sys_mount("tmpfs", &p, "tmpfs", empty_ro, "size=0,mode=555"),
            // The host's /dev/null: the VE's /dev is not populated yet.
            Ok(_) => sys_mount("/dev/null", &p, "", libc::MS_BIND as libc::c_ulong, ""),
        }
        .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

pub(super) fn populate_dev(dev: &Path) -> Result<(), String> {
    ensure_dir(dev)?;
    sys_mount(
        "tmpfs",
        dev,
        "tmpfs",
        (libc::MS_NOSUID | libc::MS_NOEXEC) as libc::c_ulong,
        "mode=755,size=65536k",
    )?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        use rustix::fs::{FileType, Mode, CWD};
        let p = dev.join(name);
        let mode = Mode::from_raw_mode(0o666);
        // The VE's init holds CAP_MKNOD at this point.
        rustix::fs::mknodat(
            CWD,
            &p,
            FileType::CharacterDevice,
            mode,
            rustix::fs::makedev(major, minor),
        )
        .map_err(|e| format!("mknod /dev/{name}: {e}"))?;
        // mknod is subject to the umask; make the mode exact.
        let _ = rustix::fs::chmod(&p, mode);
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))
            .map_err(|e| format!("symlink /dev/{link}: {e}"))?;
    }
    for d in ["pts", "shm"] {
        std::fs::create_dir(dev.join(d)).map_err(|e| format!("mkdir /dev/{d}: {e}"))?;
    }
    Ok(())
}

pub(super) fn loopback_up() -> Result<(), String> {
    // SAFETY: socket/ioctl on a fresh datagram socket with a zeroed, NUL-terminated ifreq. The
    // interface is "lo" of the network namespace this process just created.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(last_err("socket"));
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        let r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr);
        if r == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            let r2 = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
            libc::close(s);
            if r2 != 0 {
                return Err(last_err("SIOCSIFFLAGS lo"));
            }
            return Ok(());
        }
        libc::close(s);
        Err(last_err("SIOCGIFFLAGS lo"))
    }
}

pub(super) fn run_step(step: &Step) -> Result<(), String> {
    let nodev_nosuid_noexec = (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC) as libc::c_ulong;
    match step {
        Step::MakePrivate => sys_mount(
            "",
            Path::new("/"),
            "",
            (libc::MS_REC | libc::MS_PRIVATE) as libc::c_ulong,
            "",
        ),
        Step::Overlay {
            target,
            lowers,
            upper,
            work,
            generated,
        } => mount_overlay(target, lowers, upper, work, generated),
        Step::Bind {
            source,
            root,
            inner,
        } => bind_beneath(source, root, inner),
        Step::Writable { root, inner } => self_bind(root, inner),
        Step::ReadOnly { root, inner } => {
            let fd = open_beneath(root, inner)?;
            mount_setattr(&fd, MOUNT_ATTR_RDONLY, false).map_err(|e| format!("read-only: {e}"))
        }
        Step::Hide { root, inner } => hide(root, inner),
        Step::Proc { target } => {
            ensure_dir(target)?;
            sys_mount("proc", target, "proc", nodev_nosuid_noexec, "")
        }
        Step::ProcMask { proc } => mask_proc(proc),
        Step::Sysfs { target } => {
            ensure_dir(target)?;
            sys_mount(
                "sysfs",
                target,
                "sysfs",
                nodev_nosuid_noexec | libc::MS_RDONLY as libc::c_ulong,
                "",
            )
        }
        Step::Dev { target } => populate_dev(target),
        Step::Devpts { target } => sys_mount(
            "devpts",
            target,
            "devpts",
            (libc::MS_NOSUID | libc::MS_NOEXEC) as libc::c_ulong,
            "newinstance,ptmxmode=0666,mode=0620",
        ),
        Step::Shm { target } => sys_mount(
            "shm",
            target,
            "tmpfs",
            nodev_nosuid_noexec,
            "mode=1777,size=65536k",
        ),
        Step::Hostname(h) => {
            rustix::system::sethostname(h.as_bytes()).map_err(|e| format!("sethostname: {e}"))
        }
        Step::PivotRoot { new_root } => {
            std::env::set_current_dir(new_root).map_err(|e| format!("chdir: {e}"))?;
            rustix::process::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
            // The old root is now stacked under the new one: detach it.
            rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
                .map_err(|e| format!("detach the old root: {e}"))?;
            std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))
        }
        Step::LoopbackUp => loopback_up(),
        Step::Eth(e) => {
            crate::net::configure_ve_side(e.addr, e.prefix, e.gateway).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod generated_tests {
    use super::write_generated;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn dir_fd(p: &std::path::Path) -> std::os::fd::OwnedFd {
        std::fs::File::open(p).unwrap().into()
    }

    #[test]
    fn generated_files_are_written_with_their_parents_and_no_link_is_followed() {
        let t = tempfile::tempdir().unwrap();
        let files = vec![
            (
                PathBuf::from("etc/hosts"),
                b"127.0.0.1\tlocalhost\n".to_vec(),
            ),
            (PathBuf::from("etc/a/b"), b"x".to_vec()),
        ];
        write_generated(&dir_fd(t.path()), &files).unwrap();
        assert_eq!(
            std::fs::read(t.path().join("etc/hosts")).unwrap(),
            b"127.0.0.1\tlocalhost\n"
        );
        assert_eq!(std::fs::read(t.path().join("etc/a/b")).unwrap(), b"x");
        let mode = |p: &str| {
            std::fs::metadata(t.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("etc/hosts") & 0o755, 0o644);
        assert_eq!(mode("etc/a") & 0o755, 0o755);
        // A symbolic link where a parent goes is not followed (nor written through).
        let u = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), u.path().join("etc")).unwrap();
        assert!(write_generated(&dir_fd(u.path()), &files).is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // Nor one where the file goes.
        let v = tempfile::tempdir().unwrap();
        std::fs::create_dir(v.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), v.path().join("etc/hosts")).unwrap();
        assert!(write_generated(&dir_fd(v.path()), &files[..1]).is_err());
        assert!(!outside.path().join("f").exists());
    }
}
