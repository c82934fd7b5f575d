//! The store's errors: what it was doing, the cause, and who is at fault (`Error::class`),
//! which alone decides whether a write is retried.

use std::borrow::Cow;

use pipeline::ErrorClass;

/// What a caller's part of the work (`Master::restore` handing events to the analytics)
/// failed with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the store failed. Each variant's message says what goldthread was doing; its source
/// says why.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used (`postgres.url`, `postgres.tls_ca_file`).
    #[error("{0}")]
    Config(String),
    /// PostgreSQL refused or failed a statement, or the connection was lost.
    #[error("{doing}")]
    Postgres {
        doing: Cow<'static, str>,
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection came from the pool.
    #[error("{doing}")]
    Pool {
        doing: Cow<'static, str>,
        #[source]
        source: deadpool_postgres::PoolError,
    },
    /// A stored row no longer decodes, or a row could not be encoded.
    #[error("{doing}")]
    Json {
        doing: Cow<'static, str>,
        #[source]
        source: BoxError,
    },
    /// Master data refused what the store handed back (another process's erasure).
    #[error(transparent)]
    Master(#[from] crate::Error),
    /// The caller's part of the work failed.
    #[error("{doing}")]
    Caller {
        doing: &'static str,
        #[source]
        source: BoxError,
    },
    /// A write failed for a reason retrying cannot mend.
    #[error("writing to PostgreSQL (not retried: retrying cannot help)")]
    NotRetried(#[source] Box<Error>),
    /// Writes kept failing for `postgres.retry_for`.
    #[error("PostgreSQL writes failed for {retry_for:?} (postgres.retry_for)")]
    GaveUp {
        retry_for: std::time::Duration,
        #[source]
        last: Box<Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Who is at fault. A lost or refused connection, a pool timeout, a server shutting down
    /// or out of resources, a serialisation failure or a deadlock is `External`: a retry may
    /// succeed. A login or database the server does not know is `BadInput` (the
    /// configuration). Anything else the server rejects (a constraint, a value it cannot
    /// take), a row that does not decode and a caller's failure are goldthread's `Bug`:
    /// writing the same rows again would fail the same way.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) => ErrorClass::BadInput,
            Error::Postgres { source, .. } => postgres_class(source),
            Error::Pool { source, .. } => match source {
                deadpool_postgres::PoolError::Backend(source) => postgres_class(source),
                _ => ErrorClass::External,
            },
            Error::Json { .. } | Error::Caller { .. } => ErrorClass::Bug,
            Error::Master(error) => error.class(),
            Error::NotRetried(error) => error.class(),
            Error::GaveUp { .. } => ErrorClass::External,
        }
    }
}

fn postgres_class(error: &tokio_postgres::Error) -> ErrorClass {
    let Some(code) = error.code() else {
        return ErrorClass::External; // closed connection, IO, timeout
    };
    // SQLSTATE classes: 08 connection, 40 rollback (serialisation, deadlock), 53 insufficient
    // resources, 57 operator intervention (shutdown), 58 system; 28 invalid authorisation,
    // 3D invalid catalog name (no such database).
    match &code.code()[..2] {
        "08" | "40" | "53" | "57" | "58" => ErrorClass::External,
        "28" | "3D" => ErrorClass::BadInput,
        _ => ErrorClass::Bug,
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(source: tokio_postgres::Error) -> Error {
        Error::Postgres {
            doing: "talking to PostgreSQL".into(),
            source,
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(source: deadpool_postgres::PoolError) -> Error {
        Error::Pool {
            doing: "taking a PostgreSQL connection".into(),
            source,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(source: serde_json::Error) -> Error {
        Error::Json {
            doing: "encoding a row as JSON".into(),
            source: Box::new(source),
        }
    }
}

/// Says what the store was doing when a call failed, as `anyhow::Context` does for the
/// binary.
pub(crate) trait Context<T> {
    fn context(self, doing: impl Into<Cow<'static, str>>) -> Result<T>;

    fn with_context(self, doing: impl FnOnce() -> String) -> Result<T>
    where
        Self: Sized,
    {
        self.context(doing())
    }
}

impl<T> Context<T> for std::result::Result<T, tokio_postgres::Error> {
    fn context(self, doing: impl Into<Cow<'static, str>>) -> Result<T> {
        self.map_err(|source| Error::Postgres {
            doing: doing.into(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, deadpool_postgres::PoolError> {
    fn context(self, doing: impl Into<Cow<'static, str>>) -> Result<T> {
        self.map_err(|source| Error::Pool {
            doing: doing.into(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, serde_json::Error> {
    fn context(self, doing: impl Into<Cow<'static, str>>) -> Result<T> {
        self.map_err(|source| Error::Json {
            doing: doing.into(),
            source: Box::new(source),
        })
    }
}

/// A stored value that PostgreSQL returned but that does not decode (`row.try_get`): the
/// row is at fault, not the connection.
pub(crate) fn undecodable(doing: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |source| Error::Json {
        doing: doing.into(),
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_outside_goldthread_are_retried() {
        let pool_closed = Error::from(deadpool_postgres::PoolError::Closed);
        assert_eq!(pool_closed.class(), ErrorClass::External);
        let gave_up = Error::GaveUp {
            retry_for: std::time::Duration::from_secs(1),
            last: Box::new(pool_closed),
        };
        assert_eq!(gave_up.class(), ErrorClass::External);
        let undecodable = Error::from(serde_json::from_str::<u8>("x").unwrap_err());
        assert_eq!(undecodable.class(), ErrorClass::Bug);
        let refused = Error::from(crate::Error::NotFound("GP-1".into()));
        assert_eq!(refused.class(), ErrorClass::NotFound);
        assert_eq!(
            Error::NotRetried(Box::new(refused)).class(),
            ErrorClass::NotFound
        );
        assert_eq!(
            Error::Config("postgres.url".into()).class(),
            ErrorClass::BadInput
        );
    }
}
