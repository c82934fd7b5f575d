//! Scoring a clustering against labels (`goldthread eval`): pairwise precision, recall and
//! F1 and cluster measures, without listing pairs; how many true pairs each person blocking
//! rule keeps; and the calibration of the model's probabilities over the candidate pairs.

use std::collections::{HashMap, HashSet};

use pipeline::Reference;

use crate::model::{self, Model, Pairing, Prepared};
use crate::{Entity, Hub};

/// Pairwise and cluster measures of one entity's clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub records: usize,
    /// Real entities (distinct labels).
    pub real: usize,
    pub golden: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Golden records holding more than one real entity.
    pub impure: usize,
    /// Real entities spread over more than one golden record.
    pub split: usize,
    /// Golden records equal to a real entity's whole record set.
    pub exact: usize,
}

fn pairs(n: usize) -> u64 {
    (n as u64) * (n as u64).saturating_sub(1) / 2
}

/// Measures of clusters (lists of indices into `labels`) against labels.
pub fn score(clusters: &[Vec<usize>], labels: &[String]) -> Scores {
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

/// Labels from a CSV with the columns `source`, `source_id` and `column` (the true entity's
/// id): each source record's label. An error names the column missing or the line that does
/// not read.
pub fn read_labels(
    reader: impl std::io::Read,
    column: &str,
) -> Result<HashMap<Reference, String>, String> {
    let mut reader = csv::Reader::from_reader(reader);
    let headers = reader.headers().map_err(|error| error.to_string())?.clone();
    let position = |name: &str| {
        headers
            .iter()
            .position(|header| header == name)
            .ok_or_else(|| format!("no column `{name}`"))
    };
    let (source, id, label) = (
        position("source")?,
        position("source_id")?,
        position(column)?,
    );
    let mut labels = HashMap::new();
    // Every row has the header's cells: the reader refuses one that has not, naming its line.
    for row in reader.records() {
        let row = row.map_err(|error| error.to_string())?;
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

/// The hub's golden records of one entity as clusters of label indices, and each record's
/// label; the first record without a label is the error.
pub fn clusters_of(
    hub: &Hub,
    entity: Entity,
    labels: &HashMap<Reference, String>,
) -> Result<(Vec<Vec<usize>>, Vec<String>), Reference> {
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
            let label = labels.get(&reference).ok_or(reference)?;
            members.push(record_labels.len());
            record_labels.push(label.clone());
        }
        clusters.push(members);
    }
    Ok((clusters, record_labels))
}

/// What one blocking rule makes of the true pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRecall {
    pub name: String,
    /// Candidate pairs it makes.
    pub pairs: usize,
    /// True pairs among them.
    pub kept: usize,
    /// True pairs no other rule makes.
    pub only: usize,
}

/// One band of predicted link probability: the candidate pairs in it, how many are true, and
/// the sum of their predicted probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub low: f64,
    pub high: f64,
    pub pairs: usize,
    pub true_pairs: usize,
    pub predicted: f64,
}

impl Band {
    /// The share of its pairs that are true.
    pub fn observed(&self) -> f64 {
        self.true_pairs as f64 / self.pairs.max(1) as f64
    }

    /// Whether the observed share is within 5 points of the band; none with fewer than
    /// [`MIN_BAND_PAIRS`] pairs (one pair would move it by more than 10 points).
    pub fn calibrated(&self) -> Option<bool> {
        (self.pairs >= MIN_BAND_PAIRS).then(|| {
            let observed = self.observed();
            observed >= self.low - 0.05 && observed <= self.high + 0.05
        })
    }
}

/// Pairs a calibration band needs to be judged.
pub const MIN_BAND_PAIRS: usize = 10;

/// Calibration bands of the link probability: (low, high).
const BANDS: &[(f64, f64)] = &[
    (0.0, 0.01),
    (0.01, 0.1),
    (0.1, 0.5),
    (0.5, 0.9),
    (0.9, 0.99),
    (0.99, 1.0),
];

/// The person model's candidate pairs measured against labels.
#[derive(Debug, Clone, PartialEq)]
pub struct PairsReport {
    /// True pairs (record pairs sharing a label).
    pub truth: usize,
    pub rules: Vec<RuleRecall>,
    /// The union of the rules: its pairs and the true pairs it keeps.
    pub union_pairs: usize,
    pub union_kept: usize,
    /// Calibration over the union's pairs (requirements' vetoes count as probability 0).
    pub bands: Vec<Band>,
}

/// Candidate pairs per person blocking rule against `labels` (one per prepared record, in
/// order), and the calibration of `model`'s probabilities over them.
pub fn pairs_report(model: &Model, prepared: &[Prepared], labels: &[String]) -> PairsReport {
    assert_eq!(
        prepared.len(),
        labels.len(),
        "one label per prepared record"
    );
    let mut by_label: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, label) in labels.iter().enumerate() {
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
    let per_rule = model::rule_pairs(&model.spec, prepared, Pairing::Dedupe);
    let rules = per_rule
        .iter()
        .map(|rule| RuleRecall {
            name: rule.name.clone(),
            pairs: rule.pairs.len(),
            kept: rule
                .pairs
                .iter()
                .filter(|pair| truth.contains(pair))
                .count(),
            only: rule.only.iter().filter(|pair| truth.contains(pair)).count(),
        })
        .collect();
    let union = model::union_of(&per_rule);
    let mut bands: Vec<Band> = BANDS
        .iter()
        .map(|&(low, high)| Band {
            low,
            high,
            pairs: 0,
            true_pairs: 0,
            predicted: 0.0,
        })
        .collect();
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
        bands[band].pairs += 1;
        bands[band].true_pairs += usize::from(truth.contains(&(a, b)));
        bands[band].predicted += probability;
    }
    PairsReport {
        truth: truth.len(),
        rules,
        union_pairs: union.len(),
        union_kept: union.iter().filter(|pair| truth.contains(pair)).count(),
        bands,
    }
}

impl Scores {
    /// The header of the table of [`Scores::row`]s.
    pub fn header() -> String {
        format!(
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
        )
    }

    /// One entity's scores as a table row; `review`: the share of its records in the
    /// review queue.
    pub fn row(&self, entity: &str, review: Option<f64>) -> String {
        format!(
            "{:<9} {:>8} {:>7} {:>7} {:>10} {:>8} {:>8} {:>7} {:>7} {:>7} {:>10}",
            entity,
            self.records,
            self.real,
            self.golden,
            format!("{:.4}", self.precision),
            format!("{:.4}", self.recall),
            format!("{:.4}", self.f1),
            self.impure,
            self.split,
            format!(
                "{:.1}%",
                100.0 * self.exact as f64 / self.golden.max(1) as f64
            ),
            review.map_or("-".into(), |share| format!("{:.2}%", 100.0 * share)),
        )
    }
}

impl PairsReport {
    /// The report as tables: per blocking rule, its pairs and the share of true pairs it
    /// keeps (and keeps alone); then the calibration per probability band.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::new();
        let share = |count: usize| 100.0 * count as f64 / self.truth.max(1) as f64;
        let _ = writeln!(
            text,
            "{:<32} {:>12} {:>16} {:>22}",
            "person blocking rule", "pairs", "true pairs kept", "true pairs only it keeps"
        );
        for rule in &self.rules {
            let _ = writeln!(
                text,
                "{:<32} {:>12} {:>15.2}% {:>21.2}%",
                rule.name,
                rule.pairs,
                share(rule.kept),
                share(rule.only)
            );
        }
        let _ = writeln!(
            text,
            "{:<32} {:>12} {:>15.2}%\n",
            "union",
            self.union_pairs,
            share(self.union_kept)
        );
        let _ = writeln!(
            text,
            "{:<16} {:>10} {:>14} {:>16} {:>14}",
            "probability", "pairs", "mean predicted", "observed true", "within 5 pts"
        );
        let mut row = |label: String, band: &Band, verdict: &str| {
            let _ = if band.pairs == 0 {
                writeln!(text, "{label:<16} {:>10}", 0)
            } else {
                writeln!(
                    text,
                    "{label:<16} {:>10} {:>13.2}% {:>15.2}% {verdict:>14}",
                    band.pairs,
                    100.0 * band.predicted / band.pairs as f64,
                    100.0 * band.observed(),
                )
            };
        };
        for band in &self.bands {
            let verdict = match band.calibrated() {
                None => "too few",
                Some(true) => "yes",
                Some(false) => "NO",
            };
            row(format!("{}-{}", band.low, band.high), band, verdict);
        }
        // The uncertain pairs together, however few each band holds.
        let middle = &self.bands[1..self.bands.len() - 1];
        let all = Band {
            low: middle[0].low,
            high: middle[middle.len() - 1].high,
            pairs: middle.iter().map(|band| band.pairs).sum(),
            true_pairs: middle.iter().map(|band| band.true_pairs).sum(),
            predicted: middle.iter().map(|band| band.predicted).sum(),
        };
        row("0.01-0.99 (all)".into(), &all, "-");
        let _ = write!(
            text,
            "a band is judged from {MIN_BAND_PAIRS} pairs: with fewer, one pair moves its observed share by more than 10 points"
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_read_by_column_name_and_a_short_line_is_named() {
        let labels = read_labels(
            "person_id,source_id,source\nP1,T1,hms\nP1,C9,crm\n".as_bytes(),
            "person_id",
        )
        .unwrap();
        let crm = Reference {
            allocated_by: "crm".into(),
            id: "C9".into(),
        };
        assert_eq!(labels[&crm], "P1");
        assert_eq!(labels.len(), 2);
        let missing = read_labels("source,source_id\nhms,T1\n".as_bytes(), "person_id");
        assert_eq!(missing.unwrap_err(), "no column `person_id`");
        let short = read_labels(
            "source,source_id,person_id\nhms,T1\n".as_bytes(),
            "person_id",
        );
        assert!(short.unwrap_err().contains("line: 2"));
    }

    fn labels(text: &str) -> Vec<String> {
        text.chars().map(String::from).collect()
    }

    #[test]
    fn a_perfect_clustering_scores_one_everywhere() {
        let scores = score(&[vec![0, 1], vec![2], vec![3, 4, 5]], &labels("aabccc"));
        assert_eq!(
            (scores.precision, scores.recall, scores.f1),
            (1.0, 1.0, 1.0)
        );
        assert_eq!((scores.real, scores.golden, scores.exact), (3, 3, 3));
        assert_eq!((scores.impure, scores.split), (0, 0));
    }

    #[test]
    fn a_wrong_merge_costs_precision_and_a_split_costs_recall() {
        // a a | b merged with a's: one true pair of three predicted.
        let merged = score(&[vec![0, 1, 2]], &labels("aab"));
        assert!((merged.precision - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((merged.recall, merged.impure), (1.0, 1));
        // c c c split into two: one true pair found of three.
        let split = score(&[vec![0], vec![1, 2]], &labels("ccc"));
        assert_eq!(split.precision, 1.0);
        assert!((split.recall - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!((split.split, split.exact), (1, 0));
        assert!((split.f1 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_band_is_judged_from_enough_pairs_within_five_points() {
        let band = |pairs, true_pairs| Band {
            low: 0.9,
            high: 0.99,
            pairs,
            true_pairs,
            predicted: 0.0,
        };
        assert_eq!(band(9, 9).calibrated(), None);
        assert_eq!(band(100, 86).calibrated(), Some(true));
        assert_eq!(band(100, 84).calibrated(), Some(false));
    }
}
