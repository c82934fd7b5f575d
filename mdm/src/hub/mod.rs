//! The master data hub: applies canonical person, property, tenancy and vulnerability events
//! to the cluster indexes and derives golden records with field-level lineage.
//!
//! Here: the hub's state, its types and the changes a store must write. `apply.rs`: applying
//! events; `steward.rs`: verdicts, splits, overrides and erasure; `read.rs`: golden records and
//! everything else read from the hub.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use pipeline::entity::{Person, Property, Tenancy, Vulnerability};
use pipeline::{Envelope, Payload, Reference};
use serde::{Deserialize, Serialize};

use rustc_hash::FxHashSet;

use crate::address;
use crate::cluster::ClusterIndex;
use crate::config::{MdmConfig, SurvivorshipRule};
use crate::matcher::Matcher;
use crate::model::{Model, Scored};
use crate::normalise;

mod apply;
mod read;
mod steward;

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Person {
        golden_id: String,
        absorbed: Vec<String>,
    },
    Property {
        golden_id: String,
        absorbed: Vec<String>,
    },
    Tenancy,
    Vulnerability,
    /// About an erased person (their record or vulnerability): ignored.
    Erased,
    /// The source deleted the record: the hub keeps its last image (a tenant who left is
    /// still a person with history), so the event changes nothing.
    SourceDeleted,
    /// Not master data (repairs, appointments): nothing to do here.
    NotMasterData,
}

/// What changed in the hub since the last `Hub::take_changes`: the rows a store writes again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Golden ids to write again, or to delete when no longer live.
    pub persons: Vec<String>,
    pub properties: Vec<String>,
    /// Source records whose golden id may have changed (or that were erased).
    pub person_records: Vec<Reference>,
    pub property_records: Vec<Reference>,
    /// Tenancy and vulnerability records received (or removed by an erasure).
    pub tenancies: Vec<Reference>,
    pub vulnerabilities: Vec<Reference>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self == &Changes::default()
    }

    /// Adds changes not yet written (a write that failed) to these.
    pub fn merge(&mut self, other: Changes) {
        fn union<T: Ord>(into: &mut Vec<T>, from: Vec<T>) {
            into.extend(from);
            into.sort_unstable();
            into.dedup();
        }
        union(&mut self.persons, other.persons);
        union(&mut self.properties, other.properties);
        union(&mut self.person_records, other.person_records);
        union(&mut self.property_records, other.property_records);
        union(&mut self.tenancies, other.tenancies);
        union(&mut self.vulnerabilities, other.vulnerabilities);
    }
}

/// What an erasure took out of the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Erasure {
    pub golden_id: String,
    /// The person's source records, now suppressed: later events about them are ignored.
    pub records: Vec<Reference>,
    /// Their vulnerability records, removed.
    pub vulnerabilities: Vec<Reference>,
}

/// One source record in the cross-reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct XrefEntry {
    pub entity: &'static str,
    pub source: String,
    pub source_id: String,
    pub golden_id: String,
}

/// A golden person: the surviving value of each attribute, and which record supplied it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoldenPerson {
    pub golden_id: String,
    pub title: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub family_name: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub nino: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub postcode: Option<String>,
    pub sources: Vec<Reference>,
    /// attribute -> the source record its value came from.
    pub lineage: BTreeMap<&'static str, Reference>,
}

/// A golden property, with its block (parent) when the source gives a parent UPRN.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoldenProperty {
    pub golden_id: String,
    pub uprn: Option<String>,
    pub parent_uprn: Option<String>,
    pub parent_golden_id: Option<String>,
    pub saon: Option<String>,
    pub paon: Option<String>,
    pub street: Option<String>,
    pub locality: Option<String>,
    pub town: Option<String>,
    pub postcode: Option<String>,
    pub property_type: Option<String>,
    pub sources: Vec<Reference>,
    pub lineage: BTreeMap<&'static str, Reference>,
}

/// A tenancy linked to golden records through the cross-reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoldenTenancy {
    pub tenancy: Reference,
    pub golden_property_id: Option<String>,
    pub golden_person_ids: Vec<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub tenure: Option<String>,
}

/// A vulnerability as of a date (DOMAIN.md §5): special category data, for stewards only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VulnerabilityStatus {
    pub vulnerability: Reference,
    /// The golden person it concerns, once their record has arrived.
    pub golden_person_id: Option<String>,
    pub code: String,
    pub description: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub review_date: Option<NaiveDate>,
    /// Started (or no start) and not past its end date.
    pub active: bool,
    /// Active with its review date passed.
    pub review_overdue: bool,
}

/// What a contractor may be told about a home: that an occupant needs care at the visit, and
/// nothing of why (no code, no description, no person).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ContractorAlert {
    pub golden_property_id: String,
    pub take_extra_care: bool,
}

/// Data-quality findings: values that failed validation, kept and counted, never evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Quality {
    pub placeholder_ninos: u64,
    pub invalid_ninos: u64,
    pub default_dates_of_birth: u64,
    /// Dates of birth that did not parse (kept as evidence in their source's digit order).
    pub unparsed_dates_of_birth: u64,
    pub invalid_postcodes: u64,
    pub invalid_uprns: u64,
    pub blocked_links: u64,
}

impl Quality {
    /// Adds (`sign` 1) or takes away (`sign` -1) one record's findings, so a record applied
    /// again (a replay, a restart) replaces its findings instead of counting them twice.
    fn account(&mut self, findings: &Quality, sign: i8) {
        for (total, part) in [
            (&mut self.placeholder_ninos, findings.placeholder_ninos),
            (&mut self.invalid_ninos, findings.invalid_ninos),
            (
                &mut self.default_dates_of_birth,
                findings.default_dates_of_birth,
            ),
            (
                &mut self.unparsed_dates_of_birth,
                findings.unparsed_dates_of_birth,
            ),
            (&mut self.invalid_postcodes, findings.invalid_postcodes),
            (&mut self.invalid_uprns, findings.invalid_uprns),
            (&mut self.blocked_links, findings.blocked_links),
        ] {
            *total = if sign > 0 {
                *total + part
            } else {
                total.saturating_sub(part)
            };
        }
    }
}

#[derive(Debug, Clone, Default)]
struct PersonRecord {
    /// When the source recorded it (the event's `recorded_at`, else `occurred_at`): the
    /// recency survivorship uses, the same whatever order partitions are consumed in.
    recorded_at: Option<DateTime<Utc>>,
    title: Option<String>,
    given: Option<String>,
    middle: Option<String>,
    family: Option<String>,
    date_of_birth: Option<NaiveDate>,
    nino: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    postcode: Option<String>,
    /// This record's data-quality findings (counted in `Hub::quality`).
    findings: Quality,
}

#[derive(Debug, Clone, Default)]
struct PropertyRecord {
    recorded_at: Option<DateTime<Utc>>,
    uprn: Option<String>,
    parent_uprn: Option<String>,
    address: address::Address,
    property_type: Option<String>,
    /// Match keys (`uprn:…`, `addr:postcode|paon|saon`).
    keys: Vec<String>,
    findings: Quality,
}

/// A person after the normalisers: what the hub keeps, what the model sees, and the
/// data-quality findings (normalised once for both).
#[derive(Debug)]
struct NormalisedPerson {
    record: PersonRecord,
    prepared: crate::model::Prepared,
    quality: Quality,
}

impl NormalisedPerson {
    fn of(envelope: &Envelope, person: &Person, fields: &[String]) -> NormalisedPerson {
        let evidence = crate::person::Evidence::of(person, &envelope.unparsed);
        let prepared = evidence.prepare(fields);
        let crate::person::Evidence {
            title,
            given,
            middle,
            family,
            date_of_birth,
            nino,
            phone,
            email,
            postcode,
            findings,
            ..
        } = evidence;
        NormalisedPerson {
            record: PersonRecord {
                recorded_at: envelope.recorded_at.or(envelope.occurred_at),
                title,
                given,
                middle,
                family,
                date_of_birth,
                nino,
                phone,
                email,
                postcode,
                findings: Quality::default(),
            },
            prepared,
            quality: findings,
        }
    }
}

/// The persons among a batch of events, normalised ahead of a hub on every core: training
/// reads their prepared records, and [`Hub::apply_all`] takes them as they are, so no person
/// is normalised twice.
#[derive(Debug)]
pub struct NormalisedPersons {
    fields: Vec<String>,
    prepared: Vec<crate::model::Prepared>,
    records: Vec<(PersonRecord, Quality)>,
}

impl NormalisedPersons {
    /// Every person event of `events` (deletes too), in order, prepared for `fields`.
    pub fn of(events: &[Envelope], fields: &[String]) -> NormalisedPersons {
        let persons: Vec<(&Envelope, &Person)> = events
            .iter()
            .filter_map(|event| match &event.payload {
                Payload::Person(person) => Some((event, person)),
                _ => None,
            })
            .collect();
        let (prepared, records) = crate::parallel::map(&persons, |(event, person)| {
            NormalisedPerson::of(event, person, fields)
        })
        .into_iter()
        .map(|person| (person.prepared, (person.record, person.quality)))
        .unzip();
        NormalisedPersons {
            fields: fields.to_vec(),
            prepared,
            records,
        }
    }

    /// One prepared record per person event, in order: what a model trains on.
    pub fn prepared(&self) -> &[crate::model::Prepared] {
        &self.prepared
    }
}

/// Which master entity a steward decision or explanation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Person,
    Property,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Person => "person",
            Entity::Property => "property",
        }
    }
}

/// Why two records of a golden record are together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkExplanation {
    pub a: Reference,
    pub b: Reference,
    /// `model` (scored above the match threshold), `rule` (a shared UPRN or address key),
    /// `steward` (a steward's force-match), or `vetoed` (scored above the match threshold but
    /// kept apart by a requirement: `score.vetoed_by` names it; it links nothing).
    pub decided_by: &'static str,
    /// The model's explanation, for model links.
    pub score: Option<Scored>,
    /// The shared key, for rule links.
    pub key: Option<String>,
}

/// A pair a steward should look at: scored between the thresholds, in different clusters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewItem {
    pub entity: Entity,
    pub a: Reference,
    pub b: Reference,
    pub golden_a: String,
    pub golden_b: String,
    pub score: Scored,
}

/// An attribute of a record, by name, as a comparable string.
type Attribute<R> = (&'static str, fn(&R) -> Option<String>);

/// Source records of one golden record disagreeing on an attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    pub golden_id: String,
    pub attribute: &'static str,
    /// Each record's (normalised) value.
    pub values: Vec<(Reference, String)>,
}

/// A steward's verdict on a pair of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The two records are one entity, whatever the model says.
    Same,
    /// The two records are never one entity.
    Different,
    /// Withdraw an earlier verdict: the engine decides again.
    Withdraw,
}

/// A steward's verdict in force on a pair of records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StewardVerdict {
    pub entity: Entity,
    pub a: Reference,
    pub b: Reference,
    pub verdict: Verdict,
}

/// Survivorship over a cluster's members, most trusted first: each attribute comes from the
/// member its rule prefers among those with a value, and the lineage records which member
/// that was.
struct Survivorship<'a, R> {
    members: &'a [(&'a Reference, &'a R, Option<DateTime<Utc>>)],
    rules: &'a BTreeMap<String, SurvivorshipRule>,
    overrides: Option<&'a BTreeMap<String, String>>,
    lineage: BTreeMap<&'static str, Reference>,
}

impl<'a, R> Survivorship<'a, R> {
    fn pick<T: ToString + std::str::FromStr>(
        &mut self,
        attribute: &'static str,
        get: impl Fn(&R) -> Option<T>,
    ) -> Option<T> {
        if let Some(value) = self
            .overrides
            .and_then(|overrides| overrides.get(attribute))
            .and_then(|text| text.parse::<T>().ok())
        {
            self.lineage.insert(attribute, steward_reference());
            return Some(value);
        }
        let rule = self.rules.get(attribute).copied().unwrap_or_default();
        let mut candidates = self
            .members
            .iter()
            .filter_map(|(reference, record, recorded_at)| {
                get(record).map(|value| (*reference, value, *recorded_at))
            });
        // Members come most trusted first; `max_by_key` keeps the last of equals, so rank
        // by the rule and break ties by trust explicitly.
        let chosen = match rule {
            SurvivorshipRule::Trust => candidates.next(),
            SurvivorshipRule::MostRecent => candidates
                .enumerate()
                .max_by_key(|(rank, (_, _, recorded_at))| (*recorded_at, std::cmp::Reverse(*rank)))
                .map(|(_, chosen)| chosen),
            SurvivorshipRule::MostComplete => candidates
                .enumerate()
                .max_by_key(|(rank, (_, value, _))| {
                    (value.to_string().chars().count(), std::cmp::Reverse(*rank))
                })
                .map(|(_, chosen)| chosen),
        };
        let (reference, value, _) = chosen?;
        self.lineage.insert(attribute, reference.clone());
        Some(value)
    }
}

/// The lineage of a value a steward set by hand.
fn steward_reference() -> Reference {
    Reference {
        id: "override".into(),
        allocated_by: "steward".into(),
    }
}

/// Link weights of property rules: a shared UPRN outranks a shared address.
const UPRN_LINK: f64 = 100.0;
const ADDRESS_LINK: f64 = 50.0;

/// In-memory master data state. No IO.
#[derive(Debug)]
pub struct Hub {
    config: MdmConfig,
    persons: ClusterIndex,
    /// By slot of `persons`.
    person_records: Vec<PersonRecord>,
    matcher: Matcher,
    /// Pairs between the thresholds: (smaller slot, larger slot) -> weight.
    reviews: BTreeMap<(usize, usize), f64>,
    /// Pairs a requirement kept apart although they scored above the link threshold:
    /// (smaller slot, larger slot) -> weight, for `explain` and `links.csv`.
    vetoed: BTreeMap<(usize, usize), f64>,
    properties: ClusterIndex,
    /// By slot of `properties`.
    property_records: Vec<PropertyRecord>,
    property_keys: HashMap<String, Vec<usize>>,
    tenancies: BTreeMap<Reference, Tenancy>,
    vulnerabilities: BTreeMap<Reference, Vulnerability>,
    /// Steward overrides: golden id -> attribute -> value.
    overrides: HashMap<String, BTreeMap<String, String>>,
    /// Person records erased (`erase`, `suppress`): their events are ignored.
    erased: HashSet<Reference>,
    /// Tenancies and vulnerabilities changed since `take_changes` (when tracked).
    track_changes: bool,
    changed_tenancies: BTreeSet<Reference>,
    changed_vulnerabilities: BTreeSet<Reference>,
    quality: Quality,
}

/// Two UPRNs are two properties.
fn uprns_conflict(records: &[PropertyRecord], a: usize, b: usize) -> bool {
    matches!((&records[a].uprn, &records[b].uprn), (Some(x), Some(y)) if x != y)
}

pub(crate) fn uprn(raw: Option<&str>) -> Result<Option<String>, ()> {
    match raw.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) if text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(text.trim_start_matches('0').to_string()).filter(|text| !text.is_empty()))
        }
        Some(_) => Err(()),
    }
}

impl Hub {
    /// A hub matching people with the built-in person model.
    pub fn new(config: MdmConfig) -> Hub {
        Hub::with_model(config, crate::person::default_model())
    }

    /// A hub matching people with a trained model (`goldthread train`).
    /// `mdm.blocking`, when set, replaces the model's blocking rules.
    pub fn with_model(config: MdmConfig, mut person_model: Model) -> Hub {
        if let Some(rules) = config.blocking_rules() {
            // A rule may block on a field the model does not compare: prepare it too.
            for field in rules.iter().flat_map(|rule| &rule.fields) {
                if !person_model.spec.fields.contains(field) {
                    person_model.spec.fields.push(field.clone());
                }
            }
            person_model.spec.blocking = rules;
        }
        Hub {
            matcher: Matcher::new(person_model, config.thresholds),
            persons: ClusterIndex::with_priority("GP", config.source_priority.clone()),
            person_records: Vec::new(),
            reviews: BTreeMap::new(),
            vetoed: BTreeMap::new(),
            properties: ClusterIndex::with_priority("GH", config.source_priority.clone()),
            config,
            property_records: Vec::new(),
            property_keys: HashMap::new(),
            tenancies: BTreeMap::new(),
            vulnerabilities: BTreeMap::new(),
            overrides: HashMap::new(),
            erased: HashSet::new(),
            track_changes: false,
            changed_tenancies: BTreeSet::new(),
            changed_vulnerabilities: BTreeSet::new(),
            quality: Quality::default(),
        }
    }

    /// The cluster index of an entity.
    fn index(&self, entity: Entity) -> &ClusterIndex {
        match entity {
            Entity::Person => &self.persons,
            Entity::Property => &self.properties,
        }
    }

    pub fn person_model(&self) -> &Model {
        self.matcher.model()
    }

    /// Per person blocking rule, records whose block was too large to compare against.
    pub fn oversized_blocks(&self) -> Vec<(String, u64)> {
        self.matcher.oversized_blocks()
    }

    /// Starts recording what changes, for `take_changes`. Everything applied before is not
    /// recorded: call it first (a store does, before it restores).
    pub fn track_changes(&mut self) {
        self.track_changes = true;
        self.persons.track_changes();
        self.properties.track_changes();
    }

    /// What changed since the last call (or since `track_changes`), and forgets it: what a
    /// store writes after a batch instead of the whole state.
    pub fn take_changes(&mut self) -> Changes {
        let persons = self.persons.take_changes();
        let mut properties = self.properties.take_changes();
        // A block's golden id is in its flats' rows (`parent_golden_id`): flats of a block
        // whose cluster changed are written again too.
        let parents: HashSet<&String> = properties
            .golden_ids
            .iter()
            .flat_map(|golden_id| self.properties.member_slots(golden_id))
            .filter_map(|&slot| self.property_records[slot].uprn.as_ref())
            .collect();
        if !parents.is_empty() {
            let children: Vec<String> = self
                .property_records
                .iter()
                .enumerate()
                .filter(|(_, record)| {
                    record
                        .parent_uprn
                        .as_ref()
                        .is_some_and(|p| parents.contains(p))
                })
                .filter_map(|(slot, _)| {
                    let reference = self.properties.reference(slot);
                    self.properties.golden_id_of(reference).map(str::to_string)
                })
                .collect();
            properties.golden_ids.extend(children);
            properties.golden_ids.sort_unstable();
            properties.golden_ids.dedup();
        }
        Changes {
            persons: persons.golden_ids,
            properties: properties.golden_ids,
            person_records: persons.records,
            property_records: properties.records,
            tenancies: std::mem::take(&mut self.changed_tenancies)
                .into_iter()
                .collect(),
            vulnerabilities: std::mem::take(&mut self.changed_vulnerabilities)
                .into_iter()
                .collect(),
        }
    }

    pub fn quality(&self) -> &Quality {
        &self.quality
    }

    pub fn counts(&self) -> Counts {
        Counts {
            person_records: self.persons.n_records(),
            golden_persons: self.persons.n_golden(),
            property_records: self.properties.n_records(),
            golden_properties: self.properties.n_golden(),
            tenancies: self.tenancies.len(),
            vulnerabilities: self.vulnerabilities.len(),
        }
    }
}

/// Vulnerabilities as of a day: they lapse after their end date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VulnerabilityCounts {
    pub as_of: NaiveDate,
    pub active: usize,
    pub review_overdue: usize,
    pub lapsed: usize,
    /// Homes flagged to contractors (no detail).
    pub homes_flagged: usize,
}

/// Sizes of the master data held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub person_records: usize,
    pub golden_persons: usize,
    pub property_records: usize,
    pub golden_properties: usize,
    pub tenancies: usize,
    pub vulnerabilities: usize,
}

#[cfg(test)]
mod tests;
