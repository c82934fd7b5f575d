//! `[mdm]`: matching and survivorship settings.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::matcher::Thresholds;

/// How a golden attribute picks its value among a cluster's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurvivorshipRule {
    /// The most trusted source with a value (`source_priority`), then the most recently
    /// recorded (the event's `recorded_at`), then the lowest source reference.
    #[default]
    Trust,
    /// The most recently recorded value (the event's `recorded_at`), whatever its source.
    MostRecent,
    /// The longest value (a full middle name over an initial), then trust.
    MostComplete,
}

/// Golden attributes a survivorship rule can name.
pub const ATTRIBUTES: &[&str] = &[
    "title",
    "given_name",
    "middle_name",
    "family_name",
    "date_of_birth",
    "nino",
    "phone",
    "email",
    "postcode",
    "uprn",
    "parent_uprn",
    "saon",
    "paon",
    "street",
    "locality",
    "town",
    "property_type",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MdmConfig {
    /// Source systems in order of trust: a golden attribute comes from the most trusted
    /// source that has a value (then the most recently recorded), and a golden id from the
    /// most trusted record of its cluster. Unlisted systems rank last.
    pub source_priority: Vec<String>,
    /// Match probabilities: `link` and above merge, `review` up to `link` go to a steward.
    pub thresholds: Thresholds,
    /// A person model trained by `goldthread train` (a path relative to the working
    /// directory); unset: the built-in model.
    pub person_model: Option<std::path::PathBuf>,
    /// Per-attribute survivorship rule; attributes not listed use `trust`.
    pub survivorship: BTreeMap<String, SurvivorshipRule>,
    /// Person blocking rules, each a list of person fields that must agree exactly for two
    /// records to be compared; unset: the model's own rules. Applies to a trained model too.
    pub blocking: Option<Vec<Vec<String>>>,
    /// The person model `train`, `link` and `eval` train (comparisons, blocking, training
    /// rules, requirements); a part left out is derived from the mapped person fields.
    pub person: Option<crate::person::PersonModelConfig>,
}

impl Default for MdmConfig {
    fn default() -> Self {
        MdmConfig {
            source_priority: vec!["hms".into(), "asset".into(), "crm".into()],
            thresholds: Thresholds::default(),
            person_model: None,
            survivorship: BTreeMap::new(),
            blocking: None,
            person: None,
        }
    }
}

impl MdmConfig {
    /// The rank of a system (lower is more trusted).
    pub fn rank(&self, system: &str) -> usize {
        self.source_priority
            .iter()
            .position(|name| name == system)
            .unwrap_or(self.source_priority.len())
    }

    /// Every problem with the section, as (key, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let Thresholds { link, review } = self.thresholds;
        if !(0.0 < review && review <= link && link < 1.0) {
            problems.push((
                "mdm.thresholds".into(),
                format!("need 0 < review ({review}) <= link ({link}) < 1"),
            ));
        }
        for attribute in self.survivorship.keys() {
            if !ATTRIBUTES.contains(&attribute.as_str()) {
                problems.push((
                    format!("mdm.survivorship.{attribute}"),
                    format!("unknown attribute; known: {}", ATTRIBUTES.join(", ")),
                ));
            }
        }
        if let Some(rules) = &self.blocking {
            if rules.is_empty() {
                problems.push(("mdm.blocking".into(), "needs at least one rule".into()));
            }
            for (index, rule) in rules.iter().enumerate() {
                if rule.is_empty() {
                    problems.push((format!("mdm.blocking[{index}]"), "an empty rule".into()));
                }
                for field in rule {
                    if !crate::person::is_field(field) {
                        problems.push((
                            format!("mdm.blocking[{index}]"),
                            format!(
                                "unknown person field `{field}`; known: {}, id:<identifier>",
                                crate::person::FIELDS.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(person) = &self.person {
            problems.extend(person.problems());
        }
        problems
    }

    /// The spec a person model is trained with: `spec` (`[mdm.person]` over the mapped
    /// fields) with `mdm.blocking`'s rules, if set, and the fields they block on.
    pub fn training_spec(&self, mut spec: crate::model::ModelSpec) -> crate::model::ModelSpec {
        if let Some(rules) = self.blocking_rules() {
            for field in rules.iter().flat_map(|rule| &rule.fields) {
                if !spec.fields.contains(field) {
                    spec.fields.push(field.clone());
                }
            }
            spec.blocking = rules;
        }
        spec
    }

    /// The configured blocking rules, if any.
    pub fn blocking_rules(&self) -> Option<Vec<crate::model::BlockingRule>> {
        self.blocking.as_ref().map(|rules| {
            rules
                .iter()
                .map(|rule| {
                    let fields: Vec<&str> = rule.iter().map(String::as_str).collect();
                    crate::model::BlockingRule::on(&fields)
                })
                .collect()
        })
    }
}
