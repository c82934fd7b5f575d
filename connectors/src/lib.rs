//! goldthread sources: file exports (CSV, JSON lines) mapped onto canonical events, and the
//! sample landlord generator that writes such exports with known ground truth.
//!
//! A source yields one [`Record`] per row or line read: an event or a dead letter, never
//! nothing, so `events + dead letters = rows read` holds by construction.

pub mod config;
pub mod debezium;
pub mod error;
pub mod file;
pub mod mapping;
pub mod pg;
pub mod sample;
pub mod supervise;
pub mod webhook;

pub use config::{Format, Mapping, SourceConfig};

/// What every kind of source declares, whatever it reads (files and drop folders, Debezium
/// topics, PostgreSQL tables, webhooks): its name, the system whose identifiers it carries,
/// and the entities its events hold (their topics follow from system and entity).
pub trait Source {
    /// The configuration section its entries are in (`sources`, `debezium`, ...).
    fn section(&self) -> &'static str;
    fn name(&self) -> &str;
    fn system(&self) -> &str;
    fn entities(&self) -> Vec<pipeline::EntityKind>;
    /// Checks the entry on its own (names across entries are the caller's to compare).
    fn validate(&self) -> Result<(), Error>;
}

macro_rules! source {
    ($kind:ty, $section:literal, $entities:expr) => {
        impl Source for $kind {
            fn section(&self) -> &'static str {
                $section
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn validate(&self) -> Result<(), Error> {
                <$kind>::validate(self)
            }
            fn system(&self) -> &str {
                &self.system
            }
            fn entities(&self) -> Vec<pipeline::EntityKind> {
                $entities(self)
            }
        }
    };
}

source!(SourceConfig, "sources", SourceConfig::entities);
source!(WebhookConfig, "webhooks", WebhookConfig::entities);
source!(DebeziumConfig, "debezium", |source: &DebeziumConfig| source
    .entity()
    .into_iter()
    .collect());
source!(
    PgSourceConfig,
    "postgres_sources",
    |source: &PgSourceConfig| source.entity().into_iter().collect()
);
pub use debezium::DebeziumConfig;
pub use error::Error;
pub use file::{FileSource, Record, SourceCounts};
pub use pg::PgSourceConfig;
pub use webhook::WebhookConfig;
