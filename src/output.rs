//! `run --out DIR`: golden records, cross-reference, tenancies, dead letters, KPIs, data
//! exceptions and the summary as files for people and for the tests.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use mdm::Hub;
use pipeline::DeadLetter;

use std::collections::BTreeMap;

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
    /// As of the end of the KPI period.
    pub vulnerabilities: mdm::hub::VulnerabilityCounts,
    pub kpis: KpiTable,
    /// Data exceptions found at the end of the KPI period, per rule (the rows are in
    /// `exceptions.csv` with `--out`).
    pub exceptions: BTreeMap<String, usize>,
    pub broker: String,
    pub elapsed_seconds: f64,
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
    write_kpis(out, &summary.kpis)?;
    write_csv(out, "exceptions.csv", |file| {
        let mut csv = csv::Writer::from_writer(file);
        for exception in exceptions {
            csv.serialize(exception)?;
        }
        csv.flush()?;
        Ok(())
    })?;

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
    let day = summary.kpis.to;
    write_csv(out, "vulnerabilities.csv", |file| {
        mdm::export::vulnerabilities(hub, day, file)
    })?;
    write_csv(out, "contractor_alerts.csv", |file| {
        mdm::export::contractor_alerts(hub, day, file)
    })?;
    write_master_data(out, hub)
}

/// `kpis.csv`: a breakdown's key comes from source data (a contractor's name), so it goes
/// through [`write_csv`] like every other table.
fn write_kpis(out: &Path, kpis: &KpiTable) -> anyhow::Result<()> {
    write_csv(out, "kpis.csv", |mut file| {
        file.write_all(kpis.to_csv().as_bytes())?;
        file.flush()?;
        Ok(())
    })
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

/// Writes the CSV file `out/name` with `write` (private, as [`create`]) and makes its cells
/// formula-safe ([`make_formula_safe`]): every CSV goldthread writes goes through here.
pub fn write_csv(
    out: &Path,
    name: &str,
    write: impl FnOnce(std::io::BufWriter<std::fs::File>) -> Result<(), csv::Error>,
) -> anyhow::Result<()> {
    write(create(out, name)?).with_context(|| out.join(name).display().to_string())?;
    make_formula_safe(out, &[name])
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
fn make_formula_safe(out: &Path, names: &[&str]) -> anyhow::Result<()> {
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

/// The master data tables `run --out` and `link` share (`mdm::export::Table`).
pub fn write_master_data(out: &Path, hub: &Hub) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    for table in mdm::export::Table::ALL {
        write_csv(out, table.file_name(), |file| table.write(hub, file))?;
    }
    Ok(())
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

    #[test]
    fn a_kpi_breakdown_key_cannot_become_a_formula() {
        use chrono::NaiveDate;
        let out = tempfile::tempdir().unwrap();
        let row = |key: &str| sql::KpiRow {
            kpi: "appointments_kept".into(),
            key: Some(key.into()),
            value: Some(0.5),
            numerator: Some(1.0),
            denominator: Some(2.0),
            definition: "appointments_kept.sql".into(),
        };
        let day = NaiveDate::from_ymd_opt(2025, 3, 31).unwrap();
        let kpis = KpiTable {
            from: day,
            to: day,
            as_of: day.and_hms_opt(23, 59, 59).unwrap(),
            rows: vec![row("=HYPERLINK(\"http://x\")"), row("Smith, Jones\rLtd")],
        };
        write_kpis(out.path(), &kpis).unwrap();
        let rows: Vec<Vec<String>> = csv::Reader::from_path(out.path().join("kpis.csv"))
            .unwrap()
            .records()
            .map(|record| record.unwrap().iter().map(str::to_string).collect())
            .collect();
        assert_eq!(rows[0][1], "'=HYPERLINK(\"http://x\")");
        assert_eq!(
            rows[1][1], "Smith, Jones\rLtd",
            "a carriage return is quoted"
        );
        assert_eq!(rows[1][2..5], ["0.5", "1", "2"]);
    }
}
