//! `[analytics]`: repair targets, unit costs, the bank-holiday calendar and the analyst SQL
//! endpoint's limits, used by the KPI and exception queries.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, Duration, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;

use crate::calendar::Calendar;

/// A repair target: hours from the report, or the end of the Nth calendar or working day
/// after the day of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    Hours(u32),
    CalendarDays(u32),
    WorkingDays(u32),
}

impl Target {
    /// When a repair reported at `reported_at` is due; `None` past the last instant chrono
    /// represents (events are checked against `pipeline::entity::YEARS` before they get here:
    /// this keeps a bad one from ever panicking).
    pub fn due(self, reported_at: DateTime<Utc>, calendar: &Calendar) -> Option<DateTime<Utc>> {
        let end_of = |day: NaiveDate| {
            Some(
                day.checked_add_days(Days::new(1))?
                    .and_time(NaiveTime::MIN)
                    .and_utc(),
            )
        };
        match self {
            Target::Hours(hours) => {
                reported_at.checked_add_signed(Duration::hours(i64::from(hours)))
            }
            Target::CalendarDays(days) => end_of(
                reported_at
                    .date_naive()
                    .checked_add_days(Days::new(u64::from(days)))?,
            ),
            Target::WorkingDays(days) => {
                end_of(calendar.add_working_days(reported_at.date_naive(), days)?)
            }
        }
    }

    pub fn describe(self) -> String {
        match self {
            Target::Hours(n) => format!("{n} hours"),
            Target::CalendarDays(n) => format!("{n} calendar days"),
            Target::WorkingDays(n) => format!("{n} working days"),
        }
    }
}

/// Awaab's Law hazards, as the data can show them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwaabConfig {
    /// Priority codes whose repairs are emergency hazards (investigate and make safe within
    /// 24 hours of the report).
    pub emergency_priorities: Vec<i64>,
    /// Trades whose repairs are significant hazards (damp and mould): investigated within 10
    /// working days of the report, safety works done within 5 working days of the
    /// investigation.
    pub significant_hazard_trades: Vec<String>,
}

impl Default for AwaabConfig {
    fn default() -> Self {
        AwaabConfig {
            emergency_priorities: vec![1],
            significant_hazard_trades: vec!["damp and mould".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// Direct cost of one wasted trip to a resident no-access, GBP (North Tyneside: ~25).
    pub no_access_cost_gbp: f64,
    /// Compensation paid per appointment the landlord or its contractor missed, GBP (10-30).
    pub landlord_missed_compensation_gbp: f64,
    /// Cost of rebooking one appointment that did not go ahead (staff time), GBP.
    pub rebooking_cost_gbp: f64,
    /// Repair target per HACT priority code (1 Immediate, 2 Emergency, 3 Urgent, 4 Normal,
    /// 5 Inspection), e.g. `"3" = { working_days = 5 }`; keys are the codes as strings.
    pub targets: BTreeMap<String, Target>,
    /// Priority codes that count as emergency repairs for RP02.
    pub emergency_priorities: Vec<i64>,
    /// Bank holidays announced after this release, added to England and Wales's.
    pub extra_bank_holidays: Vec<NaiveDate>,
    pub awaab: AwaabConfig,
    /// The analyst SQL endpoint (`POST /api/sql`): rows returned at most.
    pub sql_row_limit: usize,
    /// How long an analyst query may run (`10s`).
    #[serde(with = "humantime_serde")]
    pub sql_timeout: std::time::Duration,
    /// The longest query text accepted, in bytes.
    pub sql_max_length: usize,
    /// The most an answer may hold, in bytes of Arrow data; more rows are cut (`truncated`).
    pub sql_max_response_bytes: usize,
    /// Memory the analysts' queries may take together, MiB; a query that needs more fails.
    pub sql_memory_limit_mib: usize,
    /// Analyst queries run at once (each on a thread of its own); as many more may wait,
    /// and further ones are answered 503 at once.
    pub sql_concurrency: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            no_access_cost_gbp: 25.0,
            landlord_missed_compensation_gbp: 20.0,
            rebooking_cost_gbp: 8.0,
            targets: [
                ("1", Target::Hours(24)),
                ("2", Target::Hours(24)),
                ("3", Target::WorkingDays(5)),
                ("4", Target::CalendarDays(28)),
                ("5", Target::CalendarDays(28)),
            ]
            .into_iter()
            .map(|(code, target)| (code.to_string(), target))
            .collect(),
            emergency_priorities: vec![1, 2],
            extra_bank_holidays: Vec::new(),
            awaab: AwaabConfig::default(),
            sql_row_limit: 10_000,
            sql_timeout: std::time::Duration::from_secs(10),
            sql_max_length: 64 * 1024,
            sql_max_response_bytes: 16 * 1024 * 1024,
            sql_memory_limit_mib: 512,
            sql_concurrency: 2,
        }
    }
}

impl AnalyticsConfig {
    /// The targets by priority code, checking every key is a priority code.
    pub fn targets(&self) -> Result<BTreeMap<i64, Target>, crate::Error> {
        self.targets
            .iter()
            .map(|(code, target)| {
                code.parse::<i64>()
                    .map(|code| (code, *target))
                    .map_err(|_| {
                        crate::Error::Config(format!(
                            "analytics.targets.{code}: not a priority code (1-5)"
                        ))
                    })
            })
            .collect()
    }

    pub fn calendar(&self) -> Calendar {
        Calendar::new(self.extra_bank_holidays.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_hours_calendar_days_or_working_days() {
        let calendar = Calendar::default();
        let reported: DateTime<Utc> = "2025-04-17T10:00:00Z".parse().unwrap();
        let due = |target: Target| target.due(reported, &calendar).unwrap().to_rfc3339();
        assert_eq!(due(Target::Hours(24)), "2025-04-18T10:00:00+00:00");
        assert_eq!(due(Target::CalendarDays(1)), "2025-04-19T00:00:00+00:00");
        // Good Friday and Easter Monday are not working days.
        assert_eq!(due(Target::WorkingDays(1)), "2025-04-23T00:00:00+00:00");
        // At the end of chrono's range a target is unknown, not a panic.
        let last = DateTime::<Utc>::MAX_UTC;
        for target in [
            Target::Hours(24),
            Target::CalendarDays(28),
            Target::WorkingDays(5),
        ] {
            assert_eq!(target.due(last, &calendar), None);
        }
        let parsed: AnalyticsConfig = toml::from_str(
            "[targets]\n\"3\" = { working_days = 5 }\n\"4\" = { calendar_days = 20 }\n",
        )
        .unwrap();
        assert_eq!(parsed.targets().unwrap()[&3], Target::WorkingDays(5));
        let wrong: AnalyticsConfig = toml::from_str("[targets]\nurgent = { hours = 5 }\n").unwrap();
        assert!(
            wrong
                .targets()
                .unwrap_err()
                .to_string()
                .contains("analytics.targets.urgent")
        );
        assert!(toml::from_str::<AnalyticsConfig>("[targets]\n\"3\" = { weeks = 5 }\n").is_err());
    }
}
