//! `goldthread link` and `goldthread train`: merger linkage without a broker. The configured
//! file sources go through the same connectors and the same hub as `run`, once, and the
//! result is written as files with a reconciliation report.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use mdm::model::Model;
use mdm::reconcile::report::{Report, html};
use mdm::reconcile::{entity_report, identifier_gaps};
use mdm::training;
use mdm::{Entity, Hub, NormalisedPersons};
use pipeline::Envelope;

use crate::config::{ConfigArgs, Loaded};
use crate::master_data::{apply, read};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Folder for xref.csv, golden_*.csv, review_queue.csv, report.html and report.json.
    #[arg(long)]
    out: PathBuf,
    /// Match people with this trained model instead of training one on the data.
    #[arg(long)]
    model: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Where to write the model (JSON); point `mdm.person_model` at it.
    #[arg(long)]
    out: PathBuf,
}

/// The person model in `path`, or one trained on the people among `events`, with those
/// people normalised for it (once, for training and matching both).
pub fn model_for(
    path: Option<&Path>,
    events: &[Envelope],
    loaded: &Loaded,
) -> anyhow::Result<(Model, NormalisedPersons)> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let model = mdm::person::load_model(&text)
                .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
            let persons = NormalisedPersons::of(events, &model.spec.fields);
            Ok((model, persons))
        }
        None => {
            let spec = loaded.config.mdm.training_spec(loaded.person_spec());
            let persons = NormalisedPersons::of(events, &spec.fields);
            let origin = loaded.config.data_dir.display().to_string();
            let model = training::train_unlabelled(spec, persons.prepared(), &origin)?;
            eprint!(
                "{}",
                training::blocking_table(&model.spec, persons.prepared())
            );
            Ok((model, persons))
        }
    }
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let loaded = args.config.load()?;
    let input = read(&loaded, true)?;
    let started = Instant::now();
    let (model, _) = model_for(None, &input.events, &loaded)?;
    std::fs::write(&args.out, model.save())
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "trained {} on {} in {:.1} s; wrote {}",
        model.version,
        model.trained_on,
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    eprint!("{}", training::describe(&model));
    print!("{}", training::parameters_table(&model));
    Ok(())
}

pub fn link(args: LinkArgs) -> anyhow::Result<()> {
    let loaded = args.config.load()?;
    let mut seconds = BTreeMap::new();
    let started = Instant::now();
    let input = read(&loaded, true)?;
    seconds.insert("read", started.elapsed().as_secs_f64());

    let started = Instant::now();
    if args.model.is_none() {
        eprintln!("training the person model on the data (no labels)...");
    }
    let (model, persons) = model_for(args.model.as_deref(), &input.events, &loaded)?;
    seconds.insert("train", started.elapsed().as_secs_f64());
    eprint!("{}", training::describe(&model));

    let started = Instant::now();
    let mut hub = Hub::with_model(loaded.config.mdm.clone(), model);
    apply(&mut hub, &input.events, Some(persons), true);
    seconds.insert("match", started.elapsed().as_secs_f64());

    let started = Instant::now();
    output::write_master_data(&args.out, &hub)?;
    let mut dead = output::create(&args.out, "dead_letters.jsonl")?;
    for dead_letter in &input.dead_letters {
        serde_json::to_writer(&mut dead, dead_letter)?;
        dead.write_all(b"\n")?;
    }
    dead.flush()?;
    let review_pairs = hub.review_queue().len();
    let risks = crate::quality::due_diligence(&loaded, &input.events, &hub, &args.out)?;
    let mut report = Report {
        model_version: hub.person_model().version.clone(),
        model_trained_on: hub.person_model().trained_on.clone(),
        thresholds: loaded.config.mdm.thresholds,
        sources: input.sources.clone(),
        entities: vec![
            entity_report(&hub, Entity::Person),
            entity_report(&hub, Entity::Property),
        ],
        identifiers: identifier_gaps(&input.events),
        review_pairs,
        oversized_blocks: hub.oversized_blocks(),
        quality: hub.quality().clone(),
        risks,
        seconds: seconds.clone(),
    };
    report
        .seconds
        .insert("report", started.elapsed().as_secs_f64());
    output::write_file(
        &args.out,
        "report.json",
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    output::write_file(&args.out, "report.html", html(&report).as_bytes())?;
    print_summary(&report, &args.out);
    Ok(())
}

/// The report on the terminal.
fn print_summary(report: &Report, out: &Path) {
    println!(
        "{:<10} {:>9} {:>9} {:>16} {:>14}",
        "entity", "records", "golden", "across sources", "review pairs"
    );
    for entity in &report.entities {
        println!(
            "{:<10} {:>9} {:>9} {:>16} {:>14}",
            entity.entity,
            entity.records,
            entity.golden,
            entity.matched_across_sources,
            if entity.entity == "person" {
                report.review_pairs.to_string()
            } else {
                "-".into()
            }
        );
    }
    for risk in report.risks.iter().take(5) {
        println!(
            "gap ({:?}): {} records, {:.1}%: {}",
            risk.severity,
            risk.count,
            100.0 * risk.share,
            risk.gap
        );
    }
    for source in report.sources.iter().filter(|s| s.unparsed.total() > 0) {
        println!(
            "{}: values kept that did not parse: {}",
            source.name,
            source.unparsed.describe()
        );
    }
    println!(
        "model {} ({}); read {:.1} s, train {:.1} s, match {:.1} s",
        report.model_version,
        report.model_trained_on,
        report.seconds.get("read").unwrap_or(&0.0),
        report.seconds.get("train").unwrap_or(&0.0),
        report.seconds.get("match").unwrap_or(&0.0)
    );
    println!(
        "wrote {}/{{xref.csv, golden_persons.csv, golden_properties.csv, tenancies.csv, review_queue.csv, dead_letters.jsonl, report.json, report.html, risk_register.csv, quality/}}",
        out.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    use connectors::sample::{GenerateOptions, generate};

    fn sample() -> (tempfile::TempDir, Loaded) {
        let dir = tempfile::tempdir().unwrap();
        generate(&GenerateOptions::new(300, 1, 11), dir.path()).unwrap();
        let mut loaded = Loaded::load(None).unwrap();
        loaded.config.data_dir = dir.path().to_path_buf();
        (dir, loaded)
    }

    /// The golden records as sets of source references.
    fn partition(hub: &Hub) -> BTreeSet<BTreeSet<String>> {
        let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for entry in hub.xref() {
            groups.entry(entry.golden_id).or_default().insert(format!(
                "{}:{}:{}",
                entry.entity, entry.source, entry.source_id
            ));
        }
        groups.into_values().collect()
    }

    #[test]
    fn golden_records_do_not_depend_on_arrival_order() {
        let (_dir, loaded) = sample();
        let input = read(&loaded, false).unwrap();
        let (model, persons) = model_for(None, &input.events, &loaded).unwrap();
        let mut forward = Hub::with_model(loaded.config.mdm.clone(), model.clone());
        apply(&mut forward, &input.events, Some(persons), false);
        // Reverse, then interleave from both ends: CRM before HMS, duplicates before originals.
        let mut reordered: Vec<Envelope> = input.events.iter().rev().cloned().collect();
        let half = reordered.len() / 2;
        let (front, back) = reordered.split_at_mut(half);
        front.swap_with_slice(&mut back[..half]);
        let mut other = Hub::with_model(loaded.config.mdm.clone(), model);
        apply(&mut other, &reordered, None, false);
        assert_eq!(partition(&forward), partition(&other));
        // Golden ids too: a cluster is named by its most trusted record, not its first.
        assert_eq!(forward.xref(), other.xref());
        assert!(forward.counts().golden_persons < forward.counts().person_records);
    }

    #[test]
    fn link_writes_the_files_and_a_report_that_adds_up() {
        let (dir, _) = sample();
        let out = dir.path().join("linked");
        link(LinkArgs {
            config: ConfigArgs {
                config: None,
                data_dir: Some(dir.path().to_path_buf()),
            },
            out: out.clone(),
            model: None,
        })
        .unwrap();
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        let persons = &report["entities"][0];
        assert_eq!(persons["entity"], "person");
        // Every golden record is either matched across sources or only in one.
        let only: u64 = persons["only_in"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(
            only + persons["matched_across_sources"].as_u64().unwrap(),
            persons["golden"].as_u64().unwrap()
        );
        assert!(persons["matched_across_sources"].as_u64().unwrap() > 0);
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(html.contains("Missing and placeholder identifiers"));
        // xref.csv has the documented columns and a row per person and property record.
        let mut xref = csv::Reader::from_path(out.join("xref.csv")).unwrap();
        assert_eq!(
            xref.headers().unwrap().iter().collect::<Vec<_>>(),
            vec!["entity", "source", "source_id", "golden_id"]
        );
        let rows: Vec<csv::StringRecord> = xref.records().map(Result::unwrap).collect();
        let mut per_entity: HashMap<String, usize> = HashMap::new();
        for row in &rows {
            *per_entity.entry(row[0].to_string()).or_default() += 1;
        }
        assert_eq!(
            per_entity["person"] as u64,
            persons["records"].as_u64().unwrap()
        );
        // Every model link in links.csv carries its explanation.
        let mut links = csv::Reader::from_path(out.join("links.csv")).unwrap();
        let mut model_links = 0;
        for row in links.records() {
            let row = row.unwrap();
            if &row[6] == "model" {
                model_links += 1;
                assert!(row[9].contains("given_name="), "{row:?}");
            }
        }
        assert!(model_links > 0);
        let review = std::fs::read_to_string(out.join("review_queue.csv")).unwrap();
        assert!(review.starts_with("entity,source_a,source_id_a,golden_id_a"));
    }
}
