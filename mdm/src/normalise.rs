//! Normalisers for people (DOMAIN.md §2-3): names with titles and nicknames, dates of birth,
//! NINO, postcode, phone and email. Pure functions; invalid values become `None` or a
//! classified value, never a panic.

use chrono::{Datelike, NaiveDate};

/// Titles recognised in name fields; they are weak evidence and kept apart.
const TITLES: &[&str] = &[
    "MR", "MRS", "MS", "MISS", "MX", "DR", "REV", "PROF", "SIR", "LADY", "MSTR", "MASTER",
];

/// Nickname -> the formal given names it can stand for (DOMAIN.md §3).
const NICKNAMES: &[(&str, &[&str])] = &[
    ("bob", &["robert"]),
    ("rob", &["robert"]),
    ("bobby", &["robert"]),
    ("robbie", &["robert"]),
    ("bill", &["william"]),
    ("will", &["william"]),
    ("billy", &["william"]),
    ("liam", &["william"]),
    ("peggy", &["margaret"]),
    ("maggie", &["margaret"]),
    ("meg", &["margaret"]),
    ("jack", &["john"]),
    ("johnny", &["john"]),
    ("harry", &["henry"]),
    ("hal", &["henry"]),
    ("sandy", &["alexander", "alexandra"]),
    ("alex", &["alexander", "alexandra"]),
    ("liz", &["elizabeth"]),
    ("lizzie", &["elizabeth"]),
    ("beth", &["elizabeth"]),
    ("betty", &["elizabeth"]),
    ("kate", &["catherine", "katherine"]),
    ("cathy", &["catherine"]),
    ("sue", &["susan"]),
    ("pat", &["patricia", "patrick"]),
    ("trish", &["patricia"]),
    ("jenny", &["jennifer"]),
    ("debbie", &["deborah"]),
    ("becky", &["rebecca"]),
    ("jo", &["joanne", "josephine"]),
    ("mick", &["michael"]),
    ("mike", &["michael"]),
    ("tony", &["anthony"]),
    ("dick", &["richard"]),
    ("rick", &["richard"]),
    ("jim", &["james"]),
    ("jimmy", &["james"]),
    ("ted", &["edward"]),
    ("eddie", &["edward"]),
    ("sam", &["samuel", "samantha"]),
    ("dan", &["daniel"]),
    ("danny", &["daniel"]),
    ("pete", &["peter"]),
    ("steve", &["stephen", "steven"]),
];

/// A name split into its parts, lower-cased, with the title apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Name {
    pub title: Option<String>,
    pub given: Option<String>,
    pub middle: Option<String>,
    pub family: Option<String>,
}

/// Folds case, diacritics and punctuation: `O'Brien` -> `obrien`, `Smith-Jones` -> `smithjones`.
pub fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
            'ç' | 'ć' | 'č' => 'c',
            'è' | 'é' | 'ê' | 'ë' | 'ę' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ł' => 'l',
            'ñ' | 'ń' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => 'o',
            'ś' | 'š' => 's',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'ý' | 'ÿ' => 'y',
            'ź' | 'ż' | 'ž' => 'z',
            other => other,
        })
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

fn is_title(token: &str) -> bool {
    let bare: String = token
        .chars()
        .filter(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_uppercase();
    TITLES.contains(&bare.as_str())
}

fn clean(token: Option<&str>) -> Option<String> {
    token
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(str::to_string)
}

/// Splits a given-name field that may carry a title (`Mrs Ann`) into title and name.
fn split_title(field: &str) -> (Option<String>, String) {
    let mut tokens = field.split_whitespace();
    match tokens.next() {
        Some(first) if is_title(first) => {
            let rest: Vec<&str> = tokens.collect();
            (
                Some(first.trim_end_matches('.').to_string()),
                rest.join(" "),
            )
        }
        _ => (None, field.trim().to_string()),
    }
}

/// Normalises the name of a canonical person (its split fields and/or full name).
pub fn person_name(person: &pipeline::entity::Person) -> Name {
    name(
        person.title.as_deref(),
        person.given_name.as_deref(),
        person.middle_name.as_deref(),
        person.family_name.as_deref(),
        person.full_name.as_deref(),
    )
}

/// Normalises a person's name from separate fields and/or a full-name field.
/// A full name with a comma is `FAMILY, Given Middle`; without, `Title Given Middle Family`.
pub fn name(
    title: Option<&str>,
    given: Option<&str>,
    middle: Option<&str>,
    family: Option<&str>,
    full: Option<&str>,
) -> Name {
    let mut name = Name {
        title: clean(title),
        ..Name::default()
    };
    if let Some(given) = clean(given) {
        let (found_title, rest) = split_title(&given);
        name.title = name.title.or(found_title);
        name.given = clean(Some(&rest));
    }
    name.middle = clean(middle);
    name.family = clean(family);
    if let (None, None, Some(full)) = (&name.given, &name.family, clean(full)) {
        let (family_part, given_part) = match full.split_once(',') {
            Some((family, given)) => (Some(family.trim().to_string()), given.trim().to_string()),
            None => (None, full.clone()),
        };
        let mut tokens: Vec<&str> = given_part.split_whitespace().collect();
        if tokens.first().is_some_and(|token| is_title(token)) {
            name.title = name
                .title
                .or(Some(tokens.remove(0).trim_end_matches('.').to_string()));
        }
        let family = match family_part {
            Some(family) => Some(family),
            None if tokens.len() >= 2 => tokens.pop().map(str::to_string),
            None => None,
        };
        name.family = family;
        if !tokens.is_empty() {
            name.given = Some(tokens.remove(0).to_string());
        }
        if !tokens.is_empty() {
            name.middle = Some(tokens.join(" "));
        }
    }
    name.title = name.title.map(|title| {
        let mut chars = title.to_lowercase().chars().collect::<Vec<_>>();
        if let Some(first) = chars.first_mut() {
            *first = first.to_ascii_uppercase();
        }
        chars.into_iter().collect()
    });
    name
}

/// Whether a folded name is in the nickname table (hashed: the matcher asks for every pair).
pub fn is_nickname(folded: &str) -> bool {
    static SET: std::sync::LazyLock<rustc_hash::FxHashSet<&'static str>> =
        std::sync::LazyLock::new(|| NICKNAMES.iter().map(|(nickname, _)| *nickname).collect());
    SET.contains(folded)
}

/// Every formal name a folded nickname may stand for (empty for a name that is none).
pub fn nickname_expansions(folded: &str) -> &'static [&'static str] {
    NICKNAMES
        .iter()
        .find(|(nickname, _)| *nickname == folded)
        .map_or(&[], |(_, formal)| formal)
}

/// The folded given name and, where a nickname stands for exactly one formal name, that too.
/// An ambiguous nickname (Sandy: Alexander or Alexandra) adds nothing: it is not evidence.
pub fn given_name_forms(given: &str) -> Vec<String> {
    let folded = fold(given);
    if folded.is_empty() {
        return Vec::new();
    }
    let mut forms = vec![folded.clone()];
    if let Some((_, formal)) = NICKNAMES.iter().find(|(nickname, _)| *nickname == folded)
        && let [only] = formal
    {
        forms.push((*only).to_string());
    }
    forms
}

/// A date of birth as evidence: `None` for missing or default dates (1900-01-01 and the like).
pub fn date_of_birth(date: Option<NaiveDate>) -> Option<NaiveDate> {
    let date = date?;
    let is_default = date.year() <= 1901 && date.month() == 1 && date.day() == 1;
    (!is_default).then_some(date)
}

/// A date of birth key that is the same when day and month are swapped: `1978-03|11`.
pub fn date_of_birth_key(date: NaiveDate) -> String {
    let (low, high) = if date.day() <= date.month() {
        (date.day(), date.month())
    } else {
        (date.month(), date.day())
    };
    format!("{}-{low:02}-{high:02}", date.year())
}

/// A National Insurance number, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nino {
    Valid(String),
    /// A placeholder typed to get past a mandatory field: missing, never evidence.
    Placeholder(String),
    Invalid(String),
}

impl Nino {
    pub fn valid(&self) -> Option<&str> {
        match self {
            Nino::Valid(nino) => Some(nino),
            _ => None,
        }
    }
}

/// Classifies a NINO by HMRC's allocation rules (DOMAIN.md §2).
pub fn nino(raw: &str) -> Option<Nino> {
    let text: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    if text.is_empty() {
        return None;
    }
    // Temporary numbers (TN + date of birth + M/F) and the well-known placeholders.
    if text.starts_with("TN") || ["QQ123456C", "AB123456C", "PP999999P"].contains(&text.as_str()) {
        return Some(Nino::Placeholder(text));
    }
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 9
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&bytes[8]);
    if !shaped {
        return Some(Nino::Invalid(text));
    }
    let prefix = &text[..2];
    let digits = &text[2..8];
    let never = |c: u8| b"DFIQUV".contains(&c);
    let unallocated = ["BG", "GB", "NK", "KN", "TN", "NT", "ZZ"].contains(&prefix);
    let repeated = digits.bytes().all(|digit| digit == digits.as_bytes()[0]);
    if repeated || digits == "123456" {
        return Some(Nino::Placeholder(text));
    }
    if never(bytes[0]) || never(bytes[1]) || bytes[1] == b'O' || unallocated {
        return Some(Nino::Invalid(text));
    }
    Some(Nino::Valid(text))
}

/// Formats a UK postcode (`sw1a2aa` -> `SW1A 2AA`); `None` unless it is a valid postcode.
pub fn postcode(raw: &str) -> Option<String> {
    let compact: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    if compact == "GIR0AA" {
        return Some("GIR 0AA".into());
    }
    if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
        return None;
    }
    let (outward, inward) = compact.split_at(compact.len() - 3);
    let inward_ok = {
        let b = inward.as_bytes();
        b[0].is_ascii_digit()
            && b[1..]
                .iter()
                .all(|c| c.is_ascii_uppercase() && !b"CIKMOV".contains(c))
    };
    let outward_ok = {
        let b = outward.as_bytes();
        let letters = b.iter().take_while(|c| c.is_ascii_uppercase()).count();
        let rest = &b[letters..];
        (1..=2).contains(&letters)
            && !rest.is_empty()
            && (rest[0].is_ascii_digit() || rest[0] == b'R')
            && rest.len() <= 2
            && rest[1..].iter().all(u8::is_ascii_alphanumeric)
    };
    (inward_ok && outward_ok).then(|| format!("{outward} {inward}"))
}

/// A UK phone number as digits with a leading 0 (`+44 7700 900123` -> `07700900123`).
pub fn phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let digits = match digits.strip_prefix("44") {
        Some(rest) if raw.trim_start().starts_with('+') || digits.len() == 12 => format!("0{rest}"),
        _ => digits,
    };
    (digits.len() >= 10 && digits.len() <= 11).then_some(digits)
}

pub fn email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    (!local.is_empty() && domain.contains('.')).then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_split_titles_and_full_names() {
        let check = |full: Option<&str>,
                     given: Option<&str>,
                     family: Option<&str>,
                     expected: (&str, &str, &str, &str)| {
            let name = name(None, given, None, family, full);
            let got = (
                name.title.unwrap_or_default(),
                name.given.unwrap_or_default(),
                name.middle.unwrap_or_default(),
                name.family.unwrap_or_default(),
            );
            assert_eq!(
                (
                    got.0.as_str(),
                    got.1.as_str(),
                    got.2.as_str(),
                    got.3.as_str()
                ),
                expected,
                "{full:?} {given:?} {family:?}"
            );
        };
        check(
            None,
            Some("Mrs Ann"),
            Some("Smith"),
            ("Mrs", "Ann", "", "Smith"),
        );
        check(
            Some("Mrs Margaret Ann O'Brien"),
            None,
            None,
            ("Mrs", "Margaret", "Ann", "O'Brien"),
        );
        check(
            Some("O'BRIEN, Margaret"),
            None,
            None,
            ("", "Margaret", "", "O'BRIEN"),
        );
        check(
            Some("Dr. Kwame Mensah"),
            None,
            None,
            ("Dr", "Kwame", "", "Mensah"),
        );
        check(Some("Cher"), None, None, ("", "Cher", "", ""));
    }

    #[test]
    fn folding_removes_case_punctuation_and_diacritics() {
        assert_eq!(fold("O'Brien"), "obrien");
        assert_eq!(fold("Smith-Jones"), "smithjones");
        assert_eq!(fold("Zoë Łukasz"), "zoelukasz");
    }

    #[test]
    fn nicknames_map_only_when_unambiguous() {
        assert_eq!(given_name_forms("Bob"), vec!["bob", "robert"]);
        assert_eq!(given_name_forms("Sandy"), vec!["sandy"]);
        assert_eq!(given_name_forms("Robert"), vec!["robert"]);
    }

    #[test]
    fn default_dates_are_not_evidence_and_swaps_share_a_key() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(date_of_birth(date(1900, 1, 1)), None);
        assert_eq!(date_of_birth(date(1978, 1, 1)), date(1978, 1, 1));
        assert_eq!(
            date_of_birth_key(date(1978, 3, 11).unwrap()),
            date_of_birth_key(date(1978, 11, 3).unwrap())
        );
        assert_ne!(
            date_of_birth_key(date(1978, 3, 11).unwrap()),
            date_of_birth_key(date(1987, 3, 11).unwrap())
        );
    }

    #[test]
    fn ninos_are_classified() {
        assert_eq!(
            nino("ab 12 34 56 c"),
            Some(Nino::Placeholder("AB123456C".into()))
        );
        assert_eq!(nino("JK123789A"), Some(Nino::Valid("JK123789A".into())));
        assert_eq!(
            nino("QQ123456C"),
            Some(Nino::Placeholder("QQ123456C".into()))
        );
        assert_eq!(
            nino("TN010180F"),
            Some(Nino::Placeholder("TN010180F".into()))
        );
        assert_eq!(
            nino("PP999999P"),
            Some(Nino::Placeholder("PP999999P".into()))
        );
        assert_eq!(
            nino("JK000000A"),
            Some(Nino::Placeholder("JK000000A".into()))
        );
        assert_eq!(nino("DA123789A"), Some(Nino::Invalid("DA123789A".into())));
        assert_eq!(nino("AO123789A"), Some(Nino::Invalid("AO123789A".into())));
        assert_eq!(nino("GB123789A"), Some(Nino::Invalid("GB123789A".into())));
        assert_eq!(nino("JK123789E"), Some(Nino::Invalid("JK123789E".into())));
        assert_eq!(nino("  "), None);
    }

    #[test]
    fn postcodes_are_formatted_and_validated() {
        assert_eq!(postcode("sw1a2aa").as_deref(), Some("SW1A 2AA"));
        assert_eq!(postcode("LS6 1AB").as_deref(), Some("LS6 1AB"));
        assert_eq!(postcode("ls61ab").as_deref(), Some("LS6 1AB"));
        assert_eq!(postcode("gir 0aa").as_deref(), Some("GIR 0AA"));
        assert_eq!(
            postcode("LS6 1CB"),
            None,
            "C is not used in the inward code"
        );
        assert_eq!(postcode("12345"), None);
        assert_eq!(postcode("LS6"), None);
    }

    #[test]
    fn phones_and_emails() {
        assert_eq!(phone("+44 7700 900123").as_deref(), Some("07700900123"));
        assert_eq!(phone("07700 900123").as_deref(), Some("07700900123"));
        assert_eq!(phone("12"), None);
        assert_eq!(
            email(" Ann.Smith@Example.com ").as_deref(),
            Some("ann.smith@example.com")
        );
        assert_eq!(email("nobody"), None);
    }

    proptest! {
        #[test]
        fn normalisers_never_panic(text in "\\PC{0,40}") {
            let _ = name(Some(&text), Some(&text), None, Some(&text), Some(&text));
            let _ = nino(&text);
            let _ = postcode(&text);
            let _ = phone(&text);
            let _ = email(&text);
            let _ = given_name_forms(&text);
        }

        #[test]
        fn postcode_is_idempotent(text in "[A-Za-z]{1,2}[0-9][0-9A-Za-z]? ?[0-9][A-Za-z]{2}") {
            if let Some(formatted) = postcode(&text) {
                prop_assert_eq!(postcode(&formatted), Some(formatted.clone()));
            }
        }
    }
}
