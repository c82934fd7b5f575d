//! Fellegi-Sunter matching (the Splink method): blocking rules give candidate pairs, each
//! comparison puts a pair on a level, and the match weight is the prior log-odds plus
//! `log2(m/u)` per comparison, with term-frequency adjustment for exact matches on names.
//! `u` comes from random pairs, `m` from expectation-maximisation on blocked pairs (per
//! blocking rule, for the comparisons that rule does not block on). No IO: `save`/`load`
//! work on strings.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::compare::Comparator;

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

/// Largest block a rule expands into pairs; larger ones are skipped and reported.
pub const MAX_BLOCK: usize = 2000;

/// Candidate pairs of `records` under every blocking rule of `spec` (a union, deduplicated;
/// each pair keeps the first rule that found it), sorted.
pub fn block(spec: &ModelSpec, records: &[Prepared], pairing: Pairing) -> Candidates {
    let mut candidates = Candidates::default();
    let mut all: Vec<(usize, usize, usize)> = Vec::new();
    for (rule_index, rule) in spec.blocking.iter().enumerate() {
        let (pairs, skipped) = block_rule(spec, rule, records, pairing);
        candidates.per_rule.push((rule.name.clone(), pairs.len()));
        candidates.skipped_blocks.push((rule.name.clone(), skipped));
        all.extend(pairs.into_iter().map(|(a, b)| (a, b, rule_index)));
    }
    all.sort_unstable();
    all.dedup_by_key(|&mut (a, b, _)| (a, b));
    candidates.pairs = all;
    candidates
}

/// A fast, fixed hash of a record's values on some fields (`None` when one is missing).
/// Records with equal values hash equally; a collision only adds a candidate pair.
pub fn key_hash(record: &Prepared, fields: &[usize]) -> Option<u64> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &field in fields {
        for byte in record.values[field].as_deref()?.bytes().chain([0xff]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    Some(hash)
}

/// The pairs one rule produces (smaller index first), and how many blocks it skipped.
pub fn block_rule(
    spec: &ModelSpec,
    rule: &BlockingRule,
    records: &[Prepared],
    pairing: Pairing,
) -> (Vec<(usize, usize)>, usize) {
    let fields: Vec<usize> = rule
        .fields
        .iter()
        .map(|field| spec.field_index(field))
        .collect();
    let mut keyed: Vec<(u64, usize)> = records
        .iter()
        .enumerate()
        .filter_map(|(index, record)| Some((key_hash(record, &fields)?, index)))
        .collect();
    keyed.sort_unstable();
    let (mut pairs, mut skipped) = (Vec::new(), 0);
    for block in keyed.chunk_by(|x, y| x.0 == y.0) {
        if block.len() > MAX_BLOCK {
            skipped += 1;
            continue;
        }
        for (position, &(_, a)) in block.iter().enumerate() {
            for &(_, b) in &block[position + 1..] {
                if pairing.allows(a, b) {
                    pairs.push((a.min(b), a.max(b)));
                }
            }
        }
    }
    (pairs, skipped)
}

/// The pairs one blocking rule makes, and those of them no other rule makes.
#[derive(Debug, Clone)]
pub struct RulePairs {
    pub name: String,
    /// Sorted, each pair once (smaller index first).
    pub pairs: Vec<(usize, usize)>,
    /// Sorted.
    pub only: Vec<(usize, usize)>,
}

/// Per blocking rule of `spec`: its pairs and the pairs only it makes (what it costs and adds).
pub fn rule_pairs(spec: &ModelSpec, records: &[Prepared], pairing: Pairing) -> Vec<RulePairs> {
    let per_rule: Vec<Vec<(usize, usize)>> = crate::parallel::map(&spec.blocking, |rule| {
        let mut pairs = block_rule(spec, rule, records, pairing).0;
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    });
    let mut all: Vec<(usize, usize)> = per_rule.concat();
    all.sort_unstable();
    let rules_finding = |pair: &(usize, usize)| {
        all.partition_point(|other| other <= pair) - all.partition_point(|other| other < pair)
    };
    spec.blocking
        .iter()
        .zip(per_rule)
        .map(|(rule, pairs)| RulePairs {
            name: rule.name.clone(),
            only: pairs
                .iter()
                .filter(|pair| rules_finding(pair) == 1)
                .copied()
                .collect(),
            pairs,
        })
        .collect()
}

/// The pairs of any rule, sorted, each once.
pub fn union_of(rules: &[RulePairs]) -> Vec<(usize, usize)> {
    let mut union: Vec<(usize, usize)> =
        rules.iter().flat_map(|rule| &rule.pairs).copied().collect();
    union.sort_unstable();
    union.dedup();
    union
}

/// One field of every record in one buffer: `spans[i]` is record i's value as (start, end)
/// in `text`, or `None`.
struct Column {
    text: String,
    spans: Vec<Option<(u32, u32)>>,
}

impl Column {
    fn of(records: &[Prepared], field: usize) -> Column {
        let mut text = String::new();
        let spans = records
            .iter()
            .map(|record| {
                let value = record.values[field].as_deref()?;
                let offset = |at: usize| u32::try_from(at).expect("a column under 4 GiB");
                let start = offset(text.len());
                text.push_str(value);
                Some((start, offset(text.len())))
            })
            .collect();
        Column { text, spans }
    }

    fn get(&self, record: usize) -> Option<&str> {
        let (start, end) = self.spans[record]?;
        Some(&self.text[start as usize..end as usize])
    }
}

/// A deterministic generator for sampling random pairs (splitmix64).
struct Sampler(u64);

impl Sampler {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

type Gamma = Vec<Option<u8>>;

/// Settings of training.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Random pairs sampled to estimate u.
    pub u_sample: usize,
    pub em_iterations: usize,
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            u_sample: 1_000_000,
            em_iterations: 40,
            seed: 42,
        }
    }
}

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

    /// Trains a model without labels: u from random pairs, m by EM per blocking rule.
    pub fn train(
        spec: ModelSpec,
        records: &[Prepared],
        pairing: Pairing,
        options: &TrainOptions,
    ) -> Model {
        let levels: Vec<usize> = spec
            .comparisons
            .iter()
            .map(|c| c.comparator.levels().len())
            .collect();
        // Start: agreement far likelier among matches; uniform among non-matches.
        let m = levels
            .iter()
            .map(|&n| {
                let raw: Vec<f64> = (0..n)
                    .map(|level| ((level + 1) * (level + 1)) as f64)
                    .collect();
                let total: f64 = raw.iter().sum();
                raw.into_iter().map(|value| value / total).collect()
            })
            .collect();
        let u = levels.iter().map(|&n| vec![1.0 / n as f64; n]).collect();
        let mut model = Model {
            version: String::new(),
            trained_on: format!("{} records", records.len()),
            field_of: Model::comparison_fields(&spec),
            required_levels: Model::required_levels(&spec),
            min_level: Model::min_levels(&spec),
            level_weights: Vec::new(),
            tf_adjustments: Vec::new(),
            spec,
            lambda: 0.01,
            m,
            u,
            warnings: Vec::new(),
            prior_found: (0, 0.0),
            term_frequencies: Vec::new(),
        };
        // The pairs each prior rule finds: the prior, exact agreement's u and the requirements'
        // support all read them.
        let prior_found: Vec<Vec<(usize, usize)>> = model
            .spec
            .prior
            .iter()
            .map(|rule| block_rule(&model.spec, rule, records, pairing).0)
            .collect();
        model.estimate_u(records, pairing, options, &prior_found);
        // m per blocking rule, from all of that rule's pairs, for the comparisons on fields the
        // rule does not block on (Splink's training sessions).
        // (m, matches EM found) per rule; rules are pooled by those matches, so a rule with a
        // few dozen pairs does not count as much as one with thousands.
        let mut estimates: Vec<Vec<(Vec<f64>, f64)>> =
            vec![Vec::new(); model.spec.comparisons.len()];
        let training_rules = if model.spec.training.is_empty() {
            model.spec.blocking.clone()
        } else {
            model.spec.training.clone()
        };
        // Each rule's session on its own core: a session reads the model, never writes it.
        let sessions = crate::parallel::map(&training_rules, |rule| {
            let (pairs, _) = block_rule(&model.spec, rule, records, pairing);
            let gammas: Vec<Gamma> = pairs
                .iter()
                .map(|&(a, b)| model.gamma(&records[a], &records[b]))
                .collect();
            let patterns = aggregate(gammas.iter());
            if patterns.is_empty() {
                return None;
            }
            let free: Vec<bool> = model
                .spec
                .comparisons
                .iter()
                .map(|c| {
                    !rule.fields.contains(&c.field)
                        && !c.depends_on.iter().any(|field| rule.fields.contains(field))
                })
                .collect();
            // The rule's own fields agree on every pair it produced: they say nothing here.
            let (m, _, matches) = em(
                &model.m,
                &model.u,
                0.1,
                &patterns,
                &free,
                &free,
                options.em_iterations,
            );
            Some((free, m, matches))
        });
        for (free, m, matches) in sessions.into_iter().flatten() {
            for (comparison, is_free) in free.iter().enumerate() {
                if *is_free {
                    estimates[comparison].push((m[comparison].clone(), matches));
                }
            }
        }
        for (comparison, found) in estimates.into_iter().enumerate() {
            let mass: f64 = found.iter().map(|(_, matches)| matches).sum();
            if mass <= 0.0 {
                continue;
            }
            let levels = model.m[comparison].len();
            let expected: Vec<f64> = (0..levels)
                .map(|level| found.iter().map(|(m, matches)| m[level] * matches).sum())
                .collect();
            // A level seen neither among the matches (less than one expected) nor among the
            // non-matches (rarer than one in `mass`: an ambiguous nickname nobody used, a
            // phone typo) has no evidence either way: m = u, weight 0, rather than the large
            // negative weight a near-zero m would give. A level common among non-matches and
            // absent among matches ("else" on a name) keeps its strongly negative weight. The
            // other levels share the rest of m in proportion.
            let u = &model.u[comparison];
            let rare: Vec<bool> = (0..levels)
                .map(|l| expected[l] < MIN_LEVEL_MATCHES && u[l] < 1.0 / mass)
                .collect();
            let rare_u: f64 = (0..levels).filter(|&l| rare[l]).map(|l| u[l]).sum();
            let seen: f64 = (0..levels).filter(|&l| !rare[l]).map(|l| expected[l]).sum();
            model.m[comparison] = (0..levels)
                .map(|level| {
                    if rare[level] || seen <= 0.0 {
                        u[level]
                    } else {
                        expected[level] / seen * (1.0 - rare_u)
                    }
                })
                .collect();
        }
        model.bound_parameters();
        model.keep_supported_requirements(records, &prior_found);
        if model.spec.prior.is_empty() {
            let candidates = block(&model.spec, records, pairing);
            let gammas: Vec<Gamma> = candidates
                .pairs
                .iter()
                .map(|&(a, b, _)| model.gamma(&records[a], &records[b]))
                .collect();
            // The prior over all candidate pairs, with m and u fixed.
            let patterns = aggregate(gammas.iter());
            let fixed = vec![false; model.spec.comparisons.len()];
            let all = vec![true; model.spec.comparisons.len()];
            let (_, lambda, _) = em(
                &model.m,
                &model.u,
                0.1,
                &patterns,
                &all,
                &fixed,
                options.em_iterations,
            );
            model.lambda = lambda.clamp(1e-9, 1.0 - 1e-9);
        } else {
            model.estimate_prior(records, pairing, &prior_found);
        }
        model.set_term_frequencies(records);
        model.version = model.fingerprint();
        model
    }

    /// The probability that two random records match (Splink's
    /// `estimate_probability_two_random_records_match`): the pairs the `prior` rules find,
    /// divided by the share of matches those rules find, over every possible pair. The share
    /// is worked out from the model, not assumed: a rule on fields F finds a match when both
    /// records have each field and agree on it exactly, `prod(presence^2 * m_exact)`.
    fn estimate_prior(
        &mut self,
        records: &[Prepared],
        pairing: Pairing,
        prior_found: &[Vec<(usize, usize)>],
    ) {
        let total_pairs = match pairing {
            Pairing::Dedupe => records.len() as f64 * (records.len() as f64 - 1.0) / 2.0,
            Pairing::Link { left } => left as f64 * (records.len() - left) as f64,
        };
        if total_pairs < 1.0 {
            return;
        }
        let presence = |field: usize| {
            records.iter().filter(|r| r.values[field].is_some()).count() as f64
                / records.len() as f64
        };
        let mut found: Vec<(usize, usize)> = prior_found.concat();
        let mut missed_by_all = 1.0;
        for rule in &self.spec.prior {
            let mut recall = 1.0;
            for field in &rule.fields {
                let field_index = self.spec.field_index(field);
                let exact = self
                    .spec
                    .comparisons
                    .iter()
                    .position(|c| &c.field == field)
                    .map_or(1.0, |c| *self.m[c].last().expect("a level"));
                recall *= presence(field_index).powi(2) * exact;
            }
            missed_by_all *= 1.0 - recall;
        }
        found.sort_unstable();
        found.dedup();
        let recall = (1.0 - missed_by_all).max(1e-3);
        let matches = (found.len() as f64 / recall).max(1.0);
        let lambda = matches / total_pairs;
        let bounded = lambda.clamp(1.0 / total_pairs, 0.5);
        if bounded != lambda {
            self.warnings.push(format!(
                "prior: {lambda:.3e} held at {bounded:.3e} (the prior rules found {} pairs)",
                found.len()
            ));
        }
        self.prior_found = (found.len(), recall);
        self.lambda = bounded;
    }

    /// Drops each conditional requirement that more than [`CONDITIONAL_REQUIREMENT_MISS`] of
    /// the near-certain matches would fail, saying so. The near-certain matches are the pairs
    /// the prior rules find on other fields (a NINO shared exactly says nothing of the given
    /// names): where they often disagree on the required comparison, the data's errors are of
    /// a kind the requirement would veto.
    fn keep_supported_requirements(
        &mut self,
        records: &[Prepared],
        prior_found: &[Vec<(usize, usize)>],
    ) {
        let found: Vec<(&BlockingRule, &Vec<(usize, usize)>)> =
            self.spec.prior.iter().zip(prior_found).collect();
        let mut kept = Vec::new();
        for requirement in &self.spec.requirements {
            let Some((index, comparison)) = self
                .spec
                .comparisons
                .iter()
                .enumerate()
                .find(|(_, c)| c.name == requirement.comparison)
            else {
                continue;
            };
            if !requirement.conditional {
                kept.push(requirement.clone());
                continue;
            }
            let minimum = comparison
                .comparator
                .levels()
                .iter()
                .position(|level| *level == requirement.min_level)
                .unwrap_or(0) as u8;
            let field = self.field_of[index];
            let (mut compared, mut below) = (0usize, 0usize);
            for (rule, pairs) in &found {
                let about_it = rule
                    .fields
                    .iter()
                    .any(|f| *f == comparison.field || comparison.depends_on.contains(f));
                if about_it {
                    continue;
                }
                for &(a, b) in pairs.iter() {
                    if let (Some(x), Some(y)) =
                        (&records[a].values[field], &records[b].values[field])
                    {
                        compared += 1;
                        below += usize::from(comparison.comparator.level(x, y) < minimum);
                    }
                }
            }
            let share = below as f64 / compared.max(1) as f64;
            if compared >= 20 && share > CONDITIONAL_REQUIREMENT_MISS {
                self.warnings.push(format!(
                    "requirement `{} at least {}` not applied: {below} of {compared} pairs the prior rules find on other fields ({:.1}%) fall below it",
                    requirement.comparison,
                    requirement.min_level,
                    100.0 * share
                ));
            } else {
                kept.push(requirement.clone());
            }
        }
        self.spec.requirements = kept;
        self.required_levels = Model::required_levels(&self.spec);
        self.min_level = Model::min_levels(&self.spec);
    }

    /// Holds m and u inside bounds where the data gave too little to estimate them (a level
    /// nobody reached), and says which, so weights stay finite and explicable.
    fn bound_parameters(&mut self) {
        for (comparison, spec) in self.spec.comparisons.iter().enumerate() {
            for (table, name, floor) in [(&mut self.m, "m", M_FLOOR), (&mut self.u, "u", U_FLOOR)] {
                let levels = &mut table[comparison];
                let mut held = false;
                for (level, value) in levels.iter_mut().enumerate() {
                    if value.is_nan() || *value < floor {
                        self.warnings.push(format!(
                            "{name}[{}][{}] = {value:.2e} held at {floor:.0e}",
                            spec.name,
                            spec.comparator.levels()[level]
                        ));
                        *value = floor;
                        held = true;
                    }
                }
                if held {
                    let total: f64 = levels.iter().sum();
                    levels.iter_mut().for_each(|value| *value /= total);
                }
            }
        }
    }

    /// u from random pairs, sampled in fixed chunks (one seed each) spread over the cores: the
    /// result does not depend on how many cores there are.
    fn estimate_u(
        &mut self,
        records: &[Prepared],
        pairing: Pairing,
        options: &TrainOptions,
        prior_found: &[Vec<(usize, usize)>],
    ) {
        const CHUNKS: u64 = 16;
        let n = records.len();
        let left = match pairing {
            Pairing::Dedupe if n >= 2 => None,
            Pairing::Link { left } if left > 0 && left < n => Some(left),
            _ => return,
        };
        let per_chunk = options.u_sample / CHUNKS as usize;
        // Each record's key under each prior rule: a pair sharing one is (almost surely) a
        // match, and says nothing about non-matches. Keys are hashes: a collision only
        // leaves one more random pair out of the sample.
        let prior_fields: Vec<Vec<usize>> = self
            .spec
            .prior
            .iter()
            .map(|rule| {
                rule.fields
                    .iter()
                    .map(|f| self.spec.field_index(f))
                    .collect()
            })
            .collect();
        // Flat, `rules` keys per record, 0 for none (a real key of 0 is taken as 1).
        let rules = prior_fields.len();
        let prior_keys: Vec<u64> = records
            .iter()
            .flat_map(|record| {
                prior_fields
                    .iter()
                    .map(|fields| key_hash(record, fields).map_or(0, |key| key.max(1)))
            })
            .collect();
        // Each compared field's values side by side in one buffer: random pairs then read a
        // few small arrays rather than chase two pointers per value across the heap.
        let columns: Vec<Column> = self
            .field_of
            .iter()
            .map(|&field| Column::of(records, field))
            .collect();
        let sample_chunk = |chunk: u64| {
            let mut counts: Vec<Vec<f64>> = self
                .u
                .iter()
                .map(|levels| vec![0.0; levels.len()])
                .collect();
            let mut sampler = Sampler(options.seed.wrapping_add(chunk.wrapping_mul(0x9e37_79b9)));
            for _ in 0..per_chunk {
                let (a, b) = match left {
                    None => (sampler.below(n), sampler.below(n)),
                    Some(left) => (sampler.below(left), left + sampler.below(n - left)),
                };
                if a == b {
                    continue;
                }
                // Among duplicates-rich data, pairs the prior rules find would make agreement
                // look common among non-matches.
                let keys = |record: usize| &prior_keys[record * rules..(record + 1) * rules];
                if keys(a).iter().zip(keys(b)).any(|(p, q)| *p != 0 && p == q) {
                    continue;
                }
                for (comparison, (spec, column)) in
                    self.spec.comparisons.iter().zip(&columns).enumerate()
                {
                    if let (Some(p), Some(q)) = (column.get(a), column.get(b)) {
                        counts[comparison][spec.comparator.level(p, q) as usize] += 1.0;
                    }
                }
            }
            counts
        };
        // Each chunk has its own seed: the sample does not depend on the number of cores.
        let chunks: Vec<u64> = (0..CHUNKS).collect();
        let chunk_counts = crate::parallel::map(&chunks, |&chunk| sample_chunk(chunk));
        // One pseudo-count per level keeps every u positive.
        let mut counts: Vec<Vec<f64>> = self
            .u
            .iter()
            .map(|levels| vec![1.0; levels.len()])
            .collect();
        for chunk in chunk_counts {
            for (total, part) in counts.iter_mut().zip(chunk) {
                for (sum, value) in total.iter_mut().zip(part) {
                    *sum += value;
                }
            }
        }
        self.u = counts
            .into_iter()
            .map(|levels| {
                let total: f64 = levels.iter().sum();
                levels.into_iter().map(|count| count / total).collect()
            })
            .collect();
        if !self.spec.prior.is_empty() {
            self.count_exact_u(records, pairing, prior_found);
        }
    }

    /// Exact agreement is counted, not sampled, where the top level means equal values: over
    /// every pair of records that both have the value, less the pairs the prior rules mark as
    /// one person. A rare value's agreement (one date of birth in 20,000) is then known to its
    /// last pair, however few pairs were sampled; the sampled levels below share the rest.
    fn count_exact_u(
        &mut self,
        records: &[Prepared],
        pairing: Pairing,
        prior_found: &[Vec<(usize, usize)>],
    ) {
        let mut prior_pairs: Vec<(usize, usize)> = prior_found.concat();
        prior_pairs.sort_unstable();
        prior_pairs.dedup();
        for (comparison, spec) in self.spec.comparisons.iter().enumerate() {
            let top_is_equality = !matches!(
                spec.comparator,
                Comparator::Address | Comparator::SwappedNames
            );
            if !top_is_equality {
                continue;
            }
            let field = self.field_of[comparison];
            let side = |index: usize| match pairing {
                Pairing::Dedupe => 0,
                Pairing::Link { left } => usize::from(index >= left),
            };
            let mut counts: [rustc_hash::FxHashMap<&str, f64>; 2] = Default::default();
            let mut present = [0.0f64; 2];
            for (index, record) in records.iter().enumerate() {
                if let Some(value) = record.values[field].as_deref() {
                    *counts[side(index)].entry(value).or_default() += 1.0;
                    present[side(index)] += 1.0;
                }
            }
            let (mut equal, mut pairs) = match pairing {
                Pairing::Dedupe => (
                    counts[0].values().map(|c| c * (c - 1.0) / 2.0).sum::<f64>(),
                    present[0] * (present[0] - 1.0) / 2.0,
                ),
                Pairing::Link { .. } => (
                    counts[0]
                        .iter()
                        .map(|(value, c)| c * counts[1].get(value).copied().unwrap_or(0.0))
                        .sum::<f64>(),
                    present[0] * present[1],
                ),
            };
            for &(a, b) in &prior_pairs {
                if let (Some(x), Some(y)) = (&records[a].values[field], &records[b].values[field]) {
                    pairs -= 1.0;
                    equal -= f64::from(u8::from(x == y));
                }
            }
            if pairs < 1.0 {
                continue;
            }
            let levels = &mut self.u[comparison];
            let top = levels.len() - 1;
            let exact = (equal.max(0.0) + 1.0) / (pairs + 1.0);
            let rest: f64 = levels[..top].iter().sum();
            if rest <= 0.0 {
                continue;
            }
            for level in levels[..top].iter_mut() {
                *level *= (1.0 - exact) / rest;
            }
            levels[top] = exact;
        }
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

fn aggregate<'a>(gammas: impl Iterator<Item = &'a Gamma>) -> Vec<(Gamma, f64)> {
    let mut patterns: BTreeMap<Gamma, f64> = BTreeMap::new();
    for gamma in gammas {
        *patterns.entry(gamma.clone()).or_default() += 1.0;
    }
    patterns.into_iter().collect()
}

const M_PSEUDO_COUNT: f64 = 1.0;
/// The least m of a level: no single disagreement weighs more than about -13 bits.
const M_FLOOR: f64 = 1e-4;
/// The least u of a level: no single agreement weighs more than about +23 bits.
const U_FLOOR: f64 = 1e-7;
/// Expected matches below which a level's m is not estimated (m = u).
const MIN_LEVEL_MATCHES: f64 = 1.0;

/// Expectation-maximisation over comparison patterns with u fixed: only `active` comparisons
/// count in the likelihood, only `free` ones have their m updated. Returns (m, lambda, the
/// number of matches it found).
fn em(
    m: &[Vec<f64>],
    u: &[Vec<f64>],
    lambda: f64,
    patterns: &[(Gamma, f64)],
    active: &[bool],
    free: &[bool],
    iterations: usize,
) -> (Vec<Vec<f64>>, f64, f64) {
    let mut m = m.to_vec();
    let mut lambda = lambda;
    let mut matches = 0.0;
    for _ in 0..iterations {
        let mut match_counts: Vec<Vec<f64>> =
            m.iter().map(|levels| vec![0.0; levels.len()]).collect();
        let (mut matched, mut total) = (0.0, 0.0);
        for (gamma, count) in patterns {
            let mut log_odds = (lambda / (1.0 - lambda)).ln();
            for (comparison, level) in gamma.iter().enumerate() {
                if let (Some(level), true) = (level, active[comparison]) {
                    let level = *level as usize;
                    log_odds +=
                        (m[comparison][level].max(1e-12) / u[comparison][level].max(1e-12)).ln();
                }
            }
            let posterior = 1.0 / (1.0 + (-log_odds).exp());
            matched += posterior * count;
            total += count;
            for (comparison, level) in gamma.iter().enumerate() {
                if let Some(level) = level {
                    match_counts[comparison][*level as usize] += posterior * count;
                }
            }
        }
        matches = matched;
        let new_lambda = (matched / total).clamp(1e-9, 1.0 - 1e-9);
        let mut change = (new_lambda - lambda).abs();
        lambda = new_lambda;
        for (comparison, counts) in match_counts.into_iter().enumerate() {
            if !free[comparison] {
                continue;
            }
            // One pseudo-match spread as u keeps every m positive while EM runs.
            let sum: f64 = counts.iter().sum::<f64>() + M_PSEUDO_COUNT;
            for (level, count) in counts.into_iter().enumerate() {
                let value = (count + M_PSEUDO_COUNT * u[comparison][level]) / sum;
                change = change.max((value - m[comparison][level]).abs());
                m[comparison][level] = value;
            }
        }
        if change < 1e-7 {
            break;
        }
    }
    (m, lambda, matches)
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
