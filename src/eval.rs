//! `goldthread eval`: match the configured person sources with the probabilistic model and
//! with the deterministic hub, and score both against a labelled file (pairwise precision,
//! recall, F1 and cluster counts). A benchmark command: it prints a table.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use connectors::{FileSource, Record};
use mdm::Hub;
use mdm::model::{self, Model, Pairing, TrainOptions};
use pipeline::{Envelope, Payload, Reference};

use crate::config::Loaded;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Configuration file (default: the built-in config/default.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Folder the sources' paths are relative to (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Labels: a CSV with `source`, `source_id` and the label column (default: the
    /// generator's `<data_dir>/truth/persons.csv`).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// The column of the labels file holding the real entity.
    #[arg(long, default_value = "person_id")]
    label_column: String,
    /// Match probability at or above which a pair is linked.
    #[arg(long, default_value_t = 0.99)]
    threshold: f64,
    /// Pairs at or above this probability, and below `threshold`, go to steward review.
    #[arg(long, default_value_t = 0.5)]
    review_threshold: f64,
}

/// Pairwise and cluster measures of one engine.
#[derive(Debug)]
struct Scores {
    clusters: usize,
    precision: f64,
    recall: f64,
    f1: f64,
    /// Clusters holding more than one real entity.
    impure_clusters: usize,
}

fn pairs(n: usize) -> u64 {
    (n as u64) * (n as u64).saturating_sub(1) / 2
}

/// Pairwise measures of a clustering against labels, counted without listing pairs.
fn score(clusters: &BTreeMap<usize, Vec<usize>>, labels: &[String]) -> Scores {
    let mut predicted = 0;
    let mut true_positive = 0;
    let mut impure_clusters = 0;
    for members in clusters.values() {
        predicted += pairs(members.len());
        let mut by_label: HashMap<&str, usize> = HashMap::new();
        for &member in members {
            *by_label.entry(labels[member].as_str()).or_default() += 1;
        }
        if by_label.len() > 1 {
            impure_clusters += 1;
        }
        true_positive += by_label.values().map(|&n| pairs(n)).sum::<u64>();
    }
    let mut by_label: HashMap<&str, usize> = HashMap::new();
    for label in labels {
        *by_label.entry(label.as_str()).or_default() += 1;
    }
    let truth: u64 = by_label.values().map(|&n| pairs(n)).sum();
    let precision = if predicted == 0 {
        1.0
    } else {
        true_positive as f64 / predicted as f64
    };
    let recall = if truth == 0 {
        1.0
    } else {
        true_positive as f64 / truth as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Scores {
        clusters: clusters.len(),
        precision,
        recall,
        f1,
        impure_clusters,
    }
}

fn find(parent: &mut [usize], mut node: usize) -> usize {
    while parent[node] != node {
        parent[node] = parent[parent[node]];
        node = parent[node];
    }
    node
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let mut loaded = Loaded::load(args.config.as_deref())?;
    if let Some(data_dir) = args.data_dir {
        loaded.config.data_dir = data_dir;
    }
    let data_dir = loaded.config.data_dir.clone();
    let mut events: Vec<Envelope> = Vec::new();
    let mut dead_letters = 0;
    for source in loaded
        .config
        .sources
        .iter()
        .filter(|source| source.entities() == [pipeline::EntityKind::Person])
    {
        let mut file = FileSource::open(source, &data_dir)?;
        while let Some(record) = file.next_record() {
            match record? {
                Record::Event(envelope) => events.push(*envelope),
                Record::DeadLetter(_) => dead_letters += 1,
            }
        }
    }
    if events.is_empty() {
        bail!(
            "no person records in the configured sources under {}",
            data_dir.display()
        );
    }
    let labels_path = args
        .labels
        .unwrap_or_else(|| data_dir.join("truth/persons.csv"));
    let mut reader =
        csv::Reader::from_path(&labels_path).with_context(|| labels_path.display().to_string())?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header == name)
            .with_context(|| format!("{}: no column `{name}`", labels_path.display()))
    };
    let (source_column, id_column, label_column) = (
        column("source")?,
        column("source_id")?,
        column(&args.label_column)?,
    );
    let mut label_of: HashMap<Reference, String> = HashMap::new();
    for row in reader.records() {
        let row = row?;
        label_of.insert(
            Reference {
                id: row[id_column].to_string(),
                allocated_by: row[source_column].to_string(),
            },
            row[label_column].to_string(),
        );
    }
    let labels: Vec<String> = events
        .iter()
        .map(|event| {
            label_of.get(&event.source_ref).cloned().with_context(|| {
                format!(
                    "{}: no label for {}:{}",
                    labels_path.display(),
                    event.source_ref.allocated_by,
                    event.source_ref.id
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let persons: Vec<&pipeline::entity::Person> = events
        .iter()
        .filter_map(|event| match &event.payload {
            Payload::Person(person) => Some(person),
            _ => None,
        })
        .collect();

    // Probabilistic: train without labels, link at the threshold, cluster by connected components.
    let started = Instant::now();
    let prepared: Vec<model::Prepared> = persons
        .iter()
        .map(|person| mdm::person::prepare(person))
        .collect();
    let model = Model::train(
        mdm::person::spec(),
        &prepared,
        Pairing::Dedupe,
        &TrainOptions::default(),
    );
    let train_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let candidates = model::block(&model.spec, &prepared, Pairing::Dedupe);
    let mut parent: Vec<usize> = (0..prepared.len()).collect();
    let mut in_review = vec![false; prepared.len()];
    for &(a, b, _) in &candidates.pairs {
        let probability = model.score(&prepared[a], &prepared[b]).probability;
        if probability >= args.threshold {
            let (root_a, root_b) = (find(&mut parent, a), find(&mut parent, b));
            parent[root_a.max(root_b)] = root_a.min(root_b);
        } else if probability >= args.review_threshold {
            in_review[a] = true;
            in_review[b] = true;
        }
    }
    let mut clusters: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for record in 0..prepared.len() {
        let root = find(&mut parent, record);
        clusters.entry(root).or_default().push(record);
    }
    let predict_seconds = started.elapsed().as_secs_f64();
    let probabilistic = score(&clusters, &labels);

    // Deterministic: the hub's normalised keys.
    let started = Instant::now();
    let mut hub = Hub::new(loaded.config.mdm.clone());
    for event in &events {
        hub.apply(event);
    }
    let golden_of: HashMap<(String, String), String> = hub
        .xref()
        .into_iter()
        .map(|entry| ((entry.source, entry.source_id), entry.golden_id))
        .collect();
    let mut by_golden: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        let key = (
            event.source_ref.allocated_by.clone(),
            event.source_ref.id.clone(),
        );
        by_golden
            .entry(golden_of[&key].as_str())
            .or_default()
            .push(index);
    }
    let deterministic_clusters: BTreeMap<usize, Vec<usize>> =
        by_golden.into_values().enumerate().collect();
    let hub_seconds = started.elapsed().as_secs_f64();
    let deterministic = score(&deterministic_clusters, &labels);

    let real = labels
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    let review = in_review.iter().filter(|flag| **flag).count();
    println!(
        "persons: {} source records ({} dead letters), {real} real people, {} candidate pairs from {} blocking rules",
        events.len(),
        dead_letters,
        candidates.pairs.len(),
        candidates.per_rule.len()
    );
    println!(
        "{:<14} {:>9} {:>10} {:>8} {:>8} {:>8} {:>14} {:>8}",
        "engine", "golden", "precision", "recall", "F1", "impure", "review queue", "seconds"
    );
    println!(
        "{:<14} {:>9} {:>10.4} {:>8.4} {:>8.4} {:>8} {:>13.2}% {:>8.2}",
        "probabilistic",
        probabilistic.clusters,
        probabilistic.precision,
        probabilistic.recall,
        probabilistic.f1,
        probabilistic.impure_clusters,
        100.0 * review as f64 / events.len() as f64,
        train_seconds + predict_seconds
    );
    println!(
        "{:<14} {:>9} {:>10.4} {:>8.4} {:>8.4} {:>8} {:>14} {:>8.2}",
        "deterministic",
        deterministic.clusters,
        deterministic.precision,
        deterministic.recall,
        deterministic.f1,
        deterministic.impure_clusters,
        "-",
        hub_seconds
    );
    println!(
        "model {} (train {train_seconds:.2} s, predict {predict_seconds:.2} s, threshold {}, prior {:.5})",
        model.version, args.threshold, model.lambda
    );
    println!(
        "{:<16} {:<18} {:>10} {:>10} {:>8}",
        "comparison", "level", "m", "u", "weight"
    );
    for (comparison, level, m, u, weight) in model.parameters() {
        println!("{comparison:<16} {level:<18} {m:>10.6} {u:>10.6} {weight:>8.2}");
    }
    Ok(())
}
