//! Fellegi-Sunter matching (the Splink method): blocking rules give candidate pairs, each
//! comparison puts a pair on a level, and the match weight is the prior log-odds plus
//! `log2(m/u)` per comparison, with term-frequency adjustment for exact matches on names.
//! `u` comes from random pairs, `m` from expectation-maximisation on blocked pairs (per
//! blocking rule, for the comparisons that rule does not block on). No IO: `save`/`load`
//! work on strings.
//!
//! Here: the model, its spec and scoring; `blocking.rs`: candidate pairs per rule;
//! `train.rs`: training without labels.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::compare::Comparator;

mod blocking;
mod train;

pub use blocking::*;
pub use train::TrainOptions;

/// A record prepared for matching: normalised values, one per schema field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prepared {
    pub values: Vec<Option<String>>,
}

/// One comparison of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonSpec {
    pub name: String,
    /// The schema field compared.
    pub field: String,
    pub comparator: Comparator,
    /// Adjust exact-match weights by how common the value is (rare names weigh more).
    #[serde(default)]
    pub term_frequency: bool,
    /// Fields a composite field is made of (`address` of `street`, `postcode`...): a rule
    /// blocking on any of them says nothing new about this comparison either.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

impl ComparisonSpec {
    /// A comparison named after the field it compares.
    pub fn on(field: &str, comparator: Comparator, term_frequency: bool) -> ComparisonSpec {
        ComparisonSpec {
            name: field.to_string(),
            field: field.to_string(),
            comparator,
            term_frequency,
            depends_on: Vec::new(),
        }
    }
}

/// A blocking rule: records agreeing exactly on all these fields become candidate pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockingRule {
    pub name: String,
    pub fields: Vec<String>,
}

impl BlockingRule {
    /// A rule on these fields, named after them (`surname+date_of_birth`).
    pub fn on(fields: &[&str]) -> BlockingRule {
        BlockingRule {
            name: fields.join("+"),
            fields: fields.iter().map(|field| field.to_string()).collect(),
        }
    }
}

/// The shape of a model: fields, comparisons, blocking rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub fields: Vec<String>,
    pub comparisons: Vec<ComparisonSpec>,
    /// Rules that make the candidate pairs to score.
    pub blocking: Vec<BlockingRule>,
    /// Rules whose pairs train m by EM (empty: the `blocking` rules). Train on rules whose
    /// pairs are mostly matches or clear non-matches; a rule that gathers look-alikes of
    /// another kind (a household's shared phone) teaches EM the wrong class.
    #[serde(default)]
    pub training: Vec<BlockingRule>,
    /// Hard rules a pair must meet to link.
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    /// Rules whose exact agreement all but proves a match (Splink's deterministic rules):
    /// the prior is the pairs they find, divided by their recall among matches (from m),
    /// over all possible pairs. Empty: the prior is fitted by EM on the candidate pairs.
    #[serde(default)]
    pub prior: Vec<BlockingRule>,
}

impl ModelSpec {
    fn field_index(&self, name: &str) -> usize {
        self.fields
            .iter()
            .position(|field| field == name)
            .unwrap_or_else(|| panic!("model spec: unknown field `{name}`"))
    }
}

/// A trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub version: String,
    pub spec: ModelSpec,
    /// Prior probability that a candidate pair is a match.
    pub lambda: f64,
    /// `m[comparison][level]`: P(level | match).
    pub m: Vec<Vec<f64>>,
    /// `u[comparison][level]`: P(level | non-match).
    pub u: Vec<Vec<f64>>,
    /// What the model was trained on, for people reading a saved model.
    #[serde(default)]
    pub trained_on: String,
    /// The pairs the prior rules found and their estimated recall among matches.
    #[serde(default)]
    pub prior_found: (usize, f64),
    /// Parameters training had to hold at a bound, and other things a reader of the model
    /// should check (printed by `train`, `link` and `eval`).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Term frequencies of values, per comparison with `term_frequency`, from the training
    /// data. Saved with the model so a streaming matcher scores every pair the same way
    /// whatever has arrived so far.
    #[serde(default)]
    pub term_frequencies: Vec<BTreeMap<String, f64>>,
    /// The schema index of each comparison's field (derived from `spec`).
    #[serde(skip)]
    field_of: Vec<usize>,
    /// Each requirement as (comparison index, lowest acceptable level), resolved from `spec`
    /// once so scoring does not look names up.
    #[serde(skip)]
    required_levels: Vec<(usize, u8)>,
    /// The lowest acceptable level per comparison (0: no requirement).
    #[serde(skip)]
    min_level: Vec<u8>,
    /// `log2(m/u)` per comparison and level (0 where not finite), derived from m and u.
    #[serde(skip)]
    level_weights: Vec<Vec<f64>>,
    /// The term-frequency adjustment of an exact match on each value, per comparison,
    /// derived from `term_frequencies` for hashed lookups while scoring.
    #[serde(skip)]
    tf_adjustments: Vec<rustc_hash::FxHashMap<String, f64>>,
}

/// One comparison's part in a pair's weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldWeight {
    pub comparison: String,
    pub level: &'static str,
    /// `log2(m/u)` (0 when a value is missing), with the term-frequency adjustment added.
    pub weight: f64,
    pub term_frequency_adjustment: f64,
}

/// A scored pair with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    pub weight: f64,
    pub probability: f64,
    pub fields: Vec<FieldWeight>,
    pub prior_weight: f64,
    pub model_version: String,
    /// The requirement that forbids this pair from linking, whatever its weight.
    pub vetoed_by: Option<String>,
    /// The first blocking rule that made the pair a candidate (set by the matcher).
    pub blocking_rule: Option<String>,
}

impl Scored {
    /// The score in one line: the blocking rule, the prior's weight, then each comparison's
    /// level and weight, and the requirement that vetoed it.
    pub fn explain(&self) -> String {
        let mut parts: Vec<String> = self
            .blocking_rule
            .iter()
            .map(|rule| format!("blocked on {rule}"))
            .collect();
        parts.push(format!("prior ({:+.2})", self.prior_weight));
        parts.extend(self.fields.iter().map(|field| {
            format!(
                "{}={} ({:+.2})",
                field.comparison, field.level, field.weight
            )
        }));
        if let Some(requirement) = &self.vetoed_by {
            parts.push(format!("vetoed: {requirement}"));
        }
        parts.join("; ")
    }
}

/// A hard rule: when both values are present, the comparison must reach `min_level` for the
/// pair to link (DOMAIN.md §3: never merge people without given-name agreement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub comparison: String,
    /// The lowest acceptable level, by name (`jaro_winkler_low`).
    pub min_level: String,
    /// Kept by training only where the data supports it: when more than
    /// [`CONDITIONAL_REQUIREMENT_MISS`] of the pairs the prior rules find on other fields fall
    /// below the level (names swapped or replaced in a messy extract), the requirement would
    /// veto true pairs and is dropped, with a warning. A configured requirement always holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub conditional: bool,
}

/// The share of near-certain matches below a conditional requirement's level above which
/// training drops the requirement.
pub const CONDITIONAL_REQUIREMENT_MISS: f64 = 0.01;

/// Candidate pairs with the first blocking rule that produced each.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    pub pairs: Vec<(usize, usize, usize)>,
    /// Pairs each rule produced (before removing pairs an earlier rule already found).
    pub per_rule: Vec<(String, usize)>,
    /// Blocks skipped for being larger than the cap, per rule.
    pub skipped_blocks: Vec<(String, usize)>,
}

/// Which records may pair: all with all (deduplication) or left with right (linkage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    Dedupe,
    /// Records `0..left` against `left..`.
    Link {
        left: usize,
    },
}

impl Pairing {
    fn allows(self, a: usize, b: usize) -> bool {
        match self {
            Pairing::Dedupe => a != b,
            Pairing::Link { left } => (a < left) != (b < left),
        }
    }
}

/// A pair's comparison levels, one per comparison (`None`: a value missing).
type Gamma = Vec<Option<u8>>;

impl Model {
    /// Resolves each requirement's comparison and level names; an unknown name is a bug in
    /// the spec, like an unknown field.
    fn required_levels(spec: &ModelSpec) -> Vec<(usize, u8)> {
        spec.requirements
            .iter()
            .map(|requirement| {
                let (index, comparison) = spec
                    .comparisons
                    .iter()
                    .enumerate()
                    .find(|(_, comparison)| comparison.name == requirement.comparison)
                    .unwrap_or_else(|| {
                        panic!(
                            "model spec: requirement on unknown comparison `{}`",
                            requirement.comparison
                        )
                    });
                let level = comparison
                    .comparator
                    .levels()
                    .iter()
                    .position(|level| *level == requirement.min_level)
                    .unwrap_or_else(|| {
                        panic!(
                            "model spec: `{}` has no level `{}`",
                            requirement.comparison, requirement.min_level
                        )
                    });
                (index, level as u8)
            })
            .collect()
    }

    fn min_levels(spec: &ModelSpec) -> Vec<u8> {
        let mut levels = vec![0; spec.comparisons.len()];
        for (comparison, level) in Model::required_levels(spec) {
            levels[comparison] = levels[comparison].max(level);
        }
        levels
    }

    fn comparison_fields(spec: &ModelSpec) -> Vec<usize> {
        spec.comparisons
            .iter()
            .map(|c| spec.field_index(&c.field))
            .collect()
    }

    /// The comparison levels of a pair.
    pub fn gamma(&self, a: &Prepared, b: &Prepared) -> Gamma {
        self.spec
            .comparisons
            .iter()
            .zip(&self.field_of)
            .map(
                |(comparison, &field)| match (&a.values[field], &b.values[field]) {
                    (Some(x), Some(y)) => Some(comparison.comparator.level(x, y)),
                    _ => None,
                },
            )
            .collect()
    }

    /// Recomputes the term-frequency tables from the data the model matches.
    /// Rebuilds what scoring derives from m, u and the term frequencies.
    fn derive(&mut self) {
        self.level_weights = self
            .m
            .iter()
            .zip(&self.u)
            .map(|(m, u)| {
                m.iter()
                    .zip(u)
                    .map(|(m, u)| {
                        Some((m / u).log2())
                            .filter(|w| w.is_finite())
                            .unwrap_or(0.0)
                    })
                    .collect()
            })
            .collect();
        self.tf_adjustments = self
            .spec
            .comparisons
            .iter()
            .enumerate()
            .map(|(comparison, spec)| {
                let top = self.u[comparison].len() - 1;
                match self.term_frequencies.get(comparison) {
                    Some(frequencies) if spec.term_frequency => frequencies
                        .iter()
                        .map(|(value, frequency)| {
                            let adjustment = (self.u[comparison][top] / frequency.max(1e-9)).log2();
                            // An address is shared by a household and, in a messy extract,
                            // by the duplicates being sought, which count in its frequency
                            // too: a shared address (a hostel) weighs less, and a rare one
                            // no more than any exact address.
                            let adjustment = if spec.comparator == Comparator::Address {
                                adjustment.min(0.0)
                            } else {
                                adjustment
                            };
                            (value.clone(), adjustment)
                        })
                        .filter(|(_, adjustment)| adjustment.is_finite())
                        .collect(),
                    _ => rustc_hash::FxHashMap::default(),
                }
            })
            .collect();
    }

    pub fn set_term_frequencies(&mut self, records: &[Prepared]) {
        let comparisons: Vec<(&ComparisonSpec, usize)> = self
            .spec
            .comparisons
            .iter()
            .zip(self.field_of.iter().copied())
            .collect();
        let term_frequencies = crate::parallel::map(&comparisons, |&(comparison, field)| {
            if !comparison.term_frequency {
                return BTreeMap::new();
            }
            let mut counts: HashMap<&str, usize> = HashMap::new();
            let mut total = 0usize;
            for value in records.iter().filter_map(|r| r.values[field].as_deref()) {
                *counts.entry(value).or_default() += 1;
                total += 1;
            }
            counts
                .into_iter()
                .map(|(value, count)| (value.to_owned(), count as f64 / total as f64))
                .collect()
        });
        self.term_frequencies = term_frequencies;
        self.derive();
    }

    /// The prior weight: log2 of the prior odds.
    pub fn prior_weight(&self) -> f64 {
        (self.lambda / (1.0 - self.lambda)).log2()
    }

    /// The match weight of a pair and whether a requirement vetoes it: [`Model::score`]
    /// without the explanation and without allocating, for the streaming matcher.
    pub fn weigh(&self, a: &Prepared, b: &Prepared) -> (f64, bool) {
        let mut weight = self.prior_weight();
        let mut vetoed = false;
        for (comparison, spec) in self.spec.comparisons.iter().enumerate() {
            let field = self.field_of[comparison];
            let (Some(x), Some(y)) = (a.values[field].as_deref(), b.values[field].as_deref())
            else {
                continue;
            };
            let level = spec.comparator.level(x, y);
            vetoed |= level < self.min_level[comparison];
            weight += self.level_weights[comparison][level as usize];
            if level as usize == self.level_weights[comparison].len() - 1
                && let Some(adjustment) =
                    self.tf_adjustments.get(comparison).and_then(|tf| tf.get(x))
            {
                weight += adjustment;
            }
        }
        (weight, vetoed)
    }

    /// Whether a requirement forbids this pair from linking.
    pub fn vetoes(&self, a: &Prepared, b: &Prepared) -> bool {
        self.required_levels.iter().any(|&(comparison, minimum)| {
            let field = self.field_of[comparison];
            match (a.values[field].as_deref(), b.values[field].as_deref()) {
                (Some(x), Some(y)) => {
                    self.spec.comparisons[comparison].comparator.level(x, y) < minimum
                }
                _ => false,
            }
        })
    }

    /// Scores a pair and explains the score.
    pub fn score(&self, a: &Prepared, b: &Prepared) -> Scored {
        let gamma = self.gamma(a, b);
        // A missing value is not a disagreement: only present values can veto.
        let vetoed = self
            .required_levels
            .iter()
            .position(|&(comparison, minimum)| {
                gamma[comparison].is_some_and(|level| level < minimum)
            });
        let vetoed_by = vetoed.map(|index| {
            let requirement = &self.spec.requirements[index];
            format!("{} below {}", requirement.comparison, requirement.min_level)
        });
        let fields_index = &self.field_of;
        let mut weight = self.prior_weight();
        let mut fields = Vec::with_capacity(gamma.len());
        for (comparison, level) in gamma.into_iter().enumerate() {
            let spec = &self.spec.comparisons[comparison];
            let (level_name, mut field_weight, mut adjustment) = match level {
                None => ("null", 0.0, 0.0),
                Some(level) => {
                    let level = level as usize;
                    (
                        spec.comparator.levels()[level],
                        (self.m[comparison][level] / self.u[comparison][level]).log2(),
                        0.0,
                    )
                }
            };
            let top = spec.comparator.levels().len() - 1;
            if spec.term_frequency && level.map(usize::from) == Some(top) {
                let value = a.values[fields_index[comparison]]
                    .as_deref()
                    .unwrap_or_default();
                if let Some(found) = self
                    .tf_adjustments
                    .get(comparison)
                    .and_then(|tf| tf.get(value))
                {
                    adjustment = *found;
                    field_weight += adjustment;
                }
            }
            if !field_weight.is_finite() {
                field_weight = 0.0;
                adjustment = 0.0;
            }
            weight += field_weight;
            fields.push(FieldWeight {
                comparison: spec.name.clone(),
                level: level_name,
                weight: field_weight,
                term_frequency_adjustment: adjustment,
            });
        }
        Scored {
            probability: if vetoed_by.is_some() {
                0.0
            } else {
                probability(weight)
            },
            weight,
            fields,
            prior_weight: self.prior_weight(),
            model_version: self.version.clone(),
            vetoed_by,
            blocking_rule: None,
        }
    }

    /// A short fingerprint of the parameters, recorded with every decision.
    fn fingerprint(&self) -> String {
        let text =
            serde_json::to_string(&(&self.spec, self.lambda, &self.m, &self.u)).unwrap_or_default();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in text.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("fs-{hash:016x}")
    }

    pub fn save(&self) -> String {
        serde_json::to_string_pretty(self).expect("a model serialises")
    }

    /// Loads a saved model; term frequencies must then be rebuilt from the data.
    pub fn load(text: &str) -> Result<Model, serde_json::Error> {
        let mut model: Model = serde_json::from_str(text)?;
        model.field_of = Model::comparison_fields(&model.spec);
        model.required_levels = Model::required_levels(&model.spec);
        model.min_level = Model::min_levels(&model.spec);
        model.derive();
        Ok(model)
    }

    /// The m and u table, for people: comparison, level, m, u, weight.
    pub fn parameters(&self) -> Vec<(String, &'static str, f64, f64, f64)> {
        let mut rows = Vec::new();
        for (index, spec) in self.spec.comparisons.iter().enumerate() {
            for (level, name) in spec.comparator.levels().iter().enumerate() {
                let (m, u) = (self.m[index][level], self.u[index][level]);
                rows.push((spec.name.clone(), *name, m, u, (m / u).log2()));
            }
        }
        rows
    }
}

/// Match probability of a weight (log2 odds).
pub fn probability(weight: f64) -> f64 {
    let odds = weight.exp2();
    if odds.is_infinite() {
        1.0
    } else {
        odds / (1.0 + odds)
    }
}

/// Pairwise precision, recall and F1 of predicted links against true links.
pub fn pairwise_scores(
    predicted: &std::collections::HashSet<(usize, usize)>,
    truth: &std::collections::HashSet<(usize, usize)>,
) -> (f64, f64, f64) {
    let true_positives = predicted.intersection(truth).count() as f64;
    let precision = if predicted.is_empty() {
        1.0
    } else {
        true_positives / predicted.len() as f64
    };
    let recall = if truth.is_empty() {
        1.0
    } else {
        true_positives / truth.len() as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    (precision, recall, f1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ModelSpec {
        ModelSpec {
            fields: vec!["given".into(), "family".into(), "dob".into()],
            comparisons: vec![
                ComparisonSpec {
                    name: "given".into(),
                    field: "given".into(),
                    comparator: Comparator::GivenName {
                        high: 0.92,
                        low: 0.8,
                    },
                    term_frequency: true,
                    depends_on: Vec::new(),
                },
                ComparisonSpec {
                    name: "family".into(),
                    field: "family".into(),
                    comparator: Comparator::Text {
                        high: 0.92,
                        low: 0.8,
                    },
                    term_frequency: true,
                    depends_on: Vec::new(),
                },
                ComparisonSpec {
                    name: "dob".into(),
                    field: "dob".into(),
                    comparator: Comparator::Date,
                    term_frequency: false,
                    depends_on: Vec::new(),
                },
            ],
            blocking: vec![
                BlockingRule {
                    name: "dob".into(),
                    fields: vec!["dob".into()],
                },
                BlockingRule {
                    name: "family".into(),
                    fields: vec!["family".into()],
                },
            ],
            training: Vec::new(),
            requirements: Vec::new(),
            prior: Vec::new(),
        }
    }

    fn record(given: &str, family: &str, dob: &str) -> Prepared {
        Prepared {
            values: [given, family, dob]
                .iter()
                .map(|v| (!v.is_empty()).then(|| v.to_string()))
                .collect(),
        }
    }

    /// People with a typo'd duplicate each: training finds that agreement means a match.
    fn population() -> Vec<Prepared> {
        let given = [
            "ann", "bob", "cara", "dev", "eli", "fay", "gus", "hal", "ivy", "jon", "kai", "lou",
        ];
        let family = [
            "smith", "jones", "patel", "okafor", "nowak", "brown", "khan", "kelly", "price", "owen",
        ];
        let mut records = Vec::new();
        for n in 0..300 {
            let g = given[n % given.len()];
            // Every (given, family) pair is distinct: 12 x 25 people.
            let f = format!(
                "{}{}",
                family[(n / given.len()) % family.len()],
                n / (given.len() * family.len())
            );
            let f = f.as_str();
            let dob = format!("19{:02}{:02}{:02}", 40 + n % 60, 1 + n % 12, 1 + n % 28);
            records.push(record(g, f, &dob));
            // Every other person has a duplicate: exact, or with one field mistyped.
            let typo = |text: &str| format!("{text}e");
            match n % 8 {
                0 => records.push(record(g, f, &dob)),
                2 => records.push(record(g, &typo(f), &dob)),
                4 => records.push(record(&typo(g), f, &dob)),
                6 => records.push(record(
                    g,
                    f,
                    &format!("{}{}", &dob[..7], (dob.as_bytes()[7] - b'0' + 1) % 10),
                )),
                _ => {}
            }
        }
        records
    }

    #[test]
    fn em_learns_that_agreement_means_a_match_and_scores_explain_themselves() {
        let records = population();
        let model = Model::train(
            spec(),
            &records,
            Pairing::Dedupe,
            &TrainOptions {
                u_sample: 50_000,
                ..TrainOptions::default()
            },
        );
        let family_exact = model.m[1][3] / model.u[1][3];
        assert!(family_exact > 5.0, "{:?}", model.parameters());
        let same = model.score(&records[0], &records[1]);
        let different = model.score(&records[0], &records[3]);
        assert!(
            same.probability > 0.9 && different.probability < 0.1,
            "{same:?} {different:?}"
        );
        assert_eq!(same.fields.len(), 3);
        assert_eq!(same.fields[2].level, "exact");
        let total: f64 =
            same.prior_weight + same.fields.iter().map(|field| field.weight).sum::<f64>();
        assert!(
            (total - same.weight).abs() < 1e-9,
            "the explanation adds up to the weight"
        );
        for (a, b) in [(0, 1), (0, 3), (2, 3), (5, 6)] {
            let (weight, vetoed) = model.weigh(&records[a], &records[b]);
            let scored = model.score(&records[a], &records[b]);
            assert!((weight - scored.weight).abs() < 1e-9, "weigh = score");
            assert_eq!(vetoed, scored.vetoed_by.is_some());
        }
        let loaded = Model::load(&model.save()).unwrap();
        assert_eq!(
            (loaded.m.clone(), loaded.u.clone(), loaded.version.clone()),
            (model.m.clone(), model.u.clone(), model.version.clone())
        );
    }

    #[test]
    fn a_requirement_vetoes_a_link_whatever_the_weight() {
        let mut spec = spec();
        spec.requirements = vec![Requirement {
            comparison: "given".into(),
            min_level: "jaro_winkler_high".into(),
            conditional: false,
        }];
        let records = population();
        let model = Model::train(
            spec,
            &records,
            Pairing::Dedupe,
            &TrainOptions {
                u_sample: 50_000,
                ..TrainOptions::default()
            },
        );
        let twins = model.score(
            &record("ann", "okafor0", "19700101"),
            &record("bea", "okafor0", "19700101"),
        );
        assert_eq!(
            twins.vetoed_by.as_deref(),
            Some("given below jaro_winkler_high")
        );
        assert_eq!(twins.probability, 0.0);
        let missing = model.score(
            &record("", "okafor0", "19700101"),
            &record("bea", "okafor0", "19700101"),
        );
        assert_eq!(
            missing.vetoed_by, None,
            "a missing value is not a disagreement"
        );
    }

    #[test]
    fn rare_names_weigh_more_than_common_ones() {
        let mut records = population();
        for _ in 0..50 {
            records.push(record("ann", "smith", ""));
        }
        records.push(record("zebedee", "quill", ""));
        let model = Model::train(
            spec(),
            &records,
            Pairing::Dedupe,
            &TrainOptions {
                u_sample: 50_000,
                ..TrainOptions::default()
            },
        );
        let common = model.score(&record("ann", "smith", ""), &record("ann", "smith", ""));
        let rare = model.score(
            &record("zebedee", "quill", ""),
            &record("zebedee", "quill", ""),
        );
        assert!(
            rare.weight > common.weight,
            "{} vs {}",
            rare.weight,
            common.weight
        );
    }

    #[test]
    fn blocking_unions_rules_without_duplicates_and_respects_link_sides() {
        let records = vec![
            record("a", "x", "1"),
            record("b", "x", "1"),
            record("c", "y", "1"),
            record("d", "x", "2"),
        ];
        let candidates = block(&spec(), &records, Pairing::Dedupe);
        let mut pairs: Vec<(usize, usize)> =
            candidates.pairs.iter().map(|&(a, b, _)| (a, b)).collect();
        pairs.sort();
        assert_eq!(pairs, vec![(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]);
        assert_eq!(
            candidates.per_rule,
            vec![("dob".into(), 3), ("family".into(), 3)]
        );
        let linked = block(&spec(), &records, Pairing::Link { left: 2 });
        assert!(linked.pairs.iter().all(|&(a, b, _)| (a < 2) != (b < 2)));
    }

    #[test]
    fn pairwise_scores_count_true_and_false_links() {
        let predicted = [(0, 1), (2, 3)].into_iter().collect();
        let truth = [(0, 1), (4, 5)].into_iter().collect();
        assert_eq!(pairwise_scores(&predicted, &truth), (0.5, 0.5, 0.5));
    }
}
