//! Test helpers: events as sources send them.

use chrono::Utc;
use pipeline::entity::Person;
use pipeline::{Envelope, Op, Payload, Reference, Source};

/// An event of `system`'s record `id`.
pub fn event(system: &str, id: &str, payload: Payload) -> Envelope {
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
        unparsed: Default::default(),
    }
}

/// A person payload with the values matching leans on most.
pub fn person(given: &str, family: &str, dob: &str, phone: &str) -> Payload {
    Payload::Person(Person {
        given_name: Some(given.into()),
        family_name: Some(family.into()),
        date_of_birth: dob.parse().ok(),
        phone: Some(phone.into()),
        ..Person::default()
    })
}
