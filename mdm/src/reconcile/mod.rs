//! Reconciliation of master data across systems (`goldthread link`'s report): per entity,
//! what matched across systems, what only one system knows, duplicates within a system and
//! attribute conflicts; per source, the identifiers matching leans on that are missing.
//! [`report`] puts them together with the run's figures for people.

pub mod report;

use std::collections::BTreeMap;

use pipeline::{Envelope, Payload};
use serde::Serialize;

use crate::normalise::{self, Nino};
use crate::{Entity, Hub};

/// One entity's reconciliation.
#[derive(Debug, Serialize)]
pub struct EntityReport {
    pub entity: &'static str,
    pub records: usize,
    pub golden: usize,
    /// Golden records holding records of more than one system.
    pub matched_across_sources: usize,
    /// Per system: its records that matched a record of another system.
    pub records_matched_elsewhere: BTreeMap<String, usize>,
    /// Per system: golden records only that system knows.
    pub only_in: BTreeMap<String, usize>,
    /// Per system: golden records holding two or more of its records (duplicates within it).
    pub within_source_duplicates: BTreeMap<String, usize>,
    /// Attribute -> golden records whose records disagree on it.
    pub conflicts: BTreeMap<&'static str, usize>,
    /// The first conflicts, for a person to look at.
    pub conflict_examples: Vec<crate::Conflict>,
}

/// Identifier gaps of one source.
#[derive(Debug, Default, Serialize)]
pub struct IdentifierGaps {
    pub source: String,
    pub entity: &'static str,
    pub records: usize,
    pub missing_nino: usize,
    pub placeholder_nino: usize,
    pub invalid_nino: usize,
    pub missing_date_of_birth: usize,
    pub default_date_of_birth: usize,
    pub missing_uprn: usize,
}

/// What one entity's golden records reconcile across the systems.
pub fn entity_report(hub: &Hub, entity: Entity) -> EntityReport {
    let (records, golden): (usize, Vec<Vec<pipeline::Reference>>) = match entity {
        Entity::Person => (
            hub.counts().person_records,
            hub.golden_persons()
                .into_iter()
                .map(|g| g.sources)
                .collect(),
        ),
        Entity::Property => (
            hub.counts().property_records,
            hub.golden_properties()
                .into_iter()
                .map(|g| g.sources)
                .collect(),
        ),
    };
    let mut report = EntityReport {
        entity: entity.as_str(),
        records,
        golden: golden.len(),
        matched_across_sources: 0,
        records_matched_elsewhere: BTreeMap::new(),
        only_in: BTreeMap::new(),
        within_source_duplicates: BTreeMap::new(),
        conflicts: BTreeMap::new(),
        conflict_examples: Vec::new(),
    };
    for sources in &golden {
        let mut per_system: BTreeMap<&str, usize> = BTreeMap::new();
        for reference in sources {
            *per_system
                .entry(reference.allocated_by.as_str())
                .or_default() += 1;
        }
        if per_system.len() > 1 {
            report.matched_across_sources += 1;
            for (system, count) in &per_system {
                *report
                    .records_matched_elsewhere
                    .entry(system.to_string())
                    .or_default() += count;
            }
        } else if let Some(system) = per_system.keys().next() {
            *report.only_in.entry(system.to_string()).or_default() += 1;
        }
        for (system, count) in per_system {
            if count > 1 {
                *report
                    .within_source_duplicates
                    .entry(system.to_string())
                    .or_default() += 1;
            }
        }
    }
    let conflicts = hub.conflicts(entity);
    for conflict in &conflicts {
        *report.conflicts.entry(conflict.attribute).or_default() += 1;
    }
    report.conflict_examples = conflicts.into_iter().take(25).collect();
    report
}

/// Per source and entity: the records missing, or holding placeholders for, the identifiers
/// matching leans on (NINO, date of birth, UPRN).
pub fn identifier_gaps(events: &[Envelope]) -> Vec<IdentifierGaps> {
    let mut gaps: BTreeMap<(String, &'static str), IdentifierGaps> = BTreeMap::new();
    for event in events {
        let source = event.source_ref.allocated_by.clone();
        let entity = match &event.payload {
            Payload::Person(_) => "person",
            Payload::Property(_) => "property",
            _ => continue,
        };
        let row = gaps
            .entry((source.clone(), entity))
            .or_insert_with(|| IdentifierGaps {
                source,
                entity,
                ..IdentifierGaps::default()
            });
        row.records += 1;
        match &event.payload {
            Payload::Person(person) => {
                match person.nino.as_deref().and_then(normalise::nino) {
                    None => row.missing_nino += 1,
                    Some(Nino::Placeholder(_)) => row.placeholder_nino += 1,
                    Some(Nino::Invalid(_)) => row.invalid_nino += 1,
                    Some(Nino::Valid(_)) => {}
                }
                match person.date_of_birth {
                    None => row.missing_date_of_birth += 1,
                    Some(date) if normalise::date_of_birth(Some(date)).is_none() => {
                        row.default_date_of_birth += 1
                    }
                    Some(_) => {}
                }
            }
            Payload::Property(property)
                if property
                    .uprn
                    .as_deref()
                    .is_none_or(|uprn| uprn.trim().is_empty()) =>
            {
                row.missing_uprn += 1;
            }
            _ => {}
        }
    }
    gaps.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MdmConfig;
    use crate::testing::{event, person};
    use pipeline::entity::{Person, Property};

    #[test]
    fn a_report_counts_matches_across_systems_records_one_system_alone_knows_and_duplicates() {
        let mut hub = Hub::new(MdmConfig::default());
        let margaret = || person("Margaret", "OBrien", "1961-03-11", "07700900123");
        for (system, id) in [("hms", "T1"), ("hms", "T2"), ("crm", "C1")] {
            hub.apply(&event(system, id, margaret()));
        }
        hub.apply(&event(
            "crm",
            "C2",
            person("Sean", "Murphy", "1970-01-02", "07700900999"),
        ));
        let report = entity_report(&hub, Entity::Person);
        assert_eq!((report.records, report.golden), (4, 2));
        assert_eq!(report.matched_across_sources, 1);
        assert_eq!(report.records_matched_elsewhere["hms"], 2);
        assert_eq!(report.records_matched_elsewhere["crm"], 1);
        assert_eq!(report.only_in.get("crm"), Some(&1), "Sean");
        assert_eq!(report.within_source_duplicates.get("hms"), Some(&1));
    }

    #[test]
    fn identifier_gaps_tell_missing_from_placeholder_values() {
        let events = [
            event(
                "hms",
                "T1",
                Payload::Person(Person {
                    nino: Some("AA000000A".into()),
                    date_of_birth: "1900-01-01".parse().ok(),
                    ..Person::default()
                }),
            ),
            event(
                "hms",
                "T2",
                person("Sean", "Murphy", "1970-01-02", "07700900999"),
            ),
            event("asset", "A1", Payload::Property(Property::default())),
        ];
        let gaps = identifier_gaps(&events);
        let hms = gaps.iter().find(|gap| gap.source == "hms").unwrap();
        assert_eq!(
            (hms.records, hms.placeholder_nino, hms.missing_nino),
            (2, 1, 1)
        );
        assert_eq!(
            (hms.default_date_of_birth, hms.missing_date_of_birth),
            (1, 0)
        );
        let asset = gaps.iter().find(|gap| gap.source == "asset").unwrap();
        assert_eq!((asset.entity, asset.missing_uprn), ("property", 1));
    }
}
