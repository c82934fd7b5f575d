//! The master data hub's errors: what a steward or subject request named that does not
//! exist, or asked that cannot be.

use pipeline::ErrorClass;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No record, golden record or source record by that name.
    #[error("{0}")]
    NotFound(String),
    /// A request that cannot be carried out as asked (a record matched with itself).
    #[error("{0}")]
    BadInput(String),
    /// A request the current state does not allow (an erasure without the store).
    #[error("{0}")]
    Conflict(String),
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::NotFound(_) => ErrorClass::NotFound,
            Error::BadInput(_) => ErrorClass::BadInput,
            Error::Conflict(_) => ErrorClass::Conflict,
        }
    }
}
