//! The recording standard: its configuration (`[quality]`), the rules (built in, or the
//! landlord's own) and how a record is checked against them.

use super::*;

/// The quality dimensions a rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Completeness,
    Validity,
    Consistency,
    Uniqueness,
    Timeliness,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
}

/// `[quality]`: the recording standard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// Apply the built-in standard ([`default_rules`]) as well as `rules`.
    pub default_standard: bool,
    /// Rules of the built-in standard left out, by id.
    pub disable: Vec<String>,
    /// The team that fixes each system's records (`hms = "Tenancy services"`); a rule's own
    /// `owner` comes first, then this, then "data team".
    pub owners: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
    /// Where each owner's digest goes (`goldthread quality-report --notify`, and a served
    /// run every `notify_every`).
    pub notify: Vec<Notify>,
    /// How often a served run sends the digests (unset: never; `quality-report --notify`
    /// sends them on demand).
    #[serde(with = "humantime_serde")]
    pub notify_every: Option<std::time::Duration>,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            default_standard: true,
            disable: Vec::new(),
            owners: BTreeMap::new(),
            rules: Vec::new(),
            notify: Vec::new(),
            notify_every: None,
        }
    }
}

/// `[[quality.notify]]`: an owner's incoming webhook (Teams, Slack or any endpoint taking
/// JSON): the digest of its open issues, with the source reference of each and no value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// The owner whose issues go there (a rule's `owner`, `quality.owners`, or "data team").
    pub owner: String,
    /// The environment variable holding the webhook's URL (it carries a secret).
    pub url_env: String,
    /// A PEM file of a CA to trust besides the system's, for an `https://` URL.
    pub ca_file: Option<std::path::PathBuf>,
}

/// `[[quality.rules]]`: one rule of the standard. It names exactly one check: `present`,
/// `any_present`, `valid`, `unique_within_system` or `has_record_from`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique; names the rule in issues, reports and notifications.
    pub id: String,
    /// What the standard asks, in the landlord's words.
    pub description: String,
    /// person, property, tenancy or vulnerability.
    pub entity: String,
    pub dimension: Dimension,
    #[serde(default)]
    pub severity: Severity,
    /// The team that fixes a failing record (default: `quality.owners` of its system).
    pub owner: Option<String>,
    /// Only records of these systems (default: every system).
    #[serde(default)]
    pub systems: Vec<String>,
    /// What to do about a failing record, for the person who fixes it.
    pub fix: String,
    /// Each of these fields holds a value.
    #[serde(default)]
    pub present: Vec<String>,
    /// At least one of these fields holds a value.
    #[serde(default)]
    pub any_present: Vec<String>,
    /// Each of these fields, when it holds a value, holds a valid one (a NINO that is no
    /// placeholder, a date of birth that is no default, a UPRN, a postcode, a phone number,
    /// an email address; for any field, a value that parsed).
    #[serde(default)]
    pub valid: Vec<String>,
    /// No two records of one system in one golden record (persons, properties).
    #[serde(default)]
    pub unique_within_system: bool,
    /// Every golden record holds a record of this system (a home has an asset record).
    pub has_record_from: Option<String>,
    /// The records of one golden record agree on this field (their normalised values), the
    /// first of `systems` holding one being the reference: the others that differ fail.
    pub agree: Option<String>,
    /// The date in this field has not passed (as of when the register is read), unless the
    /// date in `unless_past` has (a review date, unless the vulnerability has ended).
    pub not_past: Option<String>,
    pub unless_past: Option<String>,
}

/// What a rule checks.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Check {
    Present(Vec<String>),
    AnyPresent(Vec<String>),
    Valid(Vec<String>),
    Unique,
    HasRecordFrom(String),
    Agree(String),
    NotPast {
        field: String,
        unless: Option<String>,
    },
}

impl Check {
    /// Whether it is about golden records rather than one record.
    pub(super) fn golden(&self) -> bool {
        matches!(
            self,
            Check::Unique | Check::HasRecordFrom(_) | Check::Agree(_)
        )
    }

    /// Whether it is evaluated when the register is read (about golden records, or about
    /// the day), rather than as events are applied.
    pub(super) fn when_read(&self) -> bool {
        self.golden() || matches!(self, Check::NotPast { .. })
    }
}

/// The fields `agree` compares (`Hub::conflicts`).
const COMPARED: [(EntityKind, &[&str]); 2] = [
    (
        EntityKind::Person,
        &[
            "given_name",
            "family_name",
            "date_of_birth",
            "nino",
            "phone",
            "email",
            "postcode",
        ],
    ),
    (
        EntityKind::Property,
        &[
            "uprn",
            "saon",
            "paon",
            "street",
            "postcode",
            "property_type",
        ],
    ),
];

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub(super) struct Compiled {
    pub(super) rule: Rule,
    pub(super) entity: EntityKind,
    pub(super) check: Check,
}

impl Compiled {
    pub(super) fn applies_to(&self, system: &str) -> bool {
        self.rule.systems.is_empty() || self.rule.systems.iter().any(|s| s == system)
    }
}

/// The built-in standard, drawn from DOMAIN.md and HACT's fields.
pub fn default_rules() -> Vec<Rule> {
    let rule = |id: &str, description: &str, entity: &str, dimension, severity| Rule {
        id: id.into(),
        description: description.into(),
        entity: entity.into(),
        dimension,
        severity,
        owner: None,
        systems: Vec::new(),
        fix: String::new(),
        present: Vec::new(),
        any_present: Vec::new(),
        valid: Vec::new(),
        unique_within_system: false,
        has_record_from: None,
        agree: None,
        not_past: None,
        unless_past: None,
    };
    let fields = |names: &[&str]| names.iter().map(|name| name.to_string()).collect();
    vec![
        Rule {
            present: fields(&["date_of_birth"]),
            fix: "Record the date of birth, from the identity seen at sign-up".into(),
            ..rule(
                "person-date-of-birth",
                "Every person has a date of birth",
                "person",
                Dimension::Completeness,
                Severity::High,
            )
        },
        Rule {
            valid: fields(&["date_of_birth"]),
            fix: "Replace the default or unreadable date with the real one".into(),
            ..rule(
                "person-date-of-birth-valid",
                "A date of birth is a real date, not a default (1900-01-01, 01/01/YYYY)",
                "person",
                Dimension::Validity,
                Severity::High,
            )
        },
        Rule {
            systems: vec!["hms".into()],
            present: fields(&["nino"]),
            fix: "Ask for the National Insurance number at the next contact".into(),
            ..rule(
                "tenant-nino",
                "Every tenant has a National Insurance number",
                "person",
                Dimension::Completeness,
                Severity::Low,
            )
        },
        Rule {
            valid: fields(&["nino"]),
            fix: "Replace the placeholder with the real number, or leave it empty".into(),
            ..rule(
                "person-nino-valid",
                "A National Insurance number is a real one, not a placeholder",
                "person",
                Dimension::Validity,
                Severity::Medium,
            )
        },
        Rule {
            any_present: fields(&["phone", "email"]),
            fix: "Record a phone number or an email address".into(),
            ..rule(
                "person-contact",
                "Every person has a contact method (phone or email)",
                "person",
                Dimension::Completeness,
                Severity::Medium,
            )
        },
        Rule {
            valid: fields(&["phone", "email", "postcode"]),
            fix: "Correct the phone number, email address or postcode".into(),
            ..rule(
                "person-contact-valid",
                "A phone number, email address and postcode are well formed",
                "person",
                Dimension::Validity,
                Severity::Low,
            )
        },
        Rule {
            present: fields(&["uprn"]),
            fix: "Look the address up in AddressBase and record its UPRN".into(),
            ..rule(
                "property-uprn",
                "A UPRN on every property",
                "property",
                Dimension::Completeness,
                Severity::High,
            )
        },
        Rule {
            valid: fields(&["uprn", "postcode"]),
            fix: "Correct the UPRN (up to 12 digits) or the postcode".into(),
            ..rule(
                "property-uprn-valid",
                "A UPRN is up to 12 digits and a postcode is a UK postcode",
                "property",
                Dimension::Validity,
                Severity::Medium,
            )
        },
        Rule {
            has_record_from: Some("asset".into()),
            owner: Some("Asset management".into()),
            fix: "Add the home to the asset register (stock condition, compliance)".into(),
            ..rule(
                "property-asset-record",
                "Every home has an asset record",
                "property",
                Dimension::Consistency,
                Severity::Medium,
            )
        },
        Rule {
            systems: vec!["hms".into(), "crm".into()],
            agree: Some("date_of_birth".into()),
            fix: "Check the date of birth against ID and correct the record that is wrong".into(),
            ..rule(
                "person-date-of-birth-agrees",
                "The HMS and the CRM agree on a person's date of birth",
                "person",
                Dimension::Consistency,
                Severity::Medium,
            )
        },
        Rule {
            systems: vec!["hms".into()],
            unique_within_system: true,
            fix: "Merge the duplicate tenant records in the HMS".into(),
            ..rule(
                "person-single-hms-record",
                "No two HMS tenant records for one person",
                "person",
                Dimension::Uniqueness,
                Severity::High,
            )
        },
        Rule {
            present: fields(&["party_refs"]),
            fix: "Record the tenants on the tenancy".into(),
            ..rule(
                "tenancy-people",
                "Every tenancy names its tenants",
                "tenancy",
                Dimension::Completeness,
                Severity::High,
            )
        },
        Rule {
            present: fields(&["review_date"]),
            fix: "Set a review date (within twelve months) and diarise the review".into(),
            ..rule(
                "vulnerability-review-date",
                "A vulnerability has a review date",
                "vulnerability",
                Dimension::Completeness,
                Severity::High,
            )
        },
        Rule {
            not_past: Some("review_date".into()),
            unless_past: Some("end_date".into()),
            fix: "Review the vulnerability with the resident and set the next review date".into(),
            ..rule(
                "vulnerability-reviewed",
                "A vulnerability is reviewed by its review date (within twelve months), unless it has ended",
                "vulnerability",
                Dimension::Timeliness,
                Severity::High,
            )
        },
    ]
}

/// The rules in force.
#[derive(Debug, Clone, Default)]
pub struct Standard {
    pub(super) rules: Vec<Compiled>,
    owners: BTreeMap<String, String>,
}

impl Standard {
    /// The standard `config` describes; every problem at once, each naming its rule and key.
    pub fn from_config(config: &QualityConfig) -> Result<Standard, String> {
        let mut rules: Vec<Rule> = if config.default_standard {
            default_rules()
                .into_iter()
                .filter(|rule| !config.disable.contains(&rule.id))
                .collect()
        } else {
            Vec::new()
        };
        rules.extend(config.rules.iter().cloned());
        let mut problems = Vec::new();
        let mut compiled = Vec::new();
        let mut ids = std::collections::BTreeSet::new();
        for (index, rule) in rules.into_iter().enumerate() {
            let at = format!("quality.rules `{}`", rule.id);
            if rule.id.trim().is_empty() {
                problems.push(format!("quality.rules[{index}].id: must not be empty"));
            } else if !ids.insert(rule.id.clone()) {
                problems.push(format!("{at}: the id is used twice"));
            }
            let entity = match EntityKind::parse(&rule.entity) {
                Some(
                    kind @ (EntityKind::Person
                    | EntityKind::Property
                    | EntityKind::Tenancy
                    | EntityKind::Vulnerability),
                ) => kind,
                _ => {
                    problems.push(format!(
                        "{at}.entity: `{}` is not person, property, tenancy or vulnerability",
                        rule.entity
                    ));
                    continue;
                }
            };
            let mut checks = Vec::new();
            if !rule.present.is_empty() {
                checks.push(Check::Present(rule.present.clone()));
            }
            if !rule.any_present.is_empty() {
                checks.push(Check::AnyPresent(rule.any_present.clone()));
            }
            if !rule.valid.is_empty() {
                checks.push(Check::Valid(rule.valid.clone()));
            }
            if rule.unique_within_system {
                checks.push(Check::Unique);
            }
            if let Some(system) = &rule.has_record_from {
                checks.push(Check::HasRecordFrom(system.clone()));
            }
            if let Some(field) = &rule.not_past {
                checks.push(Check::NotPast {
                    field: field.clone(),
                    unless: rule.unless_past.clone(),
                });
            }
            if let Some(field) = &rule.agree {
                let compared = COMPARED
                    .iter()
                    .find(|(kind, _)| *kind == entity)
                    .map_or(&[][..], |(_, fields)| *fields);
                if !compared.contains(&field.as_str()) {
                    problems.push(format!(
                        "{at}.agree: records are compared on {} only",
                        compared.join(", ")
                    ));
                }
                checks.push(Check::Agree(field.clone()));
            }
            if checks.len() != 1 {
                problems.push(format!(
                    "{at}: name exactly one check of present, any_present, valid, unique_within_system, has_record_from, agree, not_past"
                ));
                continue;
            }
            let check = checks.remove(0);
            for field in [&rule.present, &rule.any_present, &rule.valid]
                .into_iter()
                .flatten()
                .chain(rule.not_past.iter())
                .chain(rule.unless_past.iter())
            {
                if entity.field(field).is_none() {
                    let known: Vec<_> = entity.fields().iter().map(|f| f.name).collect();
                    problems.push(format!(
                        "{at}: `{field}` is not a {entity} field (known: {})",
                        known.join(", ")
                    ));
                }
            }
            if check.golden() && !matches!(entity, EntityKind::Person | EntityKind::Property) {
                problems.push(format!(
                    "{at}: golden record checks are for persons and properties"
                ));
            }
            compiled.push(Compiled {
                rule,
                entity,
                check,
            });
        }
        if problems.is_empty() {
            Ok(Standard {
                rules: compiled,
                owners: config.owners.clone(),
            })
        } else {
            Err(problems.join("; "))
        }
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|compiled| &compiled.rule)
    }

    pub(super) fn owner(&self, rule: &Rule, system: &str) -> String {
        rule.owner
            .clone()
            .or_else(|| self.owners.get(system).cloned())
            .unwrap_or_else(|| "data team".into())
    }

    /// The rules about one record that `event` fails, with what is wrong (no values).
    /// `values`: the event's payload fields (`payload_fields`).
    pub(super) fn failures(
        &self,
        event: &Envelope,
        values: &serde_json::Map<String, Value>,
    ) -> Vec<(usize, String)> {
        let kind = event.payload.kind();
        let system = event.source_ref.allocated_by.as_str();
        let applicable = |compiled: &&Compiled| {
            compiled.entity == kind && !compiled.check.when_read() && compiled.applies_to(system)
        };
        if !self.rules.iter().any(|compiled| applicable(&compiled)) {
            return Vec::new();
        }
        let held = |field: &str| match values.get(field) {
            None | Some(Value::Null) => false,
            Some(Value::String(text)) => !text.trim().is_empty(),
            Some(Value::Array(items)) => !items.is_empty(),
            Some(_) => true,
        };
        let mut failures = Vec::new();
        for (index, compiled) in self.rules.iter().enumerate() {
            if !applicable(&compiled) {
                continue;
            }
            let problem = match &compiled.check {
                Check::Present(fields) => {
                    let missing: Vec<&str> = fields
                        .iter()
                        .map(String::as_str)
                        .filter(|field| !held(field) && !event.unparsed.contains_key(*field))
                        .collect();
                    (!missing.is_empty()).then(|| format!("{} missing", missing.join(", ")))
                }
                Check::AnyPresent(fields) => (!fields.iter().any(|field| held(field)))
                    .then(|| format!("none of {}", fields.join(", "))),
                Check::Valid(fields) => {
                    let invalid: Vec<String> = fields
                        .iter()
                        .filter_map(|field| {
                            if let Some(unparsed) = event.unparsed.get(field) {
                                return Some(format!(
                                    "{field} did not parse ({})",
                                    unparsed.reason
                                ));
                            }
                            let value = values.get(field.as_str())?;
                            invalid(field, value).map(|why| format!("{field} {why}"))
                        })
                        .collect();
                    (!invalid.is_empty()).then(|| invalid.join("; "))
                }
                Check::Unique
                | Check::HasRecordFrom(_)
                | Check::Agree(_)
                | Check::NotPast { .. } => None,
            };
            if let Some(problem) = problem {
                failures.push((index, problem));
            }
        }
        failures
    }
}

/// A payload's fields by name, as JSON.
pub(super) fn payload_fields(payload: &Payload) -> serde_json::Map<String, Value> {
    match serde_json::to_value(payload) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// Why a held value is not valid, if it is not.
fn invalid(field: &str, value: &Value) -> Option<&'static str> {
    let text = match value {
        Value::String(text) if !text.trim().is_empty() => text.trim(),
        _ => return None,
    };
    match field {
        "nino" => match normalise::nino(text) {
            Some(Nino::Placeholder(_)) => Some("is a placeholder"),
            Some(Nino::Invalid(_)) => Some("is not a valid NINO"),
            _ => None,
        },
        "date_of_birth" => {
            let date: NaiveDate = text.parse().ok()?;
            normalise::date_of_birth(Some(date))
                .is_none()
                .then_some("is a default date")
        }
        "uprn" | "parent_uprn" => (!(text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit())))
            .then_some("is not up to 12 digits"),
        "postcode" => normalise::postcode(text)
            .is_none()
            .then_some("is not a UK postcode"),
        "phone" => normalise::phone(text)
            .is_none()
            .then_some("is not a phone number"),
        "email" => normalise::email(text)
            .is_none()
            .then_some("is not an email address"),
        _ => None,
    }
}
