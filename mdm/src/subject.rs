//! Subject access (`goldthread sar`): everything held about one person, from a hub that
//! holds the events read: the golden record with lineage, every source record behind it with
//! its position, every match decision with its explanation, pending review pairs, tenancies,
//! vulnerabilities and the dead letters about their records.

use std::collections::BTreeSet;

use pipeline::{DeadLetter, Envelope, Payload, Reference};
use serde::Serialize;

use crate::{Entity, Hub};

/// One source record as the connector read it.
#[derive(Debug, Serialize)]
pub struct SourceRecord {
    pub system: String,
    pub source_id: String,
    /// Where it was read: `file:line`.
    pub position: String,
    pub event_id: String,
    pub payload: Payload,
}

/// Everything held about one person.
#[derive(Debug, Serialize)]
pub struct SubjectAccess {
    pub subject: String,
    pub golden_id: String,
    pub golden_person: crate::GoldenPerson,
    pub source_records: Vec<SourceRecord>,
    pub match_decisions: Vec<crate::LinkExplanation>,
    pub pending_review: Vec<crate::ReviewItem>,
    pub tenancies: Vec<crate::GoldenTenancy>,
    pub vulnerabilities: Vec<SourceRecord>,
    /// Rows about the person's records that did not become events, with their raw rows.
    pub dead_letters: Vec<pipeline::DeadLetter>,
}

/// The report for `subject` from a hub that holds `events` (and whatever verdicts and
/// erasures apply); `dead_letters` may hold others' too.
pub fn report(
    hub: &Hub,
    events: &[Envelope],
    dead_letters: &[DeadLetter],
    subject: &str,
) -> Result<SubjectAccess, crate::Error> {
    let golden_id = hub.person_subject(subject)?;
    let golden_person = hub
        .golden_person(&golden_id)
        .ok_or_else(|| crate::Error::NotFound(format!("no golden person `{golden_id}`")))?;
    let golden_id = golden_person.golden_id.clone();
    let members: BTreeSet<&Reference> = golden_person.sources.iter().collect();
    let record = |event: &Envelope| SourceRecord {
        system: event.source_ref.allocated_by.clone(),
        source_id: event.source_ref.id.clone(),
        position: event.source.position.clone(),
        event_id: event.event_id.clone(),
        payload: event.payload.clone(),
    };
    let source_records = events
        .iter()
        .filter(|event| {
            matches!(event.payload, Payload::Person(_)) && members.contains(&event.source_ref)
        })
        .map(record)
        .collect();
    let vulnerabilities = events
        .iter()
        .filter(|event| match &event.payload {
            Payload::Vulnerability(vulnerability) => members.contains(&Reference {
                id: vulnerability.person_ref.clone(),
                allocated_by: event.source_ref.allocated_by.clone(),
            }),
            _ => false,
        })
        .map(record)
        .collect();
    Ok(SubjectAccess {
        subject: subject.to_string(),
        match_decisions: hub.explain(Entity::Person, &golden_id).unwrap_or_default(),
        pending_review: hub
            .review_queue()
            .into_iter()
            .filter(|item| members.contains(&item.a) || members.contains(&item.b))
            .collect(),
        tenancies: hub
            .tenancies()
            .into_iter()
            .filter(|tenancy| tenancy.golden_person_ids.contains(&golden_id))
            .collect(),
        dead_letters: dead_letters
            .iter()
            .filter(|dead_letter| {
                dead_letter
                    .source_ref
                    .as_ref()
                    .is_some_and(|reference| members.contains(reference))
            })
            .cloned()
            .collect(),
        golden_id,
        golden_person,
        source_records,
        vulnerabilities,
    })
}
