//! The PostgreSQL store: golden records, cross-reference, tenancies, match decisions, the
//! review queue, KPI snapshots and consumed positions, for BI tools. Migrations are the
//! numbered files in `sql/migrations/`, applied at startup and by `goldthread migrate`.
//!
//! Each consumed batch is written in one transaction together with the positions it reached,
//! before its offsets are committed to Kafka: the tables are replaced by the hub's state, so a
//! replay of the same events writes the same rows, never duplicates.

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use mdm::{Entity, Hub};
use pipeline::stage::Positions;
use serde_json::{Value, json};
use sql::KpiTable;
use tokio_postgres::NoTls;

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "golden_records",
        include_str!("../sql/migrations/0001_golden_records.sql"),
    ),
    (
        2,
        "steward_audit",
        include_str!("../sql/migrations/0002_steward_audit.sql"),
    ),
];

/// Records consumed positions (a JSON array of `{topic, partition, next_offset}`).
const RECORD_POSITIONS: &str = "INSERT INTO goldthread.consumed
     SELECT * FROM jsonb_populate_recordset(NULL::goldthread.consumed, $1)
     ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset";

/// `[postgres]`: where golden records and KPIs land for BI.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// A PostgreSQL URL (`postgres://user@host:5432/db`); unset keeps everything in memory.
    /// `--postgres` overrides. Without a password in the URL, `PGPASSWORD` is used.
    pub url: Option<String>,
    /// Connections in the pool.
    pub pool_size: Option<usize>,
}

pub struct Store {
    pool: Pool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not printed.
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    pub async fn connect(url: &str, pool_size: Option<usize>) -> anyhow::Result<Store> {
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
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.unwrap_or(4))
            .build()
            .context("building the PostgreSQL pool")?;
        // Fail now, with the server's reason, rather than at the first batch.
        drop(
            pool.get()
                .await
                .context("connecting to PostgreSQL (postgres.url)")?,
        );
        Ok(Store { pool })
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

    /// Writes the hub's master data and the positions consumed, in one transaction.
    pub async fn write(&self, snapshot: &Snapshot, positions: &Positions) -> anyhow::Result<()> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        transaction
            .batch_execute(
                "TRUNCATE goldthread.golden_person, goldthread.golden_property, goldthread.xref,
                          goldthread.tenancy, goldthread.match_decision, goldthread.review_queue",
            )
            .await?;
        for (table, rows) in [
            ("golden_person", &snapshot.persons),
            ("golden_property", &snapshot.properties),
            ("xref", &snapshot.xref),
            ("tenancy", &snapshot.tenancies),
            ("match_decision", &snapshot.decisions),
            ("review_queue", &snapshot.review),
        ] {
            // One round trip per table: the rows as a JSON array, typed by the table.
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
        transaction
            .execute(RECORD_POSITIONS, &[&positions_json(positions)])
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Records positions alone, for a batch with no master data in it.
    pub async fn write_positions(&self, positions: &Positions) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(RECORD_POSITIONS, &[&positions_json(positions)])
            .await?;
        Ok(())
    }

    /// Appends a steward action to the audit trail.
    pub async fn write_audit(&self, entry: &crate::http::AuditEntry) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO goldthread.steward_audit
                     (at, who, role, action, entity, records, reason, affected)
                 SELECT at, who, role, action, entity, records, reason, affected
                   FROM jsonb_to_record($1) AS entry(at timestamptz, who text, role text,
                        action text, entity text, records jsonb, reason text, affected jsonb)",
                &[&serde_json::to_value(entry)?],
            )
            .await?;
        Ok(())
    }

    /// Stores a KPI table (replacing a snapshot of the same period).
    pub async fn write_kpis(&self, table: &KpiTable) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        let now = chrono::Utc::now();
        let rows: Vec<Value> = table
            .rows
            .iter()
            .map(|row| {
                json!({
                    "period_from": table.from, "period_to": table.to, "kpi": row.kpi,
                    "value": row.value, "numerator": row.numerator,
                    "denominator": row.denominator, "computed_at": now,
                })
            })
            .collect();
        client
            .execute(
                "INSERT INTO goldthread.kpi_snapshot
                 SELECT * FROM jsonb_populate_recordset(NULL::goldthread.kpi_snapshot, $1)
                 ON CONFLICT (period_from, period_to, kpi) DO UPDATE
                 SET value = EXCLUDED.value, numerator = EXCLUDED.numerator,
                     denominator = EXCLUDED.denominator, computed_at = EXCLUDED.computed_at",
                &[&Value::Array(rows)],
            )
            .await?;
        Ok(())
    }
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

/// The hub's master data as rows for the store's tables (JSON arrays keyed by column).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub persons: Value,
    pub properties: Value,
    pub xref: Value,
    pub tenancies: Value,
    pub decisions: Value,
    pub review: Value,
}

impl Snapshot {
    pub fn of(hub: &Hub) -> anyhow::Result<Snapshot> {
        let tenancies = hub
            .tenancies()
            .into_iter()
            .map(|tenancy| {
                json!({
                    "source": tenancy.tenancy.allocated_by, "tenancy_id": tenancy.tenancy.id,
                    "golden_property_id": tenancy.golden_property_id,
                    "golden_person_ids": tenancy.golden_person_ids,
                    "start_date": tenancy.start_date, "end_date": tenancy.end_date,
                    "tenure": tenancy.tenure,
                })
            })
            .collect();
        let mut decisions = Vec::new();
        for (entity, ids) in [
            (Entity::Person, hub.golden_person_ids()),
            (Entity::Property, hub.golden_property_ids()),
        ] {
            for golden_id in ids {
                for link in hub.explain(entity, &golden_id).unwrap_or_default() {
                    decisions.push(json!({
                        "entity": entity.as_str(), "golden_id": golden_id,
                        "source_a": link.a.allocated_by, "source_id_a": link.a.id,
                        "source_b": link.b.allocated_by, "source_id_b": link.b.id,
                        "decided_by": link.decided_by,
                        "probability": link.score.as_ref().map(|score| score.probability),
                        "explanation": link.score.as_ref().map_or_else(
                            || json!({"key": link.key}),
                            |score| serde_json::to_value(score).unwrap_or(Value::Null),
                        ),
                    }));
                }
            }
        }
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
        Ok(Snapshot {
            persons: serde_json::to_value(hub.golden_persons())?,
            properties: serde_json::to_value(hub.golden_properties())?,
            xref: serde_json::to_value(hub.xref())?,
            tenancies: Value::Array(tenancies),
            decisions: Value::Array(decisions),
            review: Value::Array(review),
        })
    }
}
