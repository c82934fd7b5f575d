//! The PostgreSQL polling source: where logical replication cannot be granted, a table is
//! read in order of a monotonic column (a sequence, or an `updated_at` the application
//! always advances) from the last position confirmed, and each row maps onto a canonical
//! event by the same mapping contract as files (paths are column names). Decoding is pure;
//! the polling loop and its connection are the binary's (`src/connect.rs`).

use std::time::Duration;

use chrono::Utc;
use pipeline::{DeadLetter, EntityKind, Op, Reference};
use serde::Deserialize;
use serde_json::Value;

use crate::file::Record;
use crate::mapping::{Raw, json_path};

source_config!(
    "postgres_sources",
    one_mapping,
    /// `[[postgres_sources]]`: one table of a source system's PostgreSQL database (its name
    /// also keys the stored position).
    pub struct PgSourceConfig {
        /// The environment variable holding the database URL (a read replica's, typically), so
        /// the password stays out of the file.
        pub url_env: String,
        /// A PEM file of the CA that signed the source database's certificate (verified, host
        /// name too); without it TLS is used when the server offers it, unverified, as libpq's
        /// `sslmode=prefer` (add `?sslmode=require` to the URL to insist).
        pub tls_ca_file: Option<std::path::PathBuf>,
        /// The table or view (`public.tenants`).
        pub table: String,
        /// `logical` (replication through the `pgoutput` plugin: an initial snapshot, then every
        /// insert, update and delete) or `polling` (where replication cannot be granted).
        #[serde(default)]
        pub mode: Mode,
        /// Polling: a column whose values are unique and only grow as rows are written (a
        /// sequence bumped on every insert and update): rows are read strictly after the last.
        pub cursor: Option<String>,
        /// Logical: the publication that includes the table (`CREATE PUBLICATION ... FOR TABLE`).
        pub publication: Option<String>,
        /// Logical: the replication slot goldthread creates and advances
        /// (default `goldthread_<name>`).
        pub slot: Option<String>,
        /// How often to look for new rows once caught up.
        #[serde(with = "humantime_serde", default = "default_poll_interval")]
        pub poll_interval: Duration,
        /// Rows per query.
        #[serde(default = "default_batch_size")]
        pub batch_size: i64,
    }
);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Logical,
    #[default]
    Polling,
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_batch_size() -> i64 {
    1000
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
    /// Checks its own keys (`Source::validate` checks the shared ones).
    fn check(&self, problems: &mut Vec<String>) {
        if !valid_identifier(&self.table) {
            problems.push(format!(
                "table: `{}` must be `name` or `schema.name` (letters, digits, `_`)",
                self.table
            ));
        }
        let column = |text: &str| valid_identifier(text) && !text.contains('.');
        match (self.mode, &self.cursor, &self.publication) {
            (Mode::Polling, Some(cursor), _) if column(cursor) => {}
            (Mode::Polling, _, _) => problems
                .push("cursor: polling needs a column name (letters, digits, `_`)".to_string()),
            (Mode::Logical, _, Some(publication)) if column(publication) => {
                if self.slot.as_deref().is_some_and(|slot| !column(slot)) {
                    problems.push("slot: letters, digits and `_` only".into());
                }
            }
            (Mode::Logical, _, _) => problems.push(
                "publication: logical mode needs the publication's name (letters, digits, `_`)"
                    .to_string(),
            ),
        }
        if self.url_env.trim().is_empty() {
            problems.push("url_env: name the environment variable holding the URL".into());
        }
        if self.batch_size < 1 {
            problems.push("batch_size: must be at least 1".into());
        }
    }

    pub fn entity(&self) -> Option<EntityKind> {
        self.mapping.entity_kind()
    }

    /// Logical mode's replication slot.
    pub fn slot_name(&self) -> String {
        self.slot
            .clone()
            .unwrap_or_else(|| format!("goldthread_{}", self.name.replace('-', "_")))
    }

    /// `schema.table`, with `public` when the config names no schema.
    pub fn qualified_table(&self) -> String {
        if self.table.contains('.') {
            self.table.clone()
        } else {
            format!("public.{}", self.table)
        }
    }

    /// The query of one poll: rows after the cursor `$1` (its text, cast to the column's
    /// type), in cursor order; each as (cursor as text, row as JSON text).
    ///
    /// The cursor contract: the column is set by the statement that writes the row (a
    /// sequence default, a trigger) and grows. A transaction may take its value and commit
    /// after a later one did, so a row is read only once every transaction older than the
    /// one that wrote it has ended (its `xmin` is older than the oldest running
    /// transaction's): a poll never moves past a value an open transaction may still
    /// commit. A transaction left open therefore holds polling back until it ends. Rows
    /// whose cursor is NULL are never polled (`null_cursor_query` finds them).
    pub fn query(&self, cursor_type: &str) -> String {
        format!(
            "SELECT t.{cursor}::text, row_to_json(t)::text FROM {table} t
              WHERE t.{cursor} IS NOT NULL
                AND ($1::text IS NULL OR t.{cursor} > $1::text::{cursor_type})
                AND age(t.xmin) > age((pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296)::text::xid)
              ORDER BY t.{cursor} LIMIT {limit}",
            cursor = self.cursor.as_deref().unwrap_or_default(),
            table = self.table,
            limit = self.batch_size
        )
    }

    /// The rows polling cannot read, their cursor being NULL (as JSON text): each becomes a
    /// dead letter when the source starts, rather than being skipped unseen.
    pub fn null_cursor_query(&self) -> String {
        format!(
            "SELECT row_to_json(t)::text FROM {table} t WHERE t.{cursor} IS NULL",
            cursor = self.cursor.as_deref().unwrap_or_default(),
            table = self.table,
        )
    }

    /// One polled row: an event, or a dead letter at `table@cursor`.
    pub fn decode_row(&self, cursor: &str, row: &str) -> Record {
        let position = format!("{}@{cursor}", self.table);
        let about = |field: Option<String>, reason: String, source_ref: Option<Reference>| {
            Record::DeadLetter(DeadLetter {
                source: self.name.clone(),
                position: position.clone(),
                field,
                reason,
                raw: row.to_string(),
                rejected_at: Utc::now(),
                source_ref,
            })
        };
        let dead = |field: Option<String>, reason: String| about(field, reason, None);
        let value: Value = match serde_json::from_str(row) {
            Ok(value) => value,
            Err(error) => return dead(None, format!("invalid JSON: {error}")),
        };
        let mapper = self.mapper();
        let lookup = |path: &str| json_path(&value, path).map(Raw::Json);
        match mapper.map(&self.mapping, lookup, position.clone(), Op::Read) {
            Ok(event) => Record::Event(Box::new(event)),
            Err(rejected) => {
                let source_ref = rejected.reference(&self.system);
                about(rejected.field, rejected.reason, source_ref)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Source as _;

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

/// One row change decoded from the `pgoutput` logical replication protocol (version 1).
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    /// `schema.table`.
    pub table: String,
    pub op: Op,
    /// Column name -> text value (`null` for SQL NULL). For a delete, the old key (or the
    /// whole old row with REPLICA IDENTITY FULL); unchanged TOASTed values are left out.
    pub row: serde_json::Map<String, Value>,
}

/// Decodes `pgoutput` messages in order, remembering the relations they announce.
#[derive(Debug, Default)]
pub struct PgOutput {
    relations: std::collections::HashMap<u32, (String, Vec<String>)>,
}

/// A reader over one message.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("message ends early".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn string(&mut self) -> Result<String, String> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or("unterminated string")?;
        let text = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Ok(text)
    }
}

impl PgOutput {
    /// One message: a row change, `None` for messages that carry none (begin, commit,
    /// relation, type, origin...), or why it could not be read.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<RowChange>, String> {
        let mut bytes = Bytes(data);
        match bytes.u8()? {
            b'R' => {
                let id = bytes.i32()? as u32;
                let namespace = bytes.string()?;
                let name = bytes.string()?;
                let _replica_identity = bytes.u8()?;
                let n = bytes.i16()?;
                let mut columns = Vec::with_capacity(n.max(0) as usize);
                for _ in 0..n {
                    let _flags = bytes.u8()?;
                    columns.push(bytes.string()?);
                    let _type = bytes.i32()?;
                    let _modifier = bytes.i32()?;
                }
                self.relations
                    .insert(id, (format!("{namespace}.{name}"), columns));
                Ok(None)
            }
            kind @ (b'I' | b'U' | b'D') => {
                let id = bytes.i32()? as u32;
                let (table, columns) = self
                    .relations
                    .get(&id)
                    .ok_or_else(|| format!("change for relation {id} before its description"))?;
                let mut tag = bytes.u8()?;
                let op = match kind {
                    b'I' => Op::Create,
                    b'U' => Op::Update,
                    _ => Op::Delete,
                };
                // An update may carry the old key or row first; a delete carries only that.
                if kind == b'U' && (tag == b'K' || tag == b'O') {
                    tuple(&mut bytes, columns)?;
                    tag = bytes.u8()?;
                }
                let expected: &[u8] = if kind == b'D' { b"KO" } else { b"N" };
                if !expected.contains(&tag) {
                    return Err(format!("unexpected tuple tag `{}`", tag as char));
                }
                let row = tuple(&mut bytes, columns)?;
                Ok(Some(RowChange {
                    table: table.clone(),
                    op,
                    row,
                }))
            }
            _ => Ok(None),
        }
    }
}

/// TupleData: each column null, unchanged (TOAST, left out) or text.
fn tuple(
    bytes: &mut Bytes<'_>,
    columns: &[String],
) -> Result<serde_json::Map<String, Value>, String> {
    let n = bytes.i16()?;
    let mut row = serde_json::Map::new();
    for index in 0..n.max(0) as usize {
        let name = columns
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("column_{index}"));
        match bytes.u8()? {
            b'n' => {
                row.insert(name, Value::Null);
            }
            b'u' => {}
            b't' => {
                let length = bytes.i32()?;
                let length = usize::try_from(length).map_err(|_| "negative length")?;
                let text = String::from_utf8_lossy(bytes.take(length)?).into_owned();
                row.insert(name, Value::String(text));
            }
            other => return Err(format!("unknown column kind `{}`", other as char)),
        }
    }
    Ok(row)
}

impl PgSourceConfig {
    /// A row change from logical replication: an event, or a dead letter at `table@lsn`.
    pub fn decode_change(&self, lsn: &str, change: &RowChange) -> Record {
        let position = format!("{}@{lsn}", self.table);
        let mapper = self.mapper();
        let value = Value::Object(change.row.clone());
        let lookup = |path: &str| json_path(&value, path).map(Raw::Json);
        match mapper.map(&self.mapping, lookup, position.clone(), change.op) {
            Ok(event) => Record::Event(Box::new(event)),
            Err(rejected) => Record::DeadLetter(DeadLetter {
                source: self.name.clone(),
                position,
                source_ref: rejected.reference(&self.system),
                field: rejected.field,
                reason: rejected.reason,
                raw: value.to_string(),
                rejected_at: Utc::now(),
            }),
        }
    }
}

#[cfg(test)]
mod pgoutput_tests {
    use super::*;
    use proptest::prelude::*;

    fn relation() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(16384i32.to_be_bytes());
        m.extend(b"public\0tenants\0");
        m.push(b'd');
        m.extend(2i16.to_be_bytes());
        for name in ["tenant_id", "forename"] {
            m.push(1);
            m.extend(name.as_bytes());
            m.push(0);
            m.extend(25i32.to_be_bytes());
            m.extend((-1i32).to_be_bytes());
        }
        m
    }

    fn text(value: &str) -> Vec<u8> {
        let mut column = vec![b't'];
        column.extend((value.len() as i32).to_be_bytes());
        column.extend(value.as_bytes());
        column
    }

    #[test]
    fn inserts_updates_and_deletes_decode_by_relation() {
        let mut decoder = PgOutput::default();
        assert_eq!(decoder.decode(&relation()).unwrap(), None);
        let mut insert = vec![b'I'];
        insert.extend(16384i32.to_be_bytes());
        insert.push(b'N');
        insert.extend(2i16.to_be_bytes());
        insert.extend(text("T1"));
        insert.push(b'n');
        let change = decoder.decode(&insert).unwrap().unwrap();
        assert_eq!(change.table, "public.tenants");
        assert_eq!(change.op, Op::Create);
        assert_eq!(change.row["tenant_id"], "T1");
        assert_eq!(change.row["forename"], Value::Null);

        let mut update = vec![b'U'];
        update.extend(16384i32.to_be_bytes());
        update.push(b'N');
        update.extend(2i16.to_be_bytes());
        update.extend(text("T1"));
        update.push(b'u');
        let change = decoder.decode(&update).unwrap().unwrap();
        assert_eq!(change.op, Op::Update);
        assert!(
            !change.row.contains_key("forename"),
            "unchanged TOAST left out"
        );

        let mut delete = vec![b'D'];
        delete.extend(16384i32.to_be_bytes());
        delete.push(b'K');
        delete.extend(1i16.to_be_bytes());
        delete.extend(text("T1"));
        assert_eq!(decoder.decode(&delete).unwrap().unwrap().op, Op::Delete);
        assert_eq!(decoder.decode(b"B12345678").unwrap(), None);
        assert!(
            PgOutput::default().decode(&insert).is_err(),
            "no relation yet"
        );
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut decoder = PgOutput::default();
            let _ = decoder.decode(&relation());
            let _ = decoder.decode(&bytes);
        }
    }
}
