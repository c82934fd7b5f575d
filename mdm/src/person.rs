//! The person model: how a canonical person becomes [`Evidence`] and then a [`Prepared`]
//! record for the Fellegi-Sunter model, and the comparisons, blocking rules and requirements
//! for people, derived from what the sources map (or configured in `[mdm.person]`). Pure
//! functions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use pipeline::Unparsed;
use pipeline::entity::Person;
use serde::{Deserialize, Serialize};

use crate::compare::Comparator;
use crate::hub::Quality;
use crate::model::{BlockingRule, ComparisonSpec, ModelSpec, Prepared, Requirement};
use crate::normalise::{self, Nino};
use crate::{address, model};

/// The person fields a model may compare or block on, besides identifiers (`id:<name>`).
/// `address` is the whole address (SAON, PAON, street, town, postcode) as one value, compared
/// as one: its parts are correlated, and scored apart they would count one fact many times.
/// `names` is given and family name together, to see them entered the wrong way round.
pub const FIELDS: &[&str] = &[
    "given_name",
    "middle_name",
    "family_name",
    "date_of_birth",
    "nino",
    "phone",
    "email",
    "sex",
    "saon",
    "paon",
    "street",
    "town",
    "postcode",
    "address",
    "names",
    "uprn",
];

/// The model field of a named identifier (`legacy_ref` -> `id:legacy_ref`).
pub fn identifier_field(name: &str) -> String {
    format!("id:{name}")
}

/// Whether a name is a person field a model may use.
pub fn is_field(name: &str) -> bool {
    FIELDS.contains(&name)
        || name
            .strip_prefix("id:")
            .is_some_and(|identifier| !identifier.is_empty())
}

/// What the configured sources map for persons: canonical fields and identifier names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapped {
    pub fields: BTreeSet<String>,
    pub identifiers: BTreeSet<String>,
}

impl Mapped {
    fn has(&self, field: &str) -> bool {
        self.fields.contains(field)
    }
}

/// `[mdm.person]`: the person model, part by part; a part left out is derived from the
/// mapped fields ([`derive`](fn@derive)).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PersonModelConfig {
    /// The comparisons: a field and how it is compared.
    pub comparisons: Option<Vec<ComparisonConfig>>,
    /// Blocking rules: lists of fields that must agree exactly for two records to be compared.
    pub blocking: Option<Vec<Vec<String>>>,
    /// Rules whose pairs train m (by expectation-maximisation); unset: the blocking rules.
    pub training: Option<Vec<Vec<String>>>,
    /// Hard rules: when both values are present, a comparison must reach a level to link.
    pub requirements: Option<Vec<Requirement>>,
}

/// One configured comparison.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonConfig {
    pub field: String,
    /// `{ kind = "text", high = 0.92, low = 0.8 }`; unset: the field's default comparator.
    pub comparator: Option<Comparator>,
    /// Weigh exact agreement by how rare the value is; unset: the field's default.
    pub term_frequency: Option<bool>,
}

impl PersonModelConfig {
    /// Every problem with the section, as (key, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let unknown = |field: &str| {
            format!(
                "unknown person field `{field}`; known: {}, id:<identifier>",
                FIELDS.join(", ")
            )
        };
        for (index, comparison) in self.comparisons.iter().flatten().enumerate() {
            if !is_field(&comparison.field) {
                problems.push((
                    format!("mdm.person.comparisons[{index}]"),
                    unknown(&comparison.field),
                ));
            }
        }
        for (key, rules) in [("blocking", &self.blocking), ("training", &self.training)] {
            if rules.as_ref().is_some_and(Vec::is_empty) && key == "blocking" {
                problems.push((
                    "mdm.person.blocking".into(),
                    "needs at least one rule".into(),
                ));
            }
            for (index, rule) in rules.iter().flatten().enumerate() {
                if rule.is_empty() {
                    problems.push((format!("mdm.person.{key}[{index}]"), "an empty rule".into()));
                }
                for field in rule.iter().filter(|field| !is_field(field)) {
                    problems.push((format!("mdm.person.{key}[{index}]"), unknown(field)));
                }
            }
        }
        if problems.is_empty() {
            // Requirements name comparisons and their levels: check them on the spec they
            // would apply to (every field mapped, so derived comparisons are there).
            let all = Mapped {
                fields: FIELDS.iter().map(|field| field.to_string()).collect(),
                identifiers: BTreeSet::new(),
            };
            let spec = spec_for(&all, Some(self));
            for (index, requirement) in self.requirements.iter().flatten().enumerate() {
                match spec
                    .comparisons
                    .iter()
                    .find(|c| c.name == requirement.comparison)
                {
                    None => problems.push((
                        format!("mdm.person.requirements[{index}]"),
                        format!("no comparison `{}`", requirement.comparison),
                    )),
                    Some(c)
                        if !c
                            .comparator
                            .levels()
                            .contains(&requirement.min_level.as_str()) =>
                    {
                        problems.push((
                            format!("mdm.person.requirements[{index}]"),
                            format!(
                                "`{}` has no level `{}`; its levels: {}",
                                requirement.comparison,
                                requirement.min_level,
                                c.comparator.levels().join(", ")
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        problems
    }
}

const NAME: Comparator = Comparator::Text {
    high: 0.92,
    low: 0.8,
};

/// The comparator and term-frequency setting a field gets unless configured otherwise.
pub fn default_comparator(field: &str) -> (Comparator, bool) {
    match field {
        "given_name" => (
            Comparator::GivenName {
                high: 0.92,
                low: 0.8,
            },
            true,
        ),
        "family_name" => (NAME, true),
        "middle_name" => (Comparator::MiddleName, false),
        "date_of_birth" => (Comparator::Date, false),
        "email" | "sex" => (Comparator::Exact, false),
        "postcode" => (Comparator::Postcode, false),
        "address" => (Comparator::Address, true),
        "names" => (Comparator::SwappedNames, false),
        "street" | "town" => (NAME, true),
        "uprn" => (Comparator::Exact, false),
        // nino, phone, saon, paon, identifiers: codes.
        _ => (Comparator::Code, false),
    }
}

/// A comparison on a field, with its defaults where not given, and what a composite field
/// is made of.
fn comparison(
    field: &str,
    comparator: Option<Comparator>,
    term_frequency: Option<bool>,
) -> ComparisonSpec {
    let (default, default_tf) = default_comparator(field);
    let mut spec = ComparisonSpec::on(
        field,
        comparator.unwrap_or(default),
        term_frequency.unwrap_or(default_tf),
    );
    spec.depends_on = match field {
        "address" => ["saon", "paon", "street", "town", "postcode"]
            .map(str::to_string)
            .into(),
        "names" => ["given_name", "family_name"].map(str::to_string).into(),
        _ => Vec::new(),
    };
    spec
}

/// The model fields the mapped person fields give evidence for, each once: a whole name
/// gives given, middle and family names and (from its title) sex; address parts and a
/// one-line address give `address` (postcode alone gives `postcode`).
fn evidence_fields(mapped: &Mapped) -> Vec<String> {
    let any = |fields: &[&str]| fields.iter().any(|field| mapped.has(field));
    let mut fields = Vec::new();
    let mut add = |field: &str, when: bool| {
        if when {
            fields.push(field.to_string());
        }
    };
    add("given_name", any(&["given_name", "full_name"]));
    add("middle_name", any(&["middle_name", "full_name"]));
    add("family_name", any(&["family_name", "full_name"]));
    add(
        "names",
        any(&["given_name", "full_name"]) && any(&["family_name", "full_name"]),
    );
    add("date_of_birth", mapped.has("date_of_birth"));
    add("nino", mapped.has("nino"));
    add("phone", mapped.has("phone"));
    add("email", mapped.has("email"));
    let address = any(&["saon", "paon", "street", "town", "address"]);
    add("address", address);
    add("postcode", !address && mapped.has("postcode"));
    // From a gendered title: opposite-sex twins of near-identical names (Alexander and
    // Alexandra) share everything else.
    add("sex", any(&["title", "full_name", "given_name"]));
    // The UPRN of the person's address: the same home, whatever the address text says.
    add("uprn", mapped.has("uprn"));
    for identifier in &mapped.identifiers {
        fields.push(identifier_field(identifier));
    }
    fields
}

/// The person model for what the sources map: every mapped field compared with its default
/// comparator and offered to blocking; `config` replaces any part it sets.
pub fn spec_for(mapped: &Mapped, config: Option<&PersonModelConfig>) -> ModelSpec {
    let derived = derive(mapped);
    let Some(config) = config else {
        return derived;
    };
    let comparisons = match &config.comparisons {
        None => derived.comparisons,
        Some(comparisons) => comparisons
            .iter()
            .map(|c| comparison(&c.field, c.comparator, c.term_frequency))
            .collect(),
    };
    let rules = |rules: &Vec<Vec<String>>| -> Vec<BlockingRule> {
        rules
            .iter()
            .map(|rule| BlockingRule::on(&rule.iter().map(String::as_str).collect::<Vec<_>>()))
            .collect()
    };
    let blocking = config.blocking.as_ref().map_or(derived.blocking, rules);
    let training = config.training.as_ref().map_or(derived.training, rules);
    // Requirements on comparisons the model has: one on a field no source maps could never
    // fire (it needs both values).
    let requirements = config
        .requirements
        .clone()
        .unwrap_or(derived.requirements)
        .into_iter()
        .filter(|r| comparisons.iter().any(|c| c.name == r.comparison))
        .collect();
    // Prior rules on fields the comparisons kept.
    let prior: Vec<BlockingRule> = derived
        .prior
        .into_iter()
        .filter(|rule| {
            rule.fields
                .iter()
                .all(|field| comparisons.iter().any(|c| &c.field == field))
        })
        .collect();
    let mut fields: Vec<String> = Vec::new();
    let used = comparisons.iter().map(|c| &c.field).chain(
        blocking
            .iter()
            .chain(&training)
            .chain(&prior)
            .flat_map(|rule| &rule.fields),
    );
    for field in used {
        if !fields.contains(field) {
            fields.push(field.clone());
        }
    }
    ModelSpec {
        fields,
        comparisons,
        blocking,
        training,
        requirements,
        prior,
    }
}

/// The default person model for what the sources map (DOMAIN.md §3).
///
/// - Comparisons: every field the sources give evidence for, with its default comparator.
/// - Blocking: names with a date of birth, names together, each identifier, phone, email,
///   and address with a name; keys are exact values, so a rule needs all its fields.
/// - Requirements: households share surname, address and phone, twins even their date of
///   birth: given names must be at least similar, and dates of birth and NINOs (when both
///   are known) at most one typo or a day/month swap apart; a stated sex must agree.
pub fn derive(mapped: &Mapped) -> ModelSpec {
    let fields = evidence_fields(mapped);
    let has = |field: &str| fields.iter().any(|f| f == field);
    let comparisons: Vec<ComparisonSpec> = fields
        .iter()
        .map(|field| comparison(field, None, None))
        .collect();
    let mut rules: Vec<Vec<&str>> = vec![
        vec!["family_name", "date_of_birth"],
        vec!["given_name", "date_of_birth"],
        vec!["given_name", "family_name"],
        vec!["nino"],
    ];
    rules.extend(
        fields
            .iter()
            .filter(|f| f.starts_with("id:"))
            .map(|identifier| vec![identifier.as_str()]),
    );
    // A date of birth alone: names swapped, replaced or mistyped on both sides. Blocks stay
    // small (some 30,000 birthdays among the living).
    rules.extend([
        vec!["uprn", "given_name"],
        vec!["date_of_birth"],
        vec!["phone"],
        vec!["email"],
        vec!["postcode", "given_name"],
    ]);
    // Address with a name: people without a date of birth, or with a typo in it. Address
    // parts are blocking keys of their own (the comparison takes the whole address).
    let address_part = |part: &str| has("address") && (mapped.has(part) || mapped.has("address"));
    for part in ["postcode", "street"] {
        if address_part(part) {
            rules.push(vec![part, "given_name"]);
            rules.push(vec![part, "family_name"]);
        }
    }
    // The same building: a household, or one person with every name field mistyped.
    if address_part("paon") && address_part("postcode") {
        rules.push(vec!["paon", "postcode"]);
    }
    let usable = |part: &str| {
        has(part) || (["postcode", "street", "paon"].contains(&part) && address_part(part))
    };
    let mut blocking: Vec<BlockingRule> = Vec::new();
    for rule in rules {
        let rule = BlockingRule::on(&rule);
        if rule.fields.iter().all(|field| usable(field)) && !blocking.contains(&rule) {
            blocking.push(rule);
        }
    }
    // Train m on rules whose pairs are mostly one person or clearly two: households share
    // family name, phone, email and address, and pairs gathered on those would teach EM
    // that a household is one person.
    let mut training: Vec<BlockingRule> = Vec::new();
    let mut train = |parts: &[&str]| {
        if parts.iter().all(|part| has(part)) {
            training.push(BlockingRule::on(parts));
        }
    };
    train(&["given_name", "family_name"]);
    train(&["date_of_birth"]);
    train(&["nino"]);
    for identifier in fields.iter().filter(|f| f.starts_with("id:")) {
        train(&[identifier.as_str()]);
    }
    // Exact agreement on these all but proves one person: the prior is estimated from them.
    let mut prior: Vec<BlockingRule> = Vec::new();
    let mut deterministic = |parts: &[&str]| {
        if parts.iter().all(|part| has(part)) {
            prior.push(BlockingRule::on(parts));
        }
    };
    deterministic(&["given_name", "family_name", "date_of_birth"]);
    // Not name and address: a father and son of one name share a home (Sr and Jr).
    deterministic(&["nino"]);
    for identifier in fields.iter().filter(|f| f.starts_with("id:")) {
        deterministic(&[identifier.as_str()]);
    }
    let mut requirements = Vec::new();
    let mut require = |comparison: &str, min_level: &str| {
        if has(comparison) {
            requirements.push(Requirement {
                comparison: comparison.into(),
                min_level: min_level.into(),
                conditional: true,
            });
        }
    };
    require("given_name", "jaro_winkler_low");
    require("date_of_birth", "one_edit");
    require("nino", "one_edit");
    require("sex", "exact");
    let mut schema: Vec<String> = fields.clone();
    for rule in blocking.iter().chain(&training).chain(&prior) {
        for field in &rule.fields {
            if !schema.contains(field) {
                schema.push(field.clone());
            }
        }
    }
    ModelSpec {
        fields: schema,
        comparisons,
        blocking,
        training,
        requirements,
        prior,
    }
}

/// Loads a saved person model, refusing one with a field this version does not know (a
/// model from another version would read values in the wrong places).
pub fn load_model(text: &str) -> Result<model::Model, String> {
    let model = model::Model::load(text).map_err(|error| error.to_string())?;
    if let Some(field) = model.spec.fields.iter().find(|field| !is_field(field)) {
        return Err(format!(
            "the model uses `{field}`, which is not a person field of this version; retrain it with `goldthread train`"
        ));
    }
    Ok(model)
}

/// The built-in person model: trained without labels by `goldthread train` on the sample
/// landlord (see `mdm/models/README.md`). Train one on your own data for production.
pub fn default_model() -> model::Model {
    load_model(include_str!("../models/person.json")).expect("the built-in person model loads")
}

/// The sex a title states, where it states one (`Dr` and `Mx` do not).
pub fn sex_of_title(title: &str) -> Option<&'static str> {
    match normalise::fold(title).as_str() {
        "mr" | "master" | "mstr" | "sir" | "lord" => Some("m"),
        "mrs" | "miss" | "ms" | "dame" | "lady" => Some("f"),
        _ => None,
    }
}

/// A person after the normalisers: the values golden records are made of, the values that
/// did not pass validation (kept as evidence, never as golden values), and the findings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub title: Option<String>,
    pub given: Option<String>,
    pub middle: Option<String>,
    pub family: Option<String>,
    /// A real date of birth (not missing, not a default date such as 1900-01-01).
    pub date_of_birth: Option<NaiveDate>,
    /// A valid NINO.
    pub nino: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// A valid UK postcode, formatted.
    pub postcode: Option<String>,
    pub address: address::Address,
    pub identifiers: BTreeMap<String, String>,
    /// The UPRN of the person's address: digits, leading zeros dropped.
    pub uprn: Option<String>,
    /// Values that failed validation, as matching compares them: a date of birth that did
    /// not parse (as `YYYYMMDD` digits), an invalid NINO, a postcode that is not British.
    pub fallback: Fallback,
    pub findings: Quality,
}

/// Values that failed validation, kept for matching only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fallback {
    pub date_of_birth: Option<String>,
    pub nino: Option<String>,
    pub postcode: Option<String>,
}

/// Letters and digits only, upper case: how identifiers compare (`t-0042` = `T0042`).
pub(crate) fn compact_upper(text: &str) -> Option<String> {
    let compact: String = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect();
    (!compact.is_empty()).then_some(compact)
}

impl Evidence {
    /// Normalises a person; `unparsed` holds the event's values that did not parse.
    pub fn of(person: &Person, unparsed: &BTreeMap<String, Unparsed>) -> Evidence {
        let mut findings = Quality::default();
        let mut fallback = Fallback::default();
        let name = normalise::person_name(person);
        let date_of_birth = normalise::date_of_birth(person.date_of_birth);
        if person.date_of_birth.is_some() && date_of_birth.is_none() {
            findings.default_dates_of_birth += 1;
        }
        if let Some(bad) = unparsed.get("date_of_birth") {
            findings.unparsed_dates_of_birth += 1;
            fallback.date_of_birth = bad.date_digits.clone().or_else(|| {
                let digits: String = bad.raw.chars().filter(char::is_ascii_digit).collect();
                (digits.len() == 8).then_some(digits)
            });
        }
        let nino = match person.nino.as_deref().and_then(normalise::nino) {
            Some(Nino::Valid(nino)) => Some(nino),
            Some(Nino::Placeholder(_)) => {
                findings.placeholder_ninos += 1;
                None
            }
            Some(Nino::Invalid(text)) => {
                findings.invalid_ninos += 1;
                fallback.nino = compact_upper(&text);
                None
            }
            None => None,
        };
        let postcode = person.postcode.as_deref().and_then(|raw| {
            let formatted = normalise::postcode(raw);
            if formatted.is_none() {
                findings.invalid_postcodes += 1;
                fallback.postcode = compact_upper(raw);
            }
            formatted
        });
        let mut address = match person.address.as_deref() {
            Some(line) => address::parse(line, postcode.as_deref()),
            None => address::Address::default(),
        };
        let part = |raw: &Option<String>, normalise: fn(&str) -> Option<String>| {
            raw.as_deref().and_then(normalise)
        };
        address.saon = part(&person.saon, address::saon).or(address.saon);
        address.paon = part(&person.paon, address::paon).or(address.paon);
        address.street = part(&person.street, address::street).or(address.street);
        address.town = part(&person.town, compact_words).or(address.town);
        address.postcode = postcode.clone().or(address.postcode);
        Evidence {
            title: name.title,
            given: name.given,
            middle: name.middle,
            family: name.family,
            date_of_birth,
            nino,
            phone: person.phone.as_deref().and_then(normalise::phone),
            email: person.email.as_deref().and_then(normalise::email),
            postcode,
            address,
            // The properties' reading of a UPRN; an invalid one is no evidence.
            uprn: crate::hub::uprn(person.uprn.as_deref()).unwrap_or_default(),
            identifiers: person
                .identifiers
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), compact_upper(value)?)))
                .collect(),
            fallback,
            findings,
        }
    }

    /// The value of one model field, as the comparators expect it.
    pub fn value(&self, field: &str) -> Option<String> {
        match field {
            "given_name" => self
                .given
                .as_deref()
                .and_then(|given| normalise::given_name_forms(given).pop()),
            "middle_name" => self
                .middle
                .as_deref()
                .map(normalise::fold)
                .filter(|middle| !middle.is_empty()),
            "family_name" => self
                .family
                .as_deref()
                .map(normalise::fold)
                .filter(|family| !family.is_empty()),
            "date_of_birth" => self
                .date_of_birth
                .map(|date| date.format("%Y%m%d").to_string())
                .or_else(|| self.fallback.date_of_birth.clone()),
            "nino" => self.nino.clone().or_else(|| self.fallback.nino.clone()),
            "phone" => self.phone.clone(),
            "email" => self.email.clone(),
            "sex" => self
                .title
                .as_deref()
                .and_then(sex_of_title)
                .map(str::to_string),
            "saon" => self.address.saon.clone(),
            "paon" => self.address.paon.clone(),
            "street" => self.address.street.clone(),
            "town" => self.address.town.clone(),
            "postcode" => self
                .address
                .postcode
                .clone()
                .or_else(|| self.fallback.postcode.clone()),
            "uprn" => self.uprn.clone(),
            "names" => Some(format!(
                "{}\u{1f}{}",
                self.value("given_name")?,
                self.value("family_name")?
            )),
            "address" => {
                let parts = ["saon", "paon", "street", "town", "postcode"].map(|p| self.value(p));
                parts
                    .iter()
                    .any(Option::is_some)
                    .then(|| crate::compare::join_address(&parts))
            }
            _ => field
                .strip_prefix("id:")
                .and_then(|name| self.identifiers.get(name).cloned()),
        }
    }

    /// The prepared record for a model's fields.
    pub fn prepare(&self, fields: &[String]) -> Prepared {
        Prepared {
            values: fields.iter().map(|field| self.value(field)).collect(),
        }
    }
}

/// Upper-case words separated by single spaces.
fn compact_words(text: &str) -> Option<String> {
    let words: Vec<String> = text.split_whitespace().map(str::to_uppercase).collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// A canonical person prepared for a model's fields (the event's unparsed values aside).
pub fn prepare(person: &Person, fields: &[String]) -> Prepared {
    Evidence::of(person, &BTreeMap::new()).prepare(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(fields: &[&str], identifiers: &[&str]) -> Mapped {
        Mapped {
            fields: fields.iter().map(|f| f.to_string()).collect(),
            identifiers: identifiers.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn preparation_normalises_every_field() {
        let person = Person {
            full_name: Some("Mrs Peggy O'Brien".into()),
            date_of_birth: "1961-03-11".parse().ok(),
            nino: Some("QQ123456C".into()),
            phone: Some("+44 7700 900123".into()),
            email: Some("Peggy@Example.com".into()),
            postcode: Some("ls61ab".into()),
            paon: Some("14 b".into()),
            street: Some("High St".into()),
            identifiers: [("legacy_ref".to_string(), "t-0042".to_string())].into(),
            uprn: Some(" 100023336956 ".into()),
            ..Person::default()
        };
        let fields: Vec<String> = [
            "given_name",
            "family_name",
            "date_of_birth",
            "nino",
            "phone",
            "email",
            "postcode",
            "sex",
            "paon",
            "street",
            "id:legacy_ref",
            "uprn",
        ]
        .map(str::to_string)
        .into();
        let prepared = prepare(&person, &fields);
        let values: Vec<Option<&str>> = prepared.values.iter().map(Option::as_deref).collect();
        assert_eq!(
            values,
            vec![
                Some("margaret"),
                Some("obrien"),
                Some("19610311"),
                None,
                Some("07700900123"),
                Some("peggy@example.com"),
                Some("LS6 1AB"),
                Some("f"),
                Some("14B"),
                Some("HIGH STREET"),
                Some("T0042"),
                Some("100023336956"),
            ]
        );
    }

    #[test]
    fn values_that_did_not_parse_are_evidence_but_not_golden_values() {
        let person = Person {
            given_name: Some("Ann".into()),
            nino: Some("1804974".into()),
            postcode: Some("2119".into()),
            ..Person::default()
        };
        let unparsed = [(
            "date_of_birth".to_string(),
            Unparsed {
                raw: "30/03/2000".into(),
                reason: "cannot parse".into(),
                date_digits: Some("20003003".into()),
            },
        )]
        .into();
        let evidence = Evidence::of(&person, &unparsed);
        assert_eq!(
            (evidence.date_of_birth, &evidence.nino, &evidence.postcode),
            (None, &None, &None)
        );
        assert_eq!(evidence.value("date_of_birth").as_deref(), Some("20003003"));
        assert_eq!(evidence.value("nino").as_deref(), Some("1804974"));
        assert_eq!(evidence.value("postcode").as_deref(), Some("2119"));
        assert_eq!(evidence.findings.unparsed_dates_of_birth, 1);
        assert_eq!(evidence.findings.invalid_ninos, 1);
    }

    #[test]
    fn every_mapped_field_is_evidence() {
        let spec = derive(&mapped(
            &[
                "given_name",
                "middle_name",
                "family_name",
                "date_of_birth",
                "paon",
                "street",
                "saon",
                "town",
                "postcode",
                "nino",
                "uprn",
            ],
            &["legacy_ref"],
        ));
        let compared: Vec<&str> = spec.comparisons.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            compared,
            vec![
                "given_name",
                "middle_name",
                "family_name",
                "names",
                "date_of_birth",
                "nino",
                "address",
                "sex",
                "uprn",
                "id:legacy_ref"
            ]
        );
        let rules: Vec<&str> = spec.blocking.iter().map(|r| r.name.as_str()).collect();
        assert!(rules.contains(&"id:legacy_ref"), "{rules:?}");
        assert!(rules.contains(&"street+family_name"), "{rules:?}");
        for rule in spec.blocking.iter().chain(&spec.training) {
            for field in &rule.fields {
                assert!(spec.fields.contains(field), "{field}");
            }
        }
        // A postcode alone is compared as a postcode.
        let spec = derive(&mapped(&["full_name", "postcode"], &[]));
        let compared: Vec<&str> = spec.comparisons.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            compared,
            vec![
                "given_name",
                "middle_name",
                "family_name",
                "names",
                "postcode",
                "sex"
            ]
        );
    }

    #[test]
    fn configuration_replaces_the_parts_it_sets() {
        let config: PersonModelConfig = toml::from_str(
            r#"
            comparisons = [{ field = "family_name" }, { field = "id:payroll", comparator = { kind = "exact" } }]
            requirements = [{ comparison = "family_name", min_level = "jaro_winkler_high" }]
            "#,
        )
        .unwrap();
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        let spec = spec_for(&mapped(&["given_name", "family_name"], &[]), Some(&config));
        assert_eq!(spec.comparisons.len(), 2);
        assert_eq!(spec.comparisons[1].comparator, Comparator::Exact);
        assert_eq!(spec.requirements.len(), 1);
        // A requirement on a field nobody maps is no requirement (and no panic in training).
        let unmapped: PersonModelConfig = toml::from_str(
            r#"
            requirements = [{ comparison = "nino", min_level = "exact" }]
            "#,
        )
        .unwrap();
        assert!(unmapped.problems().is_empty());
        let spec = spec_for(&mapped(&["given_name"], &[]), Some(&unmapped));
        assert!(spec.requirements.is_empty());
        let bad: PersonModelConfig = toml::from_str(
            r#"
            blocking = [["shoe_size"]]
            "#,
        )
        .unwrap();
        assert!(
            bad.problems()[0]
                .1
                .contains("unknown person field `shoe_size`")
        );
        let bad: PersonModelConfig = toml::from_str(
            r#"
            requirements = [{ comparison = "given_name", min_level = "telepathy" }]
            "#,
        )
        .unwrap();
        assert!(
            bad.problems()[0].1.contains("has no level `telepathy`"),
            "{:?}",
            bad.problems()
        );
    }
}
