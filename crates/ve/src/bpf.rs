//! A minimal loader of classic-sized eBPF programs through the raw `bpf(2)` call: the kernel
//! feature probes (`doctor`) and the VEs' device program (`devices`) are a handful of
//! instructions each, not worth libbpf; [`attached_names`] says what a cgroup carries.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// One instruction (`struct bpf_insn`, little-endian: code, dst | src << 4, off, imm).
pub fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | (u64::from(dst & 0xf | (src & 0xf) << 4) << 8)
        | (u64::from(off as u16) << 16)
        | (u64::from(imm as u32) << 32)
}

/// Opcodes used here.
pub mod op {
    /// `dst = *(u32 *)(src + off)`
    pub const LDX_W: u8 = 0x61;
    /// `dst &= imm` (64-bit)
    pub const AND_K: u8 = 0x57;
    /// `dst = imm` (64-bit)
    pub const MOV_K: u8 = 0xb7;
    /// `if dst != imm goto pc + off`
    pub const JNE_K: u8 = 0x55;
    pub const EXIT: u8 = 0x95;
}

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    pad: u32,
}

/// Loads `insns` as a program of type `prog_type`.
pub fn load(
    prog_type: u32,
    expected_attach: u32,
    attach_btf_id: u32,
    insns: &[u64],
) -> io::Result<OwnedFd> {
    load_named(prog_type, expected_attach, attach_btf_id, insns, "")
}

/// [`load`], with the name the kernel shows for the program (at most 15 bytes of letters,
/// digits, `_` and `.`).
pub fn load_named(
    prog_type: u32,
    expected_attach: u32,
    attach_btf_id: u32,
    insns: &[u64],
    name: &str,
) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut prog_name = [0u8; 16];
    let n = name.len().min(15);
    prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let mut attr = ProgLoad {
        prog_name,
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: expected_attach,
        attach_btf_id,
        ..Default::default()
    };
    const BPF_PROG_LOAD: i32 = 5;
    bpf_fd(BPF_PROG_LOAD, &mut attr)
}

/// Attaches `prog` to the cgroup2 directory `cgroup` as `attach_type` (no flags: the only
/// program of that type on it).
pub fn attach(prog: &OwnedFd, cgroup: impl AsFd, attach_type: u32) -> io::Result<()> {
    #[repr(C)]
    #[derive(Default)]
    struct ProgAttach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
    }
    let mut attr = ProgAttach {
        target_fd: cgroup.as_fd().as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        ..Default::default()
    };
    const BPF_PROG_ATTACH: i32 = 8;
    bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
}

/// `bpf(cmd, attr)`. Every caller passes a correctly sized, zero-padded attribute of `cmd`
/// (`#[repr(C)]`, `Default`) whose pointers outlive the call.
fn bpf<T>(cmd: i32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: as the callers promise above.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// [`bpf`] for a command that returns a new descriptor.
fn bpf_fd<T>(cmd: i32, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: a fresh fd the kernel just gave us, owned from here on.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The names of the programs attached directly to the cgroup2 directory `cgroup` as
/// `attach_type` (not those it inherits).
pub fn attached_names(cgroup: impl AsFd, attach_type: u32) -> io::Result<Vec<String>> {
    #[repr(C)]
    #[derive(Default)]
    struct Query {
        target_fd: u32,
        attach_type: u32,
        query_flags: u32,
        attach_flags: u32,
        prog_ids: u64,
        prog_cnt: u32,
        pad: u32,
        prog_attach_flags: u64,
        link_ids: u64,
        link_attach_flags: u64,
        revision: u64,
    }
    let mut ids = [0u32; 64];
    let mut q = Query {
        target_fd: cgroup.as_fd().as_raw_fd() as u32,
        attach_type,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    const BPF_PROG_QUERY: i32 = 16;
    bpf(BPF_PROG_QUERY, &mut q)?;
    let mut names = vec![];
    for &id in &ids[..(q.prog_cnt as usize).min(ids.len())] {
        #[repr(C)]
        #[derive(Default)]
        struct ById {
            prog_id: u32,
            next_id: u32,
            open_flags: u32,
        }
        const BPF_PROG_GET_FD_BY_ID: i32 = 13;
        let fd = match bpf_fd(
            BPF_PROG_GET_FD_BY_ID,
            &mut ById {
                prog_id: id,
                ..Default::default()
            },
        ) {
            Ok(fd) => fd,
            // Detached meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        // `struct bpf_prog_info` up to its name (the kernel fills what fits).
        let mut info = [0u8; 80];
        #[repr(C)]
        #[derive(Default)]
        struct Info {
            bpf_fd: u32,
            info_len: u32,
            info: u64,
        }
        const BPF_OBJ_GET_INFO_BY_FD: i32 = 15;
        bpf(
            BPF_OBJ_GET_INFO_BY_FD,
            &mut Info {
                bpf_fd: fd.as_raw_fd() as u32,
                info_len: info.len() as u32,
                info: info.as_mut_ptr() as u64,
            },
        )?;
        let name = &info[64..80];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        names.push(String::from_utf8_lossy(&name[..end]).into_owned());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_kernel_header() {
        assert_eq!(insn(op::MOV_K, 0, 0, 0, 0), 0xb7);
        assert_eq!(insn(op::EXIT, 0, 0, 0, 0), 0x95);
        // r2 = *(u32 *)(r1 + 4): code 0x61, regs 0x12, off 4.
        assert_eq!(insn(op::LDX_W, 2, 1, 4, 0), 0x0000_0000_0004_1261);
        // if r3 != 7 goto +2
        assert_eq!(insn(op::JNE_K, 3, 0, 2, 7), 0x0000_0007_0002_0355);
        assert_eq!(insn(op::MOV_K, 0, 0, 0, -1) >> 32, 0xffff_ffff);
    }
}
