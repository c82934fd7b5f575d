//! Field comparisons for probabilistic matching: each maps a pair of normalised values to a
//! comparison level (higher = stronger agreement), or to `None` when either value is missing.
//! Pure functions; every similarity is symmetric and within [0, 1].

use serde::{Deserialize, Serialize};

use crate::normalise;

/// How one field is compared. The levels of each kind are listed by [`Comparator::levels`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Comparator {
    /// exact / else.
    Exact,
    /// exact / Jaro-Winkler >= high / Jaro-Winkler >= low / else.
    Text { high: f64, low: f64 },
    /// Like `Text`, with a nickname level after exact (Bob = Robert).
    GivenName { high: f64, low: f64 },
    /// exact / one edit (Damerau-Levenshtein) / else: codes, numbers, identifiers.
    Code,
    /// exact / day and month swapped / one edit in YYYYMMDD / else.
    Date,
}

impl Comparator {
    /// The level names, from "else" (0) to the strongest agreement.
    pub fn levels(&self) -> &'static [&'static str] {
        match self {
            Comparator::Exact => &["else", "exact"],
            Comparator::Text { .. } => &["else", "jaro_winkler_low", "jaro_winkler_high", "exact"],
            Comparator::GivenName { .. } => &[
                "else",
                "jaro_winkler_low",
                "jaro_winkler_high",
                "nickname",
                "exact",
            ],
            Comparator::Code => &["else", "one_edit", "exact"],
            Comparator::Date => &["else", "one_edit", "day_month_swap", "exact"],
        }
    }

    /// The level of agreement of two present values.
    pub fn level(&self, a: &str, b: &str) -> u8 {
        if a == b {
            return (self.levels().len() - 1) as u8;
        }
        match *self {
            Comparator::Exact => 0,
            Comparator::Text { high, low } => {
                let similarity = jaro_winkler(a, b);
                if similarity >= high {
                    2
                } else if similarity >= low {
                    1
                } else {
                    0
                }
            }
            Comparator::GivenName { high, low } => {
                if nickname_equivalent(a, b) {
                    return 3;
                }
                let similarity = jaro_winkler(a, b);
                if similarity >= high {
                    2
                } else if similarity >= low {
                    1
                } else {
                    0
                }
            }
            Comparator::Code => u8::from(strsim::damerau_levenshtein(a, b) <= 1),
            Comparator::Date => {
                if is_day_month_swap(a, b) {
                    2
                } else {
                    u8::from(a.len() == b.len() && strsim::damerau_levenshtein(a, b) <= 1)
                }
            }
        }
    }
}

/// Jaro-Winkler similarity, symmetric (strsim's prefix scaling is applied to both orders).
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let forward = strsim::jaro_winkler(a, b);
    let backward = strsim::jaro_winkler(b, a);
    forward.max(backward).clamp(0.0, 1.0)
}

fn nickname_equivalent(a: &str, b: &str) -> bool {
    let forms_a = normalise::given_name_forms(a);
    let forms_b = normalise::given_name_forms(b);
    forms_a.iter().any(|form| forms_b.contains(form))
}

/// `YYYYMMDD` dates (any separators removed) equal but for day and month swapped.
fn is_day_month_swap(a: &str, b: &str) -> bool {
    let digits = |text: &str| {
        text.chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
    };
    let (a, b) = (digits(a), digits(b));
    a.len() == 8 && b.len() == 8 && a[..4] == b[..4] && a[4..6] == b[6..8] && a[6..8] == b[4..6]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEXT: Comparator = Comparator::Text {
        high: 0.92,
        low: 0.8,
    };
    const GIVEN: Comparator = Comparator::GivenName {
        high: 0.92,
        low: 0.8,
    };

    #[test]
    fn levels_follow_agreement() {
        assert_eq!(TEXT.level("neumann", "neumann"), 3);
        assert_eq!(TEXT.level("neumann", "nuemann"), 2);
        assert_eq!(TEXT.level("smith", "smyth"), 1);
        assert_eq!(TEXT.level("smith", "okafor"), 0);
        assert_eq!(GIVEN.level("bob", "robert"), 3);
        assert_eq!(GIVEN.level("robert", "robert"), 4);
        assert_eq!(Comparator::Code.level("4223", "4232"), 1);
        assert_eq!(Comparator::Code.level("4223", "5223"), 1);
        assert_eq!(Comparator::Code.level("4223", "9999"), 0);
        assert_eq!(Comparator::Date.level("19151111", "19151111"), 3);
        assert_eq!(Comparator::Date.level("19780311", "19781103"), 2);
        assert_eq!(Comparator::Date.level("19780311", "19870311"), 1);
        assert_eq!(Comparator::Date.level("19780311", "19600101"), 0);
    }

    proptest! {
        #[test]
        fn similarity_is_symmetric_and_within_unit_interval(a in "\\PC{0,12}", b in "\\PC{0,12}") {
            let forward = jaro_winkler(&a, &b);
            prop_assert!((0.0..=1.0).contains(&forward));
            prop_assert_eq!(forward, jaro_winkler(&b, &a));
            for comparator in [TEXT, GIVEN, Comparator::Code, Comparator::Date, Comparator::Exact] {
                prop_assert_eq!(comparator.level(&a, &b), comparator.level(&b, &a));
                prop_assert!((comparator.level(&a, &b) as usize) < comparator.levels().len());
            }
        }
    }
}
