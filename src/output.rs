//! `run --out DIR`: golden records, cross-reference, tenancies, dead letters, KPIs, data
//! exceptions and the summary as files for people and for the tests.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use mdm::{Entity, Hub};
use pipeline::DeadLetter;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use connectors::SourceCounts;
use serde::Serialize;
use sql::KpiTable;

#[derive(Debug, Clone, Default, Serialize)]
pub struct TopicCounts {
    pub topic: String,
    pub produced: u64,
    pub consumed: u64,
}

/// What `run --once` prints and writes to `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub sources: Vec<SourceCounts>,
    pub topics: Vec<TopicCounts>,
    /// Rows rejected by connectors, plus consumed messages a stage could not decode.
    pub dead_letters: u64,
    pub stage_dead_letters: u64,
    pub mdm: mdm::hub::Counts,
    pub quality: mdm::hub::Quality,
    /// Open issues per rule of the recording standard (`quality/` has the report).
    pub quality_issues: BTreeMap<String, usize>,
    pub vulnerabilities: VulnerabilityCounts,
    pub kpis: KpiTable,
    /// Data exceptions found at the end of the KPI period, per rule (the rows are in
    /// `exceptions.csv` with `--out`).
    pub exceptions: BTreeMap<String, usize>,
    pub broker: String,
    pub elapsed_seconds: f64,
}

/// Vulnerabilities as of the end of the KPI period: they lapse after their end date.
#[derive(Debug, Clone, Serialize)]
pub struct VulnerabilityCounts {
    pub as_of: NaiveDate,
    pub active: usize,
    pub review_overdue: usize,
    pub lapsed: usize,
    /// Homes flagged to contractors (no detail).
    pub homes_flagged: usize,
}

impl Summary {
    /// The summary as people read it.
    pub fn to_text(&self) -> String {
        let mut lines = Vec::new();
        lines.push(format!(
            "goldthread run: {:.1} s, broker {}",
            self.elapsed_seconds, self.broker
        ));
        lines.push(String::new());
        lines.push(format!(
            "{:<22} {:>10} {:>10} {:>12}",
            "source", "rows read", "events", "dead letters"
        ));
        for source in &self.sources {
            lines.push(format!(
                "{:<22} {:>10} {:>10} {:>12}",
                source.name, source.rows_read, source.events_produced, source.dead_letters
            ));
        }
        for source in self.sources.iter().filter(|s| s.unparsed.total() > 0) {
            lines.push(format!(
                "{}: values kept that did not parse: {}",
                source.name,
                source.unparsed.describe()
            ));
        }
        lines.push(String::new());
        lines.push(format!(
            "{:<40} {:>10} {:>10}",
            "topic", "produced", "consumed"
        ));
        for topic in &self.topics {
            lines.push(format!(
                "{:<40} {:>10} {:>10}",
                topic.topic, topic.produced, topic.consumed
            ));
        }
        lines.push(String::new());
        lines.push(format!(
            "dead letters: {} ({} from stages)",
            self.dead_letters, self.stage_dead_letters
        ));
        lines.push(format!(
            "golden persons: {} from {} source records; golden properties: {} from {}; tenancies: {}",
            self.mdm.golden_persons,
            self.mdm.person_records,
            self.mdm.golden_properties,
            self.mdm.property_records,
            self.mdm.tenancies
        ));
        lines.push(format!(
            "data quality: {} placeholder NINOs, {} invalid NINOs, {} default dates of birth, {} invalid postcodes, {} links vetoed (names, dates of birth or identifiers in conflict)",
            self.quality.placeholder_ninos,
            self.quality.invalid_ninos,
            self.quality.default_dates_of_birth,
            self.quality.invalid_postcodes,
            self.quality.blocked_links
        ));
        let failing: Vec<String> = self
            .quality_issues
            .iter()
            .filter(|(_, open)| **open > 0)
            .map(|(rule, open)| format!("{rule} {open}"))
            .collect();
        lines.push(format!(
            "recording standard: {} open issues ({})",
            self.quality_issues.values().sum::<usize>(),
            if failing.is_empty() {
                "none".to_string()
            } else {
                failing.join(", ")
            }
        ));
        lines.push(String::new());
        lines.push(format!(
            "vulnerabilities as of {}: {} active ({} reviews overdue), {} lapsed; {} homes flagged to contractors",
            self.vulnerabilities.as_of,
            self.vulnerabilities.active,
            self.vulnerabilities.review_overdue,
            self.vulnerabilities.lapsed,
            self.vulnerabilities.homes_flagged
        ));
        lines.push(String::new());
        lines.push(self.kpis.to_text(false));
        lines.push(format!(
            "data exceptions as of {}: {}",
            self.kpis.to,
            if self.exceptions.is_empty() {
                "none".to_string()
            } else {
                self.exceptions
                    .iter()
                    .map(|(rule, count)| format!("{count} {rule}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
        lines.join("\n")
    }
}

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
    write_file(out, "kpis.csv", summary.kpis.to_csv().as_bytes())?;
    let mut writer = csv::Writer::from_writer(file("exceptions.csv")?);
    for exception in exceptions {
        writer.serialize(exception)?;
    }
    writer.flush()?;

    // A dead letter about an erased person keeps where and which field: its row and its
    // reason (which quotes a value) are personal data.
    let mut writer = file("dead_letters.jsonl")?;
    for dead_letter in dead_letters {
        let erased = dead_letter
            .source_ref
            .as_ref()
            .is_some_and(|reference| hub.is_erased(reference));
        if erased {
            let redacted = DeadLetter {
                raw: "[erased]".into(),
                reason: "[erased]".into(),
                ..dead_letter.clone()
            };
            serde_json::to_writer(&mut writer, &redacted)?;
        } else {
            serde_json::to_writer(&mut writer, dead_letter)?;
        }
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
    drop(vulnerabilities);
    let mut alerts = csv::Writer::from_writer(file("contractor_alerts.csv")?);
    for alert in hub.contractor_alerts(today) {
        alerts.serialize(alert)?;
    }
    alerts.flush()?;
    drop(alerts);
    make_formula_safe(
        out,
        &[
            "exceptions.csv",
            "vulnerabilities.csv",
            "contractor_alerts.csv",
        ],
    )?;
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

/// Creates (or empties) `out/name`, readable by its owner only: the files hold personal
/// data.
pub fn create(out: &Path, name: &str) -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = out.join(name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| path.display().to_string())?;
    // A file left by an earlier version keeps its mode when reopened.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| path.display().to_string())?;
    Ok(std::io::BufWriter::new(file))
}

/// Writes `text` to `out/name` as [`create`] does.
pub fn write_file(out: &Path, name: &str, text: &[u8]) -> anyhow::Result<()> {
    let mut file = create(out, name)?;
    file.write_all(text)?;
    file.flush()?;
    Ok(())
}

/// A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
/// as a formula: such a cell (unless it is a number) is written with a leading `'`, which
/// spreadsheets show as text. Source data is not trusted to be free of them.
fn formula_safe(cell: &[u8]) -> Option<Vec<u8>> {
    let risky = matches!(
        cell.first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    let number = std::str::from_utf8(cell).is_ok_and(|text| text.parse::<f64>().is_ok());
    (risky && !number).then(|| [&b"'"[..], cell].concat())
}

/// Rewrites the CSV files `names` in `out` with formula-safe cells ([`formula_safe`]); a
/// file that needs no change is left as it is.
pub fn make_formula_safe(out: &Path, names: &[&str]) -> anyhow::Result<()> {
    for name in names {
        let path = out.join(name);
        let read = || {
            csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_path(&path)
                .with_context(|| path.display().to_string())
        };
        let needs = read()?.byte_records().any(|record| {
            record.is_ok_and(|record| record.iter().any(|cell| formula_safe(cell).is_some()))
        });
        if !needs {
            continue;
        }
        let records: Vec<csv::ByteRecord> = read()?.byte_records().collect::<Result<_, _>>()?;
        let mut writer = csv::Writer::from_writer(create(out, name)?);
        for record in &records {
            let cells: Vec<std::borrow::Cow<'_, [u8]>> = record
                .iter()
                .map(|cell| formula_safe(cell).map_or(cell.into(), Into::into))
                .collect();
            writer.write_record(cells.iter().map(|cell| cell.as_ref()))?;
        }
        writer.flush()?;
    }
    Ok(())
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
            let mut explained = hub.explain(entity, &golden_id).unwrap_or_default();
            explained.extend(hub.vetoed(entity, &golden_id));
            for link in explained {
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
    drop(review);
    make_formula_safe(
        out,
        &[
            "xref.csv",
            "golden_persons.csv",
            "golden_properties.csv",
            "tenancies.csv",
            "links.csv",
            "review_queue.csv",
        ],
    )
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
    if let Some(requirement) = &score.vetoed_by {
        parts.push(format!("vetoed: {requirement}"));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_and_cells_cannot_become_formulas() {
        use std::os::unix::fs::PermissionsExt;
        let out = tempfile::tempdir().unwrap();
        write_file(
            out.path(),
            "people.csv",
            b"id,name,balance\nT1,\"=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",-12.5\nT2,@SUM(A1),+3\nT3,Ann,-\n",
        )
        .unwrap();
        make_formula_safe(out.path(), &["people.csv"]).unwrap();
        let path = out.path().join("people.csv");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(&path)
            .unwrap()
            .records()
            .map(|record| record.unwrap().iter().map(str::to_string).collect())
            .collect();
        assert_eq!(rows[1][1], "'=HYPERLINK(\"http://x\",\"y\")");
        assert_eq!(rows[1][2], "-12.5", "numbers stay numbers");
        assert_eq!(rows[2][1..], ["'@SUM(A1)", "+3"]);
        assert_eq!(rows[3][1..], ["Ann", "'-"]);
    }
}
