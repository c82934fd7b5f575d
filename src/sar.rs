//! `goldthread sar`: a subject access report. With the PostgreSQL store (`postgres.url` or
//! `--postgres`) it reports what goldthread holds: every stored source record (files,
//! Debezium, PostgreSQL sources, webhooks), with the steward verdicts in force and the
//! erasures applied; an erased subject's report says only that, and when. Without a store,
//! the configured master data sources go through the engine `run` uses. Either way everything
//! held about one person comes out as JSON: the golden record with lineage, every source
//! record behind it with its position, every match decision with its explanation, pending
//! review pairs, tenancies and vulnerabilities.

use anyhow::bail;
use mdm::subject::SubjectAccess;
use pipeline::Envelope;
use serde::Serialize;

use crate::config::{ConfigArgs, Loaded};

#[derive(Debug, clap::Args)]
pub struct SarArgs {
    /// The person: a golden id (`GP-...`, absorbed ids resolve) or a source record
    /// (`hms:T000123`).
    subject: String,
    #[command(flatten)]
    config: ConfigArgs,
    /// The store to report from (overrides `postgres.url`).
    #[arg(long, env = "GOLDTHREAD_POSTGRES_URL")]
    postgres: Option<String>,
}

/// Builds the report for `subject` from events already read.
pub fn report(
    loaded: &Loaded,
    events: &[Envelope],
    dead_letters: &[pipeline::DeadLetter],
    subject: &str,
) -> anyhow::Result<SubjectAccess> {
    let mut hub = loaded.hub()?;
    crate::master_data::apply(&mut hub, events, None, false);
    Ok(mdm::subject::report(&hub, events, dead_letters, subject)?)
}

/// What an erased subject's report says.
#[derive(Debug, Serialize)]
struct Erased {
    subject: String,
    erased_at: chrono::DateTime<chrono::Utc>,
    held: &'static str,
}

pub async fn sar(args: SarArgs) -> anyhow::Result<()> {
    let loaded = args.config.load()?;
    if let Some(url) = args.postgres.or_else(|| loaded.config.postgres.url.clone()) {
        let store = mdm::store::Store::connect(&url, &loaded.config.postgres).await?;
        if let Some(erased_at) = store.erased_at(&args.subject).await? {
            let erased = Erased {
                subject: args.subject,
                erased_at,
                held: "nothing: the person was erased",
            };
            println!("{}", serde_json::to_string_pretty(&erased)?);
            return Ok(());
        }
        // The store's state as a restarted `run` rebuilds it: erasures, records, verdicts.
        let mut master =
            mdm::Master::new(loaded.hub()?, Some(store), loaded.config.postgres.retry_for);
        let mut events = Vec::new();
        master
            .restore(|chunk| {
                events.extend_from_slice(chunk);
                Ok(())
            })
            .await?;
        let members = {
            let hub = master.hub();
            let golden_id = hub.person_subject(&args.subject)?;
            hub.golden_person(&golden_id)
                .map(|person| person.sources)
                .unwrap_or_default()
        };
        let store = master.store().expect("given above");
        let dead_letters = store.dead_letters_of(&members).await?;
        let hub = master.hub();
        let report = mdm::subject::report(&hub, &events, &dead_letters, &args.subject)?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let input = crate::master_data::read(&loaded, false)?;
    if input.events.is_empty() {
        bail!(
            "no master data records under {}",
            loaded.config.data_dir.display()
        );
    }
    let report = report(&loaded, &input.events, &input.dead_letters, &args.subject)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    use connectors::sample::{GenerateOptions, generate};

    #[test]
    fn a_subject_access_report_lists_exactly_the_persons_source_records() {
        let dir = tempfile::tempdir().unwrap();
        generate(&GenerateOptions::new(150, 1, 5), dir.path()).unwrap();
        let mut loaded = Loaded::load(None).unwrap();
        loaded.config.data_dir = dir.path().to_path_buf();
        let input = crate::master_data::read(&loaded, false).unwrap();
        // The ground truth: each real person's source records.
        let mut truth: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        let mut reader = csv::Reader::from_path(dir.path().join("truth/persons.csv")).unwrap();
        for row in reader.records() {
            let row = row.unwrap();
            truth
                .entry(row[2].to_string())
                .or_default()
                .insert((row[0].to_string(), row[1].to_string()));
        }
        // People known to more than one record, asked for by one of their source ids.
        let mut checked = 0;
        for records in truth.values().filter(|records| records.len() > 1).take(25) {
            let (system, id) = records.iter().next().unwrap();
            let report = report(
                &loaded,
                &input.events,
                &input.dead_letters,
                &format!("{system}:{id}"),
            )
            .unwrap();
            let listed: BTreeSet<(String, String)> = report
                .source_records
                .iter()
                .map(|record| (record.system.clone(), record.source_id.clone()))
                .collect();
            assert_eq!(&listed, records, "{system}:{id}");
            assert!(
                report
                    .source_records
                    .iter()
                    .all(|record| record.position.contains(".csv:"))
            );
            assert!(report.match_decisions.len() + 1 >= records.len());
            checked += 1;
        }
        assert_eq!(checked, 25);
        let missing = report(&loaded, &input.events, &[], "hms:NOPE").unwrap_err();
        assert!(missing.to_string().contains("no person source record"));
    }
}
