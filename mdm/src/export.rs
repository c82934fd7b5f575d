//! Master data as CSV tables, for people and for the tests: what `goldthread run --out` and
//! `goldthread link` write (each [`Table`] to its file), and the stewards' and
//! contractors' views of vulnerabilities. Each table is written to any `io::Write`: opening
//! files (and keeping them private) is the caller's.

use std::io::Write;

use chrono::NaiveDate;

use crate::{Entity, Hub};

/// A master data table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Every source record and its golden id.
    Xref,
    GoldenPersons,
    GoldenProperties,
    Tenancies,
    /// Every link inside a golden record, explained, and the pairs a requirement kept apart.
    Links,
    /// The pairs a steward should look at, with the model's explanation.
    ReviewQueue,
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::Xref,
        Table::GoldenPersons,
        Table::GoldenProperties,
        Table::Tenancies,
        Table::Links,
        Table::ReviewQueue,
    ];

    /// The table's file: `xref.csv`, `golden_persons.csv`, ...
    pub fn file_name(self) -> &'static str {
        match self {
            Table::Xref => "xref.csv",
            Table::GoldenPersons => "golden_persons.csv",
            Table::GoldenProperties => "golden_properties.csv",
            Table::Tenancies => "tenancies.csv",
            Table::Links => "links.csv",
            Table::ReviewQueue => "review_queue.csv",
        }
    }

    /// Writes the table of `hub` as CSV.
    pub fn write(self, hub: &Hub, out: impl Write) -> Result<(), csv::Error> {
        let mut csv = csv::Writer::from_writer(out);
        match self {
            Table::Xref => {
                for entry in hub.xref() {
                    csv.serialize(entry)?;
                }
            }
            Table::GoldenPersons => golden_persons(hub, &mut csv)?,
            Table::GoldenProperties => golden_properties(hub, &mut csv)?,
            Table::Tenancies => tenancies(hub, &mut csv)?,
            Table::Links => links(hub, &mut csv)?,
            Table::ReviewQueue => review_queue(hub, &mut csv)?,
        }
        csv.flush()?;
        Ok(())
    }
}

fn optional(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn date(value: Option<NaiveDate>) -> String {
    value.map(|date| date.to_string()).unwrap_or_default()
}

/// Source records as `system:id;system:id`.
fn sources(sources: &[pipeline::Reference]) -> String {
    sources
        .iter()
        .map(|reference| format!("{}:{}", reference.allocated_by, reference.id))
        .collect::<Vec<_>>()
        .join(";")
}

fn golden_persons<W: Write>(hub: &Hub, csv: &mut csv::Writer<W>) -> Result<(), csv::Error> {
    csv.write_record([
        "golden_id",
        "title",
        "given_name",
        "middle_name",
        "family_name",
        "date_of_birth",
        "nino",
        "phone",
        "email",
        "postcode",
        "sources",
    ])?;
    for person in hub.golden_persons() {
        csv.write_record([
            person.golden_id.clone(),
            optional(&person.title),
            optional(&person.given_name),
            optional(&person.middle_name),
            optional(&person.family_name),
            date(person.date_of_birth),
            optional(&person.nino),
            optional(&person.phone),
            optional(&person.email),
            optional(&person.postcode),
            sources(&person.sources),
        ])?;
    }
    Ok(())
}

fn golden_properties<W: Write>(hub: &Hub, csv: &mut csv::Writer<W>) -> Result<(), csv::Error> {
    csv.write_record([
        "golden_id",
        "uprn",
        "parent_uprn",
        "parent_golden_id",
        "saon",
        "paon",
        "street",
        "locality",
        "town",
        "postcode",
        "property_type",
        "sources",
    ])?;
    for property in hub.golden_properties() {
        csv.write_record([
            property.golden_id.clone(),
            optional(&property.uprn),
            optional(&property.parent_uprn),
            optional(&property.parent_golden_id),
            optional(&property.saon),
            optional(&property.paon),
            optional(&property.street),
            optional(&property.locality),
            optional(&property.town),
            optional(&property.postcode),
            optional(&property.property_type),
            sources(&property.sources),
        ])?;
    }
    Ok(())
}

fn tenancies<W: Write>(hub: &Hub, csv: &mut csv::Writer<W>) -> Result<(), csv::Error> {
    csv.write_record([
        "source",
        "tenancy_id",
        "golden_property_id",
        "golden_person_ids",
        "start_date",
        "tenure",
    ])?;
    for tenancy in hub.tenancies() {
        csv.write_record([
            tenancy.tenancy.allocated_by.clone(),
            tenancy.tenancy.id.clone(),
            optional(&tenancy.golden_property_id),
            tenancy.golden_person_ids.join(";"),
            date(tenancy.start_date),
            optional(&tenancy.tenure),
        ])?;
    }
    Ok(())
}

/// Why each golden record holds its records: every link inside it, explained, and the
/// pairs a requirement kept apart.
fn links<W: Write>(hub: &Hub, csv: &mut csv::Writer<W>) -> Result<(), csv::Error> {
    csv.write_record([
        "entity",
        "golden_id",
        "source_a",
        "source_id_a",
        "source_b",
        "source_id_b",
        "decided_by",
        "probability",
        "match_weight",
        "explanation",
    ])?;
    for (entity, ids) in [
        (Entity::Person, hub.golden_person_ids()),
        (Entity::Property, hub.golden_property_ids()),
    ] {
        for golden_id in ids {
            let mut explained = hub.explain(entity, &golden_id).unwrap_or_default();
            explained.extend(hub.vetoed(entity, &golden_id));
            for link in explained {
                let (probability, weight, explanation) = match &link.score {
                    Some(score) => (
                        format!("{:.6}", score.probability),
                        format!("{:.3}", score.weight),
                        score.explain(),
                    ),
                    None => (
                        String::new(),
                        String::new(),
                        link.key.clone().unwrap_or_default(),
                    ),
                };
                csv.write_record([
                    entity.as_str().to_string(),
                    golden_id.clone(),
                    link.a.allocated_by.clone(),
                    link.a.id.clone(),
                    link.b.allocated_by.clone(),
                    link.b.id.clone(),
                    link.decided_by.to_string(),
                    probability,
                    weight,
                    explanation,
                ])?;
            }
        }
    }
    Ok(())
}

/// One row per pair a steward should look at, with the model's explanation: the level and
/// weight of every comparison, and the whole score as JSON.
fn review_queue<W: Write>(hub: &Hub, csv: &mut csv::Writer<W>) -> Result<(), csv::Error> {
    csv.write_record([
        "entity",
        "source_a",
        "source_id_a",
        "golden_id_a",
        "source_b",
        "source_id_b",
        "golden_id_b",
        "probability",
        "match_weight",
        "explanation",
        "model_version",
        "score_json",
    ])?;
    for item in hub.review_queue() {
        csv.write_record([
            item.entity.as_str().to_string(),
            item.a.allocated_by.clone(),
            item.a.id.clone(),
            item.golden_a.clone(),
            item.b.allocated_by.clone(),
            item.b.id.clone(),
            item.golden_b.clone(),
            format!("{:.6}", item.score.probability),
            format!("{:.3}", item.score.weight),
            item.score.explain(),
            item.score.model_version.clone(),
            serde_json::to_string(&item.score).expect("a score serialises"),
        ])?;
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct VulnerabilityRow<'a> {
    source: &'a str,
    vulnerability_id: &'a str,
    golden_person_id: &'a str,
    code: &'a str,
    description: &'a str,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    review_date: Option<NaiveDate>,
    active: bool,
    review_overdue: bool,
}

/// The stewards' view of vulnerabilities (special category data) as of `day`.
pub fn vulnerabilities(hub: &Hub, day: NaiveDate, out: impl Write) -> Result<(), csv::Error> {
    let mut csv = csv::Writer::from_writer(out);
    for status in hub.vulnerabilities(day) {
        csv.serialize(VulnerabilityRow {
            source: &status.vulnerability.allocated_by,
            vulnerability_id: &status.vulnerability.id,
            golden_person_id: status.golden_person_id.as_deref().unwrap_or(""),
            code: &status.code,
            description: status.description.as_deref().unwrap_or(""),
            start_date: status.start_date,
            end_date: status.end_date,
            review_date: status.review_date,
            active: status.active,
            review_overdue: status.review_overdue,
        })?;
    }
    csv.flush()?;
    Ok(())
}

/// The contractors' view as of `day`: a flag per home, no code, no description, no person.
pub fn contractor_alerts(hub: &Hub, day: NaiveDate, out: impl Write) -> Result<(), csv::Error> {
    let mut csv = csv::Writer::from_writer(out);
    for alert in hub.contractor_alerts(day) {
        csv.serialize(alert)?;
    }
    csv.flush()?;
    Ok(())
}
