//! The person model: how a canonical person becomes a [`Prepared`] record for the
//! Fellegi-Sunter model, and the comparisons and blocking rules for people. Pure functions.

use pipeline::entity::Person;

use crate::compare::Comparator;
use crate::model::{BlockingRule, ComparisonSpec, ModelSpec, Prepared, Requirement};
use crate::normalise::{self, Nino};

/// The schema fields of a prepared person, in order.
pub const FIELDS: &[&str] = &[
    "given_name",
    "family_name",
    "date_of_birth",
    "nino",
    "phone",
    "email",
    "postcode",
    "sex",
];

/// Comparisons and blocking rules for people (DOMAIN.md §3): names with nicknames and
/// term frequencies, date of birth with swaps and typos, NINO, phone, email, postcode.
pub fn spec() -> ModelSpec {
    let comparison = ComparisonSpec::on;
    let rule = BlockingRule::on;
    ModelSpec {
        fields: FIELDS.iter().map(|field| field.to_string()).collect(),
        comparisons: vec![
            comparison(
                "given_name",
                Comparator::GivenName {
                    high: 0.92,
                    low: 0.8,
                },
                true,
            ),
            comparison(
                "family_name",
                Comparator::Text {
                    high: 0.92,
                    low: 0.8,
                },
                true,
            ),
            comparison("date_of_birth", Comparator::Date, false),
            comparison("nino", Comparator::Code, false),
            comparison("phone", Comparator::Code, false),
            comparison("email", Comparator::Exact, false),
            comparison("postcode", Comparator::Postcode, false),
            // From a gendered title: opposite-sex twins of near-identical names (Alexander and
            // Alexandra) share everything else.
            comparison("sex", Comparator::Exact, false),
        ],
        blocking: vec![
            rule(&["family_name", "date_of_birth"]),
            rule(&["given_name", "date_of_birth"]),
            rule(&["given_name", "family_name"]),
            rule(&["nino"]),
            rule(&["phone"]),
            rule(&["email"]),
            rule(&["postcode", "given_name"]),
        ],
        // Households share family name, phone, email and postcode: pairs gathered on those
        // would teach EM that a household is one person. Train on names, on dates of birth
        // (twins and birthday twins are clear non-matches there) and on NINOs.
        training: vec![
            rule(&["given_name", "family_name"]),
            rule(&["date_of_birth"]),
            rule(&["nino"]),
        ],
        // Households share surname, address and phone, twins even their date of birth: a
        // pair links only if given names agree, and dates of birth and NINOs (when both are
        // known) are at most one typo (or a day/month swap) apart.
        requirements: vec![
            Requirement {
                comparison: "given_name".into(),
                min_level: "jaro_winkler_high".into(),
            },
            Requirement {
                comparison: "date_of_birth".into(),
                min_level: "one_edit".into(),
            },
            // A person has one NINO: two valid ones more than a typo apart are two people.
            Requirement {
                comparison: "nino".into(),
                min_level: "one_edit".into(),
            },
            // Mr and Mrs are two people (opposite-sex twins of near-identical names).
            Requirement {
                comparison: "sex".into(),
                min_level: "exact".into(),
            },
        ],
    }
}

/// Loads a saved person model, refusing one whose fields are not this version's person
/// fields (a model trained before a field was added would read values in the wrong places).
pub fn load_model(text: &str) -> Result<crate::model::Model, String> {
    let model = crate::model::Model::load(text).map_err(|error| error.to_string())?;
    if model.spec.fields != FIELDS {
        return Err(format!(
            "the model's fields {:?} are not the person fields {FIELDS:?}; retrain it with `goldthread train`",
            model.spec.fields
        ));
    }
    Ok(model)
}

/// The built-in person model: trained without labels by `goldthread train` on the sample
/// landlord (see `mdm/models/README.md`). Train one on your own data for production.
pub fn default_model() -> crate::model::Model {
    load_model(include_str!("../models/person.json")).expect("the built-in person model loads")
}

/// A canonical person as the model sees it: names folded (the formal form of an unambiguous
/// nickname for the given name), the date of birth as YYYYMMDD unless it is a default date,
/// valid NINOs only, phone digits, lower-case email, formatted postcode.
pub fn prepare(person: &Person) -> Prepared {
    let name = normalise::person_name(person);
    let nino = match person.nino.as_deref().and_then(normalise::nino) {
        Some(Nino::Valid(nino)) => Some(nino),
        _ => None,
    };
    prepare_normalised(Normalised {
        title: name.title.as_deref(),
        given: name.given.as_deref(),
        family: name.family.as_deref(),
        date_of_birth: normalise::date_of_birth(person.date_of_birth),
        nino,
        phone: person.phone.as_deref().and_then(normalise::phone),
        email: person.email.as_deref().and_then(normalise::email),
        postcode: person.postcode.as_deref().and_then(normalise::postcode),
    })
}

/// The sex a title states, where it states one (`Dr` and `Mx` do not).
pub fn sex_of_title(title: &str) -> Option<&'static str> {
    match normalise::fold(title).as_str() {
        "mr" | "master" | "mstr" | "sir" | "lord" => Some("m"),
        "mrs" | "miss" | "ms" | "dame" | "lady" => Some("f"),
        _ => None,
    }
}

/// A person's values after the normalisers, for callers that normalised already.
#[derive(Debug, Clone, Default)]
pub struct Normalised<'a> {
    pub title: Option<&'a str>,
    pub given: Option<&'a str>,
    pub family: Option<&'a str>,
    pub date_of_birth: Option<chrono::NaiveDate>,
    pub nino: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub postcode: Option<String>,
}

/// [`prepare`] from values the normalisers already produced (the hub keeps them for golden
/// records, so it does not normalise twice).
pub fn prepare_normalised(values: Normalised<'_>) -> Prepared {
    let given = values
        .given
        .and_then(|given| normalise::given_name_forms(given).pop());
    let family = values
        .family
        .map(normalise::fold)
        .filter(|family| !family.is_empty());
    let date_of_birth = values
        .date_of_birth
        .map(|date| date.format("%Y%m%d").to_string());
    Prepared {
        values: vec![
            given,
            family,
            date_of_birth,
            values.nino,
            values.phone,
            values.email,
            values.postcode,
            values.title.and_then(sex_of_title).map(str::to_string),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preparation_normalises_every_field() {
        let person = Person {
            full_name: Some("Mrs Peggy O'Brien".into()),
            date_of_birth: "1961-03-11".parse().ok(),
            nino: Some("QQ123456C".into()),
            phone: Some("+44 7700 900123".into()),
            email: Some("Peggy@Example.com".into()),
            postcode: Some("ls61ab".into()),
            ..Person::default()
        };
        let prepared = prepare(&person);
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
                Some("f")
            ]
        );
        assert_eq!(prepared.values.len(), spec().fields.len());
    }
}
