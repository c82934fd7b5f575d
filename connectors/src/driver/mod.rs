//! The sources' drivers: what reads each kind of source while goldthread runs and produces
//! its records to Kafka (through `pipeline::kafka`): files and drop folders ([`files`]),
//! Debezium topics ([`debezium`]), PostgreSQL tables ([`postgres`]), webhooks ([`webhook`]:
//! messages the binary's HTTP route hands over). Each runs under
//! [`crate::supervise`]; a position is confirmed only once what was produced before it is
//! durable, through the [`Positions`] the caller keeps (goldthread's store).

pub mod debezium;
pub mod files;
pub mod postgres;
pub mod webhook;

use std::collections::BTreeMap;
use std::future::Future;

use pipeline::DeadLetter;
use pipeline::kafka::{Cluster, EventProducer};
use pipeline::metrics as names;

use crate::{Record, SourceCounts};

/// Where sources' positions are confirmed (a drop folder's files read, a polled table's
/// cursor, a replication snapshot done), and how a source waits for what it produced to be
/// durable before it confirms a position. The caller's: `goldthread run` keeps them in its
/// store. Its failures are [`crate::Error::Positions`], classed by the caller.
pub trait Positions: Send + Sync + 'static {
    /// Whether positions are kept at all (without a store, every start reads again).
    fn kept(&self) -> bool;
    /// The position confirmed under `key`, if any.
    fn position(&self, key: &str) -> impl Future<Output = crate::Result<Option<String>>> + Send;
    /// Waits until what was produced to `topics` so far is durable.
    fn durable(&self, topics: &[String]) -> impl Future<Output = crate::Result<()>> + Send;
    /// Records `position` under `key` (after [`Positions::durable`]); nothing when positions
    /// are not kept.
    fn confirm(&self, key: &str, position: &str) -> impl Future<Output = crate::Result<()>> + Send;
}

/// Where one source's records go: each event to the topic of its system and entity, each
/// dead letter to the dead-letter topic; counted.
pub(crate) struct Output<'p> {
    cluster: &'p Cluster,
    pub producer: &'p mut EventProducer,
    pub counts: SourceCounts,
    /// Events produced, per topic.
    pub per_topic: BTreeMap<String, u64>,
    /// The dead letters produced, when kept (`run --out` writes a file's).
    pub dead_letters: Option<Vec<DeadLetter>>,
}

impl<'p> Output<'p> {
    pub fn new(
        cluster: &'p Cluster,
        producer: &'p mut EventProducer,
        counts: SourceCounts,
    ) -> Self {
        Output {
            cluster,
            producer,
            counts,
            per_topic: BTreeMap::new(),
            dead_letters: None,
        }
    }

    /// Counts what one row became, and sends it.
    pub async fn emit(&mut self, record: Record) -> crate::Result<()> {
        self.counts.count(&record);
        self.send(record).await
    }

    /// Sends what one row became (counted by the caller).
    pub async fn send(&mut self, record: Record) -> crate::Result<()> {
        let source = self.counts.name.clone();
        match record {
            Record::Event(event) => {
                let topic = self
                    .cluster
                    .config
                    .topic(&self.counts.system, event.payload.kind());
                self.producer.send(&topic, &event).await?;
                metrics::counter!(names::CONNECTOR_EVENTS_PRODUCED_TOTAL, "source" => source.clone(), "topic" => topic.clone())
                    .increment(1);
                *self.per_topic.entry(topic).or_default() += 1;
            }
            Record::DeadLetter(dead_letter) => {
                tracing::debug!(%source, position = %dead_letter.position, reason = %dead_letter.reason, "dead letter");
                self.producer.send_dead_letter(&dead_letter).await?;
                metrics::counter!(names::CONNECTOR_DEAD_LETTERS_TOTAL, "source" => source.clone())
                    .increment(1);
                if let Some(kept) = &mut self.dead_letters {
                    kept.push(dead_letter);
                }
            }
        }
        metrics::counter!(names::CONNECTOR_ROWS_READ_TOTAL, "source" => source).increment(1);
        Ok(())
    }
}
