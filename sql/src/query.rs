//! Queries besides the suite: the dashboard's daily trend, and analysts' read-only SQL over
//! the live tables with a row limit and a timeout.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::GreedyMemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionContext;
use futures_util::StreamExt;
use serde::Serialize;

use crate::error::Error;
use crate::tables::Analytics;

pub const TREND: &str = include_str!("../dashboard/trend.sql");

/// One day of the dashboard's trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    pub day: NaiveDate,
    pub made: f64,
    pub kept_pct: Option<f64>,
    pub no_access_rate_pct: Option<f64>,
}

/// An analyst query's answer: rows as JSON objects, and whether the limit or the timeout
/// cut it short.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<serde_json::Value>,
    /// More rows were available than `row_limit`.
    pub truncated: bool,
    pub row_limit: usize,
    pub elapsed_ms: u128,
}

impl Analytics {
    /// Appointments made, kept % and no-access rate per slot day from `from` to `to`.
    pub async fn trend(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<TrendPoint>, Error> {
        let query = TREND
            .replace("$from", &format!("DATE '{from}'"))
            .replace("$to", &format!("DATE '{to}'"));
        let batches = async { self.context.sql(&query).await?.collect().await }
            .await
            .map_err(|source| Error::Kpi {
                file: "dashboard/trend.sql",
                source,
            })?;
        let mut points = Vec::new();
        for batch in batches {
            let days = batch.column(0).as_primitive::<Date32Type>();
            let float = |index: usize| batch.column(index).as_primitive::<Float64Type>();
            let (made, kept, no_access) = (float(1), float(2), float(3));
            let get = |array: &datafusion::arrow::array::Float64Array, index: usize| {
                (!array.is_null(index)).then(|| array.value(index))
            };
            for index in 0..batch.num_rows() {
                let Some(day) = days.value_as_date(index) else {
                    continue;
                };
                points.push(TrendPoint {
                    day,
                    made: made.value(index),
                    kept_pct: get(kept, index),
                    no_access_rate_pct: get(no_access, index),
                });
            }
        }
        Ok(points)
    }

    /// Runs one analyst query on the analysts' threads: a single SELECT (no DDL, no DML, no
    /// SET) of at most `analytics.sql_max_length` bytes, answering at most
    /// `analytics.sql_row_limit` rows and `analytics.sql_max_response_bytes`, within the
    /// analysts' memory pool, stopped after `analytics.sql_timeout`. Refused at once
    /// ([`Error::Busy`]) while `analytics.sql_concurrency` queries run and as many wait.
    pub async fn analyst_query(&self, sql: &str) -> Result<QueryResult, Error> {
        self.analysts.run(sql).await
    }
}

/// Functions analysts may not call: each makes a value as large as its argument asks
/// (`repeat('x', 1000000000)` is a gigabyte), outside any memory pool.
const DENIED_FUNCTIONS: &[&str] = &[
    "repeat",
    "lpad",
    "rpad",
    "array_repeat",
    "range",
    "generate_series",
];

/// The analysts' own threads: each has a large stack (deep expressions are planned by
/// recursion) and a runtime of its own, so an expensive query never holds up the tokio
/// workers that serve `/health`, webhooks and the stage. They share a session over the
/// live tables with a bounded memory pool.
pub(crate) struct Analysts {
    jobs: std::sync::mpsc::SyncSender<Job>,
    limits: Limits,
}

impl std::fmt::Debug for Analysts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analysts")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    row_limit: usize,
    timeout: Duration,
    max_length: usize,
    max_response_bytes: usize,
}

struct Job {
    sql: String,
    answer: tokio::sync::oneshot::Sender<Result<QueryResult, Error>>,
}

/// Each analysts' thread's stack: a thousand-term expression needs a few megabytes to plan.
const ANALYST_STACK_BYTES: usize = 64 * 1024 * 1024;

impl Analysts {
    /// Starts `config.sql_concurrency` threads over a session that shares `context`'s tables
    /// and views. The threads end when this is dropped (after the query they are running).
    pub(crate) fn start(
        context: &SessionContext,
        config: &crate::AnalyticsConfig,
    ) -> Result<Analysts, Error> {
        let pool = GreedyMemoryPool::new(config.sql_memory_limit_mib.saturating_mul(1024 * 1024));
        // A query that needs more memory fails rather than spilling: analysts do not get to
        // fill the disk either.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .build_arc()?;
        let state = SessionStateBuilder::new_from_existing(context.state())
            .with_runtime_env(runtime)
            .build();
        let session = SessionContext::new_with_state(state);
        for name in DENIED_FUNCTIONS {
            session.deregister_udf(name);
            session.deregister_udtf(name);
        }
        let limits = Limits {
            row_limit: config.sql_row_limit,
            timeout: config.sql_timeout,
            max_length: config.sql_max_length,
            max_response_bytes: config.sql_max_response_bytes,
        };
        let workers = config.sql_concurrency.max(1);
        // As many may wait as run; more are refused rather than queued without bound.
        let (jobs, receiver) = std::sync::mpsc::sync_channel::<Job>(workers);
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        for index in 0..workers {
            let (receiver, session) = (receiver.clone(), session.clone());
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .map_err(|error| Error::Config(format!("analysts' runtime: {error}")))?;
            std::thread::Builder::new()
                .name(format!("analyst-{index}"))
                .stack_size(ANALYST_STACK_BYTES)
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting: one idle thread takes the next job.
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // Its caller stopped waiting while it queued.
                        if job.answer.is_closed() {
                            continue;
                        }
                        // A panic inside the engine (a bug of its own on some odd query)
                        // fails that query, not the thread: the pool keeps its size.
                        let answered =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                runtime.block_on(answer(&session, &job.sql, limits))
                            }));
                        let answer = answered.unwrap_or_else(|panic| {
                            let reason = panic
                                .downcast_ref::<&str>()
                                .map(|text| text.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            tracing::error!(%reason, "an analyst query panicked in the engine");
                            Err(Error::Refused(format!(
                                "the query failed inside the engine: {reason}"
                            )))
                        });
                        let _ = job.answer.send(answer);
                    }
                })
                .map_err(|error| Error::Config(format!("starting an analysts' thread: {error}")))?;
        }
        Ok(Analysts { jobs, limits })
    }

    async fn run(&self, sql: &str) -> Result<QueryResult, Error> {
        if sql.len() > self.limits.max_length {
            return Err(Error::Refused(format!(
                "the query is {} bytes; at most {} (analytics.sql_max_length)",
                sql.len(),
                self.limits.max_length
            )));
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = Job {
            sql: sql.to_string(),
            answer,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => return Err(Error::Busy),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(Error::Refused("the analysts' threads have stopped".into()));
            }
        }
        // The thread stops the query at its timeout when the query yields; a query that
        // computes for long between yields holds its thread (and further queries are
        // refused) until it does, but its caller is answered at the timeout.
        match tokio::time::timeout(self.limits.timeout, answered).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Refused("the analysts' thread stopped".into())),
            Err(_) => Err(Error::Timeout(self.limits.timeout)),
        }
    }
}

/// How deep an analyst's expressions may nest (`a + b` inside `... + c` is two deep).
/// Planning takes time quadratic in the depth: a thousand terms took seconds.
const MAX_EXPRESSION_DEPTH: usize = 256;

/// Refuses a statement whose expressions nest deeper than [`MAX_EXPRESSION_DEPTH`].
fn check_depth(statement: &datafusion::sql::parser::Statement) -> Result<(), DataFusionError> {
    use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};
    use std::ops::ControlFlow;

    struct Depth(usize);
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.0 += 1;
            if self.0 > MAX_EXPRESSION_DEPTH {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.0 -= 1;
            ControlFlow::Continue(())
        }
    }
    let datafusion::sql::parser::Statement::Statement(statement) = statement else {
        return Ok(());
    };
    match statement.visit(&mut Depth(0)) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(DataFusionError::Plan(format!(
            "expressions nest more than {MAX_EXPRESSION_DEPTH} deep"
        ))),
    }
}

/// Plans and runs one analyst query on an analysts' thread.
async fn answer(session: &SessionContext, sql: &str, limits: Limits) -> Result<QueryResult, Error> {
    let started = std::time::Instant::now();
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let run = async {
        let state = session.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect)?;
        check_depth(&statement)?;
        let plan = state.statement_to_plan(statement).await?;
        options.verify_plan(&plan)?;
        let frame = session.execute_logical_plan(plan).await?;
        let columns: Vec<String> = frame
            .schema()
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        let mut stream = frame.execute_stream().await?;
        let mut batches: Vec<RecordBatch> = Vec::new();
        let (mut rows, mut bytes) = (0, 0);
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            // A slice shares its batch's buffers: a row counts its share of them.
            let row_bytes = batch.get_array_memory_size() / batch.num_rows().max(1);
            let fit = (limits.max_response_bytes - bytes) / row_bytes.max(1);
            let take = batch.num_rows().min(limits.row_limit - rows).min(fit);
            if take == 0 && rows == 0 && batch.num_rows() > 0 {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "a row of the answer is {row_bytes} bytes, more than analytics.sql_max_response_bytes ({})",
                    limits.max_response_bytes
                )));
            }
            truncated = take < batch.num_rows();
            rows += take;
            bytes += take * row_bytes;
            batches.push(batch.slice(0, take));
            if truncated {
                break;
            }
            if rows == limits.row_limit {
                // One more row would cut it: look without keeping it.
                truncated = match stream.next().await {
                    Some(next) => next?.num_rows() > 0,
                    None => false,
                };
                break;
            }
        }
        Ok::<_, DataFusionError>((batches, truncated, columns))
    };
    let (batches, truncated, columns) = tokio::time::timeout(limits.timeout, run)
        .await
        .map_err(|_| Error::Timeout(limits.timeout))??;
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for batch in &batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    let bytes = writer.into_inner();
    let rows = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes).map_err(|error| Error::Config(error.to_string()))?
    };
    Ok(QueryResult {
        columns,
        rows,
        truncated,
        row_limit: limits.row_limit,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// What `Analytics::export` writes beside the tables, so another engine can run the suite
/// with the same settings (`sql/duckdb/compare.py`).
#[derive(Debug, Serialize)]
struct ExportManifest {
    /// Table name -> [(column, Arrow type)].
    tables: std::collections::BTreeMap<String, Vec<(String, String)>>,
    /// The placeholders' values, as the suite binds them.
    parameters: std::collections::BTreeMap<&'static str, String>,
}

impl Analytics {
    /// Writes every table (live, settings and golden) as `<name>.csv` into `dir`, with
    /// `manifest.json` naming the columns' types and the values the suite binds for the
    /// period (`from`, `to`, `as_of`, unit costs).
    pub fn export(
        &self,
        dir: &std::path::Path,
        from: NaiveDate,
        to: NaiveDate,
        as_of: chrono::NaiveDateTime,
    ) -> Result<(), Error> {
        let io = |error: std::io::Error| Error::Config(format!("{}: {error}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut manifest = ExportManifest {
            tables: Default::default(),
            parameters: crate::kpi::parameters(from, to, as_of, self)
                .into_iter()
                .collect(),
        };
        for (name, schema, batches) in self.snapshot() {
            let file = std::fs::File::create(dir.join(format!("{name}.csv"))).map_err(io)?;
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .with_timestamp_format("%Y-%m-%d %H:%M:%S%.6f".into())
                .build(std::io::BufWriter::new(file));
            for batch in &batches {
                writer.write(batch)?;
            }
            manifest.tables.insert(
                name.to_string(),
                schema
                    .fields()
                    .iter()
                    .map(|field| (field.name().clone(), field.data_type().to_string()))
                    .collect(),
            );
        }
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|error| Error::Config(error.to_string()))?;
        std::fs::write(dir.join("manifest.json"), text).map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AnalyticsConfig;

    async fn analytics(config: AnalyticsConfig) -> Analytics {
        Analytics::new(config).await.unwrap()
    }

    #[tokio::test]
    async fn deep_expressions_are_planned_on_the_analysts_threads() {
        let analytics = analytics(AnalyticsConfig::default()).await;
        let sum = |terms: usize| format!("SELECT {} AS total", vec!["1"; terms].join("+"));
        let answer = analytics.analyst_query(&sum(250)).await.unwrap();
        assert_eq!(answer.rows, vec![serde_json::json!({ "total": 250 })]);
        // A thousand terms overflowed a tokio worker's stack and took the process down; the
        // most the text allows (over 30,000) are refused at once.
        for terms in [1_000, 32_000] {
            let started = std::time::Instant::now();
            let refused = analytics.analyst_query(&sum(terms)).await.unwrap_err();
            assert!(
                refused.to_string().contains("nest more than 256 deep"),
                "{refused}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
        }
        let nested = format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000));
        let refused = analytics.analyst_query(&nested).await.unwrap_err();
        assert!(
            refused.to_string().contains("RecursionLimitExceeded"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn long_queries_and_functions_that_only_burn_memory_are_refused() {
        let analytics = analytics(AnalyticsConfig::default()).await;
        let long = format!("SELECT 1 -- {}", "x".repeat(64 * 1024));
        let refused = analytics.analyst_query(&long).await.unwrap_err();
        assert!(
            refused.to_string().contains("analytics.sql_max_length"),
            "{refused}"
        );
        for sql in [
            "SELECT length(repeat('x', 1000000000))",
            "SELECT count(*) FROM range(10000000000)",
            "SELECT count(*) FROM generate_series(1, 10000000000)",
        ] {
            let refused = analytics.analyst_query(sql).await.unwrap_err();
            assert!(matches!(refused, Error::DataFusion(_)), "{sql}: {refused}");
        }
        // The KPI session keeps every function.
        assert!(analytics.query("SELECT repeat('ab', 2)").await.is_ok());
    }

    #[tokio::test]
    async fn memory_answers_and_concurrency_are_bounded() {
        let config = AnalyticsConfig {
            sql_memory_limit_mib: 1,
            sql_max_response_bytes: 64 * 1024,
            sql_row_limit: 1_000_000,
            sql_concurrency: 1,
            sql_timeout: Duration::from_secs(1),
            ..AnalyticsConfig::default()
        };
        let analytics = analytics(config).await;
        // Sorting 18,628 x 18,628 rows needs far more than 1 MiB, and may not spill to disk.
        let sorted = analytics
            .analyst_query(
                "SELECT a.day, b.day AS other FROM calendar a, calendar b ORDER BY b.working_day_number - a.working_day_number",
            )
            .await
            .unwrap_err();
        assert!(
            sorted.to_string().contains("Resources exhausted"),
            "{sorted}"
        );
        // 18,628 days are more than 64 KiB of Arrow data: the answer is cut, and says so.
        let cut = analytics
            .analyst_query("SELECT day, working_day_number FROM calendar")
            .await
            .unwrap();
        assert!(cut.truncated);
        assert!(
            !cut.rows.is_empty() && cut.rows.len() < 18_628,
            "{}",
            cut.rows.len()
        );
        // One slow query runs, one waits, the third is refused at once.
        let slow = "SELECT count(*) FROM calendar a JOIN calendar b ON a.day <> b.day WHERE a.day < DATE '2005-01-01'";
        let later = |millis: u64, sql: &'static str| {
            let analytics = &analytics;
            async move {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                let started = std::time::Instant::now();
                (analytics.analyst_query(sql).await, started.elapsed())
            }
        };
        let (first, second, third) =
            tokio::join!(later(0, slow), later(100, slow), later(200, "SELECT 1"));
        assert!(matches!(third.0, Err(Error::Busy)), "{third:?}");
        assert!(third.1 < Duration::from_millis(100), "{third:?}");
        // Their callers are answered at the timeout, whatever the thread is doing.
        for (answer, waited) in [first, second] {
            assert!(matches!(answer, Err(Error::Timeout(_))), "{answer:?}");
            assert!(waited < Duration::from_millis(1_500), "{waited:?}");
        }
        // Once the thread is free (the second query is skipped: nobody waits for it), the
        // next is answered.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match analytics.analyst_query("SELECT 1").await {
                Ok(_) => break,
                Err(Error::Busy | Error::Timeout(_)) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(error) => panic!("{error}"),
            }
        }
    }

    #[tokio::test]
    async fn a_panic_inside_the_engine_fails_the_query_not_the_thread() {
        use datafusion::arrow::datatypes::DataType;
        use datafusion::logical_expr::{Volatility, create_udf};
        let context = SessionContext::new();
        context.register_udf(create_udf(
            "engine_bug",
            vec![],
            DataType::Int64,
            Volatility::Volatile,
            Arc::new(|_| panic!("an engine bug")),
        ));
        let config = AnalyticsConfig {
            sql_concurrency: 1,
            ..AnalyticsConfig::default()
        };
        let analysts = Analysts::start(&context, &config).unwrap();
        for _ in 0..3 {
            let failed = analysts.run("SELECT engine_bug()").await.unwrap_err();
            assert!(failed.to_string().contains("an engine bug"), "{failed}");
        }
        // The one thread is still there.
        assert!(analysts.run("SELECT 1").await.is_ok());
    }
}
