//! Incremental clustering on match keys with stable golden ids.
//!
//! A record joins every cluster it shares a key with, unless an exclusive attribute (two
//! different valid NINOs, two different UPRNs) says the clusters are different things. When
//! clusters merge, the one created first survives and the absorbed golden id redirects to it,
//! so an id a report stored yesterday still resolves today.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pipeline::Reference;

/// What a record offers for matching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Match keys: records sharing one are the same thing (unless exclusive attributes clash).
    pub keys: Vec<String>,
    /// Attributes one real thing has only one value of: (attribute, value).
    pub exclusive: Vec<(&'static str, String)>,
}

/// The result of adding or updating one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    pub golden_id: String,
    /// Golden ids absorbed into `golden_id` by this record.
    pub absorbed: Vec<String>,
    /// Keys shared with a cluster that an exclusive attribute kept apart.
    pub blocked: Vec<String>,
}

#[derive(Debug)]
struct Slot {
    reference: Reference,
    cluster: u64,
    evidence: Evidence,
}

#[derive(Debug)]
struct Cluster {
    golden_id: String,
    members: Vec<usize>,
}

/// The clustered records of one entity.
#[derive(Debug)]
pub struct ClusterIndex {
    prefix: &'static str,
    slots: Vec<Slot>,
    by_reference: HashMap<Reference, usize>,
    by_key: HashMap<String, usize>,
    /// Clusters by creation sequence: the smaller survives a merge.
    clusters: BTreeMap<u64, Cluster>,
    by_golden_id: HashMap<String, u64>,
    redirects: HashMap<String, String>,
    next_cluster: u64,
}

const GOLDEN_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x2b4e_8d1a_7c39_4f60_a1d2_93be_54c7_0e18);

impl ClusterIndex {
    /// `prefix` starts every golden id (`GP` persons, `GH` properties).
    pub fn new(prefix: &'static str) -> ClusterIndex {
        ClusterIndex {
            prefix,
            slots: Vec::new(),
            by_reference: HashMap::new(),
            by_key: HashMap::new(),
            clusters: BTreeMap::new(),
            by_golden_id: HashMap::new(),
            redirects: HashMap::new(),
            next_cluster: 0,
        }
    }

    /// A golden id derived from the reference that created the cluster: replays give the same id.
    fn golden_id_for(&self, reference: &Reference) -> String {
        let name = format!("{}\u{1f}{}", reference.allocated_by, reference.id);
        let uuid = uuid::Uuid::new_v5(&GOLDEN_ID_NAMESPACE, name.as_bytes())
            .simple()
            .to_string();
        format!("{}-{}", self.prefix, &uuid[..16])
    }

    /// Adds a record, or replaces the evidence of one already held, and links it.
    pub fn upsert(&mut self, reference: &Reference, evidence: Evidence) -> Upsert {
        let mut fresh_golden_id = None;
        let slot = match self.by_reference.get(reference) {
            Some(&slot) => {
                let old_keys = std::mem::take(&mut self.slots[slot].evidence.keys);
                for key in old_keys {
                    if self.by_key.get(&key) == Some(&slot) {
                        self.by_key.remove(&key);
                    }
                }
                self.slots[slot].evidence = evidence;
                slot
            }
            None => {
                let slot = self.slots.len();
                let cluster = self.next_cluster;
                self.next_cluster += 1;
                let golden_id = self.golden_id_for(reference);
                fresh_golden_id = Some(golden_id.clone());
                self.by_golden_id.insert(golden_id.clone(), cluster);
                self.clusters.insert(
                    cluster,
                    Cluster {
                        golden_id,
                        members: vec![slot],
                    },
                );
                self.slots.push(Slot {
                    reference: reference.clone(),
                    cluster,
                    evidence,
                });
                self.by_reference.insert(reference.clone(), slot);
                slot
            }
        };
        let mut absorbed = Vec::new();
        let mut blocked = Vec::new();
        let keys = self.slots[slot].evidence.keys.clone();
        for key in keys {
            match self.by_key.get(&key) {
                None => {
                    self.by_key.insert(key, slot);
                }
                Some(&other) => {
                    let (mine, theirs) = (self.slots[slot].cluster, self.slots[other].cluster);
                    if mine == theirs {
                        continue;
                    }
                    if self.compatible(mine, theirs) {
                        absorbed.push(self.merge(mine, theirs));
                    } else {
                        blocked.push(key);
                    }
                }
            }
        }
        // A new record that joined an existing cluster: its own id was never seen by anyone,
        // so it needs no redirect and is not reported as absorbed.
        if let Some(fresh) = fresh_golden_id
            && absorbed.contains(&fresh)
        {
            absorbed.retain(|id| *id != fresh);
            self.redirects.remove(&fresh);
        }
        Upsert {
            golden_id: self.clusters[&self.slots[slot].cluster].golden_id.clone(),
            absorbed,
            blocked,
        }
    }

    fn exclusive_values(&self, cluster: u64) -> BTreeMap<&'static str, BTreeSet<&str>> {
        let mut values: BTreeMap<&'static str, BTreeSet<&str>> = BTreeMap::new();
        for &member in &self.clusters[&cluster].members {
            for (attribute, value) in &self.slots[member].evidence.exclusive {
                values.entry(attribute).or_default().insert(value);
            }
        }
        values
    }

    /// Two clusters may merge unless, for some exclusive attribute, both hold values and no
    /// value is shared.
    fn compatible(&self, a: u64, b: u64) -> bool {
        let (a, b) = (self.exclusive_values(a), self.exclusive_values(b));
        a.iter().all(|(attribute, values)| match b.get(attribute) {
            Some(other) => !values.is_disjoint(other),
            None => true,
        })
    }

    /// Merges two clusters; the earlier-created survives. Returns the absorbed golden id.
    fn merge(&mut self, a: u64, b: u64) -> String {
        let (survivor, absorbed) = if a < b { (a, b) } else { (b, a) };
        let gone = self.clusters.remove(&absorbed).expect("cluster exists");
        for &member in &gone.members {
            self.slots[member].cluster = survivor;
        }
        let survivor_cluster = self.clusters.get_mut(&survivor).expect("cluster exists");
        survivor_cluster.members.extend(gone.members);
        self.by_golden_id.remove(&gone.golden_id);
        self.redirects
            .insert(gone.golden_id.clone(), survivor_cluster.golden_id.clone());
        gone.golden_id
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
        Some(&self.clusters[&self.slots[*slot].cluster].golden_id)
    }

    /// The source records of a live golden id, in arrival order.
    pub fn members(&self, golden_id: &str) -> Vec<&Reference> {
        let Some(cluster) = self.by_golden_id.get(golden_id) else {
            return Vec::new();
        };
        let mut members = self.clusters[cluster].members.clone();
        members.sort_unstable();
        members
            .into_iter()
            .map(|slot| &self.slots[slot].reference)
            .collect()
    }

    /// The slot holding a key, for lookups such as "the property with this UPRN".
    pub fn golden_id_by_key(&self, key: &str) -> Option<&str> {
        let slot = self.by_key.get(key)?;
        Some(&self.clusters[&self.slots[*slot].cluster].golden_id)
    }

    /// Live golden ids, sorted.
    pub fn golden_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .clusters
            .values()
            .map(|cluster| cluster.golden_id.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every source record with its golden id, sorted by source reference.
    pub fn xref(&self) -> Vec<(&Reference, &str)> {
        let mut rows: Vec<(&Reference, &str)> = self
            .slots
            .iter()
            .map(|slot| {
                (
                    &slot.reference,
                    self.clusters[&slot.cluster].golden_id.as_str(),
                )
            })
            .collect();
        rows.sort_unstable();
        rows
    }

    pub fn n_records(&self) -> usize {
        self.slots.len()
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

    fn evidence(keys: &[&str], uprn: Option<&str>) -> Evidence {
        Evidence {
            keys: keys.iter().map(|key| key.to_string()).collect(),
            exclusive: uprn
                .map(|uprn| ("uprn", uprn.to_string()))
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn shared_key_links_and_a_bridge_merges_with_a_redirect() {
        let mut index = ClusterIndex::new("GH");
        let a = index.upsert(&reference("a"), evidence(&["k1"], None));
        let b = index.upsert(&reference("b"), evidence(&["k2"], None));
        assert_ne!(a.golden_id, b.golden_id);
        let c = index.upsert(&reference("c"), evidence(&["k1", "k2"], None));
        assert_eq!(c.golden_id, a.golden_id, "the earlier cluster survives");
        assert_eq!(c.absorbed, vec![b.golden_id.clone()]);
        assert_eq!(index.n_golden(), 1);
        assert_eq!(index.resolve(&b.golden_id), Some(a.golden_id.clone()));
        assert_eq!(index.members(&a.golden_id).len(), 3);
    }

    #[test]
    fn exclusive_attributes_block_a_merge() {
        let mut index = ClusterIndex::new("GH");
        index.upsert(&reference("a"), evidence(&["addr"], Some("1")));
        let b = index.upsert(&reference("b"), evidence(&["addr"], Some("2")));
        assert_eq!(b.blocked, vec!["addr".to_string()]);
        assert_eq!(index.n_golden(), 2);
        let c = index.upsert(&reference("c"), evidence(&["addr"], None));
        assert!(c.absorbed.is_empty());
        assert_eq!(index.n_golden(), 2, "no uprn joins the first cluster only");
    }

    #[test]
    fn golden_ids_are_stable_across_replays() {
        let run = || {
            let mut index = ClusterIndex::new("GP");
            index.upsert(&reference("x"), evidence(&["k"], None));
            index.upsert(&reference("y"), evidence(&["k"], None));
            index
                .xref()
                .into_iter()
                .map(|(r, g)| (r.clone(), g.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    proptest! {
        /// Without exclusive attributes, the partition is the connected components of the
        /// key graph, whatever the arrival order.
        #[test]
        fn partition_does_not_depend_on_arrival_order(
            records in proptest::collection::vec(proptest::collection::vec(0u8..12, 0..3), 1..25),
            seed in any::<u64>(),
        ) {
            let partition = |order: &[usize]| {
                let mut index = ClusterIndex::new("GP");
                for &n in order {
                    let keys: Vec<String> = records[n].iter().map(|k| format!("k{k}")).collect();
                    index.upsert(&reference(&n.to_string()), Evidence { keys, exclusive: vec![] });
                }
                let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                for (reference, golden) in index.xref() {
                    groups.entry(golden.to_string()).or_default().insert(reference.id.clone());
                }
                groups.into_values().collect::<BTreeSet<_>>()
            };
            let forward: Vec<usize> = (0..records.len()).collect();
            let mut shuffled = forward.clone();
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(partition(&forward), partition(&shuffled));
        }
    }
}
