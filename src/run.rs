//! `goldthread run`: file sources -> Kafka -> MDM and analytics stages, with the HTTP API.
//! Wiring only: the work is done by the library crates.
//!
//! Over 800 lines because `Shared` still holds the master data's state and its store
//! writes (applying a batch, the peers' writes, restore); those belong to one owner of
//! master data in `mdm::store` (issue 20), and this file shrinks to the wiring when they move.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use connectors::FileSource;
use indicatif::{ProgressBar, ProgressStyle};
use mdm::Hub;
use pipeline::kafka::Cluster;
use pipeline::stage::{self, StopWhen};
use pipeline::{DeadLetter, metrics as names};
use sql::{Analytics, ExceptionRow, KpiTable};
use tokio::sync::watch;

use crate::config::Loaded;
use crate::output::{Summary, TopicCounts, VulnerabilityCounts};
use crate::{http, output};
use connectors::SourceCounts;

/// What `run` was asked to do besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Process all input, print the summary and exit.
    pub once: bool,
    /// Write golden records, cross-reference, dead letters and the summary here.
    pub out: Option<PathBuf>,
    /// KPI period (inclusive); defaults to the span of the data (`Analytics::data_span`).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Write every analytics table and the suite's parameters here (`Analytics::export`).
    pub export: Option<PathBuf>,
    /// Consume only: open no file, PostgreSQL or Debezium source (another process of the
    /// group reads them).
    pub no_sources: bool,
}

/// State the stages write and the HTTP API reads.
pub struct Shared {
    pub hub: Mutex<Hub>,
    pub analytics: Analytics,
    /// Batches applied and the offsets reached; the main task waits on it.
    progress: watch::Sender<Progress>,
    /// The batch count when the golden tables were last copied to analytics.
    golden_refreshed_at: Mutex<Option<u64>>,
    /// Steward actions, oldest first.
    pub audit: Mutex<Vec<mdm::AuditEntry>>,
    /// Where each batch's master data lands, when PostgreSQL is configured.
    pub store: Option<mdm::store::Store>,
    /// The broker and the entity topics, for tombstones and webhooks.
    pub cluster: Arc<Cluster>,
    pub topics: Vec<String>,
    pub webhooks: crate::webhook::Webhooks,
    /// `postgres.retry_for`.
    pub store_retry_for: std::time::Duration,
    /// The dashboard's live results.
    pub live: crate::live::Live,
    /// Whether each Debezium and PostgreSQL source runs (`/ready`).
    pub sources: Arc<crate::connect::SourceHealth>,
    /// Events applied to the hub and not stored yet (when this process alone writes to the
    /// store): a write takes them together with the hub's changes, under the hub's lock, so
    /// the rows it stores never reflect an event it does not store.
    pub unstored: Mutex<Vec<pipeline::Envelope>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// Applies events to the hub and the analytics tables; returns which were kept (events
    /// about erased people are ignored by the hub and never stored).
    fn apply_events(&self, events: &[pipeline::Envelope]) -> anyhow::Result<Vec<bool>> {
        self.apply_events_keeping(events, false)
    }

    /// `apply_events`; with `unstored`, the kept events also go to `Shared::unstored`, under
    /// the hub's lock, so the next store write takes them with the changes they made.
    fn apply_events_keeping(
        &self,
        events: &[pipeline::Envelope],
        unstored: bool,
    ) -> anyhow::Result<Vec<bool>> {
        let kept: Vec<bool> = {
            let mut hub = self.hub.lock().expect("hub lock");
            let kept: Vec<bool> = events
                .iter()
                .map(|event| hub.apply(event) != mdm::Applied::Erased)
                .collect();
            if unstored {
                let mut waiting = self.unstored.lock().expect("unstored lock");
                waiting.extend(
                    events
                        .iter()
                        .zip(&kept)
                        .filter(|(_, kept)| **kept)
                        .map(|(event, _)| event.clone()),
                );
            }
            let counts = hub.counts();
            metrics::gauge!(names::MDM_XREF_ENTRIES, "entity" => "person")
                .set(counts.person_records as f64);
            metrics::gauge!(names::MDM_XREF_ENTRIES, "entity" => "property")
                .set(counts.property_records as f64);
            kept
        };
        if kept.iter().all(|&kept| kept) {
            self.analytics.append(events)?;
        } else {
            let zipped = events.iter().zip(&kept);
            let events: Vec<_> = zipped
                .filter(|(_, kept)| **kept)
                .map(|(event, _)| event.clone())
                .collect();
            self.analytics.append(&events)?;
        }
        Ok(kept)
    }

    /// A batch's output is written (`kept`: which of its events were applied): the
    /// dashboard shows it, and the main task's progress moves on.
    fn batch_written(&self, batch: &stage::Batch, kept: &[bool]) {
        let earliest = batch.events.iter().zip(kept).filter(|(_, kept)| **kept);
        self.live
            .batch_applied(earliest.map(|(event, _)| event.ingested_at).min());
        self.progress.send_modify(|progress| {
            progress.batches += 1;
            progress.positions = batch.positions.clone();
        });
    }

    /// Applies what the group's other processes committed (nothing unless the store is
    /// coordinated): their records' latest events, their erasures, and the steward verdicts
    /// in force, except on pairs with a record in `acting_on` (the steward action being
    /// written, which the store does not hold yet).
    pub fn apply_peers(
        &self,
        peers: &mdm::store::Peers,
        acting_on: &[pipeline::Reference],
    ) -> anyhow::Result<()> {
        if !peers.events.is_empty() {
            self.apply_events(&peers.events)?;
        }
        let mut hub = self.hub.lock().expect("hub lock");
        let mut forgotten = Vec::new();
        for reference in &peers.erased {
            if hub.is_erased(reference) {
                continue;
            }
            let subject = format!("{}:{}", reference.allocated_by, reference.id);
            match hub.person_subject(&subject) {
                Ok(golden_id) => {
                    let erasure = hub.erase(&golden_id).map_err(anyhow::Error::msg)?;
                    forgotten.extend(erasure.vulnerabilities);
                }
                Err(_) => hub.suppress([reference.clone()]),
            }
        }
        if let Some(stored) = &peers.verdicts {
            let touches = |verdict: &mdm::StewardVerdict| {
                acting_on.contains(&verdict.a) || acting_on.contains(&verdict.b)
            };
            let held = hub.verdicts();
            let mut changes: Vec<mdm::StewardVerdict> = stored
                .iter()
                .filter(|verdict| !held.contains(verdict))
                .cloned()
                .collect();
            changes.extend(held.iter().filter(|verdict| !stored.contains(verdict)).map(
                |verdict| mdm::StewardVerdict {
                    verdict: mdm::Verdict::Withdraw,
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
        drop(hub);
        if !forgotten.is_empty() {
            self.analytics.forget_vulnerabilities(&forgotten)?;
        }
        Ok(())
    }

    /// Copies the golden records into the analytics session if they changed since last time.
    pub fn refresh_golden_tables(&self) -> anyhow::Result<()> {
        let mut refreshed_at = self
            .golden_refreshed_at
            .lock()
            .expect("golden refresh lock");
        let batches = self.progress.borrow().batches;
        if *refreshed_at == Some(batches) {
            return Ok(());
        }
        let hub = self.hub.lock().expect("hub lock");
        let (properties, persons) = (hub.golden_properties(), hub.golden_persons());
        drop(hub);
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
    pub async fn send_tombstones(&self, erasure: &mdm::Erasure) -> anyhow::Result<()> {
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
        if !self.cluster.is_embedded() || self.store.is_none() {
            return Ok(());
        }
        let targets = self.cluster.high_watermarks(topics)?;
        let mut progress = self.progress.subscribe();
        tokio::time::timeout(
            timeout,
            progress.wait_for(|progress| stage::reached(&progress.positions, &targets)),
        )
        .await
        .context("waiting for the stage to store what was produced")?
        .context("the stage stopped")?;
        Ok(())
    }

    /// The KPI suite for a period; without one, the span of the data.
    pub async fn kpis(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> anyhow::Result<KpiTable> {
        self.refresh_golden_tables()?;
        let (from, to) = match (from, to) {
            (Some(from), Some(to)) => (from, to),
            (from, to) => {
                let (first, last) = self.data_span().await?;
                (from.unwrap_or(first), to.unwrap_or(last))
            }
        };
        if from > to {
            bail!("the period starts ({from}) after it ends ({to})");
        }
        Ok(self
            .analytics
            .kpis(from, to, sql::calendar::as_of(to))
            .await?)
    }

    /// The data exceptions as of the end of `day` (today when none is given).
    pub async fn exceptions(&self, day: Option<NaiveDate>) -> anyhow::Result<Vec<ExceptionRow>> {
        let day = day.unwrap_or_else(|| chrono::Utc::now().date_naive());
        Ok(self.analytics.exceptions(sql::calendar::as_of(day)).await?)
    }

    async fn data_span(&self) -> anyhow::Result<(NaiveDate, NaiveDate)> {
        let today = chrono::Utc::now().date_naive();
        Ok(self.analytics.data_span().await?.unwrap_or((today, today)))
    }
}

/// How long a source waits for what it produced to be stored before it gives up (and
/// retries) rather than confirm it.
pub const DURABLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(120);

/// How far the stage has got.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub batches: u64,
    pub positions: stage::Positions,
}

/// Runs the pipeline. With `once`, returns the summary after all input is processed;
/// without, serves HTTP until Ctrl-C.
pub async fn run(
    loaded: Loaded,
    options: RunOptions,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let config = &loaded.config;
    if config.sources.is_empty()
        && config.debezium.is_empty()
        && config.webhooks.is_empty()
        && config.postgres_sources.is_empty()
    {
        bail!(
            "{}: no [[sources]], [[debezium]], [[postgres_sources]] or [[webhooks]] configured",
            loaded.origin
        );
    }
    // What a sender or a source is told is kept must outlive the process: on the embedded
    // broker only the store holds it.
    let embedded = config.kafka.bootstrap_servers.is_none();
    if embedded && config.postgres.url.is_none() && !config.allow_volatile_acknowledgements {
        let mut volatile: Vec<String> = Vec::new();
        if !options.once {
            volatile.extend(
                config
                    .webhooks
                    .iter()
                    .map(|webhook| format!("webhook `{}` answers 202", webhook.name)),
            );
        }
        volatile.extend(
            config
                .postgres_sources
                .iter()
                .filter(|source| source.mode == connectors::pg::Mode::Logical)
                .map(|source| {
                    format!(
                        "postgres source `{}` advances its replication slot",
                        source.name
                    )
                }),
        );
        if !volatile.is_empty() {
            bail!(
                "{}: {}, but on the embedded broker without PostgreSQL what is acknowledged is lost when the process stops. Set postgres.url (or --postgres) to keep it, or kafka.bootstrap_servers for a real broker and postgres.url; or set allow_volatile_acknowledgements = true to accept the loss (demos, tests)",
                loaded.origin,
                volatile.join("; ")
            );
        }
    }
    // A served run's API tokens: a secret too short to be safe stops it before anything moves.
    let tokens = if options.once {
        None
    } else {
        let loaded =
            crate::auth::Tokens::load(&config.http.tokens, |name| std::env::var(name).ok())
                .map_err(|problem| anyhow::anyhow!("{}: http.tokens: {problem}", loaded.origin))?;
        Some(loaded)
    };
    // Open every source first: a missing file or column stops the run before anything moves.
    // A drop folder's files are opened one by one; each is read once (`drop_key`).
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for source in config.sources.iter().filter(|_| !options.no_sources) {
        let files = match source.expand(&config.data_dir) {
            Ok(files) => files,
            Err(error) => {
                problems.push(format!("source `{}`: {error}", source.name));
                continue;
            }
        };
        for file in files {
            if file.dropped {
                // A file still being written is read once it is complete.
                let path = config.data_dir.join(&file.path);
                while std::fs::metadata(&path).is_ok_and(|metadata| !settled(&metadata)) {
                    tokio::time::sleep(SETTLE / 4).await;
                }
            }
            match FileSource::open(&file, &config.data_dir) {
                Ok(opened) => sources.push(opened),
                Err(error) => problems.push(error.to_string()),
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "cannot open sources (data_dir {}):\n  - {}\nHint: `goldthread generate --out {}` writes the sample landlord.",
            config.data_dir.display(),
            problems.join("\n  - "),
            config.data_dir.display()
        );
    }
    let mut hub = loaded.hub()?;
    let analytics = Analytics::new(config.analytics.clone()).await?;
    let (mut store, restored) = match &config.postgres.url {
        None => (None, None),
        Some(url) => {
            let store = mdm::store::Store::connect(url, &config.postgres).await?;
            let applied = store.migrate().await?;
            tracing::info!(?applied, "postgres ready");
            hub.track_changes();
            let restored = restore(&store, &mut hub, &analytics).await?;
            // Drop-folder files already read by an earlier run are not read again.
            let mut unread = Vec::new();
            for source in sources {
                match source.config().drop_key() {
                    Some(key) if store.source_position(&key).await?.is_some() => {}
                    _ => unread.push(source),
                }
            }
            sources = unread;
            (Some(store), Some(restored))
        }
    };
    let entity_topics = config.entity_topics();
    let mut all_topics = entity_topics.clone();
    all_topics.push(config.kafka.dead_letter_topic());
    let cluster = Arc::new(
        Cluster::connect(&config.kafka, &all_topics)
            .await
            .context("connecting to Kafka")?,
    );
    let broker = if cluster.is_embedded() {
        format!("embedded ({})", cluster.bootstrap_servers)
    } else {
        cluster.bootstrap_servers.clone()
    };
    tracing::info!(broker, topics = entity_topics.len(), "kafka ready");
    if !options.once {
        println!("broker: {broker}");
    }
    if options.no_sources && (cluster.is_embedded() || store.is_none()) {
        bail!(
            "--no-sources makes this process one more member of a consumer group: it needs a real broker (kafka.bootstrap_servers) and the store the group shares (postgres.url)"
        );
    }
    if !cluster.is_embedded() && store.is_none() {
        // The hub lives in memory only: each start rebuilds it from the topics' beginning,
        // so the group's committed offsets (which an in-memory apply moved on) are reset.
        let beginning: stage::Positions = cluster
            .high_watermarks(&entity_topics)?
            .into_keys()
            .map(|partition| (partition, 0))
            .collect();
        cluster
            .commit_positions(&beginning)
            .context("resetting the group's offsets to the topics' beginning (no store)")?;
        tracing::info!("no store: consuming every topic from its beginning to rebuild the hub");
    }
    if let Some(restored) = &restored {
        if cluster.is_embedded() {
            // A new embedded broker holds only what this run produces: every event is
            // consumed again, and applying one twice is harmless.
            tracing::info!("embedded broker: consuming every event again over the restored state");
        } else {
            // A group with live members may refuse a commit from outside it: their committed
            // offsets then stand, and the store skips what it already holds.
            if let Err(error) = cluster.commit_positions(&restored.positions) {
                tracing::warn!(%error, "the group's offsets were not set to the stored positions (is another member running?); consuming from its committed offsets");
            }
            // Other processes of the group may write to the same store.
            if let Some(store) = &mut store {
                store.coordinate(restored.synced);
            }
        }
    }

    let (progress_tx, _) = watch::channel(Progress::default());
    let shared = Arc::new(Shared {
        hub: Mutex::new(hub),
        analytics,
        progress: progress_tx,
        golden_refreshed_at: Mutex::new(None),
        audit: Mutex::new(restored.map(|restored| restored.audit).unwrap_or_default()),
        store,
        cluster: cluster.clone(),
        topics: entity_topics.clone(),
        webhooks: crate::webhook::Webhooks::new(config.webhooks.clone()),
        store_retry_for: config.postgres.retry_for,
        live: crate::live::Live::default(),
        sources: Default::default(),
        unstored: Mutex::new(Vec::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(StopWhen::Never);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    // With a store, the stage keeps the dead letters too (read back from their topic), so
    // erasure and subject access reach them.
    let mut stage_topics = entity_topics.clone();
    if shared.store.is_some() {
        stage_topics.push(config.kafka.dead_letter_topic());
    }
    let stage_task = {
        let (cluster, shared, topics, stage_config) = (
            cluster.clone(),
            shared.clone(),
            stage_topics.clone(),
            config.stage.clone(),
        );
        let dead_letter_topic = config.kafka.dead_letter_topic();
        let shutdown_rx = shutdown_rx.clone();
        tokio::spawn(async move {
            stage::consume(
                &cluster,
                "mdm_analytics",
                &cluster.config.group_id,
                &topics,
                &stage_config,
                stop_rx,
                shutdown_rx,
                |message| {
                    if message.topic == dead_letter_topic {
                        stage::kept_dead_letter(message)
                    } else {
                        stage::canonical("mdm_analytics", message)
                    }
                },
                MasterStage { shared },
            )
            .await
            .map_err(|error| anyhow::anyhow!("{error}"))
        })
    };

    let http_task = if options.once {
        None
    } else {
        crate::live::spawn(shared.clone(), shutdown_rx.clone());
        let listener = tokio::net::TcpListener::bind(&config.http.listen)
            .await
            .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen))?;
        let address = listener.local_addr()?;
        println!("listening on http://{address}");
        let (tokens, inactive) = tokens.expect("loaded for a served run");
        if !inactive.is_empty() {
            tracing::info!(tokens = %inactive.join(", "), "API tokens inactive");
        }
        if tokens.is_empty() {
            tracing::warn!(
                "no API token is active: every endpoint but /health answers 401; set GOLDTHREAD_ADMIN_TOKEN (or the variables named in http.tokens)"
            );
        }
        let router = http::router(shared.clone(), metrics.clone(), tokens);
        let limits = http::Limits {
            max_connections: config.http.max_connections,
            header_read_timeout: config.http.header_read_timeout,
            request_timeout: config.http.request_timeout,
        };
        Some(tokio::spawn(http::serve(
            listener,
            router,
            limits,
            shutdown_rx.clone(),
        )))
    };

    let mut stage_task = stage_task;
    let (debezium, postgres_sources) = if options.no_sources {
        (&[][..], &[][..])
    } else {
        (&config.debezium[..], &config.postgres_sources[..])
    };
    let connectors = crate::connect::start(
        &cluster,
        debezium,
        &config.stage,
        options.once,
        &shared.sources,
        &shutdown_rx,
    );
    let pollers =
        crate::connect::start_pollers(&shared, postgres_sources, options.once, &shutdown_rx);
    let ingested = async {
        let (mut source_counts, mut topic_produced, dead_letters) =
            ingest(&cluster, &mut sources).await?;
        // Every event is acknowledged (and, on the embedded broker, stored) now: the
        // drop-folder files read count as read.
        if let Some(store) = &shared.store {
            shared.wait_durable(&entity_topics, DURABLE_WITHIN).await?;
            for source in &sources {
                if let Some(key) = source.config().drop_key() {
                    store.set_source_position(&key, "read").await?;
                }
            }
        }
        let watchers = if options.once {
            Vec::new()
        } else {
            watch_drop_folders(
                &shared,
                &config.data_dir,
                if options.no_sources {
                    &[]
                } else {
                    &config.sources
                },
                &sources,
                &shutdown_rx,
            )
        };
        let mut running = Vec::new();
        let mut polling = Vec::new();
        for poller in pollers {
            if options.once {
                let (counts, topic) = poller.task.await??;
                *topic_produced.entry(topic).or_default() += counts.events_produced;
                source_counts.push(counts);
            } else {
                polling.push(poller);
            }
        }
        for connector in connectors {
            if options.once {
                let (counts, topic) = connector.finish(&cluster).await?;
                *topic_produced.entry(topic).or_default() += counts.events_produced;
                source_counts.push(counts);
            } else {
                running.push(connector);
            }
        }
        anyhow::Ok((
            source_counts,
            topic_produced,
            dead_letters,
            running,
            polling,
            watchers,
        ))
    }
    .await;
    let (source_counts, topic_produced, dead_letters, connectors, pollers, watchers) =
        match ingested {
            Ok(ingested) => ingested,
            Err(error) => {
                // Stop the stage (and the server) before reporting: no task outlives the run.
                shutdown_tx.send_replace(true);
                let _ = stage_task.await;
                if let Some(task) = http_task {
                    let _ = task.await;
                }
                return Err(error);
            }
        };
    let produced_total: u64 = topic_produced.values().sum();
    let targets = cluster.high_watermarks(&stage_topics)?;

    let report = if options.once {
        stop_tx.send_replace(StopWhen::Reached(targets));
        stage_task.await??
    } else {
        // Ready once everything produced so far is applied (by the group, when the store
        // is shared: its stored positions), then serve until Ctrl-C; a stage that stops on
        // its own is an error.
        let mut progress = shared.progress.subscribe();
        let caught_up = async {
            match &shared.store {
                Some(store) if store.is_coordinated() => loop {
                    if stage::reached(&store.positions().await?, &targets) {
                        break anyhow::Ok(());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                },
                _ => {
                    progress
                        .wait_for(|progress| stage::reached(&progress.positions, &targets))
                        .await?;
                    Ok(())
                }
            }
        };
        tokio::select! {
            result = caught_up => result?,
            result = &mut stage_task => bail!("the stage stopped before catching up: {:?}", result??),
        }
        println!("ready: {produced_total} events processed; Ctrl-C to stop");
        tokio::select! {
            signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C")?,
            result = &mut stage_task => bail!("the stage stopped: {:?}", result??),
        }
        tracing::info!("shutting down");
        shutdown_tx.send_replace(true);
        // A source that failed said so when it stopped.
        for watcher in watchers {
            watcher.await?;
        }
        for poller in pollers {
            let _ = poller.task.await?;
        }
        for connector in connectors {
            let _ = connector.task.await?;
        }
        let report = stage_task.await??;
        if let Some(task) = http_task {
            task.await??;
        }
        report
    };

    let kpis = shared.kpis(options.from, options.to).await?;
    let exceptions = shared.exceptions(Some(kpis.to)).await?;
    if let Some(dir) = &options.export {
        shared
            .analytics
            .export(dir, kpis.from, kpis.to, kpis.as_of)
            .with_context(|| format!("exporting the analytics tables to {}", dir.display()))?;
    }
    if let Some(store) = &shared.store {
        crate::kpi_store::write_kpis(store, &kpis, &exceptions)
            .await
            .context("writing KPIs to PostgreSQL")?;
    }
    let hub = shared.hub.lock().expect("hub lock");
    metrics::gauge!(names::MDM_GOLDEN_RECORDS, "entity" => "person")
        .set(hub.counts().golden_persons as f64);
    metrics::gauge!(names::MDM_GOLDEN_RECORDS, "entity" => "property")
        .set(hub.counts().golden_properties as f64);
    let topics = entity_topics
        .iter()
        .map(|topic| TopicCounts {
            topic: topic.clone(),
            produced: topic_produced.get(topic).copied().unwrap_or(0),
            consumed: report.consumed_per_topic.get(topic).copied().unwrap_or(0),
        })
        .collect();
    let summary = Summary {
        sources: source_counts,
        topics,
        dead_letters: dead_letters.len() as u64 + report.dead_letters,
        stage_dead_letters: report.dead_letters,
        mdm: hub.counts(),
        quality: hub.quality().clone(),
        vulnerabilities: {
            let statuses = hub.vulnerabilities(kpis.to);
            VulnerabilityCounts {
                as_of: kpis.to,
                active: statuses.iter().filter(|status| status.active).count(),
                review_overdue: statuses.iter().filter(|s| s.review_overdue).count(),
                lapsed: statuses.iter().filter(|status| !status.active).count(),
                homes_flagged: hub.contractor_alerts(kpis.to).len(),
            }
        },
        kpis,
        exceptions: sql::kpi::exception_counts(&exceptions),
        broker,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(out) = &options.out {
        output::write(out, &summary, &hub, &dead_letters, &exceptions)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(summary)
}

/// Rebuilds the hub and the analytics tables from what PostgreSQL holds: every source
/// record's latest event and every version of the repairs records, then the steward
/// verdicts in force.
async fn restore(
    store: &mdm::store::Store,
    hub: &mut Hub,
    analytics: &Analytics,
) -> anyhow::Result<mdm::store::Restored> {
    let started = Instant::now();
    let progress = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template(
            "{spinner} restoring from PostgreSQL {pos:>9} records {per_sec:>12}",
        )
        .expect("valid template"),
    );
    const CHUNK: usize = 5000;
    let mut chunk = Vec::with_capacity(CHUNK);
    hub.suppress(store.erased().await?);
    let restored = store
        .restore(|event| {
            hub.apply(&event);
            chunk.push(event);
            progress.inc(1);
            if chunk.len() == CHUNK {
                analytics.append(&chunk)?;
                chunk.clear();
            }
            Ok(())
        })
        .await?;
    analytics.append(&chunk)?;
    progress.finish_and_clear();
    let mut refused = 0;
    for verdict in &restored.verdicts {
        if let Err(reason) = hub.steward(verdict.entity, &verdict.a, &verdict.b, verdict.verdict) {
            refused += 1;
            tracing::warn!(%reason, "a stored steward verdict could not be applied");
        }
    }
    // The store already holds all of this: the next write has only new changes to make.
    hub.take_changes();
    tracing::info!(
        records = restored.events,
        verdicts = restored.verdicts.len() - refused,
        refused,
        seconds = started.elapsed().as_secs_f64(),
        "state restored from PostgreSQL"
    );
    Ok(restored)
}

/// The MDM and analytics stage.
struct MasterStage {
    shared: Arc<Shared>,
}

impl stage::Handler<anyhow::Error> for MasterStage {
    async fn handle(
        &mut self,
        batch: &Arc<stage::Batch>,
    ) -> anyhow::Result<stage::Handled<anyhow::Error>> {
        apply_batch(&self.shared, batch).await
    }
}

/// The MDM and analytics stages' work on one batch. In memory, or with a store the group
/// shares, the output is written when this returns. With a store only this process writes,
/// the batch is applied now and its PostgreSQL write returned, for the stage to run while it
/// handles the next batch.
async fn apply_batch(
    shared: &Arc<Shared>,
    batch: &Arc<stage::Batch>,
) -> anyhow::Result<stage::Handled<anyhow::Error>> {
    match &shared.store {
        None => {
            let kept = shared.apply_events(&batch.events)?;
            shared.batch_written(batch, &kept);
            return Ok(stage::Handled::Written);
        }
        Some(store) if store.is_coordinated() => {
            let kept = write_batch(shared, store, batch).await?;
            shared.batch_written(batch, &kept);
            return Ok(stage::Handled::Written);
        }
        Some(_) => {}
    }
    // Nobody else writes to the store, so applying needs nothing from it. The write takes
    // the hub's changes when it starts, with the events that made them: this batch's, and
    // any of the next batch's applied by then (`Shared::unstored`). It stores this batch's
    // positions only: the next batch's events are applied again after a crash, harmlessly.
    let kept = shared.apply_events_keeping(&batch.events, true)?;
    let (shared, batch, retry_for) = (shared.clone(), batch.clone(), shared.store_retry_for);
    Ok(stage::Handled::Writing(Box::pin(async move {
        let store = shared.store.as_ref().expect("a store");
        let write = mdm::store::Write {
            positions: Some(&batch.consumed),
            dead_letters: &batch.kept_dead_letters,
            unstored: Some(&shared.unstored),
            ..Default::default()
        };
        let mut stored = |_: &mdm::store::Peers| Ok(Vec::new());
        store
            .write_with_retry(&shared.hub, &write, retry_for, &mut stored)
            .await
            .context("writing the batch to PostgreSQL")?;
        shared.batch_written(&batch, &kept);
        Ok(())
    })))
}

/// Applies a batch inside the PostgreSQL transaction that stores it; returns which of its
/// events were applied and stored.
async fn write_batch(
    shared: &Shared,
    store: &mdm::store::Store,
    batch: &stage::Batch,
) -> anyhow::Result<Vec<bool>> {
    // The stage commits the batch's offsets to Kafka only after this returns: the PostgreSQL
    // transaction (the batch's events, the rows they changed, the positions) comes first.
    // The batch is applied inside it, after what the group's other processes wrote, and
    // without the events another member already wrote (it held the partition before a
    // rebalance): a retry after a failed write applies only the peers again.
    let mut applied: Option<Vec<bool>> = None;
    let mut stored_events =
        |peers: &mdm::store::Peers| -> anyhow::Result<Vec<&pipeline::Envelope>> {
            shared.apply_peers(peers, &[])?;
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
                    let kept = shared.apply_events(&batch.events)?;
                    applied = Some(kept.clone());
                    kept
                }
                None => {
                    let events: Vec<pipeline::Envelope> = batch
                        .events
                        .iter()
                        .zip(&fresh)
                        .filter(|(_, fresh)| **fresh)
                        .map(|(event, _)| event.clone())
                        .collect();
                    let mut kept_fresh = shared.apply_events(&events)?.into_iter();
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
                .zip(kept.iter().zip(&fresh))
                .filter(|(_, (kept, fresh))| **kept && **fresh)
                .map(|(event, _)| event)
                .collect())
        };
    let write = mdm::store::Write {
        positions: Some(&batch.consumed),
        dead_letters: &batch.kept_dead_letters,
        ..Default::default()
    };
    store
        .write_with_retry(
            &shared.hub,
            &write,
            shared.store_retry_for,
            &mut stored_events,
        )
        .await
        .context("writing the batch to PostgreSQL")?;
    Ok(applied.unwrap_or_default())
}

/// How long a dropped file must go unmodified before it is read: the rest of a file still
/// being written would otherwise be lost (its first part read, the file remembered as read).
/// Writing under a name the pattern does not match (or starting with `.`) and renaming it
/// into place also works, at once.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether a file has gone unmodified for [`SETTLE`].
fn settled(metadata: &std::fs::Metadata) -> bool {
    metadata
        .modified()
        .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age >= SETTLE))
}

/// Reads every source to the end, producing events and dead letters.
/// In a served run, looks in each watched drop folder (`watch`) for files not read yet and
/// reads them as they arrive.
fn watch_drop_folders(
    shared: &Arc<Shared>,
    data_dir: &std::path::Path,
    configs: &[connectors::SourceConfig],
    read: &[FileSource],
    shutdown: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let known: std::collections::BTreeSet<String> = read
        .iter()
        .filter_map(|source| source.config().drop_key())
        .collect();
    configs
        .iter()
        .filter_map(|config| Some((config.clone(), config.watch?)))
        .map(|(config, every)| {
            let (shared, mut shutdown) = (shared.clone(), shutdown.clone());
            let data_dir = data_dir.to_path_buf();
            let prefix = format!("{}/", config.name);
            let mut known: std::collections::BTreeSet<String> = known
                .iter()
                .filter(|key| key.starts_with(&prefix))
                .cloned()
                .collect();
            tokio::spawn(async move {
                // A new file's size and modification time at the previous look: it is read
                // once they have not changed since, and it has settled.
                let mut seen: std::collections::BTreeMap<String, (u64, std::time::SystemTime)> =
                    Default::default();
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                    let read = async {
                        let mut new = Vec::new();
                        for file in config.expand(&data_dir)? {
                            let key = file.drop_key().unwrap_or_default();
                            if known.contains(&key) {
                                continue;
                            }
                            let metadata = std::fs::metadata(data_dir.join(&file.path))?;
                            let state = (metadata.len(), metadata.modified()?);
                            let unchanged = seen.insert(key.clone(), state) == Some(state);
                            if !unchanged || !settled(&metadata) {
                                continue;
                            }
                            let done = match &shared.store {
                                Some(store) => store.source_position(&key).await?.is_some(),
                                None => false,
                            };
                            if done {
                                known.insert(key);
                            } else {
                                new.push(FileSource::open(&file, &data_dir)?);
                            }
                        }
                        if new.is_empty() {
                            return anyhow::Ok(());
                        }
                        let (counts, _, _) = ingest(&shared.cluster, &mut new).await?;
                        shared.wait_durable(&shared.topics, DURABLE_WITHIN).await?;
                        for source in &new {
                            let key = source.config().drop_key().unwrap_or_default();
                            if let Some(store) = &shared.store {
                                store.set_source_position(&key, "read").await?;
                            }
                            seen.remove(&key);
                            known.insert(key);
                        }
                        for count in counts {
                            tracing::info!(source = %count.name, file = %count.path, events = count.events_produced, dead_letters = count.dead_letters, "dropped file read");
                        }
                        Ok(())
                    };
                    if let Err(error) = read.await {
                        tracing::error!(source = %config.name, error = %format!("{error:#}"), "reading a drop folder");
                    }
                }
            })
        })
        .collect()
}

async fn ingest(
    cluster: &Cluster,
    sources: &mut [FileSource],
) -> anyhow::Result<(Vec<SourceCounts>, BTreeMap<String, u64>, Vec<DeadLetter>)> {
    let mut producer = cluster.producer()?;
    let mut counts = Vec::new();
    let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
    let mut dead_letters = Vec::new();
    let style =
        ProgressStyle::with_template("{spinner} {prefix:<20} {pos:>9} rows {per_sec:>12} {msg}")
            .expect("valid template");
    for source in sources {
        let config = source.config().clone();
        let progress = ProgressBar::new_spinner()
            .with_style(style.clone())
            .with_prefix(config.name.clone());
        let mut source_counts = SourceCounts::new(
            &config.name,
            &config.system,
            config.path.display().to_string(),
        );
        let label = config.name.clone();
        while let Some(record) = source.next_record() {
            let record = record.with_context(|| format!("source `{}`", config.name))?;
            source_counts.count(&record);
            match record {
                connectors::Record::Event(envelope) => {
                    let topic = cluster
                        .config
                        .topic(&config.system, envelope.payload.kind());
                    producer.send(&topic, &envelope).await?;
                    metrics::counter!(names::CONNECTOR_EVENTS_PRODUCED_TOTAL, "source" => label.clone(), "topic" => topic.clone()).increment(1);
                    *per_topic.entry(topic).or_default() += 1;
                }
                connectors::Record::DeadLetter(dead_letter) => {
                    tracing::debug!(source = %label, position = %dead_letter.position, reason = %dead_letter.reason, "dead letter");
                    producer.send_dead_letter(&dead_letter).await?;
                    metrics::counter!(names::CONNECTOR_DEAD_LETTERS_TOTAL, "source" => label.clone()).increment(1);
                    dead_letters.push(dead_letter);
                }
            }
            progress.inc(1);
        }
        metrics::counter!(names::CONNECTOR_ROWS_READ_TOTAL, "source" => label.clone())
            .increment(source_counts.rows_read);
        progress.finish_with_message(format!(
            "{} events, {} dead letters",
            source_counts.events_produced, source_counts.dead_letters
        ));
        counts.push(source_counts);
    }
    producer.flush().await?;
    Ok((counts, per_topic, dead_letters))
}
