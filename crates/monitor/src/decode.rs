//! Decodes the kernel's records (`src/bpf/monitor.h`, `struct jcs_event`) into [`Event`]s.
//! Pure: bytes in, values out; it never panics on any input.
//!
//! Every size, offset and constant comes from the skeleton's types, which libbpf-cargo
//! generates from the compiler's BTF of `monitor.h`: the layout is defined once, in C.

use crate::skel::types::{jcs_event, jcs_kind, jcs_limit};
use std::mem::{offset_of, size_of};

/// Size of `struct jcs_event`.
pub const EVENT_SIZE: usize = size_of::<jcs_event>();
/// Size of its head (`JCS_HEAD_SIZE`): a record that carries no path data is only this long.
pub const HEAD_SIZE: usize = jcs_limit::JCS_HEAD_SIZE.0 as usize;
const PATH_MAX: usize = jcs_limit::JCS_PATH_MAX.0 as usize;
const PATH_HALF: usize = jcs_limit::JCS_PATH_HALF.0 as usize;
const _: () = assert!(size_of::<[i8; PATH_MAX]>() == PATH_MAX && PATH_HALF * 2 == PATH_MAX);
const _: () =
    assert!(HEAD_SIZE == offset_of!(jcs_event, path) && HEAD_SIZE + PATH_MAX == EVENT_SIZE);

/// `enum jcs_flag` (bpf/monitor.h): facts the kernel attaches to a record.
pub mod flag {
    use crate::skel::types::jcs_flag as F;
    pub const SOCKET: u32 = F::JCS_F_SOCKET.0;
    pub const NO_IN: u32 = F::JCS_F_NO_IN.0;
    pub const NO_OUT: u32 = F::JCS_F_NO_OUT.0;
    pub const DGRAM: u32 = F::JCS_F_DGRAM.0;
    pub const MORE: u32 = F::JCS_F_MORE.0;
    pub const SOCKET2: u32 = F::JCS_F_SOCKET2.0;
    pub const APPEND: u32 = F::JCS_F_APPEND.0;
    pub const DNAME: u32 = F::JCS_F_DNAME.0;
    pub const LOCAL: u32 = F::JCS_F_LOCAL.0;
    pub const UDP: u32 = F::JCS_F_UDP.0;
    pub const WRITE_END: u32 = F::JCS_F_WRITE_END.0;
    pub const ARGV: u32 = F::JCS_F_ARGV.0;
    pub const ARGV_CUT: u32 = F::JCS_F_ARGV_CUT.0;
    pub const TTY: u32 = F::JCS_F_TTY.0;
    pub const OWN: u32 = F::JCS_F_OWN.0;
    pub const OWN_OUT: u32 = F::JCS_F_OWN_OUT.0;
    pub const UNIXFILE: u32 = F::JCS_F_UNIXFILE.0;
}

/// Offsets of the record's fields, from the generated type.
mod off {
    use super::{jcs_event as E, offset_of};
    pub const TIME: usize = offset_of!(E, time_ns);
    pub const CGROUP: usize = offset_of!(E, cgroup_id);
    pub const PID: usize = offset_of!(E, pid);
    pub const TID: usize = offset_of!(E, tid);
    pub const KIND: usize = offset_of!(E, kind);
    pub const NR: usize = offset_of!(E, nr);
    pub const RET: usize = offset_of!(E, ret);
    pub const ARGS: usize = offset_of!(E, args);
    pub const DEV: usize = offset_of!(E, dev);
    pub const INO: usize = offset_of!(E, ino);
    pub const POS: usize = offset_of!(E, pos);
    pub const DEV2: usize = offset_of!(E, dev2);
    pub const INO2: usize = offset_of!(E, ino2);
    pub const POS2: usize = offset_of!(E, pos2);
    pub const PATH_LEN: usize = offset_of!(E, path_len);
    pub const PATH2_LEN: usize = offset_of!(E, path2_len);
    pub const FLAGS: usize = offset_of!(E, flags);
    pub const GEN: usize = offset_of!(E, gen);
    pub const GEN2: usize = offset_of!(E, gen2);
    pub const SIZE: usize = offset_of!(E, size);
    pub const ENTER: usize = offset_of!(E, enter_ns);
    pub const RULE: usize = offset_of!(E, rule);
    pub const PATH: usize = offset_of!(E, path);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Syscall,
    Fork,
    Exec,
    Exit,
}

/// One record of the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    /// Identity (device as `st_dev`, inode, generation) of the file behind an fd argument,
    /// taken at entry; of the file an open opened or exec ran, at exit.
    pub file: Option<(u64, u64, u32)>,
    /// Its offset at entry (the call's offset pointer, else the file position).
    pub pos: Option<i64>,
    /// The same for the second descriptor of a transfer (sendfile, copy_file_range, splice).
    pub file2: Option<(u64, u64, u32)>,
    pub pos2: Option<i64>,
    /// A write's file size at entry (where an appending write lands).
    pub size: u64,
    /// When the call entered (`time_ns` is its exit).
    pub enter_ns: u64,
    /// [`flag`]s.
    pub flags: u32,
    /// The policy rule that denied the call (it failed with EPERM), 0 = none.
    pub rule: u32,
    /// The raw bytes the kernel attached: a NUL-terminated path (openat, exec) or a
    /// `struct sockaddr` (a socket's remote end). See [`Event::path`].
    pub data: Vec<u8>,
    /// The second path of a two-path call (rename, link, symlink).
    pub data2: Vec<u8>,
}

impl Event {
    /// `data` as a path: up to its first NUL; None when there is none.
    pub fn path(&self) -> Option<&[u8]> {
        let end = self.data.iter().position(|&b| b == 0)?;
        Some(&self.data[..end])
    }

    /// `data2` as a path.
    pub fn path2(&self) -> Option<&[u8]> {
        let end = self.data2.iter().position(|&b| b == 0)?;
        Some(&self.data2[..end])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {0} bytes, expected {HEAD_SIZE} to {EVENT_SIZE}")]
    Size(usize),
    #[error("unknown record kind {0}")]
    Kind(u32),
    #[error("path length {0} exceeds the {1} bytes the record carries")]
    PathLen(u32, usize),
    #[error("second path length {0} exceeds the {1} bytes the record carries")]
    Path2Len(u32, usize),
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes(b[o..o + 2].try_into().expect("2 bytes"))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// The kernel's internal `dev_t` (major << 20 | minor) as user space sees it in `st_dev`.
pub fn user_dev(kdev: u64) -> u64 {
    let (major, minor) = ((kdev >> 20) as u32, (kdev & 0xfffff) as u32);
    libc::makedev(major, minor)
}

/// Decodes one record: the whole `struct jcs_event`, or its head alone (a record without path
/// data; its path lengths are 0).
pub fn decode(b: &[u8]) -> Result<Event, DecodeError> {
    let mut e = Event::default();
    decode_into(b, &mut e)?;
    Ok(e)
}

/// [`decode`] into `e`, whose path buffers are reused (nothing else of it is kept). On an
/// error `e` holds nothing meaningful.
pub fn decode_into(b: &[u8], e: &mut Event) -> Result<(), DecodeError> {
    if !(HEAD_SIZE..=EVENT_SIZE).contains(&b.len()) {
        return Err(DecodeError::Size(b.len()));
    }
    let kind = match jcs_kind(u32_at(b, off::KIND)) {
        jcs_kind::JCS_EV_SYSCALL => Kind::Syscall,
        jcs_kind::JCS_EV_FORK => Kind::Fork,
        jcs_kind::JCS_EV_EXEC => Kind::Exec,
        jcs_kind::JCS_EV_EXIT => Kind::Exit,
        jcs_kind(k) => return Err(DecodeError::Kind(k)),
    };
    const P: usize = off::PATH;
    // What the record carries after its head (all of `path`, or none of it).
    let carried = b.len() - P;
    let path_len = u32::from(u16_at(b, off::PATH_LEN));
    if path_len as usize > carried {
        return Err(DecodeError::PathLen(path_len, carried));
    }
    let path2_len = u32::from(u16_at(b, off::PATH2_LEN));
    if path2_len as usize > PATH_HALF || (path2_len > 0 && PATH_HALF + path2_len as usize > carried)
    {
        return Err(DecodeError::Path2Len(
            path2_len,
            carried.saturating_sub(PATH_HALF),
        ));
    }
    for (i, a) in e.args.iter_mut().enumerate() {
        *a = u64_at(b, off::ARGS + 8 * i);
    }
    let (dev, ino, pos) = (
        u64_at(b, off::DEV),
        u64_at(b, off::INO),
        u64_at(b, off::POS) as i64,
    );
    let (dev2, ino2, pos2) = (
        u64_at(b, off::DEV2),
        u64_at(b, off::INO2),
        u64_at(b, off::POS2) as i64,
    );
    e.data.clear();
    e.data.extend_from_slice(&b[P..P + path_len as usize]);
    e.data2.clear();
    if path2_len > 0 {
        e.data2
            .extend_from_slice(&b[P + PATH_HALF..P + PATH_HALF + path2_len as usize]);
    }
    e.time_ns = u64_at(b, off::TIME);
    e.cgroup_id = u64_at(b, off::CGROUP);
    e.pid = u32_at(b, off::PID);
    e.tid = u32_at(b, off::TID);
    e.kind = kind;
    e.nr = u32_at(b, off::NR);
    e.ret = u64_at(b, off::RET) as i64;
    e.file = (ino != 0).then_some((user_dev(dev), ino, u32_at(b, off::GEN)));
    e.pos = (pos >= 0).then_some(pos);
    e.file2 = (ino2 != 0).then_some((user_dev(dev2), ino2, u32_at(b, off::GEN2)));
    e.pos2 = (pos2 >= 0).then_some(pos2);
    e.size = u64_at(b, off::SIZE);
    e.enter_ns = u64_at(b, off::ENTER);
    e.flags = u32_at(b, off::FLAGS);
    e.rule = u32_at(b, off::RULE);
    Ok(())
}

/// A batch of decoded events whose slots are kept from batch to batch: a record is decoded
/// into a slot an earlier batch left (its path buffers too), not built and then moved into a
/// vector — the move of each ~260-byte event was a fifth of the draining thread's time.
#[derive(Debug, Default)]
pub struct Batch {
    slots: Vec<Event>,
    len: usize,
}

impl Batch {
    /// Decodes one raw record into the next slot; a record that does not decode is left out.
    pub fn push_raw(&mut self, b: &[u8]) -> Result<(), DecodeError> {
        if self.len == self.slots.len() {
            self.slots.push(Event::default());
        }
        decode_into(b, &mut self.slots[self.len])?;
        self.len += 1;
        Ok(())
    }

    /// Appends a copy of `e` (its buffers into the slot's).
    pub fn push(&mut self, e: &Event) {
        if self.len == self.slots.len() {
            self.slots.push(e.clone());
        } else {
            self.slots[self.len].clone_from(e);
        }
        self.len += 1;
    }

    /// Appends every event of `other`, which is left empty.
    pub fn append(&mut self, other: &mut Batch) {
        if self.is_empty() {
            std::mem::swap(self, other);
        } else {
            for e in other.events() {
                self.push(e);
            }
        }
        other.clear();
    }

    /// The events, in the order they were pushed.
    pub fn events(&self) -> &[Event] {
        &self.slots[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the batch, keeping its slots — at most `KEPT` of them (a backlog drained
    /// after a stall can be hundreds of thousands of events: that memory goes back).
    pub fn clear(&mut self) {
        self.len = 0;
        if self.slots.len() > Self::KEPT {
            self.slots.truncate(Self::KEPT);
            self.slots.shrink_to_fit();
        }
    }

    /// How many slots a batch keeps when cleared (≈ 4 MB).
    pub const KEPT: usize = 16_384;
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
        b[128..136].copy_from_slice(&(-1i64).to_ne_bytes());
        b[136..138].copy_from_slice(&5u16.to_ne_bytes());
        b[176..181].copy_from_slice(b"/etc\0");
        b
    }

    #[test]
    fn the_generated_layout_is_the_documented_one() {
        // monitor.h documents these offsets; the fixtures below are written at them. A
        // change of the C struct changes the generated type: this says so in one place.
        assert_eq!(EVENT_SIZE, 432);
        assert_eq!(
            [
                off::TIME,
                off::CGROUP,
                off::PID,
                off::TID,
                off::KIND,
                off::NR,
                off::RET
            ],
            [0, 8, 16, 20, 24, 28, 32]
        );
        assert_eq!([off::ARGS, off::DEV, off::INO, off::POS], [40, 88, 96, 104]);
        assert_eq!([off::DEV2, off::INO2, off::POS2], [112, 120, 128]);
        assert_eq!(
            [
                off::PATH_LEN,
                off::PATH2_LEN,
                off::FLAGS,
                off::GEN,
                off::GEN2
            ],
            [136, 138, 140, 144, 148]
        );
        assert_eq!(
            [off::SIZE, off::ENTER, off::RULE, off::PATH],
            [152, 160, 168, 176]
        );
        assert_eq!((PATH_MAX, PATH_HALF), (256, 128));
        assert_eq!(flag::SOCKET2, 32);
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
        assert_eq!((e.file2, e.pos2, e.flags, e.path2()), (None, None, 0, None));
    }

    #[test]
    fn decodes_a_transfer_and_two_paths() {
        let mut b = record();
        b[112..120].copy_from_slice(&((8u64 << 20) | 1).to_ne_bytes());
        b[120..128].copy_from_slice(&42u64.to_ne_bytes());
        b[128..136].copy_from_slice(&4096i64.to_ne_bytes());
        b[138..140].copy_from_slice(&4u16.to_ne_bytes());
        b[140..144].copy_from_slice(&(flag::NO_IN | flag::SOCKET2).to_ne_bytes());
        b[148..152].copy_from_slice(&7u32.to_ne_bytes());
        b[152..160].copy_from_slice(&99u64.to_ne_bytes());
        b[176 + 128..176 + 132].copy_from_slice(b"/b/\0");
        let e = decode(&b).unwrap();
        assert_eq!(e.file2, Some((libc::makedev(8, 1), 42, 7)));
        assert_eq!(e.size, 99);
        assert_eq!(e.pos2, Some(4096));
        assert_eq!(e.flags, flag::NO_IN | flag::SOCKET2);
        assert_eq!(
            (e.path(), e.path2()),
            (Some(&b"/etc"[..]), Some(&b"/b/"[..]))
        );
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
        b[136..138].copy_from_slice(&300u16.to_ne_bytes());
        assert_eq!(decode(&b), Err(DecodeError::PathLen(300, 256)));
        let mut b = record();
        b[138..140].copy_from_slice(&129u16.to_ne_bytes());
        assert_eq!(decode(&b), Err(DecodeError::Path2Len(129, 128)));
        // A head alone that claims path data it does not carry; a record longer than the
        // struct; one cut inside its path.
        let head = &record()[..HEAD_SIZE];
        assert_eq!(decode(head), Err(DecodeError::PathLen(5, 0)));
        let mut b = record();
        b.push(0);
        assert_eq!(decode(&b), Err(DecodeError::Size(EVENT_SIZE + 1)));
        assert_eq!(
            decode(&record()[..HEAD_SIZE - 1]),
            Err(DecodeError::Size(HEAD_SIZE - 1))
        );
        let mut b = record();
        b[138..140].copy_from_slice(&10u16.to_ne_bytes());
        assert_eq!(
            decode(&b[..HEAD_SIZE + PATH_HALF + 4]),
            Err(DecodeError::Path2Len(10, 4))
        );
        // Every byte value anywhere, at every length: no panic.
        let good = record();
        for i in 0..EVENT_SIZE {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = decode(&b);
                let _ = decode(&b[..HEAD_SIZE.max(i)]);
            }
        }
    }

    #[test]
    fn a_head_alone_is_a_record_without_path_data() {
        // A write's record: the kernel sends the head only (JCS_HEAD_SIZE bytes).
        let mut b = record();
        b[136..138].copy_from_slice(&0u16.to_ne_bytes());
        let full = decode(&b).expect("the whole struct");
        let head = decode(&b[..HEAD_SIZE]).expect("the head alone");
        assert_eq!(head, full);
        assert!(head.data.is_empty() && head.data2.is_empty() && head.path().is_none());
        assert_eq!(head.time_ns, 123);
        assert_eq!(head.nr, 257);
    }

    /// A batch's slots are reused: an event decoded into a slot an earlier batch left is
    /// exactly what decoding it anew gives (no path of the earlier event left behind), a
    /// record that does not decode is left out, and appending hands the events over in order.
    #[test]
    fn a_batch_reuses_its_slots_and_keeps_nothing_of_earlier_events() {
        let mut two = record();
        two[138..140].copy_from_slice(&4u16.to_ne_bytes());
        two[176 + 128..176 + 132].copy_from_slice(b"/b/\0");
        let mut head = record();
        head[136..138].copy_from_slice(&0u16.to_ne_bytes());
        let head = &head[..HEAD_SIZE];
        let mut b = Batch::default();
        b.push_raw(&two).unwrap();
        assert!(b.push_raw(&[0; 10]).is_err());
        b.push_raw(&record()).unwrap();
        assert_eq!(
            b.events(),
            &[decode(&two).unwrap(), decode(&record()).unwrap()]
        );
        b.clear();
        assert!(b.is_empty());
        // The slot of the two-path record now holds a head alone.
        b.push_raw(head).unwrap();
        assert_eq!(b.events(), &[decode(head).unwrap()]);
        assert!(b.events()[0].data.is_empty() && b.events()[0].data2.is_empty());
        let mut into = Batch::default();
        into.append(&mut b);
        assert!(b.is_empty());
        assert_eq!(into.len(), 1);
        b.push_raw(&two).unwrap();
        into.append(&mut b);
        assert_eq!(
            into.events(),
            &[decode(head).unwrap(), decode(&two).unwrap()]
        );
        assert!(b.is_empty());
        // A backlog's slots beyond KEPT go back when it is cleared.
        for _ in 0..Batch::KEPT + 10 {
            b.push_raw(head).unwrap();
        }
        assert_eq!(b.len(), Batch::KEPT + 10);
        b.clear();
        assert_eq!(b.slots.len(), Batch::KEPT);
    }
}
