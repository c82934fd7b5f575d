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
}

impl Error {
    pub fn class(&self) -> pipeline::ErrorClass {
        match self {
            Error::Config(_) => pipeline::ErrorClass::User,
            _ => pipeline::ErrorClass::Internal,
        }
    }
}
