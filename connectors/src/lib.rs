//! goldthread sources: file exports (CSV, JSON lines), Debezium topics, PostgreSQL tables
//! and webhooks mapped onto canonical events (pure decoders, fuzzed); the drivers that run
//! them under one supervisor and produce their records ([`driver`], [`supervise`]); and the
//! sample landlord generator that writes such exports with known ground truth.
//!
//! A source yields one [`Record`] per row or line read: an event or a dead letter, never
//! nothing, so `events + dead letters = rows read` holds by construction.

// First: the other modules declare their configurations with its macro.
#[macro_use]
mod source;

pub mod config;
pub mod debezium;
pub mod driver;
pub mod error;
pub mod file;
pub mod mapping;
pub mod pg;
pub mod sample;
pub mod supervise;
pub mod webhook;

pub use config::{Format, Mapping, SourceConfig};

pub use debezium::DebeziumConfig;
pub use error::{BoxError, Error};

pub type Result<T, E = Error> = std::result::Result<T, E>;
pub use file::{FileSource, Record, SourceCounts};
pub use pg::PgSourceConfig;
pub use source::Source;
pub use webhook::WebhookConfig;
