//! Incremental clustering on a link graph, with stable golden ids.
//!
//! Records are nodes; a matcher gives each record weighted links to records it matched. A
//! cluster is what remains of a connected component after conflicts are respected: links are
//! taken strongest first (ties broken by the references, never by arrival), and a link that
//! would put two conflicting records (two NINOs, two UPRNs, a steward's never-match) in one
//! cluster is skipped. The partition is therefore a function of the records and their links,
//! not of the order they arrived in, and each arrival re-partitions only its own component.
//!
//! A cluster's golden id is derived from its first member in a fixed order (the most trusted
//! system, then the lowest source id), not from arrival, so a replay names every cluster the
//! same. When clusters merge, the absorbed id redirects to the survivor, so an id a report
//! stored yesterday still resolves; when a merge is undone, the absorbed id comes back to
//! life and the redirect goes.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};

use pipeline::Reference;

/// The result of adding or updating one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    pub golden_id: String,
    /// Golden ids that now redirect to a surviving cluster.
    pub absorbed: Vec<String>,
    /// Golden ids that came back when a merge was undone.
    pub revived: Vec<String>,
    /// Links skipped because they would have joined conflicting records.
    pub blocked: usize,
}

#[derive(Debug)]
struct Slot {
    reference: Reference,
    /// The golden id this record gives a cluster it names (see `naming_key`).
    own_id: String,
    cluster: usize,
    /// (other slot, weight); kept symmetric.
    links: Vec<(usize, f64)>,
}

#[derive(Debug)]
struct Cluster {
    /// Slots, ascending (arrival order).
    members: Vec<usize>,
}

/// The clustered records of one entity. Slots number records in arrival order.
#[derive(Debug)]
pub struct ClusterIndex {
    prefix: &'static str,
    /// Systems in order of trust, for choosing the record that names a cluster.
    priority: Vec<String>,
    slots: Vec<Slot>,
    by_reference: FxHashMap<Reference, usize>,
    /// Clusters keyed by the slot of the member that names them.
    clusters: FxHashMap<usize, Cluster>,
    by_golden_id: FxHashMap<String, usize>,
    redirects: FxHashMap<String, String>,
    /// Steward decisions, as slot pairs (smaller first).
    forced: FxHashMap<usize, BTreeSet<usize>>,
    never: FxHashSet<(usize, usize)>,
    /// Links held back from merging because they are ambiguous, as a symmetric adjacency.
    held: FxHashMap<usize, BTreeSet<usize>>,
    /// Slots of erased records (`retire`): in no cluster, in no output.
    retired: FxHashSet<usize>,
    /// What changed since `take_changes` (when tracked): golden ids created, removed or
    /// re-membered, and records whose cluster was recomputed.
    track_changes: bool,
    changed_ids: FxHashSet<String>,
    changed_slots: FxHashSet<usize>,
}

/// What changed in a `ClusterIndex` since the last `take_changes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Golden ids to write again (or delete, when no longer live), sorted.
    pub golden_ids: Vec<String>,
    /// Records whose golden id may have changed (or that were retired), sorted.
    pub records: Vec<Reference>,
}

const GOLDEN_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x2b4e_8d1a_7c39_4f60_a1d2_93be_54c7_0e18);

/// Two links of one record closer than this (in bits of match weight: 65,536 times the odds)
/// to records that conflict are ambiguous. Wider than what one comparison that only one of
/// the pairs could make adds (an exact address or phone, 12 to 16 bits): a CRM contact that
/// shares a home with one of two same-named relatives is not thereby that one.
pub const AMBIGUITY_MARGIN: f64 = 16.0;

/// (forced, weight, slot, slot)
type Edge = (bool, f64, usize, usize);

fn ordered(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl ClusterIndex {
    /// `prefix` starts every golden id (`GP` persons, `GH` properties).
    pub fn new(prefix: &'static str) -> ClusterIndex {
        ClusterIndex::with_priority(prefix, Vec::new())
    }

    /// A cluster's golden id comes from its first record in this order: systems by
    /// `priority` (unlisted ones after, by name), then source id. Not arrival order, so a
    /// replay that consumes partitions in another order names every cluster the same.
    pub fn with_priority(prefix: &'static str, priority: Vec<String>) -> ClusterIndex {
        ClusterIndex {
            priority,
            prefix,
            slots: Vec::new(),
            by_reference: FxHashMap::default(),
            clusters: FxHashMap::default(),
            by_golden_id: FxHashMap::default(),
            redirects: FxHashMap::default(),
            forced: FxHashMap::default(),
            never: FxHashSet::default(),
            held: FxHashMap::default(),
            retired: FxHashSet::default(),
            track_changes: false,
            changed_ids: FxHashSet::default(),
            changed_slots: FxHashSet::default(),
        }
    }

    /// A golden id derived from a source reference: replays give the same id.
    fn golden_id_for(&self, reference: &Reference) -> String {
        let name = format!("{}\u{1f}{}", reference.allocated_by, reference.id);
        let uuid = uuid::Uuid::new_v5(&GOLDEN_ID_NAMESPACE, name.as_bytes());
        let mut buffer = uuid::Uuid::encode_buffer();
        let hex = uuid.simple().encode_lower(&mut buffer);
        let mut id = String::with_capacity(self.prefix.len() + 17);
        id.push_str(self.prefix);
        id.push('-');
        id.push_str(&hex[..16]);
        id
    }

    /// The slot of a record, registering it (as a cluster of its own) if it is new; and
    /// whether it was.
    pub fn register(&mut self, reference: &Reference) -> (usize, bool) {
        if let Some(&slot) = self.by_reference.get(reference) {
            return (slot, false);
        }
        let slot = self.slots.len();
        let golden_id = self.golden_id_for(reference);
        if self.redirects.remove(&golden_id).is_some() && self.track_changes {
            self.changed_ids.insert(golden_id.clone());
        }
        self.by_golden_id.insert(golden_id.clone(), slot);
        self.clusters.insert(
            slot,
            Cluster {
                members: vec![slot],
            },
        );
        self.slots.push(Slot {
            own_id: golden_id.clone(),
            reference: reference.clone(),
            cluster: slot,
            links: Vec::new(),
        });
        self.by_reference.insert(reference.clone(), slot);
        (slot, true)
    }

    pub fn slot_of(&self, reference: &Reference) -> Option<usize> {
        self.by_reference.get(reference).copied()
    }

    pub fn reference(&self, slot: usize) -> &Reference {
        &self.slots[slot].reference
    }

    /// Replaces a record's links (to records already registered) and re-partitions what they
    /// touch. `conflict(a, b)` says two records may never share a cluster.
    pub fn relink(
        &mut self,
        slot: usize,
        links: Vec<(usize, f64)>,
        conflict: impl Fn(usize, usize) -> bool,
    ) -> Upsert {
        // The common case of a stream: a record alone before and after costs nothing more.
        if links.is_empty()
            && self.slots[slot].links.is_empty()
            && self
                .clusters
                .get(&slot)
                .is_some_and(|c| c.members.len() == 1)
            && !self.forced.contains_key(&slot)
        {
            self.mark(slot);
            return Upsert {
                golden_id: self.slots[slot].own_id.clone(),
                absorbed: Vec::new(),
                revived: Vec::new(),
                blocked: 0,
            };
        }
        let mut touched = vec![slot];
        for (other, _) in std::mem::take(&mut self.slots[slot].links) {
            self.slots[other].links.retain(|&(back, _)| back != slot);
            touched.push(other);
        }
        for &(other, weight) in &links {
            if other != slot {
                self.slots[other].links.push((slot, weight));
            }
        }
        self.slots[slot].links = links.into_iter().filter(|&(o, _)| o != slot).collect();
        self.repartition(&touched, slot, conflict)
    }

    /// A steward decision: these two records are one (`true`) or never one (`false`).
    /// Replaces any earlier decision on the pair.
    pub fn decide(
        &mut self,
        a: usize,
        b: usize,
        same: bool,
        conflict: impl Fn(usize, usize) -> bool,
    ) -> Upsert {
        self.clear_decision(a, b);
        let pair = ordered(a, b);
        if same {
            self.forced.entry(pair.0).or_default().insert(pair.1);
            self.forced.entry(pair.1).or_default().insert(pair.0);
        } else {
            self.never.insert(pair);
        }
        self.repartition(&[a, b], a, conflict)
    }

    /// Withdraws a steward decision; the engine's own links decide again.
    pub fn undecide(
        &mut self,
        a: usize,
        b: usize,
        conflict: impl Fn(usize, usize) -> bool,
    ) -> Upsert {
        self.clear_decision(a, b);
        self.repartition(&[a, b], a, conflict)
    }

    /// Takes a record out for good (erasure): its links, held links and steward decisions go,
    /// the rest of its cluster re-partitions without it, and it leaves the cross-reference,
    /// the golden ids and the counts. Its slot stays (slots are positions in flat arrays)
    /// but no reference leads to it; registering the reference again starts a new record.
    pub fn retire(&mut self, slot: usize, conflict: impl Fn(usize, usize) -> bool) -> Upsert {
        let decided: Vec<usize> = self
            .forced
            .get(&slot)
            .into_iter()
            .flatten()
            .copied()
            .chain(
                self.never
                    .iter()
                    .filter(|&&(a, b)| a == slot || b == slot)
                    .map(|&(a, b)| if a == slot { b } else { a }),
            )
            .collect();
        for other in decided {
            self.clear_decision(slot, other);
        }
        if let Some(partners) = self.held.remove(&slot) {
            for other in partners {
                if let Some(set) = self.held.get_mut(&other) {
                    set.remove(&slot);
                }
            }
        }
        let upsert = self.relink(slot, Vec::new(), conflict);
        self.mark(slot);
        self.clusters.remove(&slot);
        self.by_golden_id.remove(&self.slots[slot].own_id);
        self.by_reference.remove(&self.slots[slot].reference);
        self.retired.insert(slot);
        upsert
    }

    /// Starts recording what changes, for `take_changes` (off by default: a hub nobody
    /// writes out need not remember).
    pub fn track_changes(&mut self) {
        self.track_changes = true;
    }

    /// Records that a record's cluster must be written again (its values changed).
    pub fn mark(&mut self, slot: usize) {
        if !self.track_changes {
            return;
        }
        self.changed_slots.insert(slot);
        let golden_id = self.golden_id_of_slot(slot).to_string();
        self.changed_ids.insert(golden_id);
    }

    /// Marks a live golden id to be written again (an override changed it).
    pub fn mark_golden_id(&mut self, golden_id: &str) {
        if self.track_changes {
            self.changed_ids.insert(golden_id.to_string());
        }
    }

    /// What changed since the last call, and forgets it.
    pub fn take_changes(&mut self) -> Changes {
        let mut golden_ids: Vec<String> = self.changed_ids.drain().collect();
        golden_ids.sort_unstable();
        let mut records: Vec<Reference> = self
            .changed_slots
            .drain()
            .map(|slot| self.slots[slot].reference.clone())
            .collect();
        records.sort_unstable();
        records.dedup();
        Changes {
            golden_ids,
            records,
        }
    }

    /// Steward decisions in force, as (reference, reference, same), each pair once with the
    /// smaller reference first, sorted: what a restart must apply again.
    pub fn decisions(&self) -> Vec<(&Reference, &Reference, bool)> {
        let reference = |slot: usize| &self.slots[slot].reference;
        let pair = |a: usize, b: usize, same: bool| {
            let (x, y) = (reference(a), reference(b));
            if x <= y { (x, y, same) } else { (y, x, same) }
        };
        let mut decisions: Vec<_> = self
            .forced
            .iter()
            .flat_map(|(&a, others)| others.iter().filter(move |&&b| a < b).map(move |&b| (a, b)))
            .map(|(a, b)| pair(a, b, true))
            .chain(self.never.iter().map(|&(a, b)| pair(a, b, false)))
            .collect();
        decisions.sort();
        decisions
    }

    fn clear_decision(&mut self, a: usize, b: usize) {
        let pair = ordered(a, b);
        self.never.remove(&pair);
        for (x, y) in [(a, b), (b, a)] {
            if let Some(set) = self.forced.get_mut(&x) {
                set.remove(&y);
                if set.is_empty() {
                    self.forced.remove(&x);
                }
            }
        }
    }

    /// The order in which records name their cluster: trusted systems first, then id.
    fn naming_key(&self, slot: usize) -> (usize, &str, &str) {
        let reference = &self.slots[slot].reference;
        let rank = self
            .priority
            .iter()
            .position(|system| *system == reference.allocated_by)
            .unwrap_or(self.priority.len());
        (rank, &reference.allocated_by, &reference.id)
    }

    /// The records reachable from `start` over links and forced pairs.
    fn component(&self, start: &[usize]) -> Vec<usize> {
        let mut seen: FxHashSet<usize> = FxHashSet::default();
        let mut stack: Vec<usize> = start.to_vec();
        while let Some(node) = stack.pop() {
            if !seen.insert(node) {
                continue;
            }
            stack.extend(self.slots[node].links.iter().map(|&(other, _)| other));
            if let Some(forced) = self.forced.get(&node) {
                stack.extend(forced.iter().copied());
            }
            // Members of the node's current cluster: a split must see all of them.
            stack.extend(self.clusters[&self.slots[node].cluster].members.iter());
        }
        let mut nodes: Vec<usize> = seen.into_iter().collect();
        nodes.sort_unstable();
        nodes
    }

    fn repartition(
        &mut self,
        touched: &[usize],
        subject: usize,
        conflict: impl Fn(usize, usize) -> bool,
    ) -> Upsert {
        let nodes = self.component(touched);
        let local: FxHashMap<usize, usize> = nodes
            .iter()
            .enumerate()
            .map(|(index, &slot)| (slot, index))
            .collect();
        // Edges once each: forced first, then strongest, ties by reference.
        let mut edges: Vec<Edge> = Vec::new();
        for &a in &nodes {
            for &(b, weight) in &self.slots[a].links {
                if a < b {
                    edges.push((false, weight, a, b));
                }
            }
            for &b in self.forced.get(&a).into_iter().flatten() {
                if a < b {
                    edges.push((true, f64::INFINITY, a, b));
                }
            }
        }
        // A record whose strongest links (within a margin of the best) go to records that may
        // not be together (a CRM contact without a date of birth matching a parent and an
        // adult child of one name) is ambiguous: all its links are held for a steward, rather
        // than one winning on a near-tie or a weaker one slipping through. A much stronger
        // link (a shared UPRN over a shared address) still wins.
        let mut held: BTreeSet<(usize, usize)> = BTreeSet::new();
        for &x in &nodes {
            let links = &self.slots[x].links;
            let best = links
                .iter()
                .map(|&(_, w)| w)
                .fold(f64::NEG_INFINITY, f64::max);
            let contenders: Vec<usize> = links
                .iter()
                .filter(|&&(_, w)| w > best - AMBIGUITY_MARGIN)
                .map(|&(other, _)| other)
                .collect();
            let ambiguous = contenders.iter().enumerate().any(|(i, &a)| {
                contenders[i + 1..]
                    .iter()
                    .any(|&b| self.never.contains(&ordered(a, b)) || conflict(a, b))
            });
            if ambiguous {
                held.extend(links.iter().map(|&(other, _)| ordered(x, other)));
            }
        }
        edges.retain(|&(forced, _, a, b)| forced || !held.contains(&(a, b)));
        for &(a, b) in &held {
            self.held.entry(a).or_default().insert(b);
            self.held.entry(b).or_default().insert(a);
        }
        let slots = &self.slots;
        let references = |&(_, _, a, b): &Edge| {
            let (ra, rb) = (&slots[a].reference, &slots[b].reference);
            if ra <= rb { (ra, rb) } else { (rb, ra) }
        };
        edges.sort_by(|x, y| {
            y.0.cmp(&x.0)
                .then(y.1.total_cmp(&x.1))
                .then_with(|| references(x).cmp(&references(y)))
        });
        let mut sets: Vec<Vec<usize>> = nodes.iter().map(|&slot| vec![slot]).collect();
        let mut owner: Vec<usize> = (0..nodes.len()).collect();
        let mut blocked = 0;
        for (forced, _, a, b) in edges {
            let (sa, sb) = (owner[local[&a]], owner[local[&b]]);
            if sa == sb {
                continue;
            }
            let clash = !forced
                && sets[sa].iter().any(|&x| {
                    sets[sb]
                        .iter()
                        .any(|&y| self.never.contains(&ordered(x, y)) || conflict(x, y))
                });
            if clash {
                blocked += 1;
                continue;
            }
            let (keep, gone) = if sets[sa].len() >= sets[sb].len() {
                (sa, sb)
            } else {
                (sb, sa)
            };
            let moved = std::mem::take(&mut sets[gone]);
            for &slot in &moved {
                owner[local[&slot]] = keep;
            }
            sets[keep].extend(moved);
        }

        // Old clusters of these nodes, and their ids.
        let old_roots: BTreeSet<usize> = nodes.iter().map(|&n| self.slots[n].cluster).collect();
        let mut old_ids: Vec<(usize, String)> = Vec::new();
        for root in &old_roots {
            self.clusters.remove(root).expect("cluster exists");
            let golden_id = self.slots[*root].own_id.clone();
            self.by_golden_id.remove(&golden_id);
            if self.track_changes {
                self.changed_ids.insert(golden_id.clone());
            }
            old_ids.push((*root, golden_id));
        }
        if self.track_changes {
            self.changed_slots.extend(nodes.iter().copied());
        }
        let mut revived = Vec::new();
        for mut members in sets.into_iter().filter(|set| !set.is_empty()) {
            members.sort_unstable();
            let root = *members
                .iter()
                .min_by_key(|&&slot| self.naming_key(slot))
                .expect("a set has members");
            let golden_id = self.slots[root].own_id.clone();
            if self.redirects.remove(&golden_id).is_some() {
                revived.push(golden_id.clone());
            }
            for &member in &members {
                self.slots[member].cluster = root;
            }
            self.by_golden_id.insert(golden_id.clone(), root);
            if self.track_changes {
                self.changed_ids.insert(golden_id.clone());
            }
            self.clusters.insert(root, Cluster { members });
        }
        // An old id whose creator no longer heads a cluster redirects to its creator's cluster.
        let mut absorbed = Vec::new();
        for (root, golden_id) in old_ids {
            if self.by_golden_id.contains_key(&golden_id) {
                continue;
            }
            let survivor = self.slots[self.slots[root].cluster].own_id.clone();
            self.redirects.insert(golden_id.clone(), survivor);
            absorbed.push(golden_id);
        }
        // A record's own fresh id that never was a cluster of more than itself is noise.
        let own = &self.slots[subject].own_id;
        if self.slots[subject].cluster != subject && absorbed.contains(own) {
            absorbed.retain(|id| id != own);
        }
        Upsert {
            golden_id: self.golden_id_of_slot(subject).to_string(),
            absorbed,
            revived,
            blocked,
        }
    }

    /// The live golden id an id (live or absorbed) resolves to.
    pub fn resolve(&self, golden_id: &str) -> Option<String> {
        let mut id = golden_id;
        for _ in 0..=self.redirects.len() {
            if self.by_golden_id.contains_key(id) {
                return Some(id.to_string());
            }
            id = self.redirects.get(id)?;
        }
        None
    }

    /// The golden id of a source record.
    pub fn golden_id_of(&self, reference: &Reference) -> Option<&str> {
        let slot = self.by_reference.get(reference)?;
        Some(self.golden_id_of_slot(*slot))
    }

    pub fn golden_id_of_slot(&self, slot: usize) -> &str {
        &self.slots[self.slots[slot].cluster].own_id
    }

    /// The cluster (the slot of the member naming it) a slot belongs to.
    pub fn cluster_of(&self, slot: usize) -> usize {
        self.slots[slot].cluster
    }

    /// The slots of a live golden id, in arrival order.
    pub fn member_slots(&self, golden_id: &str) -> &[usize] {
        self.by_golden_id
            .get(golden_id)
            .map_or(&[], |root| &self.clusters[root].members)
    }

    /// The source records of a live golden id, in arrival order.
    pub fn members(&self, golden_id: &str) -> Vec<&Reference> {
        self.member_slots(golden_id)
            .iter()
            .map(|&slot| &self.slots[slot].reference)
            .collect()
    }

    /// The links among a cluster's members: (slot, slot, weight), each once.
    pub fn links_within(&self, golden_id: &str) -> Vec<(usize, usize, f64)> {
        let members = self.member_slots(golden_id);
        let root = members.first().map(|&slot| self.slots[slot].cluster);
        let mut links = Vec::new();
        for &a in members {
            for &(b, weight) in &self.slots[a].links {
                if a < b && Some(self.slots[b].cluster) == root {
                    links.push((a, b, weight));
                }
            }
            for &b in self.forced.get(&a).into_iter().flatten() {
                if a < b {
                    links.push((a, b, f64::INFINITY));
                }
            }
        }
        links
    }

    /// Links held back as ambiguous, with their weights: for a steward to decide.
    pub fn held_links(&self) -> Vec<(usize, usize, f64)> {
        let mut links: Vec<(usize, usize, f64)> = self
            .held
            .iter()
            .flat_map(|(&a, partners)| partners.range(a + 1..).map(move |&b| (a, b)))
            .filter_map(|(a, b)| {
                let weight = self.slots[a].links.iter().find(|link| link.0 == b)?.1;
                Some((a, b, weight))
            })
            .collect();
        links.sort_by_key(|&(a, b, _)| (a, b));
        links
    }

    /// Live golden ids, sorted.
    pub fn golden_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .clusters
            .keys()
            .map(|&root| self.slots[root].own_id.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every source record with its golden id, sorted by source reference.
    pub fn xref(&self) -> Vec<(&Reference, &str)> {
        let mut rows: Vec<(&Reference, &str)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(index, _)| !self.retired.contains(index))
            .map(|(_, slot)| (&slot.reference, self.golden_id_of_slot(slot.cluster)))
            .collect();
        rows.sort_unstable();
        rows
    }

    /// Redirects from absorbed ids, sorted.
    pub fn redirects(&self) -> BTreeMap<&str, &str> {
        self.redirects
            .iter()
            .map(|(from, to)| (from.as_str(), to.as_str()))
            .collect()
    }

    /// The absorbed ids whose chain of redirects passes through one of `changed` (itself
    /// included), with the live id each resolves to now: the only redirect rows that can
    /// differ from before those ids changed, since a chain's links change only at ids
    /// recorded as changed.
    pub fn redirects_through(&self, changed: &FxHashSet<&str>) -> Vec<(&str, String)> {
        let mut rows: Vec<(&str, String)> = self
            .redirects
            .keys()
            .filter(|from| {
                let mut id = from.as_str();
                for _ in 0..=self.redirects.len() {
                    if changed.contains(id) {
                        return true;
                    }
                    match self.redirects.get(id) {
                        Some(next) if !self.by_golden_id.contains_key(id) => id = next,
                        _ => return false,
                    }
                }
                false
            })
            .filter_map(|from| Some((from.as_str(), self.resolve(from)?)))
            .collect();
        rows.sort_unstable();
        rows
    }

    pub fn n_records(&self) -> usize {
        self.slots.len() - self.retired.len()
    }

    pub fn n_golden(&self) -> usize {
        self.clusters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(id: &str) -> Reference {
        Reference {
            id: id.into(),
            allocated_by: "hms".into(),
        }
    }

    fn no_conflict(_: usize, _: usize) -> bool {
        false
    }

    #[test]
    fn a_link_joins_and_a_bridge_merges_with_a_redirect() {
        let mut index = ClusterIndex::new("GH");
        let (a, _) = index.register(&reference("a"));
        let first = index.relink(a, vec![], no_conflict);
        let (b, _) = index.register(&reference("b"));
        let second = index.relink(b, vec![], no_conflict);
        assert_ne!(first.golden_id, second.golden_id);
        let (c, _) = index.register(&reference("c"));
        let bridged = index.relink(c, vec![(a, 10.0), (b, 12.0)], no_conflict);
        assert_eq!(
            bridged.golden_id, first.golden_id,
            "the earlier cluster survives"
        );
        assert_eq!(bridged.absorbed, vec![second.golden_id.clone()]);
        assert_eq!(index.n_golden(), 1);
        assert_eq!(
            index.resolve(&second.golden_id),
            Some(first.golden_id.clone())
        );
        assert_eq!(index.members(&first.golden_id).len(), 3);
        assert_eq!(index.links_within(&first.golden_id).len(), 2);
    }

    #[test]
    fn conflicts_keep_the_strongest_links_and_skip_the_rest() {
        // a and c conflict (two UPRNs); b links to both, more strongly to c.
        let mut index = ClusterIndex::new("GH");
        let conflict = |x: usize, y: usize| ordered(x, y) == (0, 2);
        let (a, _) = index.register(&reference("a"));
        index.relink(a, vec![], conflict);
        let (c, _) = index.register(&reference("c"));
        index.relink(c, vec![], conflict);
        let (b, _) = index.register(&reference("b"));
        let upsert = index.relink(b, vec![(a, 5.0), (c, 9.0)], conflict);
        assert_eq!(upsert.blocked, 1);
        assert_eq!(index.n_golden(), 2);
        assert_eq!(index.golden_id_of_slot(b), index.golden_id_of_slot(c));
    }

    #[test]
    fn steward_decisions_are_kept_and_withdrawing_one_restores_the_xref() {
        let mut index = ClusterIndex::new("GP");
        let (a, _) = index.register(&reference("a"));
        index.relink(a, vec![], no_conflict);
        let (b, _) = index.register(&reference("b"));
        index.relink(b, vec![(a, 20.0)], no_conflict);
        let before: Vec<(Reference, String)> = index
            .xref()
            .into_iter()
            .map(|(r, g)| (r.clone(), g.to_string()))
            .collect();
        let split = index.decide(a, b, false, no_conflict);
        assert_eq!(index.n_golden(), 2);
        assert!(
            split
                .revived
                .contains(&index.golden_id_of_slot(b).to_string())
        );
        // A record update does not undo a steward's never-match.
        index.relink(b, vec![(a, 30.0)], no_conflict);
        assert_eq!(index.n_golden(), 2);
        index.undecide(a, b, no_conflict);
        let after: Vec<(Reference, String)> = index
            .xref()
            .into_iter()
            .map(|(r, g)| (r.clone(), g.to_string()))
            .collect();
        assert_eq!(before, after);
        let (c, _) = index.register(&reference("c"));
        index.relink(c, vec![], no_conflict);
        index.decide(a, c, true, no_conflict);
        assert_eq!(index.n_golden(), 1, "force-match joins c");
    }

    /// (records, links as (i, j, weight), conflicting pairs)
    type Graph = (usize, Vec<(usize, usize, u8)>, Vec<(usize, usize)>);

    fn graph() -> impl Strategy<Value = Graph> {
        (2usize..16).prop_flat_map(|n| {
            (
                Just(n),
                proptest::collection::vec((0..n, 0..n, 0u8..4), 0..24),
                proptest::collection::vec((0..n, 0..n), 0..4),
            )
        })
    }

    fn shuffle(order: &mut [usize], seed: u64) {
        let mut state = seed;
        for i in (1..order.len()).rev() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            order.swap(i, (state >> 33) as usize % (i + 1));
        }
    }

    /// Builds the index by adding records in `order`; each links to the earlier-added records
    /// it has an edge with, as a matcher would.
    fn build(
        n: usize,
        edges: &[(usize, usize, u8)],
        conflicts: &[(usize, usize)],
        order: &[usize],
    ) -> (ClusterIndex, Vec<usize>) {
        let mut index = ClusterIndex::new("GP");
        let mut slot_of = vec![usize::MAX; n];
        let mut record_of = Vec::new();
        for &record in order {
            let (slot, _) = index.register(&reference(&format!("r{record:02}")));
            slot_of[record] = slot;
            record_of.push(record);
            let links: Vec<(usize, f64)> = edges
                .iter()
                .filter_map(|&(i, j, w)| {
                    let other = if i == record {
                        j
                    } else if j == record {
                        i
                    } else {
                        return None;
                    };
                    (slot_of[other] != usize::MAX && other != record)
                        .then(|| (slot_of[other], f64::from(w)))
                })
                .collect();
            let conflict = |x: usize, y: usize| {
                let (x, y) = (record_of[x], record_of[y]);
                conflicts.contains(&(x, y)) || conflicts.contains(&(y, x))
            };
            index.relink(slot, links, conflict);
        }
        (index, slot_of)
    }

    fn partition(index: &ClusterIndex) -> BTreeSet<BTreeSet<String>> {
        let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (reference, golden) in index.xref() {
            groups
                .entry(golden.to_string())
                .or_default()
                .insert(reference.id.clone());
        }
        groups.into_values().collect()
    }

    proptest! {
        /// The partition depends on the records and links, not on arrival order, conflicts
        /// included; without conflicts it is the connected components.
        #[test]
        fn partition_does_not_depend_on_arrival_order(
            (n, edges, conflicts) in graph(),
            seed in any::<u64>(),
        ) {
            let forward: Vec<usize> = (0..n).collect();
            let mut shuffled = forward.clone();
            shuffle(&mut shuffled, seed);
            let (a, _) = build(n, &edges, &conflicts, &forward);
            let (b, _) = build(n, &edges, &conflicts, &shuffled);
            prop_assert_eq!(partition(&a), partition(&b));
            // The golden ids as well: clusters are named by reference, not by arrival.
            let ids = |index: &ClusterIndex| -> Vec<(Reference, String)> {
                index.xref().into_iter().map(|(r, g)| (r.clone(), g.to_string())).collect()
            };
            prop_assert_eq!(ids(&a), ids(&b));
        }

        /// A steward's force-match followed by its withdrawal gives back the exact
        /// cross-reference (golden ids included) and every redirect resolves.
        #[test]
        fn merge_then_unmerge_restores_the_exact_xref(
            (n, edges, conflicts) in graph(),
            pick in any::<(usize, usize)>(),
            same in any::<bool>(),
        ) {
            let order: Vec<usize> = (0..n).collect();
            let (mut index, slot_of) = build(n, &edges, &conflicts, &order);
            let snapshot = |index: &ClusterIndex| -> Vec<(Reference, String)> {
                index.xref().into_iter().map(|(r, g)| (r.clone(), g.to_string())).collect()
            };
            let before = snapshot(&index);
            let (a, b) = (slot_of[pick.0 % n], slot_of[pick.1 % n]);
            prop_assume!(a != b);
            let conflict = |x: usize, y: usize| {
                conflicts.contains(&(x, y)) || conflicts.contains(&(y, x))
            };
            index.decide(a, b, same, conflict);
            for id in index.redirects().keys() {
                prop_assert!(index.resolve(id).is_some());
            }
            index.undecide(a, b, conflict);
            prop_assert_eq!(before, snapshot(&index));
        }

        /// Replacing only the redirects `redirects_through` names after each change (and
        /// deleting those of the changed ids) keeps a stored copy equal to every redirect.
        #[test]
        fn redirects_through_the_changed_ids_keep_a_stored_copy_whole(
            (n, edges, conflicts) in graph(),
            steps in proptest::collection::vec((any::<usize>(), any::<usize>(), 0u8..5), 1..12),
        ) {
            let mut index = ClusterIndex::new("GP");
            index.track_changes();
            let mut stored: BTreeMap<String, String> = BTreeMap::new();
            let conflict = |x: usize, y: usize| {
                conflicts.contains(&(x, y)) || conflicts.contains(&(y, x))
            };
            let mut slots: Vec<usize> = (0..n)
                .map(|record| index.register(&reference(&format!("r{record:02}"))).0)
                .collect();
            for (i, j, op) in steps {
                let (a, b) = (slots[i % n], slots[j % n]);
                match op {
                    // Links as the edges say, or a fresh strong link between the two.
                    0 | 1 => {
                        let mut links: Vec<(usize, f64)> = edges
                            .iter()
                            .filter(|&&(x, _, _)| x == i % n)
                            .map(|&(_, y, w)| (slots[y], f64::from(w)))
                            .filter(|&(other, _)| !index.retired.contains(&other))
                            .collect();
                        if op == 1 {
                            links.push((b, 3.0));
                        }
                        if !index.retired.contains(&a) {
                            index.relink(a, links, conflict);
                        }
                    }
                    2 if a != b => { index.decide(a, b, i % 2 == 0, conflict); }
                    3 if a != b => { index.undecide(a, b, conflict); }
                    4 if !index.retired.contains(&a) => {
                        index.retire(a, conflict);
                        // The reference comes back as a new record later.
                        slots[i % n] = index.register(&reference(&format!("r{:02}", i % n))).0;
                    }
                    _ => {}
                }
                let changes = index.take_changes();
                let changed: FxHashSet<&str> =
                    changes.golden_ids.iter().map(String::as_str).collect();
                let rows = index.redirects_through(&changed);
                for id in changed.iter().copied().chain(rows.iter().map(|(from, _)| *from)) {
                    stored.remove(id);
                }
                stored.extend(rows.into_iter().map(|(from, to)| (from.to_string(), to)));
                let whole: BTreeMap<String, String> = index
                    .redirects()
                    .into_keys()
                    .filter_map(|from| Some((from.to_string(), index.resolve(from)?)))
                    .collect();
                prop_assert_eq!(&stored, &whole);
            }
        }
    }
}
