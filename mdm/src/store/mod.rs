//! The PostgreSQL store of master data: golden records, cross-reference, tenancies, match
//! decisions, the review queue, steward verdicts, the audit trail, erasures, dead letters and
//! consumed positions, for BI tools and restarts. The only IO in this crate. Migrations are
//! the numbered files in `mdm/migrations/` (the KPI tables among them: `kpis`),
//! applied at startup and by `goldthread migrate`.
//!
//! Each consumed batch is written in one transaction together with the positions it reached,
//! before its offsets are committed to Kafka: the batch's events upsert the latest version of
//! their source records (keyed by source reference) and the rows of whatever the hub says
//! changed are replaced from its state, so a replay of the same events writes the same rows,
//! never duplicates.
//! A restart rebuilds the hub from the stored source records and steward verdicts
//! (`Store::restore`) and consumes on from the stored positions.

mod kpis;
pub use kpis::KpiRows;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::sync::Mutex;

use crate::{Changes, Entity, Hub, StewardVerdict};
use pipeline::Envelope;
use pipeline::Reference;
use pipeline::entity::{Tenancy, Vulnerability};
use pipeline::stage::Positions;
use serde_json::{Value, json};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "golden_records",
        include_str!("../../migrations/0001_golden_records.sql"),
    ),
    (
        2,
        "steward_audit",
        include_str!("../../migrations/0002_steward_audit.sql"),
    ),
    (
        3,
        "recovery_and_history",
        include_str!("../../migrations/0003_recovery_and_history.sql"),
    ),
    (
        4,
        "erasure",
        include_str!("../../migrations/0004_erasure.sql"),
    ),
    (
        5,
        "source_positions",
        include_str!("../../migrations/0005_source_positions.sql"),
    ),
    (
        6,
        "live_kpis_and_exceptions",
        include_str!("../../migrations/0006_live_kpis_and_exceptions.sql"),
    ),
    (
        7,
        "group_sync",
        include_str!("../../migrations/0007_group_sync.sql"),
    ),
    (
        8,
        "source_record_json",
        include_str!("../../migrations/0008_source_record_json.sql"),
    ),
    (
        9,
        "dead_letters",
        include_str!("../../migrations/0009_dead_letters.sql"),
    ),
    (
        10,
        "source_event_history",
        include_str!("../../migrations/0010_source_event_history.sql"),
    ),
    (
        11,
        "quality_issues",
        include_str!("../../migrations/0011_quality_issues.sql"),
    ),
];

/// The kinds whose every version is kept (`goldthread.source_event`): what the repairs
/// analytics read as history.
const HISTORY_KINDS: [pipeline::EntityKind; 5] = [
    pipeline::EntityKind::RepairRequest,
    pipeline::EntityKind::WorkOrder,
    pipeline::EntityKind::WorkOrderUpdate,
    pipeline::EntityKind::Appointment,
    pipeline::EntityKind::Visit,
];

/// Appends events to the history, in the order given, each event id once.
const APPEND_SOURCE_EVENTS: &str = "INSERT INTO goldthread.source_event
     SELECT r.event_id, nextval('goldthread.source_record_seq'), r.kind, r.source, r.source_id, r.event
       FROM (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::json[])
                  WITH ORDINALITY AS r(event_id, kind, source, source_id, event, position)
              ORDER BY position) r
     ON CONFLICT (event_id) DO NOTHING";

/// The stored events after `seq` $1, in arrival order: the latest version of each master data
/// record and every version of each repairs record (the kinds $2, `HISTORY_KINDS`). What a
/// restart hands to the engine (from 0), and what the group's other members stored since.
const STORED_EVENTS: &str = "SELECT event, seq FROM (
         SELECT event, seq FROM goldthread.source_record
          WHERE seq > $1 AND kind <> ALL($2::text[])
         UNION ALL
         SELECT event, seq FROM goldthread.source_event WHERE seq > $1) stored
     ORDER BY seq";

/// The names of `HISTORY_KINDS`, as `STORED_EVENTS` takes them.
fn history_kinds() -> Vec<&'static str> {
    HISTORY_KINDS.iter().map(|kind| kind.as_str()).collect()
}

/// Upserts source records, one per key: parallel arrays of kinds, sources, source ids and
/// events (typed parameters, so nothing is parsed twice on either side). A record erased
/// meanwhile is never written, even when its event was applied before the erasure and is
/// written after it.
const UPSERT_SOURCE_RECORDS: &str = "INSERT INTO goldthread.source_record
     SELECT r.kind, r.source, r.source_id, nextval('goldthread.source_record_seq'), r.event
       FROM unnest($1::text[], $2::text[], $3::text[], $4::json[])
            AS r(kind, source, source_id, event)
      WHERE NOT EXISTS (SELECT 1 FROM goldthread.erasure e
                         WHERE (e.entity, e.source, e.source_id) = (r.kind, r.source, r.source_id))
     ON CONFLICT (kind, source, source_id)
     DO UPDATE SET seq = EXCLUDED.seq, event = EXCLUDED.event";

/// Writes the cross-reference rows of the records that changed (`changed_record`, their
/// current rows in `new_xref`): closes the history rows whose golden id changed and opens new
/// ones; replaces the redirects of `changed_redirect` with `new_redirect`, recording merges
/// (redirects new or moved) and unmerges (redirects gone).
const WRITE_XREF: &str = "
    ANALYZE changed_record, new_xref, changed_redirect, new_redirect;
    UPDATE goldthread.xref_history h SET valid_to = now()
      FROM changed_record c LEFT JOIN new_xref n USING (entity, source, source_id)
     WHERE h.valid_to IS NULL
       AND (h.entity, h.source, h.source_id) = (c.entity, c.source, c.source_id)
       AND n.golden_id IS DISTINCT FROM h.golden_id;
    INSERT INTO goldthread.xref_history
    SELECT n.entity, n.source, n.source_id, n.golden_id, now(), NULL
      FROM new_xref n
      LEFT JOIN goldthread.xref_history h
        ON h.valid_to IS NULL
       AND (h.entity, h.source, h.source_id) = (n.entity, n.source, n.source_id)
     WHERE h.entity IS NULL;
    DELETE FROM goldthread.xref x USING changed_record c
     WHERE (x.entity, x.source, x.source_id) = (c.entity, c.source, c.source_id);
    INSERT INTO goldthread.xref SELECT * FROM new_xref;
    INSERT INTO goldthread.merge_history
    SELECT now(), n.entity, 'merged', n.golden_id, n.survivor_id FROM new_redirect n
     WHERE NOT EXISTS (SELECT 1 FROM goldthread.redirect r
                        WHERE (r.entity, r.golden_id, r.survivor_id)
                            = (n.entity, n.golden_id, n.survivor_id));
    INSERT INTO goldthread.merge_history
    SELECT now(), r.entity, 'unmerged', r.golden_id, r.survivor_id
      FROM goldthread.redirect r JOIN changed_redirect c USING (entity, golden_id)
     WHERE NOT EXISTS (SELECT 1 FROM new_redirect n
                        WHERE (n.entity, n.golden_id) = (r.entity, r.golden_id));
    DELETE FROM goldthread.redirect r USING changed_redirect c
     WHERE (r.entity, r.golden_id) = (c.entity, c.golden_id);
    INSERT INTO goldthread.redirect SELECT * FROM new_redirect;";

/// Records consumed positions (a JSON array of `{topic, partition, next_offset}`). A position
/// never moves back: in a group of several processes, one whose partition was reassigned may
/// still write a batch that another member has already written past.
const RECORD_POSITIONS: &str = "INSERT INTO goldthread.consumed
     SELECT * FROM jsonb_populate_recordset(NULL::goldthread.consumed, $1)
     ON CONFLICT (topic, partition)
     DO UPDATE SET next_offset = greatest(goldthread.consumed.next_offset, EXCLUDED.next_offset)";

/// The steward verdicts in force, as one JSON array of `StewardVerdict`.
const VERDICTS: &str = "SELECT coalesce(jsonb_agg(jsonb_build_object(
         'entity', entity,
         'a', jsonb_build_object('allocated_by', source_a, 'id', source_id_a),
         'b', jsonb_build_object('allocated_by', source_b, 'id', source_id_b),
         'verdict', verdict)), '[]') FROM goldthread.steward_verdict";

/// The transaction-scoped advisory lock every write of a coordinated store takes first: the
/// group's processes write one at a time, each after catching up with the others.
const WRITE_LOCK: i64 = 0x676f_6c64_7468_7264; // "goldthrd"

/// `[postgres]`: where golden records and KPIs land for BI.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// A PostgreSQL URL (`postgres://user@host:5432/db`); unset keeps everything in memory.
    /// `--postgres` overrides. Without a password in the URL, `PGPASSWORD` is used.
    pub url: Option<String>,
    /// Connections in the pool.
    pub pool_size: Option<usize>,
    /// How long a batch's write is retried while PostgreSQL is unreachable (the stage waits,
    /// committing nothing, and `/ready` says so) before the run fails.
    #[serde(with = "humantime_serde")]
    pub retry_for: std::time::Duration,
    /// A PEM file of the CA that signed the server's certificate: with it, TLS connections
    /// verify the certificate and the host name. Without it, as libpq's `sslmode=prefer` /
    /// `require`: encrypted when the server offers TLS (or insists, with `?sslmode=require`
    /// in the URL), the certificate not verified.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: None,
            pool_size: None,
            retry_for: std::time::Duration::from_secs(300),
            tls_ca_file: None,
        }
    }
}

pub struct Store {
    pool: Pool,
    /// One write at a time, from taking the hub's changes to the commit.
    writer: tokio::sync::Mutex<()>,
    /// Changes taken by a write that failed, for the next write.
    unwritten: Mutex<Changes>,
    /// Whether other processes of the consumer group write to this store too
    /// (`Store::coordinate`).
    coordinated: bool,
    /// The last `source_record.seq` this process has applied or written.
    synced: Mutex<i64>,
}

/// What the other processes of the group committed that this one has not applied yet, read
/// under the write lock (all empty when the store is not coordinated).
#[derive(Debug, Default)]
pub(crate) struct Peers {
    /// The latest event of each source record they wrote, in write order.
    pub events: Vec<Envelope>,
    /// The steward verdicts in force (`None`: not coordinated, nothing to compare).
    pub verdicts: Option<Vec<StewardVerdict>>,
    /// Every erased person record.
    pub erased: Vec<pipeline::Reference>,
    /// The stored next offset of each partition: a batch's events before it were written by
    /// the group member that held the partition before a rebalance.
    pub written: Positions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not printed.
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    pub async fn connect(url: &str, settings: &PostgresConfig) -> anyhow::Result<Store> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .context("postgres.url: not a PostgreSQL connection URL")?;
        // The password stays out of config files: taken from PGPASSWORD, as libpq does.
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        let manager = Manager::from_config(
            config,
            pipeline::postgres::tls(settings.tls_ca_file.as_deref(), "postgres.tls_ca_file")
                .map_err(anyhow::Error::msg)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.unwrap_or(4))
            .build()
            .context("building the PostgreSQL pool")?;
        // Fail now, with the server's reason, rather than at the first batch.
        drop(
            pool.get()
                .await
                .context("connecting to PostgreSQL (postgres.url)")?,
        );
        Ok(Store {
            pool,
            writer: tokio::sync::Mutex::new(()),
            unwritten: Mutex::new(Changes::default()),
            coordinated: false,
            synced: Mutex::new(0),
        })
    }

    /// Makes this process one of several in a consumer group writing to the store (a real
    /// broker): each write then takes the group's write lock, hands the writer what the others
    /// committed since (`Peers`) before it applies its own batch, and skips events another
    /// member has already written. `synced` is the last `seq` the restore read.
    pub fn coordinate(&mut self, synced: i64) {
        self.coordinated = true;
        *self.synced.get_mut().expect("synced lock") = synced;
    }

    pub fn is_coordinated(&self) -> bool {
        self.coordinated
    }

    /// The connection pool, for tables the store does not own (the KPI snapshots).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The positions the group has written, per partition.
    pub async fn positions(&self) -> anyhow::Result<Positions> {
        positions_in(&**self.pool.get().await?).await
    }

    /// Takes the write lock and reads what the other processes committed since this one last
    /// synced. Called at the start of a coordinated write's transaction.
    async fn peers(
        &self,
        transaction: &deadpool_postgres::Transaction<'_>,
    ) -> anyhow::Result<Peers> {
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .await
            .context("taking the group's write lock")?;
        let synced = *self.synced.lock().expect("synced lock");
        let mut events = Vec::new();
        for row in transaction
            .query(STORED_EVENTS, &[&synced, &history_kinds()])
            .await
            .context("reading the group's new source records")?
        {
            let Json(event) = row
                .try_get(0)
                .context("goldthread.source_record: a stored event no longer decodes")?;
            events.push(event);
        }
        let written = positions_in(&**transaction).await?;
        let erased = erased_in(&**transaction).await?;
        let verdicts = transaction.query(VERDICTS, &[]).await?;
        Ok(Peers {
            events,
            verdicts: Some(
                serde_json::from_value(verdicts[0].get(0)).context("goldthread.steward_verdict")?,
            ),
            erased,
            written,
        })
    }

    /// Applies the migrations not yet applied; returns their versions.
    pub async fn migrate(&self) -> anyhow::Result<Vec<i32>> {
        let mut client = self.pool.get().await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS public.goldthread_migrations (
                     version integer PRIMARY KEY,
                     name text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
        let mut applied = Vec::new();
        for &(version, name, text) in MIGRATIONS {
            let transaction = client.transaction().await?;
            // One migrator at a time.
            transaction
                .batch_execute("LOCK TABLE public.goldthread_migrations IN EXCLUSIVE MODE")
                .await?;
            let done = transaction
                .query_opt(
                    "SELECT 1 FROM public.goldthread_migrations WHERE version = $1",
                    &[&version],
                )
                .await?
                .is_some();
            if !done {
                transaction
                    .batch_execute(text)
                    .await
                    .with_context(|| format!("migration {version:04}_{name}"))?;
                transaction
                    .execute(
                        "INSERT INTO public.goldthread_migrations (version, name) VALUES ($1, $2)",
                        &[&version, &name],
                    )
                    .await?;
                applied.push(version);
            }
            transaction.commit().await?;
        }
        Ok(applied)
    }

    /// Writes, in one transaction: the batch's events (latest version per source record),
    /// the rows of whatever changed in the hub since the last write, a steward action's
    /// audit entry and erasure, and the positions consumed. `apply` applies the batch to
    /// the hub and returns the events to store; it is called inside the transaction with what
    /// the group's other processes committed (`Peers`: apply those first, skip the batch's
    /// events they already wrote). Writes are serialised, so the rows land in the order the
    /// changes were taken; changes a failed write took are kept for the next one.
    pub(crate) async fn write<'e>(
        &self,
        hub: &Mutex<Hub>,
        write: &Write<'_>,
        apply: &mut (dyn FnMut(&Peers) -> anyhow::Result<Vec<&'e Envelope>> + Send),
    ) -> anyhow::Result<()> {
        let _one_writer = self.writer.lock().await;
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let peers = if self.coordinated {
            self.peers(&transaction).await?
        } else {
            Peers::default()
        };
        let started = std::time::Instant::now();
        let mut events = apply(&peers)?;
        let applied = started.elapsed();
        let (changes, snapshot, taken_events, issues) = {
            let mut hub = hub.lock().expect("hub lock");
            let taken_events = write
                .unstored
                .map(|unstored| std::mem::take(&mut *unstored.lock().expect("unstored lock")))
                .unwrap_or_default();
            let mut changes = hub.take_changes();
            changes.merge(std::mem::take(
                &mut *self.unwritten.lock().expect("unwritten lock"),
            ));
            let snapshot = if changes.is_empty() && write.audit.is_none() {
                None
            } else {
                Some(Snapshot::of(&hub, &changes)?)
            };
            let issues = write
                .quality
                .map(|register| register.lock().expect("quality lock").take_changes())
                .unwrap_or_default();
            (changes, snapshot, taken_events, issues)
        };
        events.extend(taken_events.iter());
        let taken = started.elapsed();
        let written = self
            .write_transaction(transaction, &events, snapshot.as_ref(), &issues, write)
            .await;
        tracing::debug!(
            events = events.len(),
            apply_seconds = applied.as_secs_f64(),
            snapshot_seconds = (taken - applied).as_secs_f64(),
            write_seconds = (started.elapsed() - taken).as_secs_f64(),
            "store write"
        );
        if written.is_err() {
            self.unwritten
                .lock()
                .expect("unwritten lock")
                .merge(changes);
            if let Some(register) = write.quality {
                register.lock().expect("quality lock").put_back(issues);
            }
            // Their events go back too, ahead of any applied since.
            if let Some(unstored) = write.unstored {
                let mut waiting = unstored.lock().expect("unstored lock");
                let later = std::mem::replace(&mut *waiting, taken_events);
                waiting.extend(later);
            }
        }
        written
    }

    /// `write`, retried with backoff (0.1 s doubling to 5 s) while it fails for a reason
    /// outside goldthread (see [`error_class`]), for up to `retry_for`: the stage waits and
    /// commits nothing meanwhile. Failures are counted and
    /// `store_up` reads 0 until a write succeeds.
    pub(crate) async fn write_with_retry<'e>(
        &self,
        hub: &Mutex<Hub>,
        write: &Write<'_>,
        retry_for: std::time::Duration,
        apply: &mut (dyn FnMut(&Peers) -> anyhow::Result<Vec<&'e Envelope>> + Send),
    ) -> anyhow::Result<()> {
        use pipeline::metrics as names;
        let started = std::time::Instant::now();
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            match self.write(hub, write, apply).await {
                Ok(()) => {
                    metrics::gauge!(names::STORE_UP).set(1.0);
                    return Ok(());
                }
                Err(error) => {
                    metrics::gauge!(names::STORE_UP).set(0.0);
                    metrics::counter!(names::STORE_WRITE_FAILURES_TOTAL).increment(1);
                    if error_class(&error) != pipeline::ErrorClass::External {
                        return Err(error
                            .context("writing to PostgreSQL (not retried: retrying cannot help)"));
                    }
                    if started.elapsed() >= retry_for {
                        return Err(error.context(format!(
                            "PostgreSQL writes failed for {retry_for:?} (postgres.retry_for)"
                        )));
                    }
                    tracing::warn!(error = %format!("{error:#}"), retry_in = ?delay, "writing to PostgreSQL failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
    }

    async fn write_transaction(
        &self,
        transaction: deadpool_postgres::Transaction<'_>,
        events: &[&Envelope],
        snapshot: Option<&Snapshot>,
        issues: &[crate::quality::Issue],
        write: &Write<'_>,
    ) -> anyhow::Result<()> {
        if !events.is_empty() {
            let latest = latest_per_record(events);
            let column = |field: fn(&Envelope) -> &str| -> Vec<&str> {
                latest.iter().map(|event| field(event)).collect()
            };
            let bodies: Vec<Json<&Envelope>> = latest.iter().map(|event| Json(*event)).collect();
            transaction
                .execute(
                    UPSERT_SOURCE_RECORDS,
                    &[
                        &column(|event| event.payload.kind().as_str()),
                        &column(|event| &event.source_ref.allocated_by),
                        &column(|event| &event.source_ref.id),
                        &bodies,
                    ],
                )
                .await
                .context("writing goldthread.source_record")?;
            let history: Vec<&Envelope> = events
                .iter()
                .copied()
                .filter(|event| HISTORY_KINDS.contains(&event.payload.kind()))
                .collect();
            if !history.is_empty() {
                let column = |field: fn(&Envelope) -> &str| -> Vec<&str> {
                    history.iter().map(|event| field(event)).collect()
                };
                let bodies: Vec<Json<&Envelope>> =
                    history.iter().map(|event| Json(*event)).collect();
                transaction
                    .execute(
                        APPEND_SOURCE_EVENTS,
                        &[
                            &column(|event| &event.event_id),
                            &column(|event| event.payload.kind().as_str()),
                            &column(|event| &event.source_ref.allocated_by),
                            &column(|event| &event.source_ref.id),
                            &bodies,
                        ],
                    )
                    .await
                    .context("writing goldthread.source_event")?;
            }
        }
        if let Some(snapshot) = snapshot {
            write_snapshot(&transaction, snapshot).await?;
        }
        if let Some(erasure) = write.erasure {
            let rows: Vec<Value> = erasure
                .records
                .iter()
                .map(|reference| ("person", reference))
                .chain(erasure.vulnerabilities.iter().map(|reference| ("vulnerability", reference)))
                .map(|(entity, reference)| {
                    json!({"entity": entity, "source": reference.allocated_by, "source_id": reference.id})
                })
                .collect();
            let (who, reason) = write
                .audit
                .map(|entry| (entry.who.as_str(), entry.reason.as_str()))
                .unwrap_or_default();
            // What was stored about the records goes; that they were erased stays.
            transaction
                .execute(
                    "WITH erased AS (
                         SELECT * FROM jsonb_to_recordset($1) AS e(entity text, source text, source_id text)),
                     logged AS (
                         INSERT INTO goldthread.erasure
                         SELECT now(), $2, $3, $4, entity, source, source_id FROM erased
                         ON CONFLICT DO NOTHING),
                     history AS (
                         DELETE FROM goldthread.xref_history h USING erased e
                          WHERE e.entity = 'person' AND h.entity = 'person'
                            AND (h.source, h.source_id) = (e.source, e.source_id)),
                     dead AS (
                         UPDATE goldthread.dead_letter d SET raw = '[erased]', reason = '[erased]'
                           FROM erased e
                          WHERE (d.ref_source, d.ref_id) = (e.source, e.source_id)),
                     issues AS (
                         DELETE FROM goldthread.quality_issue q USING erased e
                          WHERE (q.source, q.source_id) = (e.source, e.source_id))
                     DELETE FROM goldthread.source_record r USING erased e
                      WHERE (r.kind, r.source, r.source_id) = (e.entity, e.source, e.source_id)",
                    &[&Value::Array(rows), &who, &reason, &erasure.golden_id],
                )
                .await
                .context("recording the erasure")?;
        }
        if !write.dead_letters.is_empty() {
            write_dead_letters(&transaction, write.dead_letters).await?;
        }
        if !issues.is_empty() {
            write_quality_issues(&transaction, issues).await?;
        }
        if let Some(entry) = write.audit {
            transaction
                .execute(
                    "INSERT INTO goldthread.steward_audit
                         (at, who, role, action, entity, records, reason, affected)
                     SELECT at, who, role, action, entity, records, reason, affected
                       FROM jsonb_to_record($1) AS entry(at timestamptz, who text, role text,
                            action text, entity text, records jsonb, reason text, affected jsonb)",
                    &[&serde_json::to_value(entry)?],
                )
                .await
                .context("writing goldthread.steward_audit")?;
        }
        if let Some(positions) = write.positions.filter(|positions| !positions.is_empty()) {
            transaction
                .execute(RECORD_POSITIONS, &[&positions_json(positions)])
                .await?;
        }
        // Under the group's lock nobody else draws from the sequence: everything up to its
        // last value is applied here now.
        let synced: Option<i64> = if self.coordinated {
            Some(
                transaction
                    .query_one("SELECT last_value FROM goldthread.source_record_seq", &[])
                    .await?
                    .get(0),
            )
        } else {
            None
        };
        transaction.commit().await?;
        if let Some(synced) = synced {
            *self.synced.lock().expect("synced lock") = synced;
        }
        Ok(())
    }

    /// The issue register as stored (open and resolved), for a restart.
    pub async fn quality_issues(&self) -> anyhow::Result<Vec<crate::quality::Issue>> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT coalesce(jsonb_agg(jsonb_build_object(
                     'rule', rule, 'dimension', dimension, 'severity', severity,
                     'owner', owner, 'system', system,
                     'record', jsonb_build_object('allocated_by', source, 'id', source_id),
                     'golden_id', golden_id, 'problem', problem, 'fix', fix,
                     'first_seen', first_seen, 'last_seen', last_seen,
                     'resolved_at', resolved_at)), '[]')
                   FROM goldthread.quality_issue",
                &[],
            )
            .await
            .context("reading goldthread.quality_issue")?;
        serde_json::from_value(row.get(0)).context("goldthread.quality_issue")
    }

    /// The person records erased: a restart suppresses them before it applies anything, so
    /// nothing read again brings the person back.
    pub async fn erased(&self) -> anyhow::Result<Vec<pipeline::Reference>> {
        erased_in(&**self.pool.get().await?).await
    }

    /// The dead letters kept about `records`.
    pub async fn dead_letters_of(
        &self,
        records: &[pipeline::Reference],
    ) -> anyhow::Result<Vec<pipeline::DeadLetter>> {
        let client = self.pool.get().await?;
        let (sources, ids): (Vec<&str>, Vec<&str>) = records
            .iter()
            .map(|record| (record.allocated_by.as_str(), record.id.as_str()))
            .unzip();
        let rows = client
            .query(
                "SELECT d.source, d.position, d.field, d.reason, d.raw, d.rejected_at,
                        d.ref_source, d.ref_id
                   FROM goldthread.dead_letter d
                   JOIN unnest($1::text[], $2::text[]) AS r(source, id)
                     ON (d.ref_source, d.ref_id) = (r.source, r.id)
                  ORDER BY d.rejected_at, d.source, d.position",
                &[&sources, &ids],
            )
            .await
            .context("reading goldthread.dead_letter")?;
        Ok(rows
            .iter()
            .map(|row| pipeline::DeadLetter {
                source: row.get(0),
                position: row.get(1),
                field: row.get(2),
                reason: row.get(3),
                raw: row.get(4),
                rejected_at: row.get(5),
                source_ref: Some(pipeline::Reference {
                    allocated_by: row.get(6),
                    id: row.get(7),
                }),
            })
            .collect())
    }

    /// When `subject` (a golden person id, or `system:id` of a person record) was erased,
    /// if it was.
    pub async fn erased_at(
        &self,
        subject: &str,
    ) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        let client = self.pool.get().await?;
        let row = match subject.split_once(':') {
            Some((source, source_id)) => {
                client
                    .query_opt(
                        "SELECT max(at) FROM goldthread.erasure
                          WHERE entity = 'person' AND source = $1 AND source_id = $2",
                        &[&source, &source_id],
                    )
                    .await?
            }
            None => {
                client
                    .query_opt(
                        "SELECT max(at) FROM goldthread.erasure WHERE golden_id = $1",
                        &[&subject],
                    )
                    .await?
            }
        };
        Ok(row.and_then(|row| row.get(0)))
    }

    /// What a restart needs: every stored source record's latest event and every version of
    /// the repairs records (which the analytics read as history), in the order they were
    /// written (handed to `apply` one at a time, so a large store is never all in memory as
    /// JSON), the steward verdicts in force, the audit trail and the positions.
    pub async fn restore(
        &self,
        mut apply: impl FnMut(Envelope) -> anyhow::Result<()>,
    ) -> anyhow::Result<Restored> {
        use futures_util::TryStreamExt;
        let client = self.pool.get().await?;
        let rows = client
            .query_raw(
                STORED_EVENTS,
                [
                    &0i64 as &(dyn tokio_postgres::types::ToSql + Sync),
                    &history_kinds(),
                ],
            )
            .await
            .context("reading goldthread.source_record and goldthread.source_event")?;
        let mut rows = std::pin::pin!(rows);
        let (mut events, mut synced) = (0u64, 0i64);
        while let Some(row) = rows.try_next().await? {
            synced = row.get(1);
            let Json(envelope) = row
                .try_get(0)
                .context("goldthread.source_record: a stored event no longer decodes")?;
            apply(envelope)?;
            events += 1;
        }
        let verdicts = client.query(VERDICTS, &[]).await?;
        let audit = client
            .query(
                "SELECT coalesce(jsonb_agg(to_jsonb(a) - 'id' ORDER BY id), '[]')
                   FROM goldthread.steward_audit a",
                &[],
            )
            .await?;
        let positions = positions_in(&**client).await?;
        Ok(Restored {
            events,
            verdicts: serde_json::from_value(verdicts[0].get(0))
                .context("goldthread.steward_verdict")?,
            audit: serde_json::from_value(audit[0].get(0)).context("goldthread.steward_audit")?,
            positions,
            synced,
        })
    }

    /// The confirmed position of a polled source, if it has one.
    pub async fn source_position(&self, source: &str) -> anyhow::Result<Option<String>> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT position FROM goldthread.source_position WHERE source = $1",
                &[&source],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Confirms a polled source's position (after what it read is in Kafka).
    pub async fn set_source_position(&self, source: &str, position: &str) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO goldthread.source_position VALUES ($1, $2, now())
                 ON CONFLICT (source) DO UPDATE SET position = EXCLUDED.position,
                                                    updated_at = EXCLUDED.updated_at",
                &[&source, &position],
            )
            .await?;
        Ok(())
    }

    /// Whether the server answers now (for `/ready`), within `timeout`.
    pub async fn reachable(&self, timeout: std::time::Duration) -> Result<(), String> {
        let check = async {
            let client = self.pool.get().await.map_err(|error| error.to_string())?;
            client
                .simple_query("SELECT 1")
                .await
                .map(drop)
                .map_err(|error| error.to_string())
        };
        tokio::time::timeout(timeout, check)
            .await
            .map_err(|_| format!("no answer within {timeout:?}"))?
    }
}

/// Upserts issues of the register as they now stand (the latest change of each wins).
async fn write_quality_issues(
    transaction: &tokio_postgres::Transaction<'_>,
    issues: &[crate::quality::Issue],
) -> anyhow::Result<()> {
    let mut latest: std::collections::BTreeMap<_, &crate::quality::Issue> = Default::default();
    for issue in issues {
        latest.insert((&issue.rule, &issue.record, issue.first_seen), issue);
    }
    let rows: Vec<&crate::quality::Issue> = latest.into_values().collect();
    transaction
        .execute(
            "INSERT INTO goldthread.quality_issue
             SELECT i.rule, i.record->>'allocated_by', i.record->>'id', i.first_seen,
                    i.last_seen, i.resolved_at, i.dimension, i.severity, i.owner, i.system,
                    i.golden_id, i.problem, i.fix
               FROM jsonb_to_recordset($1) AS i(rule text, record jsonb, first_seen timestamptz,
                    last_seen timestamptz, resolved_at timestamptz, dimension text,
                    severity text, owner text, system text, golden_id text, problem text,
                    fix text)
              WHERE NOT EXISTS (SELECT 1 FROM goldthread.erasure e
                                 WHERE (e.source, e.source_id)
                                     = (i.record->>'allocated_by', i.record->>'id'))
             ON CONFLICT (rule, source, source_id, first_seen) DO UPDATE
                SET last_seen = EXCLUDED.last_seen, resolved_at = EXCLUDED.resolved_at,
                    golden_id = EXCLUDED.golden_id, problem = EXCLUDED.problem,
                    owner = EXCLUDED.owner, system = EXCLUDED.system",
            &[&serde_json::to_value(&rows)?],
        )
        .await
        .context("writing goldthread.quality_issue")?;
    Ok(())
}

/// Keeps dead letters (the latest per source and position); one about a record erased
/// meanwhile keeps where and which field, not the row or the reason (which quotes a value).
async fn write_dead_letters(
    transaction: &tokio_postgres::Transaction<'_>,
    dead_letters: &[pipeline::DeadLetter],
) -> anyhow::Result<()> {
    let mut latest: std::collections::BTreeMap<(&str, &str), &pipeline::DeadLetter> =
        Default::default();
    for dead_letter in dead_letters {
        latest.insert((&dead_letter.source, &dead_letter.position), dead_letter);
    }
    let column = |field: fn(&pipeline::DeadLetter) -> Option<String>| -> Vec<Option<String>> {
        // PostgreSQL text holds no NUL.
        latest
            .values()
            .map(|dead_letter| field(dead_letter).map(|text| text.replace('\0', "\u{fffd}")))
            .collect()
    };
    let rejected_at: Vec<chrono::DateTime<chrono::Utc>> = latest
        .values()
        .map(|dead_letter| dead_letter.rejected_at)
        .collect();
    transaction
        .execute(
            "INSERT INTO goldthread.dead_letter
             SELECT d.source, d.position, d.field,
                    CASE WHEN d.erased THEN '[erased]' ELSE d.reason END,
                    CASE WHEN d.erased THEN '[erased]' ELSE d.raw END,
                    d.rejected_at, d.ref_source, d.ref_id
               FROM (SELECT d.*, EXISTS (SELECT 1 FROM goldthread.erasure e
                                          WHERE (e.source, e.source_id) = (d.ref_source, d.ref_id)) AS erased
                       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                   $6::timestamptz[], $7::text[], $8::text[])
                            AS d(source, position, field, reason, raw, rejected_at, ref_source, ref_id)) d
             ON CONFLICT (source, position) DO UPDATE
                SET field = EXCLUDED.field, reason = EXCLUDED.reason, raw = EXCLUDED.raw,
                    rejected_at = EXCLUDED.rejected_at, ref_source = EXCLUDED.ref_source,
                    ref_id = EXCLUDED.ref_id",
            &[
                &column(|d| Some(d.source.clone())),
                &column(|d| Some(d.position.clone())),
                &column(|d| d.field.clone()),
                &column(|d| Some(d.reason.clone())),
                &column(|d| Some(d.raw.clone())),
                &rejected_at,
                &column(|d| d.source_ref.as_ref().map(|r| r.allocated_by.clone())),
                &column(|d| d.source_ref.as_ref().map(|r| r.id.clone())),
            ],
        )
        .await
        .context("writing goldthread.dead_letter")?;
    Ok(())
}

/// What one transaction writes.
#[derive(Debug, Default)]
pub(crate) struct Write<'a> {
    pub audit: Option<&'a crate::AuditEntry>,
    /// An erasure: recorded, and the stored events of its records deleted.
    pub erasure: Option<&'a crate::Erasure>,
    /// The positions consumed (none for a steward action).
    pub positions: Option<&'a Positions>,
    /// Dead letters read back from the dead-letter topic, kept by source and position.
    pub dead_letters: &'a [pipeline::DeadLetter],
    /// Events applied to the hub and not stored yet: taken (and stored) together with the
    /// hub's changes, under its lock, so no stored row reflects an event not stored with it.
    pub unstored: Option<&'a Mutex<Vec<Envelope>>>,
    /// The issue register: its changes are taken with the hub's, and written with them.
    pub quality: Option<&'a Mutex<crate::quality::Register>>,
}

/// What `Store::restore` read besides the events it handed over.
#[derive(Debug)]
pub struct Restored {
    pub events: u64,
    pub verdicts: Vec<StewardVerdict>,
    pub audit: Vec<crate::AuditEntry>,
    pub positions: Positions,
    /// The `seq` of the last source record read.
    pub synced: i64,
}

/// The latest event per source record of a batch, in batch order (one statement may not
/// update a row twice).
fn latest_per_record<'e>(events: &[&'e Envelope]) -> Vec<&'e Envelope> {
    let mut latest = std::collections::HashMap::new();
    for (index, event) in events.iter().enumerate() {
        let key = (
            event.payload.kind().as_str(),
            &event.source_ref.allocated_by,
            &event.source_ref.id,
        );
        latest.insert(key, index);
    }
    let mut indices: Vec<usize> = latest.into_values().collect();
    indices.sort_unstable();
    indices.into_iter().map(|index| events[index]).collect()
}

/// The stored next offset of each partition.
async fn positions_in(client: &impl tokio_postgres::GenericClient) -> anyhow::Result<Positions> {
    let mut positions = Positions::new();
    for row in client
        .query(
            "SELECT topic, partition, next_offset FROM goldthread.consumed",
            &[],
        )
        .await
        .context("reading goldthread.consumed")?
    {
        positions.insert((row.get(0), row.get(1)), row.get(2));
    }
    Ok(positions)
}

/// The erased person records.
async fn erased_in(
    client: &impl tokio_postgres::GenericClient,
) -> anyhow::Result<Vec<pipeline::Reference>> {
    let rows = client
        .query(
            "SELECT source, source_id FROM goldthread.erasure WHERE entity = 'person'",
            &[],
        )
        .await
        .context("reading goldthread.erasure")?;
    Ok(rows
        .iter()
        .map(|row| pipeline::Reference {
            allocated_by: row.get(0),
            id: row.get(1),
        })
        .collect())
}

fn positions_json(positions: &Positions) -> Value {
    Value::Array(
        positions
            .iter()
            .map(|((topic, partition), next)| {
                json!({"topic": topic, "partition": partition, "next_offset": next})
            })
            .collect(),
    )
}

/// Writes the rows of a snapshot: deletes what changed, inserts what is live now. The large
/// tables are filled with binary `COPY` and the keys are passed as typed arrays: PostgreSQL
/// then parses no JSON for them.
async fn write_snapshot(
    transaction: &tokio_postgres::Transaction<'_>,
    snapshot: &Snapshot,
) -> anyhow::Result<()> {
    let records = &snapshot.records;
    let xref = &snapshot.xref;
    let redirects = &snapshot.redirects;
    // The redirect rows replaced: the changed ids' own (an id merged back no longer
    // redirects) and those of every redirect through a changed id.
    let redirect_keys: Vec<(Entity, &str)> = snapshot
        .person_ids
        .iter()
        .map(|id| (Entity::Person, id.as_str()))
        .chain(
            snapshot
                .property_ids
                .iter()
                .map(|id| (Entity::Property, id.as_str())),
        )
        .chain(
            redirects
                .iter()
                .map(|(entity, from, _)| (*entity, from.as_str())),
        )
        .collect();
    let stagings: [(&str, &str, Vec<Vec<&str>>); 4] = [
        (
            "changed_record",
            "entity, source, source_id",
            vec![
                column(records, |(entity, _)| entity.as_str()),
                column(records, |(_, reference)| &reference.allocated_by),
                column(records, |(_, reference)| &reference.id),
            ],
        ),
        (
            "new_xref",
            "entity, source, source_id, golden_id",
            vec![
                column(xref, |(entity, _, _)| entity.as_str()),
                column(xref, |(_, reference, _)| &reference.allocated_by),
                column(xref, |(_, reference, _)| &reference.id),
                column(xref, |(_, _, golden_id)| golden_id),
            ],
        ),
        (
            "changed_redirect",
            "entity, golden_id",
            vec![
                column(&redirect_keys, |(entity, _)| entity.as_str()),
                column(&redirect_keys, |(_, golden_id)| golden_id),
            ],
        ),
        (
            "new_redirect",
            "entity, golden_id, survivor_id",
            vec![
                column(redirects, |(entity, _, _)| entity.as_str()),
                column(redirects, |(_, golden_id, _)| golden_id),
                column(redirects, |(_, _, survivor_id)| survivor_id),
            ],
        ),
    ];
    for (table, names, columns) in &stagings {
        let arrays: Vec<String> = (1..=columns.len())
            .map(|n| format!("${n}::text[]"))
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> = columns
            .iter()
            .map(|column| column as &(dyn ToSql + Sync))
            .collect();
        transaction
            .execute(
                &format!(
                    "CREATE TEMP TABLE {table} ON COMMIT DROP AS
                     SELECT * FROM unnest({}) AS s({names})",
                    arrays.join(", ")
                ),
                &params,
            )
            .await
            .with_context(|| format!("staging {table}"))?;
    }
    transaction
        .batch_execute(WRITE_XREF)
        .await
        .context("writing the cross-reference and its history")?;
    let tenancy_keys = &snapshot.tenancy_keys;
    let vulnerability_keys = &snapshot.vulnerability_keys;
    let deletes: [(&str, &[&(dyn ToSql + Sync)]); 5] = [
        (
            "DELETE FROM goldthread.golden_person WHERE golden_id = ANY($1)",
            &[&snapshot.person_ids],
        ),
        (
            "DELETE FROM goldthread.golden_property WHERE golden_id = ANY($1)",
            &[&snapshot.property_ids],
        ),
        (
            "DELETE FROM goldthread.match_decision
              WHERE (entity = 'person' AND golden_id = ANY($1))
                 OR (entity = 'property' AND golden_id = ANY($2))",
            &[&snapshot.person_ids, &snapshot.property_ids],
        ),
        (
            "DELETE FROM goldthread.tenancy_record t
              USING unnest($1::text[], $2::text[]) AS k(source, tenancy_id)
              WHERE (t.source, t.tenancy_id) = (k.source, k.tenancy_id)",
            &[
                &column(tenancy_keys, |key| &key.allocated_by),
                &column(tenancy_keys, |key| &key.id),
            ],
        ),
        (
            "DELETE FROM goldthread.vulnerability_record v
              USING unnest($1::text[], $2::text[]) AS k(source, vulnerability_id)
              WHERE (v.source, v.vulnerability_id) = (k.source, k.vulnerability_id)",
            &[
                &column(vulnerability_keys, |key| &key.allocated_by),
                &column(vulnerability_keys, |key| &key.id),
            ],
        ),
    ];
    for (sql, params) in deletes {
        transaction.execute(sql, params).await?;
    }
    copy_rows(
        transaction,
        "golden_person",
        "golden_id, title, given_name, middle_name, family_name, date_of_birth, nino, phone, \
         email, postcode, sources, lineage",
        &snapshot.persons,
        |golden| {
            vec![
                Box::new(&golden.golden_id),
                Box::new(&golden.title),
                Box::new(&golden.given_name),
                Box::new(&golden.middle_name),
                Box::new(&golden.family_name),
                Box::new(golden.date_of_birth),
                Box::new(&golden.nino),
                Box::new(&golden.phone),
                Box::new(&golden.email),
                Box::new(&golden.postcode),
                Box::new(Json(&golden.sources)),
                Box::new(Json(&golden.lineage)),
            ]
        },
    )
    .await?;
    copy_rows(
        transaction,
        "golden_property",
        "golden_id, uprn, parent_uprn, parent_golden_id, saon, paon, street, locality, town, \
         postcode, property_type, sources, lineage",
        &snapshot.properties,
        |golden| {
            vec![
                Box::new(&golden.golden_id),
                Box::new(&golden.uprn),
                Box::new(&golden.parent_uprn),
                Box::new(&golden.parent_golden_id),
                Box::new(&golden.saon),
                Box::new(&golden.paon),
                Box::new(&golden.street),
                Box::new(&golden.locality),
                Box::new(&golden.town),
                Box::new(&golden.postcode),
                Box::new(&golden.property_type),
                Box::new(Json(&golden.sources)),
                Box::new(Json(&golden.lineage)),
            ]
        },
    )
    .await?;
    copy_rows(
        transaction,
        "match_decision",
        "entity, golden_id, source_a, source_id_a, source_b, source_id_b, decided_by, \
         probability, explanation",
        &snapshot.decisions,
        |decision| {
            vec![
                Box::new(decision.entity.as_str()),
                Box::new(&decision.golden_id),
                Box::new(&decision.a.allocated_by),
                Box::new(&decision.a.id),
                Box::new(&decision.b.allocated_by),
                Box::new(&decision.b.id),
                Box::new(decision.decided_by),
                Box::new(decision.probability),
                Box::new(&decision.explanation),
            ]
        },
    )
    .await?;
    copy_rows(
        transaction,
        "tenancy_record",
        "source, tenancy_id, property_ref, party_refs, start_date, end_date, tenure",
        &snapshot.tenancies,
        |(reference, tenancy)| {
            vec![
                Box::new(&reference.allocated_by),
                Box::new(&reference.id),
                Box::new(&tenancy.property_ref),
                Box::new(&tenancy.party_refs),
                Box::new(tenancy.start_date),
                Box::new(tenancy.end_date),
                Box::new(&tenancy.tenure),
            ]
        },
    )
    .await?;
    copy_rows(
        transaction,
        "vulnerability_record",
        "source, vulnerability_id, person_ref, code, description, start_date, end_date, \
         review_date",
        &snapshot.vulnerabilities,
        |(reference, vulnerability)| {
            vec![
                Box::new(&reference.allocated_by),
                Box::new(&reference.id),
                Box::new(&vulnerability.person_ref),
                Box::new(&vulnerability.code),
                Box::new(&vulnerability.description),
                Box::new(vulnerability.start_date),
                Box::new(vulnerability.end_date),
                Box::new(vulnerability.review_date),
            ]
        },
    )
    .await?;
    // The review queue and the verdicts are small and written whole.
    transaction
        .batch_execute("TRUNCATE goldthread.review_queue, goldthread.steward_verdict")
        .await?;
    for (table, rows) in [
        ("review_queue", &snapshot.review),
        ("steward_verdict", &snapshot.verdicts),
    ] {
        transaction
            .execute(
                &format!(
                    "INSERT INTO goldthread.{table}
                     SELECT * FROM jsonb_populate_recordset(NULL::goldthread.{table}, $1)"
                ),
                &[rows],
            )
            .await
            .with_context(|| format!("writing goldthread.{table}"))?;
    }
    Ok(())
}

/// One text column of some rows, for a `text[]` parameter.
/// What kind of failure a store error is. A lost or refused connection, a pool timeout, a
/// server shutting down or out of resources, a serialisation failure or a deadlock is
/// `External`: a retry may succeed. Anything else the server rejects (a constraint, a value
/// it cannot take) and any error not from PostgreSQL is goldthread's `Bug`: writing the same
/// rows again would fail the same way.
pub fn error_class(error: &anyhow::Error) -> pipeline::ErrorClass {
    use pipeline::ErrorClass;
    for cause in error.chain() {
        if cause.is::<deadpool_postgres::PoolError>() {
            return ErrorClass::External;
        }
        if let Some(error) = cause.downcast_ref::<tokio_postgres::Error>() {
            let Some(code) = error.code() else {
                return ErrorClass::External; // closed connection, IO, timeout
            };
            // SQLSTATE classes: 08 connection, 40 rollback (serialisation, deadlock),
            // 53 insufficient resources, 57 operator intervention (shutdown), 58 system.
            let class = &code.code()[..2];
            return if ["08", "40", "53", "57", "58"].contains(&class) {
                ErrorClass::External
            } else {
                ErrorClass::Bug
            };
        }
    }
    ErrorClass::Bug
}

fn column<'a, T>(rows: &'a [T], field: impl Fn(&'a T) -> &'a str) -> Vec<&'a str> {
    rows.iter().map(field).collect()
}

/// A row's values for `copy_rows`, in the order of its columns.
type Cells<'a> = Vec<Box<dyn ToSql + Sync + Send + 'a>>;

/// Appends rows to `goldthread.<table>` with binary `COPY`: `cells` gives a row's values in
/// the order of `columns`, whose types are read from the table.
async fn copy_rows<'a, T>(
    transaction: &tokio_postgres::Transaction<'_>,
    table: &str,
    columns: &str,
    rows: &'a [T],
    cells: impl Fn(&'a T) -> Cells<'a>,
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let types: Vec<Type> = transaction
        .prepare(&format!("SELECT {columns} FROM goldthread.{table}"))
        .await
        .with_context(|| format!("writing goldthread.{table}"))?
        .columns()
        .iter()
        .map(|column| column.type_().clone())
        .collect();
    let sink = transaction
        .copy_in(&format!(
            "COPY goldthread.{table} ({columns}) FROM STDIN BINARY"
        ))
        .await
        .with_context(|| format!("writing goldthread.{table}"))?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for row in rows {
        let values = cells(row);
        let values: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|value| &**value as &(dyn ToSql + Sync))
            .collect();
        writer
            .as_mut()
            .write(&values)
            .await
            .with_context(|| format!("writing goldthread.{table}"))?;
    }
    writer
        .finish()
        .await
        .with_context(|| format!("writing goldthread.{table}"))?;
    Ok(())
}

/// A row of `goldthread.match_decision`: a link inside a golden record.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub entity: Entity,
    pub golden_id: String,
    pub a: Reference,
    pub b: Reference,
    pub decided_by: &'static str,
    pub probability: Option<f64>,
    pub explanation: Value,
}

/// The rows a write replaces, from the hub's state and what changed in it: the golden
/// records, decisions, cross-reference, redirects, tenancies and vulnerabilities that changed
/// (ids and keys to delete, rows to insert), and the small tables whole (review queue,
/// steward verdicts).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub person_ids: Vec<String>,
    pub persons: Vec<crate::GoldenPerson>,
    pub property_ids: Vec<String>,
    pub properties: Vec<crate::GoldenProperty>,
    pub decisions: Vec<Decision>,
    /// The records whose xref rows are replaced, and those rows now.
    pub records: Vec<(Entity, Reference)>,
    pub xref: Vec<(Entity, Reference, String)>,
    pub tenancy_keys: Vec<Reference>,
    pub tenancies: Vec<(Reference, Tenancy)>,
    pub vulnerability_keys: Vec<Reference>,
    pub vulnerabilities: Vec<(Reference, Vulnerability)>,
    /// The redirects through a changed id, as they are now.
    pub redirects: Vec<(Entity, String, String)>,
    pub review: Value,
    pub verdicts: Value,
}

impl Snapshot {
    pub fn of(hub: &Hub, changes: &Changes) -> anyhow::Result<Snapshot> {
        // Only ids live now get rows (an absorbed id resolves to its survivor, which has an
        // entry of its own when it changed).
        let persons: Vec<crate::GoldenPerson> = changes
            .persons
            .iter()
            .filter_map(|id| {
                hub.golden_person(id)
                    .filter(|golden| &golden.golden_id == id)
            })
            .collect();
        let properties: Vec<crate::GoldenProperty> = changes
            .properties
            .iter()
            .filter_map(|id| {
                hub.golden_property(id)
                    .filter(|golden| &golden.golden_id == id)
            })
            .collect();
        let live = persons
            .iter()
            .map(|golden| (Entity::Person, &golden.golden_id))
            .chain(
                properties
                    .iter()
                    .map(|golden| (Entity::Property, &golden.golden_id)),
            );
        let mut decisions = Vec::new();
        for (entity, golden_id) in live {
            for link in hub.explain(entity, golden_id).unwrap_or_default() {
                let explanation = match &link.score {
                    Some(score) => serde_json::to_value(score)?,
                    None => json!({"key": link.key}),
                };
                decisions.push(Decision {
                    entity,
                    golden_id: golden_id.clone(),
                    probability: link.score.as_ref().map(|score| score.probability),
                    a: link.a,
                    b: link.b,
                    decided_by: link.decided_by,
                    explanation,
                });
            }
        }
        let mut records = Vec::new();
        let mut xref = Vec::new();
        for (entity, references) in [
            (Entity::Person, &changes.person_records),
            (Entity::Property, &changes.property_records),
        ] {
            for reference in references {
                records.push((entity, reference.clone()));
                xref.extend(
                    hub.golden_ids_of(reference)
                        .into_iter()
                        .filter(|(kind, _)| *kind == entity.as_str())
                        .map(|(_, golden_id)| (entity, reference.clone(), golden_id.to_string())),
                );
            }
        }
        let tenancies = changes
            .tenancies
            .iter()
            .filter_map(|reference| Some((reference.clone(), hub.tenancy(reference)?.clone())))
            .collect();
        let vulnerabilities = changes
            .vulnerabilities
            .iter()
            .filter_map(|reference| {
                Some((reference.clone(), hub.vulnerability(reference)?.clone()))
            })
            .collect();
        let review = hub
            .review_queue()
            .into_iter()
            .map(|item| {
                json!({
                    "entity": item.entity.as_str(),
                    "source_a": item.a.allocated_by, "source_id_a": item.a.id,
                    "golden_id_a": item.golden_a,
                    "source_b": item.b.allocated_by, "source_id_b": item.b.id,
                    "golden_id_b": item.golden_b,
                    "probability": item.score.probability,
                    "explanation": item.score,
                })
            })
            .collect();
        let redirects = hub.redirects_changed(changes);
        let verdicts = hub
            .verdicts()
            .into_iter()
            .map(|verdict| {
                json!({
                    "entity": verdict.entity.as_str(),
                    "source_a": verdict.a.allocated_by, "source_id_a": verdict.a.id,
                    "source_b": verdict.b.allocated_by, "source_id_b": verdict.b.id,
                    "verdict": verdict.verdict,
                })
            })
            .collect();
        Ok(Snapshot {
            person_ids: changes.persons.clone(),
            persons,
            property_ids: changes.properties.clone(),
            properties,
            decisions,
            records,
            xref,
            tenancy_keys: changes.tenancies.clone(),
            tenancies,
            vulnerability_keys: changes.vulnerabilities.clone(),
            vulnerabilities,
            redirects,
            review,
            verdicts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_outside_goldthread_are_retried() {
        let pool_closed =
            anyhow::Error::new(deadpool_postgres::PoolError::Closed).context("writing a batch");
        assert_eq!(error_class(&pool_closed), pipeline::ErrorClass::External);
        let ours = anyhow::anyhow!("a peer's events could not be applied");
        assert_eq!(error_class(&ours), pipeline::ErrorClass::Bug);
    }
}
