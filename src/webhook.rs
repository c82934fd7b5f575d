//! `POST /webhooks/<name>`: contractors' systems post job updates. A message is answered
//! 202 only once its event is acknowledged by the broker; a retry of a message id already
//! accepted is answered 200 and produces nothing; a message that does not map is answered
//! 422 with the reason and goes to the dead-letter topic too.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use axum::http::StatusCode;
use chrono::Utc;
use connectors::WebhookConfig;
use pipeline::DeadLetter;
use pipeline::kafka::EventProducer;
use pipeline::metrics as names;
use serde_json::json;

use crate::auth::Caller;
use crate::run::Shared;

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
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Webhooks {
    pub fn new(configs: Vec<WebhookConfig>) -> Webhooks {
        Webhooks {
            configs,
            accepted: Mutex::new(HashMap::new()),
            producer: tokio::sync::Mutex::new(None),
        }
    }

    fn seen(&self, webhook: &str, message_id: &str) -> bool {
        let accepted = self.accepted.lock().expect("webhook lock");
        accepted
            .get(webhook)
            .is_some_and(|accepted| accepted.ids.contains(message_id))
    }

    fn remember(&self, webhook: &str, message_id: String) {
        let mut accepted = self.accepted.lock().expect("webhook lock");
        let accepted = accepted.entry(webhook.to_string()).or_default();
        if accepted.ids.insert(message_id.clone()) {
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
    caller: &Caller,
    name: &str,
    body: &[u8],
) -> (StatusCode, serde_json::Value) {
    let webhooks = &shared.webhooks;
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
    let mut producer = webhooks.producer.lock().await;
    if producer.is_none() {
        match shared.cluster.producer() {
            Ok(created) => *producer = Some(created),
            Err(error) => return unavailable(error),
        }
    }
    let producer = producer.as_mut().expect("created above");
    match config.decode(body) {
        Ok((message_id, _)) if webhooks.seen(name, &message_id) => (
            StatusCode::OK,
            json!({"message_id": message_id, "duplicate": true}),
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
            webhooks.remember(name, message_id.clone());
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
            (
                StatusCode::UNPROCESSABLE_ENTITY,
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
