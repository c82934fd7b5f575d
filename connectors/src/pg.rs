//! The PostgreSQL polling source: where logical replication cannot be granted, a table is
//! read in order of a monotonic column (a sequence, or an `updated_at` the application
//! always advances) from the last position confirmed, and each row maps onto a canonical
//! event by the same mapping contract as files (paths are column names). Decoding is pure;
//! the polling loop and its connection are the binary's (`src/connect.rs`).

use std::time::Duration;

use chrono::Utc;
use pipeline::{DeadLetter, EntityKind, Op};
use serde::Deserialize;
use serde_json::Value;

use crate::config::Mapping;
use crate::error::Error;
use crate::file::Record;
use crate::mapping::{Mapper, Raw, json_path};

/// `[[postgres_sources]]`: one table of a source system's PostgreSQL database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgSourceConfig {
    /// Unique among sources; labels metrics, dead letters and the stored position.
    pub name: String,
    /// The system that allocated the ids (`hms`).
    pub system: String,
    /// The environment variable holding the database URL (a read replica's, typically), so
    /// the password stays out of the file.
    pub url_env: String,
    /// The table or view (`public.tenants`).
    pub table: String,
    /// A column whose values are unique and only grow as rows are written (a sequence
    /// bumped on every insert and update): rows are read strictly after the last value.
    pub cursor: String,
    /// How often to look for new rows once caught up.
    #[serde(with = "humantime_serde", default = "default_poll_interval")]
    pub poll_interval: Duration,
    /// Rows per query.
    #[serde(default = "default_batch_size")]
    pub batch_size: i64,
    #[serde(default = "default_date_formats")]
    pub date_formats: Vec<String>,
    #[serde(default)]
    pub datetime_formats: Vec<String>,
    pub mapping: Mapping,
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_batch_size() -> i64 {
    1000
}

fn default_date_formats() -> Vec<String> {
    vec!["%Y-%m-%d".into()]
}

/// A SQL identifier as written in the config: `name` or `schema.name`, letters, digits and
/// `_` only (it is spliced into the query, so nothing else is accepted).
fn valid_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').count() <= 2
        && text.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !part.starts_with(|c: char| c.is_ascii_digit())
        })
}

impl PgSourceConfig {
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("name: must not be empty".to_string());
        }
        if !valid_identifier(&self.table) {
            problems.push(format!(
                "table: `{}` must be `name` or `schema.name` (letters, digits, `_`)",
                self.table
            ));
        }
        if !valid_identifier(&self.cursor) || self.cursor.contains('.') {
            problems.push(format!(
                "cursor: `{}` must be a column name (letters, digits, `_`)",
                self.cursor
            ));
        }
        if self.url_env.trim().is_empty() {
            problems.push("url_env: name the environment variable holding the URL".into());
        }
        if self.batch_size < 1 {
            problems.push("batch_size: must be at least 1".into());
        }
        self.mapping.validate("mapping", &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::config(&self.name, problems.join("; ")))
        }
    }

    pub fn entity(&self) -> Option<EntityKind> {
        self.mapping.entity_kind()
    }

    /// The query of one poll: rows after the cursor `$1` (its text, cast to the column's
    /// type), in cursor order; each as (cursor as text, row as JSON text).
    pub fn query(&self, cursor_type: &str) -> String {
        format!(
            "SELECT t.{cursor}::text, row_to_json(t)::text FROM {table} t
              WHERE $1::text IS NULL OR t.{cursor} > $1::text::{cursor_type}
              ORDER BY t.{cursor} LIMIT {limit}",
            cursor = self.cursor,
            table = self.table,
            limit = self.batch_size
        )
    }

    /// One polled row: an event, or a dead letter at `table@cursor`.
    pub fn decode_row(&self, cursor: &str, row: &str) -> Record {
        let position = format!("{}@{cursor}", self.table);
        let dead = |field: Option<String>, reason: String| {
            Record::DeadLetter(DeadLetter {
                source: self.name.clone(),
                position: position.clone(),
                field,
                reason,
                raw: row.to_string(),
                rejected_at: Utc::now(),
            })
        };
        let value: Value = match serde_json::from_str(row) {
            Ok(value) => value,
            Err(error) => return dead(None, format!("invalid JSON: {error}")),
        };
        let mapper = Mapper {
            name: &self.name,
            system: &self.system,
            date_formats: &self.date_formats,
            datetime_formats: &self.datetime_formats,
        };
        let lookup = |path: &str| json_path(&value, path).map(Raw::Json);
        match mapper.map(&self.mapping, lookup, position.clone(), Op::Read) {
            Ok(event) => Record::Event(Box::new(event)),
            Err(rejected) => dead(rejected.field, rejected.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(table: &str) -> PgSourceConfig {
        toml::from_str(&format!(
            r#"
            name = "hms_db_tenants"
            system = "hms"
            url_env = "HMS_DATABASE_URL"
            table = "{table}"
            cursor = "row_version"
            [mapping]
            entity = "person"
            id = "tenant_id"
            fields = {{ given_name = "forename", family_name = "surname", date_of_birth = "dob" }}
            "#
        ))
        .unwrap()
    }

    #[test]
    fn rows_map_to_events_at_their_cursor_and_identifiers_are_checked() {
        let source = config("public.tenants");
        source.validate().unwrap();
        let Record::Event(event) = source.decode_row(
            "17",
            r#"{"tenant_id": 5, "forename": "Ann", "surname": "Lee", "dob": "1970-02-03", "row_version": 17}"#,
        ) else {
            panic!("an event");
        };
        assert_eq!(event.source.position, "public.tenants@17");
        assert_eq!(event.source_ref.id, "5");
        let Record::DeadLetter(dead) = source.decode_row("18", r#"{"forename": "Ann"}"#) else {
            panic!("a dead letter");
        };
        assert!(dead.reason.contains("id is missing"), "{}", dead.reason);
        for table in ["tenants; DROP TABLE x", "a.b.c", "1table", ""] {
            assert!(config(table).validate().is_err(), "{table}");
        }
    }
}
