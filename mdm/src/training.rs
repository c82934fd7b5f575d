//! A person model trained on a landlord's own records, without labels (`goldthread train`,
//! `link` and `eval`), and the model described for the people who run them: what it
//! compares, blocks and trains on, its parameters, and what each blocking rule costs.

use std::fmt::Write as _;

use crate::model::{self, BlockingRule, Model, ModelSpec, Pairing, Prepared, TrainOptions};

/// Trains a person model of `spec` on prepared person records (from `origin`, for the
/// model's `trained_on`), without labels.
pub fn train_unlabelled(
    spec: ModelSpec,
    prepared: &[Prepared],
    origin: &str,
) -> Result<Model, crate::Error> {
    if prepared.len() < 2 {
        return Err(crate::Error::BadInput(format!(
            "{origin}: training needs person records, found {}",
            prepared.len()
        )));
    }
    // u from random pairs (exact agreement is counted, not sampled): a million is plenty
    // for any extract, and for a small one 10 per record (never under 100,000) does as well.
    let options = TrainOptions {
        u_sample: (prepared.len() * 10).clamp(100_000, 1_000_000),
        ..TrainOptions::default()
    };
    let mut model = Model::train(spec, prepared, Pairing::Dedupe, &options);
    model.trained_on = format!("{} person records from {origin}", prepared.len());
    Ok(model)
}

/// The pairs each blocking rule makes on these records, the pairs no other rule makes, and
/// pairs per record: what each rule costs and adds.
pub fn blocking_table(spec: &ModelSpec, prepared: &[Prepared]) -> String {
    let per_rule = model::rule_pairs(spec, prepared, Pairing::Dedupe);
    let mut text = format!(
        "  {:<32} {:>10} {:>16} {:>16}\n",
        "blocking rule", "pairs", "only this rule", "pairs/record"
    );
    let records = prepared.len().max(1) as f64;
    for rule in &per_rule {
        let _ = writeln!(
            text,
            "  {:<32} {:>10} {:>16} {:>16.2}",
            rule.name,
            rule.pairs.len(),
            rule.only.len(),
            2.0 * rule.pairs.len() as f64 / records
        );
    }
    let union = model::union_of(&per_rule);
    let _ = writeln!(
        text,
        "  {:<32} {:>10} {:>16} {:>16.2}",
        "union",
        union.len(),
        "",
        2.0 * union.len() as f64 / records
    );
    text
}

/// How a person model uses the data: each comparison, the blocking, training and prior
/// rules, the requirements, and any warning from training.
pub fn describe(model: &Model) -> String {
    let spec = &model.spec;
    let mut text = format!("person model {} ({})\n", model.version, model.trained_on);
    for comparison in &spec.comparisons {
        let _ = writeln!(
            text,
            "  compares {:<16} {}{}",
            comparison.field,
            serde_json::to_string(&comparison.comparator).unwrap_or_default(),
            if comparison.term_frequency {
                " with term frequencies"
            } else {
                ""
            }
        );
    }
    let names = |rules: &[BlockingRule]| {
        rules
            .iter()
            .map(|rule| rule.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(text, "  blocks on       {}", names(&spec.blocking));
    let _ = writeln!(text, "  trains m on     {}", names(&spec.training));
    let _ = writeln!(text, "  prior from      {}", names(&spec.prior));
    for requirement in &spec.requirements {
        let _ = writeln!(
            text,
            "  requires        {} at least {}",
            requirement.comparison, requirement.min_level
        );
    }
    let (found, recall) = model.prior_found;
    let _ = writeln!(
        text,
        "  prior weight    {:.2} bits ({found} pairs found by the prior rules, estimated recall {recall:.3})",
        model.prior_weight()
    );
    for warning in &model.warnings {
        let _ = writeln!(text, "  warning: {warning}");
    }
    text
}

/// The m and u probabilities and the weight of every comparison level.
pub fn parameters_table(model: &Model) -> String {
    let mut text = format!(
        "{:<16} {:<18} {:>10} {:>10} {:>8}\n",
        "comparison", "level", "m", "u", "weight"
    );
    for (comparison, level, m, u, weight) in model.parameters() {
        let _ = writeln!(
            text,
            "{comparison:<16} {level:<18} {m:>10.6} {u:>10.6} {weight:>8.2}"
        );
    }
    text
}
