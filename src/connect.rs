//! Debezium connectors: each `[[debezium]]` source consumes its topics in its own consumer
//! group, maps every change event to a canonical event (`connectors::debezium`), produces it
//! to goldthread's topic for its system and entity, and commits its offsets only once the
//! broker has acknowledged what it produced. A crash replays the uncommitted messages; their
//! event ids come from their positions, and the hub upserts by source reference, so a
//! replayed change is harmless.

use std::sync::Arc;

use anyhow::Context;
use connectors::DebeziumConfig;
use pipeline::kafka::Cluster;
use pipeline::metrics as names;
use pipeline::stage::{self, ConsumeReport, StageConfig, StopWhen};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::run::SourceCounts;

/// A running connector.
#[derive(Debug)]
pub struct Connector {
    pub config: DebeziumConfig,
    /// Stops it once it has read what its topics held when it started (`--once`).
    pub stop: watch::Sender<StopWhen>,
    pub task: JoinHandle<anyhow::Result<(ConsumeReport, u64)>>,
}

/// Starts a connector per `[[debezium]]` source.
pub fn start(
    cluster: &Arc<Cluster>,
    sources: &[DebeziumConfig],
    stage_config: &StageConfig,
    shutdown: &watch::Receiver<bool>,
) -> Vec<Connector> {
    sources
        .iter()
        .map(|config| {
            let (stop, stop_rx) = watch::channel(StopWhen::Never);
            let (cluster, source, stage_config, shutdown) = (
                cluster.clone(),
                config.clone(),
                stage_config.clone(),
                shutdown.clone(),
            );
            let task = tokio::spawn(async move {
                let topic = cluster.config.topic(
                    &source.system,
                    source.entity().expect("validated: entity is known"),
                );
                let group = format!("{}.connect.{}", cluster.config.group_id, source.name);
                let mut producer = cluster.producer()?;
                let mut produced = 0u64;
                let report = stage::consume(
                    &cluster,
                    &source.name,
                    &group,
                    &source.topics,
                    &stage_config,
                    stop_rx,
                    shutdown,
                    |message| source.decode(message),
                    |batch| {
                        // Offsets are committed after this returns: every event acknowledged.
                        tokio::task::block_in_place(|| {
                            tokio::runtime::Handle::current().block_on(async {
                                for event in &batch.events {
                                    producer.send(&topic, event).await?;
                                }
                                producer.flush().await
                            })
                        })?;
                        produced += batch.events.len() as u64;
                        metrics::counter!(names::CONNECTOR_EVENTS_PRODUCED_TOTAL, "source" => source.name.clone(), "topic" => topic.clone())
                            .increment(batch.events.len() as u64);
                        Ok::<(), pipeline::Error>(())
                    },
                )
                .await
                .map_err(|error| anyhow::anyhow!("debezium source `{}`: {error}", source.name))?;
                Ok((report, produced))
            });
            Connector {
                config: config.clone(),
                stop,
                task,
            }
        })
        .collect()
}

impl Connector {
    /// Stops once the connector has read everything its topics held now; its counts and
    /// the topic it produced to.
    pub async fn finish(self, cluster: &Cluster) -> anyhow::Result<(SourceCounts, String)> {
        let targets = cluster
            .high_watermarks(&self.config.topics)
            .with_context(|| format!("debezium source `{}`", self.config.name))?;
        self.stop.send_replace(StopWhen::Reached(targets));
        let (report, produced) = self.task.await??;
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
        };
        Ok((counts, topic))
    }
}
