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
//!
//! Here: connecting, migrating, the reads and the restore; `write`: the batch write and
//! its retries; `snapshot`: the rows a write replaces; `kpis`: the KPI tables.

mod error;
mod kpis;
mod snapshot;
mod write;

pub use error::{BoxError, Error, Result};

pub use kpis::KpiRows;
pub use snapshot::{Decision, Snapshot};
pub(crate) use write::Write;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use error::Context;
use std::sync::Mutex;

use crate::{Changes, StewardVerdict};
use pipeline::Envelope;
use pipeline::stage::Positions;
use tokio_postgres::types::Json;

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
    pub async fn connect(url: &str, settings: &PostgresConfig) -> Result<Store> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|error| {
            Error::Config(format!(
                "postgres.url: not a PostgreSQL connection URL: {error}"
            ))
        })?;
        // The password stays out of config files: taken from PGPASSWORD, as libpq does.
        if config.get_password().is_none()
            && let Ok(password) = std::env::var("PGPASSWORD")
        {
            config.password(password);
        }
        let manager = Manager::from_config(
            config,
            pipeline::postgres::tls(settings.tls_ca_file.as_deref(), "postgres.tls_ca_file")
                .map_err(Error::Config)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.unwrap_or(4))
            .build()
            .map_err(|error| Error::Config(format!("building the PostgreSQL pool: {error}")))?;
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
    pub async fn positions(&self) -> Result<Positions> {
        positions_in(&**self.pool.get().await?).await
    }

    /// Takes the write lock and reads what the other processes committed since this one last
    /// synced. Called at the start of a coordinated write's transaction.
    async fn peers(&self, transaction: &deadpool_postgres::Transaction<'_>) -> Result<Peers> {
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
            let Json(event) = row.try_get(0).map_err(error::undecodable(
                "goldthread.source_record: a stored event no longer decodes",
            ))?;
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
    pub async fn migrate(&self) -> Result<Vec<i32>> {
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

    /// The issue register as stored (open and resolved), for a restart.
    pub async fn quality_issues(&self) -> Result<Vec<crate::quality::Issue>> {
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
    pub async fn erased(&self) -> Result<Vec<pipeline::Reference>> {
        erased_in(&**self.pool.get().await?).await
    }

    /// The dead letters kept about `records`.
    pub async fn dead_letters_of(
        &self,
        records: &[pipeline::Reference],
    ) -> Result<Vec<pipeline::DeadLetter>> {
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
    pub async fn erased_at(&self, subject: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
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
    pub async fn restore(&self, mut apply: impl FnMut(Envelope) -> Result<()>) -> Result<Restored> {
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
            let Json(envelope) = row.try_get(0).map_err(error::undecodable(
                "goldthread.source_record: a stored event no longer decodes",
            ))?;
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
    pub async fn source_position(&self, source: &str) -> Result<Option<String>> {
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
    pub async fn set_source_position(&self, source: &str, position: &str) -> Result<()> {
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

/// The stored next offset of each partition.
async fn positions_in(client: &impl tokio_postgres::GenericClient) -> Result<Positions> {
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
) -> Result<Vec<pipeline::Reference>> {
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
