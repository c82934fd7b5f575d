//! The webhook source: contractors' repair systems post HACT-style JSON messages
//! (JobStatusUpdate, WorkOrderComplete, ...) to `POST /webhooks/<name>`. Each message maps
//! onto one canonical event by the same mapping contract as JSON lines files (one `mapping`,
//! or `type_field` with a mapping per message type). Decoding is pure; producing is
//! `driver::webhook`'s, and the HTTP endpoint and its authentication are the binary's.

use pipeline::{Envelope, Op};
use serde_json::Value;

use crate::config::validate_messages;
use crate::mapping::{Raw, Rejected, json_path, route};

source_config!(
    "webhooks",
    messages,
    /// `[[webhooks]]`: one endpoint, `POST /webhooks/<name>` (the name is the path
    /// segment, so letters, digits, `_` and `-` only).
    pub struct WebhookConfig {
        /// Names of `[[http.tokens]]` allowed to post here (a `contractor` role token reads
        /// nothing else).
        pub tokens: Vec<String>,
        /// Dotted path of the sender's message id: a retry with the same id is the same event.
        pub message_id: String,
    }
);

/// A message that did not become an event: the message id when it had one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub message_id: Option<String>,
    pub rejected: Rejected,
}

impl WebhookConfig {
    /// Checks its own keys (`Source::validate` checks the shared ones).
    fn check(&self, problems: &mut Vec<String>) {
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            problems.push(format!(
                "name: `{}` must be letters, digits, `_` or `-` (it is a URL path segment)",
                self.name
            ));
        }
        if self.tokens.is_empty() {
            problems.push("tokens: name at least one [[http.tokens]] entry that may post".into());
        }
        if !validate_messages(
            self.mapping.as_ref(),
            self.type_field.as_ref(),
            &self.messages,
            problems,
        ) {
            problems.push(
                "a webhook needs either one `mapping`, or `type_field` with `messages.<type>` mappings"
                    .into(),
            );
        }
    }

    /// Decodes one posted body into (message id, event). The event's id derives from the
    /// message id, so a retried message is the same event.
    pub fn decode(&self, body: &[u8]) -> Result<(String, Envelope), Refused> {
        let refuse = |message_id: Option<&str>, field: Option<&str>, reason: String| Refused {
            message_id: message_id.map(str::to_string),
            rejected: Rejected::new(field, reason),
        };
        if body.len() > pipeline::MAX_ROW_BYTES {
            return Err(refuse(
                None,
                None,
                format!(
                    "the message is {} bytes, more than the {} a message may have",
                    body.len(),
                    pipeline::MAX_ROW_BYTES
                ),
            ));
        }
        let text =
            std::str::from_utf8(body).map_err(|_| refuse(None, None, "not valid UTF-8".into()))?;
        let value: Value = match serde_json::from_str(text) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => return Err(refuse(None, None, "not a JSON object".into())),
            Err(error) => return Err(refuse(None, None, format!("invalid JSON: {error}"))),
        };
        let message_id = match json_path(&value, &self.message_id) {
            Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_string(),
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                return Err(refuse(
                    None,
                    Some(&self.message_id),
                    "the message id is missing".into(),
                ));
            }
        };
        let mapping = route(
            self.mapping.as_ref(),
            self.type_field.as_ref(),
            &self.messages,
            &value,
        )
        .map_err(|rejected| Refused {
            message_id: Some(message_id.clone()),
            rejected,
        })?;
        let mapper = self.mapper();
        let position = format!("webhook/{}/{message_id}", self.name);
        let lookup = |path: &str| json_path(&value, path).map(Raw::Json);
        mapper
            .map(mapping, lookup, position, Op::Update)
            .map(|event| (message_id.clone(), event))
            .map_err(|rejected| Refused {
                message_id: Some(message_id.clone()),
                rejected,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::Payload;
    use proptest::prelude::*;

    fn config() -> WebhookConfig {
        toml::from_str(
            r#"
            name = "contractor_a"
            system = "contractor_a"
            tokens = ["contractor_a"]
            message_id = "messageId"
            type_field = "messageType"
            [messages.JobStatusUpdate]
            entity = "work_order_update"
            id = "messageId"
            fields = { work_order_ref = "job.reference", status = "status", status_at = "statusAt", type_code = "typeCode" }
            "#,
        )
        .unwrap()
    }

    #[test]
    fn a_job_status_update_maps_and_a_retry_is_the_same_event() {
        let body = br#"{"messageType": "JobStatusUpdate", "messageId": "M-17", "job": {"reference": "WO000042"}, "status": "completed", "statusAt": "2025-03-04T10:15:00Z", "typeCode": 80}"#;
        let (message_id, event) = config().decode(body).unwrap();
        assert_eq!(message_id, "M-17");
        assert_eq!(event.source.position, "webhook/contractor_a/M-17");
        let Payload::WorkOrderUpdate(update) = &event.payload else {
            panic!("a work order update");
        };
        assert_eq!(update.work_order_ref, "WO000042");
        let (_, again) = config().decode(body).unwrap();
        assert_eq!(again.event_id, event.event_id);
    }

    #[test]
    fn refusals_say_why() {
        for (body, reason) in [
            (&b"\xff"[..], "not valid UTF-8"),
            (b"[]", "not a JSON object"),
            (b"{", "invalid JSON"),
            (br#"{"messageType": "JobStatusUpdate"}"#, "the message id is missing"),
            (br#"{"messageId": "M1", "messageType": "Invoice"}"#, "no mapping for message type `Invoice`"),
            (br#"{"messageId": "M1", "messageType": "JobStatusUpdate", "job": {"reference": "W1"}, "status": "completed", "statusAt": "noon"}"#, "status_at: cannot parse `noon`"),
            // Microseconds since the epoch, in the year 262,150: refused, not computed with.
            (br#"{"messageId": "M1", "messageType": "JobStatusUpdate", "job": {"reference": "W1"}, "status": "completed", "statusAt": 8210266833600000000}"#, "outside the years 1800-2199"),
            (br#"{"messageId": "M1", "messageType": "JobStatusUpdate", "job": {"reference": "W1"}, "status": "completed", "statusAt": "1212-01-01T00:00:00Z"}"#, "outside the years 1800-2199"),
        ] {
            let refused = config().decode(body).unwrap_err();
            assert!(refused.rejected.reason.contains(reason), "{}", refused.rejected.reason);
        }
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = config().decode(&bytes);
        }

        #[test]
        fn oversized_and_mistyped_fields_are_refused_or_mapped(
            status in prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), ".{0,5000}".prop_map(Value::from)],
            at in prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), ".{0,30}".prop_map(Value::from)],
        ) {
            let body = serde_json::json!({"messageType": "JobStatusUpdate", "messageId": "M1", "job": {"reference": "W1"}, "status": status, "statusAt": at});
            let _ = config().decode(body.to_string().as_bytes());
        }
    }
}
