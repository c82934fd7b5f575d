//! The batch write: one transaction per consumed batch or steward action, with the positions
//! it reached; retried while PostgreSQL is away.

use std::sync::Mutex;

use super::error::Context;
use pipeline::Envelope;
use pipeline::stage::Positions;
use serde_json::{Value, json};
use tokio_postgres::types::Json;

use super::snapshot::{Snapshot, write_snapshot};
use super::{Error, HISTORY_KINDS, Peers, Result, Store};
use crate::Hub;

/// Appends events to the history, in the order given, each event id once.
const APPEND_SOURCE_EVENTS: &str = "INSERT INTO goldthread.source_event
     SELECT r.event_id, nextval('goldthread.source_record_seq'), r.kind, r.source, r.source_id, r.event
       FROM (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::json[])
                  WITH ORDINALITY AS r(event_id, kind, source, source_id, event, position)
              ORDER BY position) r
     ON CONFLICT (event_id) DO NOTHING";

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

/// Records consumed positions (a JSON array of `{topic, partition, next_offset}`). A position
/// never moves back: in a group of several processes, one whose partition was reassigned may
/// still write a batch that another member has already written past.
const RECORD_POSITIONS: &str = "INSERT INTO goldthread.consumed
     SELECT * FROM jsonb_populate_recordset(NULL::goldthread.consumed, $1)
     ON CONFLICT (topic, partition)
     DO UPDATE SET next_offset = greatest(goldthread.consumed.next_offset, EXCLUDED.next_offset)";

impl Store {
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
        apply: &mut (dyn FnMut(&Peers) -> Result<Vec<&'e Envelope>> + Send),
    ) -> Result<()> {
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
    /// outside goldthread ([`Error::class`]), for up to `retry_for`: the stage waits and
    /// commits nothing meanwhile. Failures are counted and
    /// `store_up` reads 0 until a write succeeds.
    pub(crate) async fn write_with_retry<'e>(
        &self,
        hub: &Mutex<Hub>,
        write: &Write<'_>,
        retry_for: std::time::Duration,
        apply: &mut (dyn FnMut(&Peers) -> Result<Vec<&'e Envelope>> + Send),
    ) -> Result<()> {
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
                    if error.class() != pipeline::ErrorClass::External {
                        return Err(Error::NotRetried(Box::new(error)));
                    }
                    if started.elapsed() >= retry_for {
                        return Err(Error::GaveUp {
                            retry_for,
                            last: Box::new(error),
                        });
                    }
                    tracing::warn!(error = %pipeline::error::chain(&error), retry_in = ?delay, "writing to PostgreSQL failed; retrying");
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
    ) -> Result<()> {
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
}

/// Upserts issues of the register as they now stand (the latest change of each wins).
async fn write_quality_issues(
    transaction: &tokio_postgres::Transaction<'_>,
    issues: &[crate::quality::Issue],
) -> Result<()> {
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
) -> Result<()> {
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
