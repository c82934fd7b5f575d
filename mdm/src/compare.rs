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
    /// UK postcodes as `OUTWARD INWARD`: exact (unit) / same sector (outward code and the
    /// inward digit) / same district (outward code) / else. Values that are not UK postcodes
    /// (a foreign or mistyped code) compare as codes: exact, or one edit at `district`.
    Postcode,
    /// A middle name or initial: exact / similar (Jaro-Winkler >= 0.92) / initial (one is
    /// the other's initial) / else.
    MiddleName,
    /// A whole address (SAON, PAON, street, town, postcode, joined by [`join_address`]),
    /// scored as one comparison because its parts are correlated: exact (every part both
    /// have is equal, at least two) / close (every part both have agrees within a typo, at
    /// least two) / most (PAON, street and another part agree, one does not) / building (PAON and
    /// street agree) / street (street agrees) / area (postcode or town agrees) / else.
    Address,
    /// Given and family names (joined by [`join_address`]'s separator) entered the wrong way
    /// round: swapped (each similar to the other's opposite, Jaro-Winkler >= 0.92) / crossed
    /// (one name in the other's field) / else. A correction beside the given and family name
    /// comparisons, which disagree then.
    SwappedNames,
}

/// Joins address parts (SAON, PAON, street, town, postcode) into one value for
/// [`Comparator::Address`]; a missing part is empty.
pub fn join_address(parts: &[Option<String>; 5]) -> String {
    parts
        .iter()
        .map(|part| part.as_deref().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

fn swapped_names(a: &str, b: &str) -> u8 {
    // The separator is one ASCII byte: a byte search, not a char search.
    fn split(text: &str) -> Option<(&str, &str)> {
        let at = text.bytes().position(|byte| byte == 0x1f)?;
        Some((&text[..at], &text[at + 1..]))
    }
    let (Some((given_a, family_a)), Some((given_b, family_b))) = (split(a), split(b)) else {
        return 0;
    };
    let similar =
        |x: &str, y: &str| !x.is_empty() && !y.is_empty() && jaro_winkler_from(x, y, 0.92) >= 0.92;
    if given_a == family_a || given_b == family_b {
        return 0;
    }
    // The crossings first: most pairs have none, and then nothing else needs comparing.
    let crossed = match (similar(given_a, family_b), similar(family_a, given_b)) {
        (true, true) => 2,
        (true, false) | (false, true) => 1,
        (false, false) => return 0,
    };
    if similar(given_a, given_b) || similar(family_a, family_b) {
        0
    } else {
        crossed
    }
}

/// How two values of one address part agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Missing,
    Differ,
    Close,
    Exact,
}

/// The five parts of a joined address (missing ones empty), without allocating.
fn address_parts(joined: &str) -> [&str; 5] {
    let mut parts = [""; 5];
    let mut rest = joined;
    for slot in &mut parts {
        // The separator is one ASCII byte: a byte scan, not a char search.
        match rest.bytes().position(|byte| byte == 0x1f) {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + 1..];
            }
            None => {
                *slot = rest;
                break;
            }
        }
    }
    parts
}

fn address_level(a: &str, b: &str) -> u8 {
    // saon, paon, street, town, postcode
    let (parts_a, parts_b) = (address_parts(a), address_parts(b));
    let mut agreement = [Part::Missing; 5];
    for (index, slot) in agreement.iter_mut().enumerate() {
        let (x, y) = (parts_a[index], parts_b[index]);
        if x.is_empty() || y.is_empty() {
            continue;
        }
        let close = match index {
            2 | 3 => jaro_winkler_from(x, y, 0.9) >= 0.9,
            4 => Comparator::Postcode.level(x, y) >= 2 || within_one_edit(x, y),
            _ => within_one_edit(x, y),
        };
        *slot = if x == y {
            Part::Exact
        } else if close {
            Part::Close
        } else {
            Part::Differ
        };
    }
    // A building name entered as the street and the street as the building name.
    if agreement[2] == Part::Differ {
        let close = |p: &str, q: &str| {
            !p.is_empty() && !q.is_empty() && jaro_winkler_from(p, q, 0.9) >= 0.9
        };
        if close(parts_a[0], parts_b[2]) && close(parts_a[2], parts_b[0]) {
            agreement[0] = Part::Close;
            agreement[2] = Part::Close;
        }
    }
    let compared = agreement.iter().filter(|p| **p != Part::Missing).count();
    let agrees = |part: Part| part >= Part::Close;
    let agreeing = agreement.iter().filter(|p| agrees(**p)).count();
    let [_, paon, street, town, postcode] = agreement;
    if compared >= 2
        && agreement
            .iter()
            .all(|p| matches!(p, Part::Missing | Part::Exact))
    {
        6
    } else if compared >= 2 && !agreement.contains(&Part::Differ) {
        5
    } else if agrees(paon) && agrees(street) && agreeing >= 3 && compared - agreeing == 1 {
        4
    } else if agrees(paon) && agrees(street) {
        3
    } else if agrees(street) {
        2
    } else if agrees(postcode) || agrees(town) {
        1
    } else {
        0
    }
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
            Comparator::Postcode => &["else", "district", "sector", "exact"],
            Comparator::MiddleName => &["else", "initial", "similar", "exact"],
            Comparator::Address => &[
                "else", "area", "street", "building", "most", "close", "exact",
            ],
            Comparator::SwappedNames => &["else", "crossed", "swapped"],
        }
    }

    /// The level of agreement of two present values.
    pub fn level<'a>(&self, a: &'a str, b: &'a str) -> u8 {
        if *self == Comparator::SwappedNames {
            return swapped_names(a, b);
        }
        if a == b {
            return (self.levels().len() - 1) as u8;
        }
        match *self {
            Comparator::Exact => 0,
            Comparator::Text { high, low } => {
                let similarity = jaro_winkler_from(a, b, low);
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
                let similarity = jaro_winkler_from(a, b, low);
                if similarity >= high {
                    2
                } else if similarity >= low {
                    1
                } else {
                    0
                }
            }
            Comparator::Code => u8::from(within_one_edit(a, b)),
            Comparator::Postcode if !a.contains(' ') || !b.contains(' ') => {
                u8::from(within_one_edit(a, b))
            }
            Comparator::Postcode => {
                let split = |code: &'a str| code.split_once(' ').unwrap_or((code, ""));
                let ((outward_a, inward_a), (outward_b, inward_b)) = (split(a), split(b));
                if outward_a != outward_b {
                    0
                } else if inward_a.bytes().next().is_some()
                    && inward_a.bytes().next() == inward_b.bytes().next()
                {
                    2
                } else {
                    1
                }
            }
            Comparator::MiddleName => {
                let initial =
                    |short: &str, long: &str| short.chars().count() == 1 && long.starts_with(short);
                if jaro_winkler_from(a, b, 0.92) >= 0.92 {
                    2
                } else {
                    u8::from(initial(a, b) || initial(b, a))
                }
            }
            Comparator::Address => address_level(a, b),
            Comparator::SwappedNames => unreachable!("handled above"),
            Comparator::Date => {
                if is_day_month_swap(a, b) {
                    2
                } else {
                    u8::from(a.len() == b.len() && within_one_edit(a, b))
                }
            }
        }
    }
}

/// Jaro-Winkler similarity, made symmetric by always comparing in one order. Short ASCII
/// strings (the common case) take an allocation-free path with the same result as strsim.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let similarity =
        if first.is_ascii() && second.is_ascii() && first.len() <= 64 && second.len() <= 64 {
            ascii_jaro_winkler(first.as_bytes(), second.as_bytes())
        } else {
            strsim::jaro_winkler(first, second)
        };
    similarity.clamp(0.0, 1.0)
}

/// [`jaro_winkler`] when it can reach `floor`, else 0: most pairs (random ones, when training)
/// are told apart by a bound that costs a pass over each value, not the full similarity.
fn jaro_winkler_from(a: &str, b: &str, floor: f64) -> f64 {
    if jaro_winkler_bound(a.as_bytes(), b.as_bytes()) + 1e-9 < floor {
        0.0
    } else {
        jaro_winkler(a, b)
    }
}

/// An upper bound of Jaro-Winkler, exact for ASCII (1 for anything else). A byte of one value
/// that never occurs in the other matches nothing, so the matches are at most each length
/// less its bytes absent from the other; with no transpositions and the true common prefix,
/// that bounds the similarity.
fn jaro_winkler_bound(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() || b.is_empty() || !a.is_ascii() || !b.is_ascii() {
        return 1.0;
    }
    let set = |text: &[u8]| {
        text.iter()
            .fold(0u128, |set, &byte| set | 1 << (byte & 127))
    };
    let (set_a, set_b) = (set(a), set(b));
    let absent = |text: &[u8], other: u128| {
        text.iter()
            .filter(|&&byte| other & (1 << (byte & 127)) == 0)
            .count()
    };
    let only_a = if set_a & !set_b == 0 {
        0
    } else {
        absent(a, set_b)
    };
    let only_b = if set_b & !set_a == 0 {
        0
    } else {
        absent(b, set_a)
    };
    let matches = (a.len() - only_a).min(b.len() - only_b);
    if matches == 0 {
        return 0.0;
    }
    let m = matches as f64;
    let jaro = (m / a.len() as f64 + m / b.len() as f64 + 1.0) / 3.0;
    if jaro > 0.7 {
        let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count();
        jaro + 0.1 * prefix as f64 * (1.0 - jaro)
    } else {
        jaro
    }
}

/// strsim's Jaro-Winkler over bytes (both lengths <= 64), bit-parallel: for each byte of `a`
/// the unmatched positions of that byte in `b` inside the search window are one mask, and the
/// lowest is the match strsim's scan would find.
fn ascii_jaro_winkler(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let search_range = (a.len().max(b.len()) / 2).saturating_sub(1);
    // Positions of each byte in `b`; only the bytes of `b` are set, and they are found again
    // through `b` itself, so the table needs no clearing beyond them.
    let mut positions = [0u64; 128];
    for (j, &byte) in b.iter().enumerate() {
        positions[usize::from(byte & 127)] |= 1 << j;
    }
    let (mut a_flags, mut b_flags) = (0u64, 0u64);
    let mut matches = 0usize;
    for (i, &a_byte) in a.iter().enumerate() {
        let low = i.saturating_sub(search_range);
        let high = b.len().min(i + search_range + 1);
        if low >= high {
            continue;
        }
        let window = (u64::MAX >> (64 - (high - low))) << low;
        let free = positions[usize::from(a_byte & 127)] & window & !b_flags;
        if free != 0 {
            a_flags |= 1 << i;
            b_flags |= free & free.wrapping_neg();
            matches += 1;
        }
    }
    if matches == 0 {
        return 0.0;
    }
    // Matched bytes of `a` and of `b`, in order, compared pairwise.
    let mut transpositions = 0usize;
    let (mut rest_a, mut rest_b) = (a_flags, b_flags);
    while rest_a != 0 {
        let (i, j) = (rest_a.trailing_zeros(), rest_b.trailing_zeros());
        if a[i as usize] != b[j as usize] {
            transpositions += 1;
        }
        rest_a &= rest_a - 1;
        rest_b &= rest_b - 1;
    }
    let transpositions = transpositions / 2;
    let m = matches as f64;
    let jaro =
        (m / a.len() as f64 + m / b.len() as f64 + (matches - transpositions) as f64 / m) / 3.0;
    if jaro > 0.7 {
        let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count();
        jaro + 0.1 * prefix as f64 * (1.0 - jaro)
    } else {
        jaro
    }
}

/// Whether two given names stand for the same formal name (Bob = Robert). Values that are
/// neither a nickname nor folded differently (the common case) cost no allocation.
fn nickname_equivalent(a: &str, b: &str) -> bool {
    let plain = |name: &str| name.bytes().all(|byte| byte.is_ascii_lowercase());
    if plain(a) && plain(b) && !normalise::is_nickname(a) && !normalise::is_nickname(b) {
        return false;
    }
    // Any formal name a nickname may stand for: Sandy agrees with Alexander and with
    // Alexandra at this level, and the weights (with the other fields) decide.
    fn forms(name: &str) -> Vec<&str> {
        let mut forms = vec![name];
        forms.extend(normalise::nickname_expansions(name));
        forms
    }
    let forms_b = forms(b);
    forms(a).iter().any(|form| forms_b.contains(form))
}

/// Damerau-Levenshtein distance <= 1 (one insertion, deletion, substitution or adjacent
/// transposition) over bytes, in one pass without allocating. Meant for codes and numbers.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if prefix == short.len() {
        return true; // equal, or one byte appended
    }
    if short.len() == long.len() {
        let rest = prefix + 1;
        // substitution at `prefix`, or transposition of `prefix` and `prefix + 1`
        short[rest..] == long[rest..]
            || (rest < short.len()
                && short[prefix] == long[rest]
                && short[rest] == long[prefix]
                && short[rest + 1..] == long[rest + 1..])
    } else {
        short[prefix..] == long[prefix + 1..]
    }
}

/// `YYYYMMDD` dates (any separators removed) equal but for day and month swapped.
fn is_day_month_swap(a: &str, b: &str) -> bool {
    fn digits(text: &str) -> Option<[u8; 8]> {
        let mut out = [0u8; 8];
        let mut n = 0;
        for byte in text.bytes().filter(u8::is_ascii_digit) {
            *out.get_mut(n)? = byte;
            n += 1;
        }
        (n == 8).then_some(out)
    }
    let (Some(a), Some(b)) = (digits(a), digits(b)) else {
        return false;
    };
    a[..4] == b[..4] && a[4..6] == b[6..8] && a[6..8] == b[4..6]
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
        assert_eq!(Comparator::Postcode.level("LS6 1AB", "LS6 1AB"), 3);
        assert_eq!(Comparator::Postcode.level("LS6 1AB", "LS6 1ZZ"), 2);
        assert_eq!(Comparator::Postcode.level("LS6 1AB", "LS6 2AB"), 1);
        assert_eq!(Comparator::Postcode.level("LS6 1AB", "LS16 1AB"), 0);
        assert_eq!(Comparator::Postcode.level("2119", "2191"), 1);
        assert_eq!(Comparator::MiddleName.level("j", "james"), 1);
        assert_eq!(Comparator::MiddleName.level("james", "jamess"), 2);
        let address = |parts: [&str; 5]| {
            join_address(&parts.map(|part| (!part.is_empty()).then(|| part.to_string())))
        };
        let home = address(["", "14B", "HIGH STREET", "LEEDS", "LS6 1AB"]);
        let level = |other: [&str; 5]| Comparator::Address.level(&home, &address(other));
        assert_eq!(level(["", "14B", "HIGH STREET", "", "LS6 1AB"]), 6);
        assert_eq!(level(["", "14B", "HIGH STRET", "LEEDS", "LS6 1AB"]), 5);
        assert_eq!(level(["", "14B", "HIGH STREET", "LEEDS", "LS9 9ZZ"]), 4);
        assert_eq!(level(["2", "14B", "HIGH STREET", "YORK", "LS9 9ZZ"]), 3);
        assert_eq!(level(["", "15", "HIGH STREET", "LEEDS", "LS6 1AB"]), 2);
        assert_eq!(level(["", "3", "LOW ROAD", "LEEDS", ""]), 1);
        assert_eq!(level(["", "3", "LOW ROAD", "YORK", "YO1 1AA"]), 0);
        let court = address(["ASH COURT", "14B", "HIGH STREET", "LEEDS", "LS6 1AB"]);
        let swapped_parts = address(["HIGH STREET", "14B", "ASH COURT", "LEEDS", "LS6 1AB"]);
        assert_eq!(Comparator::Address.level(&court, &swapped_parts), 5);
        let swapped = Comparator::SwappedNames;
        assert_eq!(
            swapped.level("lucy\u{1f}fitzpatrick", "fitzpatrick\u{1f}lucy"),
            2
        );
        assert_eq!(swapped.level("gillian\u{1f}lodge", "lodge\u{1f}adele"), 1);
        assert_eq!(
            swapped.level("lucy\u{1f}fitzpatrick", "lucy\u{1f}fitzpatrick"),
            0
        );
        assert_eq!(swapped.level("ann\u{1f}ann", "ann\u{1f}ann"), 0);
    }

    proptest! {
        #[test]
        fn ascii_fast_path_equals_strsim(a in "[a-z ]{0,20}", b in "[a-z ]{0,20}") {
            prop_assert!((ascii_jaro_winkler(a.as_bytes(), b.as_bytes()) - strsim::jaro_winkler(&a, &b)).abs() < 1e-12);
        }

        #[test]
        fn ascii_fast_path_equals_strsim_up_to_64_bytes(a in "[a-d -~]{0,64}", b in "[a-d ]{0,64}") {
            prop_assert!((ascii_jaro_winkler(a.as_bytes(), b.as_bytes()) - strsim::jaro_winkler(&a, &b)).abs() < 1e-12);
        }

        #[test]
        fn the_bound_is_never_below_the_similarity(a in "[a-f ]{0,12}", b in "[a-f ]{0,12}", c in "\\PC{0,8}") {
            prop_assert!(jaro_winkler_bound(a.as_bytes(), b.as_bytes()) + 1e-9 >= jaro_winkler(&a, &b));
            prop_assert!(jaro_winkler_bound(a.as_bytes(), c.as_bytes()) + 1e-9 >= jaro_winkler(&a, &c));
            for floor in [0.7, 0.8, 0.9, 0.92] {
                let similarity = jaro_winkler(&a, &b);
                prop_assert_eq!(jaro_winkler_from(&a, &b, floor) >= floor, similarity >= floor);
            }
        }

        #[test]
        fn one_edit_agrees_with_damerau_levenshtein(a in "[a-c]{0,6}", b in "[a-c]{0,6}") {
            prop_assert_eq!(within_one_edit(&a, &b), strsim::damerau_levenshtein(&a, &b) <= 1);
        }

        #[test]
        fn similarity_is_symmetric_and_within_unit_interval(a in "\\PC{0,12}", b in "\\PC{0,12}") {
            let forward = jaro_winkler(&a, &b);
            prop_assert!((0.0..=1.0).contains(&forward));
            prop_assert_eq!(forward, jaro_winkler(&b, &a));
            for comparator in [TEXT, GIVEN, Comparator::Code, Comparator::Date, Comparator::Exact, Comparator::Postcode, Comparator::MiddleName, Comparator::Address, Comparator::SwappedNames] {
                prop_assert_eq!(comparator.level(&a, &b), comparator.level(&b, &a));
                prop_assert!((comparator.level(&a, &b) as usize) < comparator.levels().len());
            }
        }
    }
}
