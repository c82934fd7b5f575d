//! Every metric name goldthread emits, in one place (`<namespace>_<name>_<unit>[_total]`).
//!
//! Labels are of bounded cardinality: source name, topic, stage, entity; never an entity id.

/// Rows (CSV) or lines (JSON lines) read by a file connector. Labels: `source`.
pub const CONNECTOR_ROWS_READ_TOTAL: &str = "connector_rows_read_total";
/// Canonical events produced to Kafka. Labels: `source`, `topic`.
pub const CONNECTOR_EVENTS_PRODUCED_TOTAL: &str = "connector_events_produced_total";
/// Rows or messages sent to the dead-letter topic. Labels: `source`.
pub const CONNECTOR_DEAD_LETTERS_TOTAL: &str = "connector_dead_letters_total";
/// Values of optional fields that did not parse, kept in their events (`Envelope::unparsed`).
/// Labels: `source`, `field`.
pub const CONNECTOR_UNPARSED_VALUES_TOTAL: &str = "connector_unparsed_values_total";
/// 1 while a supervised source (Debezium topics, a PostgreSQL table) runs, 0 while it waits
/// to be retried after a failure.
pub const CONNECTOR_UP: &str = "connector_up";
/// Events consumed by a downstream stage. Labels: `stage`, `topic`.
pub const STAGE_EVENTS_CONSUMED_TOTAL: &str = "stage_events_consumed_total";
/// Payload bytes consumed by a stage. Labels: `stage`, `topic`.
pub const STAGE_BYTES_CONSUMED_TOTAL: &str = "stage_bytes_consumed_total";
/// Payload bytes produced to Kafka (events and dead letters). Labels: `topic`.
pub const KAFKA_BYTES_PRODUCED_TOTAL: &str = "kafka_bytes_produced_total";
/// Events a downstream stage could not decode and dead-lettered. Labels: `stage`.
pub const STAGE_DEAD_LETTERS_TOTAL: &str = "stage_dead_letters_total";
/// Time to process one consumed batch, seconds. Labels: `stage`.
pub const STAGE_BATCH_SECONDS: &str = "stage_batch_seconds";
/// Offsets committed after a batch's output was written. Labels: `stage`.
pub const STAGE_COMMITS_TOTAL: &str = "stage_commits_total";
/// How long the batch being applied has been waiting for its sink (0 when none is).
/// Labels: `stage`. It grows while PostgreSQL or the hub holds the stage back.
pub const STAGE_BATCH_WAITING_SECONDS: &str = "stage_batch_waiting_seconds";
/// Offset commits the broker refused (a rebalance took the partitions). Labels: `stage`.
pub const STAGE_COMMIT_FAILURES_TOTAL: &str = "stage_commit_failures_total";
/// Golden records currently held. Labels: `entity` (person, property).
pub const MDM_GOLDEN_RECORDS: &str = "mdm_golden_records";
/// Source records linked into the cross-reference. Labels: `entity`.
pub const MDM_XREF_ENTRIES: &str = "mdm_xref_entries";
/// Time to run the KPI suite, seconds.
pub const SQL_KPI_SECONDS: &str = "sql_kpi_seconds";
/// From an event's ingestion to the live dashboard showing it, seconds.
pub const SQL_EVENT_TO_KPI_SECONDS: &str = "sql_event_to_kpi_seconds";
/// Messages between a consumer group's position and the end of a partition. Labels:
/// `group`, `topic`, `partition`.
pub const STAGE_CONSUMER_LAG: &str = "stage_consumer_lag";
/// Failed attempts to write a batch to PostgreSQL (each is retried).
pub const STORE_WRITE_FAILURES_TOTAL: &str = "store_write_failures_total";
/// 1 while the last write to PostgreSQL succeeded, 0 while writes fail.
pub const STORE_UP: &str = "store_up";

/// Registers descriptions for every metric (shown as `# HELP` lines in `/metrics`).
pub fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        CONNECTOR_ROWS_READ_TOTAL,
        "Rows or lines read by a file connector"
    );
    describe_counter!(
        CONNECTOR_EVENTS_PRODUCED_TOTAL,
        "Canonical events produced to Kafka"
    );
    describe_counter!(
        CONNECTOR_DEAD_LETTERS_TOTAL,
        "Source rows sent to the dead-letter topic"
    );
    describe_counter!(
        CONNECTOR_UNPARSED_VALUES_TOTAL,
        "Values of optional fields that did not parse, kept in their events"
    );
    describe_counter!(
        STAGE_EVENTS_CONSUMED_TOTAL,
        "Events consumed by a downstream stage"
    );
    describe_counter!(
        STAGE_DEAD_LETTERS_TOTAL,
        "Consumed events a stage could not decode"
    );
    describe_histogram!(
        STAGE_BATCH_SECONDS,
        ::metrics::Unit::Seconds,
        "Time to process one consumed batch"
    );
    describe_counter!(
        STAGE_COMMITS_TOTAL,
        "Offset commits after a batch's output was written"
    );
    describe_gauge!(
        STAGE_BATCH_WAITING_SECONDS,
        "How long the batch being applied has been waiting for its sink (0: none is)"
    );
    describe_counter!(
        STAGE_COMMIT_FAILURES_TOTAL,
        "Offset commits the broker refused, as when a rebalance took the partitions"
    );
    describe_gauge!(MDM_GOLDEN_RECORDS, "Golden records currently held");
    describe_gauge!(MDM_XREF_ENTRIES, "Source records in the cross-reference");
    describe_histogram!(
        SQL_EVENT_TO_KPI_SECONDS,
        ::metrics::Unit::Seconds,
        "From an event's ingestion to the live dashboard showing it"
    );
    describe_histogram!(
        SQL_KPI_SECONDS,
        ::metrics::Unit::Seconds,
        "Time to run the KPI suite"
    );
    describe_counter!(
        STAGE_BYTES_CONSUMED_TOTAL,
        ::metrics::Unit::Bytes,
        "Payload bytes consumed by a stage"
    );
    describe_counter!(
        KAFKA_BYTES_PRODUCED_TOTAL,
        ::metrics::Unit::Bytes,
        "Payload bytes produced to Kafka"
    );
    describe_gauge!(
        STAGE_CONSUMER_LAG,
        "Messages between a consumer group's position and the end of a partition"
    );
    describe_counter!(
        STORE_WRITE_FAILURES_TOTAL,
        "Failed attempts to write a batch to PostgreSQL (retried)"
    );
    describe_gauge!(
        CONNECTOR_UP,
        "1 while a source runs, 0 while it waits to be retried after a failure"
    );
    describe_gauge!(
        STORE_UP,
        "1 while writes to PostgreSQL succeed, 0 while they fail"
    );
}
