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
use std::path::PathBuf;
use std::sync::Arc;

use pipeline::DeadLetter;
use pipeline::kafka::{Cluster, EventProducer};
use pipeline::metrics as names;
use pipeline::stage::StageConfig;
use tokio::sync::watch;

use crate::supervise::SourceHealth;
use crate::{
    DebeziumConfig, Error, FileSource, PgSourceConfig, Record, SourceConfig, SourceCounts,
};

/// Every source a run reads, by kind.
#[derive(Debug)]
pub struct Sources<'a> {
    /// The files opened at startup (each drop folder's files read so far among them).
    pub files: Vec<FileSource>,
    /// The `[[sources]]`, whose drop folders are watched when serving.
    pub file_configs: &'a [SourceConfig],
    pub data_dir: PathBuf,
    pub debezium: &'a [DebeziumConfig],
    /// The consumer settings of the Debezium sources' own groups.
    pub stage: &'a StageConfig,
    pub postgres: &'a [PgSourceConfig],
}

/// What the sources read and produced; when serving, the drivers still running.
#[derive(Debug)]
pub struct Started {
    pub counts: Vec<SourceCounts>,
    /// Events produced, per topic.
    pub per_topic: BTreeMap<String, u64>,
    pub dead_letters: Vec<DeadLetter>,
    connectors: Vec<debezium::Connector>,
    pollers: Vec<postgres::Poller>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts every source. The files are read and produced now, and their drop-folder files
/// confirmed read once what they produced is durable (`positions`, for `topics`). With
/// `once`, the Debezium and PostgreSQL sources are read to their end too and their counts
/// join the files'; otherwise they keep running, each supervised (`health`), with the drop
/// folders watched, until `shutdown` ([`Started::stopped`]).
pub async fn start<P: Positions>(
    cluster: &Arc<Cluster>,
    positions: &Arc<P>,
    health: &Arc<SourceHealth>,
    topics: &[String],
    sources: Sources<'_>,
    once: bool,
    shutdown: &watch::Receiver<bool>,
) -> crate::Result<Started> {
    let connectors = debezium::start(
        cluster,
        sources.debezium,
        sources.stage,
        once,
        health,
        shutdown,
    );
    let pollers = postgres::start(cluster, positions, health, sources.postgres, once, shutdown);
    // The drop-folder files read now, remembered as read once what they produced is durable.
    let read_keys: Vec<String> = sources
        .files
        .iter()
        .filter_map(|source| source.config().drop_key())
        .collect();
    let files::Produced {
        counts,
        per_topic,
        dead_letters,
    } = files::produce(cluster, sources.files).await?;
    if positions.kept() {
        positions.durable(topics).await?;
        for key in &read_keys {
            positions.confirm(key, "read").await?;
        }
    }
    let mut started = Started {
        counts,
        per_topic,
        dead_letters,
        connectors: Vec::new(),
        pollers: Vec::new(),
        watchers: Vec::new(),
    };
    if !once {
        started.watchers = files::watch_drop_folders(
            cluster,
            positions,
            topics,
            &sources.data_dir,
            sources.file_configs,
            &read_keys,
            shutdown,
        );
        started.pollers = pollers;
        started.connectors = connectors;
        return Ok(started);
    }
    for poller in pollers {
        let read = poller
            .task
            .await
            .map_err(|failed| Error::Unavailable(format!("a postgres source: {failed}")))??;
        started.add(read);
    }
    for connector in connectors {
        started.add(connector.finish(cluster).await?);
    }
    Ok(started)
}

impl Started {
    /// What one more source read and produced.
    fn add(&mut self, (counts, per_topic): (SourceCounts, BTreeMap<String, u64>)) {
        for (topic, events) in per_topic {
            *self.per_topic.entry(topic).or_default() += events;
        }
        self.counts.push(counts);
    }

    /// Events produced by the files read at startup and, with `once`, every source.
    pub fn produced(&self) -> u64 {
        self.per_topic.values().sum()
    }

    /// Waits for the sources still running to stop (after shutdown). A source that failed
    /// said so when it stopped; one that panicked is the error.
    pub async fn stopped(&mut self) -> crate::Result<()> {
        let panicked =
            |failed: tokio::task::JoinError| Error::Unavailable(format!("a source: {failed}"));
        for watcher in self.watchers.drain(..) {
            watcher.await.map_err(panicked)?;
        }
        for poller in self.pollers.drain(..) {
            let _ = poller.task.await.map_err(panicked)?;
        }
        for connector in self.connectors.drain(..) {
            let _ = connector.task.await.map_err(panicked)?;
        }
        Ok(())
    }
}

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
