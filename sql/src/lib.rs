//! goldthread analytics: a DataFusion session over live tables of repairs, work orders,
//! appointments, visits and golden records, appended as events arrive, and the KPI suite
//! (`sql/kpi/*.sql`) run over it for any date range.
//!
//! Architecture invariant: no IO here besides DataFusion's in-memory execution.

pub mod calendar;
pub mod config;
pub mod error;
pub mod kpi;
pub mod query;
pub mod tables;

pub use config::AnalyticsConfig;
pub use error::Error;
pub use kpi::{ExceptionRow, KpiRow, KpiTable};
pub use query::{QueryResult, TrendPoint};
pub use tables::Analytics;
