//! `[analytics]`: unit costs and repair targets used by the KPI queries.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// Direct cost of one wasted trip to a resident no-access, GBP (North Tyneside: ~25).
    pub no_access_cost_gbp: f64,
    /// Compensation paid per appointment the landlord or its contractor missed, GBP (10-30).
    pub landlord_missed_compensation_gbp: f64,
    /// Repair target per HACT priority code, in calendar hours from the tenant's report
    /// (1 Immediate, 2 Emergency, 3 Urgent, 4 Normal, 5 Inspection). Keys are the codes as
    /// strings. Working-day targets come with the analytics issue.
    pub target_hours: BTreeMap<String, u32>,
    /// Priority codes that count as emergency repairs for RP02.
    pub emergency_priorities: Vec<i64>,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            no_access_cost_gbp: 25.0,
            landlord_missed_compensation_gbp: 20.0,
            target_hours: [("1", 24), ("2", 24), ("3", 120), ("4", 672), ("5", 672)]
                .into_iter()
                .map(|(code, hours)| (code.to_string(), hours))
                .collect(),
            emergency_priorities: vec![1, 2],
        }
    }
}

impl AnalyticsConfig {
    /// The targets as (priority, hours), checking every key is a priority code.
    pub fn targets(&self) -> Result<Vec<(i64, i64)>, crate::Error> {
        self.target_hours
            .iter()
            .map(|(code, hours)| {
                code.parse::<i64>()
                    .map(|code| (code, i64::from(*hours)))
                    .map_err(|_| {
                        crate::Error::Config(format!(
                            "analytics.target_hours.{code}: not a priority code"
                        ))
                    })
            })
            .collect()
    }
}
