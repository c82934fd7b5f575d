//! The connectors crate's error type: configuration and IO faults that stop a source.
//! A bad row is not an error: it becomes a dead letter.

use std::path::PathBuf;

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

    /// Who is at fault: configuration errors are the user's, IO may be either.
    pub fn class(&self) -> pipeline::ErrorClass {
        match self {
            Error::Config { .. } => pipeline::ErrorClass::BadInput,
            Error::Io { .. } | Error::Csv { .. } => pipeline::ErrorClass::External,
        }
    }
}
