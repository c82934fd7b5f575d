//! UK address normalisation (BS7666 shape): SAON (flat), PAON (building number or name),
//! street, town, postcode. A suffix letter is part of the building (`14B`), a flat letter is
//! a SAON (`Flat B, 14`): the two are never collapsed.

use crate::normalise;

/// An address in canonical, upper-case parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub saon: Option<String>,
    pub paon: Option<String>,
    pub street: Option<String>,
    /// A district within the town (`Headingley`), where the address names one.
    pub locality: Option<String>,
    pub town: Option<String>,
    pub postcode: Option<String>,
}

const SAON_WORDS: &[&str] = &["FLAT", "APARTMENT", "APT", "UNIT", "ROOM", "MAISONETTE"];
const STREET_TYPES: &[(&str, &str)] = &[
    ("ST", "STREET"),
    ("RD", "ROAD"),
    ("AVE", "AVENUE"),
    ("AV", "AVENUE"),
    ("CL", "CLOSE"),
    ("CRES", "CRESCENT"),
    ("CRS", "CRESCENT"),
    ("LN", "LANE"),
    ("DR", "DRIVE"),
    ("TERR", "TERRACE"),
    ("TER", "TERRACE"),
    ("GDNS", "GARDENS"),
    ("PL", "PLACE"),
    ("SQ", "SQUARE"),
    ("CT", "COURT"),
    ("GRN", "GREEN"),
    ("GR", "GROVE"),
    ("PK", "PARK"),
    ("WY", "WAY"),
];

fn words(text: &str) -> Vec<String> {
    text.to_uppercase()
        .replace(['.', '\''], "")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

/// Canonical SAON: `Flat 2` -> `2`, `GFF` / `Ground Floor Flat` -> `GROUND FLOOR`.
pub fn saon(raw: &str) -> Option<String> {
    let mut tokens = words(raw);
    if tokens
        .first()
        .is_some_and(|token| SAON_WORDS.contains(&token.as_str()))
    {
        tokens.remove(0);
    }
    if tokens.last().is_some_and(|token| token == "FLAT") {
        tokens.pop();
    }
    let joined = tokens.join(" ");
    let canonical = match joined.as_str() {
        "" => return None,
        "GFF" | "GF" => "GROUND FLOOR".to_string(),
        "FFF" | "FF" => "FIRST FLOOR".to_string(),
        "BSMT" => "BASEMENT".to_string(),
        _ => joined,
    };
    Some(canonical)
}

/// Canonical PAON: upper case without spaces inside a number (`14 b` -> `14B`).
pub fn paon(raw: &str) -> Option<String> {
    let tokens = words(raw);
    if tokens.is_empty() {
        return None;
    }
    let joined = tokens.join(" ");
    let compact: String = joined.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.chars().next().is_some_and(|c| c.is_ascii_digit()) && compact.len() <= 6 {
        Some(compact)
    } else {
        Some(joined)
    }
}

/// Canonical street: abbreviations of the street type expanded; `St` before a name is Saint.
pub fn street(raw: &str) -> Option<String> {
    let mut tokens = words(raw);
    if tokens.is_empty() {
        return None;
    }
    let last = tokens.len() - 1;
    for (index, token) in tokens.iter_mut().enumerate() {
        if index == 0 && last > 0 && token == "ST" {
            *token = "SAINT".into();
        } else if index == last
            && let Some((_, full)) = STREET_TYPES.iter().find(|(short, _)| short == token)
        {
            *token = (*full).to_string();
        }
    }
    Some(tokens.join(" "))
}

fn is_building_number(token: &str) -> bool {
    let digits = token.chars().take_while(char::is_ascii_digit).count();
    digits > 0
        && token.len() - digits <= 1
        && token.chars().skip(digits).all(|c| c.is_ascii_alphabetic())
}

/// Parses a one-line address (`Flat 2, 14 High St`, `2/14 High Street`, `14b High Street`,
/// `14 High Street Flat 2`, `14 High Street (First Floor Flat)`); `postcode` may be given apart.
pub fn parse(line: &str, postcode: Option<&str>) -> Address {
    let mut address = Address {
        postcode: postcode.and_then(normalise::postcode),
        ..Address::default()
    };
    let mut line = line.to_string();
    // A parenthesised part is a SAON: `(First Floor Flat)`.
    if let (Some(open), Some(close)) = (line.find('('), line.find(')'))
        && open < close
    {
        address.saon = saon(&line[open + 1..close]);
        line = format!("{} {}", &line[..open], &line[close + 1..]);
    }
    // Comma parts up to the one holding the building number (`14 High St`, `2/14 ...`) are
    // the address proper; later parts are locality, town or postcode.
    let parts: Vec<Vec<String>> = line
        .split(',')
        .map(words)
        .filter(|part| !part.is_empty())
        .collect();
    let holds_building = |part: &Vec<String>| {
        part.iter().enumerate().any(|(index, token)| {
            let after_saon_word = index > 0 && SAON_WORDS.contains(&part[index - 1].as_str());
            token.contains('/') || (is_building_number(token) && !after_saon_word)
        })
    };
    let street_part = parts
        .iter()
        .position(holds_building)
        .unwrap_or(parts.len().saturating_sub(1));
    let mut tokens: Vec<String> = parts
        .iter()
        .take(street_part + 1)
        .flatten()
        .cloned()
        .collect();
    let mut town_parts: Vec<String> = parts
        .iter()
        .skip(street_part + 1)
        .map(|part| part.join(" "))
        .collect();
    // A trailing postcode inside the line.
    if address.postcode.is_none() && tokens.len() >= 2 {
        let tail = format!("{}{}", tokens[tokens.len() - 2], tokens[tokens.len() - 1]);
        if let Some(found) = normalise::postcode(&tail) {
            address.postcode = Some(found);
            tokens.truncate(tokens.len() - 2);
        }
    }
    if let Some(pos) = town_parts
        .iter()
        .position(|part| normalise::postcode(part).is_some())
    {
        if address.postcode.is_none() {
            address.postcode = normalise::postcode(&town_parts[pos]);
        }
        town_parts.remove(pos);
    }
    // A postcode at the end of the town part: `Leeds LS6 1AB`.
    if let Some(last) = town_parts.last_mut() {
        let words: Vec<&str> = last.split(' ').collect();
        if words.len() >= 3
            && let Some(found) = normalise::postcode(&words[words.len() - 2..].concat())
        {
            if address.postcode.is_none() {
                address.postcode = Some(found);
            }
            *last = words[..words.len() - 2].join(" ");
        }
    }
    address.town = town_parts.last().cloned();
    if town_parts.len() >= 2 {
        address.locality = town_parts.get(town_parts.len() - 2).cloned();
    }
    // Leading SAON word: FLAT 2 ...
    if tokens.len() >= 2 && SAON_WORDS.contains(&tokens[0].as_str()) {
        address.saon = saon(&tokens[1]);
        tokens.drain(..2);
    }
    // Trailing SAON: ... FLAT 2
    if tokens.len() >= 3 && SAON_WORDS.contains(&tokens[tokens.len() - 2].as_str()) {
        address.saon = saon(&tokens[tokens.len() - 1]);
        tokens.truncate(tokens.len() - 2);
    }
    // N/M: flat N of building M.
    if let Some(first) = tokens.first().cloned()
        && let Some((flat, building)) = first.split_once('/')
        && !flat.is_empty()
        && !building.is_empty()
    {
        address.saon = saon(flat);
        tokens[0] = building.to_string();
    }
    if let Some(first) = tokens.first()
        && is_building_number(first)
    {
        address.paon = paon(first);
        tokens.remove(0);
    }
    address.street = street(&tokens.join(" "));
    address
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expected: (Option<&str>, Option<&str>, Option<&str>)) {
        let address = parse(line, Some("LS6 1AB"));
        assert_eq!(
            (
                address.saon.as_deref(),
                address.paon.as_deref(),
                address.street.as_deref()
            ),
            expected,
            "{line}"
        );
    }

    #[test]
    fn one_line_addresses_parse_into_saon_paon_street() {
        let flat_2 = (Some("2"), Some("14"), Some("HIGH STREET"));
        check("Flat 2, 14 High St", flat_2);
        check("2/14 High Street", flat_2);
        check("Apartment 2, 14 High Street", flat_2);
        check("14 High Street Flat 2", flat_2);
        check(
            "Flat B, 14 High Street",
            (Some("B"), Some("14"), Some("HIGH STREET")),
        );
        check("14b High Street", (None, Some("14B"), Some("HIGH STREET")));
        check(
            "14 High Street (First Floor Flat)",
            (Some("FIRST FLOOR"), Some("14"), Some("HIGH STREET")),
        );
        check(
            "3 St Mary's Rd",
            (None, Some("3"), Some("SAINT MARYS ROAD")),
        );
        check(
            "Rose Cottage, Mill Lane",
            (None, None, Some("ROSE COTTAGE MILL LANE")),
        );
    }

    #[test]
    fn trailing_town_and_postcode_are_split_off() {
        let address = parse("14 High Street, Leeds, LS6 1AB", None);
        assert_eq!(address.paon.as_deref(), Some("14"));
        assert_eq!(address.street.as_deref(), Some("HIGH STREET"));
        assert_eq!(address.town.as_deref(), Some("LEEDS"));
        assert_eq!(address.postcode.as_deref(), Some("LS6 1AB"));
        assert_eq!(address.locality, None);
        let address = parse("Flat 2, 14 High Street, Headingley, Leeds LS6 1AB", None);
        assert_eq!(address.saon.as_deref(), Some("2"));
        assert_eq!(address.locality.as_deref(), Some("HEADINGLEY"));
        assert_eq!(address.town.as_deref(), Some("LEEDS"));
    }

    #[test]
    fn suffix_letter_building_and_flat_letter_stay_apart() {
        let building = parse("14B High Street", None);
        let flat = parse("Flat B, 14 High Street", None);
        assert_ne!((building.saon, building.paon), (flat.saon, flat.paon));
    }

    #[test]
    fn components_are_canonical() {
        assert_eq!(saon("Ground Floor Flat").as_deref(), Some("GROUND FLOOR"));
        assert_eq!(saon("GFF").as_deref(), Some("GROUND FLOOR"));
        assert_eq!(saon("Flat 2").as_deref(), Some("2"));
        assert_eq!(paon("14 b").as_deref(), Some("14B"));
        assert_eq!(street("High St").as_deref(), Some("HIGH STREET"));
        assert_eq!(street("St Johns Cl").as_deref(), Some("SAINT JOHNS CLOSE"));
    }
}
