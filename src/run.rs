//! `goldthread run`: file sources -> Kafka -> MDM and analytics stages, with the HTTP API.
//! Wiring only: the work is done by the library crates.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use connectors::driver::{self, files};
use indicatif::{ProgressBar, ProgressStyle};
use mdm::Master;
use mdm::store::KpiRows;
use pipeline::kafka::Cluster;
use pipeline::metrics as names;
use pipeline::stage::{self, StopWhen};
use sql::Analytics;
use tokio::sync::watch;

use crate::config::Loaded;
use crate::output::{Summary, TopicCounts};
use crate::state::Shared;
use crate::{http, output};

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

/// Runs the pipeline. With `once`, returns the summary after all input is processed;
/// without, serves HTTP until Ctrl-C.
pub async fn run(
    loaded: Loaded,
    options: RunOptions,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let config = &loaded.config;
    loaded.check_runnable(options.once)?;
    // A served run's API tokens: a secret too short to be safe stops it before anything moves.
    let tokens = if options.once {
        None
    } else {
        let tokens =
            crate::auth::Tokens::load(&config.http.tokens, |name| std::env::var(name).ok())
                .map_err(|problem| anyhow::anyhow!("{}: http.tokens: {problem}", loaded.origin))?;
        Some(tokens)
    };
    // Open every source first: a missing file or column stops the run before anything moves.
    let files: &[connectors::SourceConfig] = if options.no_sources {
        &[]
    } else {
        &config.sources
    };
    let sources = match files::open(files, &config.data_dir).await {
        Ok(sources) => sources,
        Err(problems) => bail!(
            "cannot open sources (data_dir {}):\n  - {}\nHint: `goldthread generate --out {}` writes the sample landlord.",
            config.data_dir.display(),
            problems.join("\n  - "),
            config.data_dir.display()
        ),
    };
    let analytics = Arc::new(Analytics::new(config.analytics.clone()).await?);
    let (store, sources) = open_store(&loaded, sources).await?;
    let mut master = Master::new(loaded.hub()?, store, config.postgres.retry_for)
        .with_quality(loaded.standard()?);
    let restored = restore(&mut master, &analytics).await?;
    let entity_topics = config.entity_topics();
    let cluster = connect(
        &loaded,
        &entity_topics,
        &mut master,
        restored.as_ref(),
        &options,
    )
    .await?;
    let broker = if cluster.is_embedded() {
        format!("embedded ({})", cluster.bootstrap_servers)
    } else {
        cluster.bootstrap_servers.clone()
    };
    tracing::info!(broker, topics = entity_topics.len(), "kafka ready");
    if !options.once {
        println!("broker: {broker}");
    }

    let shared = Arc::new(Shared::new(
        Arc::new(master),
        analytics,
        cluster.clone(),
        entity_topics.clone(),
    ));
    let (stop_tx, stop_rx) = watch::channel(StopWhen::Never);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // With a store, the stage keeps the dead letters too (read back from their topic), so
    // erasure and subject access reach them.
    let mut stage_topics = entity_topics.clone();
    if shared.master.store().is_some() {
        stage_topics.push(config.kafka.dead_letter_topic());
    }
    let mut stage_task = spawn_stage(&shared, &loaded, &stage_topics, stop_rx, &shutdown_rx);
    let http_task = match tokens {
        None => None,
        Some(tokens) => Some(serve(&shared, &loaded, tokens, metrics, &shutdown_rx).await?),
    };
    // A stage that stops while the sources are read (its store gone for longer than
    // `postgres.retry_for`) is the run's error: the sources would wait for it in vain.
    let ingesting = ingest(&shared, &loaded, &options, sources, &shutdown_rx);
    let mut stage_ended = false;
    let ingested = tokio::select! {
        ingested = ingesting => ingested,
        stopped = &mut stage_task => {
            stage_ended = true;
            Err(stage_stopped(stopped))
        }
    };
    let mut ingested = match ingested {
        Ok(ingested) => ingested,
        Err(error) => {
            // Stop the stage (and the server) before reporting: no task outlives the run.
            shutdown_tx.send_replace(true);
            let error = cause(error, stage_task, stage_ended).await;
            if let Some(task) = http_task {
                let _ = task.await;
            }
            return Err(error);
        }
    };
    let targets = cluster.high_watermarks(&stage_topics)?;
    let report = if options.once {
        stop_tx.send_replace(StopWhen::Reached(targets));
        stage_task.await??
    } else {
        // Ready once everything produced so far is applied (by the group, when the store
        // is shared: its stored positions), then serve until Ctrl-C. A stage that stops on
        // its own (its store gone for longer than `postgres.retry_for`) stops the run as
        // Ctrl-C does, and is its error.
        let mut stage_ended = false;
        let serving = tokio::select! {
            served = ready_until_ctrl_c(&shared, &targets, &ingested) => served,
            stopped = &mut stage_task => {
                stage_ended = true;
                Err(stage_stopped(stopped))
            }
        };
        tracing::info!("shutting down");
        shutdown_tx.send_replace(true);
        ingested.stopped().await?;
        // In-flight requests are answered (a webhook waiting for the stopped stage: 503).
        if let Some(task) = http_task {
            task.await??;
        }
        if let Err(error) = serving {
            return Err(cause(error, stage_task, stage_ended).await);
        }
        stage_task.await??
    };
    let consumed = Consumed {
        sources: ingested.counts,
        per_topic: ingested.per_topic,
        dead_letters: ingested.dead_letters,
        report,
        topics: entity_topics,
        broker,
        started,
    };
    summarise(&shared, &options, consumed).await
}

/// A served run: ready once everything produced up to `targets` is applied, then serving
/// until Ctrl-C.
async fn ready_until_ctrl_c(
    shared: &Shared,
    targets: &stage::Positions,
    ingested: &driver::Started,
) -> anyhow::Result<()> {
    caught_up(shared, targets).await?;
    let produced = ingested.produced();
    println!("ready: {produced} events processed; Ctrl-C to stop");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
}

/// The run's error once it has been told to stop: the stage's own failure when it failed
/// (what waits for the stage fails too when it does), else `error`. `ended`: the stage's task
/// has already been awaited (its failure is `error`).
async fn cause(
    error: anyhow::Error,
    stage_task: tokio::task::JoinHandle<anyhow::Result<stage::ConsumeReport>>,
    ended: bool,
) -> anyhow::Error {
    if ended {
        return error;
    }
    match stage_task.await {
        Ok(Ok(_)) => error,
        stopped => stage_stopped(stopped),
    }
}

/// Why the stage's task ended before it was asked to.
fn stage_stopped(
    stopped: Result<anyhow::Result<stage::ConsumeReport>, tokio::task::JoinError>,
) -> anyhow::Error {
    match stopped {
        Ok(Err(error)) => error,
        Ok(Ok(_)) => anyhow::anyhow!("the stage stopped on its own"),
        Err(panicked) => anyhow::Error::new(panicked).context("the stage"),
    }
}

/// With `postgres.url`: the store, connected and migrated, and the sources without the
/// drop-folder files an earlier run already read.
async fn open_store(
    loaded: &Loaded,
    sources: Vec<connectors::FileSource>,
) -> anyhow::Result<(Option<mdm::store::Store>, Vec<connectors::FileSource>)> {
    let config = &loaded.config;
    let Some(url) = &config.postgres.url else {
        return Ok((None, sources));
    };
    let store = mdm::store::Store::connect(url, &config.postgres).await?;
    let applied = store.migrate().await?;
    tracing::info!(?applied, "postgres ready");
    let mut unread = Vec::new();
    for source in sources {
        match source.config().drop_key() {
            Some(key) if store.source_position(&key).await?.is_some() => {}
            _ => unread.push(source),
        }
    }
    Ok((Some(store), unread))
}

/// With a store: master data restored from it, and the analytics from its events.
async fn restore(
    master: &mut Master,
    analytics: &Analytics,
) -> anyhow::Result<Option<mdm::store::Restored>> {
    if master.store().is_none() {
        return Ok(None);
    }
    let started = Instant::now();
    let progress = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template(
            "{spinner} restoring from PostgreSQL {pos:>9} records {per_sec:>12}",
        )
        .expect("valid template"),
    );
    let restored = master
        .restore(|events| {
            progress.inc(events.len() as u64);
            analytics.append(events)?;
            Ok(())
        })
        .await?;
    progress.finish_and_clear();
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "restored from PostgreSQL"
    );
    Ok(Some(restored))
}

/// Connects to the broker (the embedded one without `kafka.bootstrap_servers`), creating the
/// topics, and sets where the group consumes from: the topics' beginning when nothing is
/// stored, the stored positions after a restore.
async fn connect(
    loaded: &Loaded,
    entity_topics: &[String],
    master: &mut Master,
    restored: Option<&mdm::store::Restored>,
    options: &RunOptions,
) -> anyhow::Result<Arc<Cluster>> {
    let config = &loaded.config;
    let mut all_topics = entity_topics.to_vec();
    all_topics.push(config.kafka.dead_letter_topic());
    let cluster = Arc::new(
        Cluster::connect(&config.kafka, &all_topics)
            .await
            .context("connecting to Kafka")?,
    );
    if options.no_sources && (cluster.is_embedded() || master.store().is_none()) {
        bail!(
            "--no-sources makes this process one more member of a consumer group: it needs a real broker (kafka.bootstrap_servers) and the store the group shares (postgres.url)"
        );
    }
    if !cluster.is_embedded() && master.store().is_none() {
        // The hub lives in memory only: each start rebuilds it from the topics' beginning,
        // so the group's committed offsets (which an in-memory apply moved on) are reset.
        let beginning: stage::Positions = cluster
            .high_watermarks(entity_topics)?
            .into_keys()
            .map(|partition| (partition, 0))
            .collect();
        cluster
            .commit_positions(&beginning)
            .context("resetting the group's offsets to the topics' beginning (no store)")?;
        tracing::info!("no store: consuming every topic from its beginning to rebuild the hub");
    }
    if let Some(restored) = restored {
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
            master.coordinate(restored.synced);
        }
    }
    Ok(cluster)
}

/// The MDM and analytics stage, consuming `topics` until stopped.
fn spawn_stage(
    shared: &Arc<Shared>,
    loaded: &Loaded,
    topics: &[String],
    stop: watch::Receiver<StopWhen>,
    shutdown: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<anyhow::Result<stage::ConsumeReport>> {
    let (shared, topics, shutdown) = (shared.clone(), topics.to_vec(), shutdown.clone());
    let stage_config = loaded.config.stage.clone();
    let dead_letter_topic = loaded.config.kafka.dead_letter_topic();
    tokio::spawn(async move {
        let cluster = shared.cluster.clone();
        let consumed = stage::consume(
            &cluster,
            "mdm_analytics",
            &cluster.config.group_id,
            &topics,
            &stage_config,
            stop,
            shutdown,
            |message| {
                if message.topic == dead_letter_topic {
                    stage::kept_dead_letter(message)
                } else {
                    stage::canonical("mdm_analytics", message)
                }
            },
            MasterStage {
                shared: shared.clone(),
            },
        )
        .await;
        // Whoever waits for the stage (a webhook's answer, a source's confirmation) stops.
        shared.stage_stopped();
        // The handler's error keeps its chain (a store failure's SQLSTATE, its context).
        consumed.map_err(|error| match error {
            stage::StageError::Stage(error) => error.context("the MDM and analytics stage"),
            stage::StageError::Pipeline(error) => anyhow::Error::new(error),
        })
    })
}

/// A served run's background work and API: the live dashboard (its results stored), the
/// quality digests, and the HTTP server on `http.listen`.
async fn serve(
    shared: &Arc<Shared>,
    loaded: &Loaded,
    (tokens, inactive): (crate::auth::Tokens, Vec<String>),
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let config = &loaded.config;
    let master = shared.master.clone();
    shared.live.clone().spawn(
        shared.analytics.clone(),
        move |dashboard, exceptions| {
            let master = master.clone();
            async move {
                if let Err(error) = store_live(&master, &dashboard, &exceptions).await {
                    // The next refresh writes again; the dashboard does not need PostgreSQL.
                    tracing::warn!(error = %format!("{error:#}"), "writing live KPIs to PostgreSQL");
                }
            }
        },
        shutdown.clone(),
    );
    if let Some(every) = config.quality.notify_every {
        crate::quality::spawn_digests(
            shared.master.clone(),
            config.quality.notify.clone(),
            every,
            shutdown.clone(),
        );
    }
    let listener = tokio::net::TcpListener::bind(&config.http.listen)
        .await
        .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen))?;
    println!("listening on http://{}", listener.local_addr()?);
    if !inactive.is_empty() {
        tracing::info!(tokens = %inactive.join(", "), "API tokens inactive");
    }
    if tokens.is_empty() {
        tracing::warn!(
            "no API token is active: every endpoint but /health answers 401; set GOLDTHREAD_ADMIN_TOKEN (or the variables named in http.tokens)"
        );
    }
    let webhooks = driver::webhook::Webhooks::new(config.webhooks.clone());
    let router = http::router(shared.clone(), webhooks, metrics, tokens);
    let limits = http::Limits {
        max_connections: config.http.max_connections,
        header_read_timeout: config.http.header_read_timeout,
        request_timeout: config.http.request_timeout,
    };
    Ok(tokio::spawn(http::serve(
        listener,
        router,
        limits,
        shutdown.clone(),
    )))
}

/// Starts every source (`connectors::driver::start`); none with `--no-sources`.
async fn ingest(
    shared: &Arc<Shared>,
    loaded: &Loaded,
    options: &RunOptions,
    files: Vec<connectors::FileSource>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<driver::Started> {
    let (config, skip) = (&loaded.config, options.no_sources);
    let sources = driver::Sources {
        files, // none were opened with --no-sources
        file_configs: if skip { &[] } else { &config.sources },
        data_dir: config.data_dir.clone(),
        debezium: if skip { &[] } else { &config.debezium },
        stage: &config.stage,
        postgres: if skip { &[] } else { &config.postgres_sources },
    };
    let (cluster, positions, health) = (&shared.cluster, shared, &shared.sources);
    let topics = &shared.topics;
    Ok(driver::start(
        cluster,
        positions,
        health,
        topics,
        sources,
        options.once,
        shutdown,
    )
    .await?)
}

/// Waits until everything produced up to `targets` is applied: by this process, or by the
/// group when the store is shared (its stored positions).
async fn caught_up(shared: &Shared, targets: &stage::Positions) -> anyhow::Result<()> {
    match shared.master.store() {
        Some(store) if store.is_coordinated() => loop {
            if stage::reached(&store.positions().await?, targets) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        },
        _ => {
            shared
                .progress()
                .wait_for(|progress| stage::reached(&progress.positions, targets))
                .await?;
            Ok(())
        }
    }
}

/// What the run read, produced and consumed, for its summary.
struct Consumed {
    sources: Vec<connectors::SourceCounts>,
    per_topic: std::collections::BTreeMap<String, u64>,
    dead_letters: Vec<pipeline::DeadLetter>,
    report: stage::ConsumeReport,
    topics: Vec<String>,
    broker: String,
    started: Instant,
}

/// After the stage stopped: the KPIs and exceptions of the period (stored, exported), the
/// quality report, the summary and, with `--out`, the files.
async fn summarise(
    shared: &Shared,
    options: &RunOptions,
    consumed: Consumed,
) -> anyhow::Result<Summary> {
    let kpis = shared.kpis(options.from, options.to).await?;
    let exceptions = shared.exceptions(Some(kpis.to)).await?;
    if let Some(dir) = &options.export {
        shared
            .analytics
            .export(dir, kpis.from, kpis.to, kpis.as_of)
            .with_context(|| format!("exporting the analytics tables to {}", dir.display()))?;
    }
    if let Some(store) = shared.master.store() {
        let kpi_rows = KpiRows {
            from: kpis.from,
            to: kpis.to,
            rows: &kpis.rows,
        };
        store
            .write_kpi_snapshot(kpi_rows, &exceptions, kpis.as_of)
            .await
            .context("writing KPIs to PostgreSQL")?;
    }
    // The recording standard's report: the golden-record rules evaluated now.
    let quality = shared.master.quality_report(None, 8);
    shared
        .master
        .store_quality()
        .await
        .context("writing the quality issues to PostgreSQL")?;
    let hub = shared.master.hub();
    metrics::gauge!(names::MDM_GOLDEN_RECORDS, "entity" => "person")
        .set(hub.counts().golden_persons as f64);
    metrics::gauge!(names::MDM_GOLDEN_RECORDS, "entity" => "property")
        .set(hub.counts().golden_properties as f64);
    let report = &consumed.report;
    let topics = consumed
        .topics
        .iter()
        .map(|topic| TopicCounts {
            topic: topic.clone(),
            produced: consumed.per_topic.get(topic).copied().unwrap_or(0),
            consumed: report.consumed_per_topic.get(topic).copied().unwrap_or(0),
        })
        .collect();
    let summary = Summary {
        sources: consumed.sources,
        topics,
        dead_letters: consumed.dead_letters.len() as u64 + report.dead_letters,
        stage_dead_letters: report.dead_letters,
        mdm: hub.counts(),
        quality: hub.quality().clone(),
        quality_issues: shared.master.quality_open_per_rule(),
        vulnerabilities: hub.vulnerability_counts(kpis.to),
        exceptions: sql::kpi::exception_counts(&exceptions),
        kpis,
        broker: consumed.broker,
        elapsed_seconds: consumed.started.elapsed().as_secs_f64(),
    };
    if let Some(out) = &options.out {
        output::write(out, &summary, &hub, &consumed.dead_letters, &exceptions)
            .with_context(|| format!("writing {}", out.display()))?;
        let formats = ["html", "csv", "json"].map(String::from);
        crate::quality::write(&out.join("quality"), &quality, &formats)
            .with_context(|| format!("writing {}/quality", out.display()))?;
    }
    Ok(summary)
}

/// With PostgreSQL, the dashboard's periods to `goldthread.kpi_live` and the exceptions in
/// force to `goldthread.kpi_exception`.
async fn store_live(
    master: &Master,
    dashboard: &sql::live::Dashboard,
    exceptions: &[sql::ExceptionRow],
) -> anyhow::Result<()> {
    let Some(store) = master.store() else {
        return Ok(());
    };
    let periods: Vec<(&str, KpiRows<'_, _>)> = dashboard
        .periods
        .iter()
        .map(|period| {
            let kpis = KpiRows {
                from: period.kpis.from,
                to: period.kpis.to,
                rows: &period.kpis.rows,
            };
            (period.name, kpis)
        })
        .collect();
    Ok(store
        .write_kpi_live(&periods, exceptions, dashboard.as_of)
        .await?)
}

/// The MDM and analytics stage: master data applies the batch (and stores it, or returns
/// with its write still to do, for the stage to run while it handles the next batch); the
/// analytics learn what it changed.
struct MasterStage {
    shared: Arc<Shared>,
}

impl stage::Handler<anyhow::Error> for MasterStage {
    async fn handle(
        &mut self,
        batch: &Arc<stage::Batch>,
    ) -> anyhow::Result<stage::Handled<anyhow::Error>> {
        let shared = &self.shared;
        let applied = shared.master.apply_batch(batch).await?;
        shared.learn_batch(batch, &applied)?;
        if !applied.unstored {
            shared.batch_written(batch, &applied.kept);
            return Ok(stage::Handled::Written);
        }
        let (shared, batch) = (shared.clone(), batch.clone());
        Ok(stage::Handled::Writing(Box::pin(async move {
            shared
                .master
                .store_applied(&batch.consumed, &batch.kept_dead_letters)
                .await
                .context("writing the batch to PostgreSQL")?;
            shared.batch_written(&batch, &applied.kept);
            Ok(())
        })))
    }
}
