//! The KPI suite: each `sql/kpi/*.sql` file (its header states the definition and source)
//! run for a date range, collected into one table of (kpi, key, value, numerator,
//! denominator); and the data exception rules (`sql/exceptions/*.sql`), each row naming the
//! record and the rule.

use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::tables::Analytics;

/// The suite, in display order: (file name, SQL text).
pub const KPI_FILES: &[(&str, &str)] = &[
    ("rp02.sql", include_str!("../kpi/rp02.sql")),
    ("hmpi90.sql", include_str!("../kpi/hmpi90.sql")),
    ("hmpi101.sql", include_str!("../kpi/hmpi101.sql")),
    ("appointments.sql", include_str!("../kpi/appointments.sql")),
    ("reminders.sql", include_str!("../kpi/reminders.sql")),
    ("awaab.sql", include_str!("../kpi/awaab.sql")),
    ("wastage.sql", include_str!("../kpi/wastage.sql")),
    (
        "wastage_breakdown.sql",
        include_str!("../kpi/wastage_breakdown.sql"),
    ),
];

/// The data exception rules: (file name, SQL text); each returns (rule, record, detail).
pub const EXCEPTION_FILES: &[(&str, &str)] = &[
    (
        "completed_without_visit.sql",
        include_str!("../exceptions/completed_without_visit.sql"),
    ),
    (
        "reported_after_raised.sql",
        include_str!("../exceptions/reported_after_raised.sql"),
    ),
    (
        "priority_lowered_late.sql",
        include_str!("../exceptions/priority_lowered_late.sql"),
    ),
    (
        "cancel_and_reraise.sql",
        include_str!("../exceptions/cancel_and_reraise.sql"),
    ),
    (
        "outcome_missing.sql",
        include_str!("../exceptions/outcome_missing.sql"),
    ),
    (
        "no_access_without_evidence.sql",
        include_str!("../exceptions/no_access_without_evidence.sql"),
    ),
    (
        "void_responsive_repair.sql",
        include_str!("../exceptions/void_responsive_repair.sql"),
    ),
    (
        "vulnerability_past_end.sql",
        include_str!("../exceptions/vulnerability_past_end.sql"),
    ),
];

/// The views every query reads (`CREATE VIEW` statements separated by `;`).
pub const VIEWS: &str = include_str!("../views/current.sql");

/// One KPI value. `value` is `None` when the denominator is zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiRow {
    pub kpi: String,
    /// The group of a breakdown (`contractor` name, `Mon am`, ...); `None` for a headline KPI.
    pub key: Option<String>,
    pub value: Option<f64>,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    /// The `.sql` file that defines it.
    pub definition: String,
}

/// The suite's result for one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiTable {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The instant deadlines are judged against (Awaab's Law steps not yet due are left out).
    pub as_of: NaiveDateTime,
    pub rows: Vec<KpiRow>,
}

/// How many exceptions each rule found.
pub fn exception_counts(rows: &[ExceptionRow]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for row in rows {
        *counts.entry(row.rule.clone()).or_insert(0) += 1;
    }
    counts
}

/// One data exception: the rule it breaks and the record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ExceptionRow {
    pub rule: String,
    /// `work_order:WO123`, `appointment:AP123`, `vulnerability:hms:V1`.
    pub record: String,
    pub detail: String,
}

impl KpiTable {
    /// A headline KPI (one without a key).
    pub fn get(&self, kpi: &str) -> Option<&KpiRow> {
        self.rows
            .iter()
            .find(|row| row.kpi == kpi && row.key.is_none())
    }

    /// The rows of a breakdown, by key.
    pub fn breakdown(&self, kpi: &str) -> Vec<&KpiRow> {
        self.rows
            .iter()
            .filter(|row| row.kpi == kpi && row.key.is_some())
            .collect()
    }

    /// Comma-separated values with a header row.
    pub fn to_csv(&self) -> String {
        let number = |value: Option<f64>| value.map(|value| value.to_string()).unwrap_or_default();
        let quote = |text: &str| {
            if text.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", text.replace('"', "\"\""))
            } else {
                text.to_string()
            }
        };
        let mut lines = vec!["kpi,key,value,numerator,denominator,definition".to_string()];
        for row in &self.rows {
            lines.push(format!(
                "{},{},{},{},{},{}",
                row.kpi,
                quote(row.key.as_deref().unwrap_or("")),
                number(row.value),
                number(row.numerator),
                number(row.denominator),
                row.definition
            ));
        }
        lines.join("\n") + "\n"
    }

    /// A fixed-width text table for terminals; breakdowns (keyed rows) only when asked.
    pub fn to_text(&self, breakdowns: bool) -> String {
        let number = |value: Option<f64>| match value {
            None => "-".to_string(),
            Some(value) if value.fract() == 0.0 && value.abs() < 1e15 => format!("{value:.0}"),
            Some(value) => format!("{value:.2}"),
        };
        let mut lines = vec![
            format!("KPIs {} to {} (as of {})", self.from, self.to, self.as_of),
            format!(
                "{:<40} {:>12} {:>12} {:>12}",
                "kpi", "value", "numerator", "denominator"
            ),
        ];
        for row in self
            .rows
            .iter()
            .filter(|row| breakdowns || row.key.is_none())
        {
            let name = match &row.key {
                None => row.kpi.clone(),
                Some(key) => format!("  {key}"),
            };
            if row.key.is_some()
                && self
                    .rows
                    .iter()
                    .find(|first| first.kpi == row.kpi)
                    .is_some_and(|first| std::ptr::eq(first, row))
            {
                lines.push(row.kpi.clone());
            }
            lines.push(format!(
                "{:<40} {:>12} {:>12} {:>12}",
                name,
                number(row.value),
                number(row.numerator),
                number(row.denominator)
            ));
        }
        lines.join("\n")
    }
}

/// The placeholders every query may use and their typed values (dates and numbers only,
/// so nothing can be injected).
pub(crate) fn parameters(
    from: NaiveDate,
    to: NaiveDate,
    as_of: NaiveDateTime,
    analytics: &Analytics,
) -> Vec<(&'static str, String)> {
    let config = &analytics.config;
    // Longest names first: `$to` must not replace the start of another placeholder.
    vec![
        (
            "$landlord_missed_compensation",
            format!("{:?}", config.landlord_missed_compensation_gbp),
        ),
        (
            "$no_access_cost",
            format!("{:?}", config.no_access_cost_gbp),
        ),
        (
            "$rebooking_cost",
            format!("{:?}", config.rebooking_cost_gbp),
        ),
        (
            "$as_of",
            format!("TIMESTAMP '{}'", as_of.format("%Y-%m-%d %H:%M:%S")),
        ),
        ("$from", format!("DATE '{from}'")),
        ("$to", format!("DATE '{to}'")),
    ]
}

/// Fills a query's placeholders.
fn bind(
    sql: &str,
    from: NaiveDate,
    to: NaiveDate,
    as_of: NaiveDateTime,
    analytics: &Analytics,
) -> String {
    parameters(from, to, as_of, analytics)
        .into_iter()
        .fold(sql.to_string(), |sql, (name, value)| {
            sql.replace(name, &value)
        })
}

/// A text column as `Utf8`, whichever string type the plan produced.
fn strings(
    column: &datafusion::arrow::array::ArrayRef,
) -> Result<datafusion::arrow::array::StringArray, Error> {
    let cast =
        datafusion::arrow::compute::cast(column, &datafusion::arrow::datatypes::DataType::Utf8)?;
    Ok(cast.as_string::<i32>().clone())
}

impl Analytics {
    /// The KPI suite for a period, judged at its end (`calendar::as_of`); a bound not
    /// given is the data's (`data_span`; today when there is no data).
    pub async fn kpis_over(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<KpiTable, Error> {
        let (from, to) = match (from, to) {
            (Some(from), Some(to)) => (from, to),
            (from, to) => {
                let today = chrono::Utc::now().date_naive();
                let (first, last) = self.data_span().await?.unwrap_or((today, today));
                (from.unwrap_or(first), to.unwrap_or(last))
            }
        };
        if from > to {
            return Err(Error::Period(format!(
                "the period starts ({from}) after it ends ({to})"
            )));
        }
        self.kpis(from, to, crate::calendar::as_of(to)).await
    }

    /// Runs the KPI suite for slots / completions between `from` and `to` inclusive,
    /// judging deadlines at `as_of`.
    pub async fn kpis(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        as_of: NaiveDateTime,
    ) -> Result<KpiTable, Error> {
        let started = std::time::Instant::now();
        let mut rows = Vec::new();
        for (file, sql) in KPI_FILES {
            let result = self.run_file(file, sql, from, to, as_of).await?;
            let mut file_rows = Vec::new();
            for batch in result {
                let ordinal = batch.column(0).as_primitive::<Int64Type>().clone();
                let (names, keys) = (strings(batch.column(1))?, strings(batch.column(2))?);
                let float =
                    |index: usize| batch.column(index).as_primitive::<Float64Type>().clone();
                let (values, numerators, denominators) = (float(3), float(4), float(5));
                let get = |array: &datafusion::arrow::array::Float64Array, index: usize| {
                    (!array.is_null(index)).then(|| array.value(index))
                };
                for index in 0..batch.num_rows() {
                    file_rows.push((
                        ordinal.value(index),
                        KpiRow {
                            kpi: names.value(index).to_string(),
                            key: (!keys.is_null(index)).then(|| keys.value(index).to_string()),
                            value: get(&values, index),
                            numerator: get(&numerators, index),
                            denominator: get(&denominators, index),
                            definition: file.to_string(),
                        },
                    ));
                }
            }
            file_rows.sort_by(|(a, row_a), (b, row_b)| (a, &row_a.key).cmp(&(b, &row_b.key)));
            rows.extend(file_rows.into_iter().map(|(_, row)| row));
        }
        metrics::histogram!(pipeline::metrics::SQL_KPI_SECONDS)
            .record(started.elapsed().as_secs_f64());
        Ok(KpiTable {
            from,
            to,
            as_of,
            rows,
        })
    }

    /// Runs one of the suite's or the exception rules' files with its placeholders bound.
    async fn run_file(
        &self,
        file: &'static str,
        sql: &str,
        from: NaiveDate,
        to: NaiveDate,
        as_of: NaiveDateTime,
    ) -> Result<Vec<datafusion::arrow::array::RecordBatch>, Error> {
        let query = bind(sql, from, to, as_of, self);
        async { self.context.sql(&query).await?.collect().await }
            .await
            .map_err(|source| Error::Kpi { file, source })
    }

    /// Runs each KPI file once for the period: (file, seconds), for benchmarks.
    pub async fn time_each(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        as_of: NaiveDateTime,
    ) -> Result<Vec<(String, f64)>, Error> {
        let mut times = Vec::new();
        for (file, sql) in KPI_FILES {
            let started = std::time::Instant::now();
            self.run_file(file, sql, from, to, as_of).await?;
            times.push((file.to_string(), started.elapsed().as_secs_f64()));
        }
        Ok(times)
    }

    /// Runs every exception rule, judging time limits at `as_of`; sorted by rule and record.
    pub async fn exceptions(&self, as_of: NaiveDateTime) -> Result<Vec<ExceptionRow>, Error> {
        let mut rows = Vec::new();
        for (file, sql) in EXCEPTION_FILES {
            let result = self
                .run_file(file, sql, as_of.date(), as_of.date(), as_of)
                .await?;
            for batch in result {
                let (rules, records, details) = (
                    strings(batch.column(0))?,
                    strings(batch.column(1))?,
                    strings(batch.column(2))?,
                );
                for index in 0..batch.num_rows() {
                    rows.push(ExceptionRow {
                        rule: rules.value(index).to_string(),
                        record: records.value(index).to_string(),
                        detail: if details.is_null(index) {
                            String::new()
                        } else {
                            details.value(index).to_string()
                        },
                    });
                }
            }
        }
        rows.sort();
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AnalyticsConfig;
    use chrono::{DateTime, Utc};
    use pipeline::entity::{Appointment, RepairRequest, Visit, WorkOrder, WorkOrderUpdate};
    use pipeline::{Envelope, Op, Payload, Reference, Source};

    fn event(id: &str, payload: Payload) -> Envelope {
        Envelope {
            event_id: Envelope::event_id_for("t", id),
            event_type: payload.kind().event_type().into(),
            source: Source {
                system: "repairs".into(),
                instance: "t".into(),
                op: Op::Read,
                position: id.into(),
            },
            source_ref: Reference {
                id: id.into(),
                allocated_by: "repairs".into(),
            },
            occurred_at: None,
            recorded_at: None,
            ingested_at: Utc::now(),
            payload,
            unparsed: Default::default(),
        }
    }

    fn end_of(day: NaiveDate) -> NaiveDateTime {
        day.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn repair(id: &str, priority: i64, reported: &str, completed: Option<&str>) -> Vec<Envelope> {
        let mut events = vec![
            event(
                &format!("RR{id}"),
                Payload::RepairRequest(RepairRequest {
                    property_ref: "P1".into(),
                    reported_at: at(reported),
                    priority: Some(priority),
                    description: None,
                    channel: None,
                }),
            ),
            event(
                &format!("WO{id}"),
                Payload::WorkOrder(WorkOrder {
                    repair_request_ref: Some(format!("RR{id}")),
                    property_ref: "P1".into(),
                    priority,
                    raised_at: at(reported),
                    contractor: None,
                    trade: None,
                    work_class: Some("responsive".into()),
                    parent_ref: None,
                }),
            ),
        ];
        if let Some(completed) = completed {
            events.push(event(
                &format!("WO{id}"),
                Payload::WorkOrderUpdate(WorkOrderUpdate {
                    work_order_ref: format!("WO{id}"),
                    status: "completed".into(),
                    status_at: at(completed),
                    type_code: None,
                    follow_on_ref: None,
                }),
            ));
        }
        events
    }

    fn appointment(id: &str, slot: &str, outcome: Option<&str>) -> Vec<Envelope> {
        let mut events = vec![event(
            id,
            Payload::Appointment(Appointment {
                work_order_ref: "WO1".into(),
                slot_date: slot.parse().unwrap(),
                slot: Some("am".into()),
                window_start: None,
                window_end: None,
                booked_at: None,
                reminder_sent: Some(true),
            }),
        )];
        if let Some(outcome) = outcome {
            events.push(event(
                id,
                Payload::Visit(Visit {
                    appointment_ref: id.into(),
                    work_order_ref: Some("WO1".into()),
                    outcome: outcome.into(),
                    attribution: None,
                    arrived_at: None,
                    contact_attempts: None,
                    card_left: None,
                    photo: None,
                }),
            ));
        }
        events
    }

    #[tokio::test]
    async fn kpis_follow_their_definitions() {
        let analytics = Analytics::new(AnalyticsConfig::default()).await.unwrap();
        let mut events = Vec::new();
        // Emergency: 20 h (within 24 h), 30 h (late). Normal: 10 days (within 28). Open: none.
        events.extend(repair(
            "1",
            2,
            "2025-01-06T08:00:00Z",
            Some("2025-01-07T04:00:00Z"),
        ));
        events.extend(repair(
            "2",
            2,
            "2025-01-06T08:00:00Z",
            Some("2025-01-07T14:00:00Z"),
        ));
        events.extend(repair(
            "3",
            4,
            "2025-01-06T08:00:00Z",
            Some("2025-01-16T08:00:00Z"),
        ));
        events.extend(repair("4", 4, "2025-01-06T08:00:00Z", None));
        // Completed outside the period: not counted.
        events.extend(repair(
            "5",
            4,
            "2025-01-06T08:00:00Z",
            Some("2025-03-01T08:00:00Z"),
        ));
        for (id, outcome) in [
            ("A1", Some("kept_completed")),
            ("A2", Some("kept_not_completed")),
            ("A3", Some("no_access")),
            ("A4", Some("missed")),
            ("A5", Some("cancelled")),
            ("A6", None),
        ] {
            events.extend(appointment(id, "2025-01-10", outcome));
        }
        events.extend(appointment("A7", "2025-02-10", Some("no_access")));
        assert_eq!(analytics.append(&events).unwrap(), events.len());

        let from = "2025-01-01".parse().unwrap();
        let to = "2025-01-31".parse().unwrap();
        let table = analytics.kpis(from, to, end_of(to)).await.unwrap();
        let value = |kpi: &str| table.get(kpi).unwrap_or_else(|| panic!("{kpi}")).value;
        assert_eq!(value("appointments_made"), Some(5.0));
        assert_eq!(
            value("appointments_kept"),
            Some(3.0),
            "no access is kept by the landlord"
        );
        assert_eq!(value("appointments_kept_pct"), Some(60.0));
        assert_eq!(value("no_access_rate_pct"), Some(100.0 / 3.0));
        assert_eq!(value("landlord_missed_rate_pct"), Some(20.0));
        assert_eq!(value("wasted_trips"), Some(1.0));
        assert_eq!(value("wasted_trip_cost_gbp"), Some(25.0));
        assert_eq!(value("landlord_missed_compensation_gbp"), Some(20.0));
        assert_eq!(value("rp02_emergency_pct"), Some(50.0));
        assert_eq!(value("rp02_non_emergency_pct"), Some(100.0));
        // (2 + 2 + 11) days / 3 repairs.
        assert_eq!(value("hmpi90_avg_end_to_end_days"), Some(5.0));
        assert!(table.to_text(true).contains("rp02_emergency_pct"));
    }

    /// RP02 counts repairs to occupied homes (a tenancy in force on the report day); HMPI 90
    /// takes every responsive repair completed, as Housemark does. With no tenancy known at
    /// all, every home counts.
    #[tokio::test]
    async fn rp02_counts_repairs_to_occupied_homes_only() {
        let analytics = Analytics::new(AnalyticsConfig::default()).await.unwrap();
        // Both on P1, reported 6 January; 1 within target, 2 late.
        let mut events = repair("1", 4, "2025-01-06T08:00:00Z", Some("2025-01-08T08:00:00Z"));
        events.extend(repair(
            "2",
            4,
            "2025-01-06T08:00:00Z",
            Some("2025-03-08T08:00:00Z"),
        ));
        analytics.append(&events).unwrap();
        let (from, to) = ("2025-01-01".parse().unwrap(), "2025-03-31".parse().unwrap());
        let figure = |table: &KpiTable, kpi: &str| {
            let row = table.get(kpi).unwrap();
            (row.value, row.denominator)
        };
        let table = analytics.kpis(from, to, end_of(to)).await.unwrap();
        assert_eq!(
            figure(&table, "rp02_non_emergency_pct"),
            (Some(50.0), Some(2.0))
        );
        // P1's tenancy ended on 5 January: both repairs were to a void home.
        let tenancy = |id: &str, end: Option<&str>| {
            event(
                id,
                Payload::Tenancy(pipeline::entity::Tenancy {
                    property_ref: "P1".into(),
                    party_refs: vec![],
                    start_date: Some("2020-01-01".parse().unwrap()),
                    end_date: end.map(|end| end.parse().unwrap()),
                    tenure: None,
                }),
            )
        };
        analytics
            .append(&[tenancy("T1", Some("2025-01-05"))])
            .unwrap();
        let table = analytics.kpis(from, to, end_of(to)).await.unwrap();
        assert_eq!(figure(&table, "rp02_non_emergency_pct"), (None, Some(0.0)));
        assert_eq!(figure(&table, "hmpi90_avg_end_to_end_days").1, Some(2.0));
        // Corrected: the tenancy ends on the report day, which it still covers.
        analytics
            .append(&[tenancy("T1", Some("2025-01-06"))])
            .unwrap();
        let table = analytics.kpis(from, to, end_of(to)).await.unwrap();
        assert_eq!(
            figure(&table, "rp02_non_emergency_pct"),
            (Some(50.0), Some(2.0))
        );
    }

    #[tokio::test]
    async fn empty_tables_give_counts_of_zero_and_no_rates() {
        let analytics = Analytics::new(AnalyticsConfig::default()).await.unwrap();
        let day = "2025-01-01".parse().unwrap();
        let table = analytics.kpis(day, day, end_of(day)).await.unwrap();
        assert_eq!(table.get("appointments_made").unwrap().value, Some(0.0));
        assert_eq!(table.get("appointments_kept_pct").unwrap().value, None);
        assert_eq!(table.get("rp02_emergency_pct").unwrap().value, None);
    }

    fn work_order(id: &str, property: &str, priority: i64, raised: &str, trade: &str) -> Envelope {
        event(
            id,
            Payload::WorkOrder(WorkOrder {
                repair_request_ref: Some(format!("R{id}")),
                property_ref: property.into(),
                priority,
                raised_at: at(raised),
                contractor: None,
                trade: Some(trade.into()),
                work_class: Some("responsive".into()),
                parent_ref: None,
            }),
        )
    }

    fn request(id: &str, reported: &str, priority: i64) -> Envelope {
        event(
            &format!("R{id}"),
            Payload::RepairRequest(RepairRequest {
                property_ref: "P1".into(),
                reported_at: at(reported),
                priority: Some(priority),
                description: None,
                channel: None,
            }),
        )
    }

    fn status(id: &str, status: &str, when: &str) -> Envelope {
        event(
            id,
            Payload::WorkOrderUpdate(WorkOrderUpdate {
                work_order_ref: id.into(),
                status: status.into(),
                status_at: at(when),
                type_code: None,
                follow_on_ref: None,
            }),
        )
    }

    /// An appointment on `day` (08:00-12:00) with an outcome; the arrival at 09:00.
    fn visit(id: &str, order: &str, day: &str, outcome: &str, evidence: bool) -> Vec<Envelope> {
        let date: NaiveDate = day.parse().unwrap();
        let window = |hour: u32| date.and_hms_opt(hour, 0, 0).unwrap().and_utc();
        vec![
            event(
                id,
                Payload::Appointment(Appointment {
                    work_order_ref: order.into(),
                    slot_date: date,
                    slot: Some("am".into()),
                    window_start: Some(window(8)),
                    window_end: Some(window(12)),
                    booked_at: None,
                    reminder_sent: None,
                }),
            ),
            event(
                id,
                Payload::Visit(Visit {
                    appointment_ref: id.into(),
                    work_order_ref: Some(order.into()),
                    outcome: outcome.into(),
                    attribution: None,
                    arrived_at: evidence.then(|| window(9)),
                    contact_attempts: evidence.then_some(2),
                    card_left: Some(evidence),
                    photo: None,
                }),
            ),
        ]
    }

    #[tokio::test]
    async fn awaabs_law_steps_count_working_days_and_wait_for_deadlines() {
        let analytics = Analytics::new(AnalyticsConfig::default()).await.unwrap();
        let mut events = Vec::new();
        // Emergency hazards (priority 1): made safe in 20 h; not done 30 h on; not done and
        // still within its 24 h at as_of (not judged).
        for (id, reported, completed) in [
            ("E1", "2025-04-01T08:00:00Z", Some("2025-04-02T04:00:00Z")),
            ("E2", "2025-04-01T08:00:00Z", None),
            ("E3", "2025-05-19T20:00:00Z", None),
        ] {
            events.push(request(id, reported, 1));
            events.push(work_order(id, "P1", 1, reported, "plumbing"));
            if let Some(completed) = completed {
                events.push(status(id, "completed", completed));
            }
        }
        // Significant hazards, reported Thursday 17 April 2025: the 10th working day after
        // is 6 May (Good Friday, Easter Monday and the early May bank holiday skipped).
        // S1: investigated 2 May, works done 9 May (due 12 May): both in time.
        // S2: investigated 7 May: late; its works are not done and due 14 May: late at as_of.
        for id in ["S1", "S2"] {
            events.push(request(id, "2025-04-17T10:00:00Z", 4));
            events.push(work_order(
                id,
                "P1",
                4,
                "2025-04-17T10:00:00Z",
                "damp and mould",
            ));
        }
        events.extend(visit("AS1", "S1", "2025-05-02", "kept_not_completed", true));
        events.push(status("S1", "completed", "2025-05-09T15:00:00Z"));
        events.extend(visit("AS2", "S2", "2025-05-07", "kept_not_completed", true));
        analytics.append(&events).unwrap();
        let from = "2025-04-01".parse().unwrap();
        let to = "2025-05-31".parse().unwrap();
        let as_of = "2025-05-20T10:00:00".parse().unwrap();
        let table = analytics.kpis(from, to, as_of).await.unwrap();
        let row = |kpi: &str| {
            let row = table.get(kpi).unwrap();
            (row.value, row.numerator, row.denominator)
        };
        assert_eq!(
            row("awaab_emergency_made_safe_24h_pct"),
            (Some(50.0), Some(1.0), Some(2.0))
        );
        assert_eq!(
            row("awaab_significant_investigated_pct"),
            (Some(50.0), Some(1.0), Some(2.0))
        );
        assert_eq!(
            row("awaab_significant_safety_works_pct"),
            (Some(50.0), Some(1.0), Some(2.0))
        );
    }

    #[tokio::test]
    async fn each_exception_rule_names_its_record() {
        let analytics = Analytics::new(AnalyticsConfig::default()).await.unwrap();
        let mut events = Vec::new();
        // Completed with no attended visit (only a no-access, with evidence).
        events.push(request("W1", "2025-01-06T08:00:00Z", 4));
        events.push(work_order("W1", "P1", 4, "2025-01-06T09:00:00Z", "general"));
        events.extend(visit("A1", "W1", "2025-01-08", "no_access", true));
        events.push(status("W1", "completed", "2025-01-09T10:00:00Z"));
        // Reported after it was raised.
        events.push(request("W2", "2025-01-07T10:00:00Z", 4));
        events.push(work_order("W2", "P2", 4, "2025-01-07T09:00:00Z", "general"));
        // Priority lowered from 2 (due 24 h after the report) two days later.
        events.push(request("W3", "2025-01-06T08:00:00Z", 2));
        events.push(work_order("W3", "P3", 2, "2025-01-06T08:00:00Z", "general"));
        let mut lowered = work_order("W3", "P3", 4, "2025-01-06T08:00:00Z", "general");
        lowered.occurred_at = Some(at("2025-01-08T08:00:00Z"));
        events.push(lowered);
        // Cancelled, and raised again on the same property three days later.
        events.push(request("W4", "2025-01-06T08:00:00Z", 4));
        events.push(work_order("W4", "P4", 4, "2025-01-06T08:00:00Z", "general"));
        events.push(status("W4", "cancelled", "2025-01-07T08:00:00Z"));
        events.push(request("W5", "2025-01-10T07:00:00Z", 4));
        events.push(work_order("W5", "P4", 4, "2025-01-10T08:00:00Z", "general"));
        // An appointment with no outcome, its slot long past.
        events.push(event(
            "A6",
            Payload::Appointment(Appointment {
                work_order_ref: "W5".into(),
                slot_date: "2025-01-13".parse().unwrap(),
                slot: Some("pm".into()),
                window_start: None,
                window_end: None,
                booked_at: None,
                reminder_sent: None,
            }),
        ));
        // A no-access without evidence.
        events.extend(visit("A7", "W5", "2025-01-14", "no_access", false));
        // A responsive repair on a home whose tenancy ended before.
        events.push(event(
            "TN1",
            Payload::Tenancy(pipeline::entity::Tenancy {
                property_ref: "PV".into(),
                party_refs: vec![],
                start_date: Some("2020-01-01".parse().unwrap()),
                end_date: Some("2024-12-31".parse().unwrap()),
                tenure: None,
            }),
        ));
        events.push(request("W8", "2025-01-15T08:00:00Z", 4));
        events.push(work_order("W8", "PV", 4, "2025-01-15T08:00:00Z", "general"));
        // The other homes are let.
        for home in ["P1", "P2", "P3", "P4"] {
            events.push(event(
                &format!("T{home}"),
                Payload::Tenancy(pipeline::entity::Tenancy {
                    property_ref: home.into(),
                    party_refs: vec![],
                    start_date: Some("2020-01-01".parse().unwrap()),
                    end_date: None,
                    tenure: None,
                }),
            ));
        }
        // A vulnerability held after its end date.
        events.push(event(
            "V1",
            Payload::Vulnerability(pipeline::entity::Vulnerability {
                person_ref: "T1".into(),
                code: "30".into(),
                end_date: Some("2025-01-01".parse().unwrap()),
                ..Default::default()
            }),
        ));
        analytics.append(&events).unwrap();
        let found = analytics
            .exceptions("2025-01-20T00:00:00".parse().unwrap())
            .await
            .unwrap();
        let pairs: Vec<(&str, &str)> = found
            .iter()
            .map(|row| (row.rule.as_str(), row.record.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("cancel_and_reraise_within_7_days", "work_order:W4"),
                ("completed_without_attended_visit", "work_order:W1"),
                ("no_access_without_evidence", "appointment:A7"),
                ("outcome_missing_24h_after_slot", "appointment:A6"),
                ("priority_lowered_after_target", "work_order:W3"),
                ("reported_at_missing_or_after_raised_at", "work_order:W2"),
                ("responsive_repair_on_void_property", "work_order:W8"),
                ("vulnerability_past_end_date", "vulnerability:repairs:V1"),
            ]
        );
        assert!(
            !found.iter().any(|row| row.detail.contains("30")),
            "no vulnerability code"
        );
        // An erasure takes the record out of the analytics, history and latest version.
        assert_eq!(
            analytics
                .forget_vulnerabilities(&[pipeline::Reference {
                    allocated_by: "repairs".into(),
                    id: "V1".into(),
                }])
                .unwrap(),
            1
        );
        let after = analytics
            .exceptions("2025-01-20T00:00:00".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(after.len(), found.len() - 1);
        assert!(!after.iter().any(|row| row.record.contains("V1")));
        let rows = analytics
            .query("SELECT COUNT(*) FROM vulnerabilities")
            .await
            .unwrap();
        assert_eq!(rows[0].column(0).as_primitive::<Int64Type>().value(0), 0);
    }

    /// Asserts that every table goldthread keeps (the `latest_` tables, `appointment_days`)
    /// holds exactly what its view in `sql/views/current.sql` computes from the history.
    async fn assert_kept_tables_equal_their_definitions(analytics: &Analytics, context: &str) {
        for statement in VIEWS.split(';').filter(|s| crate::tables::is_kept(s)) {
            let name = statement
                .split("CREATE VIEW ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            let definition = statement.split_once(" AS\n").unwrap().1;
            let count = |sql: String| async move {
                let batches = analytics.query(&sql).await.unwrap();
                batches[0].column(0).as_primitive::<Int64Type>().value(0)
            };
            let kept = format!("SELECT * FROM {name}");
            for (left, right) in [(kept.as_str(), definition), (definition, kept.as_str())] {
                assert_eq!(
                    count(format!("SELECT COUNT(*) FROM (({left}) EXCEPT ({right}))")).await,
                    0,
                    "{name} {context}: rows of\n{left}\nnot in\n{right}"
                );
            }
            assert_eq!(
                count(format!("SELECT COUNT(*) FROM {name}")).await,
                count(format!("SELECT COUNT(*) FROM ({definition})")).await,
                "{name} {context}"
            );
        }
    }

    /// The tables kept as events arrive hold exactly what their views in
    /// `sql/views/current.sql` compute from the history (which other engines run).
    #[tokio::test]
    async fn the_latest_tables_equal_their_view_definitions() {
        let analytics = Analytics::new(AnalyticsConfig::default()).await.unwrap();
        let mut events = repair("1", 2, "2025-01-06T08:00:00Z", Some("2025-01-07T04:00:00Z"));
        events.extend(appointment("A1", "2025-01-10", Some("no_access")));
        analytics.append(&events).unwrap();
        // New versions, in a later batch and twice within one batch.
        let mut again = repair("1", 4, "2025-01-06T09:00:00Z", None);
        again.extend(appointment("A1", "2025-01-11", Some("kept_completed")));
        again.extend(appointment("A1", "2025-01-12", Some("missed")));
        again.extend(appointment("A2", "2025-01-12", None));
        analytics.append(&again).unwrap();
        assert_kept_tables_equal_their_definitions(&analytics, "").await;
        let outcomes = analytics
            .query("SELECT outcome, slot_date FROM appointment_outcomes WHERE ref = 'A1'")
            .await
            .unwrap();
        assert_eq!(outcomes[0].num_rows(), 1);
        assert_eq!(
            outcomes[0].column(0).as_string::<i32>().value(0),
            "missed",
            "the latest version wins"
        );
    }

    /// The kept tables (`appointment_days`, `repair_days`, `order_days`) follow their
    /// definitions whatever arrives in whatever order: appointments moving between work
    /// orders, visits before their appointments, work orders changing contractor, trade,
    /// property, request, priority and class, requests changing priority and report time,
    /// completions and cancellations, properties changing postcode, tenancies starting,
    /// ending and moving home (occupancy), several versions in one batch.
    #[tokio::test]
    async fn kept_tables_follow_their_definitions_through_random_changes() {
        use pipeline::entity::Property;
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut config = AnalyticsConfig::default();
        config.awaab.emergency_priorities = vec![1, 2];
        // Listed twice: a hazard is still counted once.
        config.awaab.significant_hazard_trades = vec!["roofing".into(), "roofing".into()];
        let analytics = Analytics::new(config).await.unwrap();
        let pick = |rng: &mut rand_chacha::ChaCha8Rng, options: &[&str]| -> Option<String> {
            let index = rng.random_range(0..=options.len());
            options.get(index).map(|option| option.to_string())
        };
        let mut filled = std::collections::BTreeSet::new();
        for round in 0..16 {
            // Properties named before any work order, and never again.
            let mut batch: Vec<Envelope> = ["Q0", "Q1"]
                .iter()
                .filter(|_| round == 0)
                .map(|property| {
                    event(
                        property,
                        Payload::Property(Property {
                            postcode: Some(format!("{property} 1AA")),
                            ..Default::default()
                        }),
                    )
                })
                .collect();
            // Large batches, and small ones in which a single change has to reach every row.
            let size = if round % 2 == 0 { 1..80 } else { 1..3 };
            for _ in 0..rng.random_range(size) {
                let day = NaiveDate::from_ymd_opt(2025, 1, rng.random_range(1..6)).unwrap();
                let hour = |rng: &mut rand_chacha::ChaCha8Rng, hours: std::ops::Range<u32>| {
                    rng.random_bool(0.8).then(|| {
                        day.and_hms_opt(rng.random_range(hours), 0, 0)
                            .unwrap()
                            .and_utc()
                    })
                };
                let appointment = format!("A{}", rng.random_range(0..20));
                // Reports, raisings and completions over three days, at any hour.
                let instant = |rng: &mut rand_chacha::ChaCha8Rng| {
                    at("2024-12-31T00:00:00Z")
                        + chrono::Duration::minutes(rng.random_range(0..3 * 24 * 60))
                };
                let order = format!("WO{}", rng.random_range(0..8));
                let property = format!("P{}", rng.random_range(0..4));
                let named = ["P0", "P1", "Q0", "Q1"][rng.random_range(0..4)].to_string();
                // Some batches hold properties only; tenancies come from the fifth round on
                // (before, no home can be told occupied).
                let kinds = if round % 3 == 0 {
                    3..4
                } else if round < 4 {
                    0..6
                } else {
                    0..7
                };
                batch.push(match rng.random_range(kinds) {
                    0 => event(
                        &appointment,
                        Payload::Appointment(Appointment {
                            work_order_ref: order,
                            slot_date: day,
                            slot: pick(&mut rng, &["am", "pm"]),
                            window_start: hour(&mut rng, 8..12),
                            window_end: hour(&mut rng, 12..18),
                            booked_at: None,
                            reminder_sent: rng.random_bool(0.7).then(|| rng.random_bool(0.5)),
                        }),
                    ),
                    1 => event(
                        &appointment,
                        Payload::Visit(Visit {
                            appointment_ref: appointment.clone(),
                            work_order_ref: None,
                            outcome: pick(
                                &mut rng,
                                &["no_access", "kept_completed", "missed", "cancelled"],
                            )
                            .unwrap_or_else(|| "aborted".into()),
                            attribution: pick(&mut rng, &["resident", "landlord"]),
                            // Some arrivals are on another day than the slot.
                            arrived_at: hour(&mut rng, 7..19).map(|arrived| {
                                arrived + chrono::Duration::days(rng.random_range(-1..=1))
                            }),
                            contact_attempts: rng.random_bool(0.8).then(|| rng.random_range(0..3)),
                            card_left: rng.random_bool(0.7).then(|| rng.random_bool(0.5)),
                            photo: None,
                        }),
                    ),
                    2 => event(
                        &order,
                        Payload::WorkOrder(WorkOrder {
                            repair_request_ref: pick(&mut rng, &["R0", "R1", "R2"]),
                            property_ref: named,
                            priority: rng.random_range(1..5),
                            raised_at: instant(&mut rng),
                            contractor: pick(&mut rng, &["North", "Aire"]),
                            trade: pick(&mut rng, &["gas", "roofing"]),
                            work_class: pick(&mut rng, &["responsive", "void"]),
                            parent_ref: None,
                        }),
                    ),
                    3 if round % 3 != 0 => event(
                        &format!("R{}", rng.random_range(0..3)),
                        Payload::RepairRequest(RepairRequest {
                            property_ref: named,
                            reported_at: instant(&mut rng),
                            priority: rng.random_bool(0.8).then(|| rng.random_range(1..5)),
                            description: None,
                            channel: None,
                        }),
                    ),
                    4 => event(
                        &order,
                        Payload::WorkOrderUpdate(WorkOrderUpdate {
                            work_order_ref: order.clone(),
                            // Cancellations are for good: few, so most orders can complete.
                            status: if rng.random_bool(0.03) {
                                "cancelled".into()
                            } else if rng.random_bool(0.8) {
                                "completed".into()
                            } else {
                                "in_progress".into()
                            },
                            status_at: instant(&mut rng),
                            type_code: None,
                            follow_on_ref: None,
                        }),
                    ),
                    6 => {
                        let day = |rng: &mut rand_chacha::ChaCha8Rng| {
                            rng.random_bool(0.7).then(|| {
                                NaiveDate::from_ymd_opt(2024, 12, 30).unwrap()
                                    + chrono::Duration::days(rng.random_range(0..5))
                            })
                        };
                        event(
                            &format!("T{}", rng.random_range(0..4)),
                            Payload::Tenancy(pipeline::entity::Tenancy {
                                property_ref: named,
                                party_refs: vec![],
                                start_date: day(&mut rng),
                                end_date: day(&mut rng),
                                tenure: None,
                            }),
                        )
                    }
                    _ => event(
                        &property,
                        Payload::Property(Property {
                            postcode: pick(&mut rng, &["LS1 4AB", "LS2 7XY", "BD1"]),
                            ..Default::default()
                        }),
                    ),
                });
            }
            analytics.append(&batch).unwrap();
            assert_kept_tables_equal_their_definitions(&analytics, &format!("after batch {round}"))
                .await;
            for (table, column) in [
                ("appointment_days", "rebooked"),
                ("repair_days", "repairs"),
                ("order_days", "orders"),
                ("hazard_days", "repairs"),
            ] {
                let rows = analytics
                    .query(&format!("SELECT COALESCE(SUM({column}), 0) FROM {table}"))
                    .await
                    .unwrap();
                if rows[0].column(0).as_primitive::<Int64Type>().value(0) > 0 {
                    filled.insert(table);
                }
            }
        }
        for (table, column) in [
            ("appointment_days", "rebooked"),
            ("repair_days", "repairs"),
            ("order_days", "orders"),
            ("hazard_days", "repairs"),
        ] {
            assert!(
                filled.contains(&table),
                "the scenario fills {table}.{column}"
            );
        }
    }

    #[tokio::test]
    async fn golden_tables_are_replaced() {
        let analytics = Analytics::new(AnalyticsConfig::default()).await.unwrap();
        let rows = vec![crate::GoldenPropertyRow {
            golden_id: "GH-1",
            uprn: Some("1"),
            sources: 2,
            ..Default::default()
        }];
        analytics.replace_golden_properties(&rows).unwrap();
        analytics.replace_golden_properties(&rows).unwrap();
        let batches = analytics
            .query("SELECT COUNT(*) AS n, MAX(uprn) AS uprn, MAX(n_sources) AS n_sources FROM golden_properties")
            .await
            .unwrap();
        assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 1);
        assert_eq!(batches[0].column(1).as_string::<i32>().value(0), "1");
        assert_eq!(batches[0].column(2).as_primitive::<Int64Type>().value(0), 2);
        // Persons keep the postcode's district only.
        let persons = [crate::GoldenPersonRow {
            golden_id: "GP-1",
            postcode: Some("LS6 2AB"),
            sources: 1,
        }];
        analytics.replace_golden_persons(&persons).unwrap();
        let batches = analytics
            .query("SELECT postcode_district FROM golden_persons")
            .await
            .unwrap();
        assert_eq!(batches[0].column(0).as_string::<i32>().value(0), "LS6");
    }
}
