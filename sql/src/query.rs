//! Queries besides the suite: the dashboard's daily trend, and analysts' read-only SQL over
//! the live tables with a row limit and a timeout.

use std::time::Duration;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Float64Type};
use datafusion::execution::context::SQLOptions;
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

    /// Runs one analyst query: a single SELECT (no DDL, no DML, no SET), at most `row_limit`
    /// rows, stopped after `timeout`.
    pub async fn analyst_query(
        &self,
        sql: &str,
        row_limit: usize,
        timeout: Duration,
    ) -> Result<QueryResult, Error> {
        let started = std::time::Instant::now();
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let run = async {
            let frame = self.context.sql_with_options(sql, options).await?;
            let columns: Vec<String> = frame
                .schema()
                .fields()
                .iter()
                .map(|field| field.name().clone())
                .collect();
            let mut stream = frame.execute_stream().await?;
            let mut batches: Vec<RecordBatch> = Vec::new();
            let mut rows = 0;
            let mut truncated = false;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let room = row_limit - rows;
                if batch.num_rows() > room {
                    batches.push(batch.slice(0, room));
                    truncated = true;
                    break;
                }
                rows += batch.num_rows();
                batches.push(batch);
                if rows == row_limit {
                    // One more row would cut it: look without keeping it.
                    truncated = match stream.next().await {
                        Some(next) => next?.num_rows() > 0,
                        None => false,
                    };
                    break;
                }
            }
            Ok::<_, datafusion::error::DataFusionError>((batches, truncated, columns))
        };
        let (batches, truncated, columns) = tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| Error::Timeout(timeout))??;
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
            row_limit,
            elapsed_ms: started.elapsed().as_millis(),
        })
    }
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
