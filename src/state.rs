//! What a running `goldthread run` shares between its stage, its sources and its HTTP API:
//! master data (`mdm::Master`, the one owner of the hub and the store), the analytics, the
//! broker, and how far the stage has got. After master data changes, the analytics learn
//! what changed from here (`Shared::learn`), and an erasure's tombstones are sent from here.

use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use chrono::NaiveDate;
use connectors::supervise::SourceHealth;
use mdm::Master;
use mdm::master::{ActError, Acted, Action, Actor, BatchApplied, Learned};
use pipeline::kafka::Cluster;
use pipeline::stage;
use sql::live::Live;
use sql::{Analytics, ExceptionRow, KpiTable};
use tokio::sync::watch;

/// How long a source waits for what it produced to be stored before it gives up (and
/// retries) rather than confirm it.
const DURABLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// How far the stage has got.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub batches: u64,
    pub positions: stage::Positions,
    /// The stage has stopped: nothing more will be applied.
    pub stopped: bool,
}

/// State the stage writes and the sources and the HTTP API read.
pub struct Shared {
    pub master: Arc<Master>,
    pub analytics: Arc<Analytics>,
    /// Batches applied and the offsets reached; the main task waits on it.
    progress: watch::Sender<Progress>,
    /// The batch count when the golden tables were last copied to analytics.
    golden_refreshed_at: Mutex<Option<u64>>,
    /// The broker and the entity topics, for tombstones and webhooks.
    pub cluster: Arc<Cluster>,
    pub topics: Vec<String>,
    /// The dashboard's live results.
    pub live: Arc<Live>,
    /// Whether each Debezium and PostgreSQL source runs (`/ready`).
    pub sources: Arc<SourceHealth>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Why a steward action failed.
#[derive(Debug, thiserror::Error)]
pub enum ActFailed {
    #[error(transparent)]
    Master(#[from] ActError),
    #[error("erased and audited, but the tombstones could not be sent: {0:#}")]
    Tombstones(anyhow::Error),
}

impl ActFailed {
    /// Who is at fault: the request (refused), PostgreSQL or the broker (`External`), or
    /// goldthread.
    pub fn class(&self) -> pipeline::ErrorClass {
        match self {
            ActFailed::Master(ActError::Refused(refused)) => refused.class(),
            ActFailed::Master(ActError::NotStored(error) | ActError::Unavailable(error)) => {
                error.class()
            }
            ActFailed::Tombstones(_) => pipeline::ErrorClass::External,
        }
    }
}

impl Shared {
    pub fn new(
        master: Arc<Master>,
        analytics: Arc<Analytics>,
        cluster: Arc<Cluster>,
        topics: Vec<String>,
    ) -> Shared {
        Shared {
            master,
            analytics,
            progress: watch::channel(Progress::default()).0,
            golden_refreshed_at: Mutex::new(None),
            cluster,
            topics,
            live: Arc::default(),
            sources: Arc::default(),
        }
    }

    /// How far the stage has got, as it moves.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// The stage has stopped: those waiting for it (`wait_durable`) stop waiting.
    pub fn stage_stopped(&self) {
        self.progress
            .send_modify(|progress| progress.stopped = true);
    }

    /// Tells the analytics what a consumed batch changed: what the group's other processes
    /// stored before it, then the batch's events that were applied.
    pub fn learn_batch(&self, batch: &stage::Batch, applied: &BatchApplied) -> anyhow::Result<()> {
        self.learn(&applied.learned)?;
        if applied.kept.iter().all(|&kept| kept) {
            self.analytics.append(&batch.events)?;
        } else {
            let kept: Vec<pipeline::Envelope> = batch
                .events
                .iter()
                .zip(&applied.kept)
                .filter(|(_, kept)| **kept)
                .map(|(event, _)| event.clone())
                .collect();
            self.analytics.append(&kept)?;
        }
        Ok(())
    }

    /// Tells the analytics what changed in master data.
    pub fn learn(&self, learned: &Learned) -> anyhow::Result<()> {
        if !learned.events.is_empty() {
            self.analytics.append(&learned.events)?;
        }
        if !learned.forgotten.is_empty() {
            self.analytics.forget_vulnerabilities(&learned.forgotten)?;
        }
        Ok(())
    }

    /// A batch's output is written (`kept`: which of its events were applied): the
    /// dashboard shows it, and the main task's progress moves on.
    pub fn batch_written(&self, batch: &stage::Batch, kept: &[bool]) {
        let earliest = batch.events.iter().zip(kept).filter(|(_, kept)| **kept);
        self.live
            .changed(earliest.map(|(event, _)| event.ingested_at).min());
        self.progress.send_modify(|progress| {
            progress.batches += 1;
            progress.positions = batch.positions.clone();
        });
    }

    /// A steward action (`mdm::Master::act`), then what follows it: the analytics learn
    /// what changed and, for an erasure, the topics get tombstones for the person's records.
    pub async fn act(
        &self,
        actor: Actor,
        action: Action,
        reason: String,
    ) -> Result<mdm::AuditEntry, ActFailed> {
        let Acted {
            entry,
            erasure,
            learned,
        } = self.master.act(actor, action, reason).await?;
        if let Err(failure) = self.learn(&learned) {
            tracing::error!(error = %format!("{failure:#}"), "telling the analytics about a steward action");
        }
        if let Some(erasure) = &erasure {
            self.send_tombstones(erasure)
                .await
                .map_err(ActFailed::Tombstones)?;
        }
        Ok(entry)
    }

    /// Copies the golden records into the analytics session if they changed since last time.
    pub fn refresh_golden_tables(&self) -> Result<(), sql::Error> {
        let mut refreshed_at = self
            .golden_refreshed_at
            .lock()
            .expect("golden refresh lock");
        let batches = self.progress.borrow().batches;
        if *refreshed_at == Some(batches) {
            return Ok(());
        }
        let (properties, persons) = {
            let hub = self.master.hub();
            (hub.golden_properties(), hub.golden_persons())
        };
        let properties: Vec<sql::GoldenPropertyRow> = properties
            .iter()
            .map(|golden| sql::GoldenPropertyRow {
                golden_id: &golden.golden_id,
                uprn: golden.uprn.as_deref(),
                parent_golden_id: golden.parent_golden_id.as_deref(),
                postcode: golden.postcode.as_deref(),
                town: golden.town.as_deref(),
                property_type: golden.property_type.as_deref(),
                sources: golden.sources.len(),
            })
            .collect();
        let persons: Vec<sql::GoldenPersonRow> = persons
            .iter()
            .map(|golden| sql::GoldenPersonRow {
                golden_id: &golden.golden_id,
                postcode: golden.postcode.as_deref(),
                sources: golden.sources.len(),
            })
            .collect();
        self.analytics.replace_golden_properties(&properties)?;
        self.analytics.replace_golden_persons(&persons)?;
        *refreshed_at = Some(batches);
        Ok(())
    }

    /// Tombstones for an erasure's records on the topics they were produced to and on the
    /// dead-letter topic, so that compaction removes their events and dead letters.
    async fn send_tombstones(&self, erasure: &mdm::Erasure) -> anyhow::Result<()> {
        let mut producer = self.cluster.producer()?;
        let kinds = [
            (&erasure.records, pipeline::EntityKind::Person),
            (
                &erasure.vulnerabilities,
                pipeline::EntityKind::Vulnerability,
            ),
        ];
        let dead_letters = self.cluster.config.dead_letter_topic();
        for (references, kind) in kinds {
            for reference in references {
                let topic = self.cluster.config.topic(&reference.allocated_by, kind);
                if self.topics.contains(&topic) {
                    producer.send_tombstone(&topic, reference).await?;
                }
                // Dead letters about the record are keyed by it too.
                producer.send_tombstone(&dead_letters, reference).await?;
            }
        }
        producer.flush().await?;
        Ok(())
    }

    /// Waits until what was produced to `topics` so far is as durable as this configuration
    /// makes anything: on a real broker, already (the broker acknowledged it); on the
    /// embedded broker with a store, once the stage has written it to PostgreSQL (stopping
    /// at `timeout`); without a store, at once (nothing outlives the process: startup
    /// refused the paths that promise otherwise, unless allowed).
    pub async fn wait_durable(
        &self,
        topics: &[String],
        timeout: std::time::Duration,
    ) -> anyhow::Result<()> {
        if !self.cluster.is_embedded() || self.master.store().is_none() {
            return Ok(());
        }
        let targets = self.cluster.high_watermarks(topics)?;
        let mut progress = self.progress.subscribe();
        let reached = |progress: &Progress| stage::reached(&progress.positions, &targets);
        let waited = tokio::time::timeout(
            timeout,
            progress.wait_for(|progress| progress.stopped || reached(progress)),
        )
        .await
        .context("waiting for the stage to store what was produced")?
        .context("the stage stopped")?;
        if !reached(&waited) {
            bail!("the stage stopped before it stored what was produced");
        }
        Ok(())
    }

    /// The KPI suite for a period (`sql::Analytics::kpis_over`).
    pub async fn kpis(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<KpiTable, sql::Error> {
        self.refresh_golden_tables()?;
        self.analytics.kpis_over(from, to).await
    }

    /// An analyst's query (`sql::Analytics::analyst_query`) over tables that include the
    /// golden records as they are now.
    pub async fn analyst_query(&self, sql: &str) -> Result<sql::QueryResult, sql::Error> {
        if let Err(error) = self.refresh_golden_tables() {
            tracing::warn!(error = %format!("{error:#}"), "refreshing the golden tables");
        }
        self.analytics.analyst_query(sql).await
    }

    /// The data exceptions as of the end of `day` (today when none is given).
    pub async fn exceptions(
        &self,
        day: Option<NaiveDate>,
    ) -> Result<Vec<ExceptionRow>, sql::Error> {
        let day = day.unwrap_or_else(|| chrono::Utc::now().date_naive());
        self.analytics.exceptions(sql::calendar::as_of(day)).await
    }
}

/// A failure of the store keeping the sources' positions, as the sources see it.
fn positions_failed(error: mdm::store::Error) -> connectors::Error {
    connectors::Error::Positions {
        class: error.class(),
        source: Box::new(error),
    }
}

/// The sources' positions are kept in the store, confirmed once what they produced is
/// durable (`Shared::wait_durable`).
impl connectors::driver::Positions for Shared {
    fn kept(&self) -> bool {
        self.master.store().is_some()
    }

    async fn position(&self, key: &str) -> connectors::Result<Option<String>> {
        match self.master.store() {
            Some(store) => store.source_position(key).await.map_err(positions_failed),
            None => Ok(None),
        }
    }

    async fn durable(&self, topics: &[String]) -> connectors::Result<()> {
        self.wait_durable(topics, DURABLE_WITHIN)
            .await
            .map_err(|error| connectors::Error::Positions {
                class: pipeline::ErrorClass::External,
                source: error.into(),
            })
    }

    async fn confirm(&self, key: &str, position: &str) -> connectors::Result<()> {
        match self.master.store() {
            Some(store) => store
                .set_source_position(key, position)
                .await
                .map_err(positions_failed),
            None => Ok(()),
        }
    }
}
