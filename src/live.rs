//! The live results behind the dashboard: the KPI suite for today, this month and this
//! regulator year (1 April - 31 March), the daily trend and the data exceptions, computed
//! again shortly after each applied batch, handed to waiting HTTP clients and, with
//! PostgreSQL, written to `goldthread.kpi_live` and `goldthread.kpi_exception`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;
use sql::{ExceptionRow, KpiTable, TrendPoint};
use tokio::sync::watch;

use mdm::Master;
use sql::Analytics;

/// The exception list the dashboard shows at most (the counts cover all of them).
const EXCEPTIONS_SHOWN: usize = 200;

/// Waits this long after a batch for more before computing, so a burst costs one refresh.
const SETTLE: Duration = Duration::from_millis(50);

/// One computation of everything the dashboard shows.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// Increases with every computation; `GET /api/dashboard?after=N` waits for a newer one.
    pub version: u64,
    pub computed_at: DateTime<Utc>,
    /// "Today": the current date, or the last day with data when the data ends before it.
    pub day: NaiveDate,
    pub as_of: NaiveDateTime,
    pub periods: Vec<Period>,
    pub trend: Vec<TrendPoint>,
    pub exception_counts: std::collections::BTreeMap<String, usize>,
    pub exceptions: Vec<ExceptionRow>,
    /// Milliseconds the computation took.
    pub compute_ms: u128,
}

#[derive(Debug, Clone, Serialize)]
pub struct Period {
    /// today | month | regulator_year
    pub name: &'static str,
    pub kpis: KpiTable,
}

/// What the stage tells the refresher, and what the refresher publishes.
#[derive(Debug)]
pub struct Live {
    /// Bumped after each applied batch.
    changed: watch::Sender<u64>,
    /// When the oldest event not yet reflected in the dashboard entered goldthread.
    pending_since: Mutex<Option<DateTime<Utc>>>,
    dashboard: watch::Sender<Option<Arc<Dashboard>>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            changed: watch::channel(0).0,
            pending_since: Mutex::new(None),
            dashboard: watch::channel(None).0,
        }
    }
}

impl Live {
    /// Called after a batch is applied; `ingested` is when its oldest event was ingested.
    pub fn batch_applied(&self, ingested: Option<DateTime<Utc>>) {
        if let Some(ingested) = ingested {
            let mut pending = self.pending_since.lock().expect("live lock");
            *pending = Some(pending.map_or(ingested, |since| since.min(ingested)));
        }
        self.changed.send_modify(|count| *count += 1);
    }

    /// The latest dashboard newer than `after`, waiting up to `wait` for one; the latest
    /// one (or none) when none comes.
    pub async fn newer_than(&self, after: Option<u64>, wait: Duration) -> Option<Arc<Dashboard>> {
        let mut receiver = self.dashboard.subscribe();
        let newer = |dashboard: &Option<Arc<Dashboard>>| {
            dashboard
                .as_ref()
                .is_some_and(|dashboard| after.is_none_or(|after| dashboard.version > after))
        };
        let _ = tokio::time::timeout(wait, receiver.wait_for(newer)).await;
        receiver.borrow().clone()
    }
}

/// Computes the dashboard once.
pub async fn compute(
    analytics: &Analytics,
    master: &Master,
    version: u64,
) -> anyhow::Result<Dashboard> {
    let started = std::time::Instant::now();
    let today = Utc::now().date_naive();
    let day = match analytics.data_span().await? {
        Some((_, last)) if last < today => last,
        _ => today,
    };
    let as_of = sql::calendar::as_of(day);
    let month = day.with_day(1).expect("the first of a month");
    let (year_start, _) = sql::calendar::regulator_year(day);
    let mut periods = Vec::new();
    for (name, from) in [
        ("today", day),
        ("month", month),
        ("regulator_year", year_start),
    ] {
        periods.push(Period {
            name,
            kpis: analytics.kpis(from, day, as_of).await?,
        });
    }
    let trend = analytics.trend(year_start, day).await?;
    let exceptions = analytics.exceptions(as_of).await?;
    let exception_counts = sql::kpi::exception_counts(&exceptions);
    if let Some(store) = master.store() {
        let tables: Vec<(&str, &KpiTable)> = periods
            .iter()
            .map(|period| (period.name, &period.kpis))
            .collect();
        if let Err(error) = crate::kpi_store::write_live(store, &tables, &exceptions, as_of).await {
            // The next refresh writes again; the dashboard itself does not need PostgreSQL.
            tracing::warn!(error = %format!("{error:#}"), "writing live KPIs to PostgreSQL");
        }
    }
    Ok(Dashboard {
        version,
        computed_at: Utc::now(),
        day,
        as_of,
        periods,
        trend,
        exception_counts,
        exceptions: exceptions.into_iter().take(EXCEPTIONS_SHOWN).collect(),
        compute_ms: started.elapsed().as_millis(),
    })
}

/// Recomputes the dashboard after each change until shutdown, recording how long events
/// took to show (`sql_event_to_kpi_seconds`).
pub fn spawn(
    live: Arc<Live>,
    analytics: Arc<Analytics>,
    master: Arc<Master>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut changed = live.changed.subscribe();
        let mut version = 0;
        loop {
            // The first computation needs no change to wait for.
            if version > 0 {
                tokio::select! {
                    result = changed.changed() => if result.is_err() { return },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                tokio::time::sleep(SETTLE).await;
            }
            changed.borrow_and_update();
            let since = live.pending_since.lock().expect("live lock").take();
            version += 1;
            match compute(&analytics, &master, version).await {
                Ok(dashboard) => {
                    if let Some(since) = since {
                        let seconds =
                            (Utc::now() - since).num_microseconds().unwrap_or(0) as f64 / 1e6;
                        metrics::histogram!(pipeline::metrics::SQL_EVENT_TO_KPI_SECONDS)
                            .record(seconds);
                    }
                    live.dashboard.send_replace(Some(Arc::new(dashboard)));
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "computing the dashboard")
                }
            }
        }
    })
}
