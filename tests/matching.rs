//! Matching on data nobody here wrote, through the product path: `goldthread link` and
//! `goldthread eval` with the plain mapping configs in `config/examples/` (each column mapped
//! to the canonical field that names it, no model section), on the Febrl sets in
//! `mdm/testdata/febrl`, scored against the entity in each record id (`rec-N-org`,
//! `rec-N-dup-K`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use common::goldthread;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Pairwise precision, recall and F1 of the person clusters in `xref.csv` against the
/// entity in each Febrl record id.
fn pairwise_f1(xref: &Path) -> (f64, f64, f64) {
    let mut reader = csv::Reader::from_path(xref).unwrap();
    let mut clusters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        assert_eq!(&row[0], "person");
        let entity = row[2].split('-').nth(1).unwrap().to_string();
        clusters.entry(row[3].to_string()).or_default().push(entity);
    }
    let pairs = |n: usize| (n * n.saturating_sub(1) / 2) as f64;
    let (mut predicted, mut true_positive) = (0.0, 0.0);
    let mut per_entity: HashMap<String, usize> = HashMap::new();
    for members in clusters.values() {
        predicted += pairs(members.len());
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for entity in members {
            *counts.entry(entity).or_default() += 1;
            *per_entity.entry(entity.clone()).or_default() += 1;
        }
        true_positive += counts.values().map(|&n| pairs(n)).sum::<f64>();
    }
    let truth: f64 = per_entity.values().map(|&n| pairs(n)).sum();
    let (precision, recall) = (true_positive / predicted, true_positive / truth);
    (
        precision,
        recall,
        2.0 * precision * recall / (precision + recall),
    )
}

fn link(config: &str, out: &Path) -> serde_json::Value {
    link_with(
        &root().join(config),
        out,
        &["compares address", "compares nino"],
    )
}

fn link_with(config: &Path, out: &Path, expected: &[&str]) -> serde_json::Value {
    let output = goldthread()
        .args(["link", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The person model says how it uses what is mapped.
    for line in expected.iter().chain(&["blocks on", "prior weight"]) {
        assert!(stderr.contains(line), "`{line}` in {stderr}");
    }
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

#[test]
fn febrl_links_through_goldthread_link_with_a_plain_mapping() {
    for (config, floor, records) in [
        ("config/examples/febrl4.toml", 0.999, 10_000),
        ("config/examples/febrl3.toml", 0.996, 5_000),
    ] {
        let out = tempfile::tempdir().unwrap();
        let report = link(config, out.path());
        // Every row is an event: optional values that do not parse are findings, not dead
        // letters.
        let sources = report["sources"].as_array().unwrap();
        let events: u64 = sources.iter().map(|s| s["events"].as_u64().unwrap()).sum();
        let dead: u64 = sources
            .iter()
            .map(|s| s["dead_letters"].as_u64().unwrap())
            .sum();
        assert_eq!((events, dead), (records, 0), "{config}");
        let (precision, recall, f1) = pairwise_f1(&out.path().join("xref.csv"));
        assert!(
            f1 >= floor,
            "{config}: F1 {f1:.4} (precision {precision:.4}, recall {recall:.4}) below {floor}"
        );
    }
}

#[test]
fn a_named_identifier_is_evidence_and_a_blocking_key() {
    // Febrl4's national id mapped as a named identifier instead of a NINO.
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(root().join("config/examples/febrl4.toml"))
        .unwrap()
        .replace(
            "data_dir = \"../../mdm/testdata/febrl\"",
            &format!("data_dir = {:?}", root().join("mdm/testdata/febrl")),
        )
        .replace(
            ", nino = \"soc_sec_id\" }",
            " }\nidentifiers = { ssn = \"soc_sec_id\" }",
        );
    assert_eq!(config.matches("identifiers").count(), 2, "{config}");
    let path = dir.path().join("febrl4-identifier.toml");
    std::fs::write(&path, config).unwrap();
    let out = dir.path().join("out");
    link_with(&path, &out, &["compares id:ssn", "id:ssn"]);
    let (_, _, f1) = pairwise_f1(&out.join("xref.csv"));
    assert!(f1 >= 0.999, "F1 {f1:.4}");
}

#[test]
fn febrl4_link_probabilities_are_calibrated() {
    let output = goldthread()
        .args(["eval", "--config"])
        .arg(root().join("config/examples/febrl4.toml"))
        .arg("--labels")
        .arg(root().join("mdm/testdata/febrl/labels4.csv"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.starts_with("probability"))
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .collect();
    assert_eq!(table.len(), 8, "{stdout}");
    // Each band with enough pairs to judge: the observed share of true pairs within 5 points
    // of it.
    let mut judged = 0;
    for row in &table[..6] {
        assert!(!row.ends_with("NO"), "{row}\n{stdout}");
        judged += usize::from(row.ends_with("yes"));
    }
    assert!(judged >= 2, "{stdout}");
    // The uncertain pairs together: their observed share within 5 points and two standard
    // errors of what the model predicted for them.
    let middle: Vec<&str> = table[6].split_whitespace().collect();
    let pairs: f64 = middle[2].parse().unwrap();
    let predicted: f64 = middle[3].trim_end_matches('%').parse::<f64>().unwrap() / 100.0;
    let observed: f64 = middle[4].trim_end_matches('%').parse::<f64>().unwrap() / 100.0;
    let allowed = 0.05 + 2.0 * (predicted * (1.0 - predicted) / pairs).sqrt();
    assert!(
        (observed - predicted).abs() <= allowed,
        "{}\n{stdout}",
        table[6]
    );
}
