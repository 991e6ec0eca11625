//! Decodes the kernel's records (`src/bpf/monitor.h`, `struct jcs_event`) into [`Event`]s.
//! Pure: bytes in, values out; it never panics on any input.

/// Size of `struct jcs_event`.
pub const EVENT_SIZE: usize = 376;
const PATH_MAX: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Syscall,
    Fork,
    Exec,
    Exit,
}

/// One record of the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub time_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tid: u32,
    pub kind: Kind,
    /// System call number (Syscall).
    pub nr: u32,
    /// Return value; the child's pid for Fork; the exit code for Exit.
    pub ret: i64,
    pub args: [u64; 6],
    /// Identity of the file behind an fd argument, taken at entry.
    pub file: Option<(u64, u64)>,
    /// File position at entry.
    pub pos: Option<i64>,
    /// The raw bytes the kernel attached: a NUL-terminated path (openat, exec) or a
    /// `struct sockaddr` (connect). See [`Event::path`].
    pub data: Vec<u8>,
}

impl Event {
    /// `data` as a path: up to its first NUL; None when there is none.
    pub fn path(&self) -> Option<&[u8]> {
        let end = self.data.iter().position(|&b| b == 0)?;
        Some(&self.data[..end])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {0} bytes, expected {EVENT_SIZE}")]
    Size(usize),
    #[error("unknown record kind {0}")]
    Kind(u32),
    #[error("path length {0} exceeds {PATH_MAX}")]
    PathLen(u32),
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// The kernel's internal `dev_t` (major << 20 | minor) as user space sees it in `st_dev`.
pub fn user_dev(kdev: u64) -> u64 {
    let (major, minor) = ((kdev >> 20) as u32, (kdev & 0xfffff) as u32);
    libc::makedev(major, minor)
}

pub fn decode(b: &[u8]) -> Result<Event, DecodeError> {
    if b.len() != EVENT_SIZE {
        return Err(DecodeError::Size(b.len()));
    }
    let kind = match u32_at(b, 24) {
        1 => Kind::Syscall,
        2 => Kind::Fork,
        3 => Kind::Exec,
        4 => Kind::Exit,
        k => return Err(DecodeError::Kind(k)),
    };
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        *a = u64_at(b, 40 + 8 * i);
    }
    let (dev, ino, pos) = (u64_at(b, 88), u64_at(b, 96), u64_at(b, 104) as i64);
    let path_len = u32_at(b, 112);
    if path_len as usize > PATH_MAX {
        return Err(DecodeError::PathLen(path_len));
    }
    let data = b[120..120 + path_len as usize].to_vec();
    Ok(Event {
        time_ns: u64_at(b, 0),
        cgroup_id: u64_at(b, 8),
        pid: u32_at(b, 16),
        tid: u32_at(b, 20),
        kind,
        nr: u32_at(b, 28),
        ret: u64_at(b, 32) as i64,
        args,
        file: (ino != 0).then_some((user_dev(dev), ino)),
        pos: (pos >= 0).then_some(pos),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Vec<u8> {
        let mut b = vec![0u8; EVENT_SIZE];
        b[0..8].copy_from_slice(&123u64.to_ne_bytes());
        b[8..16].copy_from_slice(&77u64.to_ne_bytes());
        b[16..20].copy_from_slice(&10u32.to_ne_bytes());
        b[20..24].copy_from_slice(&11u32.to_ne_bytes());
        b[24..28].copy_from_slice(&1u32.to_ne_bytes());
        b[28..32].copy_from_slice(&257u32.to_ne_bytes());
        b[32..40].copy_from_slice(&3i64.to_ne_bytes());
        b[40..48].copy_from_slice(&(-100i64 as u64).to_ne_bytes());
        b[104..112].copy_from_slice(&(-1i64).to_ne_bytes());
        b[112..116].copy_from_slice(&5u32.to_ne_bytes());
        b[120..125].copy_from_slice(b"/etc\0");
        b
    }

    #[test]
    fn decodes_an_openat() {
        let e = decode(&record()).unwrap();
        assert_eq!(
            (e.time_ns, e.cgroup_id, e.pid, e.tid, e.nr, e.ret),
            (123, 77, 10, 11, 257, 3)
        );
        assert_eq!(e.kind, Kind::Syscall);
        assert_eq!(e.args[0] as i64, -100);
        assert_eq!(e.path(), Some(&b"/etc"[..]));
        assert_eq!((e.file, e.pos), (None, None));
    }

    #[test]
    fn kernel_dev_numbers_become_st_dev() {
        // 8:1 (sda1) and 259:3 (nvme): kernel (major << 20 | minor) vs glibc makedev.
        assert_eq!(user_dev((8 << 20) | 1), libc::makedev(8, 1));
        assert_eq!(user_dev((259 << 20) | 3), libc::makedev(259, 3));
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(decode(&[0; 10]), Err(DecodeError::Size(10)));
        let mut b = record();
        b[24] = 9;
        assert_eq!(decode(&b), Err(DecodeError::Kind(9)));
        let mut b = record();
        b[112..116].copy_from_slice(&300u32.to_ne_bytes());
        assert_eq!(decode(&b), Err(DecodeError::PathLen(300)));
        // Every byte value anywhere: no panic.
        let good = record();
        for i in 0..EVENT_SIZE {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = decode(&b);
            }
        }
    }
}
