//! The devices a VE may use, enforced by the kernel: a `BPF_CGROUP_DEVICE` program attached
//! to the cgroup2 parent of every VE's cgroup, in force below it ([`restrict`]; on pure
//! cgroup2 hosts and on hybrid ones alike: the kernel
//! runs cgroup-bpf device programs whatever the v1 `devices` controller says). The allow list
//! is the one container runtimes use (runc, Docker): the data-less devices, the terminal
//! devices. Everything else — block devices, /dev/kvm, fuse, tun, loop, the consoles, kmsg,
//! mem — fails with EPERM, whether the VE makes a node for it or finds one.

use crate::bpf::{insn, op};
use std::io;
use std::path::{Path, PathBuf};

/// `BPF_DEVCG_DEV_CHAR`.
pub const CHAR: u32 = 2;
/// `BPF_DEVCG_DEV_BLOCK`.
pub const BLOCK: u32 = 1;

/// (type, major, minor; None = every minor, what it is).
pub const ALLOWED: &[(u32, u32, Option<u32>, &str)] = &[
    (CHAR, 1, Some(3), "null"),
    (CHAR, 1, Some(5), "zero"),
    (CHAR, 1, Some(7), "full"),
    (CHAR, 1, Some(8), "random"),
    (CHAR, 1, Some(9), "urandom"),
    (CHAR, 5, Some(0), "tty"),
    (CHAR, 5, Some(2), "ptmx"),
    (CHAR, 136, None, "pts/*"),
];

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("load the VE's device program: {0} (the kernel's cgroup-bpf device control is needed; see jcs doctor)")]
    Load(io::Error),
    #[error("attach the device program to {path}: {source}")]
    Attach { path: PathBuf, source: io::Error },
}

/// The program: `ctx` is `struct bpf_cgroup_dev_ctx { u32 access_type (access << 16 | type);
/// u32 major; u32 minor; }`; returns 1 (allow) for an [`ALLOWED`] device, else 0.
pub fn program() -> Vec<u64> {
    let mut p = vec![
        insn(op::LDX_W, 2, 1, 0, 0),
        insn(op::AND_K, 2, 0, 0, 0xffff),
        insn(op::LDX_W, 3, 1, 4, 0),
        insn(op::LDX_W, 4, 1, 8, 0),
    ];
    for &(ty, major, minor, _) in ALLOWED {
        // Checks, then `r0 = 1; exit`; every failed check jumps past the entry.
        let checks = if minor.is_some() { 3 } else { 2 };
        let len = checks + 2;
        p.push(insn(op::JNE_K, 2, 0, (len - 1) as i16, ty as i32));
        p.push(insn(op::JNE_K, 3, 0, (len - 2) as i16, major as i32));
        if let Some(m) = minor {
            p.push(insn(op::JNE_K, 4, 0, (len - 3) as i16, m as i32));
        }
        p.push(insn(op::MOV_K, 0, 0, 0, 1));
        p.push(insn(op::EXIT, 0, 0, 0, 0));
    }
    p.push(insn(op::MOV_K, 0, 0, 0, 0));
    p.push(insn(op::EXIT, 0, 0, 0, 0));
    p
}

/// The program's name in the kernel (`bpf_prog_info.name`, at most 15 characters): says
/// which allow list it enforces, so that a program of an older list is replaced.
pub fn name() -> String {
    // FNV-1a over the instructions.
    let h = program().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
        w.to_le_bytes()
            .iter()
            .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
    });
    format!("jcsdev_{:08x}", h as u32)
}

/// Makes the kernel allow the processes of every cgroup below the cgroup2 directory `dir`
/// only the devices on the list: the program is attached to `dir` without
/// `BPF_F_ALLOW_OVERRIDE`, so it is in force in every descendant, and no descendant may attach
/// a device program of its own. JCS attaches it to the parent of every VE cgroup (`jcs/`)
/// once: when this program (by [`name`]) is attached there already, nothing is loaded; any
/// other device program there is replaced. The kernel keeps the program while it is attached;
/// the directory's removal detaches it.
pub fn restrict(dir: &Path) -> Result<(), DeviceError> {
    let attach_err = |source| DeviceError::Attach {
        path: dir.to_path_buf(),
        source,
    };
    let cg = std::fs::File::open(dir).map_err(attach_err)?;
    let name = name();
    if crate::bpf::attached_names(&cg, BPF_CGROUP_DEVICE)
        .map_err(attach_err)?
        .contains(&name)
    {
        return Ok(());
    }
    let prog = crate::bpf::load_named(
        BPF_PROG_TYPE_CGROUP_DEVICE,
        BPF_CGROUP_DEVICE,
        0,
        &program(),
        &name,
    )
    .map_err(DeviceError::Load)?;
    crate::bpf::attach(&prog, &cg, BPF_CGROUP_DEVICE).map_err(attach_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on a device context with a tiny interpreter of the opcodes it uses.
    fn run(p: &[u64], ty: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(1u32 << 16) | ty, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (code, dst, src) = (
                i as u8,
                ((i >> 8) & 0xf) as usize,
                ((i >> 12) & 0xf) as usize,
            );
            let (off, imm) = ((i >> 16) as u16 as i16, (i >> 32) as u32 as i32);
            pc += 1;
            match code {
                op::LDX_W => {
                    assert_eq!(src, 1, "loads come from the context");
                    r[dst] = u64::from(ctx[off as usize / 4]);
                }
                op::AND_K => r[dst] &= imm as i64 as u64,
                op::MOV_K => r[dst] = imm as i64 as u64,
                op::JNE_K => {
                    if r[dst] != imm as i64 as u64 {
                        pc = (pc as i64 + i64::from(off)) as usize;
                    }
                }
                op::EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn allows_exactly_the_list() {
        let p = program();
        for &(ty, major, minor, what) in ALLOWED {
            assert_eq!(run(&p, ty, major, minor.unwrap_or(7)), 1, "{what}");
        }
        for (ty, major, minor, what) in [
            (CHAR, 10, 232, "kvm"),
            (CHAR, 10, 229, "fuse"),
            (CHAR, 10, 200, "net/tun"),
            (BLOCK, 7, 0, "loop0"),
            (BLOCK, 8, 0, "sda"),
            (CHAR, 4, 0, "tty0"),
            (CHAR, 4, 64, "ttyS0"),
            (CHAR, 7, 0, "vcs"),
            (CHAR, 1, 11, "kmsg"),
            (CHAR, 1, 1, "mem"),
            (CHAR, 5, 1, "console"),
            (BLOCK, 1, 3, "a block device numbered like null"),
        ] {
            assert_eq!(run(&p, ty, major, minor), 0, "{what} allowed");
        }
    }

    #[test]
    fn the_name_is_a_kernel_object_name_that_follows_the_list() {
        let n = name();
        assert!(n.len() <= 15, "{n}");
        assert!(
            n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "{n}"
        );
        assert_eq!(n, name());
    }
}
