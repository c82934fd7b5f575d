//! The pipeline crate's error type, classified by who is at fault and whether a retry helps.

/// Who is at fault for an error; the runtime decides retry / dead-letter / stop from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad configuration or input: fix and rerun; retrying does not help.
    User,
    /// An external system (broker, database) failed or is unreachable: a retry may help.
    External,
    /// A bug in goldthread.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("kafka: {0}")]
    KafkaTimeout(String),
    #[error("event encoding: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("embedded broker: {0}")]
    Embedded(String),
    /// A task the pipeline spawned panicked or was cancelled: what it was, and why.
    #[error("{0} stopped: {1}")]
    Task(&'static str, String),
}

impl Error {
    pub fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        Error::Kafka {
            context: context.into(),
            source,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Kafka { .. } | Error::KafkaTimeout(_) => ErrorClass::External,
            Error::Encode(_) | Error::Embedded(_) | Error::Task(..) => ErrorClass::Internal,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
