//! The mapping contract shared by every source: a row (CSV columns, a JSON object, a
//! Debezium `after` image) becomes one canonical event, or a rejection naming the field and
//! the reason, which the source turns into a dead letter with its own position.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use pipeline::entity::{FieldKind, Payload};
use pipeline::{Envelope, Op, Reference, Source, Unparsed};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::config::Mapping;

/// A source value, before it is parsed by its canonical field kind.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    Text(&'a str),
    Json(&'a Value),
}

/// Why a row did not become an event: the source field (when one is to blame) and why, and
/// the record's id when it could be read (so the dead letter can be found, erased and
/// reported by the record it is about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub field: Option<String>,
    pub reason: String,
    pub id: Option<String>,
}

impl Rejected {
    pub fn new(field: Option<&str>, reason: impl Into<String>) -> Rejected {
        Rejected {
            field: field.map(str::to_string),
            reason: reason.into(),
            id: None,
        }
    }

    /// The record this rejection is about, as allocated by `system`.
    pub fn reference(&self, system: &str) -> Option<Reference> {
        self.id.as_ref().map(|id| Reference {
            id: id.clone(),
            allocated_by: system.to_string(),
        })
    }
}

/// What a source maps its rows with.
#[derive(Debug, Clone, Copy)]
pub struct Mapper<'a> {
    /// The configured source: labels the event (`source.instance`) and seeds its id.
    pub name: &'a str,
    /// The system that allocated the ids.
    pub system: &'a str,
    pub date_formats: &'a [String],
    pub datetime_formats: &'a [String],
}

impl Mapper<'_> {
    /// Maps one row. `lookup` gives a source column or dotted path's value; `position` is
    /// where the row was read (`tenants.csv:12`, `topic/0@42`) and derives the event id, so
    /// reading the same row again yields the same event.
    pub fn map<'v>(
        &self,
        mapping: &Mapping,
        lookup: impl Fn(&str) -> Option<Raw<'v>>,
        position: String,
        op: Op,
    ) -> Result<Envelope, Rejected> {
        let kind = mapping.entity_kind().expect("validated: entity is known");
        let id = match lookup(&mapping.id).map(|value| self.parse(FieldKind::Text, value)) {
            Some(Ok(Value::String(id))) => id,
            Some(Err(reason)) => return Err(Rejected::new(Some(&mapping.id), reason)),
            _ => {
                return Err(Rejected::new(
                    Some(&mapping.id),
                    "the record's id is missing",
                ));
            }
        };
        self.map_fields(mapping, kind, lookup, &id, position, op)
            .map_err(|rejected| Rejected {
                id: Some(id.clone()),
                ..rejected
            })
    }

    /// The rest of [`Mapper::map`], once the record's id is read.
    fn map_fields<'v>(
        &self,
        mapping: &Mapping,
        kind: pipeline::EntityKind,
        lookup: impl Fn(&str) -> Option<Raw<'v>>,
        id: &str,
        position: String,
        op: Op,
    ) -> Result<Envelope, Rejected> {
        let mut fields = Map::new();
        let mut unparsed = BTreeMap::new();
        for (canonical, column) in &mapping.fields {
            let spec = kind
                .field(canonical)
                .expect("validated: canonical field exists");
            let value = match lookup(column) {
                None => Value::Null,
                Some(raw) => match self.parse(spec.kind, raw) {
                    Ok(value) => value,
                    // A value of an optional field that does not parse is a finding, not a
                    // reason to lose the record: kept as it came, the field left null.
                    Err(reason) if !spec.required => {
                        unparsed.insert(canonical.clone(), self.unparsed(spec.kind, raw, reason));
                        Value::Null
                    }
                    Err(reason) => {
                        return Err(Rejected::new(
                            Some(column),
                            format!("{canonical}: {reason}"),
                        ));
                    }
                },
            };
            if spec.required && value.is_null() {
                return Err(Rejected::new(
                    Some(column),
                    format!("{canonical}: required value is missing"),
                ));
            }
            fields.insert(canonical.clone(), value);
        }
        if !mapping.identifiers.is_empty() {
            let mut identifiers = Map::new();
            for (name, column) in &mapping.identifiers {
                let Some(raw) = lookup(column) else { continue };
                match self.parse(FieldKind::Text, raw) {
                    Ok(Value::Null) => {}
                    Ok(value) => {
                        identifiers.insert(name.clone(), value);
                    }
                    Err(reason) => {
                        unparsed.insert(
                            format!("identifiers.{name}"),
                            self.unparsed(FieldKind::Text, raw, reason),
                        );
                    }
                }
            }
            fields.insert("identifiers".into(), Value::Object(identifiers));
        }
        let recorded_at = match &mapping.recorded_at {
            None => None,
            Some(column) => match lookup(column) {
                None => None,
                Some(raw) => match self.parse(FieldKind::DateTime, raw) {
                    Ok(Value::String(text)) => text.parse::<DateTime<Utc>>().ok(),
                    Ok(_) => None,
                    Err(reason) => {
                        unparsed.insert(
                            "recorded_at".into(),
                            self.unparsed(FieldKind::DateTime, raw, reason),
                        );
                        None
                    }
                },
            },
        };
        let payload =
            Payload::from_fields(kind, fields).map_err(|reason| Rejected::new(None, reason))?;
        Ok(Envelope {
            event_id: Envelope::event_id_for(self.name, &position),
            event_type: kind.event_type().to_string(),
            source: Source {
                system: self.system.to_string(),
                instance: self.name.to_string(),
                op,
                position,
            },
            source_ref: Reference {
                id: id.to_string(),
                allocated_by: self.system.to_string(),
            },
            occurred_at: occurred_at(&payload),
            recorded_at,
            ingested_at: Utc::now(),
            payload,
            unparsed,
        })
    }

    /// A value that did not parse, as it came, with the reason and (for a date) its numbers
    /// read by the source's date formats.
    fn unparsed(&self, kind: FieldKind, raw: Raw<'_>, reason: String) -> Unparsed {
        let raw = match raw {
            Raw::Text(text) => text.trim().to_string(),
            Raw::Json(Value::String(text)) => text.trim().to_string(),
            Raw::Json(value) => value.to_string(),
        };
        let date_digits = (kind == FieldKind::Date)
            .then(|| {
                self.date_formats
                    .iter()
                    .find_map(|format| date_digits(&raw, format))
            })
            .flatten();
        Unparsed {
            raw,
            reason,
            date_digits,
        }
    }

    /// Parses one source value by its canonical kind; empty text and JSON null become null.
    /// JSON integers are also taken as dates (days since 1970-01-01, Debezium's
    /// `io.debezium.time.Date`) and instants (milliseconds since the epoch, or microseconds
    /// from 10^14 up: Debezium's `Timestamp` and `MicroTimestamp`).
    pub fn parse(&self, kind: FieldKind, raw: Raw<'_>) -> Result<Value, String> {
        let text = match raw {
            Raw::Json(Value::Null) => return Ok(Value::Null),
            Raw::Json(Value::String(text)) => text.trim(),
            Raw::Text(text) => text.trim(),
            Raw::Json(value) => {
                return match (kind, value) {
                    (FieldKind::Text, Value::Number(number)) => {
                        Ok(Value::String(number.to_string()))
                    }
                    (FieldKind::Integer, Value::Number(number)) if number.is_i64() => {
                        Ok(value.clone())
                    }
                    (FieldKind::Bool, Value::Bool(_)) => Ok(value.clone()),
                    (FieldKind::Date, Value::Number(number)) => number
                        .as_i64()
                        .and_then(|days| {
                            NaiveDate::from_ymd_opt(1970, 1, 1)?
                                .checked_add_signed(chrono::Duration::try_days(days)?)
                        })
                        .ok_or_else(|| format!("{number} is not a day number"))
                        .and_then(date_value),
                    (FieldKind::DateTime, Value::Number(number)) => number
                        .as_i64()
                        .and_then(|count| {
                            if count.abs() >= 100_000_000_000_000 {
                                DateTime::from_timestamp_micros(count)
                            } else {
                                DateTime::from_timestamp_millis(count)
                            }
                        })
                        .ok_or_else(|| format!("{number} is not an epoch time"))
                        .and_then(instant_value),
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
            FieldKind::Date => self
                .date_formats
                .iter()
                .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
                .ok_or_else(|| {
                    format!(
                        "cannot parse `{text}` as a date with formats [{}]",
                        self.date_formats.join(", ")
                    )
                })
                .and_then(date_value),
            FieldKind::DateTime => DateTime::parse_from_rfc3339(text)
                .map(|instant| instant.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    self.datetime_formats
                        .iter()
                        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
                        .map(|naive| naive.and_utc())
                })
                .ok_or_else(|| {
                    let mut formats = vec!["RFC 3339".to_string()];
                    formats.extend(self.datetime_formats.iter().cloned());
                    format!(
                        "cannot parse `{text}` as a date-time with formats [{}]",
                        formats.join(", ")
                    )
                })
                .and_then(instant_value),
            FieldKind::List => Ok(Value::Array(
                text.split(';')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::String(item.to_string()))
                    .collect(),
            )),
        }
    }
}

/// A date's numbers read by a strftime `format` as `YYYYMMDD`, whether or not they make a
/// date: digit runs are matched to the format's `%Y`, `%y`, `%m` and `%d` (`%e`) in order, or
/// a single run is cut by their widths (`19450493` with `%Y%m%d`). `None` when the text does
/// not have the format's shape (or the format names months, `%b`).
pub fn date_digits(text: &str, format: &str) -> Option<String> {
    let mut specifiers = Vec::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next()? {
                spec @ ('Y' | 'y' | 'm' | 'd' | 'e') => specifiers.push(spec),
                _ => return None,
            }
        }
    }
    let width = |spec: char| if spec == 'Y' { 4 } else { 2 };
    let runs: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|run| !run.is_empty())
        .collect();
    let parts: Vec<&str> = if runs.len() == specifiers.len() {
        runs
    } else if runs.len() == 1
        && runs[0].len() == specifiers.iter().map(|&s| width(s)).sum::<usize>()
    {
        let mut rest = runs[0];
        specifiers
            .iter()
            .map(|&spec| {
                let (part, tail) = rest.split_at(width(spec));
                rest = tail;
                part
            })
            .collect()
    } else {
        return None;
    };
    let (mut year, mut month, mut day) = (None, None, None);
    for (spec, part) in specifiers.iter().zip(parts) {
        let number: u32 = part.parse().ok()?;
        match spec {
            'Y' if part.len() == 4 => year = Some(number),
            // chrono's reading of two-digit years: 69-99 are 1969-1999.
            'y' if part.len() <= 2 => year = Some(if number >= 69 { 1900 } else { 2000 } + number),
            'm' if number < 100 => month = Some(number),
            'd' | 'e' if number < 100 => day = Some(number),
            _ => return None,
        }
    }
    Some(format!("{:04}{:02}{:02}", year?, month?, day?))
}

/// A parsed date as its canonical JSON value, if it lies in `pipeline::entity::YEARS`.
fn date_value(date: NaiveDate) -> Result<Value, String> {
    pipeline::entity::check_date(date)?;
    Ok(Value::String(date.to_string()))
}

/// A parsed instant as its canonical JSON value (RFC 3339, UTC), if it lies in
/// `pipeline::entity::YEARS`.
fn instant_value(instant: DateTime<Utc>) -> Result<Value, String> {
    pipeline::entity::check_instant(instant)?;
    Ok(Value::String(
        instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    ))
}

/// The mapping of one JSON message: the only one, or the one for its type (`type_field`).
pub fn route<'m>(
    mapping: Option<&'m Mapping>,
    type_field: Option<&String>,
    messages: &'m std::collections::BTreeMap<String, Mapping>,
    value: &Value,
) -> Result<&'m Mapping, Rejected> {
    match (mapping, type_field) {
        (Some(mapping), _) => Ok(mapping),
        (None, Some(type_field)) => {
            let message_type = json_path(value, type_field)
                .and_then(Value::as_str)
                .ok_or_else(|| Rejected::new(Some(type_field), "message type is missing"))?;
            messages.get(message_type).ok_or_else(|| {
                Rejected::new(
                    Some(type_field),
                    format!("no mapping for message type `{message_type}`"),
                )
            })
        }
        (None, None) => unreachable!("validated: a mapping or a type_field"),
    }
}

/// The value at a dotted path (`priority.code`) of a JSON object.
pub fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |value, key| value.get(key))
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

    #[test]
    fn a_date_that_does_not_parse_still_reads_as_digits_in_its_format() {
        assert_eq!(
            date_digits("30/03/2000", "%m/%d/%Y").as_deref(),
            Some("20003003")
        );
        assert_eq!(
            date_digits("19450493", "%Y%m%d").as_deref(),
            Some("19450493")
        );
        assert_eq!(
            date_digits("31-02-80", "%d-%m-%y").as_deref(),
            Some("19800231")
        );
        assert_eq!(date_digits("31 Feb 1980", "%d %b %Y"), None);
        assert_eq!(date_digits("yesterday", "%Y-%m-%d"), None);
        assert_eq!(date_digits("1945049", "%Y%m%d"), None);
    }
}
