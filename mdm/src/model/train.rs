//! Training a model without labels: u by random sampling (exact agreement counted over all
//! pairs), the prior from deterministic rules, m by EM per training rule, requirements kept
//! only where the data supports them, parameters bounded.

use super::*;

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
