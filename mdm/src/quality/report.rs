//! The weekly report as people read it: one HTML page (no scripts, nothing fetched, with
//! print CSS and the trend chart), the open issues as CSV for their owners, the merger's risk
//! register as CSV, and ISO weeks as people write them. Written to any `io::Write`: files
//! are the caller's.

use std::fmt::Write as _;
use std::io::Write;

use chrono::NaiveDate;

use super::{Dimension, Risk, Weekly};
use crate::html::escape;

/// The Monday of an ISO week written `YYYY-Www`.
pub fn parse_week(text: &str) -> Result<NaiveDate, String> {
    let (year, week) = text
        .split_once("-W")
        .ok_or_else(|| format!("`{text}`: an ISO week is written 2026-W49"))?;
    let (year, week): (i32, u32) = match (year.parse(), week.parse()) {
        (Ok(year), Ok(week)) => (year, week),
        _ => return Err(format!("`{text}`: an ISO week is written 2026-W49")),
    };
    NaiveDate::from_isoywd_opt(year, week, chrono::Weekday::Mon)
        .ok_or_else(|| format!("`{text}`: {year} has no week {week}"))
}

fn lower(value: impl std::fmt::Debug) -> String {
    format!("{value:?}").to_lowercase()
}

/// `issues.csv`: every open issue, per owner, with the record to open and what to fix.
pub fn issues_csv(weekly: &Weekly, out: impl Write) -> Result<(), csv::Error> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record([
        "owner",
        "rule",
        "severity",
        "dimension",
        "system",
        "source",
        "source_id",
        "golden_id",
        "problem",
        "fix",
        "first_seen",
        "last_seen",
    ])?;
    for owner in &weekly.owners {
        for issue in &owner.issues {
            csv.write_record([
                issue.owner.as_str(),
                &issue.rule,
                &lower(issue.severity),
                &lower(issue.dimension),
                &issue.system,
                &issue.record.allocated_by,
                &issue.record.id,
                issue.golden_id.as_deref().unwrap_or(""),
                &issue.problem,
                &issue.fix,
                &issue.first_seen.to_rfc3339(),
                &issue.last_seen.to_rfc3339(),
            ])?;
        }
    }
    csv.flush()?;
    Ok(())
}

/// `risk_register.csv`: a row per gap (`Weekly::risks`), for a merger's risk register.
pub fn risks_csv(risks: &[Risk], out: impl Write) -> Result<(), csv::Error> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record([
        "gap",
        "rule",
        "dimension",
        "severity",
        "count",
        "share_pct",
        "per_system",
        "mitigation",
    ])?;
    for risk in risks {
        let per_system: Vec<String> = risk
            .per_system
            .iter()
            .map(|(system, count)| format!("{system}={count}"))
            .collect();
        csv.write_record([
            risk.gap.as_str(),
            &risk.rule,
            &lower(risk.dimension),
            &lower(risk.severity),
            &risk.count.to_string(),
            &format!("{:.1}", 100.0 * risk.share),
            &per_system.join(";"),
            &risk.mitigation,
        ])?;
    }
    csv.flush()?;
    Ok(())
}

/// The colours of the dimensions' lines in the trend chart.
const DIMENSION_COLOURS: [(Dimension, &str); 5] = [
    (Dimension::Completeness, "#2f6fde"),
    (Dimension::Validity, "#c2410c"),
    (Dimension::Consistency, "#7e22ce"),
    (Dimension::Uniqueness, "#15803d"),
    (Dimension::Timeliness, "#a16207"),
];

/// Open issues per week as an SVG line chart: all of them, and a line per dimension.
fn trend_chart(weekly: &Weekly) -> String {
    let (width, height, pad) = (640.0, 200.0, 32.0);
    let most = weekly
        .trend
        .iter()
        .map(|point| point.open)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = (width - 2.0 * pad) / (weekly.trend.len().max(2) - 1) as f64;
    let point = |index: usize, open: usize| {
        (
            pad + step * index as f64,
            height - pad - (height - 2.0 * pad) * open as f64 / most,
        )
    };
    let line = |counts: &[usize], class: &str, colour: &str| {
        let points: Vec<String> = counts
            .iter()
            .enumerate()
            .map(|(index, &open)| {
                let (x, y) = point(index, open);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        format!(
            r#"<polyline points="{}" class="{class}" style="stroke: {colour}"/>"#,
            points.join(" ")
        )
    };
    let mut svg = format!(
        r#"<svg class="trend" viewBox="0 0 {width} {height}" role="img" aria-label="open issues per week">"#
    );
    let _ = write!(
        svg,
        r#"<line x1="{pad}" y1="{0}" x2="{1}" y2="{0}" class="axis"/>"#,
        height - pad,
        width - pad
    );
    for (dimension, colour) in DIMENSION_COLOURS {
        let counts: Vec<usize> = weekly
            .trend
            .iter()
            .map(|p| p.by_dimension.get(&dimension).copied().unwrap_or(0))
            .collect();
        if counts.iter().any(|&n| n > 0) {
            svg.push_str(&line(&counts, "dimension", colour));
        }
    }
    let totals: Vec<usize> = weekly.trend.iter().map(|p| p.open).collect();
    svg.push_str(&line(&totals, "line", "#1d2430"));
    for (index, p) in weekly.trend.iter().enumerate() {
        let (x, y) = point(index, p.open);
        let _ = write!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="3"/><text x="{x:.1}" y="{:.1}" class="value">{}</text><text x="{x:.1}" y="{:.1}" class="week">{}</text>"#,
            y - 8.0,
            p.open,
            height - pad + 16.0,
            escape(&p.week[5..])
        );
    }
    svg.push_str("</svg>");
    let legend: Vec<String> = std::iter::once(("all".to_string(), "#1d2430"))
        .chain(
            DIMENSION_COLOURS
                .iter()
                .map(|(dimension, colour)| (format!("{dimension:?}").to_lowercase(), *colour)),
        )
        .map(|(name, colour)| format!(r#"<span style="color: {colour}">&#9644; {name}</span>"#))
        .collect();
    format!("{svg}<p class=\"legend\">{}</p>", legend.join(" "))
}

/// The report as one HTML page (no scripts, nothing fetched), for screen and print.
pub fn html(weekly: &Weekly) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Data quality {week}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #1d2430; padding: 0 1em; }}
h1 {{ font-size: 1.6em; margin-bottom: .2em; }} h2 {{ margin-top: 1.6em; border-bottom: 2px solid #d8dee8; }}
.tiles {{ display: flex; gap: 1em; flex-wrap: wrap; }} .tile {{ border: 1px solid #d8dee8; border-radius: 6px; padding: .6em 1em; min-width: 9em; }}
.tile b {{ display: block; font-size: 1.8em; }}
table {{ border-collapse: collapse; width: 100%; margin: .6em 0; }} th, td {{ text-align: left; padding: .25em .5em; border-bottom: 1px solid #e5e9f0; vertical-align: top; }}
th {{ background: #f3f5f9; }} td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
.high {{ color: #a4161a; font-weight: 600; }} .medium {{ color: #9a6700; }} .low {{ color: #4a5568; }}
.bad {{ color: #a4161a; }} .good {{ color: #1a7f37; }}
svg.trend {{ width: 100%; max-width: 40em; }} svg .line {{ fill: none; stroke-width: 2.5; }} svg .dimension {{ fill: none; stroke-width: 1.5; stroke-dasharray: 4 2; }}
.legend span {{ margin-right: 1em; }}
svg .axis {{ stroke: #aab4c3; }} svg text {{ font-size: 11px; text-anchor: middle; fill: #4a5568; }}
@media print {{ body {{ margin: 0; max-width: none; font-size: 11px; }} h2 {{ break-after: avoid; }} tr {{ break-inside: avoid; }} .owner {{ break-before: page; }} }}
</style></head><body>
<h1>Data quality report, week {week}</h1>
<p>{from} to {to}. Issues name records by their source reference only: open the record in its system to fix it.</p>
<div class="tiles"><div class="tile" id="open"><b>{open}</b>open issues</div><div class="tile" id="new"><b>{new}</b>new this week</div><div class="tile" id="resolved"><b>{resolved}</b>resolved this week</div><div class="tile"><b>{owners}</b>owners with issues</div></div>
<h2>Trend</h2>{chart}
"#,
        week = escape(&weekly.week),
        from = weekly.from,
        to = weekly.to,
        open = weekly.open_issues,
        new = weekly.new_this_week,
        resolved = weekly.resolved_this_week,
        owners = weekly.owners.len(),
        chart = trend_chart(weekly),
    );
    page.push_str("<h2>Scores by dimension</h2><table id=\"dimensions\"><tr><th>dimension</th><th>system</th><th>checks</th><th>failing</th><th>score</th></tr>");
    for score in &weekly.dimensions {
        let class = if score.failing == 0 { "good" } else { "bad" };
        let _ = write!(
            page,
            r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n {class}">{:.1}%</td></tr>"#,
            lower(score.dimension),
            escape(&score.system),
            score.checked,
            score.failing,
            100.0 * score.score
        );
    }
    page.push_str("</table>");
    page.push_str("<h2>Scores by rule</h2><table id=\"scores\"><tr><th>rule</th><th>dimension</th><th>severity</th><th>system</th><th>checked</th><th>failing</th><th>score</th></tr>");
    for score in &weekly.scores {
        let class = if score.failing == 0 { "good" } else { "bad" };
        let severity = lower(score.severity);
        let _ = write!(
            page,
            r#"<tr><td title="{}">{}</td><td>{}</td><td class="{severity}">{severity}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n {class}">{:.1}%</td></tr>"#,
            escape(&score.description),
            escape(&score.rule),
            lower(score.dimension),
            escape(&score.system),
            score.checked,
            score.failing,
            100.0 * score.score
        );
    }
    page.push_str("</table>");
    page.push_str("<h2>The fields that cost most</h2><table id=\"costliest\"><tr><th>field</th><th>open issues</th></tr>");
    for (field, count) in weekly.costliest.iter().take(10) {
        let _ = write!(
            page,
            r#"<tr><td>{}</td><td class="n">{count}</td></tr>"#,
            escape(field)
        );
    }
    page.push_str("</table>");
    /// Issues listed per owner on the page (all of them are in issues.csv).
    const LISTED: usize = 200;
    for owner in &weekly.owners {
        let _ = write!(
            page,
            r#"<section class="owner"><h2>{}: {} open</h2><table><tr><th>severity</th><th>rule</th><th>record</th><th>problem</th><th>what to fix</th><th>since</th></tr>"#,
            escape(&owner.owner),
            owner.issues.len()
        );
        for issue in owner.issues.iter().take(LISTED) {
            let severity = lower(issue.severity);
            let _ = write!(
                page,
                r#"<tr><td class="{severity}">{severity}</td><td>{}</td><td>{}:{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                escape(&issue.rule),
                escape(&issue.record.allocated_by),
                escape(&issue.record.id),
                escape(&issue.problem),
                escape(&issue.fix),
                issue.first_seen.date_naive()
            );
        }
        if owner.issues.len() > LISTED {
            let _ = write!(
                page,
                "<tr><td colspan=\"6\">and {} more in issues.csv</td></tr>",
                owner.issues.len() - LISTED
            );
        }
        page.push_str("</table></section>");
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_iso_week_is_its_monday() {
        assert_eq!(
            parse_week("2026-W49"),
            "2026-11-30".parse::<NaiveDate>().map_err(|e| e.to_string())
        );
        assert!(parse_week("2026-W54").is_err());
        assert!(parse_week("2026-49").is_err());
    }
}
