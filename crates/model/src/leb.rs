//! Unsigned LEB128 varints, the one encoding of numbers in JCS's compact formats
//! (transaction batches, summaries).

/// Appends `v`: 7 bits per byte, low first, the high bit set on all but the last.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one number at `*o` and moves past it; None when the bytes end first or it has more
/// than 64 bits' worth of bytes.
pub fn get(b: &[u8], o: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*o)?;
        *o += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_does_not_end() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put(&mut b, v);
            let mut o = 0;
            assert_eq!((get(&b, &mut o), o), (Some(v), b.len()));
        }
        assert_eq!(get(&[0x80, 0x80], &mut 0), None);
        assert_eq!(get(&[0xff; 11], &mut 0), None);
        assert_eq!(get(&[], &mut 0), None);
        // Ten bytes at most, the bits past 64 dropped (as written by no encoder).
        let mut o = 0;
        assert_eq!(
            get(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
                &mut o
            ),
            Some(u64::MAX)
        );
        assert_eq!(o, 10);
        // Each length, and where it stops.
        for (bytes, want) in [
            (&[0x05][..], 5u64),
            (&[0x85, 0x01], 133),
            (&[0x80, 0x80, 0x01], 1 << 14),
        ] {
            let mut o = 0;
            let mut b = bytes.to_vec();
            b.push(0x33);
            assert_eq!((get(&b, &mut o), o), (Some(want), bytes.len()));
        }
    }
}
