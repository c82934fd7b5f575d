//! The Debezium driver: each `[[debezium]]` source consumes its topics in its own consumer
//! group, maps every change event to a canonical event (`connectors::debezium`), produces it
//! to goldthread's topic for its system and entity, and commits its offsets only once the
//! broker has acknowledged what it produced. A crash replays the uncommitted messages; their
//! event ids come from their positions, and the hub upserts by source reference, so a
//! replayed change is harmless.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pipeline::kafka::Cluster;
use pipeline::metrics as names;
use pipeline::stage::{self, ConsumeReport, StageConfig, StopWhen};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::supervise::{SourceHealth, supervise};
use crate::{DebeziumConfig, Error, Result, SourceCounts};

/// A running connector.
#[derive(Debug)]
pub struct Connector {
    pub config: DebeziumConfig,
    /// Stops it once it has read what its topics held when it started (`--once`).
    pub stop: watch::Sender<StopWhen>,
    pub task: JoinHandle<Result<(ConsumeReport, u64, pipeline::UnparsedTally)>>,
}

/// Starts a supervised connector per `[[debezium]]` source (see [`supervise`]).
pub fn start(
    cluster: &Arc<Cluster>,
    sources: &[DebeziumConfig],
    stage_config: &StageConfig,
    once: bool,
    health: &Arc<SourceHealth>,
    shutdown: &watch::Receiver<bool>,
) -> Vec<Connector> {
    sources
        .iter()
        .map(|config| {
            let (stop, stop_rx) = watch::channel(StopWhen::Never);
            let (cluster, source, stage_config, health, shutdown) = (
                cluster.clone(),
                config.clone(),
                stage_config.clone(),
                health.clone(),
                shutdown.clone(),
            );
            let task = tokio::spawn(async move {
                let produced = AtomicU64::new(0);
                let unparsed = std::sync::Mutex::new(pipeline::UnparsedTally::default());
                let (cluster, source, stage_config, produced, tally) =
                    (&cluster, &source, &stage_config, &produced, &unparsed);
                let report = supervise(&source.name, once, &health, &mut shutdown.clone(), || {
                    consume_debezium(
                        cluster,
                        source,
                        stage_config,
                        stop_rx.clone(),
                        shutdown.clone(),
                        produced,
                        tally,
                    )
                })
                .await;
                let unparsed = unparsed.into_inner().unwrap_or_else(|e| e.into_inner());
                Ok((report?, produced.load(Ordering::Relaxed), unparsed))
            });
            Connector {
                config: config.clone(),
                stop,
                task,
            }
        })
        .collect()
}

/// One attempt of a Debezium source: consume its topics, produce each change's event, and
/// commit once the broker acknowledged them; `produced` counts what was produced.
async fn consume_debezium(
    cluster: &Cluster,
    source: &DebeziumConfig,
    stage_config: &StageConfig,
    stop: watch::Receiver<StopWhen>,
    shutdown: watch::Receiver<bool>,
    produced: &AtomicU64,
    unparsed: &std::sync::Mutex<pipeline::UnparsedTally>,
) -> Result<ConsumeReport> {
    let topic = cluster.config.topic(
        &source.system,
        source.entity().expect("validated: entity is known"),
    );
    let group = format!("{}.connect.{}", cluster.config.group_id, source.name);
    let producer = cluster.producer()?;
    stage::consume(
        cluster,
        &source.name,
        &group,
        &source.topics,
        stage_config,
        stop,
        shutdown,
        |message| source.decode(message),
        Forward {
            source,
            topic,
            producer,
            produced,
            unparsed,
        },
    )
    .await
    .map_err(|error| {
        let (stage::StageError::Pipeline(error) | stage::StageError::Stage(error)) = error;
        Error::in_source("debezium", &source.name)(error.into())
    })
}

/// A Debezium source's stage: each change's event to the entity topic; the batch counts as
/// written once the broker acknowledged every event (offsets are committed after).
struct Forward<'a> {
    source: &'a DebeziumConfig,
    topic: String,
    producer: pipeline::kafka::EventProducer,
    produced: &'a AtomicU64,
    unparsed: &'a std::sync::Mutex<pipeline::UnparsedTally>,
}

impl stage::Handler<pipeline::Error> for Forward<'_> {
    async fn handle(
        &mut self,
        batch: &Arc<stage::Batch>,
    ) -> Result<stage::Handled<pipeline::Error>, pipeline::Error> {
        for event in &batch.events {
            self.producer.send(&self.topic, event).await?;
        }
        self.producer.flush().await?;
        self.produced
            .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
        if let Ok(mut tally) = self.unparsed.lock() {
            for event in &batch.events {
                tally.add(&self.source.name, event);
            }
        }
        metrics::counter!(names::CONNECTOR_EVENTS_PRODUCED_TOTAL, "source" => self.source.name.clone(), "topic" => self.topic.clone())
            .increment(batch.events.len() as u64);
        Ok(stage::Handled::Written)
    }
}

impl Connector {
    /// Stops once the connector has read everything its topics held now; its counts and
    /// the events it produced, per topic.
    pub async fn finish(
        self,
        cluster: &Cluster,
    ) -> Result<(SourceCounts, std::collections::BTreeMap<String, u64>)> {
        let name = &self.config.name;
        let targets = cluster
            .high_watermarks(&self.config.topics)
            .map_err(|error| Error::in_source("debezium", name)(error.into()))?;
        self.stop.send_replace(StopWhen::Reached(targets));
        let (report, produced, unparsed) = self.task.await.map_err(|failed| {
            Error::Unavailable(format!("debezium source `{name}`: {failed}"))
        })??;
        let read: u64 = report.consumed_per_topic.values().sum();
        let topic = cluster.config.topic(
            &self.config.system,
            self.config.entity().expect("validated: entity is known"),
        );
        let counts = SourceCounts {
            name: self.config.name.clone(),
            system: self.config.system.clone(),
            path: self.config.topics.join(", "),
            rows_read: read,
            events_produced: produced,
            dead_letters: report.dead_letters,
            unparsed,
        };
        Ok((counts, [(topic, produced)].into()))
    }
}
