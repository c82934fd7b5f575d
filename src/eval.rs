//! `goldthread eval`: run the master data sources through the engine `run` and `link` use
//! (model trained on the data, the streaming hub), and score people and properties against a
//! labelled file: pairwise precision, recall and F1, cluster measures, the review queue, and
//! how many true pairs the person blocking rules keep. A benchmark command: it prints tables.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use mdm::model::{self, Pairing};
use mdm::{Entity, Hub};
use pipeline::{Envelope, Payload, Reference};

use crate::config::Loaded;
use crate::link;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Configuration file (default: the built-in config/default.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder the sources' paths are relative to (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
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

/// Pairwise and cluster measures of one entity's clustering.
#[derive(Debug)]
struct Scores {
    records: usize,
    real: usize,
    golden: usize,
    precision: f64,
    recall: f64,
    f1: f64,
    /// Golden records holding more than one real entity.
    impure: usize,
    /// Real entities spread over more than one golden record.
    split: usize,
    /// Golden records equal to a real entity's whole record set.
    exact: usize,
}

fn pairs(n: usize) -> u64 {
    (n as u64) * (n as u64).saturating_sub(1) / 2
}

/// Measures of clusters (lists of label indices) against labels, without listing pairs.
fn score(clusters: &[Vec<usize>], labels: &[String]) -> Scores {
    let mut by_label: HashMap<&str, usize> = HashMap::new();
    for label in labels {
        *by_label.entry(label.as_str()).or_default() += 1;
    }
    let (mut predicted, mut true_positive) = (0, 0);
    let (mut impure, mut exact) = (0, 0);
    let mut golden_per_label: HashMap<&str, usize> = HashMap::new();
    for members in clusters {
        predicted += pairs(members.len());
        let mut in_cluster: HashMap<&str, usize> = HashMap::new();
        for &member in members {
            *in_cluster.entry(labels[member].as_str()).or_default() += 1;
        }
        if in_cluster.len() > 1 {
            impure += 1;
        } else if let Some((label, &count)) = in_cluster.iter().next()
            && by_label[label] == count
        {
            exact += 1;
        }
        for label in in_cluster.keys() {
            *golden_per_label.entry(label).or_default() += 1;
        }
        true_positive += in_cluster.values().map(|&n| pairs(n)).sum::<u64>();
    }
    let truth: u64 = by_label.values().map(|&n| pairs(n)).sum();
    let ratio = |num: u64, den: u64| {
        if den == 0 {
            1.0
        } else {
            num as f64 / den as f64
        }
    };
    let (precision, recall) = (ratio(true_positive, predicted), ratio(true_positive, truth));
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Scores {
        records: labels.len(),
        real: by_label.len(),
        golden: clusters.len(),
        precision,
        recall,
        f1,
        impure,
        split: golden_per_label.values().filter(|&&n| n > 1).count(),
        exact,
    }
}

fn read_labels(path: &Path, column: &str) -> anyhow::Result<HashMap<Reference, String>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| path.display().to_string())?;
    let headers = reader.headers()?.clone();
    let position = |name: &str| {
        headers
            .iter()
            .position(|header| header == name)
            .with_context(|| format!("{}: no column `{name}`", path.display()))
    };
    let (source, id, label) = (
        position("source")?,
        position("source_id")?,
        position(column)?,
    );
    let mut labels = HashMap::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}:{}", path.display(), line + 2))?;
        labels.insert(
            Reference {
                id: row[id].to_string(),
                allocated_by: row[source].to_string(),
            },
            row[label].to_string(),
        );
    }
    Ok(labels)
}

/// The hub's clusters of one entity as label lists, and each record's label.
fn clusters_of(
    hub: &Hub,
    entity: Entity,
    labels: &HashMap<Reference, String>,
    path: &Path,
) -> anyhow::Result<(Vec<Vec<usize>>, Vec<String>)> {
    let golden: Vec<Vec<Reference>> = match entity {
        Entity::Person => hub
            .golden_persons()
            .into_iter()
            .map(|g| g.sources)
            .collect(),
        Entity::Property => hub
            .golden_properties()
            .into_iter()
            .map(|g| g.sources)
            .collect(),
    };
    let mut record_labels = Vec::new();
    let mut clusters = Vec::new();
    for sources in golden {
        let mut members = Vec::new();
        for reference in sources {
            let label = labels.get(&reference).with_context(|| {
                format!(
                    "{}: no label for {}:{}",
                    path.display(),
                    reference.allocated_by,
                    reference.id
                )
            })?;
            members.push(record_labels.len());
            record_labels.push(label.clone());
        }
        clusters.push(members);
    }
    Ok((clusters, record_labels))
}

fn print_scores(entity: &str, scores: &Scores, review: Option<f64>) {
    println!(
        "{:<9} {:>8} {:>7} {:>7} {:>10} {:>8} {:>8} {:>7} {:>7} {:>7} {:>10}",
        entity,
        scores.records,
        scores.real,
        scores.golden,
        format!("{:.4}", scores.precision),
        format!("{:.4}", scores.recall),
        format!("{:.4}", scores.f1),
        scores.impure,
        scores.split,
        format!(
            "{:.1}%",
            100.0 * scores.exact as f64 / scores.golden.max(1) as f64
        ),
        review.map_or("-".into(), |share| format!("{:.2}%", 100.0 * share)),
    );
}

/// Pairs a calibration band needs to be judged.
const MIN_BAND_PAIRS: usize = 10;

/// Calibration bands of the link probability: (low, high).
const BANDS: &[(f64, f64)] = &[
    (0.0, 0.01),
    (0.01, 0.1),
    (0.1, 0.5),
    (0.5, 0.9),
    (0.9, 0.99),
    (0.99, 1.0),
];

/// Candidate pairs per person blocking rule, the share of true pairs each rule and the union
/// keep and what each rule adds over all the others; then the calibration of the model's
/// probabilities over the candidate pairs (requirements' vetoes count as 0).
/// `prepared`: the persons among `events`, in order, prepared for the model (as normalised for
/// matching).
fn pairs_tables(
    model: &model::Model,
    prepared: &[model::Prepared],
    events: &[Envelope],
    labels: &HashMap<Reference, String>,
) {
    let spec = &model.spec;
    let record_labels: Vec<String> = events
        .iter()
        .filter(|event| matches!(event.payload, Payload::Person(_)))
        .map(|event| labels.get(&event.source_ref).cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        prepared.len(),
        record_labels.len(),
        "one prepared record per person"
    );
    let mut by_label: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, label) in record_labels.iter().enumerate() {
        by_label.entry(label.as_str()).or_default().push(index);
    }
    let truth: HashSet<(usize, usize)> = by_label
        .values()
        .flat_map(|members| {
            members
                .iter()
                .enumerate()
                .flat_map(move |(i, &a)| members[i + 1..].iter().map(move |&b| (a, b)))
        })
        .collect();
    let share = |count: usize| 100.0 * count as f64 / truth.len().max(1) as f64;
    println!(
        "\n{:<32} {:>12} {:>16} {:>22}",
        "person blocking rule", "pairs", "true pairs kept", "true pairs only it keeps"
    );
    let per_rule = model::rule_pairs(spec, prepared, Pairing::Dedupe);
    for rule in &per_rule {
        let kept = rule
            .pairs
            .iter()
            .filter(|pair| truth.contains(pair))
            .count();
        let only = rule.only.iter().filter(|pair| truth.contains(pair)).count();
        println!(
            "{:<32} {:>12} {:>15.2}% {:>21.2}%",
            rule.name,
            rule.pairs.len(),
            share(kept),
            share(only)
        );
    }
    let union = model::union_of(&per_rule);
    let kept = union.iter().filter(|pair| truth.contains(pair)).count();
    println!("{:<32} {:>12} {:>15.2}%", "union", union.len(), share(kept));
    // Calibration: in each band of predicted probability, the share that are true pairs.
    let mut bands = vec![(0usize, 0usize, 0.0f64); BANDS.len()];
    for &(a, b) in &union {
        let (weight, vetoed) = model.weigh(&prepared[a], &prepared[b]);
        let probability = if vetoed {
            0.0
        } else {
            model::probability(weight)
        };
        let band = BANDS
            .iter()
            .position(|&(_, high)| probability < high)
            .unwrap_or(BANDS.len() - 1);
        bands[band].0 += 1;
        bands[band].1 += usize::from(truth.contains(&(a, b)));
        bands[band].2 += probability;
    }
    println!(
        "\n{:<16} {:>10} {:>14} {:>16} {:>14}",
        "probability", "pairs", "mean predicted", "observed true", "within 5 pts"
    );
    let row =
        |label: String, pairs: usize, true_pairs: usize, sum: f64, band: Option<(f64, f64)>| {
            if pairs == 0 {
                println!("{label:<16} {:>10}", 0);
                return;
            }
            let observed = true_pairs as f64 / pairs as f64;
            let verdict = match band {
                None => "-",
                Some(_) if pairs < MIN_BAND_PAIRS => "too few",
                Some((low, high)) if observed >= low - 0.05 && observed <= high + 0.05 => "yes",
                Some(_) => "NO",
            };
            println!(
                "{label:<16} {pairs:>10} {:>13.2}% {:>15.2}% {verdict:>14}",
                100.0 * sum / pairs as f64,
                100.0 * observed,
            );
        };
    for (&(low, high), &(pairs, true_pairs, sum)) in BANDS.iter().zip(&bands) {
        row(
            format!("{low}-{high}"),
            pairs,
            true_pairs,
            sum,
            Some((low, high)),
        );
    }
    // The uncertain pairs together, however few each band holds.
    let middle = &bands[1..bands.len() - 1];
    row(
        "0.01-0.99 (all)".into(),
        middle.iter().map(|b| b.0).sum(),
        middle.iter().map(|b| b.1).sum(),
        middle.iter().map(|b| b.2).sum(),
        None,
    );
    println!(
        "a band is judged from {MIN_BAND_PAIRS} pairs: with fewer, one pair moves its observed share by more than 10 points"
    );
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let mut loaded = Loaded::load(args.config.as_deref())?;
    if let Some(data_dir) = args.data_dir {
        loaded.config.data_dir = data_dir;
    }
    if let Some(link) = args.threshold {
        loaded.config.mdm.thresholds.link = link;
    }
    if let Some(review) = args.review_threshold {
        loaded.config.mdm.thresholds.review = review;
    }
    loaded.validate()?;
    let data_dir = loaded.config.data_dir.clone();
    let input = link::read(&loaded, false)?;
    if input.events.is_empty() {
        bail!("no master data records under {}", data_dir.display());
    }
    let started = Instant::now();
    let (model, persons) = link::model_for(args.model.as_deref(), &input.events, &loaded)?;
    let train_seconds = started.elapsed().as_secs_f64();
    link::print_model_use(&model);
    let started = Instant::now();
    // The pairs tables below read the same prepared records the hub takes.
    let prepared = persons.prepared().to_vec();
    let mut hub = Hub::with_model(loaded.config.mdm.clone(), model);
    link::apply(&mut hub, &input.events, Some(persons), false);
    let match_seconds = started.elapsed().as_secs_f64();

    let person_path = args
        .labels
        .unwrap_or_else(|| data_dir.join("truth/persons.csv"));
    let person_labels = read_labels(&person_path, "person_id")?;
    let (clusters, labels) = clusters_of(&hub, Entity::Person, &person_labels, &person_path)?;
    let persons = score(&clusters, &labels);
    let in_review: HashSet<Reference> = hub
        .review_queue()
        .into_iter()
        .flat_map(|item| [item.a, item.b])
        .collect();
    let review_pairs = hub.review_queue().len();

    println!(
        "{:<9} {:>8} {:>7} {:>7} {:>10} {:>8} {:>8} {:>7} {:>7} {:>7} {:>10}",
        "entity",
        "records",
        "real",
        "golden",
        "precision",
        "recall",
        "F1",
        "impure",
        "split",
        "exact",
        "in review"
    );
    print_scores(
        "person",
        &persons,
        Some(in_review.len() as f64 / persons.records.max(1) as f64),
    );
    let property_path = args
        .property_labels
        .unwrap_or_else(|| data_dir.join("truth/properties.csv"));
    if property_path.exists() {
        let property_labels = read_labels(&property_path, "property_id")?;
        let (clusters, labels) =
            clusters_of(&hub, Entity::Property, &property_labels, &property_path)?;
        print_scores("property", &score(&clusters, &labels), None);
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
    pairs_tables(hub.person_model(), &prepared, &input.events, &person_labels);
    for (rule, count) in hub.oversized_blocks() {
        if count > 0 {
            println!("{rule}: {count} records found their block too large to compare against");
        }
    }
    if args.parameters {
        link::print_parameters(hub.person_model());
    }
    Ok(())
}
