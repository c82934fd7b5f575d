//! The consume loop every downstream stage runs: read a batch from Kafka, decode it, hand it
//! to the stage, and commit the offsets only after the stage has written its output.
//! Undecodable messages go to the dead-letter topic with their position; they never block
//! a partition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::Message as _;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::event::{DeadLetter, Envelope};
use crate::kafka::Cluster;
use crate::metrics as names;

/// `[stage]`: batching of the downstream stages.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StageConfig {
    /// Most events handed to a stage at once.
    pub batch_size: usize,
    /// How long to wait for more events before handing over a partial batch.
    #[serde(with = "humantime_serde")]
    pub batch_wait: Duration,
}

impl Default for StageConfig {
    fn default() -> Self {
        StageConfig {
            batch_size: 5000,
            batch_wait: Duration::from_millis(50),
        }
    }
}

/// Offsets a stage must reach before it may stop: (topic, partition) -> next offset.
pub type Positions = BTreeMap<(String, i32), i64>;

/// When a stage stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopWhen {
    /// Keep consuming until shut down.
    Never,
    /// Stop once every listed partition is read up to its offset.
    Reached(Positions),
}

/// A decoded batch: events in partition order, with what each message consumed was.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Envelope>,
    /// Events consumed per topic in this batch.
    pub per_topic: BTreeMap<String, u64>,
    pub dead_letters: Vec<DeadLetter>,
    /// Dead letters read back from the dead-letter topic (`Decoded::Kept`).
    pub kept_dead_letters: Vec<DeadLetter>,
    /// Where each event came from, parallel to `events`.
    pub origins: Vec<Origin>,
    /// The next offset of every partition consumed so far, this batch included.
    pub positions: Positions,
    /// The next offset of each partition this batch read: what it commits. Partitions it did
    /// not read are left alone (after a rebalance another group member owns them).
    pub consumed: Positions,
}

/// Where a consumed event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Whether `positions` have reached every target offset.
pub fn reached(positions: &Positions, targets: &Positions) -> bool {
    targets
        .iter()
        .all(|(partition, target)| positions.get(partition).copied().unwrap_or(0) >= *target)
}

/// What a stage run consumed in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumeReport {
    pub consumed_per_topic: BTreeMap<String, u64>,
    pub dead_letters: u64,
    pub batches: u64,
}

/// One consumed message, as a decoder sees it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// `None` for a tombstone.
    pub payload: Option<&'a [u8]>,
}

impl Message<'_> {
    /// `topic/partition@offset`: where a dead letter came from.
    pub fn position(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// What a decoder made of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Event(Box<Envelope>),
    DeadLetter(DeadLetter),
    /// A dead letter read back from the dead-letter topic, for the stage to keep (not to
    /// send again): `Batch::kept_dead_letters`.
    Kept(DeadLetter),
    /// Nothing to do (a tombstone): consumed, counted, no event.
    Skip,
}

/// The decoder of the dead-letter topic: each dead letter, to keep. A tombstone (an erased
/// record's) or a message that is not a dead letter is skipped: sending it on would loop.
pub fn kept_dead_letter(message: &Message<'_>) -> Decoded {
    match message.payload.map(serde_json::from_slice::<DeadLetter>) {
        Some(Ok(dead_letter)) => Decoded::Kept(dead_letter),
        Some(Err(error)) => {
            tracing::warn!(position = %message.position(), %error, "not a dead letter on the dead-letter topic; skipped");
            Decoded::Skip
        }
        None => Decoded::Skip,
    }
}

/// The decoder of goldthread's own topics: a canonical event (JSON), a tombstone (an erased
/// record's key: skipped), or a dead letter.
pub fn canonical(stage: &str, message: &Message<'_>) -> Decoded {
    let Some(payload) = message.payload else {
        return Decoded::Skip;
    };
    let about = |field: Option<&str>, reason: String, source_ref: Option<crate::Reference>| {
        Decoded::DeadLetter(
            DeadLetter {
                source: stage.to_string(),
                position: message.position(),
                field: field.map(str::to_string),
                reason,
                raw: String::from_utf8_lossy(payload).into_owned(),
                rejected_at: Utc::now(),
                source_ref,
            }
            .clipped(),
        )
    };
    let dead = |field: Option<&str>, reason: String| about(field, reason, None);
    match serde_json::from_slice::<Envelope>(payload) {
        // A version this build does not know may mean fields it would misread.
        Ok(envelope) if envelope.event_type != envelope.payload.kind().event_type() => dead(
            Some("event_type"),
            format!(
                "unknown event type `{}` for a {} payload (this version reads `{}`)",
                envelope.event_type,
                envelope.payload.kind(),
                envelope.payload.kind().event_type()
            ),
        ),
        Ok(envelope) => match envelope.check_times() {
            Ok(()) => Decoded::Event(Box::new(envelope)),
            Err((field, reason)) => about(Some(field), reason, Some(envelope.source_ref)),
        },
        Err(error) => dead(None, format!("not a canonical event: {error}")),
    }
}

/// What a stage's handler made of a batch.
pub enum Handled<E> {
    /// Its output is written: the batch's offsets may be committed.
    Written,
    /// Its output is written by this future. The stage runs it while it consumes and handles
    /// the next batch, and commits the batch's offsets once it succeeds. At most one is in
    /// flight: the next batch's is started only after this one succeeded, so writes land in
    /// batch order.
    Writing(Pending<E>),
}

impl<E> std::fmt::Debug for Handled<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Handled::Written => f.write_str("Written"),
            Handled::Writing(_) => f.write_str("Writing(..)"),
        }
    }
}

/// What a stage does with each batch: it may wait (for a producer's acknowledgements, for
/// the store) without holding a worker thread. A plain closure returning its result at once
/// is a handler too.
pub trait Handler<E> {
    fn handle(
        &mut self,
        batch: &Arc<Batch>,
    ) -> impl std::future::Future<Output = std::result::Result<Handled<E>, E>> + Send;
}

impl<E: Send, F> Handler<E> for F
where
    F: FnMut(&Arc<Batch>) -> std::result::Result<Handled<E>, E>,
{
    fn handle(
        &mut self,
        batch: &Arc<Batch>,
    ) -> impl std::future::Future<Output = std::result::Result<Handled<E>, E>> + Send {
        std::future::ready(self(batch))
    }
}

/// A batch's write still to finish (`Handled::Writing`).
pub type Pending<E> =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<(), E>> + Send>>;

/// Consumes `topics` in consumer group `group` in batches until `stop` says so (or
/// `shutdown` turns true): each message is decoded, dead letters go to the dead-letter topic,
/// `handler` gets the batch, and only once its output is written are the batch's offsets
/// committed. An `Err` from `handler` or from its write stops the stage without committing
/// that batch, so it is consumed again.
#[allow(clippy::too_many_arguments)]
pub async fn consume<E: Send + 'static>(
    cluster: &Cluster,
    stage: &str,
    group: &str,
    topics: &[String],
    config: &StageConfig,
    mut stop: watch::Receiver<StopWhen>,
    mut shutdown: watch::Receiver<bool>,
    mut decode: impl FnMut(&Message<'_>) -> Decoded,
    mut handler: impl Handler<E>,
) -> Result<ConsumeReport, StageError<E>> {
    let consumer = cluster.consumer(group, topics)?;
    let mut dead_letters = cluster.producer()?;
    let mut positions: Positions = BTreeMap::new();
    // Whether `positions` include where the group started (read once a target is set).
    let mut started_from_committed = false;
    let mut report = ConsumeReport::default();
    let stage_label = stage.to_string();
    let mut stop_open = true;
    // While a batch is handled or its write is in flight, a ticker reports how long the stage
    // has been waiting: a stage held back by a slow sink shows it even though nothing
    // completes.
    let epoch = Instant::now();
    let busy_since = Arc::new(AtomicU64::new(IDLE));
    let ticker = {
        let (busy_since, label) = (busy_since.clone(), stage_label.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let since = busy_since.load(Ordering::Relaxed);
                let waiting = if since == IDLE {
                    0.0
                } else {
                    epoch.elapsed().as_secs_f64() - since as f64 / 1000.0
                };
                metrics::gauge!(names::STAGE_BATCH_WAITING_SECONDS, "stage" => label.clone())
                    .set(waiting);
            }
        })
    };
    let _stop_ticker = AbortOnDrop(ticker);
    let finished = Finished {
        stage: &stage_label,
        consumer: &consumer,
    };
    let mut in_flight: Option<InFlight<E>> = None;
    loop {
        let target = match &*stop.borrow() {
            StopWhen::Reached(targets) => Some(targets.clone()),
            StopWhen::Never => None,
        };
        if let Some(targets) = &target {
            // A partition with nothing left to read since the group's last commit yields no
            // message: where the group started counts as read.
            if !started_from_committed {
                for (partition, offset) in crate::kafka::committed_positions(&consumer, topics)? {
                    positions.entry(partition).or_insert(offset);
                }
                started_from_committed = true;
            }
            if reached(&positions, targets) {
                break;
            }
        }
        if *shutdown.borrow() {
            break;
        }
        // Wait for the first message, the write in flight, a stop target or a shutdown; then
        // fill the batch. A dropped shutdown sender means shut down; a dropped stop sender
        // keeps its last word.
        let first = tokio::select! {
            message = consumer.recv() => Some(message),
            written = async { (&mut in_flight.as_mut().expect("in flight").task).await },
                if in_flight.is_some() => {
                joined(written)?;
                let previous = in_flight.take().expect("in flight");
                finished.written(&previous.handed, &mut report)?;
                busy_since.store(IDLE, Ordering::Relaxed);
                None
            }
            changed = stop.changed(), if stop_open => {
                stop_open = changed.is_ok();
                None
            }
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
                None
            }
        };
        let Some(first) = first else { continue };
        let mut messages = vec![
            first
                .map_err(|error| Error::kafka("consuming", error))?
                .detach(),
        ];
        let deadline = Instant::now() + config.batch_wait;
        while messages.len() < config.batch_size {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, consumer.recv()).await {
                Ok(message) => messages.push(
                    message
                        .map_err(|error| Error::kafka("consuming", error))?
                        .detach(),
                ),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let mut batch = Batch::default();
        for message in &messages {
            *batch
                .per_topic
                .entry(message.topic().to_string())
                .or_default() += 1;
            let view = Message {
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                payload: message.payload(),
            };
            match decode(&view) {
                Decoded::Event(envelope) => {
                    batch.events.push(*envelope);
                    batch.origins.push(Origin {
                        topic: view.topic.to_string(),
                        partition: view.partition,
                        offset: view.offset,
                    });
                }
                Decoded::DeadLetter(dead_letter) => batch.dead_letters.push(dead_letter),
                Decoded::Kept(dead_letter) => batch.kept_dead_letters.push(dead_letter),
                Decoded::Skip => {}
            }
        }
        for message in &messages {
            batch.consumed.insert(
                (message.topic().to_string(), message.partition()),
                message.offset() + 1,
            );
        }
        positions.extend(batch.consumed.clone());
        batch.positions = positions.clone();
        for dead_letter in &batch.dead_letters {
            dead_letters.send_dead_letter(dead_letter).await?;
        }
        dead_letters.flush().await?;
        let mut bytes: BTreeMap<String, u64> = BTreeMap::new();
        for message in &messages {
            *bytes.entry(message.topic().to_string()).or_default() +=
                message.payload().map_or(0, <[u8]>::len) as u64;
        }
        drop(messages);
        let batch = Arc::new(batch);
        // The stage waits on the oldest batch not yet written: a write in flight, else this.
        let handled_at = epoch.elapsed().as_millis() as u64;
        if in_flight.is_none() {
            busy_since.store(handled_at, Ordering::Relaxed);
        }
        let handled = handler.handle(&batch).await.map_err(StageError::Stage)?;
        // The previous batch's write finishes before this one's starts.
        if let Some(previous) = in_flight.take() {
            joined(previous.task.await)?;
            finished.written(&previous.handed, &mut report)?;
        }
        let handed = Handed {
            batch,
            bytes,
            started,
        };
        match handled {
            Handled::Written => {
                finished.written(&handed, &mut report)?;
                busy_since.store(IDLE, Ordering::Relaxed);
            }
            Handled::Writing(write) => {
                busy_since.store(handled_at, Ordering::Relaxed);
                in_flight = Some(InFlight {
                    handed,
                    task: tokio::spawn(write),
                });
            }
        }
    }
    if let Some(last) = in_flight.take() {
        joined(last.task.await)?;
        finished.written(&last.handed, &mut report)?;
    }
    Ok(report)
}

/// A batch the handler has had.
struct Handed {
    batch: Arc<Batch>,
    /// Bytes consumed per topic.
    bytes: BTreeMap<String, u64>,
    started: Instant,
}

/// A handled batch whose write is running.
struct InFlight<E> {
    handed: Handed,
    task: tokio::task::JoinHandle<std::result::Result<(), E>>,
}

/// The outcome of a batch's write task.
fn joined<E>(
    written: std::result::Result<std::result::Result<(), E>, tokio::task::JoinError>,
) -> Result<(), StageError<E>> {
    match written {
        Ok(result) => result.map_err(StageError::Stage),
        Err(error) => Err(StageError::Pipeline(Error::Task(
            "a batch's write",
            error.to_string(),
        ))),
    }
}

/// What the stage does once a batch's output is written.
struct Finished<'a> {
    stage: &'a str,
    consumer: &'a crate::kafka::StageConsumer,
}

impl Finished<'_> {
    /// Commits a batch's offsets (its output is written) and counts it.
    fn written(&self, done: &Handed, report: &mut ConsumeReport) -> Result<()> {
        let stage = self.stage;
        let batch = &done.batch;
        let mut commit = TopicPartitionList::new();
        for ((topic, partition), next) in &batch.consumed {
            commit
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(|error| Error::kafka("building commit", error))?;
        }
        // A commit fails when a rebalance took the partitions away meanwhile (another member
        // of the group goes on from the last committed offset). The batch stands: applying
        // its events again is harmless, and a store fences what it already holds.
        match self.consumer.commit(&commit, CommitMode::Sync) {
            Ok(()) => {
                metrics::counter!(names::STAGE_COMMITS_TOTAL, "stage" => stage.to_string())
                    .increment(1);
            }
            Err(error) => {
                tracing::warn!(stage, %error, "committing offsets failed; the next owner of the partitions consumes the batch again");
                metrics::counter!(names::STAGE_COMMIT_FAILURES_TOTAL, "stage" => stage.to_string())
                    .increment(1);
            }
        }
        let seconds = done.started.elapsed().as_secs_f64();
        metrics::histogram!(names::STAGE_BATCH_SECONDS, "stage" => stage.to_string())
            .record(seconds);
        let messages: u64 = batch.per_topic.values().sum();
        tracing::debug!(stage, messages, seconds, "batch applied");
        metrics::counter!(names::STAGE_DEAD_LETTERS_TOTAL, "stage" => stage.to_string())
            .increment(batch.dead_letters.len() as u64);
        for (topic, count) in &batch.per_topic {
            metrics::counter!(names::STAGE_EVENTS_CONSUMED_TOTAL, "stage" => stage.to_string(), "topic" => topic.clone())
                .increment(*count);
            metrics::counter!(names::STAGE_BYTES_CONSUMED_TOTAL, "stage" => stage.to_string(), "topic" => topic.clone())
                .increment(done.bytes.get(topic).copied().unwrap_or(0));
            *report.consumed_per_topic.entry(topic.clone()).or_default() += count;
        }
        report.dead_letters += batch.dead_letters.len() as u64;
        report.batches += 1;
        Ok(())
    }
}

/// `busy_since` when no batch is being applied.
const IDLE: u64 = u64::MAX;

/// Aborts a task when dropped (the stage's ticker, whichever way the stage ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A stage stopped: either Kafka failed or the stage's own handler did.
#[derive(Debug, thiserror::Error)]
pub enum StageError<E> {
    #[error(transparent)]
    Pipeline(#[from] Error),
    #[error("stage: {0}")]
    Stage(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_event_versions_and_garbage_are_dead_letters_with_a_reason() {
        let event = include_str!("../tests/person_event.json");
        let decode = |payload: &[u8]| {
            canonical(
                "test",
                &Message {
                    topic: "t",
                    partition: 0,
                    offset: 3,
                    payload: Some(payload),
                },
            )
        };
        assert!(matches!(decode(event.as_bytes()), Decoded::Event(_)));
        let newer = event.replace("person.upserted.v1", "person.upserted.v9");
        let Decoded::DeadLetter(dead) = decode(newer.as_bytes()) else {
            panic!("a dead letter");
        };
        assert!(
            dead.reason
                .contains("unknown event type `person.upserted.v9`"),
            "{}",
            dead.reason
        );
        assert_eq!(dead.position, "t/0@3");
        // An instant no landlord could mean is refused before any stage computes with it.
        let far = event.replacen(
            r#""recorded_at":null"#,
            r#""recorded_at":"1066-10-14T09:00:00Z""#,
            1,
        );
        let Decoded::DeadLetter(dead) = decode(far.as_bytes()) else {
            panic!("a dead letter: {far}");
        };
        assert_eq!(dead.field.as_deref(), Some("recorded_at"));
        assert!(dead.reason.contains("outside the years"), "{}", dead.reason);
        for garbage in [&b"\xff\xfe"[..], b"{}", b"[]", b"null"] {
            assert!(matches!(decode(garbage), Decoded::DeadLetter(_)));
        }
        let tombstone = Message {
            topic: "t",
            partition: 0,
            offset: 4,
            payload: None,
        };
        assert_eq!(canonical("test", &tombstone), Decoded::Skip);
    }
    use crate::kafka::KafkaConfig;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn consumes_to_the_target_dead_letters_garbage_and_commits() {
        let config = KafkaConfig {
            topic_prefix: "stage".into(),
            partitions: 2,
            ..KafkaConfig::default()
        };
        let topic = config.topic("hms", crate::EntityKind::Person);
        let topics = vec![topic.clone(), config.dead_letter_topic()];
        let cluster = Cluster::connect(&config, &topics).await.unwrap();
        let mut producer = cluster.producer().unwrap();
        let event: Envelope =
            serde_json::from_str(include_str!("../tests/person_event.json")).unwrap();
        for _ in 0..5 {
            producer.send(&topic, &event).await.unwrap();
        }
        producer
            .send_raw_for_test(&topic, b"{not json")
            .await
            .unwrap();
        producer.flush().await.unwrap();
        let targets = cluster
            .high_watermarks(std::slice::from_ref(&topic))
            .unwrap();
        let (_stop_tx, stop) = watch::channel(StopWhen::Reached(targets));
        let (_shutdown_tx, shutdown) = watch::channel(false);
        let mut seen = 0;
        let report = consume(
            &cluster,
            "test",
            "test",
            std::slice::from_ref(&topic),
            &StageConfig::default(),
            stop,
            shutdown,
            |message| canonical("test", message),
            |batch: &Arc<Batch>| {
                seen += batch.events.len();
                Ok::<_, String>(Handled::Written)
            },
        )
        .await
        .unwrap();
        assert_eq!(seen, 5);
        assert_eq!(report.dead_letters, 1);
        assert_eq!(report.consumed_per_topic[&topic], 6);
        let dead = cluster
            .high_watermarks(&[config.dead_letter_topic()])
            .unwrap();
        assert_eq!(
            dead.values().sum::<i64>(),
            1,
            "the garbage message reached the dead-letter topic"
        );
    }
}
