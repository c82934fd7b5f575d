//! `goldthread quality-report`: the weekly data quality report (`mdm::quality::Weekly`) of
//! the configured master data sources against the recording standard (`[quality]`), as
//! `report.html` (readable on screen and printed, with the trend chart), `issues.csv` (the
//! open issues, per owner, to act on) and `report.json`. `run --out` writes the same files
//! under `quality/`, and a served run answers `GET /api/quality/report`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::NaiveDate;
use mdm::quality::{Register, Weekly};

use crate::config::Loaded;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct QualityArgs {
    /// Configuration file (default: the built-in config/default.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder the sources' paths are relative to (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The ISO week, `2026-W49` (default: the week of the latest issue seen).
    #[arg(long, value_parser = parse_week)]
    week: Option<NaiveDate>,
    /// Weeks of trend before it.
    #[arg(long, default_value_t = 8)]
    weeks: u32,
    /// html, csv or json; repeat for several (default: all three).
    #[arg(long, value_parser = ["html", "csv", "json"])]
    format: Vec<String>,
    /// Folder for report.html, issues.csv and report.json.
    #[arg(long)]
    out: PathBuf,
    /// Also send each owner's digest to its `[[quality.notify]]` webhook.
    #[arg(long)]
    notify: bool,
}

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

pub fn quality_report(args: QualityArgs) -> anyhow::Result<()> {
    let mut loaded = Loaded::load(args.config.as_deref())?;
    if let Some(data_dir) = args.data_dir {
        loaded.config.data_dir = data_dir;
    }
    loaded.validate()?;
    let input = crate::master_data::read(&loaded, true)?;
    if input.events.is_empty() {
        bail!(
            "no master data records under {}",
            loaded.config.data_dir.display()
        );
    }
    let mut hub = loaded.hub()?;
    crate::master_data::apply(&mut hub, &input.events, None, true);
    let register = register_of(&loaded, &input.events, &hub)?;
    let day = args
        .week
        .or_else(|| register.latest())
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    let weekly = register.weekly(&hub, day, args.weeks);
    let formats = if args.format.is_empty() {
        vec!["html".to_string(), "csv".into(), "json".into()]
    } else {
        args.format
    };
    write(&args.out, &weekly, &formats)?;
    println!(
        "{}: {} open issues ({} new, {} resolved this week); wrote {}",
        weekly.week,
        weekly.open_issues,
        weekly.new_this_week,
        weekly.resolved_this_week,
        args.out.display()
    );
    for owner in &weekly.owners {
        println!("  {:<28} {:>7} open", owner.owner, owner.issues.len());
    }
    if args.notify {
        if loaded.config.quality.notify.is_empty() {
            bail!("--notify: no [[quality.notify]] configured");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(notify(&loaded.config.quality.notify, &weekly))?;
    }
    Ok(())
}

/// In a served run: every `every`, the week's report and each owner's digest sent.
pub fn spawn_digests(
    master: std::sync::Arc<mdm::Master>,
    targets: Vec<mdm::quality::Notify>,
    every: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let reading = master.clone();
            let Ok(weekly) =
                tokio::task::spawn_blocking(move || reading.quality_report(None, 8)).await
            else {
                continue;
            };
            if let Err(error) = master.store_quality().await {
                tracing::warn!(error = %format!("{error:#}"), "writing the quality issues to PostgreSQL");
            }
            if let Err(error) = notify(&targets, &weekly).await {
                tracing::error!(error = %format!("{error:#}"), "sending the quality digests");
            }
        }
    })
}

/// Attempts to deliver one digest, and the wait before each retry.
const RETRIES: [std::time::Duration; 3] = [
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(2),
    std::time::Duration::from_secs(4),
];

/// Sends each configured owner's digest (`mdm::quality::Weekly::digest`) to its webhook,
/// retrying a failure or a 5xx/429 answer after 1, 2 and 4 s; every owner is tried, and the
/// failures are reported together.
pub async fn notify(targets: &[mdm::quality::Notify], weekly: &Weekly) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for target in targets {
        let url = match std::env::var(&target.url_env) {
            Ok(url) => url,
            Err(_) => {
                failures.push(format!(
                    "{}: set {} to the webhook's URL",
                    target.owner, target.url_env
                ));
                continue;
            }
        };
        let uri: hyper::Uri = match url.parse() {
            Ok(uri) => uri,
            Err(_) => {
                failures.push(format!(
                    "{}: {} does not hold a URL",
                    target.owner, target.url_env
                ));
                continue;
            }
        };
        let body = weekly.digest(&target.owner).to_string();
        let mut attempt = 0;
        loop {
            let sent =
                crate::client::send(&uri, "POST", &[], body.clone(), target.ca_file.as_deref())
                    .await;
            let retry = match &sent {
                Ok((status, _)) if status.is_success() => {
                    tracing::info!(owner = %target.owner, week = %weekly.week, "quality digest sent");
                    break;
                }
                Ok((status, _)) => {
                    status.is_server_error() || *status == hyper::StatusCode::TOO_MANY_REQUESTS
                }
                Err(_) => true,
            };
            // The URL is a secret: said by its variable's name only.
            let why = match sent {
                Ok((status, _)) => format!("answered {status}"),
                Err(error) => format!("{error:#}"),
            };
            if !retry || attempt == RETRIES.len() {
                failures.push(format!("{} ({}): {why}", target.owner, target.url_env));
                break;
            }
            tracing::warn!(owner = %target.owner, %why, retry_in = ?RETRIES[attempt], "quality digest not delivered; retrying");
            tokio::time::sleep(RETRIES[attempt]).await;
            attempt += 1;
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("quality digests not delivered: {}", failures.join("; "))
    }
}

/// The register of the standard over events read once (and applied to `hub`), the rules
/// about golden records and the day evaluated now.
fn register_of(
    loaded: &Loaded,
    events: &[pipeline::Envelope],
    hub: &mdm::Hub,
) -> anyhow::Result<Register> {
    let mut register = Register::new(loaded.standard()?);
    for event in events {
        register.apply(event);
    }
    register.reconcile(hub, chrono::Utc::now());
    Ok(register)
}

/// Merger due diligence (`goldthread link`): the incoming data measured against the
/// standard. Writes the weekly report to `out/quality/` and the risk table, a row per gap,
/// to `out/risk_register.csv` (for the merger's risk register); returns the risks.
pub fn due_diligence(
    loaded: &Loaded,
    events: &[pipeline::Envelope],
    hub: &mdm::Hub,
    out: &Path,
) -> anyhow::Result<Vec<mdm::quality::Risk>> {
    let register = register_of(loaded, events, hub)?;
    let day = register
        .latest()
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    let weekly = register.weekly(hub, day, 0);
    write(
        &out.join("quality"),
        &weekly,
        &["html", "csv", "json"].map(String::from),
    )?;
    let risks = weekly.risks();
    let mut csv = csv::Writer::from_writer(output::create(out, "risk_register.csv")?);
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
    for risk in &risks {
        let per_system: Vec<String> = risk
            .per_system
            .iter()
            .map(|(system, count)| format!("{system}={count}"))
            .collect();
        csv.write_record([
            risk.gap.as_str(),
            &risk.rule,
            &format!("{:?}", risk.dimension).to_lowercase(),
            &format!("{:?}", risk.severity).to_lowercase(),
            &risk.count.to_string(),
            &format!("{:.1}", 100.0 * risk.share),
            &per_system.join(";"),
            &risk.mitigation,
        ])?;
    }
    csv.flush()?;
    drop(csv);
    output::make_formula_safe(out, &["risk_register.csv"])?;
    Ok(risks)
}

/// Writes the report in each of `formats` (html, csv, json) to `out`.
pub fn write(out: &Path, weekly: &Weekly, formats: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    for format in formats {
        match format.as_str() {
            "json" => output::write_file(out, "report.json", &serde_json::to_vec_pretty(weekly)?)?,
            "html" => output::write_file(out, "report.html", html(weekly).as_bytes())?,
            "csv" => {
                let mut csv = csv::Writer::from_writer(output::create(out, "issues.csv")?);
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
                            &format!("{:?}", issue.severity).to_lowercase(),
                            &format!("{:?}", issue.dimension).to_lowercase(),
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
                drop(csv);
                output::make_formula_safe(out, &["issues.csv"])?;
            }
            other => bail!("--format: `{other}` is not html, csv or json"),
        }
    }
    Ok(())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The colours of the dimensions' lines in the trend chart.
const DIMENSION_COLOURS: [(mdm::quality::Dimension, &str); 5] = [
    (mdm::quality::Dimension::Completeness, "#2f6fde"),
    (mdm::quality::Dimension::Validity, "#c2410c"),
    (mdm::quality::Dimension::Consistency, "#7e22ce"),
    (mdm::quality::Dimension::Uniqueness, "#15803d"),
    (mdm::quality::Dimension::Timeliness, "#a16207"),
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
            format!("{:?}", score.dimension).to_lowercase(),
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
        let severity = format!("{:?}", score.severity).to_lowercase();
        let _ = write!(
            page,
            r#"<tr><td title="{}">{}</td><td>{}</td><td class="{severity}">{severity}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n {class}">{:.1}%</td></tr>"#,
            escape(&score.description),
            escape(&score.rule),
            format!("{:?}", score.dimension).to_lowercase(),
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
            let severity = format!("{:?}", issue.severity).to_lowercase();
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
