//! The file connector: reads a CSV or JSON lines export and maps each row to a canonical
//! event, or to a dead letter naming the file, line, field and reason.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use pipeline::entity::{FieldKind, Payload};
use pipeline::{DeadLetter, Envelope, Op, Reference, Source};
use serde_json::{Map, Value};

use crate::config::{Format, Mapping, SourceConfig};
use crate::error::Error;

/// What one row or line became: an event, or a dead letter saying why not. Both are data.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Boxed: an envelope is several times the size of a dead letter.
    Event(Box<Envelope>),
    DeadLetter(DeadLetter),
}

impl Record {
    pub fn event(&self) -> Option<&Envelope> {
        match self {
            Record::Event(envelope) => Some(envelope),
            Record::DeadLetter(_) => None,
        }
    }

    pub fn dead_letter(&self) -> Option<&DeadLetter> {
        match self {
            Record::Event(_) => None,
            Record::DeadLetter(dead_letter) => Some(dead_letter),
        }
    }
}

/// An open file source: an iterator of one [`Record`] per row or line.
#[derive(Debug)]
pub struct FileSource {
    config: SourceConfig,
    path: PathBuf,
    /// The file name as it appears in positions (`tenants.csv:12`).
    display_path: String,
    reader: Reader,
    rows_read: u64,
}

enum Reader {
    Csv {
        reader: csv::Reader<File>,
        headers: Vec<String>,
    },
    Jsonl {
        lines: std::io::Split<BufReader<File>>,
        line: u64,
    },
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reader::Csv { headers, .. } => f.debug_struct("Csv").field("headers", headers).finish(),
            Reader::Jsonl { line, .. } => f.debug_struct("Jsonl").field("line", line).finish(),
        }
    }
}

/// A source value, before it is parsed by its canonical field kind.
enum Raw<'a> {
    Text(&'a str),
    Json(&'a Value),
}

impl FileSource {
    /// Opens `config.path` under `data_dir`; fails on configuration and IO errors only.
    pub fn open(config: &SourceConfig, data_dir: &Path) -> Result<FileSource, Error> {
        config.validate()?;
        let path = data_dir.join(&config.path);
        let file = File::open(&path).map_err(|error| Error::io(&path, error))?;
        let reader = match config.format {
            Format::Csv => {
                let delimiter = u8::try_from(config.delimiter).map_err(|_| {
                    Error::config(&config.name, "delimiter: must be one ASCII character")
                })?;
                let mut reader = csv::ReaderBuilder::new()
                    .delimiter(delimiter)
                    .flexible(true)
                    .from_reader(file);
                let headers = reader
                    .byte_headers()
                    .map_err(|source| Error::Csv {
                        path: path.clone(),
                        source,
                    })?
                    .iter()
                    .map(|header| String::from_utf8_lossy(header).trim().to_string())
                    .collect::<Vec<_>>();
                let mapping = config
                    .mapping
                    .as_ref()
                    .expect("validated: csv has a mapping");
                let missing: Vec<&str> = std::iter::once(&mapping.id)
                    .chain(mapping.fields.values())
                    .chain(mapping.recorded_at.iter())
                    .filter(|column| !headers.iter().any(|header| header == *column))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    return Err(Error::config(
                        &config.name,
                        format!(
                            "{}: mapped columns not in the header: {} (header: {})",
                            path.display(),
                            missing.join(", "),
                            headers.join(", ")
                        ),
                    ));
                }
                Reader::Csv { reader, headers }
            }
            Format::Jsonl => Reader::Jsonl {
                lines: BufReader::new(file).split(b'\n'),
                line: 0,
            },
        };
        let display_path = config.path.display().to_string();
        Ok(FileSource {
            config: config.clone(),
            path,
            display_path,
            reader,
            rows_read: 0,
        })
    }

    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// The next record, an IO error that stops the source, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Option<Result<Record, Error>> {
        let result = match &mut self.reader {
            Reader::Csv { reader, headers } => {
                let mut row = csv::ByteRecord::new();
                match reader.read_byte_record(&mut row) {
                    Ok(false) => return None,
                    Ok(true) => {
                        let line = row.position().map_or(0, |position| position.line());
                        let headers = headers.clone();
                        Ok(self.csv_record(&headers, &row, line))
                    }
                    Err(error) => match error.kind() {
                        csv::ErrorKind::Io(_) => Err(Error::Csv {
                            path: self.path.clone(),
                            source: error,
                        }),
                        _ => {
                            let line = error.position().map_or(0, |position| position.line());
                            Ok(Record::DeadLetter(self.dead_letter(
                                line,
                                None,
                                error.to_string(),
                                String::new(),
                            )))
                        }
                    },
                }
            }
            Reader::Jsonl { lines, line } => match lines.next()? {
                Err(error) => Err(Error::io(&self.path, error)),
                Ok(bytes) => {
                    *line += 1;
                    let line = *line;
                    if bytes.iter().all(u8::is_ascii_whitespace) {
                        // A blank line is not a row; it is neither read nor dead-lettered.
                        return self.next_record();
                    }
                    Ok(self.json_record(&bytes, line))
                }
            },
        };
        if result.is_ok() {
            self.rows_read += 1;
        }
        Some(result)
    }

    fn position(&self, line: u64) -> String {
        format!("{}:{line}", self.display_path)
    }

    fn dead_letter(
        &self,
        line: u64,
        field: Option<String>,
        reason: String,
        raw: String,
    ) -> DeadLetter {
        DeadLetter {
            source: self.config.name.clone(),
            position: self.position(line),
            field,
            reason,
            raw,
            rejected_at: Utc::now(),
        }
    }

    fn csv_record(&self, headers: &[String], row: &csv::ByteRecord, line: u64) -> Record {
        let raw = row
            .iter()
            .map(|field| String::from_utf8_lossy(field).into_owned())
            .collect::<Vec<_>>()
            .join(&self.config.delimiter.to_string());
        if row.len() != headers.len() {
            let reason = format!(
                "row has {} fields, the header has {}",
                row.len(),
                headers.len()
            );
            return Record::DeadLetter(self.dead_letter(line, None, reason, raw));
        }
        let mut values = Vec::with_capacity(row.len());
        for (header, field) in headers.iter().zip(row.iter()) {
            match std::str::from_utf8(field) {
                Ok(text) => values.push(text),
                Err(_) => {
                    return Record::DeadLetter(self.dead_letter(
                        line,
                        Some(header.clone()),
                        "not valid UTF-8".into(),
                        raw,
                    ));
                }
            }
        }
        let mapping = self
            .config
            .mapping
            .as_ref()
            .expect("validated: csv has a mapping");
        let lookup = |column: &str| {
            headers
                .iter()
                .position(|header| header == column)
                .map(|index| Raw::Text(values[index]))
        };
        self.map_record(mapping, lookup, line, raw)
    }

    fn json_record(&self, bytes: &[u8], line: u64) -> Record {
        let raw = String::from_utf8_lossy(bytes)
            .trim_end_matches('\r')
            .to_string();
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                return Record::DeadLetter(self.dead_letter(
                    line,
                    None,
                    "not valid UTF-8".into(),
                    raw,
                ));
            }
        };
        let value: Value = match serde_json::from_str(text) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => {
                return Record::DeadLetter(self.dead_letter(
                    line,
                    None,
                    "not a JSON object".into(),
                    raw,
                ));
            }
            Err(error) => {
                return Record::DeadLetter(self.dead_letter(
                    line,
                    None,
                    format!("invalid JSON: {error}"),
                    raw,
                ));
            }
        };
        let mapping = match (&self.config.mapping, &self.config.type_field) {
            (Some(mapping), _) => mapping,
            (None, Some(type_field)) => {
                let Some(message_type) = json_path(&value, type_field).and_then(Value::as_str)
                else {
                    return Record::DeadLetter(self.dead_letter(
                        line,
                        Some(type_field.clone()),
                        "message type is missing".into(),
                        raw,
                    ));
                };
                match self.config.messages.get(message_type) {
                    Some(mapping) => mapping,
                    None => {
                        let reason = format!("no mapping for message type `{message_type}`");
                        return Record::DeadLetter(self.dead_letter(
                            line,
                            Some(type_field.clone()),
                            reason,
                            raw,
                        ));
                    }
                }
            }
            (None, None) => unreachable!("validated: jsonl has a mapping or type_field"),
        };
        let lookup = |path: &str| json_path(&value, path).map(Raw::Json);
        self.map_record(mapping, lookup, line, raw)
    }

    fn map_record<'a>(
        &self,
        mapping: &Mapping,
        lookup: impl Fn(&str) -> Option<Raw<'a>>,
        line: u64,
        raw: String,
    ) -> Record {
        let kind = mapping.entity_kind().expect("validated: entity is known");
        let id = match lookup(&mapping.id).map(|value| parse_value(self, FieldKind::Text, value)) {
            Some(Ok(Value::String(id))) => id,
            Some(Err(reason)) => {
                return Record::DeadLetter(self.dead_letter(
                    line,
                    Some(mapping.id.clone()),
                    reason,
                    raw,
                ));
            }
            _ => {
                let reason = "the record's id is missing".to_string();
                return Record::DeadLetter(self.dead_letter(
                    line,
                    Some(mapping.id.clone()),
                    reason,
                    raw,
                ));
            }
        };
        let mut fields = Map::new();
        for (canonical, column) in &mapping.fields {
            let spec = kind
                .field(canonical)
                .expect("validated: canonical field exists");
            let value = match lookup(column) {
                None => Value::Null,
                Some(value) => match parse_value(self, spec.kind, value) {
                    Ok(value) => value,
                    Err(reason) => {
                        let reason = format!("{canonical}: {reason}");
                        return Record::DeadLetter(self.dead_letter(
                            line,
                            Some(column.clone()),
                            reason,
                            raw,
                        ));
                    }
                },
            };
            if spec.required && value.is_null() {
                let reason = format!("{canonical}: required value is missing");
                return Record::DeadLetter(self.dead_letter(
                    line,
                    Some(column.clone()),
                    reason,
                    raw,
                ));
            }
            fields.insert(canonical.clone(), value);
        }
        let recorded_at = match &mapping.recorded_at {
            None => None,
            Some(column) => {
                match lookup(column).map(|value| parse_value(self, FieldKind::DateTime, value)) {
                    None | Some(Ok(Value::Null)) => None,
                    Some(Ok(Value::String(text))) => text.parse::<DateTime<Utc>>().ok(),
                    Some(Ok(_)) => None,
                    Some(Err(reason)) => {
                        return Record::DeadLetter(self.dead_letter(
                            line,
                            Some(column.clone()),
                            reason,
                            raw,
                        ));
                    }
                }
            }
        };
        let payload = match Payload::from_fields(kind, fields) {
            Ok(payload) => payload,
            Err(reason) => return Record::DeadLetter(self.dead_letter(line, None, reason, raw)),
        };
        let position = self.position(line);
        Record::Event(Box::new(Envelope {
            event_id: Envelope::event_id_for(&self.config.name, &position),
            event_type: kind.event_type().to_string(),
            source: Source {
                system: self.config.system.clone(),
                instance: self.config.name.clone(),
                op: Op::Read,
                position,
            },
            source_ref: Reference {
                id,
                allocated_by: self.config.system.clone(),
            },
            occurred_at: occurred_at(&payload),
            recorded_at,
            ingested_at: Utc::now(),
            payload,
        }))
    }
}

/// Business time of a payload, where the entity has one.
fn occurred_at(payload: &Payload) -> Option<DateTime<Utc>> {
    match payload {
        Payload::RepairRequest(request) => Some(request.reported_at),
        Payload::WorkOrder(order) => Some(order.raised_at),
        Payload::WorkOrderUpdate(update) => Some(update.status_at),
        Payload::Appointment(appointment) => appointment.booked_at,
        Payload::Visit(visit) => visit.arrived_at,
        _ => None,
    }
}

/// The value at a dotted path (`priority.code`) of a JSON object.
fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |value, key| value.get(key))
}

/// Parses one source value by its canonical kind; empty text and JSON null become null.
fn parse_value(source: &FileSource, kind: FieldKind, raw: Raw<'_>) -> Result<Value, String> {
    let text = match raw {
        Raw::Json(Value::Null) => return Ok(Value::Null),
        Raw::Json(Value::String(text)) => text.trim(),
        Raw::Text(text) => text.trim(),
        Raw::Json(value) => {
            return match (kind, value) {
                (FieldKind::Text, Value::Number(number)) => Ok(Value::String(number.to_string())),
                (FieldKind::Integer, Value::Number(number)) if number.is_i64() => Ok(value.clone()),
                (FieldKind::Bool, Value::Bool(_)) => Ok(value.clone()),
                (FieldKind::List, Value::Array(items)) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => Ok(Value::String(text.trim().to_string())),
                        Value::Number(number) => Ok(Value::String(number.to_string())),
                        other => Err(format!("list item {other} is not text")),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array),
                (kind, value) => Err(format!("expected {}, found {value}", kind_name(kind))),
            };
        }
    };
    if text.is_empty() {
        return Ok(Value::Null);
    }
    match kind {
        FieldKind::Text => Ok(Value::String(text.to_string())),
        FieldKind::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("cannot parse `{text}` as an integer")),
        FieldKind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "t" => Ok(Value::Bool(true)),
            "false" | "no" | "n" | "0" | "f" => Ok(Value::Bool(false)),
            _ => Err(format!("cannot parse `{text}` as yes/no")),
        },
        FieldKind::Date => source
            .config
            .date_formats
            .iter()
            .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
            .map(|date| Value::String(date.to_string()))
            .ok_or_else(|| {
                format!(
                    "cannot parse `{text}` as a date with formats [{}]",
                    source.config.date_formats.join(", ")
                )
            }),
        FieldKind::DateTime => DateTime::parse_from_rfc3339(text)
            .map(|instant| instant.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                source
                    .config
                    .datetime_formats
                    .iter()
                    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
                    .map(|naive| naive.and_utc())
            })
            .map(|instant| {
                Value::String(instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            })
            .ok_or_else(|| {
                let mut formats = vec!["RFC 3339".to_string()];
                formats.extend(source.config.datetime_formats.iter().cloned());
                format!(
                    "cannot parse `{text}` as a date-time with formats [{}]",
                    formats.join(", ")
                )
            }),
        FieldKind::List => Ok(Value::Array(
            text.split(';')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_string()))
                .collect(),
        )),
    }
}

fn kind_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text => "text",
        FieldKind::Integer => "an integer",
        FieldKind::Bool => "true/false",
        FieldKind::Date => "a date",
        FieldKind::DateTime => "a date-time",
        FieldKind::List => "a list",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::entity::Person;

    fn source(dir: &Path, file: &str, body: &str, config: &str) -> FileSource {
        std::fs::write(dir.join(file), body).unwrap();
        let config: SourceConfig = toml::from_str(config).unwrap();
        FileSource::open(&config, dir).unwrap()
    }

    fn drain(mut source: FileSource) -> Vec<Record> {
        std::iter::from_fn(|| source.next_record())
            .map(Result::unwrap)
            .collect()
    }

    const PERSONS: &str = r#"
        name = "hms_tenants"
        system = "hms"
        path = "tenants.csv"
        format = "csv"
        date_formats = ["%d/%m/%Y"]
        [mapping]
        entity = "person"
        id = "ref"
        fields = { given_name = "forename", family_name = "surname", date_of_birth = "dob" }
    "#;

    #[test]
    fn csv_rows_become_events_or_dead_letters_with_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let body = "ref,forename,surname,dob\n\
                    T1,Ann,Smith,02/03/1970\n\
                    T2,Bob,Jones,31/02/1980\n\
                    ,Cy,Brown,01/01/1990\n\
                    T4,Dee\n";
        let records = drain(source(dir.path(), "tenants.csv", body, PERSONS));
        assert_eq!(records.len(), 4);
        let first = records[0].event().unwrap();
        assert_eq!(first.source_ref.id, "T1");
        assert_eq!(first.source.position, "tenants.csv:2");
        assert_eq!(first.event_type, "person.upserted.v1");
        assert_eq!(
            first.payload,
            Payload::Person(Person {
                given_name: Some("Ann".into()),
                family_name: Some("Smith".into()),
                date_of_birth: NaiveDate::from_ymd_opt(1970, 3, 2),
                ..Person::default()
            })
        );
        let bad_date = records[1].dead_letter().unwrap();
        assert_eq!(bad_date.position, "tenants.csv:3");
        assert_eq!(bad_date.field.as_deref(), Some("dob"));
        assert!(
            bad_date
                .reason
                .contains("cannot parse `31/02/1980` as a date"),
            "{}",
            bad_date.reason
        );
        assert_eq!(bad_date.raw, "T2,Bob,Jones,31/02/1980");
        let no_id = records[2].dead_letter().unwrap();
        assert_eq!(
            (no_id.position.as_str(), no_id.field.as_deref()),
            ("tenants.csv:4", Some("ref"))
        );
        let short = records[3].dead_letter().unwrap();
        assert_eq!(short.position, "tenants.csv:5");
        assert_eq!(short.reason, "row has 2 fields, the header has 4");
    }

    #[test]
    fn missing_mapped_column_is_a_config_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tenants.csv"), "ref,forename\n").unwrap();
        let config: SourceConfig = toml::from_str(PERSONS).unwrap();
        let error = FileSource::open(&config, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("mapped columns not in the header: dob, surname"),
            "{error}"
        );
    }

    #[test]
    fn jsonl_messages_route_by_type_and_bad_lines_are_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let body = concat!(
            r#"{"messageType":"Complete","ref":"WO1","at":"2025-01-02T10:00:00Z","status":"completed"}"#,
            "\n",
            r#"{"messageType":"Complete","ref":"WO2","at":"yesterday","status":"completed"}"#,
            "\n",
            "{broken\n",
            "\n",
            r#"{"messageType":"Gossip","ref":"X"}"#,
            "\n",
            r#"{"messageType":"Complete","ref":"WO3","at":"2025-01-02T10:00:00Z","status":null}"#,
            "\n",
        );
        let config = r#"
            name = "feed"
            system = "repairs"
            path = "feed.jsonl"
            format = "jsonl"
            type_field = "messageType"
            [messages.Complete]
            entity = "work_order_update"
            id = "ref"
            fields = { work_order_ref = "ref", status = "status", status_at = "at" }
        "#;
        let records = drain(source(dir.path(), "feed.jsonl", body, config));
        assert_eq!(records.len(), 5, "the blank line is not a row");
        assert_eq!(
            records[0].event().unwrap().event_type,
            "work_order.status_changed.v1"
        );
        let reasons: Vec<(String, String)> = records[1..]
            .iter()
            .map(|record| {
                let dead = record.dead_letter().unwrap();
                (dead.position.clone(), dead.reason.clone())
            })
            .collect();
        assert!(
            reasons[0]
                .1
                .starts_with("status_at: cannot parse `yesterday` as a date-time"),
            "{reasons:?}"
        );
        assert_eq!(reasons[0].0, "feed.jsonl:2");
        assert!(reasons[1].1.starts_with("invalid JSON"), "{reasons:?}");
        assert_eq!(
            reasons[2],
            (
                "feed.jsonl:5".into(),
                "no mapping for message type `Gossip`".into()
            )
        );
        assert_eq!(
            reasons[3],
            (
                "feed.jsonl:6".into(),
                "status: required value is missing".into()
            )
        );
    }
}
