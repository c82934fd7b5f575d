//! `goldthread eval`: run the master data sources through the engine `run` and `link` use
//! (model trained on the data, the streaming hub), and score people and properties against a
//! labelled file: pairwise precision, recall and F1, cluster measures, the review queue, and
//! how many true pairs the person blocking rules keep. A benchmark command: it prints tables.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use mdm::{Entity, Hub, eval};
use pipeline::{Envelope, Payload, Reference};

use crate::config::ConfigArgs;
use crate::link;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Person labels: a CSV with `source`, `source_id` and `person_id` (default: the
    /// generator's `<data_dir>/truth/persons.csv`).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Property labels: `source`, `source_id`, `property_id` (default:
    /// `<data_dir>/truth/properties.csv`; skipped when absent).
    #[arg(long)]
    property_labels: Option<PathBuf>,
    /// Match people with this model instead of training one on the data.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Link threshold (overrides `mdm.thresholds.link`).
    #[arg(long)]
    threshold: Option<f64>,
    /// Review threshold (overrides `mdm.thresholds.review`).
    #[arg(long)]
    review_threshold: Option<f64>,
    /// Print the m and u table.
    #[arg(long)]
    parameters: bool,
}

fn read_labels(path: &Path, column: &str) -> anyhow::Result<HashMap<Reference, String>> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    eval::read_labels(std::io::BufReader::new(file), column)
        .map_err(|problem| anyhow::anyhow!("{}: {problem}", path.display()))
}

/// The hub's clusters of one entity, and each record's label (`labels` read from `path`).
fn clusters_of(
    hub: &Hub,
    entity: Entity,
    labels: &HashMap<Reference, String>,
    path: &Path,
) -> anyhow::Result<(Vec<Vec<usize>>, Vec<String>)> {
    eval::clusters_of(hub, entity, labels).map_err(|reference| {
        anyhow::anyhow!(
            "{}: no label for {}:{}",
            path.display(),
            reference.allocated_by,
            reference.id
        )
    })
}

/// Candidate pairs per person blocking rule, the share of true pairs each rule and the union
/// keep and what each rule adds over all the others; then the calibration of the model's
/// probabilities over the candidate pairs (`mdm::eval::pairs_report`). `prepared`: the
/// persons among `events`, in order, prepared for the model (as normalised for matching).
fn print_pairs_tables(
    model: &mdm::model::Model,
    prepared: &[mdm::model::Prepared],
    events: &[Envelope],
    labels: &HashMap<Reference, String>,
) {
    let record_labels: Vec<String> = events
        .iter()
        .filter(|event| matches!(event.payload, Payload::Person(_)))
        .map(|event| labels.get(&event.source_ref).cloned().unwrap_or_default())
        .collect();
    println!(
        "\n{}",
        eval::pairs_report(model, prepared, &record_labels).to_text()
    );
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let mut loaded = args.config.load()?;
    if let Some(link) = args.threshold {
        loaded.config.mdm.thresholds.link = link;
    }
    if let Some(review) = args.review_threshold {
        loaded.config.mdm.thresholds.review = review;
    }
    loaded.validate()?;
    let data_dir = loaded.config.data_dir.clone();
    let input = crate::master_data::read(&loaded, false)?;
    if input.events.is_empty() {
        bail!("no master data records under {}", data_dir.display());
    }
    let started = Instant::now();
    let (model, persons) = link::model_for(args.model.as_deref(), &input.events, &loaded)?;
    let train_seconds = started.elapsed().as_secs_f64();
    eprint!("{}", mdm::training::describe(&model));
    let started = Instant::now();
    // The pairs tables below read the same prepared records the hub takes.
    let prepared = persons.prepared().to_vec();
    let mut hub = Hub::with_model(loaded.config.mdm.clone(), model);
    crate::master_data::apply(&mut hub, &input.events, Some(persons), false);
    let match_seconds = started.elapsed().as_secs_f64();

    let person_path = args
        .labels
        .unwrap_or_else(|| data_dir.join("truth/persons.csv"));
    let person_labels = read_labels(&person_path, "person_id")?;
    let (clusters, labels) = clusters_of(&hub, Entity::Person, &person_labels, &person_path)?;
    let persons = eval::score(&clusters, &labels);
    let in_review: HashSet<Reference> = hub
        .review_queue()
        .into_iter()
        .flat_map(|item| [item.a, item.b])
        .collect();
    let review_pairs = hub.review_queue().len();

    println!("{}", eval::Scores::header());
    let review = in_review.len() as f64 / persons.records.max(1) as f64;
    println!("{}", persons.row("person", Some(review)));
    let property_path = args
        .property_labels
        .unwrap_or_else(|| data_dir.join("truth/properties.csv"));
    if property_path.exists() {
        let property_labels = read_labels(&property_path, "property_id")?;
        let (clusters, labels) =
            clusters_of(&hub, Entity::Property, &property_labels, &property_path)?;
        println!("{}", eval::score(&clusters, &labels).row("property", None));
    }
    let thresholds = loaded.config.mdm.thresholds;
    println!(
        "impure: golden records holding two real entities (households, twins merged); split: real entities in two or more golden records; exact: golden records equal to one real entity"
    );
    println!(
        "review queue: {review_pairs} person pairs between probability {} and {}; person model {} (train {train_seconds:.2} s, match {match_seconds:.2} s)",
        thresholds.review,
        thresholds.link,
        hub.person_model().version
    );
    print_pairs_tables(hub.person_model(), &prepared, &input.events, &person_labels);
    for (rule, count) in hub.oversized_blocks() {
        if count > 0 {
            println!("{rule}: {count} records found their block too large to compare against");
        }
    }
    if args.parameters {
        print!("{}", mdm::training::parameters_table(hub.person_model()));
    }
    Ok(())
}
