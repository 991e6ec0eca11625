//! Capability reduction for the VE's processes: Podman's default set (Docker's minus
//! CAP_MKNOD, CAP_NET_RAW and CAP_AUDIT_WRITE: no device nodes, no raw or packet sockets, no
//! writes to the host's audit log), every other capability dropped from the bounding,
//! effective, permitted, inheritable and ambient sets. docs/security.md compares the sets.

use std::io;

/// Capabilities a VE's root keeps, by number (linux/capability.h).
pub const KEEP: &[(u32, &str)] = &[
    (0, "CAP_CHOWN"),
    (1, "CAP_DAC_OVERRIDE"),
    (3, "CAP_FOWNER"),
    (4, "CAP_FSETID"),
    (5, "CAP_KILL"),
    (6, "CAP_SETGID"),
    (7, "CAP_SETUID"),
    (8, "CAP_SETPCAP"),
    (10, "CAP_NET_BIND_SERVICE"),
    (18, "CAP_SYS_CHROOT"),
    (31, "CAP_SETFCAP"),
];

/// The kept set as a bit mask.
pub fn keep_mask() -> u64 {
    KEEP.iter().fold(0u64, |m, (c, _)| m | (1u64 << c))
}

/// Capabilities `jcs run --cap-add` may give back, by name: only those Docker grants by
/// default and JCS does not (CAP_MKNOD would be useless: the device program still applies).
pub const ADDABLE: &[(u32, &str)] = &[(13, "NET_RAW"), (29, "AUDIT_WRITE")];

/// The capability `--cap-add NAME` names (with or without `CAP_`), if it may be added.
pub fn addable(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let n = upper.trim_start_matches("CAP_");
    ADDABLE.iter().find(|(_, a)| *a == n).map(|(c, _)| *c)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Drops every capability outside [`KEEP`] (and `extra`, a mask of [`ADDABLE`] ones) from
/// the calling thread. Call after the last privileged setup step and before
/// `no_new_privs`, seccomp and exec.
pub fn drop_to_default(extra: u64) -> io::Result<()> {
    let keep = keep_mask() | extra;
    // Bounding set: drop until the kernel says the capability does not exist.
    for cap in 0..64u32 {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break; // past CAP_LAST_CAP
            }
            return Err(e);
        }
    }
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let lo = keep as u32;
    let hi = (keep >> 32) as u32;
    let data = [
        CapData {
            effective: lo,
            permitted: lo,
            inheritable: 0,
        },
        CapData {
            effective: hi,
            permitted: hi,
            inheritable: 0,
        },
    ];
    // SAFETY: capset(2) with a v3 header and the two-element data array it requires.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's (effective, permitted, inheritable) sets.
pub(crate) fn thread_sets() -> io::Result<(u64, u64, u64)> {
    sets_of(0)
}

/// Thread `tid`'s (effective, permitted, inheritable) sets (0: the calling thread), by its
/// id in this pid namespace.
pub(crate) fn sets_of(tid: i32) -> io::Result<(u64, u64, u64)> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: tid,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget(2) with a v3 header and the two-element array it fills.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

/// Sets the calling thread's effective set (within its permitted set, which stays).
pub(crate) fn set_thread_effective(
    effective: u64,
    permitted: u64,
    inheritable: u64,
) -> io::Result<()> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: capset(2) on the calling thread, v3 header, two-element array.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_excludes_sys_admin_and_ptrace() {
        let m = keep_mask();
        assert_eq!(m & (1 << 21), 0, "CAP_SYS_ADMIN kept");
        assert_eq!(m & (1 << 19), 0, "CAP_SYS_PTRACE kept");
        assert_eq!(m & (1 << 16), 0, "CAP_SYS_MODULE kept");
        assert_eq!(m & (1 << 27), 0, "CAP_MKNOD kept");
        assert_eq!(m & (1 << 13), 0, "CAP_NET_RAW kept");
        assert_eq!(m & (1 << 29), 0, "CAP_AUDIT_WRITE kept");
        assert_ne!(m & (1 << 0), 0);
        assert_eq!(m.count_ones() as usize, KEEP.len());
        assert_eq!(addable("NET_RAW"), Some(13));
        assert_eq!(addable("cap_net_raw"), Some(13));
        assert_eq!(addable("SYS_ADMIN"), None);
        assert_eq!(addable("MKNOD"), None);
    }
}
