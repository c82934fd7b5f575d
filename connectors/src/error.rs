//! The connectors crate's error type: what stops a source (its configuration, a file, the
//! broker, a source database, where positions are kept), classified so that a supervised
//! source is retried only when a retry can help. A bad row is not an error: it becomes a dead
//! letter.

use std::path::PathBuf;

/// A failure of the caller's [`crate::driver::Positions`] (goldthread's store).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source configuration is wrong; the message names the source and key.
    #[error("source `{source_name}`: {message}")]
    Config {
        source_name: String,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    /// The broker failed (producing, flushing, consuming a source's topics).
    #[error(transparent)]
    Kafka(#[from] pipeline::Error),
    /// A source database refused a statement or failed.
    #[error("{doing}")]
    Postgres {
        doing: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// Where positions are kept (the caller's [`crate::driver::Positions`]) failed.
    #[error("keeping the sources' positions")]
    Positions {
        class: pipeline::ErrorClass,
        #[source]
        source: BoxError,
    },
    /// A source's reader, producer or task stopped before it was done, or what the source
    /// reads is not there (yet: a table may be created after goldthread starts).
    #[error("{0}")]
    Unavailable(String),
    /// A named source's failure.
    #[error("{kind} source `{name}`")]
    In {
        kind: &'static str,
        name: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    pub fn config(source_name: &str, message: impl Into<String>) -> Self {
        Error::Config {
            source_name: source_name.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A source database's failure while doing `doing`.
    pub fn postgres(doing: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let doing = doing.into();
        move |source| Error::Postgres { doing, source }
    }

    /// The failure of source `name` (of `kind`: `postgres`, `debezium`, `file`).
    pub fn in_source(kind: &'static str, name: &str) -> impl FnOnce(Error) -> Error {
        let name = name.to_string();
        move |source| Error::In {
            kind,
            name,
            source: Box::new(source),
        }
    }

    /// Who is at fault. Configuration errors are the user's; so are a login or database the
    /// server does not know. IO, the broker, a source database otherwise and a stopped task
    /// are failures elsewhere, which a retry may mend (a table may be mid-migration).
    pub fn class(&self) -> pipeline::ErrorClass {
        match self {
            Error::Config { .. } => pipeline::ErrorClass::BadInput,
            Error::Io { .. } | Error::Csv { .. } | Error::Unavailable(_) => {
                pipeline::ErrorClass::External
            }
            Error::Kafka(error) => error.class(),
            Error::Postgres { source, .. } => match source.code().map(|code| &code.code()[..2]) {
                Some("28" | "3D") => pipeline::ErrorClass::BadInput,
                _ => pipeline::ErrorClass::External,
            },
            Error::Positions { class, .. } => *class,
            Error::In { source, .. } => source.class(),
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(source: tokio_postgres::Error) -> Error {
        Error::Postgres {
            doing: "reading the source database".into(),
            source,
        }
    }
}
