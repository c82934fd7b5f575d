//! `goldthread link`'s report as people read it: [`Report`] (`report.json`) and [`html`]
//! (`report.html`, one self-contained page).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{EntityReport, IdentifierGaps};
use crate::html::escape;

/// Rows read from one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRead {
    pub name: String,
    pub system: String,
    pub rows: u64,
    pub events: u64,
    pub dead_letters: u64,
    /// Values of optional fields that did not parse: the records flowed, these are findings.
    pub unparsed: pipeline::UnparsedTally,
}

/// `report.json`: what `report.html` shows.
#[derive(Debug, Serialize)]
pub struct Report {
    pub model_version: String,
    pub model_trained_on: String,
    pub thresholds: crate::matcher::Thresholds,
    pub sources: Vec<SourceRead>,
    pub entities: Vec<EntityReport>,
    pub identifiers: Vec<IdentifierGaps>,
    pub review_pairs: usize,
    /// Per person blocking rule: records whose block was too large to compare against
    /// (`crate::matcher::MAX_CANDIDATES_PER_BLOCK`); non-zero means a value needs cleaning.
    pub oversized_blocks: Vec<(String, u64)>,
    pub quality: crate::hub::Quality,
    /// Merger due diligence: the gaps against the recording standard (`risk_register.csv`).
    pub risks: Vec<crate::quality::Risk>,
    pub seconds: BTreeMap<&'static str, f64>,
}

/// A table of rows of cells, escaped.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut html = String::from("<table><tr>");
    for header in headers {
        html.push_str(&format!("<th>{}</th>", escape(header)));
    }
    html.push_str("</tr>");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            html.push_str(&format!("<td>{}</td>", escape(&cell)));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

fn per_system(map: &BTreeMap<String, usize>) -> String {
    let systems: BTreeSet<_> = map.keys().collect();
    systems
        .into_iter()
        .map(|system| format!("{system} {}", map[system]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `report.html`: the reconciliation report as one self-contained page.
pub fn html(report: &Report) -> String {
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>goldthread reconciliation report</title>\
         <style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f0e6}</style></head><body>\
         <h1>Reconciliation report</h1>",
    );
    page.push_str(&format!(
        "<p>Person model <code>{}</code> ({}); link at probability {} and above, steward review from {}.</p>",
        escape(&report.model_version),
        escape(&report.model_trained_on),
        report.thresholds.link,
        report.thresholds.review
    ));
    page.push_str("<h2>Records per source</h2>");
    page.push_str(&table(
        &["source", "system", "rows", "events", "dead letters"],
        report
            .sources
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.system.clone(),
                    s.rows.to_string(),
                    s.events.to_string(),
                    s.dead_letters.to_string(),
                ]
            })
            .collect(),
    ));
    let rows: Vec<Vec<String>> = report
        .sources
        .iter()
        .flat_map(|source| {
            source.unparsed.0.iter().map(|(field, count)| {
                vec![
                    source.name.clone(),
                    field.clone(),
                    count.count.to_string(),
                    count.examples.join(", "),
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        page.push_str("<h2>Values that did not parse</h2><p>The records were kept and matched; fix these values at source.</p>");
        page.push_str(&table(&["source", "field", "values", "examples"], rows));
    }
    page.push_str("<h2>Matching</h2>");
    page.push_str(&table(
        &[
            "entity",
            "records",
            "golden records",
            "matched across sources",
            "records matched to another source",
            "new (only in one source)",
            "within-source duplicates",
        ],
        report
            .entities
            .iter()
            .map(|e| {
                vec![
                    e.entity.to_string(),
                    e.records.to_string(),
                    e.golden.to_string(),
                    e.matched_across_sources.to_string(),
                    per_system(&e.records_matched_elsewhere),
                    per_system(&e.only_in),
                    per_system(&e.within_source_duplicates),
                ]
            })
            .collect(),
    ));
    page.push_str(&format!(
        "<p>{} person pairs await steward review (<code>review_queue.csv</code>).</p>",
        report.review_pairs
    ));
    for (rule, count) in report
        .oversized_blocks
        .iter()
        .filter(|(_, count)| *count > 0)
    {
        page.push_str(&format!(
            "<p><strong>{count} records</strong> found the blocking rule <code>{}</code>'s block too large to compare against: a shared value (a default phone or email) needs cleaning.</p>",
            escape(rule)
        ));
    }
    page.push_str("<h2>Attribute conflicts</h2>");
    let mut rows = Vec::new();
    for entity in &report.entities {
        for (attribute, count) in &entity.conflicts {
            rows.push(vec![
                entity.entity.to_string(),
                attribute.to_string(),
                count.to_string(),
            ]);
        }
    }
    page.push_str(&table(&["entity", "attribute", "golden records"], rows));
    let mut examples = Vec::new();
    for entity in &report.entities {
        for conflict in &entity.conflict_examples {
            examples.push(vec![
                conflict.golden_id.clone(),
                conflict.attribute.to_string(),
                conflict
                    .values
                    .iter()
                    .map(|(r, v)| format!("{}:{} = {v}", r.allocated_by, r.id))
                    .collect::<Vec<_>>()
                    .join("; "),
            ]);
        }
    }
    page.push_str(&table(&["golden id", "attribute", "values"], examples));
    page.push_str("<h2>Knowledge gaps against the recording standard</h2>");
    page.push_str(&table(
        &[
            "gap",
            "severity",
            "records",
            "share",
            "per system",
            "mitigation",
        ],
        report
            .risks
            .iter()
            .map(|risk| {
                vec![
                    risk.gap.clone(),
                    format!("{:?}", risk.severity).to_lowercase(),
                    risk.count.to_string(),
                    format!("{:.1}%", 100.0 * risk.share),
                    risk.per_system
                        .iter()
                        .map(|(system, count)| format!("{system} {count}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    risk.mitigation.clone(),
                ]
            })
            .collect(),
    ));
    page.push_str("<p>The rows are in <code>risk_register.csv</code>; the records behind them in <code>quality/issues.csv</code>.</p>");
    page.push_str("<h2>Missing and placeholder identifiers</h2>");
    page.push_str(&table(
        &[
            "source",
            "entity",
            "records",
            "missing NINO",
            "placeholder NINO",
            "invalid NINO",
            "missing DOB",
            "default DOB",
            "missing UPRN",
        ],
        report
            .identifiers
            .iter()
            .map(|g| {
                vec![
                    g.source.clone(),
                    g.entity.to_string(),
                    g.records.to_string(),
                    g.missing_nino.to_string(),
                    g.placeholder_nino.to_string(),
                    g.invalid_nino.to_string(),
                    g.missing_date_of_birth.to_string(),
                    g.default_date_of_birth.to_string(),
                    g.missing_uprn.to_string(),
                ]
            })
            .collect(),
    ));
    page.push_str("</body></html>\n");
    page
}
