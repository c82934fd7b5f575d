//! Data quality as the landlord writes it down: a recording standard (rules per entity and
//! field, each with a dimension, a severity and an owner) and the live issue register it
//! keeps. Rules about one record (`present`, `any_present`, `valid`) are evaluated on every
//! event as it is applied: a failing record opens an issue, a later event that passes closes
//! it. Rules about golden records (`unique_within_system`, `has_record_from`, `agree`) and
//! about the day (`not_past`) are evaluated when the register is read
//! ([`Register::reconcile`]). An issue names the record by its source reference only, never
//! by its values. [`report`] renders the weekly report for people.

pub mod report;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use pipeline::{EntityKind, Envelope, Op, Payload, Reference};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::normalise::{self, Nino};
use crate::{Entity, Hub};

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

/// One row of a merger's risk table: a gap the incoming data has against the standard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Risk {
    /// What is missing or wrong, in the standard's words.
    pub gap: String,
    pub rule: String,
    pub dimension: Dimension,
    pub severity: Severity,
    /// Records (or golden records) with the gap, and the share of those checked.
    pub count: usize,
    pub share: f64,
    /// Per system, the records with the gap.
    pub per_system: BTreeMap<String, usize>,
    pub mitigation: String,
}

impl Weekly {
    /// The knowledge gaps as a risk table (merger due diligence): a row per rule some
    /// records fail, most severe and largest first.
    pub fn risks(&self) -> Vec<Risk> {
        let mut risks: BTreeMap<&str, Risk> = BTreeMap::new();
        for score in self.scores.iter().filter(|score| score.failing > 0) {
            let risk = risks.entry(score.rule.as_str()).or_insert_with(|| Risk {
                gap: score.description.clone(),
                rule: score.rule.clone(),
                dimension: score.dimension,
                severity: score.severity,
                count: 0,
                share: 0.0,
                per_system: BTreeMap::new(),
                mitigation: String::new(),
            });
            risk.count += score.failing;
            risk.share += score.checked as f64;
            risk.per_system.insert(score.system.clone(), score.failing);
        }
        let fixes: BTreeMap<&str, &str> = self
            .owners
            .iter()
            .flat_map(|owner| &owner.issues)
            .map(|issue| (issue.rule.as_str(), issue.fix.as_str()))
            .collect();
        let mut risks: Vec<Risk> = risks
            .into_values()
            .map(|mut risk| {
                risk.share = risk.count as f64 / risk.share.max(1.0);
                risk.mitigation = fixes
                    .get(risk.rule.as_str())
                    .copied()
                    .unwrap_or("")
                    .to_string();
                risk
            })
            .collect();
        risks.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.count.cmp(&a.count)));
        risks
    }
}

/// Issues listed in a digest at most (the counts cover all).
pub const DIGEST_ISSUES: usize = 50;

impl Weekly {
    /// The digest of one owner's open issues, as a JSON body Teams and Slack incoming
    /// webhooks take (`text`), with the details beside it for other receivers. Records are
    /// named by source reference only.
    pub fn digest(&self, owner: &str) -> Value {
        let issues: &[Issue] = self
            .owners
            .iter()
            .find(|section| section.owner == owner)
            .map_or(&[], |section| &section.issues);
        let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
        for issue in issues {
            *per_rule.entry(issue.rule.as_str()).or_default() += 1;
        }
        let new = issues
            .iter()
            .filter(|issue| issue.first_seen.date_naive() >= self.from)
            .count();
        let rules: Vec<String> = per_rule
            .iter()
            .map(|(rule, count)| format!("{rule}: {count}"))
            .collect();
        let text = format!(
            "Data quality, week {}: {owner} has {} open issues ({new} new this week). {}",
            self.week,
            issues.len(),
            if rules.is_empty() {
                "Nothing to fix.".to_string()
            } else {
                rules.join("; ")
            }
        );
        let listed: Vec<Value> = issues
            .iter()
            .take(DIGEST_ISSUES)
            .map(|issue| {
                serde_json::json!({
                    "rule": issue.rule,
                    "severity": issue.severity,
                    "system": issue.system,
                    "source": issue.record.allocated_by,
                    "source_id": issue.record.id,
                    "problem": issue.problem,
                    "fix": issue.fix,
                    "first_seen": issue.first_seen,
                })
            })
            .collect();
        serde_json::json!({
            "text": text,
            "week": self.week,
            "owner": owner,
            "open": issues.len(),
            "new_this_week": new,
            "issues": listed,
        })
    }
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
enum Check {
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
    fn golden(&self) -> bool {
        matches!(
            self,
            Check::Unique | Check::HasRecordFrom(_) | Check::Agree(_)
        )
    }

    /// Whether it is evaluated when the register is read (about golden records, or about
    /// the day), rather than as events are applied.
    fn when_read(&self) -> bool {
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
struct Compiled {
    rule: Rule,
    entity: EntityKind,
    check: Check,
}

impl Compiled {
    fn applies_to(&self, system: &str) -> bool {
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
    rules: Vec<Compiled>,
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

    fn owner(&self, rule: &Rule, system: &str) -> String {
        rule.owner
            .clone()
            .or_else(|| self.owners.get(system).cloned())
            .unwrap_or_else(|| "data team".into())
    }

    /// The rules about one record that `event` fails, with what is wrong (no values).
    /// `values`: the event's payload fields (`payload_fields`).
    fn failures(
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
fn payload_fields(payload: &Payload) -> serde_json::Map<String, Value> {
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

/// One issue: a record failing a rule, from when it was first seen failing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    pub rule: String,
    pub dimension: Dimension,
    pub severity: Severity,
    /// The team that fixes it, and the system where the fix is made.
    pub owner: String,
    pub system: String,
    /// The record, by its source reference only.
    pub record: Reference,
    pub golden_id: Option<String>,
    /// What is wrong, without the values.
    pub problem: String,
    pub fix: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// The issue register: open issues, and those resolved.
#[derive(Debug, Default)]
pub struct Register {
    standard: Standard,
    /// Open issues by rule (index) and record.
    open: HashMap<(usize, Reference), Issue>,
    resolved: Vec<Issue>,
    /// Records seen per entity and system: what a score is out of.
    records: HashMap<(EntityKind, String), std::collections::HashSet<String>>,
    /// The dates `not_past` rules compare with the day, per rule and record: the date, and
    /// the `unless_past` date.
    dated: HashMap<(usize, Reference), (NaiveDate, Option<NaiveDate>)>,
    /// Issues opened, refreshed or resolved since the store last took them (when tracked).
    changed: Vec<Issue>,
    tracking: bool,
}

impl Register {
    pub fn new(standard: Standard) -> Register {
        Register {
            standard,
            ..Register::default()
        }
    }

    pub fn standard(&self) -> &Standard {
        &self.standard
    }

    /// Keeps what changes for the store (`take_changes`).
    pub fn track_changes(&mut self) {
        self.tracking = true;
    }

    /// The issues changed since the last call, in their current state, oldest change first.
    pub fn take_changes(&mut self) -> Vec<Issue> {
        std::mem::take(&mut self.changed)
    }

    /// Changes a failed write took, back ahead of any made since.
    pub fn put_back(&mut self, mut changes: Vec<Issue>) {
        changes.append(&mut self.changed);
        self.changed = changes;
    }

    /// The issues a store holds (open and resolved), before the events are applied again:
    /// an issue still failing keeps when it was first seen. Issues of rules no longer in the
    /// standard are left out.
    pub fn restore(&mut self, issues: Vec<Issue>) {
        for issue in issues {
            let Some(index) = self
                .standard
                .rules
                .iter()
                .position(|c| c.rule.id == issue.rule)
            else {
                continue;
            };
            if issue.resolved_at.is_some() {
                self.resolved.push(issue);
            } else {
                self.open.insert((index, issue.record.clone()), issue);
            }
        }
    }

    fn changed(&mut self, issue: &Issue) {
        if self.tracking {
            self.changed.push(issue.clone());
        }
    }

    /// Evaluates the rules about one record on an event applied to the hub: opens the issues
    /// it fails, refreshes those still failing and resolves those it now passes (all of the
    /// record's, when the event deletes it).
    pub fn apply(&mut self, event: &Envelope) {
        let kind = event.payload.kind();
        if !matches!(
            kind,
            EntityKind::Person
                | EntityKind::Property
                | EntityKind::Tenancy
                | EntityKind::Vulnerability
        ) {
            return;
        }
        let at = event
            .recorded_at
            .or(event.occurred_at)
            .unwrap_or(event.ingested_at);
        let system = event.source_ref.allocated_by.clone();
        // The payload's fields, read once for every rule about this kind of record.
        let values = if self
            .standard
            .rules
            .iter()
            .any(|compiled| compiled.entity == kind)
        {
            payload_fields(&event.payload)
        } else {
            serde_json::Map::new()
        };
        let records = self.records.entry((kind, system.clone())).or_default();
        let failures = if event.source.op == Op::Delete {
            records.remove(&event.source_ref.id);
            Vec::new()
        } else {
            records.insert(event.source_ref.id.clone());
            self.standard.failures(event, &values)
        };
        let mut failing = vec![None; self.standard.rules.len()];
        for (index, problem) in failures {
            failing[index] = Some(problem);
        }
        if self.standard.rules.iter().any(|compiled| {
            compiled.entity == kind && matches!(compiled.check, Check::NotPast { .. })
        }) {
            let date = |field: &str| {
                values
                    .get(field)
                    .and_then(Value::as_str)
                    .and_then(|text| text.parse::<NaiveDate>().ok())
            };
            for (index, compiled) in self.standard.rules.iter().enumerate() {
                if let Check::NotPast { field, unless } = &compiled.check
                    && compiled.entity == kind
                {
                    let key = (index, event.source_ref.clone());
                    match date(field)
                        .filter(|_| event.source.op != Op::Delete && compiled.applies_to(&system))
                    {
                        Some(due) => {
                            self.dated
                                .insert(key, (due, unless.as_deref().and_then(&date)));
                        }
                        None => {
                            self.dated.remove(&key);
                        }
                    }
                }
            }
        }
        for (index, compiled) in self.standard.rules.iter().enumerate() {
            if compiled.entity != kind || compiled.check.when_read() {
                continue;
            }
            let key = (index, event.source_ref.clone());
            match failing[index].take() {
                Some(problem) => {
                    let owner = self.standard.owner(&compiled.rule, &system);
                    let issue = self.open.entry(key).or_insert_with(|| Issue {
                        rule: compiled.rule.id.clone(),
                        dimension: compiled.rule.dimension,
                        severity: compiled.rule.severity,
                        owner,
                        system: system.clone(),
                        record: event.source_ref.clone(),
                        golden_id: None,
                        problem: problem.clone(),
                        fix: compiled.rule.fix.clone(),
                        first_seen: at,
                        last_seen: at,
                        resolved_at: None,
                    });
                    issue.problem = problem;
                    issue.last_seen = issue.last_seen.max(at);
                    if self.tracking {
                        self.changed.push(issue.clone());
                    }
                }
                None => {
                    if let Some(mut issue) = self.open.remove(&key) {
                        issue.resolved_at = Some(at.max(issue.last_seen));
                        if self.tracking {
                            self.changed.push(issue.clone());
                        }
                        self.resolved.push(issue);
                    }
                }
            }
        }
    }

    /// Evaluates the rules about golden records over `hub`, as of `at`: opens, refreshes and
    /// resolves their issues, and names the golden record of every open issue.
    pub fn reconcile(&mut self, hub: &Hub, at: DateTime<Utc>) {
        let mut failing: HashMap<(usize, Reference), (String, String)> = HashMap::new();
        let mut conflicts: HashMap<EntityKind, Vec<crate::Conflict>> = HashMap::new();
        for (index, compiled) in self.standard.rules.iter().enumerate() {
            if let Check::Agree(field) = &compiled.check {
                let entity = match compiled.entity {
                    EntityKind::Person => Entity::Person,
                    _ => Entity::Property,
                };
                let found = conflicts
                    .entry(compiled.entity)
                    .or_insert_with(|| hub.conflicts(entity));
                // The systems' order, then ids, picks the reference value.
                let rank = |reference: &Reference| {
                    let system = compiled
                        .rule
                        .systems
                        .iter()
                        .position(|system| *system == reference.allocated_by)
                        .unwrap_or(usize::MAX);
                    (
                        system,
                        reference.allocated_by.clone(),
                        reference.id.len(),
                        reference.id.clone(),
                    )
                };
                for conflict in found.iter().filter(|conflict| conflict.attribute == field) {
                    let mut values: Vec<&(Reference, String)> = conflict
                        .values
                        .iter()
                        .filter(|(reference, _)| compiled.applies_to(&reference.allocated_by))
                        .collect();
                    values.sort_by_key(|(reference, _)| rank(reference));
                    let Some((first, reference_value)) = values.first().map(|(r, v)| (r, v)) else {
                        continue;
                    };
                    for (record, value) in &values[1..] {
                        if value != reference_value {
                            let problem = format!(
                                "{field} differs from {}:{}'s",
                                first.allocated_by, first.id
                            );
                            failing.insert(
                                (index, record.clone()),
                                (conflict.golden_id.clone(), problem),
                            );
                        }
                    }
                }
                continue;
            }
            if !compiled.check.golden() {
                continue;
            }
            let golden: Vec<(String, Vec<Reference>)> = match compiled.entity {
                EntityKind::Person => hub
                    .golden_persons()
                    .into_iter()
                    .map(|g| (g.golden_id, g.sources))
                    .collect(),
                _ => hub
                    .golden_properties()
                    .into_iter()
                    .map(|g| (g.golden_id, g.sources))
                    .collect(),
            };
            for (golden_id, mut sources) in golden {
                sources.retain(|source| compiled.applies_to(&source.allocated_by));
                match &compiled.check {
                    Check::Unique => {
                        // Per system, every record but the first (by id) is a duplicate.
                        sources.sort_by(|a, b| {
                            (&a.allocated_by, a.id.len(), &a.id).cmp(&(
                                &b.allocated_by,
                                b.id.len(),
                                &b.id,
                            ))
                        });
                        for pair in sources.windows(2) {
                            if pair[0].allocated_by == pair[1].allocated_by {
                                let problem = format!(
                                    "a second {} record of golden record {golden_id} (first: {})",
                                    pair[1].allocated_by, pair[0].id
                                );
                                failing
                                    .insert((index, pair[1].clone()), (golden_id.clone(), problem));
                            }
                        }
                    }
                    Check::HasRecordFrom(system)
                        if !sources.iter().any(|source| &source.allocated_by == system) =>
                    {
                        // The issue is about the home as the first system holding it knows it.
                        if let Some(first) = sources
                            .iter()
                            .min_by(|a, b| (&a.allocated_by, &a.id).cmp(&(&b.allocated_by, &b.id)))
                        {
                            let problem = format!("no {system} record");
                            failing.insert((index, first.clone()), (golden_id.clone(), problem));
                        }
                    }
                    _ => {}
                }
            }
        }
        // What is due by a date that has passed.
        let today = at.date_naive();
        for ((index, record), (due, unless)) in &self.dated {
            if *due < today && unless.is_none_or(|ended| ended >= today) {
                let field = match &self.standard.rules[*index].check {
                    Check::NotPast { field, .. } => field.as_str(),
                    _ => continue,
                };
                failing.insert(
                    (*index, record.clone()),
                    (String::new(), format!("{field} has passed")),
                );
            }
        }
        // Resolve what no longer fails.
        let stale: Vec<(usize, Reference)> = self
            .open
            .keys()
            .filter(|(index, _)| self.standard.rules[*index].check.when_read())
            .filter(|key| !failing.contains_key(*key))
            .cloned()
            .collect();
        for key in stale {
            if let Some(mut issue) = self.open.remove(&key) {
                issue.resolved_at = Some(at);
                self.changed(&issue);
                self.resolved.push(issue);
            }
        }
        for ((index, record), (golden_id, problem)) in failing {
            let compiled = &self.standard.rules[index];
            let owner = self.standard.owner(&compiled.rule, &record.allocated_by);
            let system = compiled
                .rule
                .has_record_from
                .clone()
                .unwrap_or_else(|| record.allocated_by.clone());
            let issue = self
                .open
                .entry((index, record.clone()))
                .or_insert_with(|| Issue {
                    rule: compiled.rule.id.clone(),
                    dimension: compiled.rule.dimension,
                    severity: compiled.rule.severity,
                    owner,
                    system,
                    record,
                    golden_id: None,
                    problem: String::new(),
                    fix: compiled.rule.fix.clone(),
                    first_seen: at,
                    last_seen: at,
                    resolved_at: None,
                });
            // A rule about the day names no golden record: it is looked up below.
            let golden_id = (!golden_id.is_empty())
                .then_some(golden_id)
                .or(issue.golden_id.clone());
            let changed =
                issue.problem != problem || issue.golden_id != golden_id || issue.first_seen == at;
            issue.problem = problem;
            issue.golden_id = golden_id;
            issue.last_seen = at;
            if changed && self.tracking {
                self.changed.push(issue.clone());
            }
        }
        // The golden record of every other open issue, for whoever looks at it.
        for ((_, record), issue) in self.open.iter_mut() {
            if issue.golden_id.is_none() {
                let entity = match record_entity(issue, &self.standard) {
                    Some(entity) => entity,
                    None => continue,
                };
                issue.golden_id = hub
                    .golden_ids_of(record)
                    .into_iter()
                    .find(|(of, _)| *of == entity.as_str())
                    .map(|(_, golden_id)| golden_id.to_string());
            }
        }
    }

    /// The day of the latest issue seen (first seen, last seen or resolved).
    pub fn latest(&self) -> Option<NaiveDate> {
        self.open
            .values()
            .map(|issue| issue.last_seen)
            .chain(self.resolved.iter().filter_map(|issue| issue.resolved_at))
            .max()
            .map(|at| at.date_naive())
    }

    /// Forgets everything about erased records (their issues name them).
    pub fn forget(&mut self, records: &[Reference]) {
        self.open.retain(|(_, record), _| !records.contains(record));
        self.resolved
            .retain(|issue| !records.contains(&issue.record));
        for reference in records {
            for ((_, system), ids) in self.records.iter_mut() {
                if *system == reference.allocated_by {
                    ids.remove(&reference.id);
                }
            }
        }
    }

    /// The open issues, by rule then record.
    pub fn open(&self) -> Vec<&Issue> {
        let mut open: Vec<&Issue> = self.open.values().collect();
        open.sort_by(|a, b| (&a.rule, &a.record).cmp(&(&b.rule, &b.record)));
        open
    }

    pub fn resolved(&self) -> &[Issue] {
        &self.resolved
    }

    /// Open issues per rule id (every rule of the standard, zero included).
    pub fn open_per_rule(&self) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> = self
            .standard
            .rules()
            .map(|rule| (rule.id.clone(), 0))
            .collect();
        for issue in self.open.values() {
            *counts.entry(issue.rule.clone()).or_default() += 1;
        }
        counts
    }

    /// The records a rule is checked against, per system: its entity's records (or golden
    /// records, for a rule about golden records, under the system `golden`).
    fn checked(
        &self,
        index: usize,
        hub_golden: &HashMap<EntityKind, usize>,
    ) -> Vec<(String, usize)> {
        let compiled = &self.standard.rules[index];
        if compiled.check.golden() {
            return vec![(
                "golden".into(),
                hub_golden.get(&compiled.entity).copied().unwrap_or(0),
            )];
        }
        let mut checked: Vec<(String, usize)> = self
            .records
            .iter()
            .filter(|((kind, system), _)| *kind == compiled.entity && compiled.applies_to(system))
            .map(|((_, system), ids)| (system.clone(), ids.len()))
            .collect();
        checked.sort();
        checked
    }

    /// The weekly report for the ISO week holding `day` (Monday to Sunday, UTC), and the
    /// `weeks` before it for the trend.
    pub fn weekly(&self, hub: &Hub, day: NaiveDate, weeks: u32) -> Weekly {
        let week = day.iso_week();
        let monday = NaiveDate::from_isoywd_opt(week.year(), week.week(), chrono::Weekday::Mon)
            .expect("a Monday");
        let start = monday.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let end = start + chrono::Duration::days(7);
        let golden: HashMap<EntityKind, usize> = [
            (EntityKind::Person, hub.counts().golden_persons),
            (EntityKind::Property, hub.counts().golden_properties),
        ]
        .into();
        let all = || self.open.values().chain(&self.resolved);
        let open_at = |at: DateTime<Utc>| {
            let mut by_dimension: BTreeMap<Dimension, usize> = BTreeMap::new();
            for issue in all()
                .filter(|issue| issue.first_seen < at && issue.resolved_at.is_none_or(|r| r >= at))
            {
                *by_dimension.entry(issue.dimension).or_default() += 1;
            }
            by_dimension
        };
        let open: Vec<Issue> = self
            .open()
            .into_iter()
            .filter(|issue| issue.first_seen < end)
            .cloned()
            .collect();
        let mut owners: BTreeMap<String, Vec<Issue>> = BTreeMap::new();
        for issue in &open {
            owners
                .entry(issue.owner.clone())
                .or_default()
                .push(issue.clone());
        }
        for issues in owners.values_mut() {
            issues.sort_by(|a, b| {
                (b.severity, &a.rule, &a.record).cmp(&(a.severity, &b.rule, &b.record))
            });
        }
        let mut scores = Vec::new();
        for (index, compiled) in self.standard.rules.iter().enumerate() {
            for (system, checked) in self.checked(index, &golden) {
                let failing = open
                    .iter()
                    .filter(|issue| {
                        issue.rule == compiled.rule.id
                            && (system == "golden" || issue.record.allocated_by == system)
                    })
                    .count();
                scores.push(Score {
                    rule: compiled.rule.id.clone(),
                    description: compiled.rule.description.clone(),
                    entity: compiled.entity.as_str().to_string(),
                    fields: [
                        &compiled.rule.present,
                        &compiled.rule.any_present,
                        &compiled.rule.valid,
                    ]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
                    dimension: compiled.rule.dimension,
                    severity: compiled.rule.severity,
                    system,
                    checked,
                    failing,
                    score: if checked == 0 {
                        1.0
                    } else {
                        1.0 - failing.min(checked) as f64 / checked as f64
                    },
                });
            }
        }
        let mut costliest: BTreeMap<String, usize> = BTreeMap::new();
        for score in &scores {
            // A rule about golden records has no field: it counts under its own id.
            let keys: Vec<String> = if score.fields.is_empty() {
                vec![score.rule.clone()]
            } else {
                score
                    .fields
                    .iter()
                    .map(|field| format!("{}.{field}", score.entity))
                    .collect()
            };
            for key in keys {
                *costliest.entry(key).or_default() += score.failing;
            }
        }
        let mut costliest: Vec<(String, usize)> =
            costliest.into_iter().filter(|(_, n)| *n > 0).collect();
        costliest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let trend = (0..=weeks)
            .rev()
            .map(|back| {
                let week_end = end - chrono::Duration::days(7 * i64::from(back));
                let monday = (week_end - chrono::Duration::days(7)).date_naive();
                let iso = monday.iso_week();
                let by_dimension = open_at(week_end);
                TrendPoint {
                    week: format!("{}-W{:02}", iso.year(), iso.week()),
                    open: by_dimension.values().sum(),
                    by_dimension,
                }
            })
            .collect();
        let mut dimensions: BTreeMap<(Dimension, String), (usize, usize)> = BTreeMap::new();
        for score in &scores {
            let totals = dimensions
                .entry((score.dimension, score.system.clone()))
                .or_default();
            totals.0 += score.checked;
            totals.1 += score.failing.min(score.checked);
        }
        let dimensions = dimensions
            .into_iter()
            .map(|((dimension, system), (checked, failing))| DimensionScore {
                dimension,
                system,
                checked,
                failing,
                score: if checked == 0 {
                    1.0
                } else {
                    1.0 - failing as f64 / checked as f64
                },
            })
            .collect();
        Weekly {
            week: format!("{}-W{:02}", week.year(), week.week()),
            from: monday,
            to: monday + chrono::Duration::days(6),
            open_issues: open.len(),
            new_this_week: all()
                .filter(|issue| issue.first_seen >= start && issue.first_seen < end)
                .count(),
            resolved_this_week: self
                .resolved
                .iter()
                .filter(|issue| issue.resolved_at.is_some_and(|at| at >= start && at < end))
                .count(),
            owners: owners
                .into_iter()
                .map(|(owner, issues)| OwnerIssues { owner, issues })
                .collect(),
            scores,
            dimensions,
            costliest,
            trend,
        }
    }
}

/// The entity a per-record issue is about (for its golden id).
fn record_entity(issue: &Issue, standard: &Standard) -> Option<Entity> {
    let compiled = standard.rules.iter().find(|c| c.rule.id == issue.rule)?;
    match compiled.entity {
        EntityKind::Person => Some(Entity::Person),
        EntityKind::Property => Some(Entity::Property),
        _ => None,
    }
}

/// One rule's score in one system: the share of its records that pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub rule: String,
    pub description: String,
    pub entity: String,
    pub fields: Vec<String>,
    pub dimension: Dimension,
    pub severity: Severity,
    /// The system whose records were checked (`golden` for a rule about golden records).
    pub system: String,
    pub checked: usize,
    pub failing: usize,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwnerIssues {
    pub owner: String,
    pub issues: Vec<Issue>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    pub week: String,
    /// Issues open at the end of the week.
    pub open: usize,
    /// The same, per dimension.
    pub by_dimension: BTreeMap<Dimension, usize>,
}

/// A dimension's score in one system: the share of checks its records pass, over its rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DimensionScore {
    pub dimension: Dimension,
    /// The system (`golden` for the rules about golden records).
    pub system: String,
    pub checked: usize,
    pub failing: usize,
    pub score: f64,
}

/// The weekly data quality report: per owner the open issues to act on, what was new and
/// resolved this week, scores per rule and system, the fields that cost most, the trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Weekly {
    /// ISO week, `2026-W49`.
    pub week: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub open_issues: usize,
    pub new_this_week: usize,
    pub resolved_this_week: usize,
    pub owners: Vec<OwnerIssues>,
    pub scores: Vec<Score>,
    /// Per dimension and system, over their rules.
    pub dimensions: Vec<DimensionScore>,
    /// `entity.field` and the open issues on it, most first.
    pub costliest: Vec<(String, usize)>,
    pub trend: Vec<TrendPoint>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MdmConfig;
    use crate::testing::{event, person};
    use pipeline::entity::{Person, Property};

    fn register() -> Register {
        Register::new(Standard::from_config(&QualityConfig::default()).unwrap())
    }

    #[test]
    fn the_default_standard_is_valid_and_a_rule_names_exactly_one_check() {
        assert!(Standard::from_config(&QualityConfig::default()).is_ok());
        let config: QualityConfig = toml::from_str(
            r#"
            [[rules]]
            id = "bad"
            description = "two checks"
            entity = "person"
            dimension = "completeness"
            fix = "-"
            present = ["date_of_birth"]
            valid = ["nino"]
            [[rules]]
            id = "person-contact"
            description = "a second rule of that id"
            entity = "person"
            dimension = "completeness"
            fix = "-"
            present = ["shoe_size"]
            "#,
        )
        .unwrap();
        let problems = Standard::from_config(&config).unwrap_err();
        assert!(
            problems.contains("`bad`: name exactly one check"),
            "{problems}"
        );
        assert!(
            problems.contains("`person-contact`: the id is used twice"),
            "{problems}"
        );
        assert!(
            problems.contains("`shoe_size` is not a person field"),
            "{problems}"
        );
    }

    #[test]
    fn a_failing_record_opens_an_issue_and_a_corrected_event_resolves_it() {
        let mut register = register();
        let mut missing = event(
            "crm",
            "C1",
            Payload::Person(Person {
                given_name: Some("Ann".into()),
                nino: Some("QQ123456C".into()),
                phone: Some("07700900123".into()),
                ..Person::default()
            }),
        );
        register.apply(&missing);
        let open = register.open_per_rule();
        assert_eq!(open["person-date-of-birth"], 1);
        assert_eq!(open["person-nino-valid"], 1);
        assert_eq!(open["tenant-nino"], 0, "an HMS rule: not for the CRM");
        let issue = register.open()[0].clone();
        assert!(
            !issue.problem.contains("QQ123456C"),
            "no values: {}",
            issue.problem
        );
        // The CRM is corrected: a later event with the date of birth and no placeholder.
        let first_seen = issue.first_seen;
        missing.recorded_at = Some(first_seen + chrono::Duration::days(3));
        if let Payload::Person(person) = &mut missing.payload {
            person.date_of_birth = "1961-03-11".parse().ok();
            person.nino = None;
        }
        register.apply(&missing);
        assert!(register.open().is_empty(), "{:?}", register.open());
        assert_eq!(register.resolved().len(), 2);
        assert!(register.resolved().iter().all(|issue| {
            issue.resolved_at == Some(first_seen + chrono::Duration::days(3))
                && issue.first_seen == first_seen
        }));
    }

    #[test]
    fn golden_record_rules_find_duplicates_within_a_system_and_homes_without_an_asset_record() {
        let mut hub = Hub::new(MdmConfig::default());
        let mut register = register();
        let margaret = || person("Margaret", "OBrien", "1961-03-11", "07700900123");
        for (system, id) in [("hms", "T1"), ("hms", "T2"), ("crm", "C1")] {
            let event = event(system, id, margaret());
            hub.apply(&event);
            register.apply(&event);
        }
        let home = |uprn: &str| {
            Payload::Property(Property {
                uprn: Some(uprn.into()),
                paon: Some("14".into()),
                street: Some("High Street".into()),
                postcode: Some("LS1 4AB".into()),
                ..Property::default()
            })
        };
        for (system, id, uprn) in [
            ("hms", "P1", "100"),
            ("asset", "A1", "100"),
            ("hms", "P2", "200"),
        ] {
            let event = event(system, id, home(uprn));
            hub.apply(&event);
            register.apply(&event);
        }
        register.reconcile(&hub, Utc::now());
        let open = register.open_per_rule();
        assert_eq!(open["person-single-hms-record"], 1);
        assert_eq!(open["property-asset-record"], 1);
        let duplicate = register
            .open()
            .into_iter()
            .find(|issue| issue.rule == "person-single-hms-record")
            .unwrap()
            .clone();
        assert_eq!(
            duplicate.record.id, "T2",
            "the second record is the duplicate"
        );
        assert!(duplicate.golden_id.is_some());
        let asset = register
            .open()
            .into_iter()
            .find(|issue| issue.rule == "property-asset-record")
            .unwrap()
            .clone();
        assert_eq!(
            (asset.record.id.as_str(), asset.system.as_str()),
            ("P2", "asset")
        );
        assert_eq!(asset.owner, "Asset management");
        // The asset record arrives: resolved at the next reconciliation.
        let event = event("asset", "A2", home("200"));
        hub.apply(&event);
        register.apply(&event);
        register.reconcile(&hub, Utc::now());
        assert_eq!(register.open_per_rule()["property-asset-record"], 0);
    }

    #[test]
    fn the_weekly_report_counts_new_and_resolved_issues_and_scores_each_system() {
        let mut register = register();
        let hub = Hub::new(MdmConfig::default());
        let monday = "2026-11-30T09:00:00Z".parse::<DateTime<Utc>>().unwrap();
        for (id, days, dob) in [
            ("C1", 0, None),
            ("C2", 1, Some("1970-01-02")),
            ("C3", -7, None),
        ] {
            let mut event = event(
                "crm",
                id,
                Payload::Person(Person {
                    phone: Some("07700900123".into()),
                    date_of_birth: dob.and_then(|d| d.parse().ok()),
                    ..Person::default()
                }),
            );
            event.recorded_at = Some(monday + chrono::Duration::days(days));
            register.apply(&event);
        }
        let weekly = register.weekly(&hub, "2026-12-02".parse().unwrap(), 2);
        assert_eq!(weekly.week, "2026-W49");
        assert_eq!(weekly.open_issues, 2, "C1 and C3 have no date of birth");
        assert_eq!(
            weekly.new_this_week, 1,
            "C3's issue is from the week before"
        );
        let dob = weekly
            .scores
            .iter()
            .find(|score| score.rule == "person-date-of-birth" && score.system == "crm")
            .unwrap();
        assert_eq!((dob.checked, dob.failing), (3, 2));
        assert_eq!(weekly.trend.len(), 3);
        assert_eq!(weekly.trend.last().unwrap().open, 2);
        assert_eq!(
            weekly.trend[1].open, 1,
            "C3 alone at the end of the week before"
        );
        assert_eq!(weekly.costliest[0], ("person.date_of_birth".to_string(), 2));
    }
}
