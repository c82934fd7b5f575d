//! The Debezium source: change events that an existing Debezium / Kafka Connect deployment
//! writes to Kafka (NEC, Civica and MRI databases on Oracle or SQL Server), in the Debezium
//! envelope (`before`, `after`, `op`, `source`, `ts_ms`), with or without the JSON
//! converter's `schema` / `payload` wrapper. Each message becomes one canonical event mapped
//! from its row image by the same mapping contract as file sources, or a dead letter naming
//! the topic position and the reason. Decoding is pure: the consume loop is the binary's.

use chrono::{DateTime, Utc};
use pipeline::stage::{Decoded, Message};
use pipeline::{DeadLetter, EntityKind, Op, Reference};
use serde_json::Value;

use crate::mapping::{Raw, json_path};

source_config!(
    "debezium",
    one_mapping,
    /// `[[debezium]]`: Debezium topics of one table, mapped onto one canonical entity (paths
    /// are column names). Its name also names its consumer group
    /// (`<kafka.group_id>.connect.<name>`); Debezium sends dates as day numbers unless
    /// configured otherwise, and `date_formats` reads text dates.
    pub struct DebeziumConfig {
        /// The Debezium topics (`hmsdb.dbo.tenants`), read from the same Kafka cluster.
        pub topics: Vec<String>,
    }
);

impl DebeziumConfig {
    /// Checks its own keys (`Source::validate` checks the shared ones).
    fn check(&self, problems: &mut Vec<String>) {
        if self.topics.is_empty() {
            problems.push("topics: list at least one Debezium topic".into());
        }
    }

    pub fn entity(&self) -> Option<EntityKind> {
        self.mapping.entity_kind()
    }

    /// Decodes one consumed message. A tombstone (Debezium writes one after each delete,
    /// for compaction) is skipped; anything that is not a change event of a known operation
    /// with a row image that maps is a dead letter.
    pub fn decode(&self, message: &Message<'_>) -> Decoded {
        let Some(payload) = message.payload else {
            return Decoded::Skip;
        };
        let raw = String::from_utf8_lossy(payload).into_owned();
        let about = |field: Option<&str>, reason: String, source_ref: Option<Reference>| {
            Decoded::DeadLetter(DeadLetter {
                source: self.name.clone(),
                position: message.position(),
                field: field.map(str::to_string),
                reason,
                raw: raw.clone(),
                rejected_at: Utc::now(),
                source_ref,
            })
        };
        let dead = |field: Option<&str>, reason: String| about(field, reason, None);
        let Ok(text) = std::str::from_utf8(payload) else {
            return dead(None, "not valid UTF-8".into());
        };
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(error) => return dead(None, format!("invalid JSON: {error}")),
        };
        // The JSON converter with schemas enabled wraps the envelope.
        let envelope = match value.get("payload") {
            Some(inner) if value.get("schema").is_some() => inner,
            _ => &value,
        };
        if envelope.is_null() {
            return Decoded::Skip;
        }
        let Some(op) = envelope.get("op").and_then(Value::as_str) else {
            return dead(Some("op"), "not a Debezium change event: no `op`".into());
        };
        let (op, image) = match op {
            "c" => (Op::Create, "after"),
            "u" => (Op::Update, "after"),
            "r" => (Op::Read, "after"),
            "d" => (Op::Delete, "before"),
            other => {
                return dead(
                    Some("op"),
                    format!("unknown Debezium operation `{other}` (known: c, u, r, d)"),
                );
            }
        };
        let row = match envelope.get(image) {
            Some(row @ Value::Object(_)) => row,
            _ => {
                return dead(
                    Some(image),
                    format!(
                        "`{image}` is not a row image (for a delete, the connector needs REPLICA IDENTITY FULL or equivalent)"
                    ),
                );
            }
        };
        let mapper = self.mapper();
        let lookup = |path: &str| json_path(row, path).map(Raw::Json);
        match mapper.map(&self.mapping, lookup, message.position(), op) {
            Ok(mut event) => {
                // When the database committed the change, unless the mapping says otherwise;
                // a commit time outside the years goldthread accepts is garbage, not a time.
                if event.recorded_at.is_none() {
                    event.recorded_at = envelope
                        .get("source")
                        .and_then(|source| source.get("ts_ms"))
                        .or_else(|| envelope.get("ts_ms"))
                        .and_then(Value::as_i64)
                        .and_then(DateTime::from_timestamp_millis);
                    if let Some(Err(reason)) =
                        event.recorded_at.map(pipeline::entity::check_instant)
                    {
                        return about(Some("ts_ms"), reason, Some(event.source_ref));
                    }
                }
                Decoded::Event(Box::new(event))
            }
            Err(rejected) => about(
                rejected.field.as_deref(),
                rejected.reason.clone(),
                rejected.reference(&self.system),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::Payload;
    use proptest::prelude::*;

    fn config() -> DebeziumConfig {
        toml::from_str(
            r#"
            name = "hms_tenants_cdc"
            system = "hms"
            topics = ["hmsdb.dbo.tenants"]
            [mapping]
            entity = "person"
            id = "tenant_id"
            fields = { given_name = "forename", family_name = "surname", date_of_birth = "dob", nino = "ni_number" }
            "#,
        )
        .unwrap()
    }

    fn decode(payload: &[u8]) -> Decoded {
        config().decode(&Message {
            topic: "hmsdb.dbo.tenants",
            partition: 0,
            offset: 7,
            payload: Some(payload),
        })
    }

    const ROW: &str = r#"{"tenant_id": 1042, "forename": "Margaret", "surname": "O'Brien", "dob": -3218, "ni_number": "AB123456C"}"#;

    #[test]
    fn change_events_with_and_without_the_schema_wrapper_map_to_canonical_events() {
        let bare = format!(
            r#"{{"before": null, "after": {ROW}, "op": "c", "source": {{"ts_ms": 1700000000000, "table": "tenants"}}, "ts_ms": 1700000000123}}"#
        );
        let wrapped = format!(r#"{{"schema": {{"type": "struct"}}, "payload": {bare}}}"#);
        for message in [bare, wrapped] {
            let Decoded::Event(event) = decode(message.as_bytes()) else {
                panic!("{message}");
            };
            assert_eq!(event.source_ref.id, "1042");
            assert_eq!(event.source_ref.allocated_by, "hms");
            assert_eq!(event.source.op, Op::Create);
            assert_eq!(event.source.position, "hmsdb.dbo.tenants/0@7");
            assert_eq!(
                event.recorded_at,
                DateTime::from_timestamp_millis(1_700_000_000_000)
            );
            let Payload::Person(person) = &event.payload else {
                panic!("a person");
            };
            // Debezium's io.debezium.time.Date: days since 1970-01-01.
            assert_eq!(person.date_of_birth, "1961-03-11".parse().ok());
            assert_eq!(person.given_name.as_deref(), Some("Margaret"));
        }
        // The same message read again is the same event.
        let again = format!(r#"{{"after": {ROW}, "op": "u"}}"#);
        let (Decoded::Event(a), Decoded::Event(b)) =
            (decode(again.as_bytes()), decode(again.as_bytes()))
        else {
            panic!("events");
        };
        assert_eq!(a.event_id, b.event_id);
    }

    #[test]
    fn deletes_map_the_before_image_and_tombstones_are_skipped() {
        let delete = format!(r#"{{"before": {ROW}, "after": null, "op": "d"}}"#);
        let Decoded::Event(event) = decode(delete.as_bytes()) else {
            panic!("an event");
        };
        assert_eq!(event.source.op, Op::Delete);
        let tombstone = config().decode(&Message {
            topic: "t",
            partition: 0,
            offset: 1,
            payload: None,
        });
        assert_eq!(tombstone, Decoded::Skip);
    }

    #[test]
    fn what_is_not_a_mappable_change_event_is_a_dead_letter_with_a_reason() {
        for (payload, expected) in [
            (&b"\xff\xfe"[..], "not valid UTF-8"),
            (b"{not json", "invalid JSON"),
            (b"[1, 2]", "no `op`"),
            (br#"{"op": "x", "after": {}}"#, "unknown Debezium operation `x`"),
            (br#"{"op": "c", "after": "text"}"#, "`after` is not a row image"),
            (br#"{"op": "c", "after": {"forename": "Ann"}}"#, "the record's id is missing"),
            // Found by `fuzz/` (debezium): a commit time in the year 2518 became the
            // event's recorded time, which the stage then refused.
            (
                br#"{"schema":{"type":"struct"},"payload":{"before":null,"after":{"tenant_id":"T1","forename":"Ann","dob":60627},"op":"c","ts_ms":17303778721505}}"#,
                "outside the years 1800-2199",
            ),
        ] {
            match decode(payload) {
                Decoded::DeadLetter(dead_letter) => {
                    assert!(
                        dead_letter.reason.contains(expected),
                        "{}: {}",
                        String::from_utf8_lossy(payload),
                        dead_letter.reason
                    );
                    assert_eq!(dead_letter.position, "hmsdb.dbo.tenants/0@7");
                    assert_eq!(dead_letter.source, "hms_tenants_cdc");
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(payload)),
            }
        }
    }

    #[test]
    fn values_of_optional_fields_that_do_not_parse_are_kept_not_dead_lettered() {
        for (payload, field, expected) in [
            (
                &br#"{"op": "c", "after": {"tenant_id": 1, "forename": "Ann", "surname": "Lee", "dob": "yesterday"}}"#[..],
                "date_of_birth",
                "cannot parse `yesterday`",
            ),
            (
                br#"{"op": "c", "after": {"tenant_id": 1, "forename": ["Ann"], "surname": "Lee"}}"#,
                "given_name",
                "expected text",
            ),
        ] {
            match decode(payload) {
                Decoded::Event(event) => {
                    let kept = &event.unparsed[field];
                    assert!(kept.reason.contains(expected), "{kept:?}");
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(payload)),
            }
        }
    }

    proptest! {
        /// Whatever arrives (random bytes, or change events with random values of any
        /// type and size), decoding never panics, and anything not skipped is an event or a
        /// dead letter.
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn random_row_values_are_events_or_dead_letters(
            id in prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), ".{0,40}".prop_map(Value::from)],
            forename in prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), ".{0,2000}".prop_map(Value::from)],
            dob in prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), any::<f64>().prop_map(Value::from), ".{0,20}".prop_map(Value::from)],
            op in prop_oneof![Just("c".to_string()), Just("u".to_string()), Just("r".to_string()), Just("d".to_string()), ".{0,3}"],
        ) {
            let row = serde_json::json!({"tenant_id": id, "forename": forename, "surname": "Lee", "dob": dob});
            let message = serde_json::json!({"op": op, "after": row, "before": row}).to_string();
            prop_assert!(!matches!(decode(message.as_bytes()), Decoded::Skip));
        }
    }
}
