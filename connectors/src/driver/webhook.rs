//! The webhook driver: a message posted to `POST /webhooks/<name>` (the binary's route
//! hands over the body and the caller's token name) is decoded by its `[[webhooks]]`
//! mapping and produced. [`Received`] says what became of it, and the route answers with its
//! status: accepted only once the event is durable ([`Positions::durable`]); a retry of a
//! message id already accepted produces nothing, and the same id with another body is a
//! conflict; a message that does not map goes to the dead-letter topic too.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use chrono::Utc;
use pipeline::DeadLetter;
use pipeline::kafka::{Cluster, EventProducer};
use pipeline::metrics as names;

use super::Positions;
use crate::WebhookConfig;

/// Message ids remembered per webhook, for answering retries (the oldest are forgotten
/// first; a retry older than that produces the event again, which the hub applies once).
const REMEMBERED_IDS: usize = 100_000;

/// The configured webhooks and what they have accepted.
#[derive(Debug)]
pub struct Webhooks {
    configs: Vec<WebhookConfig>,
    accepted: Mutex<HashMap<String, Accepted>>,
    /// One producer, created at the first message.
    producer: tokio::sync::Mutex<Option<EventProducer>>,
}

#[derive(Debug, Default)]
struct Accepted {
    /// Message id -> a hash of the body accepted with it.
    ids: HashMap<String, u64>,
    order: VecDeque<String>,
}

/// What an earlier message with the same id says of this one.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    New,
    Retry,
    /// The id was accepted with another body.
    Conflict,
}

/// What became of a posted message.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// No webhook has that name.
    Unknown,
    /// The caller's token is not among the webhook's `tokens`.
    NotAllowed,
    /// Produced, and durable.
    Accepted {
        message_id: String,
        event_id: String,
    },
    /// A message id already accepted with the same body: nothing produced again.
    Duplicate { message_id: String },
    /// A message id already accepted with another body.
    Conflict { message_id: String },
    /// The message did not map (`too_large`: over `pipeline::MAX_ROW_BYTES`); dead-lettered.
    Refused {
        field: Option<String>,
        reason: String,
        too_large: bool,
    },
    /// The broker did not take it, or it is not durable yet: the sender should retry.
    Retry(String),
}

impl Received {
    /// The HTTP answer: its status and JSON body. 202 once stored, 200 for a retry of an
    /// accepted message id, 409 for that id with another body, 422 (413 when too large) for
    /// a message that does not map, 404 and 403 for a webhook unknown or not the caller's,
    /// 503 to retry.
    pub fn answer(&self, webhook: &str, token: &str) -> (u16, serde_json::Value) {
        use serde_json::json;
        match self {
            Received::Unknown => (404, json!({"error": format!("no webhook `{webhook}`")})),
            Received::NotAllowed => (
                403,
                json!({"error": format!("token `{token}` may not post to webhook `{webhook}`")}),
            ),
            Received::Accepted {
                message_id,
                event_id,
            } => (202, json!({"message_id": message_id, "event_id": event_id})),
            Received::Duplicate { message_id } => {
                (200, json!({"message_id": message_id, "duplicate": true}))
            }
            Received::Conflict { message_id } => (
                409,
                json!({"error": format!("message id `{message_id}` was accepted with another body: a new message needs a new id"), "message_id": message_id}),
            ),
            Received::Refused {
                field,
                reason,
                too_large,
            } => (
                if *too_large { 413 } else { 422 },
                json!({"error": reason, "field": field}),
            ),
            Received::Retry(message) => (503, json!({"error": message})),
        }
    }
}

fn body_hash(body: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    hasher.finish()
}

impl Webhooks {
    pub fn new(configs: Vec<WebhookConfig>) -> Webhooks {
        Webhooks {
            configs,
            accepted: Mutex::new(HashMap::new()),
            producer: tokio::sync::Mutex::new(None),
        }
    }

    fn seen(&self, webhook: &str, message_id: &str, body: &[u8]) -> Seen {
        let accepted = self.accepted.lock().expect("webhook lock");
        match accepted
            .get(webhook)
            .and_then(|accepted| accepted.ids.get(message_id))
        {
            None => Seen::New,
            Some(&hash) if hash == body_hash(body) => Seen::Retry,
            Some(_) => Seen::Conflict,
        }
    }

    fn remember(&self, webhook: &str, message_id: String, body: &[u8]) {
        let mut accepted = self.accepted.lock().expect("webhook lock");
        let accepted = accepted.entry(webhook.to_string()).or_default();
        if accepted
            .ids
            .insert(message_id.clone(), body_hash(body))
            .is_none()
        {
            accepted.order.push_back(message_id);
        }
        while accepted.order.len() > REMEMBERED_IDS {
            if let Some(oldest) = accepted.order.pop_front() {
                accepted.ids.remove(&oldest);
            }
        }
    }

    /// Handles one message posted to webhook `name` by the token named `token`.
    pub async fn receive(
        &self,
        cluster: &Cluster,
        positions: &impl Positions,
        token: &str,
        name: &str,
        body: &[u8],
    ) -> Received {
        let Some(config) = self.configs.iter().find(|config| config.name == name) else {
            return Received::Unknown;
        };
        if !config.tokens.iter().any(|allowed| allowed == token) {
            return Received::NotAllowed;
        }
        let mut guard = self.producer.lock().await;
        if guard.is_none() {
            match cluster.producer() {
                Ok(created) => *guard = Some(created),
                Err(error) => return unavailable(error),
            }
        }
        let producer = guard.as_mut().expect("created above");
        let (message_id, event) = match config.decode(body) {
            Ok(decoded) => decoded,
            Err(refused) => {
                let dead_letter = DeadLetter {
                    source: name.to_string(),
                    position: format!(
                        "webhook/{name}/{}",
                        refused.message_id.as_deref().unwrap_or("-")
                    ),
                    field: refused.rejected.field.clone(),
                    reason: refused.rejected.reason.clone(),
                    raw: String::from_utf8_lossy(body).into_owned(),
                    rejected_at: Utc::now(),
                    source_ref: refused.rejected.reference(&config.system),
                };
                let sent = async {
                    producer.send_dead_letter(&dead_letter).await?;
                    producer.flush().await
                }
                .await;
                if let Err(error) = sent {
                    return unavailable(error);
                }
                metrics::counter!(names::CONNECTOR_DEAD_LETTERS_TOTAL, "source" => name.to_string())
                    .increment(1);
                return Received::Refused {
                    field: refused.rejected.field,
                    reason: refused.rejected.reason,
                    too_large: body.len() > pipeline::MAX_ROW_BYTES,
                };
            }
        };
        match self.seen(name, &message_id, body) {
            Seen::Retry => return Received::Duplicate { message_id },
            Seen::Conflict => return Received::Conflict { message_id },
            Seen::New => {}
        }
        let topic = cluster.config.topic(&config.system, event.payload.kind());
        let sent = async {
            producer.send(&topic, &event).await?;
            producer.flush().await
        }
        .await;
        if let Err(error) = sent {
            return unavailable(error);
        }
        drop(guard);
        // On the embedded broker, accepting waits for the store (a retry meanwhile is the
        // same event, applied once).
        if let Err(error) = positions.durable(std::slice::from_ref(&topic)).await {
            let error = pipeline::error::chain(&error);
            tracing::error!(%error, "webhook: storing the event");
            return Received::Retry(format!("not stored yet, retry: {error}"));
        }
        self.remember(name, message_id.clone(), body);
        metrics::counter!(names::CONNECTOR_EVENTS_PRODUCED_TOTAL, "source" => name.to_string(), "topic" => topic)
            .increment(1);
        Received::Accepted {
            message_id,
            event_id: event.event_id,
        }
    }
}

/// The broker did not take the message: the sender should retry.
fn unavailable(error: pipeline::Error) -> Received {
    tracing::error!(%error, "webhook: producing to Kafka");
    Received::Retry(format!("not accepted, retry: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_answers_with_its_status() {
        let id = || "M-1".to_string();
        let cases = [
            (Received::Unknown, 404),
            (Received::NotAllowed, 403),
            (
                Received::Accepted {
                    message_id: id(),
                    event_id: "e".into(),
                },
                202,
            ),
            (Received::Duplicate { message_id: id() }, 200),
            (Received::Conflict { message_id: id() }, 409),
            (
                Received::Refused {
                    field: Some("job.status".into()),
                    reason: "not a status".into(),
                    too_large: false,
                },
                422,
            ),
            (
                Received::Refused {
                    field: None,
                    reason: "too large".into(),
                    too_large: true,
                },
                413,
            ),
            (Received::Retry("not stored yet".into()), 503),
        ];
        for (received, status) in cases {
            let (answered, body) = received.answer("jobs", "contractor-a");
            assert_eq!(answered, status, "{received:?}");
            let errs = !(200..300).contains(&status);
            assert_eq!(body.get("error").is_some(), errs, "{received:?}: {body}");
        }
    }
}
