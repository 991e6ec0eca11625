//! Pre-images: before a VE first changes a file of its persistent or shared storage, the
//! file's content is kept in the store's version store, so that the VE's changes can be undone
//! (`jcs abort`). The app's write-intent calls (opens for writing, truncate, unlink, rmdir,
//! rename, mkdir) are sent to a supervisor by seccomp user notification; the supervisor — a
//! thread of the VE's init, so it resolves paths in the VE's own mount namespace — keeps the
//! pre-image, then performs the call itself and hands back the result (an open's descriptor
//! by `SECCOMP_IOCTL_NOTIF_ADDFD`). Answering "continue" instead would let another thread of
//! the app change the path between the supervisor's look and the kernel's: what the
//! supervisor does is exactly what it kept a pre-image for.
//!
//! Attribute changes (chmod, chown, utimensat, the legacy utime/utimes/futimesat, set/remove
//! xattr) keep the file's mode, owner, times and extended attributes; link, symlink and mknod
//! are creations, and so is a bind of a unix socket to a path (the supervisor binds the app's
//! own socket, taken by `pidfd_getfd`, to the address it read); fchmod, fchown, futimens and
//! f*xattr too. It acts with at most the
//! capabilities the app's processes are bounded by (`ActCaps`), never the init's (setxattrat
//! and removexattrat too). What it does not cover yet: apps that chroot inside the VE (their
//! write-intent calls fail with EPERM; a bind that names no path is made).
//! If the supervisor dies, the kernel fails the notified calls (ENOSYS): writes fail closed,
//! reads go on.

use std::ffi::{CStr, CString};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Linux 6.13's `setxattrat` and `removexattrat` (one number on every architecture; libc does
/// not name them yet).
const SYS_SETXATTRAT: i64 = 463;
const SYS_REMOVEXATTRAT: i64 = 466;

/// The calls sent to the supervisor (x86_64 numbers from libc), and where their flags are
/// (`Some(i)`: only when args[i] has a write flag).
pub fn notified() -> Vec<(i64, Option<usize>)> {
    let mut v = vec![
        (libc::SYS_openat, Some(2)),
        (libc::SYS_openat2, None),
        (libc::SYS_truncate, None),
        (libc::SYS_unlinkat, None),
        (libc::SYS_renameat, None),
        (libc::SYS_renameat2, None),
        (libc::SYS_mkdirat, None),
        (libc::SYS_fchmodat, None),
        (libc::SYS_fchmodat2, None),
        (libc::SYS_fchownat, None),
        (libc::SYS_utimensat, None),
        (libc::SYS_linkat, None),
        (libc::SYS_symlinkat, None),
        (libc::SYS_fchmod, None),
        (libc::SYS_fchown, None),
        (libc::SYS_mknodat, None),
        (libc::SYS_setxattr, None),
        (libc::SYS_lsetxattr, None),
        (libc::SYS_fsetxattr, None),
        (libc::SYS_removexattr, None),
        (libc::SYS_lremovexattr, None),
        (libc::SYS_fremovexattr, None),
        (SYS_SETXATTRAT, None),
        (SYS_REMOVEXATTRAT, None),
        // A unix socket bound to a path makes a file there (the supervisor binds it).
        (libc::SYS_bind, None),
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        (libc::SYS_mknod, None),
        (libc::SYS_utime, None),
        (libc::SYS_utimes, None),
        (libc::SYS_futimesat, None),
        (libc::SYS_open, Some(1)),
        (libc::SYS_creat, None),
        (libc::SYS_unlink, None),
        (libc::SYS_rmdir, None),
        (libc::SYS_rename, None),
        (libc::SYS_mkdir, None),
        (libc::SYS_chmod, None),
        (libc::SYS_chown, None),
        (libc::SYS_lchown, None),
        (libc::SYS_link, None),
        (libc::SYS_symlink, None),
    ]);
    v
}

const WRITE_FLAGS: u32 = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u32;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The calls that end a descriptor, sent to the supervisor of an app that aborts on close
/// (answered "continue" once the file is dealt with): close, close_range, dup2 and dup3 (the
/// descriptor they replace), exit_group (every descriptor of the process).
pub fn closing() -> &'static [i64] {
    #[cfg(target_arch = "x86_64")]
    const CLOSING: &[i64] = &[
        libc::SYS_close,
        libc::SYS_close_range,
        libc::SYS_dup3,
        libc::SYS_exit_group,
        libc::SYS_dup2,
    ];
    #[cfg(not(target_arch = "x86_64"))]
    const CLOSING: &[i64] = &[
        libc::SYS_close,
        libc::SYS_close_range,
        libc::SYS_dup3,
        libc::SYS_exit_group,
    ];
    CLOSING
}

/// The classic BPF program: write-intent calls (and, `closes`, the calls of [`closing`]) →
/// USER_NOTIF, everything else → ALLOW (the deny list is a filter of its own).
pub fn filter(closes: bool) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let mut p = vec![
        stmt(LD_W_ABS, 4), // arch
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(RET_K, SECCOMP_RET_KILL_PROCESS),
    ];
    let closes: &[i64] = if closes { closing() } else { &[] };
    for (nr, flags) in notified()
        .into_iter()
        .chain(closes.iter().map(|&nr| (nr, None)))
    {
        // nr = seccomp_data.nr (offset 0); args[i] low word at 16 + 8 i.
        p.push(stmt(LD_W_ABS, 0));
        match flags {
            None => {
                p.push(jump(JEQ_K, nr as u32, 0, 1));
                p.push(stmt(RET_K, SECCOMP_RET_USER_NOTIF));
            }
            Some(i) => {
                p.push(jump(JEQ_K, nr as u32, 0, 3));
                p.push(stmt(LD_W_ABS, 16 + 8 * i as u32));
                p.push(jump(JSET_K, WRITE_FLAGS, 0, 1));
                p.push(stmt(RET_K, SECCOMP_RET_USER_NOTIF));
            }
        }
    }
    p.push(stmt(RET_K, SECCOMP_RET_ALLOW));
    p
}

const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;
const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// Installs [`filter`] on the calling thread (after `no_new_privs`) and returns the listener.
/// Allocation-free apart from the program given: it runs in the app's process before `execve`.
pub fn install(prog: &[libc::sock_filter]) -> io::Result<OwnedFd> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: a valid program that outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
            &fprog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SeccompData {
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
#[derive(Default)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct NotifAddfd {
    id: u64,
    flags: u32,
    srcfd: u32,
    newfd: u32,
    newfd_flags: u32,
}

const IOCTL_RECV: libc::c_ulong = 0xc050_2100;
const IOCTL_SEND: libc::c_ulong = 0xc018_2101;
const IOCTL_ID_VALID: libc::c_ulong = 0x4008_2102;
const IOCTL_ADDFD: libc::c_ulong = 0x4018_2103;
const IOCTL_SET_FLAGS: libc::c_ulong = 0x4008_2104;
const ADDFD_FLAG_SEND: u32 = 1 << 1;
const USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
const USER_NOTIF_FLAG_CONTINUE: u32 = 1;

/// One persistent or shared directory of the VE: its path inside the VE and its store-level
/// name (`persist:APP:/data`, `shared:NAME`), which the undo log uses.
#[derive(Debug, Clone)]
pub struct Storage {
    pub inner: String,
    pub name: String,
}

/// One entry of a VE's undo log (JSON lines, `versions/undo/VE.jsonl`): what the VE changed,
/// with what it takes to put it back. Paths are inside the VE; `storage` is the store-level
/// name of the directory they are in, `rel` the path below it.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Undo {
    pub seq: u64,
    pub time_ns: u64,
    /// `content` (the file existed: `object` holds its bytes), `attrs` (only its mode, owner
    /// or times changed), `created` (a new file, directory or link), `deleted` (the file was removed: `object` holds its bytes; a directory or
    /// symbolic link: `kind` says which), `renamed` (from `rel` to `to_rel`).
    pub what: String,
    pub storage: String,
    pub rel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_storage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_rel: Option<String>,
    /// `file`, `dir` or `symlink`.
    pub kind: String,
    /// blake3 of the content, hex (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The link's target (symbolic links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub size: u64,
    /// The file's identity (device, inode) when it was kept.
    pub dev: u64,
    pub ino: u64,
    /// Its extended attributes (`attrs`, `deleted`): (name, value in hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xattrs: Option<Vec<(String, String)>>,
    /// `renamed` by `RENAME_EXCHANGE`: the two names swapped files (`dev`, `ino`: the file
    /// now at `to_rel`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exchanged: bool,
}

/// Where pre-images go: the store's `versions/objects` and the VE's undo log (opened before
/// pivot_root).
#[derive(Debug)]
pub struct Keep {
    pub objects: OwnedFd,
    pub log: std::fs::File,
}

/// The VE's slot of the kernel's map of denied VEs, mapped read-only (`abort_on_close`).
pub struct Tainted {
    map: *const u64,
    len: usize,
    slot: usize,
    ve: u64,
}

// SAFETY: a read-only shared mapping, read with volatile loads from one thread at a time.
unsafe impl Send for Tainted {}

impl std::fmt::Debug for Tainted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tainted").field("ve", &self.ve).finish()
    }
}

impl Tainted {
    /// Opens the kernel's map `map_id` (`BPF_MAP_GET_FD_BY_ID`: the caller needs
    /// CAP_SYS_ADMIN, which the VE's init has) and maps it for VE `ve`.
    pub fn open(map_id: u32, ve: u64) -> io::Result<Tainted> {
        const BPF_MAP_GET_FD_BY_ID: libc::c_int = 14;
        // union bpf_attr for *_GET_FD_BY_ID: { id, next_id, open_flags }. (A BPF_F_RDONLY
        // descriptor cannot be mapped at all; the mapping itself is read-only, and the kernel
        // clears VM_MAYWRITE, so no mprotect makes it writable.)
        let attr: [u32; 3] = [map_id, 0, 0];
        // SAFETY: bpf(2) with a pointer to an attribute of the size given.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_GET_FD_BY_ID,
                attr.as_ptr(),
                std::mem::size_of_val(&attr),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let slots = model_taint_slots();
        let len = slots * 8;
        // SAFETY: a read-only shared mapping of an mmapable array map of `slots` u64s.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Tainted {
            map: map as *const u64,
            len,
            slot: (ve % slots as u64) as usize,
            ve,
        })
    }

    /// Whether the kernel denied this VE something.
    pub fn denied(&self) -> bool {
        // SAFETY: `slot` < slots; the kernel updates the slot concurrently (a u64 store).
        unsafe { std::ptr::read_volatile(self.map.add(self.slot)) == self.ve }
    }
}

impl Drop for Tainted {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`.
        unsafe { libc::munmap(self.map as *mut libc::c_void, self.len) };
    }
}

/// The kernel's slot count (`model::policy::TAINT_SLOTS`, which the monitor checks against
/// its map).
fn model_taint_slots() -> usize {
    model::policy::TAINT_SLOTS as usize
}

/// What a file goes back to when the VE's transaction on it is aborted at its close.
#[derive(Debug, Clone)]
enum RestorePoint {
    /// The VE created it: it goes away.
    Absent { storage: String, rel: String },
    /// This content (an object of the version store) and mode.
    Content {
        object: String,
        size: u64,
        storage: String,
        rel: String,
    },
}

/// The supervisor's state.
pub struct Supervisor {
    listener: OwnedFd,
    /// None: no pre-images are kept (the supervisor is there for a files budget).
    keep: Option<Keep>,
    storage: Vec<Storage>,
    /// `[budget] files_written`, and the files and directories of storage the VE created,
    /// wrote, truncated, replaced or removed (device, inode): a change of one more fails with
    /// EDQUOT.
    files_budget: Option<u64>,
    changed: std::collections::HashSet<(u64, u64)>,
    /// `abort_on_close`: the kernel's word on whether this VE was denied something.
    tainted: Option<Tainted>,
    /// The files budget refused a change (a denial the kernel does not see).
    refused: bool,
    /// abort_on_close: what each file the VE changed goes back to at a close once the VE is
    /// tainted — its pre-image, then its content at each close before (a committed
    /// transaction).
    restore_points: std::collections::HashMap<(u64, u64), RestorePoint>,
    /// The capabilities it acts with for the app (None: this thread's own, for tests).
    act_caps: Option<ActCaps>,
    /// abort_on_close: the files opened for writing whose last writing descriptor was not
    /// seen closing yet (a process killed by a signal closes without a call).
    pending: std::collections::HashSet<(u64, u64)>,
    /// Files whose content was kept already (device, inode).
    kept: std::collections::HashSet<(u64, u64)>,
    /// Files whose attributes were kept already.
    kept_attrs: std::collections::HashSet<(u64, u64)>,
    /// The devices of the storage directories: a file on another device is not in storage,
    /// and needs no path lookup to know it.
    storage_devs: Vec<u64>,
    seq: u64,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").finish_non_exhaustive()
    }
}

impl Supervisor {
    pub fn new(
        listener: OwnedFd,
        keep: Option<Keep>,
        storage: Vec<Storage>,
        files_budget: Option<u64>,
        tainted: Option<Tainted>,
    ) -> Supervisor {
        Supervisor {
            listener,
            keep,
            storage,
            files_budget,
            changed: Default::default(),
            tainted,
            refused: false,
            restore_points: Default::default(),
            pending: Default::default(),
            act_caps: None,
            kept: Default::default(),
            kept_attrs: Default::default(),
            storage_devs: vec![],
            seq: 0,
        }
    }

    /// Acts on the app's behalf with at most `bound` capabilities (see [`Creds::assume`]).
    pub fn acting_within(mut self, bound: u64) -> io::Result<Supervisor> {
        self.act_caps = Some(ActCaps::new(bound)?);
        Ok(self)
    }

    /// Answers notifications until the listener closes (every process of the app is gone).
    pub fn run(mut self) {
        if let Some(c) = &self.act_caps {
            c.adopt();
        }
        // The app's thread and this one wake each other on the same CPU (≈13 µs a round trip
        // instead of ≈100). The flags are the ioctl's argument itself, not a pointer.
        // SAFETY: an ioctl with an integer argument.
        // SAFETY: an ioctl with an integer argument.
        let r = unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                IOCTL_SET_FLAGS,
                USER_NOTIF_FD_SYNC_WAKE_UP as libc::c_ulong,
            )
        };
        if r < 0 {
            eprintln!(
                "jcs: the pre-image supervisor runs without synchronous wake-ups: {}",
                io::Error::last_os_error()
            );
        }
        self.storage_devs = self
            .storage
            .iter()
            .filter_map(|s| rustix::fs::stat(s.inner.as_str()).ok().map(|st| st.st_dev))
            .collect();
        // The supervisor creates files for the app: the app's umask applies, not this one.
        // SAFETY: umask never fails.
        unsafe { libc::umask(0) };
        // Fault injection for the tests: the supervisor stops after this many answers, as if
        // it had died (the kernel then fails the app's write-intent calls).
        let mut budget: Option<u64> = std::env::var("JCS_TEST_SUPERVISOR_EXIT_AFTER")
            .ok()
            .and_then(|v| v.parse().ok());
        loop {
            if budget == Some(0) {
                return;
            }
            budget = budget.map(|b| b - 1);
            if self.tainted.is_some() {
                // abort_on_close: wait for a notification, or for the app to be gone (then
                // the files still open for writing get their final pass).
                use rustix::event::{PollFd, PollFlags};
                let mut pfd = [PollFd::new(&self.listener, PollFlags::IN)];
                match rustix::event::poll(&mut pfd, None) {
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => return self.finish(),
                    Ok(_) => {}
                }
                let re = pfd[0].revents();
                if !re.contains(PollFlags::IN) && re.intersects(PollFlags::HUP | PollFlags::ERR) {
                    return self.finish();
                }
            }
            let mut n = Notif::default();
            // SAFETY: a zeroed notification struct of the size the ioctl expects.
            let r =
                unsafe { libc::ioctl(self.listener.as_raw_fd(), IOCTL_RECV, &mut n as *mut Notif) };
            if r < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) | Some(libc::ENOENT) => continue,
                    _ => return, // no more listeners' targets
                }
            }
            let id = n.id;
            match self.handle(&n) {
                Answer::Fd(fd, cloexec) => {
                    let a = NotifAddfd {
                        id,
                        flags: ADDFD_FLAG_SEND,
                        srcfd: fd.as_raw_fd() as u32,
                        newfd: 0,
                        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
                    };
                    // SAFETY: a valid addfd request; the kernel copies the descriptor.
                    let r = unsafe {
                        libc::ioctl(
                            self.listener.as_raw_fd(),
                            IOCTL_ADDFD,
                            &a as *const NotifAddfd,
                        )
                    };
                    // The app's table may be full (EMFILE): the call fails, it never hangs.
                    let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                    if r < 0 && e != libc::ENOENT {
                        self.send(id, 0, -e);
                    }
                }
                Answer::Value(v) => self.send(id, v, 0),
                Answer::Error(e) => self.send(id, 0, -e),
                Answer::Continue => self.send_flags(id, USER_NOTIF_FLAG_CONTINUE),
            }
        }
    }

    fn send(&self, id: u64, val: i64, error: i32) {
        self.respond(NotifResp {
            id,
            val,
            error,
            flags: 0,
        })
    }

    fn send_flags(&self, id: u64, flags: u32) {
        self.respond(NotifResp {
            id,
            val: 0,
            error: 0,
            flags,
        })
    }

    fn respond(&self, r: NotifResp) {
        // SAFETY: a valid response struct.
        unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                IOCTL_SEND,
                &r as *const NotifResp,
            )
        };
    }

    fn valid(&self, id: u64) -> bool {
        // SAFETY: an ioctl with a pointer to the id.
        unsafe { libc::ioctl(self.listener.as_raw_fd(), IOCTL_ID_VALID, &id as *const u64) == 0 }
    }

    fn handle(&mut self, n: &Notif) -> Answer {
        if self.tainted.is_some() && closing().contains(&i64::from(n.data.nr)) {
            // The close goes on whatever happened to the file: a failure here is reported in
            // the undo log, never turned into a failed close.
            if let Err(e) = self.on_close(n) {
                eprintln!("jcs: abort on close: {e}");
            }
            return Answer::Continue;
        }
        let r = self.handle_inner(n);
        if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EDQUOT)) {
            self.refused = true;
        }
        match r {
            Ok(a) => a,
            Err(e) => Answer::Error(e.raw_os_error().unwrap_or(libc::EPERM)),
        }
    }

    fn handle_inner(&mut self, n: &Notif) -> io::Result<Answer> {
        let a = n.data.args;
        let nr = i64::from(n.data.nr);
        let mut task = Task::of(n.pid)?;
        // A process that chrooted inside the VE: its paths are not resolved here (a bind that
        // names no path is made as given).
        let chrooted = !task.same_root()?;
        if chrooted && nr != libc::SYS_bind {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        let path = |i: usize| task.read_path(a[i]);
        // A NULL or empty path with AT_EMPTY_PATH: the call is about the descriptor itself.
        let opt_path = |i: usize| -> io::Result<Option<CString>> {
            if a[i] == 0 {
                return Ok(None);
            }
            let p = task.read_path(a[i])?;
            Ok((!p.as_bytes().is_empty()).then_some(p))
        };
        #[cfg(target_arch = "x86_64")]
        let legacy = match nr {
            libc::SYS_open => Some(Call::Open(libc::AT_FDCWD, path(0)?, a[1], a[2], 0)),
            libc::SYS_creat => Some(Call::Open(
                libc::AT_FDCWD,
                path(0)?,
                (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64,
                a[1],
                0,
            )),
            libc::SYS_unlink => Some(Call::Unlink(libc::AT_FDCWD, path(0)?, 0)),
            libc::SYS_rmdir => Some(Call::Unlink(
                libc::AT_FDCWD,
                path(0)?,
                libc::AT_REMOVEDIR as u64,
            )),
            libc::SYS_rename => Some(Call::Rename(
                libc::AT_FDCWD,
                path(0)?,
                libc::AT_FDCWD,
                path(1)?,
                0,
            )),
            libc::SYS_mkdir => Some(Call::Mkdir(libc::AT_FDCWD, path(0)?, a[1])),
            libc::SYS_chmod => Some(Call::Attr(
                libc::AT_FDCWD,
                Some(path(0)?),
                0,
                Attr::Mode(a[1] as u32),
            )),
            libc::SYS_chown => Some(Call::Attr(
                libc::AT_FDCWD,
                Some(path(0)?),
                0,
                Attr::Owner(a[1] as u32, a[2] as u32),
            )),
            libc::SYS_lchown => Some(Call::Attr(
                libc::AT_FDCWD,
                Some(path(0)?),
                libc::AT_SYMLINK_NOFOLLOW as u64,
                Attr::Owner(a[1] as u32, a[2] as u32),
            )),
            libc::SYS_link => Some(Call::Link(
                libc::AT_FDCWD,
                path(0)?,
                libc::AT_FDCWD,
                path(1)?,
                0,
            )),
            libc::SYS_symlink => Some(Call::Symlink(path(0)?, libc::AT_FDCWD, path(1)?)),
            libc::SYS_mknod => Some(Call::Mknod(libc::AT_FDCWD, path(0)?, a[1], a[2])),
            libc::SYS_utime => Some(Call::Attr(
                libc::AT_FDCWD,
                Some(path(0)?),
                0,
                Attr::Times(task.read_utimbuf(a[1])?),
            )),
            libc::SYS_utimes => Some(Call::Attr(
                libc::AT_FDCWD,
                Some(path(0)?),
                0,
                Attr::Times(task.read_timevals(a[1])?),
            )),
            libc::SYS_futimesat => Some(Call::Attr(
                a[0] as i32,
                opt_path(1)?,
                0,
                Attr::Times(task.read_timevals(a[2])?),
            )),
            _ => None,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let legacy = None;
        let call = match legacy {
            Some(c) => c,
            None => match nr {
                libc::SYS_openat => Call::Open(a[0] as i32, path(1)?, a[2], a[3], 0),
                libc::SYS_openat2 => {
                    let how = task.read_how(a[2], a[3])?;
                    Call::Open(a[0] as i32, path(1)?, how[0], how[1], how[2])
                }
                libc::SYS_truncate => Call::Truncate(path(0)?, a[1]),
                libc::SYS_unlinkat => Call::Unlink(a[0] as i32, path(1)?, a[2]),
                libc::SYS_renameat => Call::Rename(a[0] as i32, path(1)?, a[2] as i32, path(3)?, 0),
                libc::SYS_renameat2 => {
                    Call::Rename(a[0] as i32, path(1)?, a[2] as i32, path(3)?, a[4])
                }
                libc::SYS_mkdirat => Call::Mkdir(a[0] as i32, path(1)?, a[2]),
                libc::SYS_fchmodat => {
                    Call::Attr(a[0] as i32, Some(path(1)?), 0, Attr::Mode(a[2] as u32))
                }
                libc::SYS_fchmodat2 => {
                    Call::Attr(a[0] as i32, opt_path(1)?, a[3], Attr::Mode(a[2] as u32))
                }
                libc::SYS_fchownat => Call::Attr(
                    a[0] as i32,
                    opt_path(1)?,
                    a[4],
                    Attr::Owner(a[2] as u32, a[3] as u32),
                ),
                libc::SYS_utimensat => Call::Attr(
                    a[0] as i32,
                    opt_path(1)?,
                    a[3],
                    Attr::Times(task.read_times(a[2])?),
                ),
                libc::SYS_fchmod => Call::Attr(a[0] as i32, None, 0, Attr::Mode(a[1] as u32)),
                libc::SYS_fchown => {
                    Call::Attr(a[0] as i32, None, 0, Attr::Owner(a[1] as u32, a[2] as u32))
                }
                libc::SYS_linkat => Call::Link(a[0] as i32, path(1)?, a[2] as i32, path(3)?, a[4]),
                libc::SYS_symlinkat => Call::Symlink(path(0)?, a[1] as i32, path(2)?),
                libc::SYS_mknodat => Call::Mknod(a[0] as i32, path(1)?, a[2], a[3]),
                libc::SYS_bind => {
                    // As the kernel: a length beyond a sockaddr_storage is EINVAL.
                    if a[2] > std::mem::size_of::<libc::sockaddr_storage>() as u64 {
                        return Err(io::Error::from_raw_os_error(libc::EINVAL));
                    }
                    Call::Bind(a[0] as i32, task.read_bytes(a[1], a[2])?)
                }
                libc::SYS_setxattr | libc::SYS_lsetxattr | libc::SYS_fsetxattr => {
                    let by_fd = nr == libc::SYS_fsetxattr;
                    let value = task.read_bytes(a[2], a[3])?;
                    let x = Attr::Xattr(task.read_path(a[1])?, Some(value), a[4] as i32);
                    let nofollow = if nr == libc::SYS_lsetxattr {
                        libc::AT_SYMLINK_NOFOLLOW as u64
                    } else {
                        0
                    };
                    if by_fd {
                        Call::Attr(a[0] as i32, None, 0, x)
                    } else {
                        Call::Attr(libc::AT_FDCWD, Some(path(0)?), nofollow, x)
                    }
                }
                libc::SYS_removexattr | libc::SYS_lremovexattr | libc::SYS_fremovexattr => {
                    let x = Attr::Xattr(task.read_path(a[1])?, None, 0);
                    if nr == libc::SYS_fremovexattr {
                        Call::Attr(a[0] as i32, None, 0, x)
                    } else {
                        let nofollow = if nr == libc::SYS_lremovexattr {
                            libc::AT_SYMLINK_NOFOLLOW as u64
                        } else {
                            0
                        };
                        Call::Attr(libc::AT_FDCWD, Some(path(0)?), nofollow, x)
                    }
                }
                // setxattrat(dirfd, path, at_flags, name, struct xattr_args *, size);
                // removexattrat(dirfd, path, at_flags, name). An empty path with
                // AT_EMPTY_PATH: the descriptor itself.
                SYS_SETXATTRAT | SYS_REMOVEXATTRAT => {
                    let value = if nr == SYS_SETXATTRAT {
                        // struct xattr_args { u64 value; u32 size; u32 flags; }
                        if a[5] < 16 {
                            return Err(io::Error::from_raw_os_error(libc::EINVAL));
                        }
                        let args = task.read_bytes(a[4], 16)?;
                        let word =
                            |i: usize| u64::from_ne_bytes(args[i..i + 8].try_into().unwrap());
                        let (size, flags) = (word(8) & 0xffff_ffff, word(8) >> 32);
                        Some((task.read_bytes(word(0), size)?, flags as i32))
                    } else {
                        None
                    };
                    let name = task.read_path(a[3])?;
                    let x = match value {
                        Some((v, flags)) => Attr::Xattr(name, Some(v), flags),
                        None => Attr::Xattr(name, None, 0),
                    };
                    let at_flags = a[2] & libc::AT_SYMLINK_NOFOLLOW as u64;
                    match opt_path(1)? {
                        Some(p) => Call::Attr(a[0] as i32, Some(p), at_flags, x),
                        None if a[2] & libc::AT_EMPTY_PATH as u64 != 0 => {
                            Call::Attr(a[0] as i32, None, 0, x)
                        }
                        None => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
                    }
                }
                _ => return Err(io::Error::from_raw_os_error(libc::ENOSYS)),
            },
        };
        // What was read is what is acted on; the target must still be in its call.
        if !self.valid(n.id) {
            return Err(io::Error::from_raw_os_error(libc::EINTR));
        }
        let creds = Creds::of(&task, self.act_caps)?;
        match call {
            Call::Open(dirfd, p, flags, mode, resolve) => {
                // Opened without truncating, as the caller; what it opened (through any
                // symbolic link) is kept before it is truncated: the pre-image is of exactly
                // the file the app gets.
                const TRUNC: u64 = libc::O_TRUNC as u64;
                const CREAT: u64 = libc::O_CREAT as u64;
                const EXCL: u64 = libc::O_EXCL as u64;
                let mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) as u64 != 0 {
                    mode & !u64::from(task.umask()?)
                } else {
                    0
                };
                // A creation in storage must fit the files budget.
                // (Called as the caller: inside the guard below.)
                let room = || -> io::Result<()> {
                    if self.files_budget.is_none() {
                        return Ok(());
                    }
                    let (parent, name) = task.parent(dirfd, &p)?;
                    self.room_to_create(&parent, &name)
                };
                let (fd, created) = {
                    let _as_caller = creds.assume()?;
                    let open = |f: u64| task.open(dirfd, &p, f & !TRUNC, mode, resolve);
                    if flags & CREAT == 0 {
                        (open(flags)?, false)
                    } else if flags & EXCL != 0 {
                        room()?;
                        (open(flags)?, true)
                    } else {
                        match open(flags & !CREAT) {
                            Ok(fd) => (fd, false),
                            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                                room()?;
                                match open(flags | EXCL) {
                                    Ok(fd) => (fd, true),
                                    // Made meanwhile, or a dangling symbolic link.
                                    Err(_) => (open(flags)?, false),
                                }
                            }
                            Err(e) => return Err(e),
                        }
                    }
                };
                const WRITES: u64 = (libc::O_WRONLY | libc::O_RDWR | libc::O_TRUNC) as u64;
                if created {
                    self.log_created_fd(&fd)?;
                } else if flags & WRITES != 0 {
                    self.keep_fd(&fd)?;
                }
                if self.tainted.is_some() && flags & (libc::O_WRONLY | libc::O_RDWR) as u64 != 0 {
                    if let Ok(st) = rustix::fs::fstat(&fd) {
                        let key = (st.st_dev, st.st_ino);
                        if self.restore_points.contains_key(&key) {
                            self.pending.insert(key);
                        }
                    }
                }
                if flags & TRUNC != 0 {
                    let st = rustix::fs::fstat(&fd).map_err(io::Error::from)?;
                    if rustix::fs::FileType::from_raw_mode(st.st_mode)
                        == rustix::fs::FileType::RegularFile
                    {
                        rustix::fs::ftruncate(&fd, 0).map_err(io::Error::from)?;
                    }
                }
                Ok(Answer::Fd(fd, flags & libc::O_CLOEXEC as u64 != 0))
            }
            Call::Truncate(p, len) => {
                let fd = {
                    let _as_caller = creds.assume()?;
                    task.open(libc::AT_FDCWD, &p, libc::O_WRONLY as u64, 0, 0)?
                };
                self.keep_fd(&fd)?;
                rustix::fs::ftruncate(&fd, len).map_err(io::Error::from)?;
                Ok(Answer::Value(0))
            }
            Call::Unlink(dirfd, p, flags) => {
                let (parent, name) = creds.run(|| task.parent(dirfd, &p))?;
                self.keep(&parent, &name, "deleted")?;
                let _as_caller = creds.assume()?;
                let flags = rustix::fs::AtFlags::from_bits_retain(flags as u32);
                rustix::fs::unlinkat(&parent, name.as_c_str(), flags).map_err(io::Error::from)?;
                Ok(Answer::Value(0))
            }
            Call::Rename(d1, p1, d2, p2, flags) => {
                let (from_dir, from) = creds.run(|| task.parent(d1, &p1))?;
                let (to_dir, to) = creds.run(|| task.parent(d2, &p2))?;
                // Files budget: the file moved is a change (of storage, when it comes from
                // there); one that comes in from outside is a creation.
                if self.files_budget.is_some() {
                    if self.in_storage(&from_dir, &from).is_some() {
                        if let Ok(st) = stat_at(&from_dir, &from) {
                            self.charge((st.st_dev, st.st_ino))?;
                        }
                    } else {
                        self.room_to_create(&to_dir, &to)?;
                    }
                }
                self.keep(&to_dir, &to, "content")?;
                let as_caller = creds.assume()?;
                // SAFETY: valid descriptors and NUL-terminated names.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        from_dir.as_raw_fd(),
                        from.as_ptr(),
                        to_dir.as_raw_fd(),
                        to.as_ptr(),
                        flags as libc::c_uint,
                    )
                };
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
                drop(as_caller);
                if self.files_budget.is_some() && self.in_storage(&to_dir, &to).is_some() {
                    if let Ok(st) = stat_at(&to_dir, &to) {
                        self.changed.insert((st.st_dev, st.st_ino));
                    }
                }
                const RENAME_EXCHANGE: u64 = 2;
                self.log_renamed(&from_dir, &from, &to_dir, &to, flags & RENAME_EXCHANGE != 0)?;
                Ok(Answer::Value(0))
            }
            Call::Attr(dirfd, p, flags, attr) => {
                // The file the call changes (through a symbolic link unless NOFOLLOW), as an
                // O_PATH descriptor: its attributes are kept, then changed through it.
                let nofollow = flags & libc::AT_SYMLINK_NOFOLLOW as u64 != 0;
                let fd = match &p {
                    Some(p) => {
                        let _as_caller = creds.assume()?;
                        let f = libc::O_PATH as u64
                            | if nofollow { libc::O_NOFOLLOW as u64 } else { 0 };
                        task.open(dirfd, p, f, 0, 0)?
                    }
                    None => task.open(
                        libc::AT_FDCWD,
                        &CString::new(format!("/proc/{}/fd/{dirfd}", task.pid))
                            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
                        libc::O_PATH as u64,
                        0,
                        0,
                    )?,
                };
                self.keep_attrs(&fd)?;
                let _as_caller = creds.assume()?;
                let empty = c"";
                // SAFETY: an O_PATH descriptor, an empty NUL-terminated path, AT_EMPTY_PATH, and
                // (utimensat) a pointer to two timespecs or NULL.
                let r = unsafe {
                    match attr {
                        Attr::Mode(m) => libc::syscall(
                            libc::SYS_fchmodat2,
                            fd.as_raw_fd(),
                            empty.as_ptr(),
                            m,
                            libc::AT_EMPTY_PATH,
                        ),
                        Attr::Owner(u, g) => libc::syscall(
                            libc::SYS_fchownat,
                            fd.as_raw_fd(),
                            empty.as_ptr(),
                            u,
                            g,
                            libc::AT_EMPTY_PATH,
                        ),
                        Attr::Times(t) => libc::syscall(
                            libc::SYS_utimensat,
                            fd.as_raw_fd(),
                            empty.as_ptr(),
                            t.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()),
                            libc::AT_EMPTY_PATH,
                        ),
                        Attr::Xattr(name, value, flags) => {
                            // Through the descriptor's magic link: the file itself. A symbolic
                            // link's own attributes (l*xattr): the kernel allows no user.* ones
                            // there, and the VE lacks what the others need.
                            if is_symlink(&fd) {
                                return Err(io::Error::from_raw_os_error(libc::EPERM));
                            }
                            let at = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                            match value {
                                Some(v) => libc::setxattr(
                                    at.as_ptr(),
                                    name.as_ptr(),
                                    v.as_ptr().cast(),
                                    v.len(),
                                    flags,
                                ) as libc::c_long,
                                None => {
                                    libc::removexattr(at.as_ptr(), name.as_ptr()) as libc::c_long
                                }
                            }
                        }
                    }
                };
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(Answer::Value(0))
            }
            Call::Link(d1, p1, d2, p2, flags) => {
                let (from_dir, from) = creds.run(|| task.parent(d1, &p1))?;
                let (to_dir, to) = creds.run(|| task.parent(d2, &p2))?;
                self.room_to_create(&to_dir, &to)?;
                let as_caller = creds.assume()?;
                // SAFETY: valid descriptors and NUL-terminated names.
                let r = unsafe {
                    libc::linkat(
                        from_dir.as_raw_fd(),
                        from.as_ptr(),
                        to_dir.as_raw_fd(),
                        to.as_ptr(),
                        (flags as i32) & libc::AT_SYMLINK_FOLLOW,
                    )
                };
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
                drop(as_caller);
                self.log_created(&to_dir, &to)?;
                Ok(Answer::Value(0))
            }
            Call::Symlink(target, dirfd, p) => {
                let (parent, name) = creds.run(|| task.parent(dirfd, &p))?;
                self.room_to_create(&parent, &name)?;
                let as_caller = creds.assume()?;
                rustix::fs::symlinkat(target.as_c_str(), &parent, name.as_c_str())
                    .map_err(io::Error::from)?;
                drop(as_caller);
                self.log_created(&parent, &name)?;
                Ok(Answer::Value(0))
            }
            Call::Mkdir(dirfd, p, mode) => {
                let (parent, name) = creds.run(|| task.parent(dirfd, &p))?;
                self.room_to_create(&parent, &name)?;
                let mode = (mode as u32) & !task.umask()?;
                let as_caller = creds.assume()?;
                rustix::fs::mkdirat(
                    &parent,
                    name.as_c_str(),
                    rustix::fs::Mode::from_raw_mode(mode),
                )
                .map_err(io::Error::from)?;
                drop(as_caller);
                self.log_created(&parent, &name)?;
                Ok(Answer::Value(0))
            }
            Call::Mknod(dirfd, p, mode, dev) => {
                let (parent, name) = creds.run(|| task.parent(dirfd, &p))?;
                self.room_to_create(&parent, &name)?;
                let kind = (mode as u32) & libc::S_IFMT;
                let mode = kind | ((mode as u32) & 0o7777 & !task.umask()?);
                let as_caller = creds.assume()?;
                // SAFETY: a valid descriptor and NUL-terminated name.
                let r = unsafe {
                    libc::mknodat(parent.as_raw_fd(), name.as_ptr(), mode, dev as libc::dev_t)
                };
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
                drop(as_caller);
                self.log_created(&parent, &name)?;
                Ok(Answer::Value(0))
            }
            Call::Bind(fd, addr) => {
                // Bound here, on the app's own socket, with the address as read: what the
                // kernel would re-read from the app's memory could have changed meanwhile.
                // With the caller's own capabilities (a port below 1024 needs one), never more.
                let sock = task.fd(fd)?;
                let creds = Creds::of(
                    &task,
                    match self.act_caps {
                        Some(c) => Some(c.narrowed(task.cap_eff()?)),
                        None => None,
                    },
                )?;
                let unix = rustix::net::sockopt::socket_domain(&sock)
                    .is_ok_and(|d| d == rustix::net::AddressFamily::UNIX);
                // As the kernel: a Unix address longer than a sockaddr_un is EINVAL.
                if unix && addr.len() > std::mem::size_of::<libc::sockaddr_un>() {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                }
                let path = unix_path(&addr).filter(|_| unix);
                if chrooted && path.is_some() {
                    return Err(io::Error::from_raw_os_error(libc::EPERM));
                }
                let Some(path) = path else {
                    // Not a file (an IP address, an abstract or unnamed unix one): the
                    // kernel's own checks (the VE's network rules run on the socket's cgroup).
                    let _as_caller = creds.assume()?;
                    bind(&sock, &addr)?;
                    return Ok(Answer::Value(0));
                };
                let (parent, name) = creds.run(|| task.parent(libc::AT_FDCWD, &path))?;
                self.room_to_create(&parent, &name)?;
                let umask = task.umask()?;
                {
                    let _as_caller = creds.assume()?;
                    bind_unix_at(&sock, &parent, &name, umask)?;
                }
                self.log_created(&parent, &name)?;
                Ok(Answer::Value(0))
            }
        }
    }

    /// The storage directory `dir` is in, and its path below it: None outside storage.
    fn in_storage(&self, dir: &OwnedFd, name: &CStr) -> Option<(Storage, String)> {
        let d = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).ok()?;
        self.storage_of(d.join(name.to_str().ok()?).to_str()?)
    }

    /// The storage directory a path inside the VE is in, and the path below it.
    fn storage_of(&self, full: &str) -> Option<(Storage, String)> {
        self.storage.iter().find_map(|s| {
            let rest = full.strip_prefix(&s.inner)?;
            (rest.is_empty() || rest.starts_with('/'))
                .then(|| (s.clone(), rest.trim_start_matches('/').to_string()))
        })
    }

    /// Before a change of `name` in `dir`: keeps what it is, once per file per VE. `what`:
    /// `content` (it will be written or replaced) or `deleted` (it will be removed).
    fn keep(&mut self, dir: &OwnedFd, name: &CStr, what: &str) -> io::Result<()> {
        let Some((storage, rel)) = self.in_storage(dir, name) else {
            return Ok(());
        };
        let Ok(st) = stat_at(dir, name) else {
            return Ok(()); // nothing there yet: a creation is logged after it happens
        };
        let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
        let key = (st.st_dev, st.st_ino);
        self.charge(key)?;
        if what == "content"
            && (ft != rustix::fs::FileType::RegularFile || self.kept.contains(&key))
        {
            return Ok(());
        }
        let mut u = undo_of(&st, what, &storage.name, &rel);
        if what == "deleted"
            && matches!(
                ft,
                rustix::fs::FileType::RegularFile | rustix::fs::FileType::Directory
            )
        {
            if let Ok(at) = CString::new(format!(
                "/proc/self/fd/{}/{}",
                dir.as_raw_fd(),
                name.to_string_lossy()
            )) {
                u.xattrs = Some(read_xattrs(&at));
            }
        }
        match ft {
            rustix::fs::FileType::RegularFile => {
                u.kind = "file".into();
                if !self.kept.contains(&key) || what == "deleted" {
                    u.object = self.store_object_at(dir, name, false)?;
                }
                self.kept.insert(key);
                self.note_point(key, &u);
            }
            rustix::fs::FileType::Directory => u.kind = "dir".into(),
            rustix::fs::FileType::Symlink => {
                u.kind = "symlink".into();
                u.target = rustix::fs::readlinkat(dir, name, Vec::new())
                    .ok()
                    .map(|t| t.to_string_lossy().into_owned());
            }
            _ => return Ok(()),
        }
        self.append(u)
    }

    /// The storage directory and relative path of what `fd` is open on (None outside).
    fn fd_in_storage(&self, fd: &OwnedFd) -> Option<(Storage, String)> {
        let p = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        self.storage_of(p.to_str()?)
    }

    /// Before the first change of the attributes of what `fd` is (an O_PATH descriptor): keeps
    /// its mode, owner and times (an `attrs` entry), once per file per VE.
    fn keep_attrs(&mut self, fd: &OwnedFd) -> io::Result<()> {
        let st = rustix::fs::fstat(fd).map_err(io::Error::from)?;
        let key = (st.st_dev, st.st_ino);
        if self.kept_attrs.contains(&key) || !self.storage_devs.contains(&st.st_dev) {
            return Ok(());
        }
        let Some((storage, rel)) = self.fd_in_storage(fd) else {
            return Ok(());
        };
        let mut u = undo_of(&st, "attrs", &storage.name, &rel);
        if !is_symlink(fd) {
            let at = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            u.xattrs = Some(read_xattrs(&at));
        }
        u.kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Directory => "dir",
            rustix::fs::FileType::Symlink => "symlink",
            _ => "file",
        }
        .into();
        self.kept_attrs.insert(key);
        self.append(u)
    }

    /// Before the first change of the file `fd` is open on: keeps its content.
    fn keep_fd(&mut self, fd: &OwnedFd) -> io::Result<()> {
        let st = rustix::fs::fstat(fd).map_err(io::Error::from)?;
        let key = (st.st_dev, st.st_ino);
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
            || self.kept.contains(&key)
            || !self.storage_devs.contains(&st.st_dev)
        {
            return Ok(());
        }
        let Some((storage, rel)) = self.fd_in_storage(fd) else {
            return Ok(());
        };
        self.charge(key)?;
        let mut u = undo_of(&st, "content", &storage.name, &rel);
        u.kind = "file".into();
        let proc = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let root = rustix::fs::open(
            "/",
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(io::Error::from)?;
        u.object = self.store_object_at(&root, &proc, true)?;
        self.kept.insert(key);
        self.note_point(key, &u);
        self.append(u)
    }

    fn log_created_fd(&mut self, fd: &OwnedFd) -> io::Result<()> {
        let Some((storage, rel)) = self.fd_in_storage(fd) else {
            return Ok(());
        };
        let st = rustix::fs::fstat(fd).map_err(io::Error::from)?;
        let mut u = undo_of(&st, "created", &storage.name, &rel);
        u.kind = "file".into();
        self.kept.insert((st.st_dev, st.st_ino));
        self.changed.insert((st.st_dev, st.st_ino));
        self.note_point((st.st_dev, st.st_ino), &u);
        self.append(u)
    }

    fn log_created(&mut self, dir: &OwnedFd, name: &CStr) -> io::Result<()> {
        let Some((storage, rel)) = self.in_storage(dir, name) else {
            return Ok(());
        };
        let st = stat_at(dir, name)?;
        let mut u = undo_of(&st, "created", &storage.name, &rel);
        u.kind =
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
                "dir".into()
            } else {
                "file".into()
            };
        self.kept.insert((st.st_dev, st.st_ino));
        self.changed.insert((st.st_dev, st.st_ino));
        self.append(u)
    }

    /// abort_on_close: the first restore point of a file the VE changes (its pre-image, or
    /// absent when it created it).
    fn note_point(&mut self, key: (u64, u64), u: &Undo) {
        // A creation is a new file even on a reused inode: its point replaces the old one.
        if self.tainted.is_none() || (u.what != "created" && self.restore_points.contains_key(&key))
        {
            return;
        }
        let p = match (u.what.as_str(), &u.object) {
            ("created", _) => RestorePoint::Absent {
                storage: u.storage.clone(),
                rel: u.rel.clone(),
            },
            ("content", Some(o)) => RestorePoint::Content {
                object: o.clone(),
                size: u.size,
                storage: u.storage.clone(),
                rel: u.rel.clone(),
            },
            _ => return,
        };
        self.restore_points.insert(key, p);
    }

    /// Whether the VE was denied something: by the kernel (a network rule, the byte budget),
    /// or by this supervisor (the files budget).
    fn denied(&self) -> bool {
        self.refused || self.tainted.as_ref().is_some_and(Tainted::denied)
    }

    /// abort_on_close: a call that ends descriptors of the app. For each that was open for
    /// writing on a storage file the VE changed: once the VE was denied something, the file
    /// goes back to its restore point (the open–close transaction is aborted); before that,
    /// its content now becomes the restore point (the transaction committed).
    fn on_close(&mut self, n: &Notif) -> io::Result<()> {
        let a = n.data.args;
        let nr = i64::from(n.data.nr);
        let open_fds = |pid: u32| -> Vec<i32> {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| e.file_name().to_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        #[cfg(target_arch = "x86_64")]
        let dup2 = nr == libc::SYS_dup2;
        #[cfg(not(target_arch = "x86_64"))]
        let dup2 = false;
        let fds: Vec<i32> = if nr == libc::SYS_close {
            vec![a[0] as i32]
        } else if dup2 || nr == libc::SYS_dup3 {
            // The descriptor replaced, when the call will replace it.
            if a[0] == a[1] {
                vec![]
            } else {
                vec![a[1] as i32]
            }
        } else if nr == libc::SYS_close_range {
            const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
            if a[2] & CLOSE_RANGE_CLOEXEC != 0 {
                vec![]
            } else {
                let (lo, hi) = (a[0] as u32, a[1] as u32);
                open_fds(n.pid)
                    .into_iter()
                    .filter(|&f| f as u32 >= lo && f as u32 <= hi)
                    .collect()
            }
        } else {
            open_fds(n.pid) // exit_group
        };
        if fds.is_empty() || self.restore_points.is_empty() {
            return Ok(());
        }
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(n.pid as i32)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?,
            rustix::process::PidfdFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let denied = self.denied();
        for fd in fds {
            let Ok(dup) =
                rustix::process::pidfd_getfd(&pidfd, fd, rustix::process::PidfdGetfdFlags::empty())
            else {
                continue;
            };
            let Ok(fl) = rustix::fs::fcntl_getfl(&dup) else {
                continue;
            };
            if fl & rustix::fs::OFlags::ACCMODE == rustix::fs::OFlags::RDONLY {
                continue;
            }
            let Ok(st) = rustix::fs::fstat(&dup) else {
                continue;
            };
            let key = (st.st_dev, st.st_ino);
            let Some(point) = self.restore_points.get(&key).cloned() else {
                continue;
            };
            // The transaction on the file ends with its last writing descriptor (others may
            // be dups, or a forked child's copies).
            let ending: Vec<(u32, i32)> = if nr == libc::SYS_exit_group {
                vec![]
            } else {
                vec![(n.pid, fd)]
            };
            if others_writing(key, n.pid, nr == libc::SYS_exit_group, &ending) {
                continue;
            }
            self.pending.remove(&key);
            if denied {
                self.abort_file(&dup, &st, &point)?;
            } else {
                self.commit_point(key, &dup, &point)?;
            }
        }
        Ok(())
    }

    /// abort_on_close, once every process of the app is gone: a file still open for writing
    /// when its last writer ended without a close (a signal) is aborted too, if the VE was
    /// denied something.
    fn finish(mut self) {
        if !self.denied() {
            return;
        }
        let open: Vec<(u64, u64)> = self.pending.iter().copied().collect();
        for key in open {
            let Some(point) = self.restore_points.get(&key).cloned() else {
                continue;
            };
            let (RestorePoint::Absent { storage, rel }
            | RestorePoint::Content { storage, rel, .. }) = &point;
            let Some(full) = self
                .storage
                .iter()
                .find(|s| &s.name == storage)
                .map(|s| format!("{}/{}", s.inner.trim_end_matches('/'), rel))
            else {
                continue;
            };
            let Ok(fd) = rustix::fs::open(
                full.as_str(),
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            ) else {
                continue;
            };
            match rustix::fs::fstat(&fd) {
                Ok(st) if (st.st_dev, st.st_ino) == key => {
                    if let Err(e) = self.abort_file(&fd, &st, &point) {
                        eprintln!("jcs: abort on close, at the VE's end: {full}: {e}");
                    }
                }
                _ => {}
            }
        }
    }

    /// The content of the file `dup` is open on becomes its restore point.
    fn commit_point(
        &mut self,
        key: (u64, u64),
        dup: &OwnedFd,
        point: &RestorePoint,
    ) -> io::Result<()> {
        let (storage, rel) = match point {
            RestorePoint::Absent { storage, rel } | RestorePoint::Content { storage, rel, .. } => {
                (storage.clone(), rel.clone())
            }
        };
        let root = rustix::fs::open(
            "/",
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let proc = CString::new(format!("/proc/self/fd/{}", dup.as_raw_fd()))
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let Some(object) = self.store_object_at(&root, &proc, true)? else {
            return Ok(());
        };
        let size = rustix::fs::fstat(dup)
            .map(|s| s.st_size as u64)
            .unwrap_or(0);
        self.restore_points.insert(
            key,
            RestorePoint::Content {
                object,
                size,
                storage,
                rel,
            },
        );
        Ok(())
    }

    /// Puts the file `dup` is open on back to `point`, and says so in the undo log
    /// (`aborted-on-close`, which the host side journals when the VE ends).
    fn abort_file(
        &mut self,
        dup: &OwnedFd,
        st: &rustix::fs::Stat,
        point: &RestorePoint,
    ) -> io::Result<()> {
        let Some(Keep { objects, .. }) = &self.keep else {
            return Ok(());
        };
        // A description of our own, for writing from offset 0 whatever the app's flags.
        let reopen = || {
            rustix::fs::open(
                format!("/proc/self/fd/{}", dup.as_raw_fd()).as_str(),
                rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(io::Error::from)
        };
        let mut u;
        match point {
            RestorePoint::Content {
                object,
                size,
                storage,
                rel,
            } => {
                let src = rustix::fs::openat(
                    objects,
                    object.as_str(),
                    rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(io::Error::from)?;
                let out = reopen()?;
                rustix::fs::ftruncate(&out, 0).map_err(io::Error::from)?;
                let mut out = std::fs::File::from(out);
                std::io::copy(&mut std::fs::File::from(src), &mut out)?;
                out.set_len(*size)?;
                out.sync_data()?;
                u = undo_of(st, "aborted-on-close", storage, rel);
                u.object = Some(object.clone());
                u.kind = "file".into();
            }
            RestorePoint::Absent { storage, rel } => {
                // Created by the VE: removed, when its name still holds it; emptied otherwise.
                let removed = self
                    .storage
                    .iter()
                    .find(|s| &s.name == storage)
                    .map(|s| format!("{}/{}", s.inner.trim_end_matches('/'), rel))
                    .and_then(|full| {
                        let p = Path::new(&full);
                        let parent = rustix::fs::open(
                            p.parent()?,
                            rustix::fs::OFlags::PATH
                                | rustix::fs::OFlags::DIRECTORY
                                | rustix::fs::OFlags::CLOEXEC,
                            rustix::fs::Mode::empty(),
                        )
                        .ok()?;
                        let name = CString::new(p.file_name()?.as_encoded_bytes()).ok()?;
                        let now = stat_at(&parent, &name).ok()?;
                        ((now.st_dev, now.st_ino) == (st.st_dev, st.st_ino))
                            .then(|| {
                                rustix::fs::unlinkat(
                                    &parent,
                                    name.as_c_str(),
                                    rustix::fs::AtFlags::empty(),
                                )
                                .ok()
                            })
                            .flatten()
                    })
                    .is_some();
                if !removed {
                    rustix::fs::ftruncate(reopen()?, 0).map_err(io::Error::from)?;
                }
                u = undo_of(st, "aborted-on-close", storage, rel);
                u.kind = if removed { "removed" } else { "emptied" }.into();
            }
        }
        self.append(u)
    }

    /// Charges a change of the storage file `key` to the files budget: EDQUOT when it is a
    /// new one and the budget is spent.
    fn charge(&mut self, key: (u64, u64)) -> io::Result<()> {
        let Some(b) = self.files_budget else {
            return Ok(());
        };
        if !self.changed.contains(&key) {
            if self.changed.len() as u64 >= b {
                return Err(io::Error::from_raw_os_error(libc::EDQUOT));
            }
            self.changed.insert(key);
        }
        Ok(())
    }

    /// Before creating `name` in `dir`: EDQUOT when it would be in storage and the files
    /// budget is spent.
    fn room_to_create(&self, dir: &OwnedFd, name: &CStr) -> io::Result<()> {
        match self.files_budget {
            Some(b) if self.changed.len() as u64 >= b && self.in_storage(dir, name).is_some() => {
                Err(io::Error::from_raw_os_error(libc::EDQUOT))
            }
            _ => Ok(()),
        }
    }

    fn log_renamed(
        &mut self,
        fdir: &OwnedFd,
        from: &CStr,
        tdir: &OwnedFd,
        to: &CStr,
        exchanged: bool,
    ) -> io::Result<()> {
        let f = self.in_storage(fdir, from).map(|(s, r)| (s.name, r));
        let t = self.in_storage(tdir, to).map(|(s, r)| (s.name, r));
        let (Some((fs, fr)), Some((ts, tr))) = (f, t) else {
            return Ok(()); // into or out of storage: the content and deletion entries cover it
        };
        let st = stat_at(tdir, to)?;
        let mut u = undo_of(&st, "renamed", &fs, &fr);
        u.kind = "file".into();
        u.to_storage = Some(ts);
        u.to_rel = Some(tr);
        u.exchanged = exchanged;
        self.append(u)
    }

    fn append(&mut self, mut u: Undo) -> io::Result<()> {
        self.seq += 1;
        u.seq = self.seq;
        let Some(k) = &mut self.keep else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(&u).map_err(io::Error::other)?;
        line.push(b'\n');
        k.log.write_all(&line)?;
        k.log.sync_data()
    }

    /// Copies the file `name` in `dir` into the version store under its blake3 (deduplicated).
    /// `follow`: `name` is a magic link to one of our descriptors (`/proc/self/fd/N`).
    /// None: no pre-images are kept.
    fn store_object_at(
        &self,
        dir: &OwnedFd,
        name: &CStr,
        follow: bool,
    ) -> io::Result<Option<String>> {
        use std::io::Seek;
        let Some(Keep { objects, .. }) = &self.keep else {
            return Ok(None);
        };
        let nofollow = if follow {
            rustix::fs::OFlags::empty()
        } else {
            rustix::fs::OFlags::NOFOLLOW
        };
        let src = rustix::fs::openat(
            dir,
            name,
            rustix::fs::OFlags::RDONLY
                | nofollow
                | rustix::fs::OFlags::CLOEXEC
                | rustix::fs::OFlags::NONBLOCK,
            rustix::fs::Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let mut f = std::fs::File::from(src);
        let mut h = blake3::Hasher::new();
        h.update_reader(&mut f)?;
        let hex = h.finalize().to_hex().to_string();
        if rustix::fs::statat(objects, hex.as_str(), rustix::fs::AtFlags::empty()).is_ok() {
            return Ok(Some(hex));
        }
        let tmp = format!(".{hex}.{}", std::process::id());
        let out = rustix::fs::openat(
            objects,
            tmp.as_str(),
            rustix::fs::OFlags::WRONLY
                | rustix::fs::OFlags::CREATE
                | rustix::fs::OFlags::TRUNC
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o400),
        )
        .map_err(io::Error::from)?;
        let mut out = std::fs::File::from(out);
        f.rewind()?;
        // A reflink where the file systems allow it, a copy otherwise.
        // SAFETY: FICLONE with two valid descriptors.
        let cloned = unsafe { libc::ioctl(out.as_raw_fd(), libc::FICLONE, f.as_raw_fd()) } == 0;
        if !cloned {
            std::io::copy(&mut f, &mut out)?;
        }
        out.sync_all()?;
        rustix::fs::renameat(objects, tmp.as_str(), objects, hex.as_str())
            .map_err(io::Error::from)?;
        Ok(Some(hex))
    }
}

/// Whether a process of the VE other than by the descriptors ending (`ending`, or every
/// descriptor of `pid` when `whole`) holds file `key` open for writing.
fn others_writing(key: (u64, u64), pid: u32, whole: bool, ending: &[(u32, i32)]) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    for p in procs.flatten() {
        let Some(q) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // The init (this process) holds nothing of the app's.
        if q == std::process::id() || (whole && q == pid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{q}/fd")) else {
            continue;
        };
        for f in fds.flatten() {
            let Some(fd) = f.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if ending.contains(&(q, fd)) {
                continue;
            }
            let Ok(st) = rustix::fs::stat(format!("/proc/{q}/fd/{fd}").as_str()) else {
                continue;
            };
            if (st.st_dev, st.st_ino) != key {
                continue;
            }
            // fdinfo's "flags:" is octal; the access mode is its low two bits.
            let writes = std::fs::read_to_string(format!("/proc/{q}/fdinfo/{fd}"))
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("flags:"))
                        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
                })
                .is_some_and(|fl| fl & 3 != 0);
            if writes {
                return true;
            }
        }
    }
    false
}

fn undo_of(st: &rustix::fs::Stat, what: &str, storage: &str, rel: &str) -> Undo {
    Undo {
        seq: 0,
        time_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
        what: what.into(),
        storage: storage.into(),
        rel: rel.into(),
        to_storage: None,
        to_rel: None,
        kind: String::new(),
        object: None,
        target: None,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
        size: st.st_size as u64,
        dev: st.st_dev,
        ino: st.st_ino,
        xattrs: None,
        exchanged: false,
    }
}

fn is_symlink(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink
    })
}

/// The extended attributes of the file at `path` (a `/proc/self/fd/N` magic link to it), as
/// (name, value in hex), sorted; empty when it has none or cannot have any.
pub fn read_xattrs(path: &CStr) -> Vec<(String, String)> {
    let mut names = vec![0u8; 65536];
    // SAFETY: a NUL-terminated path and a buffer of the length given.
    let n = unsafe { libc::listxattr(path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return vec![];
    }
    let mut out = vec![];
    let mut v = vec![0u8; 65536];
    for name in names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        // SAFETY: as above.
        let m = unsafe {
            libc::getxattr(
                path.as_ptr(),
                cname.as_ptr(),
                v.as_mut_ptr().cast(),
                v.len(),
            )
        };
        if m < 0 {
            continue;
        }
        out.push((
            String::from_utf8_lossy(name).into_owned(),
            v[..m as usize].iter().map(|b| format!("{b:02x}")).collect(),
        ));
    }
    out.sort();
    out
}

/// Makes the extended attributes of the file at `path` exactly `want` ([`read_xattrs`]'s
/// form). Returns whether anything changed.
pub fn write_xattrs(path: &CStr, want: &[(String, String)]) -> io::Result<bool> {
    let have = read_xattrs(path);
    let mut changed = false;
    for (name, _) in have
        .iter()
        .filter(|(n, _)| !want.iter().any(|(w, _)| w == n))
    {
        let n =
            CString::new(name.as_str()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: NUL-terminated path and name.
        if unsafe { libc::removexattr(path.as_ptr(), n.as_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        changed = true;
    }
    for (name, hex) in want.iter().filter(|w| !have.contains(w)) {
        let n =
            CString::new(name.as_str()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let v: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
        // SAFETY: NUL-terminated path and name, a value of the length given.
        if unsafe { libc::setxattr(path.as_ptr(), n.as_ptr(), v.as_ptr().cast(), v.len(), 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        changed = true;
    }
    Ok(changed)
}

/// The file path a unix socket address names (None: not AF_UNIX, abstract, or unnamed).
fn unix_path(addr: &[u8]) -> Option<CString> {
    let family = u16::from_ne_bytes(addr.get(..2)?.try_into().ok()?);
    let p = addr.get(2..)?;
    if i32::from(family) != libc::AF_UNIX || p.first().is_none_or(|&c| c == 0) {
        return None;
    }
    let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
    CString::new(&p[..end]).ok()
}

fn bind(sock: &OwnedFd, addr: &[u8]) -> io::Result<()> {
    // SAFETY: the address's bytes and their length (the kernel copies them).
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            addr.as_ptr().cast(),
            addr.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

thread_local! {
    /// Whether this thread has a working directory and umask of its own (unshare CLONE_FS).
    static OWN_FS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Binds a unix socket to `name` in `dir` as the app would, its file made with the app's
/// `umask`: the kernel resolves a unix socket's path from the caller's working directory (no
/// `bindat`), so this thread takes a working directory of its own and goes there for the call.
fn bind_unix_at(sock: &OwnedFd, dir: &OwnedFd, name: &CStr, umask: u32) -> io::Result<()> {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid (unnamed) address.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let b = name.to_bytes();
    if b.len() > addr.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, &c) in addr.sun_path.iter_mut().zip(b) {
        *d = c as libc::c_char;
    }
    if !OWN_FS.get() {
        // SAFETY: unshares this thread's file-system context only.
        if unsafe { libc::unshare(libc::CLONE_FS) } < 0 {
            return Err(io::Error::last_os_error());
        }
        OWN_FS.set(true);
    }
    // SAFETY: a directory descriptor, on this thread's own context.
    if unsafe { libc::fchdir(dir.as_raw_fd()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: umask of this thread's own context.
    let was = unsafe { libc::umask(umask as libc::mode_t) };
    // (A name that fills sun_path has no NUL: the kernel takes it so.)
    let len = std::mem::size_of::<libc::sa_family_t>() + (b.len() + 1).min(addr.sun_path.len());
    // SAFETY: a sockaddr_un and a length within it.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    let e = io::Error::last_os_error();
    // SAFETY: as above; "/" holds no directory of storage busy.
    unsafe {
        libc::umask(was);
        libc::chdir(c"/".as_ptr());
    }
    if r < 0 {
        return Err(e);
    }
    Ok(())
}

fn stat_at(dir: &OwnedFd, name: &CStr) -> rustix::io::Result<rustix::fs::Stat> {
    rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
}

enum Answer {
    /// Let the kernel run the call (only for calls whose arguments are values: closes).
    Continue,
    Fd(OwnedFd, bool),
    Value(i64),
    Error(i32),
}

enum Call {
    /// dirfd, path, flags, mode, resolve (openat2)
    Open(i32, CString, u64, u64, u64),
    Truncate(CString, u64),
    Unlink(i32, CString, u64),
    Rename(i32, CString, i32, CString, u64),
    Mkdir(i32, CString, u64),
    /// dirfd, path (None: the descriptor itself), flags (AT_SYMLINK_NOFOLLOW), the change
    Attr(i32, Option<CString>, u64, Attr),
    /// old dirfd, old path, new dirfd, new path, flags (AT_SYMLINK_FOLLOW)
    Link(i32, CString, i32, CString, u64),
    /// target (the link's content), dirfd, path
    Symlink(CString, i32, CString),
    /// dirfd, path, mode, device
    Mknod(i32, CString, u64, u64),
    /// The socket's descriptor, the address as the app gave it
    Bind(i32, Vec<u8>),
}

/// An attribute change.
enum Attr {
    Mode(u32),
    Owner(u32, u32),
    /// utimensat's two timespecs (None: now)
    Times(Option<[libc::timespec; 2]>),
    /// An extended attribute set (`Some(value)`, with setxattr's flags) or removed.
    Xattr(CString, Option<Vec<u8>>, i32),
}

/// The process that made the call (its pid as the VE's /proc numbers it: the supervisor is
/// in the VE's pid namespace).
struct Task {
    /// The thread that made the call (/proc/TID is its process's view too).
    pid: u32,
    umask: Option<u32>,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl Task {
    /// The task's identity. Cheap for root (one stat of /proc/PID, whose owner is the task's
    /// effective ids): /proc/PID/status (≈35 µs) is read only for another user.
    fn of(pid: u32) -> io::Result<Task> {
        let st = rustix::fs::stat(format!("/proc/{pid}").as_str()).map_err(io::Error::from)?;
        let mut t = Task {
            pid,
            umask: None,
            uid: st.st_uid,
            gid: st.st_gid,
            groups: vec![],
        };
        if t.uid != 0 || t.gid != 0 {
            let s = t.status()?;
            let field = |k: &str| -> Vec<u32> {
                s.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| {
                        v.split_whitespace()
                            .filter_map(|x| x.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            // The file system ids (the fourth of each line) are what permission checks use.
            t.uid = field("Uid:").get(3).copied().unwrap_or(t.uid);
            t.gid = field("Gid:").get(3).copied().unwrap_or(t.gid);
            t.groups = field("Groups:");
        }
        Ok(t)
    }

    fn status(&self) -> io::Result<String> {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
    }

    /// A copy of the task's descriptor `fd` (of the very thread: PIDFD_THREAD, Linux 6.9; else
    /// of its process).
    fn fd(&self, fd: i32) -> io::Result<OwnedFd> {
        const PIDFD_THREAD: libc::c_long = libc::O_EXCL as libc::c_long;
        let open = |flags: libc::c_long| {
            // SAFETY: pidfd_open with a pid and flags; the result is a new descriptor we own.
            let r = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, flags) };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                // SAFETY: a new descriptor, ours alone.
                Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
            }
        };
        let pidfd = match open(PIDFD_THREAD) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open(0)?,
            r => r?,
        };
        rustix::process::pidfd_getfd(&pidfd, fd, rustix::process::PidfdGetfdFlags::empty())
            .map_err(io::Error::from)
    }

    /// The task's effective capabilities (capget: no /proc read).
    fn cap_eff(&self) -> io::Result<u64> {
        Ok(crate::caps::sets_of(self.pid as i32)?.0)
    }

    /// The task's umask (read when a call creates something).
    fn umask(&mut self) -> io::Result<u32> {
        if let Some(u) = self.umask {
            return Ok(u);
        }
        let s = self.status()?;
        let u = s
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            .unwrap_or(0o022);
        self.umask = Some(u);
        Ok(u)
    }

    /// Whether the task's root is the VE's (ours): a chrooted process's paths are not ours
    /// (its root, as we see it, is then a directory below ours).
    fn same_root(&self) -> io::Result<bool> {
        let l = rustix::fs::readlink(format!("/proc/{}/root", self.pid).as_str(), Vec::new())
            .map_err(io::Error::from)?;
        Ok(l.as_bytes() == b"/")
    }

    fn read_mem(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: one local buffer we own; the remote range is only read.
        let n = unsafe { libc::process_vm_readv(self.pid as i32, &local, 1, &remote, 1, 0) };
        if n < 0 {
            // A range that crosses into an unmapped page: retry up to the page's end.
            let page = 4096 - (addr as usize % 4096);
            if page < buf.len() {
                return self.read_mem(addr, &mut buf[..page]);
            }
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// A NUL-terminated path from the task's memory (at most PATH_MAX bytes).
    fn read_path(&self, addr: u64) -> io::Result<CString> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < libc::PATH_MAX as usize {
            let mut buf = [0u8; 256];
            let n = self.read_mem(at, &mut buf)?;
            if n == 0 {
                break;
            }
            if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..end]);
                return CString::new(out).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL));
            }
            out.extend_from_slice(&buf[..n]);
            at += n as u64;
        }
        Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
    }

    /// utimensat's `struct timespec[2]` (None: NULL, both now).
    fn read_times(&self, addr: u64) -> io::Result<Option<[libc::timespec; 2]>> {
        if addr == 0 {
            return Ok(None);
        }
        let mut b = [0u8; 32];
        if self.read_mem(addr, &mut b)? != 32 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        let w = |i: usize| i64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        Ok(Some([
            libc::timespec {
                tv_sec: w(0),
                tv_nsec: w(1),
            },
            libc::timespec {
                tv_sec: w(2),
                tv_nsec: w(3),
            },
        ]))
    }

    /// utime's `struct utimbuf` (access and modification time, seconds), as timespecs.
    fn read_utimbuf(&self, addr: u64) -> io::Result<Option<[libc::timespec; 2]>> {
        if addr == 0 {
            return Ok(None);
        }
        let mut b = [0u8; 16];
        if self.read_mem(addr, &mut b)? != 16 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        let w = |i: usize| i64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        Ok(Some([
            libc::timespec {
                tv_sec: w(0),
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: w(1),
                tv_nsec: 0,
            },
        ]))
    }

    /// utimes' and futimesat's `struct timeval[2]`, as timespecs (a bad microsecond count
    /// fails as the kernel would).
    fn read_timevals(&self, addr: u64) -> io::Result<Option<[libc::timespec; 2]>> {
        let Some(t) = self.read_times(addr)? else {
            return Ok(None);
        };
        let ns = |us: i64| {
            if (0..1_000_000).contains(&us) {
                Ok(us * 1000)
            } else {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            }
        };
        Ok(Some([
            libc::timespec {
                tv_sec: t[0].tv_sec,
                tv_nsec: ns(t[0].tv_nsec)?,
            },
            libc::timespec {
                tv_sec: t[1].tv_sec,
                tv_nsec: ns(t[1].tv_nsec)?,
            },
        ]))
    }

    /// `len` bytes of the caller's memory at `addr` (an xattr's value: at most 64 KiB).
    fn read_bytes(&self, addr: u64, len: u64) -> io::Result<Vec<u8>> {
        const XATTR_SIZE_MAX: u64 = 65536;
        if len > XATTR_SIZE_MAX {
            return Err(io::Error::from_raw_os_error(libc::E2BIG));
        }
        let mut b = vec![0u8; len as usize];
        if len > 0 && self.read_mem(addr, &mut b)? != b.len() {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        Ok(b)
    }

    /// openat2's `struct open_how` (flags, mode, resolve).
    fn read_how(&self, addr: u64, size: u64) -> io::Result<[u64; 3]> {
        if size < 24 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut b = [0u8; 24];
        if self.read_mem(addr, &mut b)? != 24 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        let w = |i: usize| u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        Ok([w(0), w(1), w(2)])
    }

    /// The path as the task means it: `/proc/self` and `/proc/thread-self` are the task's.
    fn own_path(&self, p: &CStr) -> CString {
        let b = p.to_bytes();
        let map = |prefix: &[u8], to: String| -> Option<CString> {
            let rest = b.strip_prefix(prefix)?;
            if !(rest.is_empty() || rest.starts_with(b"/")) {
                return None;
            }
            let mut v = to.into_bytes();
            v.extend_from_slice(rest);
            CString::new(v).ok()
        };
        map(b"/proc/self", format!("/proc/{}", self.pid))
            .or_else(|| {
                map(
                    b"/proc/thread-self",
                    format!("/proc/{}/task/{}", self.pid, self.pid),
                )
            })
            .unwrap_or_else(|| p.to_owned())
    }

    /// The directory relative paths of `dirfd` start from.
    fn base(&self, dirfd: i32, p: &CStr) -> io::Result<OwnedFd> {
        let at = if p.to_bytes().starts_with(b"/") {
            "/".to_string()
        } else if dirfd == libc::AT_FDCWD {
            format!("/proc/{}/cwd", self.pid)
        } else {
            format!("/proc/{}/fd/{dirfd}", self.pid)
        };
        rustix::fs::open(
            at.as_str(),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(io::Error::from)
    }

    /// Opens what the task's call names, as it would (its flags and mode); magic links only
    /// through the task's own descriptors (`/proc/PID/fd/N` of its own process).
    fn open(
        &self,
        dirfd: i32,
        p: &CStr,
        flags: u64,
        mode: u64,
        resolve: u64,
    ) -> io::Result<OwnedFd> {
        let p = self.own_path(p);
        let own_fd = format!("/proc/{}/fd/", self.pid);
        let own_tfd = format!("/proc/{}/task/{}/fd/", self.pid, self.pid);
        let magic_ok = p.to_bytes().starts_with(own_fd.as_bytes())
            || p.to_bytes().starts_with(own_tfd.as_bytes());
        let base = self.base(dirfd, &p)?;
        let mut how = rustix::fs::ResolveFlags::from_bits_retain(resolve);
        if !magic_ok {
            how |= rustix::fs::ResolveFlags::NO_MAGICLINKS;
        }
        // openat2 refuses a mode without O_CREAT or O_TMPFILE (open ignores it).
        let mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) as u64 == 0 {
            0
        } else {
            mode as u32
        };
        let flags =
            rustix::fs::OFlags::from_bits_retain(flags as u32) | rustix::fs::OFlags::CLOEXEC;
        rustix::fs::openat2(
            &base,
            p.as_c_str(),
            flags,
            rustix::fs::Mode::from_raw_mode(mode),
            how,
        )
        .map_err(io::Error::from)
    }

    /// The directory that holds what `p` names, and its last component (a symbolic link
    /// there is not followed: the pre-image is of the name the call changes).
    fn parent(&self, dirfd: i32, p: &CStr) -> io::Result<(OwnedFd, CString)> {
        let p = self.own_path(p);
        let bytes = p.to_bytes();
        let trimmed = {
            let mut b = bytes;
            while b.len() > 1 && b.ends_with(b"/") {
                b = &b[..b.len() - 1];
            }
            b
        };
        let (dir, name): (&[u8], &[u8]) = match trimmed.iter().rposition(|&c| c == b'/') {
            Some(0) => (b"/", &trimmed[1..]),
            Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
            None => (b".", trimmed),
        };
        let dir = CString::new(dir).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let base = self.base(dirfd, &p)?;
        let fd = rustix::fs::openat2(
            &base,
            dir.as_c_str(),
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
            rustix::fs::ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(io::Error::from)?;
        let name = if name.is_empty() { b"." as &[u8] } else { name };
        Ok((
            fd,
            CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
        ))
    }
}

/// The caller's file system identity, taken on by the supervisor's thread for one call.
/// The capabilities the supervisor acts with on the app's behalf: the bound of every process
/// of the app (the VE's default set and `--cap-add`), and this thread's own sets to go back to.
#[derive(Debug, Clone, Copy)]
pub struct ActCaps {
    pub bound: u64,
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

thread_local! {
    /// The supervisor thread's effective set as last set (`ActCaps::adopt` starts it).
    static EFFECTIVE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl ActCaps {
    /// `bound`: what no process of the app can exceed (`caps::keep_mask() | extra`).
    pub fn new(bound: u64) -> io::Result<ActCaps> {
        let (effective, permitted, inheritable) = crate::caps::thread_sets()?;
        Ok(ActCaps {
            bound,
            effective,
            permitted,
            inheritable,
        })
    }

    /// Starts the calling thread's record of its effective set (the set `new` read).
    fn adopt(&self) {
        EFFECTIVE.with(|e| e.set(self.effective));
    }

    /// These capabilities within `caps` too (a call's own caller's).
    fn narrowed(self, caps: u64) -> ActCaps {
        ActCaps {
            bound: self.bound & caps,
            ..self
        }
    }

    /// The set it acts with: within the bound.
    fn acting(&self) -> u64 {
        self.effective & self.bound
    }

    /// Sets the thread's effective set (a capset only when it changes); returns the one before.
    fn set(&self, to: u64) -> io::Result<u64> {
        let was = EFFECTIVE.with(|e| e.get());
        if was != to {
            crate::caps::set_thread_effective(to, self.permitted, self.inheritable)?;
            EFFECTIVE.with(|e| e.set(to));
        }
        Ok(was)
    }
}

struct Creds {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    caps: Option<ActCaps>,
}

impl Creds {
    fn of(t: &Task, caps: Option<ActCaps>) -> io::Result<Creds> {
        Ok(Creds {
            uid: t.uid,
            gid: t.gid,
            groups: t.groups.clone(),
            caps,
        })
    }

    /// `f` as the caller (see [`Creds::assume`]).
    fn run<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let _as_caller = self.assume()?;
        f()
    }

    /// Until the guard drops, this thread acts as the caller: its capabilities within what
    /// the app's processes can have (never the init's: no CAP_SYS_ADMIN for trusted.*
    /// attributes, no CAP_MKNOD), its fsuid, fsgid and groups (for a non-root caller the
    /// kernel then drops the file-system capabilities too).
    fn assume(&self) -> io::Result<CredGuard> {
        let was = match &self.caps {
            Some(c) => c.set(c.acting())?,
            None => 0,
        };
        let switched = !(self.uid == 0 && self.gid == 0);
        if switched {
            // SAFETY: per-thread credential calls through the raw syscalls (libc's wrappers
            // would change every thread of the process).
            unsafe {
                libc::syscall(libc::SYS_setgroups, self.groups.len(), self.groups.as_ptr());
                libc::syscall(libc::SYS_setfsgid, self.gid);
                libc::syscall(libc::SYS_setfsuid, self.uid);
            }
        }
        Ok(CredGuard {
            switched,
            caps: self.caps,
            was,
        })
    }
}

struct CredGuard {
    switched: bool,
    caps: Option<ActCaps>,
    /// The effective set before.
    was: u64,
}

impl Drop for CredGuard {
    fn drop(&mut self) {
        if self.switched {
            // SAFETY: as in `assume`.
            unsafe {
                libc::syscall(libc::SYS_setfsuid, 0);
                libc::syscall(libc::SYS_setfsgid, 0);
                libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<u32>());
            }
        }
        if let Some(c) = &self.caps {
            let _ = c.set(self.was);
        }
    }
}

/// Reads a VE's undo log.
pub fn read_undo(path: &Path) -> io::Result<Vec<Undo>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    // A torn last line (the supervisor died mid-write) is left out: it was never acted on.
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Where a VE's undo log is, in the store's version directory.
pub fn undo_path(versions: &Path, ve: u64) -> PathBuf {
    versions.join("undo").join(format!("{ve}.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_is_well_formed() {
        let p = filter(false);
        assert!(p.len() < 200);
        // Every jump lands inside the program and it ends by allowing.
        for (i, ins) in p.iter().enumerate() {
            assert!(i + 1 + usize::from(ins.jt) <= p.len());
            assert!(i + 1 + usize::from(ins.jf) <= p.len());
        }
        assert_eq!(p.last().unwrap().k, SECCOMP_RET_ALLOW);
        let notifies = p.iter().filter(|i| i.k == SECCOMP_RET_USER_NOTIF).count();
        assert_eq!(notifies, notified().len());
        let p = filter(true);
        let notifies = p.iter().filter(|i| i.k == SECCOMP_RET_USER_NOTIF).count();
        assert_eq!(notifies, notified().len() + closing().len());
        assert_eq!(p.last().unwrap().k, SECCOMP_RET_ALLOW);
    }
}
