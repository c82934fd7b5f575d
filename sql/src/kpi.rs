//! The KPI suite: each `sql/kpi/*.sql` file (its header states the definition and source)
//! run for a date range, collected into one table of (kpi, value, numerator, denominator).

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use serde::Serialize;

use crate::error::Error;
use crate::tables::Analytics;

/// The suite, in display order: (file name, SQL text).
pub const KPI_FILES: &[(&str, &str)] = &[
    ("appointments.sql", include_str!("../kpi/appointments.sql")),
    ("wastage.sql", include_str!("../kpi/wastage.sql")),
    ("rp02.sql", include_str!("../kpi/rp02.sql")),
    ("hmpi90.sql", include_str!("../kpi/hmpi90.sql")),
];

/// One KPI value. `value` is `None` when the denominator is zero.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiRow {
    pub kpi: String,
    pub value: Option<f64>,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
    /// The `.sql` file that defines it.
    pub definition: &'static str,
}

/// The suite's result for one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiTable {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub rows: Vec<KpiRow>,
}

impl KpiTable {
    pub fn get(&self, kpi: &str) -> Option<&KpiRow> {
        self.rows.iter().find(|row| row.kpi == kpi)
    }

    /// A fixed-width text table for terminals.
    pub fn to_text(&self) -> String {
        let number = |value: Option<f64>| match value {
            None => "-".to_string(),
            Some(value) if value.fract() == 0.0 && value.abs() < 1e15 => format!("{value:.0}"),
            Some(value) => format!("{value:.2}"),
        };
        let mut lines = vec![
            format!("KPIs {} to {}", self.from, self.to),
            format!(
                "{:<34} {:>12} {:>12} {:>12}",
                "kpi", "value", "numerator", "denominator"
            ),
        ];
        for row in &self.rows {
            lines.push(format!(
                "{:<34} {:>12} {:>12} {:>12}",
                row.kpi,
                number(row.value),
                number(row.numerator),
                number(row.denominator)
            ));
        }
        lines.join("\n")
    }
}

/// Fills a KPI file's placeholders with typed values (dates and numbers only, so no injection).
fn bind(sql: &str, from: NaiveDate, to: NaiveDate, analytics: &Analytics) -> String {
    sql.replace("$from", &format!("DATE '{from}'"))
        .replace("$to", &format!("DATE '{to}'"))
        .replace(
            "$no_access_cost",
            &format!("{:?}", analytics.config.no_access_cost_gbp),
        )
        .replace(
            "$landlord_missed_compensation",
            &format!("{:?}", analytics.config.landlord_missed_compensation_gbp),
        )
}

impl Analytics {
    /// Runs the KPI suite for slots / completions between `from` and `to` inclusive.
    pub async fn kpis(&self, from: NaiveDate, to: NaiveDate) -> Result<KpiTable, Error> {
        let started = std::time::Instant::now();
        let mut rows = Vec::new();
        for (file, sql) in KPI_FILES {
            let query = bind(sql, from, to, self);
            let result = async { self.context.sql(&query).await?.collect().await }
                .await
                .map_err(|source| Error::Kpi { file, source })?;
            let mut file_rows = Vec::new();
            for batch in result {
                let ordinal = batch.column(0).as_primitive::<Int64Type>().clone();
                let names = batch.column(1).as_string::<i32>().clone();
                let float =
                    |index: usize| batch.column(index).as_primitive::<Float64Type>().clone();
                let (values, numerators, denominators) = (float(2), float(3), float(4));
                let get = |array: &datafusion::arrow::array::Float64Array, index: usize| {
                    (!array.is_null(index)).then(|| array.value(index))
                };
                for index in 0..batch.num_rows() {
                    file_rows.push((
                        ordinal.value(index),
                        KpiRow {
                            kpi: names.value(index).to_string(),
                            value: get(&values, index),
                            numerator: get(&numerators, index),
                            denominator: get(&denominators, index),
                            definition: file,
                        },
                    ));
                }
            }
            file_rows.sort_by_key(|(ordinal, _)| *ordinal);
            rows.extend(file_rows.into_iter().map(|(_, row)| row));
        }
        metrics::histogram!(pipeline::metrics::SQL_KPI_SECONDS)
            .record(started.elapsed().as_secs_f64());
        Ok(KpiTable { from, to, rows })
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
        }
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
        let analytics = Analytics::new(AnalyticsConfig::default()).unwrap();
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
        let table = analytics.kpis(from, to).await.unwrap();
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
        assert_eq!(value("no_access_wastage_gbp"), Some(25.0));
        assert_eq!(value("landlord_missed_compensation_gbp"), Some(20.0));
        assert_eq!(value("rp02_emergency_pct"), Some(50.0));
        assert_eq!(value("rp02_non_emergency_pct"), Some(100.0));
        // (2 + 2 + 11) days / 3 repairs.
        assert_eq!(value("hmpi90_avg_end_to_end_days"), Some(5.0));
        assert!(table.to_text().contains("rp02_emergency_pct"));
    }

    #[tokio::test]
    async fn empty_tables_give_counts_of_zero_and_no_rates() {
        let analytics = Analytics::new(AnalyticsConfig::default()).unwrap();
        let day = "2025-01-01".parse().unwrap();
        let table = analytics.kpis(day, day).await.unwrap();
        assert_eq!(table.get("appointments_made").unwrap().value, Some(0.0));
        assert_eq!(table.get("appointments_kept_pct").unwrap().value, None);
        assert_eq!(table.get("rp02_emergency_pct").unwrap().value, None);
    }

    #[tokio::test]
    async fn golden_tables_are_replaced() {
        let analytics = Analytics::new(AnalyticsConfig::default()).unwrap();
        let rows = vec![serde_json::json!({"golden_id": "GH-1", "uprn": "1", "n_sources": 2})];
        analytics
            .replace_golden("golden_properties", &rows)
            .unwrap();
        analytics
            .replace_golden("golden_properties", &rows)
            .unwrap();
        let batches = analytics
            .query("SELECT COUNT(*) AS n FROM golden_properties")
            .await
            .unwrap();
        assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 1);
        assert!(analytics.replace_golden("repair_requests", &rows).is_err());
    }
}
