//! The one owner of master data while goldthread runs: the hub, the store (when PostgreSQL
//! is configured), the audit trail and the events applied but not stored yet. Everything
//! that changes master data goes through it: a consumed batch ([`Master::apply_batch`]), a
//! steward action or an erasure ([`Master::act`], one transaction), a restart
//! ([`Master::restore`]). Each answers with what the analytics must learn ([`Learned`]); the
//! caller tells them, after the write. Nothing here calls back into its caller.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::NaiveDate;

use pipeline::stage::{Batch, Positions};
use pipeline::{Envelope, Reference};

use crate::quality::{Register, Standard, Weekly};
use crate::store::{self, Peers, Restored, Store, Write};
use crate::{AuditEntry, Entity, Erasure, Hub, StewardVerdict, Verdict};

/// What the analytics must learn from a change to master data.
#[derive(Debug, Default)]
pub struct Learned {
    /// Events applied to the hub besides a batch's own (whose `BatchApplied::kept` says
    /// which were applied): what the group's other processes stored before it, in order,
    /// none about an erased person.
    pub events: Vec<Envelope>,
    /// The vulnerability records of people erased: the analytics forget them.
    pub forgotten: Vec<Reference>,
}

impl Learned {
    /// Each event once (a retried write reads its peers' events again).
    fn dedup(&mut self) {
        let mut seen = std::collections::HashSet::new();
        self.events
            .retain(|event| seen.insert(event.event_id.clone()));
    }
}

/// A consumed batch, applied.
#[derive(Debug)]
pub struct BatchApplied {
    /// Which of the batch's events were applied (the others are about erased people).
    pub kept: Vec<bool>,
    pub learned: Learned,
    /// The batch still has to be stored: [`Master::store_applied`], which may run while the
    /// next batch is applied. False when it is stored (or there is no store).
    pub unstored: bool,
}

/// A steward's or an administrator's action on master data.
#[derive(Debug, Clone)]
pub enum Action {
    /// A verdict on two records: they are, or are not, one golden record (or withdraw one).
    Decide {
        entity: Entity,
        a: Reference,
        b: Reference,
        verdict: Verdict,
    },
    /// A record leaves its golden record for one of its own.
    Split { entity: Entity, record: Reference },
    /// A person (a golden id, or a source record as `system:id`) is put beyond use.
    Erase { subject: String },
}

impl Action {
    /// The audit trail's name for it.
    fn name(&self) -> String {
        match self {
            Action::Decide { verdict, .. } => format!("{verdict:?}").to_lowercase(),
            Action::Split { .. } => "split".into(),
            Action::Erase { .. } => "erase".into(),
        }
    }
}

/// Who acts, as the audit trail records them.
#[derive(Debug, Clone)]
pub struct Actor {
    pub who: String,
    pub role: String,
}

/// A steward action carried out.
#[derive(Debug)]
pub struct Acted {
    pub entry: AuditEntry,
    /// For an erasure: the records whose events and dead letters the topics must drop.
    pub erasure: Option<Erasure>,
    pub learned: Learned,
}

/// Why a steward action was not carried out, or not stored.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("{0}")]
    Refused(#[from] crate::Error),
    /// What the group's other processes wrote could not be read first: nothing was done.
    #[error("PostgreSQL could not be read, so nothing was done")]
    Unavailable(#[source] store::Error),
    /// Applied and audited in memory; the store did not take it.
    #[error("applied and audited in memory, but PostgreSQL could not be updated")]
    NotStored(#[source] store::Error),
}

pub struct Master {
    hub: Mutex<Hub>,
    store: Option<Store>,
    /// Steward actions, oldest first.
    audit: Mutex<Vec<AuditEntry>>,
    /// Events applied to the hub and not stored yet (when this process alone writes to the
    /// store): a write takes them together with the hub's changes, under the hub's lock, so
    /// the rows it stores never reflect an event it does not store.
    unstored: Mutex<Vec<Envelope>>,
    /// How long a batch's write is retried (`postgres.retry_for`).
    retry_for: Duration,
    /// The recording standard's issue register, kept as events are applied.
    quality: Mutex<Register>,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master").finish_non_exhaustive()
    }
}

impl Master {
    /// Master data in `hub`, stored in `store` when there is one (its writes retried for
    /// `retry_for`).
    pub fn new(mut hub: Hub, store: Option<Store>, retry_for: Duration) -> Master {
        if store.is_some() {
            hub.track_changes();
        }
        Master {
            hub: Mutex::new(hub),
            store,
            audit: Mutex::new(Vec::new()),
            unstored: Mutex::new(Vec::new()),
            retry_for,
            quality: Mutex::new(Register::default()),
        }
    }

    /// Keeps the issue register of `standard` as events are applied.
    pub fn with_quality(self, standard: Standard) -> Master {
        let mut register = Register::new(standard);
        if self.store.is_some() {
            register.track_changes();
        }
        *self.quality.lock().expect("quality lock") = register;
        self
    }

    /// Writes what the register changed since the last write (the golden-record rules'
    /// issues a report evaluated, which no batch has written yet). A store the group shares
    /// takes them with the next batch instead: a write there applies the peers' events
    /// first, which only a batch's write does.
    pub async fn store_quality(&self) -> store::Result<()> {
        match &self.store {
            Some(store) if !store.is_coordinated() => self.write_unstored(store, None, &[]).await,
            _ => Ok(()),
        }
    }

    /// The weekly data quality report for the ISO week holding `day` (the week of the latest
    /// issue seen when none is given), the rules about golden records evaluated now.
    pub fn quality_report(&self, day: Option<NaiveDate>, weeks: u32) -> Weekly {
        let hub = self.hub.lock().expect("hub lock");
        let mut register = self.quality.lock().expect("quality lock");
        register.reconcile(&hub, chrono::Utc::now());
        let day = day.unwrap_or_else(|| {
            register
                .latest()
                .unwrap_or_else(|| chrono::Utc::now().date_naive())
        });
        register.weekly(&hub, day, weeks)
    }

    /// Open issues per rule of the standard (the rules about golden records as last
    /// evaluated).
    pub fn quality_open_per_rule(&self) -> std::collections::BTreeMap<String, usize> {
        self.quality.lock().expect("quality lock").open_per_rule()
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Makes this process one of several writing to the store (see [`Store::coordinate`]).
    pub fn coordinate(&mut self, synced: i64) {
        if let Some(store) = &mut self.store {
            store.coordinate(synced);
        }
    }

    /// The hub, to read. Changes go through `Master`'s operations.
    pub fn hub(&self) -> HubRef<'_> {
        HubRef(self.hub.lock().expect("hub lock"))
    }

    /// The steward actions, oldest first.
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.audit.lock().expect("audit lock").clone()
    }

    /// Rebuilds the hub from what the store holds: erasures first, then every source record's
    /// latest event and every version of the repairs records (handed to `learn` in chunks,
    /// for the analytics), then the steward verdicts in force and the audit trail.
    pub async fn restore(
        &mut self,
        mut learn: impl FnMut(&[Envelope]) -> Result<(), store::BoxError>,
    ) -> store::Result<Restored> {
        const CHUNK: usize = 5000;
        let store = self.store.as_ref().expect("restore needs a store");
        let hub = self.hub.get_mut().expect("hub lock");
        let quality = self.quality.get_mut().expect("quality lock");
        hub.suppress(store.erased().await?);
        // The issues as stored first: those still failing keep when they were first seen.
        quality.restore(store.quality_issues().await?);
        let mut chunk = Vec::with_capacity(CHUNK);
        let restored = store
            .restore(|event| {
                if hub.apply(&event) != crate::Applied::Erased {
                    quality.apply(&event);
                }
                chunk.push(event);
                if chunk.len() == CHUNK {
                    learn(&chunk).map_err(learning)?;
                    chunk.clear();
                }
                Ok(())
            })
            .await?;
        learn(&chunk).map_err(learning)?;
        let mut refused = 0;
        for verdict in &restored.verdicts {
            if let Err(reason) =
                hub.steward(verdict.entity, &verdict.a, &verdict.b, verdict.verdict)
            {
                refused += 1;
                tracing::warn!(%reason, "a stored steward verdict could not be applied");
            }
        }
        // The store already holds all of this: the next write has only new changes to make.
        hub.take_changes();
        quality.take_changes();
        *self.audit.get_mut().expect("audit lock") = restored.audit.clone();
        tracing::info!(
            records = restored.events,
            verdicts = restored.verdicts.len() - refused,
            refused,
            "state restored from PostgreSQL"
        );
        Ok(restored)
    }

    /// Applies a consumed batch. Without a store it is done. With a store the group shares,
    /// it is applied inside the transaction that stores it, after what the group's other
    /// processes wrote, and stored when this returns. With a store only this process
    /// writes, it is applied now and stored by [`Master::store_applied`].
    pub async fn apply_batch(&self, batch: &Batch) -> store::Result<BatchApplied> {
        match &self.store {
            None => Ok(BatchApplied {
                kept: self.apply(&batch.events, false),
                learned: Learned::default(),
                unstored: false,
            }),
            Some(store) if store.is_coordinated() => self.write_coordinated(store, batch).await,
            Some(_) => {
                // Nobody else writes to the store, so applying needs nothing from it. The
                // write takes the hub's changes when it starts, with the events that made
                // them: this batch's, and any of the next batch's applied by then. It stores
                // this batch's positions only: the next batch's events are applied again
                // after a crash, harmlessly.
                Ok(BatchApplied {
                    kept: self.apply(&batch.events, true),
                    learned: Learned::default(),
                    unstored: true,
                })
            }
        }
    }

    /// Stores a batch [`Master::apply_batch`] applied and left unstored: the events applied
    /// since the last write, the rows they changed and the batch's positions, in one
    /// transaction, retried while PostgreSQL is unavailable (`postgres.retry_for`).
    pub async fn store_applied(
        &self,
        positions: &Positions,
        dead_letters: &[pipeline::DeadLetter],
    ) -> store::Result<()> {
        let store = self.store.as_ref().expect("a store");
        self.write_unstored(store, Some(positions), dead_letters)
            .await
    }

    /// Writes the events applied and not stored, what they changed, the register's
    /// changes and `positions` (a store only this process writes: no peers to apply).
    async fn write_unstored(
        &self,
        store: &Store,
        positions: Option<&Positions>,
        dead_letters: &[pipeline::DeadLetter],
    ) -> store::Result<()> {
        let write = Write {
            positions,
            dead_letters,
            unstored: Some(&self.unstored),
            quality: Some(&self.quality),
            ..Default::default()
        };
        let mut nothing_more = |_: &Peers| Ok(Vec::new());
        store
            .write_with_retry(&self.hub, &write, self.retry_for, &mut nothing_more)
            .await
    }

    /// A steward action: applied to the hub, audited and, with a store, written with the
    /// rows it changed (and the events behind any change not stored yet) in one transaction.
    /// An erasure needs the store: in memory only, a restart would serve the person again.
    pub async fn act(
        &self,
        actor: Actor,
        action: Action,
        reason: String,
    ) -> Result<Acted, ActError> {
        if reason.trim().is_empty() {
            return Err(crate::Error::BadInput("`reason`: say why (it is audited)".into()).into());
        }
        if matches!(action, Action::Erase { .. }) && self.store.is_none() {
            return Err(crate::Error::Conflict(
                "erasure needs the PostgreSQL store (postgres.url): without it a restart would serve the person again".into(),
            )
            .into());
        }
        let mut learned = Learned::default();
        // In a group sharing the store, what the others wrote is applied first: the action
        // may name a record only they have read.
        if let Some(store) = self.store.as_ref().filter(|store| store.is_coordinated()) {
            let mut peers_only = |peers: &Peers| {
                self.apply_peers(peers, &[], &mut learned)?;
                Ok(Vec::new())
            };
            store
                .write(&self.hub, &Write::default(), &mut peers_only)
                .await
                .map_err(ActError::Unavailable)?;
        }
        let (entity, records, affected, erasure) = {
            let mut hub = self.hub.lock().expect("hub lock");
            match &action {
                Action::Decide {
                    entity,
                    a,
                    b,
                    verdict,
                } => {
                    let affected = hub.steward(*entity, a, b, *verdict)?;
                    (*entity, vec![a.clone(), b.clone()], affected, None)
                }
                Action::Split { entity, record } => {
                    let affected = hub.split(*entity, record)?;
                    (*entity, vec![record.clone()], affected, None)
                }
                Action::Erase { subject } => {
                    let golden_id = hub.person_subject(subject)?;
                    let erasure = hub.erase(&golden_id)?;
                    self.forget_quality(&erasure);
                    let (records, affected) =
                        (erasure.records.clone(), vec![erasure.golden_id.clone()]);
                    (Entity::Person, records, affected, Some(erasure))
                }
            }
        };
        let entry = AuditEntry {
            at: chrono::Utc::now(),
            who: actor.who,
            role: actor.role,
            action: action.name(),
            entity,
            records,
            reason,
            affected,
        };
        tracing::info!(who = %entry.who, action = %entry.action, "steward action");
        self.audit.lock().expect("audit lock").push(entry.clone());
        // With PostgreSQL, BI sees the change now, not at the next batch.
        if let Some(store) = &self.store {
            // It takes the hub's changes, so it stores the events behind them too (any the
            // stage applied and has not stored yet).
            let write = Write {
                audit: Some(&entry),
                erasure: erasure.as_ref(),
                unstored: Some(&self.unstored),
                quality: Some(&self.quality),
                ..Default::default()
            };
            let mut peers_only = |peers: &Peers| {
                self.apply_peers(peers, &entry.records, &mut learned)?;
                Ok(Vec::new())
            };
            store
                .write(&self.hub, &write, &mut peers_only)
                .await
                .map_err(ActError::NotStored)?;
        }
        if let Some(erasure) = &erasure {
            learned
                .forgotten
                .extend(erasure.vulnerabilities.iter().cloned());
        }
        learned.dedup();
        Ok(Acted {
            entry,
            erasure,
            learned,
        })
    }

    /// The issue register forgets an erased person's records.
    fn forget_quality(&self, erasure: &Erasure) {
        let records: Vec<Reference> = erasure
            .records
            .iter()
            .chain(&erasure.vulnerabilities)
            .cloned()
            .collect();
        self.quality.lock().expect("quality lock").forget(&records);
    }

    /// Applies events to the hub; returns which were kept (events about erased people are
    /// ignored). With `unstored`, the kept events also wait for the next store write, queued
    /// under the hub's lock so that write takes them with their changes.
    fn apply(&self, events: &[Envelope], unstored: bool) -> Vec<bool> {
        let mut hub = self.hub.lock().expect("hub lock");
        let kept: Vec<bool> = events
            .iter()
            .map(|event| hub.apply(event) != crate::Applied::Erased)
            .collect();
        let applied = || {
            events
                .iter()
                .zip(&kept)
                .filter(|(_, kept)| **kept)
                .map(|(event, _)| event)
        };
        if unstored {
            let mut waiting = self.unstored.lock().expect("unstored lock");
            waiting.extend(applied().cloned());
        }
        let mut quality = self.quality.lock().expect("quality lock");
        for event in applied() {
            quality.apply(event);
        }
        drop(quality);
        let counts = hub.counts();
        use pipeline::metrics as names;
        metrics::gauge!(names::MDM_XREF_ENTRIES, "entity" => "person")
            .set(counts.person_records as f64);
        metrics::gauge!(names::MDM_XREF_ENTRIES, "entity" => "property")
            .set(counts.property_records as f64);
        kept
    }

    /// Applies a batch inside the PostgreSQL transaction that stores it (a store the group
    /// shares). The stage commits the batch's offsets to Kafka only after this returns. The
    /// batch is applied after what the group's other processes wrote, and without the
    /// events another member already wrote (it held the partition before a rebalance): a
    /// retry after a failed write applies only the peers again.
    async fn write_coordinated(&self, store: &Store, batch: &Batch) -> store::Result<BatchApplied> {
        let mut applied: Option<Vec<bool>> = None;
        let mut learned = Learned::default();
        let mut stored_events = |peers: &Peers| -> store::Result<Vec<&Envelope>> {
            self.apply_peers(peers, &[], &mut learned)?;
            let fresh: Vec<bool> = batch
                .origins
                .iter()
                .map(|origin| {
                    let key = (origin.topic.clone(), origin.partition);
                    origin.offset >= peers.written.get(&key).copied().unwrap_or(0)
                })
                .collect();
            let kept = match &applied {
                Some(kept) => kept.clone(),
                // Usually nothing is fenced: the batch is applied as it is.
                None if fresh.iter().all(|&fresh| fresh) => {
                    let kept = self.apply(&batch.events, false);
                    applied = Some(kept.clone());
                    kept
                }
                None => {
                    let fresh_events: Vec<Envelope> = batch
                        .events
                        .iter()
                        .zip(&fresh)
                        .filter(|(_, fresh)| **fresh)
                        .map(|(event, _)| event.clone())
                        .collect();
                    let mut kept_fresh = self.apply(&fresh_events, false).into_iter();
                    let kept: Vec<bool> = fresh
                        .iter()
                        .map(|&fresh| fresh && kept_fresh.next().unwrap_or(false))
                        .collect();
                    applied = Some(kept.clone());
                    kept
                }
            };
            Ok(batch
                .events
                .iter()
                .zip(&kept)
                .filter(|(_, kept)| **kept)
                .map(|(event, _)| event)
                .collect())
        };
        let write = Write {
            positions: Some(&batch.consumed),
            dead_letters: &batch.kept_dead_letters,
            quality: Some(&self.quality),
            ..Default::default()
        };
        store
            .write_with_retry(&self.hub, &write, self.retry_for, &mut stored_events)
            .await?;
        learned.dedup();
        Ok(BatchApplied {
            kept: applied.unwrap_or_default(),
            learned,
            unstored: false,
        })
    }

    /// Applies what the group's other processes committed (nothing unless the store is
    /// coordinated): their records' latest events, their erasures, and the steward verdicts
    /// in force, except on pairs with a record in `acting_on` (the steward action being
    /// written, which the store does not hold yet).
    fn apply_peers(
        &self,
        peers: &Peers,
        acting_on: &[Reference],
        learned: &mut Learned,
    ) -> store::Result<()> {
        if !peers.events.is_empty() {
            let kept = self.apply(&peers.events, false);
            let applied = peers.events.iter().zip(kept).filter(|(_, kept)| *kept);
            learned
                .events
                .extend(applied.map(|(event, _)| event.clone()));
        }
        let mut hub = self.hub.lock().expect("hub lock");
        for reference in &peers.erased {
            if hub.is_erased(reference) {
                continue;
            }
            let subject = format!("{}:{}", reference.allocated_by, reference.id);
            match hub.person_subject(&subject) {
                Ok(golden_id) => {
                    let erasure = hub.erase(&golden_id)?;
                    self.forget_quality(&erasure);
                    learned.forgotten.extend(erasure.vulnerabilities);
                }
                Err(_) => hub.suppress([reference.clone()]),
            }
        }
        if let Some(stored) = &peers.verdicts {
            let touches = |verdict: &StewardVerdict| {
                acting_on.contains(&verdict.a) || acting_on.contains(&verdict.b)
            };
            let held = hub.verdicts();
            let mut changes: Vec<StewardVerdict> = stored
                .iter()
                .filter(|verdict| !held.contains(verdict))
                .cloned()
                .collect();
            changes.extend(held.iter().filter(|verdict| !stored.contains(verdict)).map(
                |verdict| StewardVerdict {
                    verdict: Verdict::Withdraw,
                    ..verdict.clone()
                },
            ));
            for verdict in changes.iter().filter(|verdict| !touches(verdict)) {
                if let Err(reason) =
                    hub.steward(verdict.entity, &verdict.a, &verdict.b, verdict.verdict)
                {
                    tracing::warn!(%reason, "another process's steward verdict could not be applied");
                }
            }
        }
        Ok(())
    }
}

/// What `Master::restore`'s `learn` failed with.
fn learning(source: store::BoxError) -> store::Error {
    store::Error::Caller {
        doing: "handing the restored events on",
        source,
    }
}

/// The hub, read-only, while the guard is held.
pub struct HubRef<'a>(MutexGuard<'a, Hub>);

impl std::fmt::Debug for HubRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubRef").finish_non_exhaustive()
    }
}

impl std::ops::Deref for HubRef<'_> {
    type Target = Hub;
    fn deref(&self) -> &Hub {
        &self.0
    }
}
