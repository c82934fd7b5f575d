//! The canonical event envelope every connector produces and every stage consumes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::entity::Payload;

/// A HACT `Reference`: an identifier and who allocated it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reference {
    pub id: String,
    /// The source system that allocated the id (`hms`, `crm`, `repairs`, `asset`).
    pub allocated_by: String,
}

impl Reference {
    /// The Kafka message key of this record's events (`system:id`): one record's events stay
    /// in order, and compaction keeps its latest (or its tombstone).
    pub fn key(&self) -> String {
        format!("{}:{}", self.allocated_by, self.id)
    }
}

/// The change operation, as in Debezium: create, update, delete, read (snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "c")]
    Create,
    #[serde(rename = "u")]
    Update,
    #[serde(rename = "d")]
    Delete,
    #[serde(rename = "r")]
    Read,
}

/// Where an event came from, precisely enough to find the source row again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The source system (`hms`, `repairs`, ...).
    pub system: String,
    /// The configured source that read it (`hms_tenants`).
    pub instance: String,
    pub op: Op,
    /// The position in the source: `file:line` for files, an LSN or offset for streams.
    pub position: String,
}

/// One canonical event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Stable for the same source position, so a replay produces the same id.
    pub event_id: String,
    /// `<entity>.<action>.v<major>`, e.g. `work_order.status_changed.v1`.
    pub event_type: String,
    pub source: Source,
    pub source_ref: Reference,
    /// Business time: when the thing happened, where the source says.
    pub occurred_at: Option<DateTime<Utc>>,
    /// When the source system recorded it, where the source says.
    pub recorded_at: Option<DateTime<Utc>>,
    /// When goldthread read it.
    pub ingested_at: DateTime<Utc>,
    pub payload: Payload,
    /// Optional fields whose source value did not parse, by canonical field: the field is
    /// null in the payload and the value is kept here, so the record still flows (a typo'd
    /// date of birth does not cost the whole tenant) and the finding can be reported.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub unparsed: std::collections::BTreeMap<String, Unparsed>,
}

/// A source value that did not parse as its canonical field's kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unparsed {
    /// The value as the source sent it (text, or JSON for other values).
    pub raw: String,
    /// Why it did not parse.
    pub reason: String,
    /// For a date: its numbers read by the source's date format as `YYYYMMDD`, even where
    /// they make no date (`30/03/2000` read with `%m/%d/%Y` gives `20003003`), so matching
    /// can still see a day and month swapped or one digit wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_digits: Option<String>,
}

/// Values of optional fields that did not parse, per canonical field, with the first few as
/// examples: a data-quality finding per source (the records themselves flowed).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct UnparsedTally(pub std::collections::BTreeMap<String, UnparsedCount>);

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnparsedCount {
    pub count: u64,
    /// The first values, as they came (at most three, each cut to 64 characters).
    pub examples: Vec<String>,
}

impl UnparsedTally {
    /// Counts an event's unparsed values (and the `connector_unparsed_values_total` metric).
    pub fn add(&mut self, source: &str, envelope: &Envelope) {
        for (field, value) in &envelope.unparsed {
            let count = self.0.entry(field.clone()).or_default();
            count.count += 1;
            if count.examples.len() < 3 {
                count.examples.push(value.raw.chars().take(64).collect());
            }
            metrics::counter!(
                crate::metrics::CONNECTOR_UNPARSED_VALUES_TOTAL,
                "source" => source.to_string(),
                "field" => field.clone()
            )
            .increment(1);
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().map(|count| count.count).sum()
    }

    /// `date_of_birth 12 (19450493, 30/03/2000), nino 3 (...)`.
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(field, count)| {
                format!("{field} {} ({})", count.count, count.examples.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The namespace for event ids (UUID v5 of the source position).
const EVENT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f1d_27c4_8a55_4b8e_9b0e_5d2c_0a7e_1f3b);

impl Envelope {
    /// An event id derived from the source instance and position: replays give the same id.
    pub fn event_id_for(instance: &str, position: &str) -> String {
        let name = format!("{instance}\u{1f}{position}");
        uuid::Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()).to_string()
    }

    /// The Kafka message key: the source reference, so one record's events stay in order.
    pub fn key(&self) -> String {
        self.source_ref.key()
    }

    /// Checks the event's dates and instants against [`crate::entity::YEARS`]; the error
    /// names the field.
    pub fn check_times(&self) -> Result<(), (&'static str, String)> {
        let envelope_times = [
            ("occurred_at", self.occurred_at),
            ("recorded_at", self.recorded_at),
            ("ingested_at", Some(self.ingested_at)),
        ];
        for (field, instant) in envelope_times {
            if let Some(instant) = instant {
                crate::entity::check_instant(instant).map_err(|reason| (field, reason))?;
            }
        }
        self.payload.check_times()
    }
}

/// The largest source row (a CSV record, a JSON line, a posted body) that becomes an event.
/// A larger one is a dead letter: its event would not fit a Kafka message (1 MB by default).
pub const MAX_ROW_BYTES: usize = 256 * 1024;

/// The most of a rejected row a dead letter keeps: enough to find and fix it, small enough
/// for the dead-letter topic.
pub const MAX_DEAD_LETTER_RAW_BYTES: usize = 16 * 1024;

/// A record that could not become a canonical event, with everything needed to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The configured source (or stage) that rejected it.
    pub source: String,
    /// `file:line` for files, `topic/partition@offset` for consumed messages.
    pub position: String,
    /// The source field at fault, where one is.
    pub field: Option<String>,
    pub reason: String,
    /// The raw row or message, as read.
    pub raw: String,
    pub rejected_at: DateTime<Utc>,
    /// The record it is about, when its id could be read: the dead letter's key on the
    /// dead-letter topic, so an erasure's tombstone removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<Reference>,
}

impl DeadLetter {
    /// The dead letter with its raw row cut to [`MAX_DEAD_LETTER_RAW_BYTES`] (at a character
    /// boundary), saying how long it was.
    pub fn clipped(mut self) -> DeadLetter {
        if self.raw.len() > MAX_DEAD_LETTER_RAW_BYTES {
            let total = self.raw.len();
            let mut end = MAX_DEAD_LETTER_RAW_BYTES;
            while !self.raw.is_char_boundary(end) {
                end -= 1;
            }
            self.raw.truncate(end);
            self.raw
                .push_str(&format!("... [cut: {total} bytes in all]"));
        }
        self
    }
}

impl std::fmt::Display for DeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.position, self.source)?;
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::WorkOrderUpdate;

    #[test]
    fn envelope_round_trips_as_json() {
        let at: DateTime<Utc> = "2025-06-02T10:00:00Z".parse().unwrap();
        let envelope = Envelope {
            event_id: Envelope::event_id_for("repairs_feed", "messages.jsonl:7"),
            event_type: "work_order.status_changed.v1".into(),
            source: Source {
                system: "repairs".into(),
                instance: "repairs_feed".into(),
                op: Op::Read,
                position: "messages.jsonl:7".into(),
            },
            source_ref: Reference {
                id: "WO1".into(),
                allocated_by: "repairs".into(),
            },
            occurred_at: Some(at),
            recorded_at: None,
            ingested_at: at,
            payload: Payload::WorkOrderUpdate(WorkOrderUpdate {
                work_order_ref: "WO1".into(),
                status: "completed".into(),
                status_at: at,
                type_code: None,
                follow_on_ref: None,
            }),
            unparsed: [(
                "type_code".to_string(),
                Unparsed {
                    raw: "J1".into(),
                    reason: "cannot parse `J1` as an integer".into(),
                    date_digits: None,
                },
            )]
            .into(),
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert!(json.contains(r#""op":"r""#), "{json}");
        assert!(json.contains(r#""entity":"work_order_update""#), "{json}");
        assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), envelope);
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        assert_eq!(
            Envelope::event_id_for("a", "f:1"),
            Envelope::event_id_for("a", "f:1")
        );
        assert_ne!(
            Envelope::event_id_for("a", "f:1"),
            Envelope::event_id_for("a", "f:2")
        );
    }

    #[test]
    fn dead_letters_keep_a_bounded_raw_row() {
        let dead_letter = |raw: String| DeadLetter {
            source: "s".into(),
            position: "f:1".into(),
            field: None,
            reason: "r".into(),
            raw,
            rejected_at: Utc::now(),
            source_ref: None,
        };
        assert_eq!(dead_letter("short".into()).clipped().raw, "short");
        let long = "é".repeat(MAX_DEAD_LETTER_RAW_BYTES);
        let clipped = dead_letter(long).clipped().raw;
        assert!(
            clipped.len() < MAX_DEAD_LETTER_RAW_BYTES + 64,
            "{}",
            clipped.len()
        );
        assert!(clipped.ends_with(&format!(
            "[cut: {} bytes in all]",
            2 * MAX_DEAD_LETTER_RAW_BYTES
        )));
    }
}
