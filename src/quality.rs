//! `goldthread quality-report`: the weekly data quality report (`mdm::quality::Weekly`) of
//! the configured master data sources against the recording standard (`[quality]`), as
//! `report.html` (readable on screen and printed, with the trend chart), `issues.csv` (the
//! open issues, per owner, to act on) and `report.json`. `run --out` writes the same files
//! under `quality/`, and a served run answers `GET /api/quality/report`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::NaiveDate;
use mdm::quality::{Register, Weekly, report};

use crate::config::{ConfigArgs, Loaded};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct QualityArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The ISO week, `2026-W49` (default: the week of the latest issue seen).
    #[arg(long, value_parser = report::parse_week)]
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

pub fn quality_report(args: QualityArgs) -> anyhow::Result<()> {
    let loaded = args.config.load()?;
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
                tracing::warn!(error = %pipeline::error::chain(&error), "writing the quality issues to PostgreSQL");
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
    output::write_csv(out, "risk_register.csv", |file| {
        report::risks_csv(&risks, file)
    })?;
    Ok(risks)
}

/// Writes the report in each of `formats` (html, csv, json) to `out`.
pub fn write(out: &Path, weekly: &Weekly, formats: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    for format in formats {
        match format.as_str() {
            "json" => output::write_file(out, "report.json", &serde_json::to_vec_pretty(weekly)?)?,
            "html" => output::write_file(out, "report.html", report::html(weekly).as_bytes())?,
            "csv" => output::write_csv(out, "issues.csv", |file| report::issues_csv(weekly, file))?,
            other => bail!("--format: `{other}` is not html, csv or json"),
        }
    }
    Ok(())
}
