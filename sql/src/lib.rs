//! goldthread analytics: a DataFusion session over live tables of repair requests, work
//! orders, status updates, appointments, visits, properties, tenancies, vulnerability dates
//! and golden records, appended as events arrive (every version kept, the latest kept
//! apart, and the KPIs' per-day counts kept too: `kept`); the KPI suite (`sql/kpi/*.sql`)
//! for any date range, the data exception rules
//! (`sql/exceptions/*.sql`), the live dashboard (`live`: its periods, trend and exceptions,
//! recomputed as batches arrive) and analysts' read-only queries.
//!
//! Architecture invariant: no network IO, and no file IO but `Analytics::export`, which
//! writes the tables where its caller asks.

pub mod calendar;
pub mod config;
pub mod error;
mod kept;
pub mod kpi;
pub mod live;
pub mod query;
pub mod tables;

pub use config::AnalyticsConfig;
pub use error::Error;
pub use kpi::{ExceptionRow, KpiRow, KpiTable};
pub use query::{QueryResult, TrendPoint};
pub use tables::{Analytics, GoldenPersonRow, GoldenPropertyRow};
