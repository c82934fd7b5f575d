//! Blocking: the candidate pairs each rule gives (records sharing the rule's key), the
//! union of the rules, and how many pairs each keeps.

use super::*;

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
