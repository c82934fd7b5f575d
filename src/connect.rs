//! Debezium connectors: each `[[debezium]]` source consumes its topics in its own consumer
//! group, maps every change event to a canonical event (`connectors::debezium`), produces it
//! to goldthread's topic for its system and entity, and commits its offsets only once the
//! broker has acknowledged what it produced. A crash replays the uncommitted messages; their
//! event ids come from their positions, and the hub upserts by source reference, so a
//! replayed change is harmless.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use connectors::DebeziumConfig;
use pipeline::kafka::Cluster;
use pipeline::metrics as names;
use pipeline::stage::{self, ConsumeReport, StageConfig, StopWhen};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use connectors::SourceCounts;
use connectors::supervise::{SourceHealth, supervise};

/// A running connector.
#[derive(Debug)]
pub struct Connector {
    pub config: DebeziumConfig,
    /// Stops it once it has read what its topics held when it started (`--once`).
    pub stop: watch::Sender<StopWhen>,
    pub task: JoinHandle<anyhow::Result<(ConsumeReport, u64, connectors::mapping::UnparsedTally)>>,
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
                let unparsed = std::sync::Mutex::new(connectors::mapping::UnparsedTally::default());
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
    unparsed: &std::sync::Mutex<connectors::mapping::UnparsedTally>,
) -> anyhow::Result<ConsumeReport> {
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
    .map_err(|error| anyhow::anyhow!("debezium source `{}`: {error}", source.name))
}

/// A Debezium source's stage: each change's event to the entity topic; the batch counts as
/// written once the broker acknowledged every event (offsets are committed after).
struct Forward<'a> {
    source: &'a DebeziumConfig,
    topic: String,
    producer: pipeline::kafka::EventProducer,
    produced: &'a AtomicU64,
    unparsed: &'a std::sync::Mutex<connectors::mapping::UnparsedTally>,
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
    /// the topic it produced to.
    pub async fn finish(self, cluster: &Cluster) -> anyhow::Result<(SourceCounts, String)> {
        let targets = cluster
            .high_watermarks(&self.config.topics)
            .with_context(|| format!("debezium source `{}`", self.config.name))?;
        self.stop.send_replace(StopWhen::Reached(targets));
        let (report, produced, unparsed) = self.task.await??;
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
        Ok((counts, topic))
    }
}

/// A running PostgreSQL polling source.
#[derive(Debug)]
pub struct Poller {
    pub task: JoinHandle<anyhow::Result<(SourceCounts, String)>>,
}

/// Starts a poller per `[[postgres_sources]]` table. With `once`, each stops when a poll
/// finds no more rows; otherwise it polls every `poll_interval` until shutdown. Positions are
/// confirmed in the goldthread store after the rows are in Kafka; without a store each run
/// reads the table from the start (applying a row again is harmless).
/// Each is supervised ([`supervise`]): a database that is down is retried, not given up.
pub fn start_pollers(
    shared: &Arc<crate::state::Shared>,
    sources: &[connectors::PgSourceConfig],
    once: bool,
    shutdown: &watch::Receiver<bool>,
) -> Vec<Poller> {
    sources
        .iter()
        .map(|source| {
            let (shared, source, shutdown) = (shared.clone(), source.clone(), shutdown.clone());
            let task = tokio::spawn(async move {
                let (shared, source) = (&shared, &source);
                supervise(
                    &source.name,
                    once,
                    &shared.sources,
                    &mut shutdown.clone(),
                    || {
                        let mut shutdown = shutdown.clone();
                        async move {
                            poll(shared, source, once, &mut shutdown)
                                .await
                                .with_context(|| format!("postgres source `{}`", source.name))
                        }
                    },
                )
                .await
            });
            Poller { task }
        })
        .collect()
}

async fn poll(
    shared: &crate::state::Shared,
    source: &connectors::PgSourceConfig,
    once: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<(SourceCounts, String)> {
    let url = std::env::var(&source.url_env)
        .with_context(|| format!("url_env: set {} to the database URL", source.url_env))?;
    let tls = mdm::store::tls(source.tls_ca_file.as_deref())?;
    let (client, connection) = tokio_postgres::connect(&url, tls)
        .await
        .context("connecting to the source database")?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "source database connection closed");
        }
    });
    let mut output = Output {
        producer: shared.cluster.producer()?,
        topic: shared.cluster.config.topic(
            &source.system,
            source.entity().expect("validated: entity is known"),
        ),
        counts: SourceCounts::new(&source.name, &source.system, source.qualified_table()),
    };
    match source.mode {
        connectors::pg::Mode::Logical => {
            replicate(shared, source, &client, &mut output, once, shutdown).await?;
        }
        connectors::pg::Mode::Polling => {
            poll_table(shared, source, &client, &mut output, once, shutdown).await?;
        }
    }
    Ok((output.counts, output.topic))
}

/// Polling on a monotonic column, after the position confirmed in the store.
async fn poll_table(
    shared: &crate::state::Shared,
    source: &connectors::PgSourceConfig,
    client: &tokio_postgres::Client,
    output: &mut Output,
    once: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let cursor = source
        .cursor
        .as_deref()
        .expect("validated: polling has a cursor");
    let qualified = source.qualified_table();
    let (schema, table) = qualified.split_once('.').expect("schema.table");
    let cursor_type: String = client
        .query_opt(
            "SELECT format_type(a.atttypid, a.atttypmod)
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND NOT a.attisdropped",
            &[&schema, &table, &cursor],
        )
        .await?
        .map(|row| row.get(0))
        .with_context(|| format!("table `{}` has no column `{cursor}` (cursor)", source.table))?;
    let query = client.prepare(&source.query(&cursor_type)).await?;
    let mut position = match shared.master.store() {
        Some(store) => store.source_position(&source.name).await?,
        None => None,
    };
    for row in client.query(&source.null_cursor_query(), &[]).await? {
        let json: String = row.get(0);
        let dead_letter = pipeline::DeadLetter {
            source: source.name.clone(),
            position: format!("{}@NULL", source.table),
            field: Some(cursor.to_string()),
            reason: format!(
                "the cursor column `{cursor}` is NULL: polling cannot read this row until it has a value"
            ),
            raw: json,
            rejected_at: chrono::Utc::now(),
            source_ref: None,
        };
        output
            .emit(&source.name, connectors::Record::DeadLetter(dead_letter))
            .await?;
    }
    loop {
        let rows = client.query(&query, &[&position]).await?;
        for row in &rows {
            let (cursor, json): (String, String) = (row.get(0), row.get(1));
            output
                .emit(&source.name, source.decode_row(&cursor, &json))
                .await?;
            position = Some(cursor);
        }
        output.producer.flush().await?;
        // Confirmed only now that every row up to it is acknowledged by the broker (and, on
        // the embedded broker, stored).
        if let (Some(store), Some(position), false) =
            (shared.master.store(), &position, rows.is_empty())
        {
            shared
                .wait_durable(
                    std::slice::from_ref(&output.topic),
                    crate::state::DURABLE_WITHIN,
                )
                .await?;
            store.set_source_position(&source.name, position).await?;
        }
        if !read_on(rows.len(), source, once, shutdown).await {
            return Ok(());
        }
    }
}

/// Logical replication through the `pgoutput` plugin, over SQL (`pg_logical_slot_peek_binary_changes`
/// and `pg_replication_slot_advance`), so it needs no replication connection: on first start
/// the slot is created and then the table is read whole (the snapshot; changes after the
/// slot's creation follow, and applying a row twice is harmless), again at the next start
/// until the snapshot is recorded as durable; after that, changes are read from the slot
/// and the slot is advanced past them once they are durable, so a restart resumes from its
/// confirmed position.
async fn replicate(
    shared: &crate::state::Shared,
    source: &connectors::PgSourceConfig,
    client: &tokio_postgres::Client,
    output: &mut Output,
    once: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let slot = source.slot_name();
    let publication = source
        .publication
        .clone()
        .expect("validated: logical mode has a publication");
    let table = source.qualified_table();
    // The slot is created before the snapshot, so the changes made while the table is read
    // follow in it; the snapshot counts as done only once it is durable (recorded in the
    // store), so a crash mid-snapshot reads it again at the next start. Without a store
    // every start reads it again (applying a row twice is harmless).
    let snapshot_key = format!("{}#snapshot", source.name);
    let snapshot_done = match shared.master.store() {
        Some(store) => store.source_position(&snapshot_key).await?.is_some(),
        None => false,
    };
    let existing: Option<String> = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?
        .map(|row| row.get(0));
    let start = match existing {
        Some(start) => start,
        None => {
            let created = client
                .query_one(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&slot],
                )
                .await
                .with_context(|| format!("creating replication slot `{slot}` (needs wal_level = logical and the REPLICATION privilege)"))?;
            tracing::info!(%slot, "replication slot created");
            created.get(0)
        }
    };
    if !snapshot_done {
        let rows = client
            .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
            .await
            .with_context(|| format!("snapshot of {table}"))?;
        for (index, row) in rows.iter().enumerate() {
            let json: String = row.get(0);
            let change = connectors::pg::RowChange {
                table: table.clone(),
                op: pipeline::Op::Read,
                row: serde_json::from_str(&json)?,
            };
            let record = source.decode_change(&format!("snapshot-{start}-{index}"), &change);
            output.emit(&source.name, record).await?;
        }
        output.producer.flush().await?;
        if let Some(store) = shared.master.store() {
            shared
                .wait_durable(
                    std::slice::from_ref(&output.topic),
                    crate::state::DURABLE_WITHIN,
                )
                .await?;
            store.set_source_position(&snapshot_key, &start).await?;
        }
        tracing::info!(%slot, rows = rows.len(), "snapshot read");
    }
    let mut decoder = connectors::pg::PgOutput::default();
    loop {
        let rows = client
            .query(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2,
                     'proto_version', '1', 'publication_names', $3)",
                &[&slot, &(source.batch_size as i32), &publication],
            )
            .await
            .with_context(|| format!("reading replication slot `{slot}`"))?;
        let mut last = None;
        for row in &rows {
            let (lsn, data): (String, Vec<u8>) = (row.get(0), row.get(1));
            // Begin, commit and relation messages carry no row.
            match decoder.decode(&data) {
                Ok(Some(change)) if change.table == table => {
                    output
                        .emit(&source.name, source.decode_change(&lsn, &change))
                        .await?;
                }
                Ok(_) => {}
                Err(reason) => {
                    let dead_letter = pipeline::DeadLetter {
                        source: source.name.clone(),
                        position: format!("{slot}@{lsn}"),
                        field: None,
                        reason: format!("pgoutput: {reason}"),
                        raw: String::from_utf8_lossy(&data).into_owned(),
                        rejected_at: chrono::Utc::now(),
                        source_ref: None,
                    };
                    output
                        .emit(&source.name, connectors::Record::DeadLetter(dead_letter))
                        .await?;
                }
            }
            last = Some(lsn);
        }
        output.producer.flush().await?;
        // Confirmed only now that every change up to it is acknowledged by the broker (and,
        // on the embedded broker, stored).
        if let Some(lsn) = &last {
            shared
                .wait_durable(
                    std::slice::from_ref(&output.topic),
                    crate::state::DURABLE_WITHIN,
                )
                .await?;
            client
                .execute(
                    "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
                    &[&slot, lsn],
                )
                .await?;
        }
        if !read_on(rows.len(), source, once, shutdown).await {
            return Ok(());
        }
    }
}

/// Where a source table's rows go, and what was read.
struct Output {
    producer: pipeline::kafka::EventProducer,
    topic: String,
    counts: SourceCounts,
}

impl Output {
    /// Sends what one row became: the event to the topic, or the dead letter; counts it.
    async fn emit(&mut self, source: &str, record: connectors::Record) -> anyhow::Result<()> {
        self.counts.count(&record);
        match record {
            connectors::Record::Event(event) => {
                self.producer.send(&self.topic, &event).await?;
            }
            connectors::Record::DeadLetter(dead_letter) => {
                self.producer.send_dead_letter(&dead_letter).await?;
                metrics::counter!(names::CONNECTOR_DEAD_LETTERS_TOTAL, "source" => source.to_string())
                    .increment(1);
            }
        }
        metrics::counter!(names::CONNECTOR_ROWS_READ_TOTAL, "source" => source.to_string())
            .increment(1);
        Ok(())
    }
}

/// After a read of `read` rows: whether to read again. A full batch is followed at once;
/// a short one means caught up: `--once` stops, a served run waits `poll_interval` (or stops
/// at shutdown).
async fn read_on(
    read: usize,
    source: &connectors::PgSourceConfig,
    once: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if (read as i64) < source.batch_size {
        if once {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(source.poll_interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return false,
        }
    }
    !*shutdown.borrow()
}
