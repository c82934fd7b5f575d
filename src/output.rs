//! `run --out DIR`: golden records, cross-reference, tenancies, dead letters, KPIs, data
//! exceptions and the summary as files for people and for the tests.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use mdm::{Entity, Hub};
use pipeline::DeadLetter;

use crate::run::Summary;

pub fn write(
    out: &Path,
    summary: &Summary,
    hub: &Hub,
    dead_letters: &[DeadLetter],
    exceptions: &[sql::ExceptionRow],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let file = |name: &str| create(out, name);
    serde_json::to_writer_pretty(file("summary.json")?, summary)?;
    std::fs::write(out.join("kpis.csv"), summary.kpis.to_csv())?;
    let mut writer = csv::Writer::from_writer(file("exceptions.csv")?);
    for exception in exceptions {
        writer.serialize(exception)?;
    }
    writer.flush()?;

    let mut writer = file("dead_letters.jsonl")?;
    for dead_letter in dead_letters {
        serde_json::to_writer(&mut writer, dead_letter)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;

    // Stewards' view of vulnerabilities (special category data) as of the period's end, and
    // the contractors' view: a flag per home, no code, no description, no person.
    let today = summary.kpis.to;
    let mut vulnerabilities = csv::Writer::from_writer(file("vulnerabilities.csv")?);
    for status in hub.vulnerabilities(today) {
        vulnerabilities.serialize(VulnerabilityRow {
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
    vulnerabilities.flush()?;
    let mut alerts = csv::Writer::from_writer(file("contractor_alerts.csv")?);
    for alert in hub.contractor_alerts(today) {
        alerts.serialize(alert)?;
    }
    alerts.flush()?;
    write_master_data(out, hub)
}

#[derive(serde::Serialize)]
struct VulnerabilityRow<'a> {
    source: &'a str,
    vulnerability_id: &'a str,
    golden_person_id: &'a str,
    code: &'a str,
    description: &'a str,
    start_date: Option<chrono::NaiveDate>,
    end_date: Option<chrono::NaiveDate>,
    review_date: Option<chrono::NaiveDate>,
    active: bool,
    review_overdue: bool,
}

fn create(out: &Path, name: &str) -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
    let path = out.join(name);
    Ok(std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| path.display().to_string())?,
    ))
}

/// The master data files `run --out` and `link` share: xref.csv, golden_persons.csv,
/// golden_properties.csv, tenancies.csv and review_queue.csv.
pub fn write_master_data(out: &Path, hub: &Hub) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let file = |name: &str| create(out, name);
    let mut xref = csv::Writer::from_writer(file("xref.csv")?);
    for entry in hub.xref() {
        xref.serialize(entry)?;
    }
    xref.flush()?;

    let optional = |value: &Option<String>| value.clone().unwrap_or_default();
    let sources = |sources: &[pipeline::Reference]| {
        sources
            .iter()
            .map(|reference| format!("{}:{}", reference.allocated_by, reference.id))
            .collect::<Vec<_>>()
            .join(";")
    };
    let mut persons = csv::Writer::from_writer(file("golden_persons.csv")?);
    persons.write_record([
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
        persons.write_record([
            person.golden_id.clone(),
            optional(&person.title),
            optional(&person.given_name),
            optional(&person.middle_name),
            optional(&person.family_name),
            person
                .date_of_birth
                .map(|date| date.to_string())
                .unwrap_or_default(),
            optional(&person.nino),
            optional(&person.phone),
            optional(&person.email),
            optional(&person.postcode),
            sources(&person.sources),
        ])?;
    }
    persons.flush()?;

    let mut properties = csv::Writer::from_writer(file("golden_properties.csv")?);
    properties.write_record([
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
        properties.write_record([
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
    properties.flush()?;

    let mut tenancies = csv::Writer::from_writer(file("tenancies.csv")?);
    tenancies.write_record([
        "source",
        "tenancy_id",
        "golden_property_id",
        "golden_person_ids",
        "start_date",
        "tenure",
    ])?;
    for tenancy in hub.tenancies() {
        tenancies.write_record([
            tenancy.tenancy.allocated_by.clone(),
            tenancy.tenancy.id.clone(),
            optional(&tenancy.golden_property_id),
            tenancy.golden_person_ids.join(";"),
            tenancy
                .start_date
                .map(|date| date.to_string())
                .unwrap_or_default(),
            optional(&tenancy.tenure),
        ])?;
    }
    tenancies.flush()?;

    // Why each golden record holds its records: every link inside it, explained.
    let mut links = csv::Writer::from_writer(file("links.csv")?);
    links.write_record([
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
            for link in hub.explain(entity, &golden_id).unwrap_or_default() {
                let (probability, weight, explanation) = match &link.score {
                    Some(score) => (
                        format!("{:.6}", score.probability),
                        format!("{:.3}", score.weight),
                        explain(score),
                    ),
                    None => (
                        String::new(),
                        String::new(),
                        link.key.clone().unwrap_or_default(),
                    ),
                };
                links.write_record([
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
    links.flush()?;

    // One row per pair a steward should look at, with the model's explanation: the level
    // and weight of every comparison, and the whole score as JSON.
    let mut review = csv::Writer::from_writer(file("review_queue.csv")?);
    review.write_record([
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
        let explanation = explain(&item.score);
        review.write_record([
            item.entity.as_str().to_string(),
            item.a.allocated_by.clone(),
            item.a.id.clone(),
            item.golden_a.clone(),
            item.b.allocated_by.clone(),
            item.b.id.clone(),
            item.golden_b.clone(),
            format!("{:.6}", item.score.probability),
            format!("{:.3}", item.score.weight),
            explanation,
            item.score.model_version.clone(),
            serde_json::to_string(&item.score)?,
        ])?;
    }
    review.flush()?;
    Ok(())
}

/// A score in one line: each comparison's level and weight after the prior.
fn explain(score: &mdm::model::Scored) -> String {
    let mut parts: Vec<String> = score
        .blocking_rule
        .iter()
        .map(|rule| format!("blocked on {rule}"))
        .collect();
    parts.push(format!("prior ({:+.2})", score.prior_weight));
    parts.extend(score.fields.iter().map(|field| {
        format!(
            "{}={} ({:+.2})",
            field.comparison, field.level, field.weight
        )
    }));
    parts.join("; ")
}
