//! The summarization tiers a `T` record can hold (docs/summarization.md), by byte and name.

/// A tier of summaries in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Causal: identical reachability.
    T1,
    /// Causal at file granularity: T1 of the flows with byte ranges widened to whole files;
    /// exact at file granularity, may add a dependency a byte range would have ruled out.
    T1F,
    /// Structural: may add false dependencies, never loses one.
    T2,
    /// Fading: old exchanges and file bytes coarsened; never loses a dependency.
    T4,
    /// Integrity records: what a VE wrote into one of its dirties over a window (the
    /// recorder writes these instead of each write; DESIGN: dirties as integrity records).
    /// Not windowed: a question turns each into the instants it sees
    /// (`analysis::integrity::points`), and the answer stays exact.
    Integrity,
}

/// (tier, its byte in a `T` record, its name): the one table of both.
const TIERS: [(Tier, u8, &str); 5] = [
    (Tier::T1, 1, "T1"),
    (Tier::T1F, 5, "T1F"),
    (Tier::T2, 2, "T2"),
    (Tier::T4, 4, "T4"),
    (Tier::Integrity, 9, "integrity"),
];

impl Tier {
    pub fn code(self) -> u8 {
        TIERS.iter().find(|t| t.0 == self).map_or(0, |t| t.1)
    }

    pub fn name(self) -> &'static str {
        TIERS.iter().find(|t| t.0 == self).map_or("?", |t| t.2)
    }

    pub fn from_code(code: u8) -> Option<Tier> {
        TIERS.iter().find(|t| t.1 == code).map(|t| t.0)
    }

    pub fn from_name(name: &str) -> Option<Tier> {
        TIERS.iter().find(|t| t.2 == name).map(|t| t.0)
    }

    /// How coarse it is: T1 1, T1F 2, T2 3, T4 4 (a tier only coarsens with age: retention);
    /// 0 for integrity records, which are not a tier of the journal's transactions.
    pub fn coarseness(self) -> u8 {
        match self {
            Tier::T1 => 1,
            Tier::T1F => 2,
            Tier::T2 => 3,
            Tier::T4 => 4,
            Tier::Integrity => 0,
        }
    }

    /// Whether its summaries have windows that may add dependencies (T2, T4), so that a
    /// query over them is conservative rather than exact.
    pub fn windowed(self) -> bool {
        !matches!(self, Tier::T1 | Tier::T1F | Tier::Integrity)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_one_table() {
        for t in [Tier::T1, Tier::T1F, Tier::T2, Tier::T4, Tier::Integrity] {
            assert_eq!(Tier::from_code(t.code()), Some(t));
            assert_eq!(Tier::from_name(t.name()), Some(t));
        }
        assert_eq!(
            (Tier::T1.code(), Tier::T2.code(), Tier::T4.code()),
            (1, 2, 4)
        );
        assert_eq!(Tier::from_code(3), None);
        assert_eq!(Tier::from_name("T3"), None);
    }
}
