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
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("the query ran longer than {0:?} and was stopped")]
    Timeout(std::time::Duration),
}

impl Error {
    pub fn class(&self) -> pipeline::ErrorClass {
        match self {
            Error::Config(_) | Error::Timeout(_) => pipeline::ErrorClass::User,
            _ => pipeline::ErrorClass::Internal,
        }
    }
}
