//! Applying events to the hub: a person through the matcher (normalised here, or ahead of
//! time on every core), a property by its rules (UPRN, then address), tenancies and
//! vulnerabilities kept by reference; an erased record is ignored.

use super::*;

impl Hub {
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
}
