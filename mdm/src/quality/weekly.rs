//! The weekly report read from the register: scores per rule and system, owners' issues,
//! the trend, each owner's digest and a merger's risk table.

use super::*;

/// One row of a merger's risk table: a gap the incoming data has against the standard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Risk {
    /// What is missing or wrong, in the standard's words.
    pub gap: String,
    pub rule: String,
    pub dimension: Dimension,
    pub severity: Severity,
    /// Records (or golden records) with the gap, and the share of those checked.
    pub count: usize,
    pub share: f64,
    /// Per system, the records with the gap.
    pub per_system: BTreeMap<String, usize>,
    pub mitigation: String,
}

impl Weekly {
    /// The knowledge gaps as a risk table (merger due diligence): a row per rule some
    /// records fail, most severe and largest first.
    pub fn risks(&self) -> Vec<Risk> {
        let mut risks: BTreeMap<&str, Risk> = BTreeMap::new();
        for score in self.scores.iter().filter(|score| score.failing > 0) {
            let risk = risks.entry(score.rule.as_str()).or_insert_with(|| Risk {
                gap: score.description.clone(),
                rule: score.rule.clone(),
                dimension: score.dimension,
                severity: score.severity,
                count: 0,
                share: 0.0,
                per_system: BTreeMap::new(),
                mitigation: String::new(),
            });
            risk.count += score.failing;
            risk.share += score.checked as f64;
            risk.per_system.insert(score.system.clone(), score.failing);
        }
        let fixes: BTreeMap<&str, &str> = self
            .owners
            .iter()
            .flat_map(|owner| &owner.issues)
            .map(|issue| (issue.rule.as_str(), issue.fix.as_str()))
            .collect();
        let mut risks: Vec<Risk> = risks
            .into_values()
            .map(|mut risk| {
                risk.share = risk.count as f64 / risk.share.max(1.0);
                risk.mitigation = fixes
                    .get(risk.rule.as_str())
                    .copied()
                    .unwrap_or("")
                    .to_string();
                risk
            })
            .collect();
        risks.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.count.cmp(&a.count)));
        risks
    }
}

/// Issues listed in a digest at most (the counts cover all).
pub const DIGEST_ISSUES: usize = 50;

impl Weekly {
    /// The digest of one owner's open issues, as a JSON body Teams and Slack incoming
    /// webhooks take (`text`), with the details beside it for other receivers. Records are
    /// named by source reference only.
    pub fn digest(&self, owner: &str) -> Value {
        let issues: &[Issue] = self
            .owners
            .iter()
            .find(|section| section.owner == owner)
            .map_or(&[], |section| &section.issues);
        let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
        for issue in issues {
            *per_rule.entry(issue.rule.as_str()).or_default() += 1;
        }
        let new = issues
            .iter()
            .filter(|issue| issue.first_seen.date_naive() >= self.from)
            .count();
        let rules: Vec<String> = per_rule
            .iter()
            .map(|(rule, count)| format!("{rule}: {count}"))
            .collect();
        let text = format!(
            "Data quality, week {}: {owner} has {} open issues ({new} new this week). {}",
            self.week,
            issues.len(),
            if rules.is_empty() {
                "Nothing to fix.".to_string()
            } else {
                rules.join("; ")
            }
        );
        let listed: Vec<Value> = issues
            .iter()
            .take(DIGEST_ISSUES)
            .map(|issue| {
                serde_json::json!({
                    "rule": issue.rule,
                    "severity": issue.severity,
                    "system": issue.system,
                    "source": issue.record.allocated_by,
                    "source_id": issue.record.id,
                    "problem": issue.problem,
                    "fix": issue.fix,
                    "first_seen": issue.first_seen,
                })
            })
            .collect();
        serde_json::json!({
            "text": text,
            "week": self.week,
            "owner": owner,
            "open": issues.len(),
            "new_this_week": new,
            "issues": listed,
        })
    }
}

impl Register {
    /// The weekly report for the ISO week holding `day` (Monday to Sunday, UTC), and the
    /// `weeks` before it for the trend.
    pub fn weekly(&self, hub: &Hub, day: NaiveDate, weeks: u32) -> Weekly {
        let week = day.iso_week();
        let monday = NaiveDate::from_isoywd_opt(week.year(), week.week(), chrono::Weekday::Mon)
            .expect("a Monday");
        let start = monday.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let end = start + chrono::Duration::days(7);
        let golden: HashMap<EntityKind, usize> = [
            (EntityKind::Person, hub.counts().golden_persons),
            (EntityKind::Property, hub.counts().golden_properties),
        ]
        .into();
        let all = || self.open.values().chain(&self.resolved);
        let open_at = |at: DateTime<Utc>| {
            let mut by_dimension: BTreeMap<Dimension, usize> = BTreeMap::new();
            for issue in all()
                .filter(|issue| issue.first_seen < at && issue.resolved_at.is_none_or(|r| r >= at))
            {
                *by_dimension.entry(issue.dimension).or_default() += 1;
            }
            by_dimension
        };
        let open: Vec<Issue> = self
            .open()
            .into_iter()
            .filter(|issue| issue.first_seen < end)
            .cloned()
            .collect();
        let mut owners: BTreeMap<String, Vec<Issue>> = BTreeMap::new();
        for issue in &open {
            owners
                .entry(issue.owner.clone())
                .or_default()
                .push(issue.clone());
        }
        for issues in owners.values_mut() {
            issues.sort_by(|a, b| {
                (b.severity, &a.rule, &a.record).cmp(&(a.severity, &b.rule, &b.record))
            });
        }
        let mut scores = Vec::new();
        for (index, compiled) in self.standard.rules.iter().enumerate() {
            for (system, checked) in self.checked(index, &golden) {
                let failing = open
                    .iter()
                    .filter(|issue| {
                        issue.rule == compiled.rule.id
                            && (system == "golden" || issue.record.allocated_by == system)
                    })
                    .count();
                scores.push(Score {
                    rule: compiled.rule.id.clone(),
                    description: compiled.rule.description.clone(),
                    entity: compiled.entity.as_str().to_string(),
                    fields: [
                        &compiled.rule.present,
                        &compiled.rule.any_present,
                        &compiled.rule.valid,
                    ]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
                    dimension: compiled.rule.dimension,
                    severity: compiled.rule.severity,
                    system,
                    checked,
                    failing,
                    score: if checked == 0 {
                        1.0
                    } else {
                        1.0 - failing.min(checked) as f64 / checked as f64
                    },
                });
            }
        }
        let mut costliest: BTreeMap<String, usize> = BTreeMap::new();
        for score in &scores {
            // A rule about golden records has no field: it counts under its own id.
            let keys: Vec<String> = if score.fields.is_empty() {
                vec![score.rule.clone()]
            } else {
                score
                    .fields
                    .iter()
                    .map(|field| format!("{}.{field}", score.entity))
                    .collect()
            };
            for key in keys {
                *costliest.entry(key).or_default() += score.failing;
            }
        }
        let mut costliest: Vec<(String, usize)> =
            costliest.into_iter().filter(|(_, n)| *n > 0).collect();
        costliest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let trend = (0..=weeks)
            .rev()
            .map(|back| {
                let week_end = end - chrono::Duration::days(7 * i64::from(back));
                let monday = (week_end - chrono::Duration::days(7)).date_naive();
                let iso = monday.iso_week();
                let by_dimension = open_at(week_end);
                TrendPoint {
                    week: format!("{}-W{:02}", iso.year(), iso.week()),
                    open: by_dimension.values().sum(),
                    by_dimension,
                }
            })
            .collect();
        let mut dimensions: BTreeMap<(Dimension, String), (usize, usize)> = BTreeMap::new();
        for score in &scores {
            let totals = dimensions
                .entry((score.dimension, score.system.clone()))
                .or_default();
            totals.0 += score.checked;
            totals.1 += score.failing.min(score.checked);
        }
        let dimensions = dimensions
            .into_iter()
            .map(|((dimension, system), (checked, failing))| DimensionScore {
                dimension,
                system,
                checked,
                failing,
                score: if checked == 0 {
                    1.0
                } else {
                    1.0 - failing as f64 / checked as f64
                },
            })
            .collect();
        Weekly {
            week: format!("{}-W{:02}", week.year(), week.week()),
            from: monday,
            to: monday + chrono::Duration::days(6),
            open_issues: open.len(),
            new_this_week: all()
                .filter(|issue| issue.first_seen >= start && issue.first_seen < end)
                .count(),
            resolved_this_week: self
                .resolved
                .iter()
                .filter(|issue| issue.resolved_at.is_some_and(|at| at >= start && at < end))
                .count(),
            owners: owners
                .into_iter()
                .map(|(owner, issues)| OwnerIssues { owner, issues })
                .collect(),
            scores,
            dimensions,
            costliest,
            trend,
        }
    }
}

/// The entity a per-record issue is about (for its golden id).
pub(super) fn record_entity(issue: &Issue, standard: &Standard) -> Option<Entity> {
    let compiled = standard.rules.iter().find(|c| c.rule.id == issue.rule)?;
    match compiled.entity {
        EntityKind::Person => Some(Entity::Person),
        EntityKind::Property => Some(Entity::Property),
        _ => None,
    }
}

/// One rule's score in one system: the share of its records that pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub rule: String,
    pub description: String,
    pub entity: String,
    pub fields: Vec<String>,
    pub dimension: Dimension,
    pub severity: Severity,
    /// The system whose records were checked (`golden` for a rule about golden records).
    pub system: String,
    pub checked: usize,
    pub failing: usize,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwnerIssues {
    pub owner: String,
    pub issues: Vec<Issue>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    pub week: String,
    /// Issues open at the end of the week.
    pub open: usize,
    /// The same, per dimension.
    pub by_dimension: BTreeMap<Dimension, usize>,
}

/// A dimension's score in one system: the share of checks its records pass, over its rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DimensionScore {
    pub dimension: Dimension,
    /// The system (`golden` for the rules about golden records).
    pub system: String,
    pub checked: usize,
    pub failing: usize,
    pub score: f64,
}

/// The weekly data quality report: per owner the open issues to act on, what was new and
/// resolved this week, scores per rule and system, the fields that cost most, the trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Weekly {
    /// ISO week, `2026-W49`.
    pub week: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub open_issues: usize,
    pub new_this_week: usize,
    pub resolved_this_week: usize,
    pub owners: Vec<OwnerIssues>,
    pub scores: Vec<Score>,
    /// Per dimension and system, over their rules.
    pub dimensions: Vec<DimensionScore>,
    /// `entity.field` and the open issues on it, most first.
    pub costliest: Vec<(String, usize)>,
    pub trend: Vec<TrendPoint>,
}
