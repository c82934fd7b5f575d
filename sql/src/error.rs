//! The sql crate's error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("KPI query {file}: {source}")]
    Kpi {
        file: &'static str,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// A KPI period that cannot be (it ends before it starts).
    #[error("{0}")]
    Period(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("the query ran longer than {0:?} and was stopped")]
    Timeout(std::time::Duration),
    /// An analyst query goldthread will not run (too long, an answer too large).
    #[error("{0}")]
    Refused(String),
    /// Every analysts' thread is busy and as many queries wait: try again shortly.
    #[error("analysts' queries are all busy; try again shortly (analytics.sql_concurrency)")]
    Busy,
}

impl Error {
    pub fn class(&self) -> pipeline::ErrorClass {
        match self {
            Error::Config(_) | Error::Period(_) | Error::Timeout(_) | Error::Refused(_) => {
                pipeline::ErrorClass::BadInput
            }
            Error::Busy => pipeline::ErrorClass::External,
            _ => pipeline::ErrorClass::Bug,
        }
    }
}
