//! goldthread runtime core: the canonical event model, Kafka plumbing and metric names.
//!
//! Every other crate speaks in [`Envelope`]s. Only this crate opens Kafka connections.

pub mod entity;
pub mod error;
pub mod event;
pub mod kafka;
pub mod metrics;
pub mod parallel;
pub mod postgres;
pub mod stage;

pub use entity::{EntityKind, FieldKind, Payload};
pub use error::{Error, ErrorClass};
pub use event::{
    DeadLetter, Envelope, MAX_DEAD_LETTER_RAW_BYTES, MAX_ROW_BYTES, Op, Reference, Source,
    Unparsed, UnparsedCount, UnparsedTally,
};
