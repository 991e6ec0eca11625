//! Loads and attaches the monitor's BPF programs and talks to their maps. The only file that
//! uses libbpf-rs.

use crate::skel::{MonitorSkel, MonitorSkelBuilder};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, RingBuffer, RingBufferBuilder};
use std::mem::MaybeUninit;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("open the BPF object: {0}")]
    Open(libbpf_rs::Error),
    #[error("load the BPF programs (does this kernel have BTF and tp_btf? see `jcs doctor`): {0}")]
    Load(libbpf_rs::Error),
    #[error("attach the BPF programs: {0}")]
    Attach(libbpf_rs::Error),
    #[error("update BPF map {map}: {source}")]
    Map {
        map: &'static str,
        source: libbpf_rs::Error,
    },
    #[error("set up the ring buffer: {0}")]
    Ring(libbpf_rs::Error),
    #[error("this kernel cannot run the JCS monitor: {0} (see `jcs doctor`)")]
    Kernel(String),
    #[error("enforce the network policy on {cgroup}: {why}")]
    Enforce { cgroup: String, why: String },
}

/// The counters of `enum jcs_stat`, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub seen: u64,
    pub skipped: u64,
    pub emitted: u64,
    pub lost: u64,
    pub dropped: u64,
}

/// Per-VE counters (`struct jcs_ve`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VeCounters {
    /// Records lost: the ring buffer was full.
    pub lost: u64,
}

/// The loaded monitor. Its tracing programs (system calls, fork, exec, exit) are attached
/// while at least one VE is watched, and detached when none is: a host with an idle daemon
/// pays nothing on its system calls.
pub struct Monitor {
    skel: MonitorSkel<'static>,
    /// Per cgroup with a network policy: its sock_addr links (dropping one detaches it) and the
    /// VE's keys in the `policy` map.
    enforced: std::sync::Mutex<std::collections::HashMap<u64, Enforced>>,
    /// The tracing programs' links while any VE is watched, and for [`Monitor::LINGER`] after
    /// the last one (empty: detached).
    tracing: std::sync::Mutex<Vec<libbpf_rs::Link>>,
    /// Since when no VE is watched while the tracing programs are still attached.
    idle_since: std::sync::Mutex<Option<std::time::Instant>>,
    /// Per watched cgroup: its ingress program's link (datagram sources).
    ingress: std::sync::Mutex<std::collections::HashMap<u64, libbpf_rs::Link>>,
    /// The ingress program on an empty cgroup beside the VEs' (`jcs/monitor`) while the
    /// tracing programs are attached: the kernel patches its code on every CPU (a static key)
    /// each time the first program of a kind is attached or the last one detached, ≈ 0.1 ms
    /// and an interrupt of every CPU per VE start and end; with this one kept, VEs started
    /// one after the other never make the count reach 0.
    ingress_keep: std::sync::Mutex<Option<libbpf_rs::Link>>,
    /// The rows of the `call_counts` array: the cgroup each one counts for (0: free).
    count_rows: std::sync::Mutex<Vec<u64>>,
    /// `call_counts`, mapped: the recorder reads and clears a VE's row without a system call.
    call_counts: CountsMap,
}

/// A shared mapping of the `call_counts` array (u64 counters the kernel adds to atomically).
struct CountsMap {
    ptr: std::ptr::NonNull<u64>,
    len: usize,
}

// SAFETY: the mapping lives as long as the value; every access is atomic.
unsafe impl Send for CountsMap {}
// SAFETY: as for Send: shared references only make atomic accesses.
unsafe impl Sync for CountsMap {}

impl CountsMap {
    fn map(fd: std::os::fd::BorrowedFd<'_>, len: usize) -> std::io::Result<CountsMap> {
        use std::os::fd::AsRawFd;
        // SAFETY: a shared read-write mapping of an mmapable BPF array of `len` u64 values.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(CountsMap {
            ptr: std::ptr::NonNull::new(p.cast()).ok_or(std::io::ErrorKind::Other)?,
            len,
        })
    }

    /// Takes counter `i` (its value, leaving 0).
    fn take(&self, i: usize) -> u64 {
        if i >= self.len {
            return 0;
        }
        // SAFETY: in bounds of the mapping; the kernel adds to it atomically too.
        let a = unsafe { std::sync::atomic::AtomicU64::from_ptr(self.ptr.as_ptr().add(i)) };
        a.swap(0, std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for CountsMap {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len * 8) };
    }
}

/// Counters per row of `call_counts`: (entered, dropped) per system call number.
const ROW: usize = crate::skel::types::jcs_limit::JCS_MAX_SYSCALL.0 as usize * 2;
const ROWS: usize = crate::skel::types::jcs_limit::JCS_COUNT_SLOTS.0 as usize;

struct Enforced {
    _links: Vec<libbpf_rs::Link>,
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

/// The host's devpts instance as the kernel numbers devices (major << 20 | minor), from
/// `/dev/pts` as this process sees it (the daemon runs in the host's mount namespace); all
/// ones when there is none.
fn host_devpts_dev() -> u64 {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/dev/pts") {
        Ok(m) => {
            let d = m.dev();
            (u64::from(libc::major(d)) << 20) | u64::from(libc::minor(d))
        }
        Err(_) => u64::MAX,
    }
}

/// The inode number of the host's network namespace (that of the process loading the
/// monitor: the recorder runs on the host), 0 when unknown.
fn host_netns_inode() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0)
}

impl Monitor {
    /// Opens, configures, loads and attaches the programs. The BPF object's backing store
    /// lives as long as the process (one monitor per daemon).
    pub fn start() -> Result<Monitor, MonitorError> {
        kernel_support(std::path::Path::new("/sys")).map_err(MonitorError::Kernel)?;
        let object: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let open = MonitorSkelBuilder::default()
            .open(object)
            .map_err(MonitorError::Open)?;
        let skel = open.load().map_err(MonitorError::Load)?;
        // The settings (monitor.bpf.c): [0] the host's devpts, [1] the host's network namespace.
        for (slot, value) in [(0u32, host_devpts_dev()), (1, host_netns_inode())] {
            skel.maps
                .settings
                .update(&slot.to_ne_bytes(), &value.to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| MonitorError::Map {
                    map: "settings",
                    source,
                })?;
        }
        for s in crate::syscalls::table() {
            skel.maps
                .interest
                .update(
                    &(s.nr as u32).to_ne_bytes(),
                    &s.cap.to_ne_bytes(),
                    MapFlags::ANY,
                )
                .map_err(|source| MonitorError::Map {
                    map: "interest",
                    source,
                })?;
        }
        let call_counts = {
            use std::os::fd::AsFd;
            CountsMap::map(skel.maps.call_counts.as_fd(), ROW * ROWS).map_err(|e| {
                MonitorError::Map {
                    map: "call_counts",
                    source: libbpf_rs::Error::from(e),
                }
            })?
        };
        Ok(Monitor {
            skel,
            enforced: Default::default(),
            tracing: Default::default(),
            idle_since: Default::default(),
            ingress: Default::default(),
            ingress_keep: Default::default(),
            count_rows: std::sync::Mutex::new(vec![0; ROWS]),
            call_counts,
        })
    }

    /// Whether the tracing programs are attached (a VE is watched).
    pub fn attached(&self) -> bool {
        !self
            .tracing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// How long the tracing programs stay attached once no VE is watched: VEs started back to
    /// back (a script, a test suite) do not pay the attach (~1 ms) each; a host where none
    /// starts again pays the monitor's per-call cost for at most this long.
    pub const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

    /// Attaches the tracing programs unless they are.
    fn attach_tracing(&self) -> Result<(), MonitorError> {
        *self.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut links = self.tracing.lock().unwrap_or_else(|p| p.into_inner());
        if !links.is_empty() {
            return Ok(());
        }
        let p = &self.skel.progs;
        let mut new = Vec::with_capacity(5);
        for prog in [
            &p.jcs_fork,
            &p.jcs_exec,
            &p.jcs_exit,
            &p.jcs_sys_exit,
            &p.jcs_sys_enter,
        ] {
            new.push(prog.attach().map_err(MonitorError::Attach)?);
        }
        *links = new;
        Ok(())
    }

    /// Notes when no VE is watched any more ([`Monitor::detach_if_idle`] detaches later).
    fn detach_tracing_if_idle(&self) {
        if self.skel.maps.watched.keys().next().is_none() {
            self.idle_since
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(std::time::Instant::now);
        }
    }

    /// Detaches the tracing programs once no VE has been watched for `linger` (the recorder
    /// calls this on every turn of its loop). Returns whether they are detached.
    pub fn detach_if_idle(&self, linger: std::time::Duration) -> bool {
        let mut idle = self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        if idle.is_some_and(|t| t.elapsed() >= linger)
            && self.skel.maps.watched.keys().next().is_none()
        {
            *idle = None;
            self.tracing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            *self.ingress_keep.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        !self.attached()
    }

    /// Enforces a VE's network policy: fills the `policy` map with its entries and attaches
    /// the sock_addr programs to its cgroup (`cgroup_dir`, cgroup2), before any of its tasks
    /// runs; with a byte budget (`budget`: bytes, rule), also the egress program that counts
    /// and drops. The VE must be watched already. Nothing to enforce: nothing attached.
    pub fn enforce_net(
        &self,
        cgroup_id: u64,
        cgroup_dir: &std::path::Path,
        ve: u64,
        entries: &[model::policy::LpmEntry],
        budget: Option<(u64, u32)>,
    ) -> Result<(), MonitorError> {
        use std::os::fd::AsRawFd;
        if entries.is_empty() && budget.is_none() {
            return Ok(());
        }
        let fail = |why: String| MonitorError::Enforce {
            cgroup: cgroup_dir.display().to_string(),
            why,
        };
        if let Some((bytes, rule)) = budget {
            use crate::skel::types::jcs_ve;
            let put = |v: &mut Vec<u8>, at: usize, x: u64| {
                v[at..at + 8].copy_from_slice(&x.to_ne_bytes())
            };
            // (0 means "no budget" to the kernel; a 1-byte budget is spent by any packet.)
            self.update_watched(cgroup_id, "a budget", |v| {
                put(v, std::mem::offset_of!(jcs_ve, budget), bytes.max(1));
                put(
                    v,
                    std::mem::offset_of!(jcs_ve, budget_rule),
                    u64::from(rule),
                );
            })?;
        }
        let mut keys = vec![];
        for e in entries {
            let (k, v) = policy_entry(ve, e);
            self.skel
                .maps
                .policy
                .update(&k, &v, MapFlags::ANY)
                .map_err(|source| MonitorError::Map {
                    map: "policy",
                    source,
                })?;
            keys.push(k);
        }
        let dir = std::fs::File::open(cgroup_dir).map_err(|e| fail(e.to_string()))?;
        let p = &self.skel.progs;
        let mut links = vec![];
        let r = (|| {
            for prog in [
                &p.jcs_connect4,
                &p.jcs_connect6,
                &p.jcs_sendmsg4,
                &p.jcs_sendmsg6,
                &p.jcs_bind4,
                &p.jcs_bind6,
            ] {
                links.push(
                    prog.attach_cgroup(dir.as_raw_fd())
                        .map_err(|e| fail(e.to_string()))?,
                );
            }
            if budget.is_some() {
                links.push(
                    p.jcs_egress
                        .attach_cgroup(dir.as_raw_fd())
                        .map_err(|e| fail(format!("the byte budget's egress program: {e}")))?,
                );
            }
            Ok(())
        })();
        if let Err(e) = r {
            for k in &keys {
                let _ = self.skel.maps.policy.delete(k);
            }
            return Err(e);
        }
        self.enforced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                cgroup_id,
                Enforced {
                    _links: links,
                    keys,
                },
            );
        Ok(())
    }

    /// The id of the `tainted` map (a VE's slot holds its id once the kernel denied it
    /// something), which a VE's init opens (`BPF_MAP_GET_FD_BY_ID`) and maps read-only.
    pub fn tainted_map_id(&self) -> Result<u32, MonitorError> {
        use libbpf_rs::MapCore;
        self.skel
            .maps
            .tainted
            .info()
            .map_err(|source| MonitorError::Map {
                map: "tainted",
                source,
            })
            .and_then(|i| {
                if i.info.max_entries != model::policy::TAINT_SLOTS {
                    return Err(MonitorError::Enforce {
                        cgroup: String::new(),
                        why: format!(
                            "the kernel's tainted map has {} slots, JCS expects {}",
                            i.info.max_entries,
                            model::policy::TAINT_SLOTS
                        ),
                    });
                }
                Ok(i.info.id)
            })
    }

    /// Attaches the ingress program that remembers each UDP datagram's source per socket to
    /// a VE's cgroup (`cgroup_dir`, cgroup2); detached by [`Monitor::unwatch`].
    pub fn track_datagrams(
        &self,
        cgroup_id: u64,
        cgroup_dir: &std::path::Path,
    ) -> Result<(), MonitorError> {
        use std::os::fd::AsRawFd;
        let fail = |why: String| MonitorError::Enforce {
            cgroup: cgroup_dir.display().to_string(),
            why,
        };
        let dir = std::fs::File::open(cgroup_dir).map_err(|e| fail(e.to_string()))?;
        let link = self
            .skel
            .progs
            .jcs_ingress
            .attach_cgroup(dir.as_raw_fd())
            .map_err(|e| fail(format!("the datagram-source ingress program: {e}")))?;
        self.ingress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cgroup_id, link);
        let mut keep = self.ingress_keep.lock().unwrap_or_else(|p| p.into_inner());
        if keep.is_none() {
            // (Only a saving: without it, each VE's attach and detach costs the patching.)
            if let Some(dir) = cgroup_dir.parent().map(|p| p.join("monitor")) {
                let kept = match std::fs::create_dir(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => None,
                    _ => std::fs::File::open(&dir).ok().and_then(|d| {
                        self.skel
                            .progs
                            .jcs_ingress
                            .attach_cgroup(d.as_raw_fd())
                            .ok()
                    }),
                };
                *keep = kept;
            }
        }
        Ok(())
    }

    /// Removes and returns the kernel's count of a VE's denials, per rule.
    pub fn take_denials(&self, ve: u64) -> Result<Vec<(u32, u64)>, MonitorError> {
        let map = &self.skel.maps.denials;
        let err = |source| MonitorError::Map {
            map: "denials",
            source,
        };
        let mut out = vec![];
        let keys: Vec<Vec<u8>> = map
            .keys()
            .filter(|k| k.len() == 16 && k[0..8] == ve.to_ne_bytes())
            .collect();
        for k in keys {
            if let Some(v) = map.lookup(&k, MapFlags::ANY).map_err(err)? {
                out.push((
                    u32::from_ne_bytes(k[8..12].try_into().unwrap_or_default()),
                    u64::from_ne_bytes(v[..8].try_into().unwrap_or_default()),
                ));
            }
            map.delete(&k).map_err(err)?;
        }
        out.sort();
        Ok(out)
    }

    /// Starts recording the tasks of cgroup `cgroup_id` as VE `ve` (`struct jcs_ve`, counters
    /// at zero); the system calls of `init` (the VE's init, JCS's own code) are not counted.
    pub fn watch(&self, cgroup_id: u64, ve: u64, init: Option<u32>) -> Result<(), MonitorError> {
        use crate::skel::types::jcs_ve;
        let mut v = vec![0u8; std::mem::size_of::<jcs_ve>()];
        v[0..8].copy_from_slice(&ve.to_ne_bytes());
        let at = std::mem::offset_of!(jcs_ve, init_tid);
        v[at..at + 8].copy_from_slice(&u64::from(init.unwrap_or(0)).to_ne_bytes());
        // Its row of `call_counts` (a VE watched again keeps its row), cleared.
        let row = {
            let mut rows = self.count_rows.lock().unwrap_or_else(|p| p.into_inner());
            let row = rows
                .iter()
                .position(|&c| c == cgroup_id)
                .or_else(|| rows.iter().position(|&c| c == 0));
            if let Some(r) = row {
                if rows[r] != cgroup_id {
                    for i in r * ROW..(r + 1) * ROW {
                        self.call_counts.take(i);
                    }
                }
                rows[r] = cgroup_id;
            }
            row
        };
        let at = std::mem::offset_of!(jcs_ve, count_slot);
        v[at..at + 8].copy_from_slice(&row.map_or(0, |r| r as u64 + 1).to_ne_bytes());
        // The VE's first system call is after this returns: the programs are attached first.
        self.attach_tracing()?;
        // A fresh VE is not tainted (its slot may hold a VE 65,536 ids older).
        let slot = (ve % u64::from(model::policy::TAINT_SLOTS)) as u32;
        self.skel
            .maps
            .tainted
            .update(&slot.to_ne_bytes(), &0u64.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| MonitorError::Map {
                map: "tainted",
                source,
            })?;
        self.skel
            .maps
            .watched
            .update(&cgroup_id.to_ne_bytes(), &v, MapFlags::ANY)
            .map_err(|source| MonitorError::Map {
                map: "watched",
                source,
            })
    }

    /// Pseudo-terminal `index` of the VE's devpts has its master on the host side (`jcs run
    /// -t`, `jcs exec -t`): from now on what crosses it is recorded, as `host:pty`.
    pub fn set_tty(&self, cgroup_id: u64, index: u32) -> Result<(), MonitorError> {
        use crate::skel::types::jcs_ve;
        if index >= 64 {
            return Err(MonitorError::Enforce {
                cgroup: cgroup_id.to_string(),
                why: format!("pty {index}: only /dev/pts/0-63 of a VE can be its terminal"),
            });
        }
        let at = std::mem::offset_of!(jcs_ve, tty_mask);
        self.update_watched(cgroup_id, "a terminal", |v| {
            let mask =
                u64::from_ne_bytes(v[at..at + 8].try_into().unwrap_or_default()) | 1 << index;
            v[at..at + 8].copy_from_slice(&mask.to_ne_bytes());
        })
    }

    /// Changes the `struct jcs_ve` of a watched cgroup in place (`what`: for the error).
    fn update_watched(
        &self,
        cgroup_id: u64,
        what: &str,
        change: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), MonitorError> {
        let key = cgroup_id.to_ne_bytes();
        let map = &self.skel.maps.watched;
        let err = |source| MonitorError::Map {
            map: "watched",
            source,
        };
        let mut v = map
            .lookup(&key, MapFlags::ANY)
            .map_err(err)?
            .ok_or_else(|| MonitorError::Enforce {
                cgroup: cgroup_id.to_string(),
                why: format!("{what} for a VE that is not watched"),
            })?;
        change(&mut v);
        map.update(&key, &v, MapFlags::EXIST).map_err(err)
    }

    /// The kernel's per-VE counter of a watched cgroup (what it entered and what
    /// classification dropped are in [`Monitor::take_counts`]).
    pub fn ve_counters(&self, cgroup_id: u64) -> Result<Option<VeCounters>, MonitorError> {
        let v = self
            .skel
            .maps
            .watched
            .lookup(&cgroup_id.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| MonitorError::Map {
                map: "watched",
                source,
            })?;
        Ok(v.filter(|b| b.len() >= 16).map(|b| VeCounters {
            lost: u64::from_ne_bytes(b[8..16].try_into().unwrap_or_default()),
        }))
    }

    /// Removes and returns the per-system-call counts of a cgroup: (number, dropped by
    /// classification?, calls).
    pub fn take_counts(&self, cgroup_id: u64) -> Result<Vec<(u32, bool, u64)>, MonitorError> {
        // Two batch system calls instead of a lookup and a delete per entry.
        let map = &self.skel.maps.counts;
        let err = |source| MonitorError::Map {
            map: "counts",
            source,
        };
        let mine: Vec<(Vec<u8>, Vec<u8>)> = map
            .lookup_batch(1024, MapFlags::ANY, MapFlags::ANY)
            .map_err(err)?
            .filter(|(k, _)| k.len() == 16 && k[0..8] == cgroup_id.to_ne_bytes())
            .collect();
        if !mine.is_empty() {
            let keys: Vec<u8> = mine.iter().flat_map(|(k, _)| k.iter().copied()).collect();
            map.delete_batch(&keys, mine.len() as u32, MapFlags::ANY, MapFlags::ANY)
                .map_err(err)?;
        }
        let mut counts: std::collections::BTreeMap<(u32, bool), u64> = Default::default();
        for (k, v) in &mine {
            let nr = u32::from_ne_bytes(k[8..12].try_into().unwrap_or_default());
            let dropped = u32::from_ne_bytes(k[12..16].try_into().unwrap_or_default()) != 0;
            *counts.entry((nr, dropped)).or_default() +=
                u64::from_ne_bytes(v[..8].try_into().unwrap_or_default());
        }
        // Its row of the array (what it counted while it had one).
        let row = self
            .count_rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .position(|&c| c == cgroup_id);
        if let Some(r) = row {
            for j in 0..ROW {
                let n = self.call_counts.take(r * ROW + j);
                if n > 0 {
                    *counts.entry(((j / 2) as u32, j % 2 == 1)).or_default() += n;
                }
            }
        }
        Ok(counts
            .into_iter()
            .map(|((nr, dropped), n)| (nr, dropped, n))
            .collect())
    }

    pub fn unwatch(&self, cgroup_id: u64) -> Result<(), MonitorError> {
        let gone = self
            .enforced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&cgroup_id);
        if let Some(e) = gone {
            for k in &e.keys {
                let _ = self.skel.maps.policy.delete(k);
            }
        }
        self.ingress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&cgroup_id);
        for c in self
            .count_rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
            .filter(|c| **c == cgroup_id)
        {
            *c = 0;
        }
        let r = self
            .skel
            .maps
            .watched
            .delete(&cgroup_id.to_ne_bytes())
            .map_err(|source| MonitorError::Map {
                map: "watched",
                source,
            });
        self.detach_tracing_if_idle();
        r
    }

    pub fn stats(&self) -> Result<Stats, MonitorError> {
        let mut v = [0u64; 5];
        for (i, slot) in v.iter_mut().enumerate() {
            let per_cpu = self
                .skel
                .maps
                .stats
                .lookup_percpu(&(i as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| MonitorError::Map {
                    map: "stats",
                    source,
                })?
                .unwrap_or_default();
            *slot = per_cpu
                .iter()
                .map(|b| u64::from_ne_bytes(b[..8].try_into().unwrap_or_default()))
                .sum();
        }
        Ok(Stats {
            seen: v[0],
            skipped: v[1],
            emitted: v[2],
            lost: v[3],
            dropped: v[4],
        })
    }

    /// A ring buffer consumer that hands every raw record to `f` (decode with
    /// [`crate::decode::decode`]). Poll it with a short timeout: the kernel side wakes the
    /// consumer only when 256 KiB are queued.
    pub fn ring<'a>(
        &'a self,
        mut f: impl FnMut(&[u8]) + 'a,
    ) -> Result<RingBuffer<'a>, MonitorError> {
        let mut b = RingBufferBuilder::new();
        b.add(&self.skel.maps.events, move |data: &[u8]| {
            f(data);
            0
        })
        .map_err(MonitorError::Ring)?;
        b.build().map_err(MonitorError::Ring)
    }
}

/// The kernel functions the programs call that not every kernel with BTF has: the hot path's
/// reads of kernel structures cast pointers with `bpf_rdonly_cast` (Linux 6.2 and later).
pub const KFUNCS: &[&str] = &["bpf_rdonly_cast"];

/// Whether the kernel under `sys_root` (`/sys`) can run the monitor: it has BTF and every one
/// of [`KFUNCS`] in it. Err says what is missing (a clear error before libbpf's verifier log).
pub fn kernel_support(sys_root: &std::path::Path) -> Result<(), String> {
    let path = sys_root.join("kernel/btf/vmlinux");
    let btf = std::fs::read(&path).map_err(|e| format!("{}: {e} (no BTF)", path.display()))?;
    match missing_kfuncs(&btf) {
        m if m.is_empty() => Ok(()),
        m => Err(format!(
            "its BTF has no {} (Linux 6.2 or later has)",
            m.join(", ")
        )),
    }
}

/// The [`KFUNCS`] that are not functions of the kernel's BTF `btf`.
pub fn missing_kfuncs(btf: &[u8]) -> Vec<&'static str> {
    KFUNCS
        .iter()
        .filter(|f| model::btf::find_type_id(btf, model::btf::KIND_FUNC, f).is_none())
        .copied()
        .collect()
}

/// How full a ring buffer made by [`Monitor::ring`] is: (bytes waiting to be read, its size).
pub fn ring_fill(rb: &RingBuffer) -> (u64, u64) {
    use libbpf_rs::AsRawLibbpf;
    // SAFETY: `rb` owns a valid libbpf ring_buffer for as long as it is borrowed; ring 0 is
    // the one map `Monitor::ring` added, and the two calls only read its positions.
    unsafe {
        let r = libbpf_sys::ring_buffer__ring(rb.as_libbpf_object().as_ptr(), 0);
        if r.is_null() {
            return (0, 0);
        }
        (
            libbpf_sys::ring__avail_data_size(r) as u64,
            libbpf_sys::ring__size(r) as u64,
        )
    }
}

/// The `policy` map's key and value for one entry (`struct jcs_policy_key`, `struct jcs_rules`).
fn policy_entry(ve: u64, e: &model::policy::LpmEntry) -> (Vec<u8>, Vec<u8>) {
    use crate::skel::types::{jcs_policy_key, jcs_rule, jcs_rules};
    let mut k = Vec::with_capacity(std::mem::size_of::<jcs_policy_key>());
    k.extend((64 + u32::from(e.prefix.bits)).to_ne_bytes());
    k.extend((ve as u32).to_ne_bytes());
    k.extend(if e.prefix.addr.is_ipv4() { 4u32 } else { 6u32 }.to_ne_bytes());
    k.extend(e.prefix.key_bytes());
    debug_assert_eq!(k.len(), std::mem::size_of::<jcs_policy_key>());
    let mut v = vec![0u8; std::mem::size_of::<jcs_rules>()];
    v[0..4].copy_from_slice(&(e.rules.len() as u32).to_ne_bytes());
    let base = std::mem::offset_of!(jcs_rules, r);
    let size = std::mem::size_of::<jcs_rule>();
    for (i, r) in e.rules.iter().enumerate() {
        let o = base + i * size;
        v[o..o + 2].copy_from_slice(&r.port_lo.to_ne_bytes());
        v[o + 2..o + 4].copy_from_slice(&r.port_hi.to_ne_bytes());
        v[o + 4] = r.protos;
        v[o + 5] = r.ops;
        v[o + 6] = u8::from(r.deny);
        v[o + 8..o + 12].copy_from_slice(&r.id.to_ne_bytes());
    }
    (k, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_without_the_kfuncs_is_refused_with_what_it_lacks() {
        use model::btf::{of_names, KIND_FUNC, KIND_TYPEDEF};
        // A BTF with the function, one with a longer name that only starts with it, one with
        // a type of that name that is no function, and bytes that are no BTF.
        let funcs =
            |names: &[&str]| of_names(&names.iter().map(|n| (KIND_FUNC, *n)).collect::<Vec<_>>());
        assert!(missing_kfuncs(&funcs(&[
            "ksys_write",
            "bpf_rdonly_cast",
            "bpf_cast_to_kern"
        ]))
        .is_empty());
        assert_eq!(
            missing_kfuncs(&funcs(&["bpf_rdonly_cast_v2"])),
            ["bpf_rdonly_cast"]
        );
        assert_eq!(
            missing_kfuncs(&of_names(&[(KIND_TYPEDEF, "bpf_rdonly_cast")])),
            ["bpf_rdonly_cast"]
        );
        assert_eq!(missing_kfuncs(b""), ["bpf_rdonly_cast"]);
        assert_eq!(missing_kfuncs(b"\0bpf_rdonly_cast\0"), ["bpf_rdonly_cast"]);
        // A /sys of a kernel 6.1: its BTF lacks it; one with no BTF at all.
        let sys = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sys.path().join("kernel/btf")).unwrap();
        std::fs::write(
            sys.path().join("kernel/btf/vmlinux"),
            funcs(&["bpf_cast_to_kern_ctx"]),
        )
        .unwrap();
        let e = kernel_support(sys.path()).unwrap_err();
        assert!(e.contains("bpf_rdonly_cast") && e.contains("6.2"), "{e}");
        let none = tempfile::tempdir().unwrap();
        assert!(kernel_support(none.path()).unwrap_err().contains("no BTF"));
        // This kernel (the tests run on 6.18): everything there.
        if std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            kernel_support(std::path::Path::new("/sys")).unwrap();
        }
    }

    #[test]
    fn policy_entries_have_the_kernel_layout() {
        use crate::skel::types::{jcs_policy_key, jcs_rule, jcs_rules};
        assert_eq!(std::mem::size_of::<jcs_policy_key>(), 28);
        assert_eq!(std::mem::size_of::<jcs_rule>(), 12);
        assert_eq!(std::mem::offset_of!(jcs_rule, id), 8);
        assert_eq!(std::mem::offset_of!(jcs_rule, deny), 6);
        assert_eq!(
            std::mem::size_of::<jcs_rules>(),
            8 + 12 * model::policy::RULES_PER_PREFIX
        );
        let p = model::policy::Policy::parse(
            "[[network.rule]]\naction = \"deny\"\nto = [\"10.1.0.0/16\"]\nports = [\"20-21\"]\nproto = \"tcp\"\n",
        )
        .unwrap();
        let entries = p.compile_net().unwrap();
        let e = entries.iter().find(|e| e.prefix.bits == 16).unwrap();
        let (k, v) = policy_entry(7, e);
        assert_eq!(&k[0..4], &80u32.to_ne_bytes());
        assert_eq!(&k[4..8], &7u32.to_ne_bytes());
        assert_eq!(&k[8..12], &4u32.to_ne_bytes());
        assert_eq!(&k[12..16], &[10, 1, 0, 0]);
        assert_eq!(&v[0..4], &2u32.to_ne_bytes(), "the rule, then the default");
        assert_eq!(&v[8..10], &20u16.to_ne_bytes());
        assert_eq!(&v[10..12], &21u16.to_ne_bytes());
        assert_eq!(v[12], model::policy::PROTO_TCP);
        assert_eq!(v[14], 1, "deny");
        assert_eq!(&v[16..20], &1u32.to_ne_bytes());
        assert_eq!(v[26], 0, "the default allows");
        assert_eq!(&v[28..32], &2u32.to_ne_bytes());
    }
}
