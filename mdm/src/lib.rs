//! goldthread master data: normalisation, probabilistic (Fellegi-Sunter) matching of people
//! streamed into an incremental cluster index, rule matching of properties, golden records
//! with stable ids, survivorship with lineage, steward decisions, and the cross-reference.
//!
//! Architecture invariant: nothing in this crate does IO but [`store`], the PostgreSQL store
//! of master data. [`Hub::apply`] takes canonical events and updates in-memory state; callers
//! own Kafka and files.

pub mod address;
pub mod audit;
pub mod cluster;
pub mod compare;
pub mod config;
pub mod error;
pub mod eval;
pub mod export;
mod html;
pub mod hub;
pub mod master;
pub mod matcher;
pub mod model;
pub mod normalise;
pub use pipeline::parallel;
pub mod person;
pub mod quality;
pub mod reconcile;
pub mod store;
pub mod subject;
#[cfg(test)]
mod testing;
pub mod training;

pub use audit::AuditEntry;
pub use config::MdmConfig;
pub use error::Error;
pub use hub::{
    Applied, Changes, Conflict, Entity, Erasure, GoldenPerson, GoldenProperty, GoldenTenancy, Hub,
    LinkExplanation, NormalisedPersons, ReviewItem, StewardVerdict, Verdict, VulnerabilityStatus,
    XrefEntry,
};
pub use master::Master;
