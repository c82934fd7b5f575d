//! The master data hub: applies canonical person, property, tenancy and vulnerability events
//! to the cluster indexes and derives golden records with field-level lineage.

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

    /// Applies one canonical event. Master data is matched and linked; anything else is
    /// left to other stages.
    pub fn apply(&mut self, envelope: &Envelope) -> Applied {
        self.apply_with(envelope, None)
    }

    /// Applies `events` in order with their persons already normalised (by
    /// [`NormalisedPersons::of`] over the same events), calling `progress` with each event's
    /// index. Persons normalised for other fields than this hub's model are normalised again.
    pub fn apply_all(
        &mut self,
        events: &[Envelope],
        normalised: NormalisedPersons,
        mut progress: impl FnMut(usize),
    ) {
        self.person_records.reserve(normalised.prepared.len());
        let mut persons = (normalised.fields == self.matcher.model().spec.fields)
            .then(|| normalised.prepared.into_iter().zip(normalised.records));
        for (index, event) in events.iter().enumerate() {
            let person = match (&event.payload, persons.as_mut()) {
                (Payload::Person(_), Some(persons)) => {
                    let (prepared, (record, quality)) = persons
                        .next()
                        .expect("one normalised person per person event");
                    Some(NormalisedPerson {
                        record,
                        prepared,
                        quality,
                    })
                }
                _ => None,
            };
            self.apply_with(event, person);
            progress(index);
        }
    }

    fn apply_with(&mut self, envelope: &Envelope, normalised: Option<NormalisedPerson>) -> Applied {
        let reference = &envelope.source_ref;
        let recorded_at = envelope.recorded_at.or(envelope.occurred_at);
        if envelope.source.op == pipeline::Op::Delete
            && matches!(
                envelope.payload,
                Payload::Person(_) | Payload::Property(_) | Payload::Tenancy(_)
            )
        {
            return Applied::SourceDeleted;
        }
        match &envelope.payload {
            Payload::Person(_) if self.erased.contains(reference) => Applied::Erased,
            Payload::Vulnerability(vulnerability)
                if self.erased.contains(&Reference {
                    id: vulnerability.person_ref.clone(),
                    allocated_by: reference.allocated_by.clone(),
                }) =>
            {
                Applied::Erased
            }
            Payload::Person(person) => {
                let normalised = normalised.unwrap_or_else(|| {
                    NormalisedPerson::of(envelope, person, &self.matcher.model().spec.fields)
                });
                self.apply_normalised(reference, normalised)
            }
            Payload::Property(property) => self.apply_property(reference, property, recorded_at),
            Payload::Tenancy(tenancy) => {
                self.tenancies.insert(reference.clone(), tenancy.clone());
                if self.track_changes {
                    self.changed_tenancies.insert(reference.clone());
                }
                Applied::Tenancy
            }
            Payload::Vulnerability(vulnerability) => {
                self.vulnerabilities
                    .insert(reference.clone(), vulnerability.clone());
                if self.track_changes {
                    self.changed_vulnerabilities.insert(reference.clone());
                }
                Applied::Vulnerability
            }
            _ => Applied::NotMasterData,
        }
    }

    fn apply_normalised(&mut self, reference: &Reference, normalised: NormalisedPerson) -> Applied {
        let NormalisedPerson {
            mut record,
            prepared,
            quality,
        } = normalised;
        let (slot, is_new) = self.persons.register(reference);
        if self.person_records.len() <= slot {
            self.person_records
                .resize_with(slot + 1, PersonRecord::default);
        }
        self.quality
            .account(&self.person_records[slot].findings, -1);
        record.findings = quality;
        self.person_records[slot] = record;
        let matches = self.matcher.upsert(slot, prepared);
        if !is_new {
            self.reviews.retain(|&(a, b), _| a != slot && b != slot);
            self.vetoed.retain(|&(a, b), _| a != slot && b != slot);
        }
        for &(other, weight) in &matches.vetoed {
            self.vetoed
                .insert((slot.min(other), slot.max(other)), weight);
        }
        for &(other, weight) in &matches.review {
            self.reviews
                .insert((slot.min(other), slot.max(other)), weight);
        }
        let matcher = &self.matcher;
        let upsert = self
            .persons
            .relink(slot, matches.links, |a, b| matcher.conflict(a, b));
        let findings = &mut self.person_records[slot].findings;
        findings.blocked_links = (matches.vetoed.len() + upsert.blocked) as u64;
        self.quality.account(findings, 1);
        Applied::Person {
            golden_id: upsert.golden_id,
            absorbed: upsert.absorbed,
        }
    }

    fn apply_property(
        &mut self,
        reference: &Reference,
        property: &Property,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Applied {
        let structured =
            property.paon.is_some() || property.saon.is_some() || property.street.is_some();
        let address = if structured {
            address::Address {
                saon: property.saon.as_deref().and_then(address::saon),
                paon: property.paon.as_deref().and_then(address::paon),
                street: property.street.as_deref().and_then(address::street),
                locality: property
                    .locality
                    .as_deref()
                    .map(|locality| locality.trim().to_uppercase())
                    .filter(|locality| !locality.is_empty()),
                town: property
                    .town
                    .as_deref()
                    .map(|town| town.trim().to_uppercase()),
                postcode: property.postcode.as_deref().and_then(normalise::postcode),
            }
        } else {
            address::parse(
                property.address.as_deref().unwrap_or(""),
                property.postcode.as_deref(),
            )
        };
        let mut findings = Quality::default();
        if property.postcode.is_some() && address.postcode.is_none() {
            findings.invalid_postcodes += 1;
        }
        let uprn_value = uprn(property.uprn.as_deref()).unwrap_or_else(|()| {
            findings.invalid_uprns += 1;
            None
        });
        let parent_uprn = uprn(property.parent_uprn.as_deref()).unwrap_or_default();
        // UPRN agreement is decisive; otherwise postcode, number and flat must all agree, so
        // Flat B and 14B, or two flats of one block, never share a key.
        let mut keys = Vec::new();
        if let Some(uprn) = &uprn_value {
            keys.push(format!("uprn:{uprn}"));
        }
        if let (Some(postcode), Some(paon)) = (&address.postcode, &address.paon) {
            let saon = address.saon.as_deref().unwrap_or("");
            keys.push(format!("addr:{postcode}|{paon}|{saon}"));
        }
        // A named identifier (an asset system's own number, carried by another system) is
        // as decisive as a UPRN: the same scheme and value is the same home.
        for (name, value) in &property.identifiers {
            if let Some(value) = crate::person::compact_upper(value) {
                keys.push(format!("id:{name}:{value}"));
            }
        }
        let (slot, _) = self.properties.register(reference);
        if self.property_records.len() <= slot {
            self.property_records
                .resize_with(slot + 1, PropertyRecord::default);
        }
        self.quality
            .account(&self.property_records[slot].findings, -1);
        for key in std::mem::take(&mut self.property_records[slot].keys) {
            if let Some(slots) = self.property_keys.get_mut(&key) {
                slots.retain(|&other| other != slot);
            }
        }
        let mut links: Vec<(usize, f64)> = Vec::new();
        for key in &keys {
            let weight = if key.starts_with("uprn:") {
                UPRN_LINK
            } else {
                ADDRESS_LINK
            };
            let slots = self.property_keys.entry(key.clone()).or_default();
            links.extend(slots.iter().map(|&other| (other, weight)));
            slots.push(slot);
        }
        links.sort_by(|x, y| x.0.cmp(&y.0).then(y.1.total_cmp(&x.1)));
        links.dedup_by_key(|link| link.0);
        self.property_records[slot] = PropertyRecord {
            recorded_at,
            uprn: uprn_value,
            parent_uprn,
            address,
            property_type: property.property_type.clone(),
            keys,
            findings,
        };
        let records = &self.property_records;
        let upsert = self
            .properties
            .relink(slot, links, |a, b| uprns_conflict(records, a, b));
        let findings = &mut self.property_records[slot].findings;
        findings.blocked_links = upsert.blocked as u64;
        self.quality.account(findings, 1);
        Applied::Property {
            golden_id: upsert.golden_id,
            absorbed: upsert.absorbed,
        }
    }

    /// A steward's verdict on two person or property records. Verdicts are constraints the
    /// engine keeps through later updates until withdrawn; withdrawing restores exactly what
    /// the engine would have decided.
    pub fn steward(
        &mut self,
        entity: Entity,
        a: &Reference,
        b: &Reference,
        verdict: Verdict,
    ) -> Result<Vec<String>, crate::Error> {
        let index = self.index(entity);
        let slot = |reference: &Reference| {
            index.slot_of(reference).ok_or_else(|| {
                crate::Error::NotFound(format!(
                    "no {} record {}:{}",
                    entity.as_str(),
                    reference.allocated_by,
                    reference.id
                ))
            })
        };
        let (x, y) = (slot(a)?, slot(b)?);
        if x == y {
            return Err(crate::Error::BadInput(
                "a record cannot be matched with itself".into(),
            ));
        }
        let upsert = match entity {
            Entity::Person => {
                let matcher = &self.matcher;
                let conflict = |p: usize, q: usize| matcher.conflict(p, q);
                match verdict {
                    Verdict::Same => self.persons.decide(x, y, true, conflict),
                    Verdict::Different => self.persons.decide(x, y, false, conflict),
                    Verdict::Withdraw => self.persons.undecide(x, y, conflict),
                }
            }
            Entity::Property => {
                let records = &self.property_records;
                let conflict = |p: usize, q: usize| uprns_conflict(records, p, q);
                match verdict {
                    Verdict::Same => self.properties.decide(x, y, true, conflict),
                    Verdict::Different => self.properties.decide(x, y, false, conflict),
                    Verdict::Withdraw => self.properties.undecide(x, y, conflict),
                }
            }
        };
        let index = self.index(entity);
        let mut affected = vec![
            index.golden_id_of_slot(x).to_string(),
            index.golden_id_of_slot(y).to_string(),
        ];
        affected.extend(upsert.absorbed);
        affected.extend(upsert.revived);
        affected.sort();
        affected.dedup();
        Ok(affected)
    }

    /// The live golden person a subject names: a golden id (absorbed ids resolve) or one of
    /// their source records as `system:id`.
    pub fn person_subject(&self, subject: &str) -> Result<String, crate::Error> {
        match subject.split_once(':') {
            Some((system, id)) => {
                let reference = Reference {
                    id: id.to_string(),
                    allocated_by: system.to_string(),
                };
                self.persons
                    .golden_id_of(&reference)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        crate::Error::NotFound(format!("no person source record `{subject}`"))
                    })
            }
            None => self
                .persons
                .resolve(subject)
                .ok_or_else(|| crate::Error::NotFound(format!("no golden person `{subject}`"))),
        }
    }

    /// Puts a person beyond use (a granted erasure request): every source record of the
    /// golden person loses its values, links and steward verdicts and leaves the
    /// cross-reference and golden records; their vulnerabilities go; later events about
    /// those records are ignored. `golden_id` may be an absorbed id.
    pub fn erase(&mut self, golden_id: &str) -> Result<Erasure, crate::Error> {
        let golden_id = self
            .persons
            .resolve(golden_id)
            .ok_or_else(|| crate::Error::NotFound(format!("no golden person `{golden_id}`")))?;
        let slots = self.persons.member_slots(&golden_id).to_vec();
        let mut records = Vec::new();
        for slot in slots {
            let reference = self.persons.reference(slot).clone();
            self.quality
                .account(&self.person_records[slot].findings, -1);
            self.person_records[slot] = PersonRecord::default();
            self.matcher.erase(slot);
            self.reviews.retain(|&(a, b), _| a != slot && b != slot);
            self.vetoed.retain(|&(a, b), _| a != slot && b != slot);
            let matcher = &self.matcher;
            self.persons.retire(slot, |a, b| matcher.conflict(a, b));
            self.erased.insert(reference.clone());
            records.push(reference);
        }
        self.overrides.remove(&golden_id);
        let vulnerabilities = self.forget_vulnerabilities();
        records.sort();
        Ok(Erasure {
            golden_id,
            records,
            vulnerabilities,
        })
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

    /// The tenancy record held for a reference, as the source sent it.
    pub fn tenancy(&self, reference: &Reference) -> Option<&Tenancy> {
        self.tenancies.get(reference)
    }

    /// The vulnerability record held for a reference.
    pub fn vulnerability(&self, reference: &Reference) -> Option<&Vulnerability> {
        self.vulnerabilities.get(reference)
    }

    /// Whether a person record has been erased.
    pub fn is_erased(&self, reference: &Reference) -> bool {
        self.erased.contains(reference)
    }

    /// Marks person records as erased before their events arrive (a restart applies the
    /// stored erasures first, so files read again do not bring the person back).
    pub fn suppress(&mut self, references: impl IntoIterator<Item = Reference>) {
        self.erased.extend(references);
    }

    /// Removes the vulnerabilities of erased people; returns their references.
    fn forget_vulnerabilities(&mut self) -> Vec<Reference> {
        let erased = &self.erased;
        let gone: Vec<Reference> = self
            .vulnerabilities
            .iter()
            .filter(|(reference, vulnerability)| {
                erased.contains(&Reference {
                    id: vulnerability.person_ref.clone(),
                    allocated_by: reference.allocated_by.clone(),
                })
            })
            .map(|(reference, _)| reference.clone())
            .collect();
        for reference in &gone {
            self.vulnerabilities.remove(reference);
            if self.track_changes {
                self.changed_vulnerabilities.insert(reference.clone());
            }
        }
        gone
    }

    /// A steward splits a record out of its golden record: a never-match verdict between it
    /// and each other member (withdraw them one by one to undo). Returns the golden ids
    /// affected.
    pub fn split(
        &mut self,
        entity: Entity,
        reference: &Reference,
    ) -> Result<Vec<String>, crate::Error> {
        let index = self.index(entity);
        let slot = index.slot_of(reference).ok_or_else(|| {
            crate::Error::NotFound(format!(
                "no {} record {}:{}",
                entity.as_str(),
                reference.allocated_by,
                reference.id
            ))
        })?;
        let others: Vec<Reference> = index
            .member_slots(index.golden_id_of_slot(slot))
            .iter()
            .filter(|&&other| other != slot)
            .map(|&other| index.reference(other).clone())
            .collect();
        let mut affected = Vec::new();
        for other in &others {
            affected.extend(self.steward(entity, reference, other, Verdict::Different)?);
        }
        affected.sort();
        affected.dedup();
        Ok(affected)
    }

    /// A steward sets an attribute of a golden record by hand (`None` clears it); the
    /// lineage then says `steward`. Attribute names are those of the golden record.
    pub fn set_override(&mut self, golden_id: &str, attribute: &str, value: Option<String>) {
        self.persons.mark_golden_id(golden_id);
        self.properties.mark_golden_id(golden_id);
        let entry = self.overrides.entry(golden_id.to_string()).or_default();
        match value {
            Some(value) => {
                entry.insert(attribute.to_string(), value);
            }
            None => {
                entry.remove(attribute);
            }
        }
    }

    /// Members of a cluster with when they were recorded, most trusted first (source rank,
    /// then most recent).
    fn ranked<'a, R>(
        &self,
        index: &'a ClusterIndex,
        golden_id: &str,
        records: &'a [R],
        recorded_at: impl Fn(&R) -> Option<DateTime<Utc>>,
    ) -> Vec<(&'a Reference, &'a R, Option<DateTime<Utc>>)> {
        let mut members: Vec<(&Reference, &R, Option<DateTime<Utc>>)> = index
            .member_slots(golden_id)
            .iter()
            .map(|&slot| {
                let record = &records[slot];
                (index.reference(slot), record, recorded_at(record))
            })
            .collect();
        // Then by reference: the same order whatever order the records arrived in.
        members.sort_by_key(|(reference, _, recorded_at)| {
            (
                self.config.rank(&reference.allocated_by),
                std::cmp::Reverse(*recorded_at),
                *reference,
            )
        });
        members
    }

    fn survivorship<'a, R>(
        &'a self,
        golden_id: &str,
        members: &'a [(&'a Reference, &'a R, Option<DateTime<Utc>>)],
    ) -> Survivorship<'a, R> {
        Survivorship {
            members,
            rules: &self.config.survivorship,
            overrides: self.overrides.get(golden_id),
            lineage: BTreeMap::new(),
        }
    }

    /// The golden person an id (live or absorbed) resolves to.
    pub fn golden_person(&self, golden_id: &str) -> Option<GoldenPerson> {
        let golden_id = self.persons.resolve(golden_id)?;
        let members = self.ranked(&self.persons, &golden_id, &self.person_records, |record| {
            record.recorded_at
        });
        let mut survive = self.survivorship(&golden_id, &members);
        let title = survive.pick("title", |record| record.title.clone());
        let given_name = survive.pick("given_name", |record| record.given.clone());
        let middle_name = survive.pick("middle_name", |record| record.middle.clone());
        let family_name = survive.pick("family_name", |record| record.family.clone());
        let date_of_birth = survive.pick("date_of_birth", |record| record.date_of_birth);
        let nino = survive.pick("nino", |record| record.nino.clone());
        let phone = survive.pick("phone", |record| record.phone.clone());
        let email = survive.pick("email", |record| record.email.clone());
        let postcode = survive.pick("postcode", |record| record.postcode.clone());
        let lineage = survive.lineage;
        Some(GoldenPerson {
            sources: members
                .iter()
                .map(|(reference, _, _)| (*reference).clone())
                .collect(),
            golden_id,
            title,
            given_name,
            middle_name,
            family_name,
            date_of_birth,
            nino,
            phone,
            email,
            postcode,
            lineage,
        })
    }

    /// The golden property an id (live or absorbed) resolves to.
    pub fn golden_property(&self, golden_id: &str) -> Option<GoldenProperty> {
        let golden_id = self.properties.resolve(golden_id)?;
        let members = self.ranked(
            &self.properties,
            &golden_id,
            &self.property_records,
            |record| record.recorded_at,
        );
        let mut survive = self.survivorship(&golden_id, &members);
        let uprn = survive.pick("uprn", |record| record.uprn.clone());
        let parent_uprn = survive.pick("parent_uprn", |record| record.parent_uprn.clone());
        let saon = survive.pick("saon", |record| record.address.saon.clone());
        let paon = survive.pick("paon", |record| record.address.paon.clone());
        let street = survive.pick("street", |record| record.address.street.clone());
        let locality = survive.pick("locality", |record| record.address.locality.clone());
        let town = survive.pick("town", |record| record.address.town.clone());
        let postcode = survive.pick("postcode", |record| record.address.postcode.clone());
        let property_type = survive.pick("property_type", |record| record.property_type.clone());
        let lineage = survive.lineage;
        let parent_golden_id = parent_uprn
            .as_ref()
            .and_then(|parent| self.property_keys.get(&format!("uprn:{parent}")))
            .and_then(|slots| slots.first())
            .map(|&slot| self.properties.golden_id_of_slot(slot).to_string());
        Some(GoldenProperty {
            sources: members
                .iter()
                .map(|(reference, _, _)| (*reference).clone())
                .collect(),
            golden_id,
            uprn,
            parent_uprn,
            parent_golden_id,
            saon,
            paon,
            street,
            locality,
            town,
            postcode,
            property_type,
            lineage,
        })
    }

    /// The pairs of a golden person's records with records that scored above the link
    /// threshold but a requirement kept apart (`decided_by` `vetoed`), explained.
    pub fn vetoed(&self, entity: Entity, golden_id: &str) -> Vec<LinkExplanation> {
        let mut explanations = Vec::new();
        if entity == Entity::Person
            && let Some(golden_id) = self.persons.resolve(golden_id)
        {
            let members = self.persons.member_slots(&golden_id);
            for (&(a, b), _) in self
                .vetoed
                .iter()
                .filter(|((a, b), _)| members.contains(a) || members.contains(b))
            {
                let (a, b) = if self.persons.reference(a) <= self.persons.reference(b) {
                    (a, b)
                } else {
                    (b, a)
                };
                explanations.push(LinkExplanation {
                    a: self.persons.reference(a).clone(),
                    b: self.persons.reference(b).clone(),
                    decided_by: "vetoed",
                    score: self.matcher.explain(a, b),
                    key: None,
                });
            }
        }
        explanations
    }

    /// Why the records of a golden record are together: every link inside it, explained.
    pub fn explain(&self, entity: Entity, golden_id: &str) -> Option<Vec<LinkExplanation>> {
        let index = self.index(entity);
        let golden_id = index.resolve(golden_id)?;
        Some(
            index
                .links_within(&golden_id)
                .into_iter()
                .map(|(a, b, weight)| {
                    // Each pair reads the same whatever order its records arrived in.
                    let (a, b) = if index.reference(a) <= index.reference(b) {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    let (decided_by, score, key) = if weight.is_infinite() {
                        ("steward", None, None)
                    } else {
                        match entity {
                            Entity::Person => ("model", self.matcher.explain(a, b), None),
                            Entity::Property => {
                                let shared = self.property_records[a]
                                    .keys
                                    .iter()
                                    .find(|key| self.property_records[b].keys.contains(key))
                                    .cloned();
                                ("rule", None, shared)
                            }
                        }
                    };
                    LinkExplanation {
                        a: index.reference(a).clone(),
                        b: index.reference(b).clone(),
                        decided_by,
                        score,
                        key,
                    }
                })
                .collect(),
        )
    }

    /// Golden records whose source records disagree on an attribute (after normalisation):
    /// what survivorship had to choose between, for the reconciliation report.
    pub fn conflicts(&self, entity: Entity) -> Vec<Conflict> {
        fn collect<R>(
            index: &ClusterIndex,
            records: &[R],
            attributes: &[Attribute<R>],
            out: &mut Vec<Conflict>,
        ) {
            for golden_id in index.golden_ids() {
                let members = index.member_slots(golden_id);
                if members.len() < 2 {
                    continue;
                }
                for (attribute, get) in attributes {
                    let values: Vec<(Reference, String)> = members
                        .iter()
                        .filter_map(|&slot| {
                            get(&records[slot]).map(|value| (index.reference(slot).clone(), value))
                        })
                        .collect();
                    let distinct: std::collections::BTreeSet<&str> =
                        values.iter().map(|(_, value)| value.as_str()).collect();
                    if distinct.len() > 1 {
                        out.push(Conflict {
                            golden_id: golden_id.to_string(),
                            attribute,
                            values,
                        });
                    }
                }
            }
        }
        let mut out = Vec::new();
        match entity {
            Entity::Person => collect(
                &self.persons,
                &self.person_records,
                &[
                    ("given_name", |r| r.given.as_deref().map(normalise::fold)),
                    ("family_name", |r| r.family.as_deref().map(normalise::fold)),
                    ("date_of_birth", |r| r.date_of_birth.map(|d| d.to_string())),
                    ("nino", |r| r.nino.clone()),
                    ("phone", |r| r.phone.clone()),
                    ("email", |r| r.email.clone()),
                    ("postcode", |r| r.postcode.clone()),
                ],
                &mut out,
            ),
            Entity::Property => collect(
                &self.properties,
                &self.property_records,
                &[
                    ("uprn", |r| r.uprn.clone()),
                    ("saon", |r| r.address.saon.clone()),
                    ("paon", |r| r.address.paon.clone()),
                    ("street", |r| r.address.street.clone()),
                    ("postcode", |r| r.address.postcode.clone()),
                    ("property_type", |r| r.property_type.clone()),
                ],
                &mut out,
            ),
        }
        out
    }

    /// Person pairs a steward should decide, with their explanations, strongest first: pairs
    /// scored between the thresholds, and ambiguous links (one record matching two records
    /// that may not be one), that sit in different golden records.
    pub fn review_queue(&self) -> Vec<ReviewItem> {
        let held = self.persons.held_links();
        let mut items: Vec<(f64, ReviewItem)> = self
            .reviews
            .iter()
            .map(|(&pair, &weight)| (pair, weight))
            .chain(held.into_iter().map(|(a, b, weight)| ((a, b), weight)))
            .filter(|&((a, b), _)| self.persons.cluster_of(a) != self.persons.cluster_of(b))
            .filter_map(|((a, b), weight)| {
                let (a, b) = if self.persons.reference(a) <= self.persons.reference(b) {
                    (a, b)
                } else {
                    (b, a)
                };
                Some((
                    weight,
                    ReviewItem {
                        entity: Entity::Person,
                        a: self.persons.reference(a).clone(),
                        b: self.persons.reference(b).clone(),
                        golden_a: self.persons.golden_id_of_slot(a).to_string(),
                        golden_b: self.persons.golden_id_of_slot(b).to_string(),
                        score: self.matcher.explain(a, b)?,
                    },
                ))
            })
            .collect();
        items.sort_by(|x, y| {
            y.0.total_cmp(&x.0)
                .then_with(|| (&x.1.a, &x.1.b).cmp(&(&y.1.a, &y.1.b)))
        });
        items.into_iter().map(|(_, item)| item).collect()
    }

    /// Live golden person ids, sorted.
    pub fn golden_person_ids(&self) -> Vec<String> {
        self.persons
            .golden_ids()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Live golden property ids, sorted.
    pub fn golden_property_ids(&self) -> Vec<String> {
        self.properties
            .golden_ids()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    pub fn golden_persons(&self) -> Vec<GoldenPerson> {
        self.persons
            .golden_ids()
            .into_iter()
            .filter_map(|id| self.golden_person(id))
            .collect()
    }

    pub fn golden_properties(&self) -> Vec<GoldenProperty> {
        self.properties
            .golden_ids()
            .into_iter()
            .filter_map(|id| self.golden_property(id))
            .collect()
    }

    /// Tenancies with their parties and property resolved to golden ids. A party or property
    /// whose source record has not arrived yet stays unresolved until it does.
    pub fn tenancies(&self) -> Vec<GoldenTenancy> {
        self.tenancies
            .iter()
            .map(|(reference, tenancy)| {
                let local = |id: &str| Reference {
                    id: id.to_string(),
                    allocated_by: reference.allocated_by.clone(),
                };
                GoldenTenancy {
                    tenancy: reference.clone(),
                    golden_property_id: self
                        .properties
                        .golden_id_of(&local(&tenancy.property_ref))
                        .map(str::to_string),
                    golden_person_ids: tenancy
                        .party_refs
                        .iter()
                        .filter_map(|party| {
                            self.persons.golden_id_of(&local(party)).map(str::to_string)
                        })
                        .collect(),
                    start_date: tenancy.start_date,
                    end_date: tenancy.end_date,
                    tenure: tenancy.tenure.clone(),
                }
            })
            .collect()
    }

    /// Every vulnerability as of `today`: it lapses automatically after its end date.
    pub fn vulnerabilities(&self, today: NaiveDate) -> Vec<VulnerabilityStatus> {
        self.vulnerabilities
            .iter()
            .map(|(reference, vulnerability)| {
                let active = vulnerability.start_date.is_none_or(|start| start <= today)
                    && vulnerability.end_date.is_none_or(|end| end >= today);
                let person = Reference {
                    id: vulnerability.person_ref.clone(),
                    allocated_by: reference.allocated_by.clone(),
                };
                VulnerabilityStatus {
                    vulnerability: reference.clone(),
                    golden_person_id: self.persons.golden_id_of(&person).map(str::to_string),
                    code: vulnerability.code.clone(),
                    description: vulnerability.description.clone(),
                    start_date: vulnerability.start_date,
                    end_date: vulnerability.end_date,
                    review_date: vulnerability.review_date,
                    active,
                    review_overdue: active
                        && vulnerability
                            .review_date
                            .is_some_and(|review| review < today),
                }
            })
            .collect()
    }

    /// How many vulnerabilities are active, overdue for review and lapsed on `today`, and
    /// how many homes contractors see flagged.
    pub fn vulnerability_counts(&self, today: NaiveDate) -> VulnerabilityCounts {
        let statuses = self.vulnerabilities(today);
        VulnerabilityCounts {
            as_of: today,
            active: statuses.iter().filter(|status| status.active).count(),
            review_overdue: statuses.iter().filter(|s| s.review_overdue).count(),
            lapsed: statuses.iter().filter(|status| !status.active).count(),
            homes_flagged: self.contractor_alerts(today).len(),
        }
    }

    /// Homes where a current tenancy holder has an active vulnerability as of `today`: the
    /// contractor-facing flag, which carries no detail.
    pub fn contractor_alerts(&self, today: NaiveDate) -> Vec<ContractorAlert> {
        let vulnerable: std::collections::HashSet<String> = self
            .vulnerabilities(today)
            .into_iter()
            .filter(|status| status.active)
            .filter_map(|status| status.golden_person_id)
            .collect();
        let mut alerts: Vec<ContractorAlert> = self
            .tenancies()
            .into_iter()
            .filter(|tenancy| tenancy.end_date.is_none_or(|end| end >= today))
            .filter(|tenancy| {
                tenancy
                    .golden_person_ids
                    .iter()
                    .any(|person| vulnerable.contains(person))
            })
            .filter_map(|tenancy| tenancy.golden_property_id)
            .map(|golden_property_id| ContractorAlert {
                golden_property_id,
                take_extra_care: true,
            })
            .collect();
        alerts.sort();
        alerts.dedup();
        alerts
    }

    /// The cross-reference: every person and property source record and its golden id.
    pub fn xref(&self) -> Vec<XrefEntry> {
        let entries = |entity: &'static str, index: &ClusterIndex| {
            index
                .xref()
                .into_iter()
                .map(|(reference, golden_id)| XrefEntry {
                    entity,
                    source: reference.allocated_by.clone(),
                    source_id: reference.id.clone(),
                    golden_id: golden_id.to_string(),
                })
                .collect::<Vec<_>>()
        };
        let mut rows = entries("person", &self.persons);
        rows.extend(entries("property", &self.properties));
        rows
    }

    /// The (entity, golden id) of every person or property source record with this reference.
    pub fn golden_ids_of(&self, reference: &Reference) -> Vec<(&'static str, &str)> {
        let person = self
            .persons
            .golden_id_of(reference)
            .map(|id| ("person", id));
        let property = self
            .properties
            .golden_id_of(reference)
            .map(|id| ("property", id));
        person.into_iter().chain(property).collect()
    }

    /// Golden ids absorbed into another cluster, with the live id each resolves to now.
    pub fn redirects(&self) -> Vec<(Entity, String, String)> {
        [Entity::Person, Entity::Property]
            .into_iter()
            .flat_map(|entity| {
                let index = self.index(entity);
                index.redirects().into_keys().filter_map(move |from| {
                    let to = index.resolve(from)?;
                    Some((entity, from.to_string(), to))
                })
            })
            .collect()
    }

    /// The redirects that may have changed with `changes` (see
    /// `ClusterIndex::redirects_through`), as `redirects` gives them.
    pub fn redirects_changed(&self, changes: &Changes) -> Vec<(Entity, String, String)> {
        [
            (Entity::Person, &changes.persons),
            (Entity::Property, &changes.properties),
        ]
        .into_iter()
        .flat_map(|(entity, ids)| {
            let changed: FxHashSet<&str> = ids.iter().map(String::as_str).collect();
            self.index(entity)
                .redirects_through(&changed)
                .into_iter()
                .map(move |(from, to)| (entity, from.to_string(), to))
        })
        .collect()
    }

    /// Every steward verdict in force (`Same` or `Different`), by entity then pair: what a
    /// restart applies again after the records.
    pub fn verdicts(&self) -> Vec<StewardVerdict> {
        [Entity::Person, Entity::Property]
            .into_iter()
            .flat_map(|entity| {
                self.index(entity)
                    .decisions()
                    .into_iter()
                    .map(move |(a, b, same)| StewardVerdict {
                        entity,
                        a: a.clone(),
                        b: b.clone(),
                        verdict: if same {
                            Verdict::Same
                        } else {
                            Verdict::Different
                        },
                    })
            })
            .collect()
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
mod tests {
    use super::*;
    use crate::testing::{event, person};

    #[test]
    fn nickname_and_swapped_dob_link_hms_and_crm() {
        let mut hub = Hub::new(MdmConfig::default());
        hub.apply(&event(
            "hms",
            "T1",
            person("Mrs Margaret", "O'Brien", "1961-03-11", "07700900123"),
        ));
        let peggy = |phone: Option<&str>| {
            Payload::Person(Person {
                full_name: Some("Peggy OBrien".into()),
                date_of_birth: "1961-11-03".parse().ok(),
                phone: phone.map(str::to_string),
                email: Some("peggy@example.com".into()),
                ..Person::default()
            })
        };
        // Names and a swapped date of birth alone: likely, not certain (there are many
        // Margaret O'Briens among 50,000 people); a steward decides.
        hub.apply(&event("crm", "C1", peggy(None)));
        assert_eq!(hub.counts().golden_persons, 2);
        assert_eq!(hub.review_queue().len(), 1, "{:?}", hub.review_queue());
        // With the phone the CRM holds in its own format, one person.
        hub.apply(&event("crm", "C1", peggy(Some("+44 7700 900123"))));
        assert_eq!(
            hub.counts().golden_persons,
            1,
            "Peggy = Margaret, day and month swapped"
        );
        let golden = &hub.golden_persons()[0];
        assert_eq!(
            golden.given_name.as_deref(),
            Some("Margaret"),
            "hms is trusted over crm"
        );
        assert_eq!(golden.title.as_deref(), Some("Mrs"));
        assert_eq!(golden.lineage["given_name"].allocated_by, "hms");
        assert_eq!(golden.sources.len(), 2);
    }

    #[test]
    fn persons_normalised_ahead_give_the_hub_that_applying_one_by_one_gives() {
        let events = vec![
            event(
                "hms",
                "T1",
                person("Margaret", "OBrien", "1961-03-11", "07700900123"),
            ),
            event("hms", "P1", Payload::Tenancy(Default::default())),
            event(
                "crm",
                "C1",
                person("Peggy", "O'Brien", "1961-03-11", "07700900123"),
            ),
            event(
                "crm",
                "C2",
                person("Sean", "Murphy", "1970-01-02", "07700900999"),
            ),
        ];
        let mut one_by_one = Hub::new(MdmConfig::default());
        for event in &events {
            one_by_one.apply(event);
        }
        let fields = one_by_one.person_model().spec.fields.clone();
        // Normalised for the hub's model, and for other fields (normalised again by the hub).
        for fields in [fields.clone(), fields[..1].to_vec()] {
            let mut ahead = Hub::new(MdmConfig::default());
            let mut seen = Vec::new();
            ahead.apply_all(&events, NormalisedPersons::of(&events, &fields), |index| {
                seen.push(index)
            });
            assert_eq!(seen, [0, 1, 2, 3]);
            assert_eq!(ahead.xref(), one_by_one.xref());
            assert_eq!(ahead.golden_persons(), one_by_one.golden_persons());
            assert_eq!(ahead.counts().golden_persons, 2);
        }
    }

    #[test]
    fn merges_explain_themselves_and_steward_verdicts_hold_until_withdrawn() {
        let mut hub = Hub::new(MdmConfig::default());
        let hms = Reference {
            id: "T1".into(),
            allocated_by: "hms".into(),
        };
        let crm = Reference {
            id: "C1".into(),
            allocated_by: "crm".into(),
        };
        hub.apply(&event(
            "hms",
            "T1",
            person("Robert", "Mensah", "1968-11-23", "07525984967"),
        ));
        hub.apply(&event(
            "crm",
            "C1",
            person("Bob", "Mensah", "1968-11-23", "07525 984967"),
        ));
        let golden = hub.golden_ids_of(&hms)[0].1.to_string();
        let links = hub.explain(Entity::Person, &golden).unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].decided_by, "model");
        let score = links[0].score.as_ref().unwrap();
        assert!(score.probability >= 0.99, "{score:?}");
        assert_eq!(
            score.fields.len(),
            hub.person_model().spec.comparisons.len()
        );
        assert!(!score.model_version.is_empty());

        let before = hub.xref();
        hub.steward(Entity::Person, &hms, &crm, Verdict::Different)
            .unwrap();
        assert_eq!(hub.counts().golden_persons, 2);
        // An update of either record does not undo the verdict.
        hub.apply(&event(
            "crm",
            "C1",
            person("Bob", "Mensah", "1968-11-23", "07525 984967"),
        ));
        assert_eq!(hub.counts().golden_persons, 2);
        hub.steward(Entity::Person, &hms, &crm, Verdict::Withdraw)
            .unwrap();
        assert_eq!(hub.xref(), before, "withdrawing restores the exact xref");
        // A record matched with itself is a bad request; a record nobody holds is not found.
        let failure = hub
            .steward(Entity::Person, &hms, &hms, Verdict::Same)
            .unwrap_err();
        assert_eq!(failure.class(), pipeline::ErrorClass::BadInput, "{failure}");
        let nobody = Reference {
            id: "T404".into(),
            allocated_by: "hms".into(),
        };
        let failure = hub
            .steward(Entity::Person, &hms, &nobody, Verdict::Same)
            .unwrap_err();
        assert_eq!(failure.class(), pipeline::ErrorClass::NotFound, "{failure}");
        let failure = hub.erase("no-such-golden-id").unwrap_err();
        assert_eq!(failure.class(), pipeline::ErrorClass::NotFound, "{failure}");
    }

    /// What a restart does: the stored records applied again (some twice, as a replay of an
    /// uncommitted batch would), then the steward verdicts in force.
    #[test]
    fn records_applied_again_and_verdicts_replayed_rebuild_the_same_hub() {
        let events = vec![
            event(
                "hms",
                "T1",
                person("Robert", "Mensah", "1968-11-23", "07525984967"),
            ),
            event(
                "crm",
                "C1",
                person("Bob", "Mensah", "1968-11-23", "07525 984967"),
            ),
            event(
                "crm",
                "C2",
                person("Rob", "Mensah", "1968-11-23", "07525 984967"),
            ),
            event(
                "hms",
                "T2",
                Payload::Person(Person {
                    given_name: Some("Ann".into()),
                    family_name: Some("Lee".into()),
                    nino: Some("AA000000A".into()),
                    postcode: Some("not a postcode".into()),
                    date_of_birth: "1900-01-01".parse().ok(),
                    ..Person::default()
                }),
            ),
            event(
                "asset",
                "P1",
                Payload::Property(Property {
                    uprn: Some("no-uprn".into()),
                    address: Some("14 High Street".into()),
                    postcode: Some("LS1 4AB".into()),
                    ..Property::default()
                }),
            ),
        ];
        let reference = |system: &str, id: &str| Reference {
            id: id.into(),
            allocated_by: system.into(),
        };
        let mut live = Hub::new(MdmConfig::default());
        for event in &events {
            live.apply(event);
        }
        live.steward(
            Entity::Person,
            &reference("hms", "T1"),
            &reference("crm", "C1"),
            Verdict::Different,
        )
        .unwrap();
        live.steward(
            Entity::Person,
            &reference("crm", "C2"),
            &reference("hms", "T2"),
            Verdict::Same,
        )
        .unwrap();
        let quality = live.quality().clone();
        assert_eq!(quality.placeholder_ninos, 1);
        assert_eq!(quality.invalid_uprns, 1);

        let mut restarted = Hub::new(MdmConfig::default());
        for event in events.iter().chain(&events) {
            restarted.apply(event);
        }
        for verdict in live.verdicts() {
            restarted
                .steward(verdict.entity, &verdict.a, &verdict.b, verdict.verdict)
                .unwrap();
        }
        assert_eq!(restarted.xref(), live.xref());
        assert_eq!(restarted.verdicts(), live.verdicts());
        assert_eq!(restarted.verdicts().len(), 2);
        assert_eq!(
            restarted.quality(),
            &quality,
            "a record applied twice is counted once"
        );
    }

    #[test]
    fn changes_name_what_a_store_must_write_again() {
        let mut hub = Hub::new(MdmConfig::default());
        hub.track_changes();
        hub.apply(&event(
            "hms",
            "T1",
            person("Robert", "Mensah", "1968-11-23", "07525984967"),
        ));
        hub.apply(&event(
            "hms",
            "T2",
            person("Ann", "Lee", "1970-02-03", "07700900001"),
        ));
        let first = hub.take_changes();
        assert_eq!(first.person_records.len(), 2);
        assert_eq!(first.persons, hub.golden_person_ids());
        assert!(hub.take_changes().is_empty(), "taken once");

        // A CRM record joins Robert: his golden record and the newcomer's own id change;
        // Ann's do not.
        hub.apply(&event(
            "crm",
            "C1",
            person("Bob", "Mensah", "1968-11-23", "07525 984967"),
        ));
        let robert = hub.golden_ids_of(&Reference {
            id: "T1".into(),
            allocated_by: "hms".into(),
        })[0]
            .1
            .to_string();
        let changes = hub.take_changes();
        assert!(changes.persons.contains(&robert));
        assert!(changes.person_records.iter().any(|r| r.id == "C1"));
        assert!(changes.person_records.iter().all(|r| r.id != "T2"));
        assert!(changes.tenancies.is_empty() && changes.properties.is_empty());

        // A steward's split changes the same records back.
        hub.split(
            Entity::Person,
            &Reference {
                id: "C1".into(),
                allocated_by: "crm".into(),
            },
        )
        .unwrap();
        let split = hub.take_changes();
        assert!(split.persons.contains(&robert));
        assert_eq!(split.person_records.len(), 2);
    }

    #[test]
    fn an_erased_person_leaves_every_output_and_stays_out() {
        let mut hub = Hub::new(MdmConfig::default());
        let robert = person("Robert", "Mensah", "1968-11-23", "07525984967");
        hub.apply(&event("hms", "T1", robert.clone()));
        hub.apply(&event(
            "crm",
            "C1",
            person("Bob", "Mensah", "1968-11-23", "07525 984967"),
        ));
        hub.apply(&event(
            "hms",
            "T2",
            person("Ann", "Lee", "1970-02-03", "07700900001"),
        ));
        hub.apply(&event("hms", "P1", property(Some("1"), "1 High Street")));
        hub.apply(&event(
            "hms",
            "TY1",
            Payload::Tenancy(Tenancy {
                property_ref: "P1".into(),
                party_refs: vec!["T1".into(), "T2".into()],
                ..Tenancy::default()
            }),
        ));
        hub.apply(&event(
            "hms",
            "V1",
            Payload::Vulnerability(Vulnerability {
                person_ref: "T1".into(),
                code: "20-01".into(),
                ..Vulnerability::default()
            }),
        ));
        let t1 = Reference {
            id: "T1".into(),
            allocated_by: "hms".into(),
        };
        let golden = hub.golden_ids_of(&t1)[0].1.to_string();
        let ann = hub.golden_ids_of(&Reference {
            id: "T2".into(),
            allocated_by: "hms".into(),
        })[0]
            .1
            .to_string();
        assert_eq!(hub.counts().golden_persons, 2);

        let erasure = hub.erase(&golden).unwrap();
        assert_eq!(
            erasure.records.len(),
            2,
            "both source records of the person"
        );
        assert_eq!(erasure.vulnerabilities.len(), 1);
        assert!(
            hub.xref()
                .iter()
                .all(|row| row.source_id != "T1" && row.source_id != "C1")
        );
        assert_eq!(hub.counts().golden_persons, 1);
        assert_eq!(hub.counts().person_records, 1);
        assert!(hub.golden_person(&golden).is_none());
        assert!(hub.vulnerabilities(NaiveDate::MIN).is_empty());
        assert_eq!(hub.tenancies()[0].golden_person_ids, vec![ann.clone()]);

        // The source sends the record again (a file read again, an update): ignored.
        assert_eq!(hub.apply(&event("hms", "T1", robert)), Applied::Erased);
        assert_eq!(hub.counts().person_records, 1);
        assert!(hub.golden_ids_of(&t1).is_empty());
        assert_eq!(hub.quality(), &Quality::default());
        // The other person is untouched.
        assert_eq!(
            hub.golden_person(&ann).unwrap().given_name.as_deref(),
            Some("Ann")
        );
    }

    #[test]
    fn survivorship_rules_and_overrides_choose_with_lineage() {
        let mut config = MdmConfig::default();
        config
            .survivorship
            .insert("phone".into(), SurvivorshipRule::MostRecent);
        let mut hub = Hub::new(config);
        hub.apply(&event(
            "hms",
            "T1",
            Payload::Person(Person {
                given_name: Some("Robert".into()),
                family_name: Some("Mensah".into()),
                date_of_birth: "1968-11-23".parse().ok(),
                phone: Some("07525984967".into()),
                email: Some("bob@example.com".into()),
                ..Person::default()
            }),
        ));
        hub.apply(&event(
            "crm",
            "C1",
            Payload::Person(Person {
                given_name: Some("Robert".into()),
                family_name: Some("Mensah".into()),
                date_of_birth: "1968-11-23".parse().ok(),
                phone: Some("07525984967".into()),
                email: Some("bob@example.com".into()),
                ..Person::default()
            }),
        ));
        let mut update = event(
            "crm",
            "C1",
            Payload::Person(Person {
                given_name: Some("Robert".into()),
                family_name: Some("Mensah".into()),
                date_of_birth: "1968-11-23".parse().ok(),
                phone: Some("07700900999".into()),
                email: Some("bob@example.com".into()),
                ..Person::default()
            }),
        );
        update.recorded_at = "2025-01-02T10:00:00Z".parse().ok();
        hub.apply(&update);
        let golden = hub.golden_persons().remove(0);
        assert_eq!(golden.sources.len(), 2);
        assert_eq!(golden.phone.as_deref(), Some("07700900999"), "most recent");
        assert_eq!(golden.lineage["phone"].allocated_by, "crm");
        assert_eq!(golden.lineage["given_name"].allocated_by, "hms", "trust");
        hub.set_override(
            &golden.golden_id,
            "family_name",
            Some("Mensah-Owusu".into()),
        );
        let golden = hub.golden_person(&golden.golden_id).unwrap();
        assert_eq!(golden.family_name.as_deref(), Some("Mensah-Owusu"));
        assert_eq!(golden.lineage["family_name"].allocated_by, "steward");
    }

    #[test]
    fn configured_blocking_rules_decide_who_is_compared() {
        // Only NINOs block: two records of one person without NINOs are never compared.
        let config = MdmConfig {
            blocking: Some(vec![vec!["nino".into()]]),
            ..MdmConfig::default()
        };
        let mut hub = Hub::new(config);
        assert_eq!(hub.person_model().spec.blocking.len(), 1);
        hub.apply(&event(
            "hms",
            "T1",
            person("Robert", "Mensah", "1968-11-23", "07525984967"),
        ));
        hub.apply(&event(
            "crm",
            "C1",
            person("Robert", "Mensah", "1968-11-23", "07525984967"),
        ));
        assert_eq!(hub.counts().golden_persons, 2);
    }

    #[test]
    fn vulnerabilities_lapse_after_their_end_date_and_contractors_get_no_detail() {
        let mut hub = Hub::new(MdmConfig::default());
        hub.apply(&event(
            "hms",
            "T1",
            person("Ann", "Smith", "1970-01-02", "07700900123"),
        ));
        hub.apply(&event("hms", "P1", property(Some("1"), "1 High Street")));
        hub.apply(&event(
            "hms",
            "TY1",
            Payload::Tenancy(Tenancy {
                property_ref: "P1".into(),
                party_refs: vec!["T1".into()],
                ..Tenancy::default()
            }),
        ));
        let date = |text: &str| text.parse::<NaiveDate>().ok();
        for (id, end, review) in [
            ("V1", None, date("2025-01-01")),
            ("V2", date("2024-06-30"), None),
        ] {
            hub.apply(&event(
                "hms",
                id,
                Payload::Vulnerability(Vulnerability {
                    person_ref: "T1".into(),
                    code: "20-01".into(),
                    description: Some("Physical disability".into()),
                    start_date: date("2024-01-01"),
                    end_date: end,
                    review_date: review,
                    temporary: None,
                }),
            ));
        }
        let today = date("2025-03-31").unwrap();
        let statuses = hub.vulnerabilities(today);
        let by_id = |id: &str| statuses.iter().find(|s| s.vulnerability.id == id).unwrap();
        assert!(by_id("V1").active && by_id("V1").review_overdue);
        assert!(!by_id("V2").active, "lapsed after its end date");
        assert!(by_id("V1").golden_person_id.is_some());
        let alerts = hub.contractor_alerts(today);
        assert_eq!(alerts.len(), 1);
        let text = serde_json::to_string(&alerts).unwrap();
        assert!(!text.contains("20-01") && !text.contains("disability") && !text.contains("GP-"));
        assert!(
            hub.contractor_alerts(date("2023-01-01").unwrap())
                .is_empty()
        );
    }

    #[test]
    fn twins_and_households_stay_apart() {
        let mut hub = Hub::new(MdmConfig::default());
        hub.apply(&event(
            "hms",
            "T1",
            person("Amira", "Khan", "1990-05-06", "07700900123"),
        ));
        hub.apply(&event(
            "hms",
            "T2",
            person("Aisha", "Khan", "1990-05-06", "07700900123"),
        ));
        hub.apply(&event(
            "hms",
            "T3",
            person("Mohammed", "Khan", "1960-01-02", "07700900123"),
        ));
        assert_eq!(hub.counts().golden_persons, 3);
        // The twins score as one person but for their given names, and say so.
        let twin = Reference {
            id: "T2".into(),
            allocated_by: "hms".into(),
        };
        let golden = hub.golden_ids_of(&twin)[0].1.to_string();
        let explained = hub.vetoed(Entity::Person, &golden);
        let vetoed = explained.first().expect("the vetoed pair is explained");
        assert_eq!(vetoed.decided_by, "vetoed");
        let score = vetoed.score.as_ref().unwrap();
        assert!(score.weight > 0.0, "{score:?}");
        assert_eq!(
            score.vetoed_by.as_deref(),
            Some("given_name below jaro_winkler_low")
        );
    }

    #[test]
    fn same_name_and_phone_with_different_dates_of_birth_stay_apart() {
        let mut hub = Hub::new(MdmConfig::default());
        hub.apply(&event(
            "hms",
            "T1",
            person("John", "Smith", "1950-05-06", "07700900123"),
        ));
        hub.apply(&event(
            "crm",
            "C1",
            person("Jack", "Smith", "1980-07-08", "07700900123"),
        ));
        assert_eq!(hub.counts().golden_persons, 2);
        assert_eq!(hub.quality().blocked_links, 1);
    }

    #[test]
    fn a_shared_name_and_phone_without_a_date_of_birth_is_not_a_link() {
        // A parent and adult child of one name on the household phone; the CRM copy has no
        // usable date of birth, so nothing says which of the two it is.
        let mut hub = Hub::new(MdmConfig::default());
        hub.apply(&event(
            "hms",
            "T1",
            person("Rebecca", "Harris", "1970-05-06", "07700900123"),
        ));
        hub.apply(&event(
            "hms",
            "T2",
            person("Rebecca", "Harris", "2001-02-03", "07700900123"),
        ));
        hub.apply(&event(
            "crm",
            "C1",
            person("Rebecca", "Harris", "1900-01-01", "07700900123"),
        ));
        assert_eq!(hub.counts().golden_persons, 3);
        // Both candidate links wait for a steward, with their explanations.
        let review = hub.review_queue();
        assert_eq!(review.len(), 2, "{review:?}");
        assert!(
            review
                .iter()
                .all(|item| item.b.id == "C1" || item.a.id == "C1")
        );
    }

    #[test]
    fn placeholder_ninos_are_not_evidence() {
        let mut hub = Hub::new(MdmConfig::default());
        for (id, given) in [("T1", "Ann"), ("T2", "Bea")] {
            hub.apply(&event(
                "hms",
                id,
                Payload::Person(Person {
                    given_name: Some(given.into()),
                    family_name: Some("Smith".into()),
                    nino: Some("QQ123456C".into()),
                    ..Person::default()
                }),
            ));
        }
        assert_eq!(hub.counts().golden_persons, 2);
        assert_eq!(hub.quality().placeholder_ninos, 2);
    }

    fn property(uprn: Option<&str>, address: &str) -> Payload {
        Payload::Property(Property {
            uprn: uprn.map(str::to_string),
            address: Some(address.into()),
            postcode: Some("LS6 1AB".into()),
            ..Property::default()
        })
    }

    #[test]
    fn properties_link_on_a_shared_identifier() {
        let mut hub = Hub::new(MdmConfig::default());
        let with_id = |id: &str| {
            Payload::Property(Property {
                address: Some("Unit 4, Mill Yard".into()),
                identifiers: [("asset_no".to_string(), id.to_string())].into(),
                ..Property::default()
            })
        };
        hub.apply(&event("asset", "A1", with_id("ast-0042")));
        hub.apply(&event("hms", "P9", with_id("AST 0042")));
        hub.apply(&event("hms", "P10", with_id("AST-0043")));
        assert_eq!(hub.counts().golden_properties, 2);
    }

    #[test]
    fn properties_link_on_uprn_or_address_and_never_collapse_14b_to_flat_b() {
        let mut hub = Hub::new(MdmConfig::default());
        hub.apply(&event(
            "hms",
            "P1",
            Payload::Property(Property {
                uprn: Some("100023000001".into()),
                parent_uprn: Some("100023000000".into()),
                saon: Some("B".into()),
                paon: Some("14".into()),
                street: Some("High Street".into()),
                postcode: Some("LS6 1AB".into()),
                ..Property::default()
            }),
        ));
        hub.apply(&event(
            "hms",
            "P0",
            property(Some("100023000000"), "14 High Street"),
        ));
        hub.apply(&event(
            "hms",
            "P2",
            property(Some("100023000002"), "14B High Street"),
        ));
        hub.apply(&event("asset", "A1", property(None, "Flat B, 14 High St")));
        hub.apply(&event(
            "asset",
            "A2",
            property(Some("100023000001"), "14b High Street"),
        ));
        assert_eq!(hub.counts().golden_properties, 3);
        let flat = hub
            .golden_property(
                hub.properties
                    .golden_id_of(&Reference {
                        id: "P1".into(),
                        allocated_by: "hms".into(),
                    })
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(flat.sources.len(), 3, "{flat:?}");
        assert!(flat.parent_golden_id.is_some());
        assert_eq!(flat.street.as_deref(), Some("HIGH STREET"));
    }

    #[test]
    fn tenancies_resolve_through_the_xref_whatever_the_order() {
        let mut hub = Hub::new(MdmConfig::default());
        hub.apply(&event(
            "hms",
            "TY1",
            Payload::Tenancy(Tenancy {
                property_ref: "P1".into(),
                party_refs: vec!["T1".into()],
                ..Tenancy::default()
            }),
        ));
        assert_eq!(hub.tenancies()[0].golden_person_ids.len(), 0);
        hub.apply(&event(
            "hms",
            "T1",
            person("Ann", "Smith", "1970-01-02", "07700900123"),
        ));
        hub.apply(&event("hms", "P1", property(Some("1"), "1 High Street")));
        let tenancy = &hub.tenancies()[0];
        assert_eq!(tenancy.golden_person_ids.len(), 1);
        assert!(tenancy.golden_property_id.is_some());
    }
}
