//! The pipeline crate's error type, classified by who is at fault and whether a retry helps.

/// What kind of failure an error is, whichever crate raised it: callers decide from this
/// alone whether to retry (only `External`), dead-letter or refuse (`BadInput`), answer
/// 404 or 409, or stop (`Bug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad configuration or input: fix and rerun; retrying does not help.
    BadInput,
    /// What the request names does not exist.
    NotFound,
    /// The request contradicts the current state.
    Conflict,
    /// An external system (broker, database) failed or is unreachable: a retry may help.
    External,
    /// A bug in goldthread.
    Bug,
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
            Error::Encode(_) | Error::Embedded(_) | Error::Task(..) => ErrorClass::Bug,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, outermost first (`doing: because: because`), as
/// logs and answers show them.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}
