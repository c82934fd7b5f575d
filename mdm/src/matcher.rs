//! The streaming matcher: an index of prepared records by blocking key, and a trained
//! Fellegi-Sunter model. Each arriving record is scored against the records it shares a
//! blocking key with; pairs at or above the match threshold become links for the cluster
//! index, pairs between the thresholds go to steward review. No IO.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

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
            review: 0.8,
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
    /// (slot, weight) of records a requirement kept apart although their weight reached the
    /// match threshold.
    pub vetoed: Vec<(usize, f64)>,
}

/// Largest block a record is compared against; larger blocks (a default value nobody
/// caught) are skipped for that rule and counted.
pub const MAX_CANDIDATES_PER_BLOCK: usize = 2000;

/// The end of a block chain.
const NONE: u32 = u32::MAX;

/// A block: its newest member (the head of its chain) and how many it holds.
#[derive(Debug, Clone, Copy)]
struct Block {
    newest: u32,
    size: u32,
}

/// Block keys are hashes already: the map uses them as they are.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[derive(Debug)]
pub struct Matcher {
    model: Model,
    thresholds: Thresholds,
    link_weight: f64,
    review_weight: f64,
    /// Blocking rules as field indices.
    rules: Vec<Vec<usize>>,
    records: Vec<Option<Prepared>>,
    /// Per rule: hash of the key values -> the block's newest slot and size. A hash
    /// collision only adds a candidate, which scoring then rejects.
    blocks: Vec<HashMap<u64, Block, BuildHasherDefault<KeyHasher>>>,
    /// Per rule, per slot: the next (older) slot of its block, or `NONE`. Blocks are chains
    /// through this array, so a block costs no allocation of its own.
    next: Vec<Vec<u32>>,
    /// Records that found a rule's block too large to compare against, per rule.
    oversized_blocks: Vec<u64>,
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
            blocks: vec![HashMap::default(); rules.len()],
            next: vec![Vec::new(); rules.len()],
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

    /// Per blocking rule: how many records found its block too large to compare against
    /// (a value shared by thousands, such as a default phone number nobody caught).
    pub fn oversized_blocks(&self) -> Vec<(String, u64)> {
        self.model
            .spec
            .blocking
            .iter()
            .zip(&self.oversized_blocks)
            .map(|(rule, &count)| (rule.name.clone(), count))
            .collect()
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
        assert_eq!(
            record.values.len(),
            self.model.spec.fields.len(),
            "a prepared record has a value for each field of the model"
        );
        self.remove(slot);
        let mut candidates: Vec<u32> = Vec::new();
        for (rule_index, rule) in self.rules.iter().enumerate() {
            let next = &mut self.next[rule_index];
            if next.len() <= slot {
                next.resize(slot + 1, NONE);
            }
            let Some(key) = Matcher::key(rule, &record) else {
                continue;
            };
            let block = self.blocks[rule_index].entry(key).or_insert(Block {
                newest: NONE,
                size: 0,
            });
            if (block.size as usize) < MAX_CANDIDATES_PER_BLOCK {
                let mut member = block.newest;
                while member != NONE {
                    candidates.push(member);
                    member = next[member as usize];
                }
            } else {
                self.oversized_blocks[rule_index] += 1;
            }
            next[slot] = block.newest;
            block.newest = slot as u32;
            block.size += 1;
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
                if weight >= self.link_weight {
                    matches.vetoed.push((other, weight));
                }
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
    /// Forgets a record (erasure): out of every block, its values dropped.
    pub fn erase(&mut self, slot: usize) {
        self.remove(slot);
    }

    fn remove(&mut self, slot: usize) {
        let Some(old) = self.records.get_mut(slot).and_then(Option::take) else {
            return;
        };
        for (rule_index, rule) in self.rules.iter().enumerate() {
            let Some(key) = Matcher::key(rule, &old) else {
                continue;
            };
            let next = &mut self.next[rule_index];
            let Some(block) = self.blocks[rule_index].get_mut(&key) else {
                continue;
            };
            // Unlink `slot` from its chain.
            if block.newest as usize == slot {
                block.newest = next[slot];
            } else {
                let mut member = block.newest;
                while member != NONE {
                    if next[member as usize] as usize == slot {
                        next[member as usize] = next[slot];
                        break;
                    }
                    member = next[member as usize];
                }
            }
            next[slot] = NONE;
            block.size -= 1;
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

    /// The full explanation of a pair of held records, with the blocking rule that paired
    /// them.
    pub fn explain(&self, a: usize, b: usize) -> Option<Scored> {
        let (x, y) = (self.record(a)?, self.record(b)?);
        let mut scored = self.model.score(x, y);
        scored.blocking_rule = self
            .rules
            .iter()
            .position(|rule| {
                let key = Matcher::key(rule, x);
                key.is_some() && key == Matcher::key(rule, y)
            })
            .map(|index| self.model.spec.blocking[index].name.clone());
        Some(scored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(given: &str, family: &str, dob: &str) -> Prepared {
        let person = pipeline::entity::Person {
            given_name: Some(given.into()),
            family_name: Some(family.into()),
            date_of_birth: dob.parse().ok(),
            ..Default::default()
        };
        crate::person::prepare(&person, &crate::person::default_model().spec.fields)
    }

    #[test]
    fn updates_leave_their_old_blocks_and_scores_split_links_from_reviews() {
        let mut matcher = Matcher::new(crate::person::default_model(), Thresholds::default());
        assert!(
            matcher
                .upsert(0, record("ann", "okafor", "1970-01-01"))
                .links
                .is_empty()
        );
        let second = matcher.upsert(1, record("ann", "okafor", "1970-01-01"));
        assert_eq!(second.links.len(), 1, "{second:?}");
        matcher.upsert(2, record("ann", "okafor", "1970-01-01"));
        // Slot 1 moves to other blocks: a newcomer in the old ones no longer finds it.
        matcher.upsert(1, record("zeb", "quill", "1980-02-02"));
        let newcomer = matcher.upsert(3, record("ann", "okafor", "1970-01-01"));
        let found: Vec<usize> = newcomer.links.iter().map(|(slot, _)| *slot).collect();
        assert_eq!(found, vec![0, 2]);
        let moved = matcher.upsert(4, record("zeb", "quill", "1980-02-02"));
        assert_eq!(moved.links.len(), 1);
        assert_eq!(moved.links[0].0, 1);
        let explained = matcher.explain(4, 1).unwrap();
        assert_eq!(
            explained.blocking_rule.as_deref(),
            Some("family_name+date_of_birth")
        );
        // Same names, dates of birth far apart: never a link, and a conflict for clusters.
        let vetoed = matcher.upsert(5, record("ann", "okafor", "1999-09-09"));
        assert!(vetoed.links.is_empty(), "{vetoed:?}");
        assert!(matcher.conflict(0, 5));
    }
}
