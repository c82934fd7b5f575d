//! goldthread master data: normalisation, deterministic matching on normalised keys, golden
//! records with stable ids, survivorship with lineage, and the cross-reference.
//!
//! Architecture invariant: nothing in this crate does IO. [`Hub::apply`] takes canonical
//! events and updates in-memory state; callers own Kafka, files and databases.

pub mod address;
pub mod cluster;
pub mod compare;
pub mod config;
pub mod hub;
pub mod model;
pub mod normalise;
pub mod person;

pub use config::MdmConfig;
pub use hub::{Applied, GoldenPerson, GoldenProperty, GoldenTenancy, Hub, XrefEntry};
