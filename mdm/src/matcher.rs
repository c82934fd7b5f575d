//! The streaming matcher: an index of prepared records by blocking key, and a trained
//! Fellegi-Sunter model. Each arriving record is scored against the records it shares a
//! blocking key with; pairs at or above the match threshold become links for the cluster
//! index, pairs between the thresholds go to steward review. No IO.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::model::{Model, Prepared, Scored};

/// The two probability thresholds of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// At or above: the pair is the same entity (auto-merge).
    pub link: f64,
    /// At or above (and below `link`): a steward reviews the pair.
    pub review: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            link: 0.99,
            review: 0.5,
        }
    }
}

/// A probability as a match weight (log2 odds).
fn weight_of(probability: f64) -> f64 {
    let probability = probability.clamp(1e-12, 1.0 - 1e-12);
    (probability / (1.0 - probability)).log2()
}

/// What scoring one record found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matches {
    /// (slot, weight) of records at or above the match threshold.
    pub links: Vec<(usize, f64)>,
    /// (slot, weight) of records between the thresholds.
    pub review: Vec<(usize, f64)>,
    /// Candidate pairs scored.
    pub scored: usize,
    /// Pairs a requirement vetoed although their weight reached the match threshold.
    pub vetoed: usize,
}

/// Largest block a record is compared against; larger blocks (a default value nobody
/// caught) are skipped for that rule and counted.
pub const MAX_CANDIDATES_PER_BLOCK: usize = 2000;

#[derive(Debug)]
pub struct Matcher {
    model: Model,
    thresholds: Thresholds,
    link_weight: f64,
    review_weight: f64,
    /// Blocking rules as field indices.
    rules: Vec<Vec<usize>>,
    records: Vec<Option<Prepared>>,
    /// Per rule: hash of the key values -> slots. A hash collision only adds a candidate,
    /// which scoring then rejects.
    blocks: Vec<HashMap<u64, Vec<u32>>>,
    /// Records that found a rule's block too large to compare against, per rule.
    pub oversized_blocks: Vec<u64>,
}

impl Matcher {
    pub fn new(model: Model, thresholds: Thresholds) -> Matcher {
        let rules: Vec<Vec<usize>> = model
            .spec
            .blocking
            .iter()
            .map(|rule| {
                rule.fields
                    .iter()
                    .map(|field| {
                        model
                            .spec
                            .fields
                            .iter()
                            .position(|known| known == field)
                            .expect("blocking rule fields are schema fields")
                    })
                    .collect()
            })
            .collect();
        Matcher {
            link_weight: weight_of(thresholds.link),
            review_weight: weight_of(thresholds.review),
            blocks: vec![HashMap::new(); rules.len()],
            oversized_blocks: vec![0; rules.len()],
            rules,
            records: Vec::new(),
            model,
            thresholds,
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    fn key(rule: &[usize], record: &Prepared) -> Option<u64> {
        crate::model::key_hash(record, rule)
    }

    /// Adds a record at `slot` (or replaces the one there) and scores it against the records
    /// it shares a blocking key with.
    pub fn upsert(&mut self, slot: usize, record: Prepared) -> Matches {
        self.remove(slot);
        let mut candidates: Vec<u32> = Vec::new();
        for ((rule, blocks), oversized) in self
            .rules
            .iter()
            .zip(&mut self.blocks)
            .zip(&mut self.oversized_blocks)
        {
            let Some(key) = Matcher::key(rule, &record) else {
                continue;
            };
            let block = blocks.entry(key).or_default();
            if block.len() < MAX_CANDIDATES_PER_BLOCK {
                candidates.extend_from_slice(block);
            } else {
                *oversized += 1;
            }
            block.push(slot as u32);
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut matches = Matches {
            scored: candidates.len(),
            ..Matches::default()
        };
        for other in candidates {
            let other = other as usize;
            let Some(known) = self.records.get(other).and_then(Option::as_ref) else {
                continue;
            };
            let (weight, vetoed) = self.model.weigh(&record, known);
            if vetoed {
                matches.vetoed += usize::from(weight >= self.link_weight);
            } else if weight >= self.link_weight {
                matches.links.push((other, weight));
            } else if weight >= self.review_weight {
                matches.review.push((other, weight));
            }
        }
        if self.records.len() <= slot {
            self.records.resize(slot + 1, None);
        }
        self.records[slot] = Some(record);
        matches
    }

    /// Takes a record out of the blocking index.
    fn remove(&mut self, slot: usize) {
        let Some(old) = self.records.get_mut(slot).and_then(Option::take) else {
            return;
        };
        for (rule, blocks) in self.rules.iter().zip(&mut self.blocks) {
            if let Some(key) = Matcher::key(rule, &old)
                && let Some(block) = blocks.get_mut(&key)
            {
                block.retain(|&member| member as usize != slot);
            }
        }
    }

    pub fn record(&self, slot: usize) -> Option<&Prepared> {
        self.records.get(slot).and_then(Option::as_ref)
    }

    /// Whether the model forbids two held records from sharing a cluster.
    pub fn conflict(&self, a: usize, b: usize) -> bool {
        match (self.record(a), self.record(b)) {
            (Some(x), Some(y)) => self.model.vetoes(x, y),
            _ => false,
        }
    }

    /// The full explanation of a pair of held records.
    pub fn explain(&self, a: usize, b: usize) -> Option<Scored> {
        Some(self.model.score(self.record(a)?, self.record(b)?))
    }
}
