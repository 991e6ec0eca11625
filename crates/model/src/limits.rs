//! Resource limits of a VE.

use serde::{Deserialize, Serialize};

/// Memory and process-count limits, applied through the VE's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Bytes of memory (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`).
    pub memory_bytes: u64,
    /// Number of tasks (`pids.max`).
    pub pids: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 1 << 30,
            pids: 1024,
        }
    }
}

/// Why a size does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("size {0:?}: unknown unit (use k, M, G or T)")]
    Unit(String),
    #[error("size {0:?} is not a number with an optional unit")]
    NotANumber(String),
    #[error("size {0:?} is too large")]
    TooLarge(String),
    #[error("size {0:?} must be greater than zero")]
    Zero(String),
}

/// Parses a size such as `512M`, `2G`, `65536` or `64k` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let m = match t[i..].to_ascii_lowercase().trim_end_matches(['b', 'i']) {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return Err(SizeError::Unit(s.into())),
            };
            (&t[..i], m)
        }
    };
    let n: u64 = num.parse().map_err(|_| SizeError::NotANumber(s.into()))?;
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| SizeError::TooLarge(s.into()))?;
    if v == 0 {
        return Err(SizeError::Zero(s.into()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("0"), Err(SizeError::Zero("0".into())));
        assert_eq!(parse_size("12x"), Err(SizeError::Unit("12x".into())));
        assert_eq!(parse_size("M"), Err(SizeError::NotANumber("M".into())));
        assert_eq!(
            parse_size("99999999999T"),
            Err(SizeError::TooLarge("99999999999T".into()))
        );
    }
}
