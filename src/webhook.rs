//! `POST /webhooks/<name>`: contractors' systems post job updates. A message is answered
//! 202 only once its event is acknowledged by the broker; a retry of a message id already
//! accepted is answered 200 and produces nothing, and the same id with another body 409; a
//! message that does not map is answered 422 (413 when it is larger than
//! `pipeline::MAX_ROW_BYTES`) with the reason and goes to the dead-letter topic too.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use axum::http::StatusCode;
use chrono::Utc;
use connectors::WebhookConfig;
use pipeline::DeadLetter;
use pipeline::kafka::EventProducer;
use pipeline::metrics as names;
use serde_json::json;

use crate::auth::Caller;
use crate::state::Shared;

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
}

/// Handles one posted message: (status, JSON answer).
pub async fn receive(
    shared: &Shared,
    webhooks: &Webhooks,
    caller: &Caller,
    name: &str,
    body: &[u8],
) -> (StatusCode, serde_json::Value) {
    let Some(config) = webhooks.configs.iter().find(|config| config.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            json!({"error": format!("no webhook `{name}`")}),
        );
    };
    if !config.tokens.contains(&caller.name) {
        return (
            StatusCode::FORBIDDEN,
            json!({"error": format!("token `{}` may not post to webhook `{name}`", caller.name)}),
        );
    }
    let mut guard = webhooks.producer.lock().await;
    if guard.is_none() {
        match shared.cluster.producer() {
            Ok(created) => *guard = Some(created),
            Err(error) => return unavailable(error),
        }
    }
    let producer = guard.as_mut().expect("created above");
    let decoded = config.decode(body);
    let seen = match &decoded {
        Ok((message_id, _)) => webhooks.seen(name, message_id, body),
        Err(_) => Seen::New,
    };
    match decoded {
        Ok((message_id, _)) if seen == Seen::Retry => (
            StatusCode::OK,
            json!({"message_id": message_id, "duplicate": true}),
        ),
        Ok((message_id, _)) if seen == Seen::Conflict => (
            StatusCode::CONFLICT,
            json!({"error": format!("message id `{message_id}` was accepted with another body: a new message needs a new id"), "message_id": message_id}),
        ),
        Ok((message_id, event)) => {
            let topic = shared
                .cluster
                .config
                .topic(&config.system, event.payload.kind());
            let sent = async {
                producer.send(&topic, &event).await?;
                producer.flush().await
            }
            .await;
            if let Err(error) = sent {
                return unavailable(error);
            }
            drop(guard);
            // On the embedded broker, 202 waits for the store (a retry meanwhile is the same
            // event, applied once).
            let durable = shared
                .wait_durable(std::slice::from_ref(&topic), crate::state::DURABLE_WITHIN)
                .await;
            if let Err(error) = durable {
                tracing::error!(error = %format!("{error:#}"), "webhook: storing the event");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": format!("not stored yet, retry: {error:#}")}),
                );
            }
            webhooks.remember(name, message_id.clone(), body);
            metrics::counter!(names::CONNECTOR_EVENTS_PRODUCED_TOTAL, "source" => name.to_string(), "topic" => topic)
                .increment(1);
            (
                StatusCode::ACCEPTED,
                json!({"message_id": message_id, "event_id": event.event_id}),
            )
        }
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
            let status = if body.len() > pipeline::MAX_ROW_BYTES {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            (
                status,
                json!({"error": refused.rejected.reason, "field": refused.rejected.field}),
            )
        }
    }
}

/// The broker did not take the message: the sender should retry.
fn unavailable(error: pipeline::Error) -> (StatusCode, serde_json::Value) {
    tracing::error!(%error, "webhook: producing to Kafka");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": format!("not accepted, retry: {error}")}),
    )
}
