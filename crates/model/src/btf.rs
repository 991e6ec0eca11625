//! A minimal reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): enough to find the type
//! id of a named function or typedef, which loading a `tp_btf`, `fentry` or `lsm` program
//! needs (`ve::doctor`), or whether the kernel has a kfunc the monitor calls
//! (`monitor::loader::kernel_support`). Pure: it takes the bytes.

/// BTF kinds used here.
pub const KIND_TYPEDEF: u32 = 8;
pub const KIND_FUNC: u32 = 12;

const MAGIC: u16 = 0xEB9F;

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// Size of the kind-specific data that follows a `struct btf_type`.
fn extra(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
        3 => 12,                      // ARRAY
        4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
        6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
        2 | 7..=12 | 16 | 18 => 0,
        _ => return None,
    })
}

/// The id of the first type of `kind` named `name`, or None (also for malformed BTF).
/// Only little-endian BTF (what x86_64 and aarch64 kernels expose) is read.
pub fn find_type_id(btf: &[u8], kind: u32, name: &str) -> Option<u32> {
    if u16::from_le_bytes(btf.get(0..2)?.try_into().ok()?) != MAGIC {
        return None;
    }
    let hdr_len = u32_at(btf, 4)? as usize;
    let (type_off, type_len) = (u32_at(btf, 8)? as usize, u32_at(btf, 12)? as usize);
    let (str_off, str_len) = (u32_at(btf, 16)? as usize, u32_at(btf, 20)? as usize);
    let types = btf.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
    let strs = btf.get(hdr_len + str_off..hdr_len + str_off + str_len)?;
    let name_at = |off: usize| -> Option<&[u8]> {
        let s = strs.get(off..)?;
        Some(&s[..s.iter().position(|&c| c == 0)?])
    };
    let mut o = 0usize;
    let mut id = 1u32;
    while o + 12 <= types.len() {
        let name_off = u32_at(types, o)? as usize;
        let info = u32_at(types, o + 4)?;
        let k = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        if k == kind && name_at(name_off)? == name.as_bytes() {
            return Some(id);
        }
        o += 12 + extra(k, vlen)?;
        id += 1;
    }
    None
}

/// A BTF blob holding only FUNC and TYPEDEF types, `(kind, name)` in order (ids from 1): a
/// fixture for readers of other crates (a kernel that lacks a function). Panics on another
/// kind (their encodings carry more than a name).
pub fn of_names(types: &[(u32, &str)]) -> Vec<u8> {
    let mut strs = vec![0u8];
    let mut t = Vec::new();
    for &(kind, name) in types {
        assert!(kind == KIND_FUNC || kind == KIND_TYPEDEF, "kind {kind}");
        t.extend_from_slice(&(strs.len() as u32).to_le_bytes());
        t.extend_from_slice(&(kind << 24).to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        strs.extend_from_slice(name.as_bytes());
        strs.push(0);
    }
    blob_of(&t, &strs)
}

/// A BTF blob: the 24-byte header (version 1), then the type section `types`, then the string
/// section `strs`.
fn blob_of(types: &[u8], strs: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&MAGIC.to_le_bytes());
    b.extend_from_slice(&[1, 0]);
    b.extend_from_slice(&24u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&(types.len() as u32).to_le_bytes());
    b.extend_from_slice(&(types.len() as u32).to_le_bytes());
    b.extend_from_slice(&(strs.len() as u32).to_le_bytes());
    b.extend_from_slice(types);
    b.extend_from_slice(strs);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with: 1 INT "int", 2 STRUCT "s" (2 members), 3 TYPEDEF "btf_trace_x",
    /// 4 FUNC "f".
    fn blob() -> Vec<u8> {
        let strs = b"\0int\0s\0a\0b\0btf_trace_x\0f\0";
        let off = |n: &str| {
            strs.windows(n.len() + 1)
                .position(|w| &w[..n.len()] == n.as_bytes() && w[n.len()] == 0)
                .unwrap() as u32
        };
        let mut t = Vec::new();
        let mut ty = |name: u32, kind: u32, vlen: u32, size: u32, extra: &[u8]| {
            t.extend_from_slice(&name.to_le_bytes());
            t.extend_from_slice(&((kind << 24) | vlen).to_le_bytes());
            t.extend_from_slice(&size.to_le_bytes());
            t.extend_from_slice(extra);
        };
        ty(off("int"), 1, 0, 4, &[0; 4]);
        ty(off("s"), 4, 2, 8, &[0; 24]);
        ty(off("btf_trace_x"), 8, 0, 2, &[]);
        ty(off("f"), 12, 0, 0, &[]);
        blob_of(&t, strs)
    }

    #[test]
    fn finds_types_by_kind_and_name() {
        let b = blob();
        assert_eq!(find_type_id(&b, KIND_TYPEDEF, "btf_trace_x"), Some(3));
        assert_eq!(find_type_id(&b, KIND_FUNC, "f"), Some(4));
        assert_eq!(find_type_id(&b, KIND_FUNC, "btf_trace_x"), None);
        assert_eq!(find_type_id(&b, KIND_FUNC, "missing"), None);
        assert_eq!(find_type_id(&b[..20], KIND_FUNC, "f"), None);
        assert_eq!(
            find_type_id(b"not btf at all, really", KIND_FUNC, "f"),
            None
        );
    }

    #[test]
    fn a_blob_of_names_reads_back() {
        let b = of_names(&[(KIND_FUNC, "a"), (KIND_TYPEDEF, "b"), (KIND_FUNC, "c")]);
        assert_eq!(find_type_id(&b, KIND_FUNC, "a"), Some(1));
        assert_eq!(find_type_id(&b, KIND_TYPEDEF, "b"), Some(2));
        assert_eq!(find_type_id(&b, KIND_FUNC, "b"), None);
        assert_eq!(find_type_id(&b, KIND_FUNC, "c"), Some(3));
    }

    #[test]
    fn finds_the_sys_enter_tracepoint_in_this_kernel() {
        // Every kernel JCS supports has BTF; if this one does not, doctor says so (tested
        // in doctor), and this test has nothing to read.
        let Ok(b) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            panic!("/sys/kernel/btf/vmlinux is missing on this machine");
        };
        let id = find_type_id(&b, KIND_TYPEDEF, "btf_trace_sys_enter").unwrap();
        assert!(id > 1);
        assert!(find_type_id(&b, KIND_FUNC, "vfs_read").is_some());
    }
}
