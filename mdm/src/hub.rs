//! The master data hub: applies canonical person, property, tenancy and vulnerability events
//! to the cluster indexes and derives golden records with field-level lineage.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use pipeline::entity::{Person, Property, Tenancy, Vulnerability};
use pipeline::{Envelope, Payload, Reference};
use serde::Serialize;

use crate::address;
use crate::cluster::{ClusterIndex, Evidence};
use crate::config::MdmConfig;
use crate::normalise::{self, Nino};

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
    /// Not master data (repairs, appointments): nothing to do here.
    NotMasterData,
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

/// Data-quality findings: values that failed validation, kept and counted, never evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Quality {
    pub placeholder_ninos: u64,
    pub invalid_ninos: u64,
    pub default_dates_of_birth: u64,
    pub invalid_postcodes: u64,
    pub invalid_uprns: u64,
    pub blocked_links: u64,
}

#[derive(Debug, Clone)]
struct PersonRecord {
    sequence: u64,
    title: Option<String>,
    given: Option<String>,
    middle: Option<String>,
    family: Option<String>,
    date_of_birth: Option<NaiveDate>,
    nino: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    postcode: Option<String>,
}

#[derive(Debug, Clone)]
struct PropertyRecord {
    sequence: u64,
    uprn: Option<String>,
    parent_uprn: Option<String>,
    address: address::Address,
    property_type: Option<String>,
}

/// Survivorship over a cluster's members, most trusted first: each attribute comes from the
/// first member with a value, and the lineage records which member that was.
struct Survivorship<'a, R> {
    members: &'a [(&'a Reference, &'a R)],
    lineage: BTreeMap<&'static str, Reference>,
}

impl<'a, R> Survivorship<'a, R> {
    fn new(members: &'a [(&'a Reference, &'a R)]) -> Self {
        Survivorship {
            members,
            lineage: BTreeMap::new(),
        }
    }

    fn pick<T>(&mut self, attribute: &'static str, get: impl Fn(&R) -> Option<T>) -> Option<T> {
        let (reference, value) = self
            .members
            .iter()
            .find_map(|(reference, record)| get(record).map(|value| (*reference, value)))?;
        self.lineage.insert(attribute, reference.clone());
        Some(value)
    }
}

/// In-memory master data state. No IO.
#[derive(Debug)]
pub struct Hub {
    config: MdmConfig,
    persons: ClusterIndex,
    person_records: HashMap<Reference, PersonRecord>,
    properties: ClusterIndex,
    property_records: HashMap<Reference, PropertyRecord>,
    tenancies: BTreeMap<Reference, Tenancy>,
    vulnerabilities: BTreeMap<Reference, Vulnerability>,
    quality: Quality,
    sequence: u64,
}

fn uprn(raw: Option<&str>) -> Result<Option<String>, ()> {
    match raw.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) if text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Some(text.trim_start_matches('0').to_string()).filter(|text| !text.is_empty()))
        }
        Some(_) => Err(()),
    }
}

impl Hub {
    pub fn new(config: MdmConfig) -> Hub {
        Hub {
            config,
            persons: ClusterIndex::new("GP"),
            person_records: HashMap::new(),
            properties: ClusterIndex::new("GH"),
            property_records: HashMap::new(),
            tenancies: BTreeMap::new(),
            vulnerabilities: BTreeMap::new(),
            quality: Quality::default(),
            sequence: 0,
        }
    }

    /// Applies one canonical event. Master data is matched and linked; anything else is
    /// left to other stages.
    pub fn apply(&mut self, envelope: &Envelope) -> Applied {
        self.sequence += 1;
        let reference = &envelope.source_ref;
        match &envelope.payload {
            Payload::Person(person) => self.apply_person(reference, person),
            Payload::Property(property) => self.apply_property(reference, property),
            Payload::Tenancy(tenancy) => {
                self.tenancies.insert(reference.clone(), tenancy.clone());
                Applied::Tenancy
            }
            Payload::Vulnerability(vulnerability) => {
                self.vulnerabilities
                    .insert(reference.clone(), vulnerability.clone());
                Applied::Vulnerability
            }
            _ => Applied::NotMasterData,
        }
    }

    fn apply_person(&mut self, reference: &Reference, person: &Person) -> Applied {
        let name = normalise::person_name(person);
        let date_of_birth = normalise::date_of_birth(person.date_of_birth);
        if person.date_of_birth.is_some() && date_of_birth.is_none() {
            self.quality.default_dates_of_birth += 1;
        }
        let nino = match person.nino.as_deref().and_then(normalise::nino) {
            Some(Nino::Valid(nino)) => Some(nino),
            Some(Nino::Placeholder(_)) => {
                self.quality.placeholder_ninos += 1;
                None
            }
            Some(Nino::Invalid(_)) => {
                self.quality.invalid_ninos += 1;
                None
            }
            None => None,
        };
        let postcode = person.postcode.as_deref().and_then(|raw| {
            let formatted = normalise::postcode(raw);
            if formatted.is_none() {
                self.quality.invalid_postcodes += 1;
            }
            formatted
        });
        let record = PersonRecord {
            sequence: self.sequence,
            title: name.title,
            given: name.given,
            middle: name.middle,
            family: name.family,
            date_of_birth,
            nino,
            phone: person.phone.as_deref().and_then(normalise::phone),
            email: person.email.as_deref().and_then(normalise::email),
            postcode,
        };
        let evidence = person_evidence(&record);
        self.person_records.insert(reference.clone(), record);
        let upsert = self.persons.upsert(reference, evidence);
        self.quality.blocked_links += upsert.blocked.len() as u64;
        Applied::Person {
            golden_id: upsert.golden_id,
            absorbed: upsert.absorbed,
        }
    }

    fn apply_property(&mut self, reference: &Reference, property: &Property) -> Applied {
        let structured =
            property.paon.is_some() || property.saon.is_some() || property.street.is_some();
        let address = if structured {
            address::Address {
                saon: property.saon.as_deref().and_then(address::saon),
                paon: property.paon.as_deref().and_then(address::paon),
                street: property.street.as_deref().and_then(address::street),
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
        if property.postcode.is_some() && address.postcode.is_none() {
            self.quality.invalid_postcodes += 1;
        }
        let uprn_value = uprn(property.uprn.as_deref()).unwrap_or_else(|()| {
            self.quality.invalid_uprns += 1;
            None
        });
        let parent_uprn = uprn(property.parent_uprn.as_deref()).unwrap_or_default();
        let record = PropertyRecord {
            sequence: self.sequence,
            uprn: uprn_value,
            parent_uprn,
            address,
            property_type: property.property_type.clone(),
        };
        let mut evidence = Evidence::default();
        if let Some(uprn) = &record.uprn {
            evidence.keys.push(format!("uprn:{uprn}"));
            evidence.exclusive.push(("uprn", uprn.clone()));
        }
        if let (Some(postcode), Some(paon)) = (&record.address.postcode, &record.address.paon) {
            let saon = record.address.saon.as_deref().unwrap_or("");
            evidence.keys.push(format!("addr:{postcode}|{paon}|{saon}"));
        }
        self.property_records.insert(reference.clone(), record);
        let upsert = self.properties.upsert(reference, evidence);
        self.quality.blocked_links += upsert.blocked.len() as u64;
        Applied::Property {
            golden_id: upsert.golden_id,
            absorbed: upsert.absorbed,
        }
    }

    /// Members of a cluster, most trusted first (source rank, then most recent).
    fn ranked<'a, R>(
        &self,
        references: Vec<&'a Reference>,
        records: &'a HashMap<Reference, R>,
        sequence: impl Fn(&R) -> u64,
    ) -> Vec<(&'a Reference, &'a R)> {
        let mut members: Vec<(&Reference, &R)> = references
            .into_iter()
            .filter_map(|reference| records.get(reference).map(|record| (reference, record)))
            .collect();
        members.sort_by_key(|(reference, record)| {
            (
                self.config.rank(&reference.allocated_by),
                std::cmp::Reverse(sequence(record)),
            )
        });
        members
    }

    /// The golden person an id (live or absorbed) resolves to.
    pub fn golden_person(&self, golden_id: &str) -> Option<GoldenPerson> {
        let golden_id = self.persons.resolve(golden_id)?;
        let members = self.ranked(
            self.persons.members(&golden_id),
            &self.person_records,
            |record| record.sequence,
        );
        let mut survive = Survivorship::new(&members);
        let title = survive.pick("title", |record| record.title.clone());
        let given_name = survive.pick("given_name", |record| record.given.clone());
        let middle_name = survive.pick("middle_name", |record| record.middle.clone());
        let family_name = survive.pick("family_name", |record| record.family.clone());
        let date_of_birth = survive.pick("date_of_birth", |record| record.date_of_birth);
        let nino = survive.pick("nino", |record| record.nino.clone());
        let phone = survive.pick("phone", |record| record.phone.clone());
        let email = survive.pick("email", |record| record.email.clone());
        let postcode = survive.pick("postcode", |record| record.postcode.clone());
        Some(GoldenPerson {
            sources: members
                .iter()
                .map(|(reference, _)| (*reference).clone())
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
            lineage: survive.lineage,
        })
    }

    /// The golden property an id (live or absorbed) resolves to.
    pub fn golden_property(&self, golden_id: &str) -> Option<GoldenProperty> {
        let golden_id = self.properties.resolve(golden_id)?;
        let members = self.ranked(
            self.properties.members(&golden_id),
            &self.property_records,
            |record| record.sequence,
        );
        let mut survive = Survivorship::new(&members);
        let uprn = survive.pick("uprn", |record| record.uprn.clone());
        let parent_uprn = survive.pick("parent_uprn", |record| record.parent_uprn.clone());
        let saon = survive.pick("saon", |record| record.address.saon.clone());
        let paon = survive.pick("paon", |record| record.address.paon.clone());
        let street = survive.pick("street", |record| record.address.street.clone());
        let town = survive.pick("town", |record| record.address.town.clone());
        let postcode = survive.pick("postcode", |record| record.address.postcode.clone());
        let property_type = survive.pick("property_type", |record| record.property_type.clone());
        let parent_golden_id = parent_uprn
            .as_ref()
            .and_then(|parent| self.properties.golden_id_by_key(&format!("uprn:{parent}")))
            .map(str::to_string);
        Some(GoldenProperty {
            sources: members
                .iter()
                .map(|(reference, _)| (*reference).clone())
                .collect(),
            golden_id,
            uprn,
            parent_uprn,
            parent_golden_id,
            saon,
            paon,
            street,
            town,
            postcode,
            property_type,
            lineage: survive.lineage,
        })
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

/// Match keys of a person. Every key but the NINO needs a given-name form, a family name and
/// a date of birth, so a household sharing surname, address and phone never links on those.
fn person_evidence(record: &PersonRecord) -> Evidence {
    let mut evidence = Evidence::default();
    if let Some(nino) = &record.nino {
        evidence.keys.push(format!("nino:{nino}"));
        evidence.exclusive.push(("nino", nino.clone()));
    }
    if let Some(date) = record.date_of_birth {
        evidence
            .exclusive
            .push(("date_of_birth", normalise::date_of_birth_key(date)));
    }
    let family = record
        .family
        .as_deref()
        .map(normalise::fold)
        .filter(|family| !family.is_empty());
    let (Some(given), Some(family)) = (record.given.as_deref(), family) else {
        return evidence;
    };
    // A household shares phone and email, and a parent and adult child can share a name:
    // phone and email are evidence only beside a date of birth, which then must not clash.
    let Some(date) = record.date_of_birth else {
        return evidence;
    };
    for form in normalise::given_name_forms(given) {
        evidence.keys.push(format!(
            "dob:{form}|{family}|{}",
            normalise::date_of_birth_key(date)
        ));
        if let Some(phone) = &record.phone {
            evidence.keys.push(format!("phone:{form}|{family}|{phone}"));
        }
        if let Some(email) = &record.email {
            evidence.keys.push(format!("email:{form}|{family}|{email}"));
        }
    }
    evidence
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use pipeline::{Op, Source};

    fn event(system: &str, id: &str, payload: Payload) -> Envelope {
        Envelope {
            event_id: Envelope::event_id_for(system, id),
            event_type: payload.kind().event_type().into(),
            source: Source {
                system: system.into(),
                instance: system.into(),
                op: Op::Read,
                position: format!("{id}:1"),
            },
            source_ref: Reference {
                id: id.into(),
                allocated_by: system.into(),
            },
            occurred_at: None,
            recorded_at: None,
            ingested_at: Utc::now(),
            payload,
        }
    }

    fn person(given: &str, family: &str, dob: &str, phone: &str) -> Payload {
        Payload::Person(Person {
            given_name: Some(given.into()),
            family_name: Some(family.into()),
            date_of_birth: dob.parse().ok(),
            phone: Some(phone.into()),
            ..Person::default()
        })
    }

    #[test]
    fn nickname_and_swapped_dob_link_hms_and_crm() {
        let mut hub = Hub::new(MdmConfig::default());
        hub.apply(&event(
            "hms",
            "T1",
            person("Mrs Margaret", "O'Brien", "1961-03-11", "07700900123"),
        ));
        hub.apply(&event(
            "crm",
            "C1",
            Payload::Person(Person {
                full_name: Some("Peggy OBrien".into()),
                date_of_birth: "1961-11-03".parse().ok(),
                email: Some("peggy@example.com".into()),
                ..Person::default()
            }),
        ));
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
