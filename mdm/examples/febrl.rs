//! Benchmark command: unsupervised Fellegi-Sunter on the Febrl data sets, scored against
//! their labels. `cargo run --release -p mdm --example febrl` prints a table per data set.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use mdm::compare::Comparator;
use mdm::model::{
    self, BlockingRule, ComparisonSpec, Model, ModelSpec, Pairing, Prepared, TrainOptions,
};

const FIELDS: &[&str] = &[
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
];

fn spec() -> ModelSpec {
    let text = Comparator::Text {
        high: 0.92,
        low: 0.8,
    };
    let comparison = ComparisonSpec::on;
    let rule = BlockingRule::on;
    ModelSpec {
        fields: FIELDS.iter().map(|field| field.to_string()).collect(),
        comparisons: vec![
            comparison(
                "given_name",
                Comparator::GivenName {
                    high: 0.92,
                    low: 0.8,
                },
                true,
            ),
            comparison("surname", text, true),
            comparison("street_number", Comparator::Code, false),
            comparison("address_1", text, false),
            comparison("address_2", text, false),
            comparison("suburb", text, true),
            comparison("postcode", Comparator::Code, false),
            comparison("state", Comparator::Exact, false),
            comparison("date_of_birth", Comparator::Date, false),
            comparison("soc_sec_id", Comparator::Code, false),
        ],
        blocking: vec![
            rule(&["given_name", "surname"]),
            rule(&["surname", "date_of_birth"]),
            rule(&["given_name", "date_of_birth"]),
            rule(&["postcode", "given_name"]),
            rule(&["soc_sec_id"]),
            rule(&["date_of_birth"]),
            rule(&["postcode", "street_number"]),
            rule(&["surname", "suburb"]),
            rule(&["address_1", "suburb"]),
        ],
        training: Vec::new(),
        requirements: Vec::new(),
        // The prior by EM on the candidate pairs, as this example was tuned.
        prior: Vec::new(),
    }
}

/// Records and their entity numbers (`rec-N-org`, `rec-N-dup-K` -> N).
fn load(path: &Path) -> (Vec<Prepared>, Vec<String>) {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .expect("febrl file");
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let mut records = Vec::new();
    let mut entities = Vec::new();
    for row in reader.records() {
        let row = row.unwrap();
        let get = |name: &str| {
            row.get(headers.iter().position(|h| h == name).unwrap())
                .unwrap()
                .trim()
                .to_lowercase()
        };
        entities.push(get("rec_id").split('-').nth(1).unwrap().to_string());
        records.push(Prepared {
            values: FIELDS
                .iter()
                .map(|field| Some(get(field)).filter(|value| !value.is_empty()))
                .collect(),
        });
    }
    (records, entities)
}

fn run(name: &str, key: &str, records: &[Prepared], entities: &[String], pairing: Pairing) {
    let truth: HashSet<(usize, usize)> = {
        let mut by_entity: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, entity) in entities.iter().enumerate() {
            by_entity.entry(entity).or_default().push(index);
        }
        let mut pairs = HashSet::new();
        for members in by_entity.values() {
            for (i, &a) in members.iter().enumerate() {
                for &b in &members[i + 1..] {
                    if match pairing {
                        Pairing::Dedupe => true,
                        Pairing::Link { left } => (a < left) != (b < left),
                    } {
                        pairs.insert((a.min(b), a.max(b)));
                    }
                }
            }
        }
        pairs
    };
    let started = Instant::now();
    let model = Model::train(
        spec(),
        records,
        pairing,
        &TrainOptions {
            u_sample: 100_000,
            ..TrainOptions::default()
        },
    );
    let train_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let candidates = model::block(&model.spec, records, pairing);
    let scored: Vec<((usize, usize), f64)> = candidates
        .pairs
        .iter()
        .map(|&(a, b, _)| {
            // The streaming matcher's allocation-free path; `score` adds the explanation.
            let (weight, vetoed) = model.weigh(&records[a], &records[b]);
            (
                (a, b),
                if vetoed {
                    0.0
                } else {
                    model::probability(weight)
                },
            )
        })
        .collect();
    let predict_seconds = started.elapsed().as_secs_f64();
    let candidate_set: HashSet<(usize, usize)> = scored.iter().map(|(pair, _)| *pair).collect();
    let blocking_recall = truth.intersection(&candidate_set).count() as f64 / truth.len() as f64;
    println!(
        "\n{name}: {} records, {} true pairs, {} candidate pairs (blocking keeps {:.4} of true pairs)",
        records.len(),
        truth.len(),
        candidates.pairs.len(),
        blocking_recall
    );
    println!(
        "  train {train_seconds:.2} s, predict {predict_seconds:.2} s, lambda {:.5}, model {}",
        model.lambda, model.version
    );
    println!(
        "  {:>9} {:>10} {:>10} {:>10} {:>9}",
        "threshold", "precision", "recall", "F1", "links"
    );
    for threshold in [0.5, 0.9, 0.99, 0.999] {
        let predicted: HashSet<(usize, usize)> = scored
            .iter()
            .filter(|(_, p)| *p >= threshold)
            .map(|(pair, _)| *pair)
            .collect();
        let (precision, recall, f1) = model::pairwise_scores(&predicted, &truth);
        println!(
            "  {threshold:>9} {precision:>10.4} {recall:>10.4} {f1:>10.4} {:>9}",
            predicted.len()
        );
        if threshold == 0.99 {
            // One machine-readable line per data set at Splink's threshold, for bench/febrl-vs-splink.
            let result = serde_json::json!({
                "tool": "goldthread", "dataset": key, "precision": precision, "recall": recall, "f1": f1,
                "train_seconds": train_seconds, "predict_seconds": predict_seconds,
            });
            println!("RESULT {result}");
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/febrl");
    let (mut records, mut entities) = load(&root.join("dataset4a.csv"));
    let left = records.len();
    let (b, b_entities) = load(&root.join("dataset4b.csv"));
    records.extend(b);
    entities.extend(b_entities);
    run(
        "Febrl4 (link 4a to 4b)",
        "febrl4",
        &records,
        &entities,
        Pairing::Link { left },
    );
    let (records, entities) = load(&root.join("dataset3.csv"));
    run(
        "Febrl3 (dedupe)",
        "febrl3",
        &records,
        &entities,
        Pairing::Dedupe,
    );
}
