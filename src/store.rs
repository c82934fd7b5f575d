//! The PostgreSQL store: golden records, cross-reference, tenancies, match decisions, the
//! review queue, KPI snapshots and consumed positions, for BI tools. Migrations are the
//! numbered files in `sql/migrations/`, applied at startup and by `goldthread migrate`.
//!
//! Each consumed batch is written in one transaction together with the positions it reached,
//! before its offsets are committed to Kafka: the batch's events upsert the latest version of
//! their source records (keyed by source reference) and the master data tables are replaced
//! by the hub's state, so a replay of the same events writes the same rows, never duplicates.
//! A restart rebuilds the hub from the stored source records and steward verdicts
//! (`Store::restore`) and consumes on from the stored positions.

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use mdm::{Entity, Hub, StewardVerdict};
use pipeline::Envelope;
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
    (
        3,
        "recovery_and_history",
        include_str!("../sql/migrations/0003_recovery_and_history.sql"),
    ),
    (
        4,
        "erasure",
        include_str!("../sql/migrations/0004_erasure.sql"),
    ),
];

/// Upserts source records (a JSON array of `{kind, source, source_id, event}`, one per key).
const UPSERT_SOURCE_RECORDS: &str = "INSERT INTO goldthread.source_record
     SELECT r.kind, r.source, r.source_id, nextval('goldthread.source_record_seq'), r.event
       FROM jsonb_to_recordset($1) AS r(kind text, source text, source_id text, event jsonb)
     ON CONFLICT (kind, source, source_id)
     DO UPDATE SET seq = EXCLUDED.seq, event = EXCLUDED.event";

/// Closes the cross-reference rows that changed (new xref in `new_xref`) and opens new ones;
/// then records merges (new redirects) and unmerges (redirects gone) from `new_redirect`.
const RECORD_HISTORY: &str = "
    UPDATE goldthread.xref_history h SET valid_to = now()
     WHERE valid_to IS NULL
       AND NOT EXISTS (SELECT 1 FROM new_xref n
                        WHERE (n.entity, n.source, n.source_id, n.golden_id)
                            = (h.entity, h.source, h.source_id, h.golden_id));
    INSERT INTO goldthread.xref_history
    SELECT n.entity, n.source, n.source_id, n.golden_id, now(), NULL FROM new_xref n
     WHERE NOT EXISTS (SELECT 1 FROM goldthread.xref_history h
                        WHERE h.valid_to IS NULL
                          AND (h.entity, h.source, h.source_id) = (n.entity, n.source, n.source_id));
    INSERT INTO goldthread.merge_history
    SELECT now(), n.entity, 'merged', n.golden_id, n.survivor_id FROM new_redirect n
    EXCEPT SELECT now(), r.entity, 'merged', r.golden_id, r.survivor_id FROM goldthread.redirect r;
    INSERT INTO goldthread.merge_history
    SELECT now(), r.entity, 'unmerged', r.golden_id, r.survivor_id FROM goldthread.redirect r
     WHERE NOT EXISTS (SELECT 1 FROM new_redirect n
                        WHERE (n.entity, n.golden_id) = (r.entity, r.golden_id));
    TRUNCATE goldthread.xref, goldthread.redirect;
    INSERT INTO goldthread.xref SELECT * FROM new_xref;
    INSERT INTO goldthread.redirect SELECT * FROM new_redirect;";

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

    /// Writes, in one transaction: the batch's events (latest version per source record),
    /// the hub's master data when it changed, a steward action's audit entry, and the
    /// positions consumed.
    pub async fn write(&self, write: &Write<'_>) -> anyhow::Result<()> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        if !write.events.is_empty() {
            transaction
                .execute(UPSERT_SOURCE_RECORDS, &[&source_records(write.events)?])
                .await
                .context("writing goldthread.source_record")?;
        }
        if let Some(snapshot) = write.snapshot {
            for (table, rows) in [("xref", &snapshot.xref), ("redirect", &snapshot.redirects)] {
                transaction
                    .execute(
                        &format!(
                            "CREATE TEMP TABLE new_{table} ON COMMIT DROP AS
                             SELECT * FROM jsonb_populate_recordset(NULL::goldthread.{table}, $1)"
                        ),
                        &[rows],
                    )
                    .await
                    .with_context(|| format!("staging goldthread.{table}"))?;
            }
            transaction
                .batch_execute(RECORD_HISTORY)
                .await
                .context("recording cross-reference and merge history")?;
            transaction
                .batch_execute(
                    "TRUNCATE goldthread.golden_person, goldthread.golden_property,
                              goldthread.tenancy, goldthread.match_decision,
                              goldthread.review_queue, goldthread.vulnerability,
                              goldthread.steward_verdict",
                )
                .await?;
            for (table, rows) in [
                ("golden_person", &snapshot.persons),
                ("golden_property", &snapshot.properties),
                ("tenancy", &snapshot.tenancies),
                ("match_decision", &snapshot.decisions),
                ("review_queue", &snapshot.review),
                ("vulnerability", &snapshot.vulnerabilities),
                ("steward_verdict", &snapshot.verdicts),
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
                            AND (h.source, h.source_id) = (e.source, e.source_id))
                     DELETE FROM goldthread.source_record r USING erased e
                      WHERE (r.kind, r.source, r.source_id) = (e.entity, e.source, e.source_id)",
                    &[&Value::Array(rows), &who, &reason, &erasure.golden_id],
                )
                .await
                .context("recording the erasure")?;
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
        transaction.commit().await?;
        Ok(())
    }

    /// The person records erased: a restart suppresses them before it applies anything, so
    /// nothing read again brings the person back.
    pub async fn erased(&self) -> anyhow::Result<Vec<pipeline::Reference>> {
        let client = self.pool.get().await?;
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

    /// What a restart needs: every stored source record's latest event, in the order they
    /// were written (handed to `apply` one at a time, so a large store is never all in
    /// memory as JSON), the steward verdicts in force, the audit trail and the positions.
    pub async fn restore(&self, mut apply: impl FnMut(Envelope)) -> anyhow::Result<Restored> {
        use futures_util::TryStreamExt;
        let client = self.pool.get().await?;
        let rows = client
            .query_raw(
                "SELECT event FROM goldthread.source_record ORDER BY seq",
                std::iter::empty::<&str>(),
            )
            .await
            .context("reading goldthread.source_record")?;
        let mut rows = std::pin::pin!(rows);
        let mut events = 0u64;
        while let Some(row) = rows.try_next().await? {
            let event: Value = row.get(0);
            let envelope: Envelope = serde_json::from_value(event)
                .context("goldthread.source_record: a stored event no longer decodes")?;
            apply(envelope);
            events += 1;
        }
        let verdicts = client
            .query(
                "SELECT coalesce(jsonb_agg(jsonb_build_object(
                     'entity', entity,
                     'a', jsonb_build_object('allocated_by', source_a, 'id', source_id_a),
                     'b', jsonb_build_object('allocated_by', source_b, 'id', source_id_b),
                     'verdict', verdict)), '[]') FROM goldthread.steward_verdict",
                &[],
            )
            .await?;
        let audit = client
            .query(
                "SELECT coalesce(jsonb_agg(to_jsonb(a) - 'id' ORDER BY id), '[]')
                   FROM goldthread.steward_audit a",
                &[],
            )
            .await?;
        let mut positions = Positions::new();
        for row in client
            .query(
                "SELECT topic, partition, next_offset FROM goldthread.consumed",
                &[],
            )
            .await?
        {
            positions.insert((row.get(0), row.get(1)), row.get(2));
        }
        Ok(Restored {
            events,
            verdicts: serde_json::from_value(verdicts[0].get(0))
                .context("goldthread.steward_verdict")?,
            audit: serde_json::from_value(audit[0].get(0)).context("goldthread.steward_audit")?,
            positions,
        })
    }

    /// Stores a KPI table: one snapshot per day and period (the day's last computation).
    pub async fn write_kpis(&self, table: &KpiTable) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        let now = chrono::Utc::now();
        let rows: Vec<Value> = table
            .rows
            .iter()
            .map(|row| {
                json!({
                    "snapshot_date": now.date_naive(),
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
                 ON CONFLICT (snapshot_date, period_from, period_to, kpi) DO UPDATE
                 SET value = EXCLUDED.value, numerator = EXCLUDED.numerator,
                     denominator = EXCLUDED.denominator, computed_at = EXCLUDED.computed_at",
                &[&Value::Array(rows)],
            )
            .await?;
        Ok(())
    }
}

/// What one transaction writes.
#[derive(Debug, Default)]
pub struct Write<'a> {
    pub events: &'a [Envelope],
    pub snapshot: Option<&'a Snapshot>,
    pub audit: Option<&'a crate::http::AuditEntry>,
    /// An erasure: recorded, and the stored events of its records deleted.
    pub erasure: Option<&'a mdm::Erasure>,
    /// The positions consumed (none for a steward action).
    pub positions: Option<&'a Positions>,
}

/// What `Store::restore` read besides the events it handed over.
#[derive(Debug)]
pub struct Restored {
    pub events: u64,
    pub verdicts: Vec<StewardVerdict>,
    pub audit: Vec<crate::http::AuditEntry>,
    pub positions: Positions,
}

/// The latest event per source record of a batch, as rows for `UPSERT_SOURCE_RECORDS` (one
/// statement may not update a row twice).
fn source_records(events: &[Envelope]) -> anyhow::Result<Value> {
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
    let rows = indices
        .into_iter()
        .map(|index| {
            let event = &events[index];
            Ok(json!({
                "kind": event.payload.kind().as_str(),
                "source": event.source_ref.allocated_by,
                "source_id": event.source_ref.id,
                "event": serde_json::to_value(event)?,
            }))
        })
        .collect::<anyhow::Result<Vec<Value>>>()?;
    Ok(Value::Array(rows))
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
    pub vulnerabilities: Value,
    pub redirects: Value,
    pub verdicts: Value,
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
            // Dates only: whether one is active is the view's, against today.
            vulnerabilities: hub
                .vulnerabilities(chrono::NaiveDate::MIN)
                .into_iter()
                .map(|status| {
                    json!({
                        "source": status.vulnerability.allocated_by,
                        "vulnerability_id": status.vulnerability.id,
                        "golden_person_id": status.golden_person_id, "code": status.code,
                        "description": status.description, "start_date": status.start_date,
                        "end_date": status.end_date, "review_date": status.review_date,
                    })
                })
                .collect(),
            redirects: hub
                .redirects()
                .into_iter()
                .map(|(entity, golden_id, survivor_id)| {
                    json!({"entity": entity.as_str(), "golden_id": golden_id, "survivor_id": survivor_id})
                })
                .collect(),
            verdicts: hub
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
                .collect(),
        })
    }
}
