//! The live results behind the repairs managers' dashboard: the KPI suite for today, this
//! month and this regulator year (1 April - 31 March), the daily trend and the data
//! exceptions, computed again shortly after each applied batch ([`Live::changed`]) and
//! handed to waiting readers ([`Live::newer_than`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use crate::{Analytics, Error, ExceptionRow, KpiTable, TrendPoint};

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
    /// The first [`EXCEPTIONS_SHOWN`] exceptions.
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

impl Analytics {
    /// Computes the dashboard once; `exceptions` are all of them (the dashboard keeps the
    /// first few), for whoever stores them.
    pub async fn dashboard(&self, version: u64) -> Result<(Dashboard, Vec<ExceptionRow>), Error> {
        let started = std::time::Instant::now();
        let today = Utc::now().date_naive();
        let day = match self.data_span().await? {
            Some((_, last)) if last < today => last,
            _ => today,
        };
        let as_of = crate::calendar::as_of(day);
        let month = day.with_day(1).expect("the first of a month");
        let (year_start, _) = crate::calendar::regulator_year(day);
        let mut periods = Vec::new();
        for (name, from) in [
            ("today", day),
            ("month", month),
            ("regulator_year", year_start),
        ] {
            periods.push(Period {
                name,
                kpis: self.kpis(from, day, as_of).await?,
            });
        }
        let trend = self.trend(year_start, day).await?;
        let exceptions = self.exceptions(as_of).await?;
        let dashboard = Dashboard {
            version,
            computed_at: Utc::now(),
            day,
            as_of,
            periods,
            trend,
            exception_counts: crate::kpi::exception_counts(&exceptions),
            exceptions: exceptions.iter().take(EXCEPTIONS_SHOWN).cloned().collect(),
            compute_ms: started.elapsed().as_millis(),
        };
        Ok((dashboard, exceptions))
    }
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
    pub fn changed(&self, ingested: Option<DateTime<Utc>>) {
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

    /// Computes the dashboard at once and again after each change until `shutdown`,
    /// recording how long events took to show (`sql_event_to_kpi_seconds`); `computed` is
    /// given each dashboard and all its exceptions before it is published (to store them).
    pub fn spawn<F, Fut>(
        self: Arc<Self>,
        analytics: Arc<Analytics>,
        mut computed: F,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()>
    where
        F: FnMut(Arc<Dashboard>, Vec<ExceptionRow>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        tokio::spawn(async move {
            let mut changed = self.changed.subscribe();
            let mut version = 0;
            loop {
                if version > 0 {
                    tokio::select! {
                        result = changed.changed() => if result.is_err() { return },
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                    tokio::time::sleep(SETTLE).await;
                }
                changed.borrow_and_update();
                let since = self.pending_since.lock().expect("live lock").take();
                version += 1;
                match analytics.dashboard(version).await {
                    Ok((dashboard, exceptions)) => {
                        let dashboard = Arc::new(dashboard);
                        computed(dashboard.clone(), exceptions).await;
                        if let Some(since) = since {
                            let seconds =
                                (Utc::now() - since).num_microseconds().unwrap_or(0) as f64 / 1e6;
                            metrics::histogram!(pipeline::metrics::SQL_EVENT_TO_KPI_SECONDS)
                                .record(seconds);
                        }
                        self.dashboard.send_replace(Some(dashboard));
                    }
                    Err(error) => tracing::warn!(%error, "computing the dashboard"),
                }
            }
        })
    }
}
