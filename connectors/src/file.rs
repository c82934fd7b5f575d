//! The file connector: reads a CSV or JSON lines export and maps each row to a canonical
//! event, or to a dead letter naming the file, line, field and reason.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::Utc;
use pipeline::{DeadLetter, Envelope, Op};
use serde_json::Value;

use crate::Source as _;
use crate::config::{Format, Mapping, SourceConfig};
use crate::error::Error;
use crate::mapping::{Raw, json_path, route};

/// Per-source counts: every row read is an event produced or a dead letter.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceCounts {
    pub name: String,
    pub system: String,
    /// The file, topics or table read.
    pub path: String,
    pub rows_read: u64,
    pub events_produced: u64,
    pub dead_letters: u64,
    /// Values of optional fields that did not parse (the events flowed with them kept).
    pub unparsed: pipeline::UnparsedTally,
}

impl SourceCounts {
    pub fn new(name: &str, system: &str, path: String) -> SourceCounts {
        SourceCounts {
            name: name.to_string(),
            system: system.to_string(),
            path,
            ..SourceCounts::default()
        }
    }

    /// Counts what one row became.
    pub fn count(&mut self, record: &Record) {
        self.rows_read += 1;
        match record {
            Record::Event(event) => {
                self.events_produced += 1;
                self.unparsed.add(&self.name, event);
            }
            Record::DeadLetter(_) => self.dead_letters += 1,
        }
    }
}

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
        reader: BufReader<File>,
        /// The current line, cut at `MAX_ROW_BYTES` (its full length is returned apart).
        buffer: Vec<u8>,
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
                    .chain(mapping.identifiers.values())
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
                reader: BufReader::new(file),
                buffer: Vec::new(),
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
    /// A row longer than [`pipeline::MAX_ROW_BYTES`] is a dead letter; a JSON lines file is
    /// read a bounded line at a time, whatever its lines' lengths.
    pub fn next_record(&mut self) -> Option<Result<Record, Error>> {
        let result = match &mut self.reader {
            Reader::Csv { reader, headers } => {
                let mut row = csv::ByteRecord::new();
                match reader.read_byte_record(&mut row) {
                    Ok(false) => return None,
                    Ok(true) => {
                        let line = row.position().map_or(0, |position| position.line());
                        let headers = headers.clone();
                        let bytes = row.as_slice().len();
                        if bytes > pipeline::MAX_ROW_BYTES {
                            let raw = String::from_utf8_lossy(row.as_slice()).into_owned();
                            Ok(Record::DeadLetter(self.dead_letter(
                                line,
                                None,
                                too_long(bytes),
                                raw,
                            )))
                        } else {
                            Ok(self.csv_record(&headers, &row, line))
                        }
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
            Reader::Jsonl {
                reader,
                buffer,
                line,
            } => loop {
                match read_line(reader, buffer, pipeline::MAX_ROW_BYTES) {
                    Err(error) => break Err(Error::io(&self.path, error)),
                    Ok(None) => return None,
                    Ok(Some(length)) => {
                        *line += 1;
                        // A blank line is not a row; it is neither read nor dead-lettered.
                        if buffer.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let (bytes, line) = (std::mem::take(buffer), *line);
                        let record = if length > pipeline::MAX_ROW_BYTES {
                            let raw = String::from_utf8_lossy(&bytes).into_owned();
                            Record::DeadLetter(self.dead_letter(line, None, too_long(length), raw))
                        } else {
                            self.json_record(&bytes, line)
                        };
                        break Ok(record);
                    }
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
            source_ref: None,
        }
        .clipped()
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
            let mut dead_letter = self.dead_letter(line, None, reason, raw);
            // The record it is about, where its id column is there to read: the dead letter
            // can then be found, reported and erased with it.
            dead_letter.source_ref = self.config.mapping.as_ref().and_then(|mapping| {
                let index = headers.iter().position(|header| *header == mapping.id)?;
                let id = std::str::from_utf8(row.get(index)?).ok()?.trim();
                (!id.is_empty()).then(|| pipeline::Reference {
                    id: id.to_string(),
                    allocated_by: self.config.system.clone(),
                })
            });
            return Record::DeadLetter(dead_letter);
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

    fn map_record<'a>(
        &self,
        mapping: &Mapping,
        lookup: impl Fn(&str) -> Option<Raw<'a>>,
        line: u64,
        raw: String,
    ) -> Record {
        let mapper = self.config.mapper();
        match mapper.map(mapping, lookup, self.position(line), Op::Read) {
            Ok(envelope) => Record::Event(Box::new(envelope)),
            Err(rejected) => {
                let source_ref = rejected.reference(&self.config.system);
                Record::DeadLetter(DeadLetter {
                    source_ref,
                    ..self.dead_letter(line, rejected.field, rejected.reason, raw)
                })
            }
        }
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
        let config = &self.config;
        let mapping = match route(
            config.mapping.as_ref(),
            config.type_field.as_ref(),
            &config.messages,
            &value,
        ) {
            Ok(mapping) => mapping,
            Err(rejected) => {
                return Record::DeadLetter(self.dead_letter(
                    line,
                    rejected.field,
                    rejected.reason,
                    raw,
                ));
            }
        };
        let lookup = |path: &str| json_path(&value, path).map(Raw::Json);
        self.map_record(mapping, lookup, line, raw)
    }
}

fn too_long(bytes: usize) -> String {
    format!(
        "the row is {bytes} bytes, more than the {} a row may have",
        pipeline::MAX_ROW_BYTES
    )
}

/// Reads one line (without its `\n`) into `buffer`, keeping at most `limit` bytes of it and
/// skipping the rest; returns the line's whole length, or `None` at the end of the input.
fn read_line(
    reader: &mut impl BufRead,
    buffer: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<usize>> {
    buffer.clear();
    let (mut length, mut started) = (0, false);
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(started.then_some(length));
        }
        started = true;
        let end = available.iter().position(|&byte| byte == b'\n');
        let content = &available[..end.unwrap_or(available.len())];
        let room = limit.saturating_sub(buffer.len());
        buffer.extend_from_slice(&content[..content.len().min(room)]);
        length += content.len();
        let consumed = end.map_or(available.len(), |end| end + 1);
        reader.consume(consumed);
        if end.is_some() {
            return Ok(Some(length));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use pipeline::entity::{Payload, Person};

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
        // A value of an optional field that does not parse: the record flows, the value is
        // kept as it came (with its numbers in the format's order) and the field is null.
        let bad_date = records[1].event().unwrap();
        assert_eq!(bad_date.source.position, "tenants.csv:3");
        let Payload::Person(person) = &bad_date.payload else {
            panic!("{bad_date:?}")
        };
        assert_eq!(person.date_of_birth, None);
        let kept = &bad_date.unparsed["date_of_birth"];
        assert_eq!(kept.raw, "31/02/1980");
        assert_eq!(kept.date_digits.as_deref(), Some("19800231"));
        assert!(
            kept.reason.contains("cannot parse `31/02/1980` as a date"),
            "{}",
            kept.reason
        );
        let no_id = records[2].dead_letter().unwrap();
        assert_eq!(
            (no_id.position.as_str(), no_id.field.as_deref()),
            ("tenants.csv:4", Some("ref"))
        );
        let short = records[3].dead_letter().unwrap();
        assert_eq!(short.position, "tenants.csv:5");
        assert_eq!(short.reason, "row has 2 fields, the header has 4");
        assert_eq!(short.source_ref.as_ref().unwrap().id, "T4");
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

    #[test]
    fn a_million_blank_lines_and_rows_over_the_bound_are_read_without_harm() {
        let dir = tempfile::tempdir().unwrap();
        let config = r#"
            name = "feed"
            system = "repairs"
            path = "feed.jsonl"
            format = "jsonl"
            [mapping]
            entity = "work_order_update"
            id = "ref"
            fields = { work_order_ref = "ref", status = "status", status_at = "at" }
        "#;
        let event = r#"{"ref":"WO1","at":"2025-01-02T10:00:00Z","status":"completed"}"#;
        // Blank lines are skipped in a loop (they recursed, and a million overflowed the stack).
        let mut body = "\n".repeat(1_000_000);
        body.push_str(event);
        body.push('\n');
        let huge = format!(
            r#"{{"ref":"WO2","at":"2025-01-02T10:00:00Z","status":"{}"}}"#,
            "x".repeat(2 * 1024 * 1024)
        );
        body.push_str(&huge);
        body.push('\n');
        body.push_str(event);
        let records = drain(source(dir.path(), "feed.jsonl", &body, config));
        assert_eq!(records.len(), 3);
        assert!(records[0].event().is_some());
        let dead = records[1].dead_letter().unwrap();
        assert_eq!(dead.position, "feed.jsonl:1000002");
        assert!(
            dead.reason
                .starts_with(&format!("the row is {} bytes", huge.len())),
            "{}",
            dead.reason
        );
        assert!(dead.raw.len() < pipeline::MAX_DEAD_LETTER_RAW_BYTES + 64);
        assert_eq!(
            records[2].event().unwrap().source.position,
            "feed.jsonl:1000003"
        );

        // One CSV field over a megabyte: a dead letter, and the next row is read.
        let body = format!(
            "ref,forename,surname,dob\nT1,{},Smith,02/03/1970\nT2,Bob,Jones,02/03/1970\n",
            "a".repeat(1024 * 1024 + 1)
        );
        let records = drain(source(dir.path(), "tenants.csv", &body, PERSONS));
        assert_eq!(records.len(), 2);
        let dead = records[0].dead_letter().unwrap();
        assert_eq!(dead.position, "tenants.csv:2");
        assert!(
            dead.reason.contains("more than the 262144 a row may have"),
            "{}",
            dead.reason
        );
        assert_eq!(records[1].event().unwrap().source_ref.id, "T2");
    }

    #[test]
    fn dates_outside_the_years_a_landlord_keeps_are_not_dates() {
        let dir = tempfile::tempdir().unwrap();
        let body = "ref,forename,surname,dob\nT1,Ann,Smith,02/03/1700\nT2,Bob,Jones,02/03/1970\n";
        let records = drain(source(dir.path(), "tenants.csv", body, PERSONS));
        let kept = &records[0].event().unwrap().unparsed["date_of_birth"];
        assert!(
            kept.reason.contains("outside the years 1800-2199"),
            "{}",
            kept.reason
        );
        assert!(records[1].event().unwrap().unparsed.is_empty());
    }

    proptest::proptest! {
        /// Any bytes in a CSV or JSON lines export (invalid UTF-8, stray quotes, huge or
        /// mistyped fields): nothing panics, and every row read is an event or a dead letter.
        #[test]
        fn any_file_content_becomes_events_or_dead_letters(
            lines in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 0..20),
            csv in proptest::prelude::any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (file, header, config) = if csv {
                ("people.csv", "person_ref,forename,surname,dob\n", r#"
                    name = "people"
                    system = "hms"
                    path = "people.csv"
                    format = "csv"
                    [mapping]
                    entity = "person"
                    id = "person_ref"
                    fields = { given_name = "forename", family_name = "surname", date_of_birth = "dob" }
                "#)
            } else {
                ("people.jsonl", "", r#"
                    name = "people"
                    system = "hms"
                    path = "people.jsonl"
                    format = "jsonl"
                    [mapping]
                    entity = "person"
                    id = "ref"
                    fields = { given_name = "name.given", date_of_birth = "dob" }
                "#)
            };
            let mut body = header.as_bytes().to_vec();
            for line in &lines {
                body.extend(line.iter().filter(|&&b| b != b'\n'));
                body.push(b'\n');
            }
            std::fs::write(dir.path().join(file), &body).unwrap();
            let config: SourceConfig = toml::from_str(config).unwrap();
            let mut source = FileSource::open(&config, dir.path()).unwrap();
            let mut records = 0u64;
            while let Some(record) = source.next_record() {
                records += u64::from(record.is_ok());
            }
            proptest::prop_assert_eq!(records, source.rows_read());
        }
    }
}
