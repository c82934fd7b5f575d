//! The PostgreSQL driver: a task per `[[postgres_sources]]` table, under [`supervise`]:
//! logical replication from its slot, or polling after the confirmed position; each row's
//! event produced, then the position confirmed (`Positions`) once it is durable. The
//! decoding is `crate::pg`'s.

use std::collections::BTreeMap;
use std::sync::Arc;

use pipeline::kafka::Cluster;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Output, Positions};
use crate::supervise::{SourceHealth, supervise};
use crate::{Error, PgSourceConfig, Result, SourceCounts};

/// A running PostgreSQL polling source.
#[derive(Debug)]
pub struct Poller {
    pub task: JoinHandle<Result<(SourceCounts, BTreeMap<String, u64>)>>,
}

/// Starts a poller per `[[postgres_sources]]` table. With `once`, each stops when a poll
/// finds no more rows; otherwise it polls every `poll_interval` until shutdown. Positions are
/// confirmed in the goldthread store after the rows are in Kafka; without a store each run
/// reads the table from the start (applying a row again is harmless).
/// Each is supervised ([`supervise`]): a database that is down is retried, not given up.
pub fn start<P: Positions>(
    cluster: &Arc<Cluster>,
    positions: &Arc<P>,
    health: &Arc<SourceHealth>,
    sources: &[PgSourceConfig],
    once: bool,
    shutdown: &watch::Receiver<bool>,
) -> Vec<Poller> {
    sources
        .iter()
        .map(|source| {
            let (cluster, positions, health) = (cluster.clone(), positions.clone(), health.clone());
            let (source, shutdown) = (source.clone(), shutdown.clone());
            let task = tokio::spawn(async move {
                let (cluster, positions, source) = (&cluster, &*positions, &source);
                supervise(&source.name, once, &health, &mut shutdown.clone(), || {
                    let mut shutdown = shutdown.clone();
                    async move {
                        poll(cluster, positions, source, once, &mut shutdown)
                            .await
                            .map_err(Error::in_source("postgres", &source.name))
                    }
                })
                .await
            });
            Poller { task }
        })
        .collect()
}

async fn poll(
    cluster: &Cluster,
    positions: &impl Positions,
    source: &PgSourceConfig,
    once: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(SourceCounts, BTreeMap<String, u64>)> {
    let config = |message: String| Error::config(&source.name, message);
    let url = std::env::var(&source.url_env).map_err(|_| {
        config(format!(
            "url_env: set {} to the database URL",
            source.url_env
        ))
    })?;
    let url: tokio_postgres::Config = url.parse().map_err(|error| {
        config(format!(
            "url_env: {} is not a PostgreSQL connection URL: {error}",
            source.url_env
        ))
    })?;
    let tls =
        pipeline::postgres::tls(source.tls_ca_file.as_deref(), "tls_ca_file").map_err(config)?;
    let (client, connection) = url
        .connect(tls)
        .await
        .map_err(Error::postgres("connecting to the source database"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "source database connection closed");
        }
    });
    let topic = cluster.config.topic(
        &source.system,
        source.entity().expect("validated: entity is known"),
    );
    let mut producer = cluster.producer()?;
    let counts = SourceCounts::new(&source.name, &source.system, source.qualified_table());
    let mut output = Output::new(cluster, &mut producer, counts);
    let reader = Reader {
        positions,
        source,
        client: &client,
        topic,
        once,
    };
    match source.mode {
        crate::pg::Mode::Logical => reader.replicate(&mut output, shutdown).await?,
        crate::pg::Mode::Polling => reader.table(&mut output, shutdown).await?,
    }
    Ok((output.counts, output.per_topic))
}

/// One attempt's reading of a table: where it reads, what it confirms where.
struct Reader<'a, P> {
    positions: &'a P,
    source: &'a PgSourceConfig,
    client: &'a tokio_postgres::Client,
    /// The topic its events go to.
    topic: String,
    once: bool,
}

impl<P: Positions> Reader<'_, P> {
    /// Polling on a monotonic column, after the position confirmed in the store.
    async fn table(
        &self,
        output: &mut Output<'_>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let cursor = self
            .source
            .cursor
            .as_deref()
            .expect("validated: polling has a cursor");
        let qualified = self.source.qualified_table();
        let (schema, table) = qualified.split_once('.').expect("schema.table");
        let cursor_type: String = self.client
            .query_opt(
                "SELECT format_type(a.atttypid, a.atttypmod)
                   FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND NOT a.attisdropped",
                &[&schema, &table, &cursor],
            )
            .await?
            .map(|row| row.get(0))
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "table `{}` has no column `{cursor}` (cursor)",
                    self.source.table
                ))
            })?;
        let query = self
            .client
            .prepare(&self.source.query(&cursor_type))
            .await?;
        let mut position = self.positions.position(&self.source.name).await?;
        for row in self
            .client
            .query(&self.source.null_cursor_query(), &[])
            .await?
        {
            let json: String = row.get(0);
            let dead_letter = pipeline::DeadLetter {
                source: self.source.name.clone(),
                position: format!("{}@NULL", self.source.table),
                field: Some(cursor.to_string()),
                reason: format!(
                    "the cursor column `{cursor}` is NULL: polling cannot read this row until it has a value"
                ),
                raw: json,
                rejected_at: chrono::Utc::now(),
                source_ref: None,
            };
            output.emit(crate::Record::DeadLetter(dead_letter)).await?;
        }
        loop {
            let rows = self.client.query(&query, &[&position]).await?;
            for row in &rows {
                let (cursor, json): (String, String) = (row.get(0), row.get(1));
                output.emit(self.source.decode_row(&cursor, &json)).await?;
                position = Some(cursor);
            }
            output.producer.flush().await?;
            // Confirmed only now that every row up to it is acknowledged by the broker (and, on
            // the embedded broker, stored).
            if let (true, Some(position), false) =
                (self.positions.kept(), &position, rows.is_empty())
            {
                self.positions.durable(&[self.topic.to_string()]).await?;
                self.positions.confirm(&self.source.name, position).await?;
            }
            if !read_on(rows.len(), self.source, self.once, shutdown).await {
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
        &self,
        output: &mut Output<'_>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let slot = self.source.slot_name();
        let publication = self
            .source
            .publication
            .clone()
            .expect("validated: logical mode has a publication");
        let table = self.source.qualified_table();
        // The slot is created before the snapshot, so the changes made while the table is read
        // follow in it; the snapshot counts as done only once it is durable (recorded in the
        // store), so a crash mid-snapshot reads it again at the next start. Without a store
        // every start reads it again (applying a row twice is harmless).
        let snapshot_key = format!("{}#snapshot", self.source.name);
        let snapshot_done = self.positions.position(&snapshot_key).await?.is_some();
        let existing: Option<String> = self
            .client
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await?
            .map(|row| row.get(0));
        let start = match existing {
            Some(start) => start,
            None => {
                let created = self.client
                    .query_one(
                        "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                        &[&slot],
                    )
                    .await
                    .map_err(Error::postgres(format!("creating replication slot `{slot}` (needs wal_level = logical and the REPLICATION privilege)")))?;
                tracing::info!(%slot, "replication slot created");
                created.get(0)
            }
        };
        if !snapshot_done {
            let rows = self
                .client
                .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
                .await
                .map_err(Error::postgres(format!("snapshot of {table}")))?;
            for (index, row) in rows.iter().enumerate() {
                let json: String = row.get(0);
                let change = crate::pg::RowChange {
                    table: table.clone(),
                    op: pipeline::Op::Read,
                    row: serde_json::from_str(&json).map_err(|error| {
                        Error::Unavailable(format!("snapshot of {table}: not JSON: {error}"))
                    })?,
                };
                let record = self
                    .source
                    .decode_change(&format!("snapshot-{start}-{index}"), &change);
                output.emit(record).await?;
            }
            output.producer.flush().await?;
            if self.positions.kept() {
                self.positions.durable(&[self.topic.to_string()]).await?;
                self.positions.confirm(&snapshot_key, &start).await?;
            }
            tracing::info!(%slot, rows = rows.len(), "snapshot read");
        }
        let mut decoder = crate::pg::PgOutput::default();
        loop {
            let rows = self
                .client
                .query(
                    "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2,
                         'proto_version', '1', 'publication_names', $3)",
                    &[&slot, &(self.source.batch_size as i32), &publication],
                )
                .await
                .map_err(Error::postgres(format!(
                    "reading replication slot `{slot}`"
                )))?;
            let mut last = None;
            for row in &rows {
                let (lsn, data): (String, Vec<u8>) = (row.get(0), row.get(1));
                // Begin, commit and relation messages carry no row.
                match decoder.decode(&data) {
                    Ok(Some(change)) if change.table == table => {
                        output
                            .emit(self.source.decode_change(&lsn, &change))
                            .await?;
                    }
                    Ok(_) => {}
                    Err(reason) => {
                        let dead_letter = pipeline::DeadLetter {
                            source: self.source.name.clone(),
                            position: format!("{slot}@{lsn}"),
                            field: None,
                            reason: format!("pgoutput: {reason}"),
                            raw: String::from_utf8_lossy(&data).into_owned(),
                            rejected_at: chrono::Utc::now(),
                            source_ref: None,
                        };
                        output.emit(crate::Record::DeadLetter(dead_letter)).await?;
                    }
                }
                last = Some(lsn);
            }
            output.producer.flush().await?;
            // Confirmed only now that every change up to it is acknowledged by the broker (and,
            // on the embedded broker, stored).
            if let Some(lsn) = &last {
                self.positions.durable(&[self.topic.to_string()]).await?;
                self.client
                    .execute(
                        "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
                        &[&slot, lsn],
                    )
                    .await?;
            }
            if !read_on(rows.len(), self.source, self.once, shutdown).await {
                return Ok(());
            }
        }
    }
}

/// After a read of `read` rows: whether to read again. A full batch is followed at once;
/// a short one means caught up: `--once` stops, a served run waits `poll_interval` (or stops
/// at shutdown).
async fn read_on(
    read: usize,
    source: &PgSourceConfig,
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
