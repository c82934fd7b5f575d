//! End-to-end tests of `goldthread run --once` on a generated landlord, checked against the
//! generator's ground truth (which the product never reads).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use common::*;

const FROM: &str = "2024-04-01";
const TO: &str = "2025-03-31";

#[test]
fn generate_is_byte_identical_and_truth_covers_every_source_record() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(a.path(), 200, 1);
    generate(b.path(), 200, 1);
    let files = walk(a.path());
    assert_eq!(
        files
            .iter()
            .map(|f| f.strip_prefix(a.path()).unwrap().to_path_buf())
            .collect::<Vec<_>>(),
        walk(b.path())
            .iter()
            .map(|f| f.strip_prefix(b.path()).unwrap().to_path_buf())
            .collect::<Vec<_>>()
    );
    for file in &files {
        let twin = b.path().join(file.strip_prefix(a.path()).unwrap());
        assert!(
            std::fs::read(file).unwrap() == std::fs::read(&twin).unwrap(),
            "{} differs",
            file.display()
        );
    }
    let root = a.path();
    let truth_ids = |file: &str, column: &str| -> BTreeSet<(String, String)> {
        read_csv(&root.join(file))
            .into_iter()
            .map(|row| {
                (
                    row.get("source").cloned().unwrap_or_default(),
                    row[column].clone(),
                )
            })
            .collect()
    };
    let source_ids = |file: &str, column: &str, source: &str| -> BTreeSet<(String, String)> {
        read_csv(&root.join(file))
            .into_iter()
            .map(|row| (source.to_string(), row[column].clone()))
            .collect()
    };
    let persons = truth_ids("truth/persons.csv", "source_id");
    let mut expected = source_ids("hms/tenants.csv", "person_ref", "hms");
    expected.extend(source_ids("crm/contacts.csv", "contact_id", "crm"));
    assert_eq!(
        persons, expected,
        "truth/persons.csv covers every person record"
    );
    let properties = truth_ids("truth/properties.csv", "source_id");
    let mut expected = source_ids("hms/properties.csv", "prop_ref", "hms");
    expected.extend(source_ids("asset/assets.csv", "asset_id", "asset"));
    assert_eq!(
        properties, expected,
        "truth/properties.csv covers every property record"
    );
    let feed = std::fs::read_to_string(root.join("repairs/messages.jsonl")).unwrap();
    let mut orders = BTreeSet::new();
    let mut appointments = BTreeSet::new();
    for line in feed.lines() {
        let message: serde_json::Value = serde_json::from_str(line).unwrap();
        match message["messageType"].as_str().unwrap() {
            "ScheduleRepair" => {
                orders.insert(message["workOrderRef"].as_str().unwrap().to_string())
            }
            "RefinedAppointmentWindow" => {
                appointments.insert(message["appointmentRef"].as_str().unwrap().to_string())
            }
            _ => false,
        };
    }
    let truth_orders: BTreeSet<String> = read_csv(&root.join("truth/work_orders.csv"))
        .into_iter()
        .map(|r| r["work_order_ref"].clone())
        .collect();
    let truth_appointments: BTreeSet<String> = read_csv(&root.join("truth/appointments.csv"))
        .into_iter()
        .map(|r| r["appointment_ref"].clone())
        .collect();
    assert_eq!(orders, truth_orders);
    assert!(appointments.is_subset(&truth_appointments));
    assert_eq!(
        appointments.len(),
        read_csv(&root.join("truth/appointments.csv"))
            .iter()
            .filter(|r| r["booked_at"].as_str() < "2025-04-01")
            .count()
    );
}

/// A weekday that is not an England and Wales bank holiday.
fn working(day: NaiveDate) -> bool {
    use chrono::Datelike;
    day.weekday().num_days_from_monday() < 5 && !BANK_HOLIDAYS.contains(&day.to_string().as_str())
}

fn midnight_after(day: NaiveDate) -> DateTime<Utc> {
    day.succ_opt()
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

/// The default target of a priority from a clock start (24 hours; 5 working days; 28 days).
fn due(priority: i64, start: DateTime<Utc>) -> DateTime<Utc> {
    match priority {
        1 | 2 => start + chrono::Duration::hours(24),
        3 => {
            let (mut day, mut left) = (start.date_naive(), 5);
            while left > 0 {
                day = day.succ_opt().unwrap();
                if working(day) {
                    left -= 1;
                }
            }
            midnight_after(day)
        }
        _ => midnight_after(start.date_naive() + chrono::Duration::days(28)),
    }
}

/// The exception rules' records (rule, record) recomputed from the ground truth, judged at
/// the extract (`end`): the rules whose cases the generator writes.
fn truth_exceptions(root: &std::path::Path, end: NaiveDate) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let mut flag = |rule: &str, record: String| {
        found.insert((rule.to_string(), record));
    };
    let orders = read_csv(&root.join("truth/work_orders.csv"));
    for order in &orders {
        let record = format!("work_order:{}", order["work_order_ref"]);
        if order["work_class"] == "responsive" && order["occupied"] == "false" {
            flag("responsive_repair_on_void_property", record.clone());
        }
        if order["repair_request_ref"].is_empty() && order["parent_ref"].is_empty() {
            flag("reported_at_missing_or_after_raised_at", record.clone());
        }
        // A less urgent priority (a higher code) recorded after the first version's target,
        // counted from when the order was raised.
        let (first, current): (i64, i64) = (
            order["priority"].parse().unwrap(),
            order["current_priority"].parse().unwrap(),
        );
        if current > first
            && let Ok(changed) = order["priority_changed_at"].parse::<DateTime<Utc>>()
            && changed > due(first, order["raised_at"].parse().unwrap())
        {
            flag("priority_lowered_after_target", record.clone());
        }
        // Cancelled, and another order raised at the home within 7 days after.
        if let Ok(cancelled) = order["cancelled_at"].parse::<DateTime<Utc>>() {
            let reraised = orders.iter().any(|other| {
                let raised: DateTime<Utc> = other["raised_at"].parse().unwrap();
                other["property_id"] == order["property_id"]
                    && other["work_order_ref"] != order["work_order_ref"]
                    && raised > cancelled
                    && raised - cancelled <= chrono::Duration::days(7)
            });
            if reraised {
                flag("cancel_and_reraise_within_7_days", record.clone());
            }
        }
    }
    for appointment in read_csv(&root.join("truth/appointments.csv")) {
        let booked: DateTime<Utc> = appointment["booked_at"].parse().unwrap();
        if booked.date_naive() < end
            && appointment["outcome"] == "no_access"
            && appointment["verified"] != "true"
        {
            flag(
                "no_access_without_evidence",
                format!("appointment:{}", appointment["appointment_ref"]),
            );
        }
    }
    for vulnerability in read_csv(&root.join("hms/vulnerabilities.csv")) {
        let ended = NaiveDate::parse_from_str(&vulnerability["end_date"], "%d/%m/%Y");
        if ended.is_ok_and(|ended| ended < end) {
            flag(
                "vulnerability_past_end_date",
                format!("vulnerability:hms:{}", vulnerability["alert_id"]),
            );
        }
    }
    found
}

/// KPIs recomputed from the ground truth alone, by the definitions in sql/kpi/*.sql and the
/// default [analytics] settings: (kpi, key) -> value, numerator, denominator.
type Truth = BTreeMap<(String, Option<String>), (Option<f64>, f64, f64)>;

/// England and Wales bank holidays, as published on gov.uk, for the generated years.
const BANK_HOLIDAYS: &[&str] = &[
    "2024-01-01",
    "2024-03-29",
    "2024-04-01",
    "2024-05-06",
    "2024-05-27",
    "2024-08-26",
    "2024-12-25",
    "2024-12-26",
    "2025-01-01",
    "2025-04-18",
    "2025-04-21",
    "2025-05-05",
    "2025-05-26",
    "2025-08-25",
    "2025-12-25",
    "2025-12-26",
];

fn truth_kpis(root: &std::path::Path, from: NaiveDate, to: NaiveDate, end: NaiveDate) -> Truth {
    use chrono::Datelike;
    let mut truth = Truth::new();
    let ratio = |numerator: f64, denominator: f64| {
        (denominator > 0.0).then(|| 100.0 * numerator / denominator)
    };
    let orders: BTreeMap<String, BTreeMap<String, String>> =
        read_csv(&root.join("truth/work_orders.csv"))
            .into_iter()
            .map(|row| (row["work_order_ref"].clone(), row))
            .collect();
    // Appointments per work order, in booking order (the generator writes attempts in order);
    // only those whose booking reached the feed before the extract.
    let mut by_order: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for row in read_csv(&root.join("truth/appointments.csv")) {
        let booked: DateTime<Utc> = row["booked_at"].parse().unwrap();
        if booked.date_naive() < end {
            by_order
                .entry(row["work_order_ref"].clone())
                .or_default()
                .push(row);
        }
    }
    let attended = |outcome: &str| {
        matches!(
            outcome,
            "kept_completed" | "kept_not_completed" | "aborted" | "no_access"
        )
    };
    let (mut made, mut kept, mut no_access, mut unverified, mut missed) = (0.0, 0.0, 0.0, 0.0, 0.0);
    // Trips an operative made and could not work: no access, and visits aborted on site.
    let mut aborted = 0.0;
    let mut reminded = [(0.0, 0.0), (0.0, 0.0)]; // [not reminded, reminded]: (no access, attended)
    let (mut rebooked, mut delay) = (0.0, 0.0);
    let mut contractor_cost: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    let mut heat: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    // Wastage by cause, attribution (failed appointments: cost, failed, failed) and by trade
    // (cost, failed, made).
    let mut groups: BTreeMap<(&str, String), (f64, f64, f64)> = BTreeMap::new();
    for (order, appointments) in &by_order {
        let contractor = orders
            .get(order)
            .map_or("unknown".to_string(), |o| o["contractor"].clone());
        let trade = orders
            .get(order)
            .map_or("unknown".to_string(), |o| o["trade"].clone());
        for (index, row) in appointments.iter().enumerate() {
            let slot: NaiveDate = row["slot_date"].parse().unwrap();
            if slot < from || slot > to {
                continue;
            }
            let outcome = row["outcome"].as_str();
            let next = appointments.get(index + 1);
            let failed = matches!(outcome, "no_access" | "missed" | "cancelled" | "aborted");
            let mut cost = 0.0;
            if failed && let Some(next) = next {
                rebooked += 1.0;
                cost += 8.0;
                let next_slot: NaiveDate = next["slot_date"].parse().unwrap();
                delay += (next_slot - slot).num_days() as f64;
            }
            let entry = contractor_cost.entry(contractor.clone()).or_default();
            if outcome != "cancelled" {
                made += 1.0;
                entry.2 += 1.0;
            }
            if failed {
                entry.1 += 1.0;
            }
            match outcome {
                "no_access" => {
                    no_access += 1.0;
                    cost += 25.0;
                    if row["verified"] != "true" {
                        unverified += 1.0;
                    }
                }
                "missed" => {
                    missed += 1.0;
                    cost += 20.0;
                }
                "aborted" => {
                    aborted += 1.0;
                    cost += 25.0;
                }
                _ => {}
            }
            entry.0 += cost;
            let by_trade = groups
                .entry(("wastage_gbp_by_trade", trade.clone()))
                .or_default();
            by_trade.0 += cost;
            by_trade.1 += f64::from(u8::from(failed));
            by_trade.2 += f64::from(u8::from(outcome != "cancelled"));
            if failed {
                let attribution = row["attribution"].clone();
                let cause = match outcome {
                    "no_access" if row["verified"] == "true" => "no_access_verified".to_string(),
                    "no_access" => "no_access_unverified".to_string(),
                    "aborted" => "aborted_on_site".to_string(),
                    _ => format!("{outcome}_by_{attribution}"),
                };
                for key in [
                    ("wastage_gbp_by_cause", cause),
                    ("wastage_gbp_by_attribution", attribution),
                ] {
                    let group = groups.entry(key).or_default();
                    group.0 += cost;
                    group.1 += 1.0;
                    group.2 += 1.0;
                }
            }
            if attended(outcome) {
                kept += 1.0;
                let bucket = &mut reminded[usize::from(row["reminder_sent"] == "true")];
                bucket.1 += 1.0;
                let weekday = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
                    [slot.weekday().num_days_from_monday() as usize];
                let cell = heat
                    .entry(format!("{weekday} {}", row["slot"]))
                    .or_default();
                cell.1 += 1.0;
                if outcome == "no_access" {
                    bucket.0 += 1.0;
                    cell.0 += 1.0;
                }
            }
        }
    }
    let mut put =
        |kpi: &str, key: Option<String>, value: Option<f64>, numerator: f64, denominator: f64| {
            truth.insert((kpi.to_string(), key), (value, numerator, denominator));
        };
    put("appointments_made", None, Some(made), made, 0.0);
    put("appointments_kept", None, Some(kept), kept, 0.0);
    put(
        "appointments_no_access",
        None,
        Some(no_access),
        no_access,
        0.0,
    );
    put(
        "appointments_landlord_missed",
        None,
        Some(missed),
        missed,
        0.0,
    );
    put("appointments_kept_pct", None, ratio(kept, made), kept, made);
    put(
        "no_access_rate_pct",
        None,
        ratio(no_access, kept),
        no_access,
        kept,
    );
    put(
        "unverified_no_access_share_pct",
        None,
        ratio(unverified, no_access),
        unverified,
        no_access,
    );
    put(
        "landlord_missed_rate_pct",
        None,
        ratio(missed, made),
        missed,
        made,
    );
    let [(other_na, other), (reminded_na, reminded_all)] = reminded;
    put(
        "no_access_rate_reminded_pct",
        None,
        ratio(reminded_na, reminded_all),
        reminded_na,
        reminded_all,
    );
    put(
        "no_access_rate_not_reminded_pct",
        None,
        ratio(other_na, other),
        other_na,
        other,
    );
    let trips = no_access + aborted;
    put("wasted_trips", None, Some(trips), trips, 0.0);
    put("wasted_trip_cost_gbp", None, Some(25.0 * trips), trips, 0.0);
    put(
        "landlord_missed_compensation_gbp",
        None,
        Some(20.0 * missed),
        missed,
        0.0,
    );
    put("rebooked_appointments", None, Some(rebooked), rebooked, 0.0);
    put(
        "rebooking_cost_gbp",
        None,
        Some(8.0 * rebooked),
        rebooked,
        0.0,
    );
    put("delay_days_added", None, Some(delay), delay, rebooked);
    put(
        "wastage_total_gbp",
        None,
        Some(25.0 * trips + 20.0 * missed + 8.0 * rebooked),
        0.0,
        0.0,
    );
    for (contractor, (cost, failed, made)) in contractor_cost {
        put(
            "wastage_gbp_by_contractor",
            Some(contractor),
            Some(cost),
            failed,
            made,
        );
    }
    for ((kpi, key), (cost, failed, denominator)) in groups {
        put(kpi, Some(key), Some(cost), failed, denominator);
    }
    for (cell, (no_access, attended)) in heat {
        put(
            "no_access_rate_by_weekday_slot",
            Some(cell),
            ratio(no_access, attended),
            no_access,
            attended,
        );
    }

    // Repairs: RP02 against the default targets (24 hours; 5 working days; 28 calendar days)
    // over occupied homes, HMPI 90 and HMPI 101 over all responsive completions,
    // appointments made per repair order.
    let (mut emergency, mut non_emergency, mut days, mut fixed) =
        ((0.0, 0.0), (0.0, 0.0), Vec::new(), 0.0);
    let (mut raised, mut with_appointment) = (0.0, 0.0);
    for (order, row) in &orders {
        let raised_at: DateTime<Utc> = row["raised_at"].parse().unwrap();
        if (from..=to).contains(&raised_at.date_naive()) && row["cancelled_at"].is_empty() {
            raised += 1.0;
            let booked = by_order
                .get(order)
                .is_some_and(|list| list.iter().any(|a| a["outcome"] != "cancelled"));
            if booked {
                with_appointment += 1.0;
            }
        }
        if row["completed_at"].is_empty()
            || !row["cancelled_at"].is_empty()
            || row["work_class"] != "responsive"
        {
            continue;
        }
        let completed: DateTime<Utc> = row["completed_at"].parse().unwrap();
        let reported: DateTime<Utc> = row["reported_at"].parse().unwrap();
        if completed.date_naive() < from || completed.date_naive() > to {
            continue;
        }
        // RP02: occupied homes only (a tenancy in force on the report day); HMPI 90 and 101
        // take every responsive repair completed, as Housemark does.
        let priority: i64 = row["priority"].parse().unwrap();
        let bucket = if priority <= 2 {
            &mut emergency
        } else {
            &mut non_emergency
        };
        if row["occupied"] == "true" {
            bucket.1 += 1.0;
            if completed <= due(priority, reported) {
                bucket.0 += 1.0;
            }
        }
        days.push(((completed.date_naive() - reported.date_naive()).num_days() + 1) as f64);
        let first = by_order.get(order).and_then(|list| {
            list.iter().find(|a| {
                matches!(
                    a["outcome"].as_str(),
                    "kept_completed" | "kept_not_completed" | "aborted"
                )
            })
        });
        if first.is_some_and(|a| a["outcome"] == "kept_completed") {
            fixed += 1.0;
        }
    }
    // Awaab's Law, judged at the end of the period: responsive repairs reported in it, not
    // cancelled; emergency hazards are priority 1, significant ones damp and mould.
    let as_of = midnight_after(to);
    let after_working_days = |day: NaiveDate, count: usize| {
        let (mut day, mut left) = (day, count);
        while left > 0 {
            day = day.succ_opt().unwrap();
            if working(day) {
                left -= 1;
            }
        }
        day
    };
    let (mut made_safe, mut investigated, mut safety_works) = ((0.0, 0.0), (0.0, 0.0), (0.0, 0.0));
    for (order, row) in &orders {
        let reported: DateTime<Utc> = row["reported_at"].parse().unwrap();
        if row["work_class"] != "responsive"
            || !row["cancelled_at"].is_empty()
            || !(from..=to).contains(&reported.date_naive())
        {
            continue;
        }
        let completed: Option<DateTime<Utc>> = row["completed_at"].parse().ok();
        if row["priority"] == "1"
            && (completed.is_some() || as_of - reported > chrono::Duration::hours(24))
        {
            made_safe.1 += 1.0;
            if completed.is_some_and(|done| done - reported <= chrono::Duration::hours(24)) {
                made_safe.0 += 1.0;
            }
        }
        if row["trade"] == "damp and mould" {
            let investigate_by = after_working_days(reported.date_naive(), 10);
            let visit = by_order.get(order).and_then(|list| {
                list.iter()
                    .find_map(|a| a["arrived_at"].parse::<DateTime<Utc>>().ok())
            });
            let on = visit.map(|arrived| arrived.date_naive());
            if on.is_some() || as_of.date_naive() > investigate_by {
                investigated.1 += 1.0;
                if on.is_some_and(|on| on <= investigate_by) {
                    investigated.0 += 1.0;
                }
            }
            if let Some(on) = on {
                let works_by = after_working_days(on, 5);
                if completed.is_some() || as_of.date_naive() > works_by {
                    safety_works.1 += 1.0;
                    if completed.is_some_and(|done| done.date_naive() <= works_by) {
                        safety_works.0 += 1.0;
                    }
                }
            }
        }
    }
    let mut put = |kpi: &str, value: Option<f64>, numerator: f64, denominator: f64| {
        truth.insert((kpi.to_string(), None), (value, numerator, denominator));
    };
    for (kpi, (met, judged)) in [
        ("awaab_emergency_made_safe_24h_pct", made_safe),
        ("awaab_significant_investigated_pct", investigated),
        ("awaab_significant_safety_works_pct", safety_works),
    ] {
        put(kpi, ratio(met, judged), met, judged);
    }
    put(
        "rp02_emergency_pct",
        ratio(emergency.0, emergency.1),
        emergency.0,
        emergency.1,
    );
    put(
        "rp02_non_emergency_pct",
        ratio(non_emergency.0, non_emergency.1),
        non_emergency.0,
        non_emergency.1,
    );
    let total: f64 = days.iter().sum();
    put(
        "hmpi90_avg_end_to_end_days",
        Some(total / days.len() as f64),
        total,
        days.len() as f64,
    );
    put(
        "hmpi101_first_visit_fix_pct",
        ratio(fixed, days.len() as f64),
        fixed,
        days.len() as f64,
    );
    put(
        "appointments_made_pct_of_repair_orders",
        ratio(with_appointment, raised),
        with_appointment,
        raised,
    );
    truth
}

fn close(actual: &serde_json::Value, expected: f64, what: &str) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {actual}"));
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: pipeline {actual}, ground truth {expected}"
    );
}

#[test]
fn run_once_accounts_for_every_row_and_matches_the_ground_truth() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate(data.path(), 400, 3);
    let summary = run_once(data.path(), out.path(), &["--from", FROM, "--to", TO]);

    // Every source row is accounted for: events produced + dead letters = rows read = rows in the file.
    for source in summary["sources"].as_array().unwrap() {
        let read = source["rows_read"].as_u64().unwrap();
        let produced = source["events_produced"].as_u64().unwrap();
        let dead = source["dead_letters"].as_u64().unwrap();
        assert_eq!(produced + dead, read, "{source}");
        assert_eq!(
            read,
            data_rows(&data.path().join(source["path"].as_str().unwrap())),
            "{source}"
        );
        assert_eq!(dead, 0, "the generator writes no malformed rows: {source}");
    }
    for topic in summary["topics"].as_array().unwrap() {
        assert_eq!(topic["produced"], topic["consumed"], "{topic}");
    }

    // KPIs equal those computed from the ground truth.
    let truth = truth_kpis(
        data.path(),
        FROM.parse().unwrap(),
        TO.parse().unwrap(),
        "2025-04-01".parse().unwrap(),
    );
    let rows = summary["kpis"]["rows"].as_array().unwrap();
    for ((kpi, key), (value, numerator, denominator)) in &truth {
        let row = rows
            .iter()
            .find(|row| row["kpi"] == kpi.as_str() && row["key"].as_str() == key.as_deref())
            .unwrap_or_else(|| panic!("{kpi} {key:?}: not in the pipeline's KPIs"));
        let what = format!("{kpi} {}", key.as_deref().unwrap_or(""));
        match value {
            Some(value) => close(&row["value"], *value, &what),
            None => assert!(row["value"].is_null(), "{what}: {row}"),
        }
        if *numerator != 0.0 {
            close(&row["numerator"], *numerator, &format!("{what} numerator"));
        }
        if *denominator != 0.0 {
            close(
                &row["denominator"],
                *denominator,
                &format!("{what} denominator"),
            );
        }
    }
    for kpi in [
        "wastage_gbp_by_contractor",
        "wastage_gbp_by_cause",
        "wastage_gbp_by_attribution",
        "wastage_gbp_by_trade",
        "no_access_rate_by_weekday_slot",
    ] {
        let pipeline = rows.iter().filter(|row| row["kpi"] == kpi).count();
        let expected = truth.keys().filter(|(name, _)| name == kpi).count();
        assert_eq!(pipeline, expected, "{kpi}: groups");
    }
    let value = |kpi: &str| truth[&(kpi.to_string(), None)].0.unwrap();
    assert!(
        value("appointments_made") > 1000.0
            && truth[&("rp02_emergency_pct".to_string(), None)].2 > 50.0,
        "the sample is big enough to mean something"
    );
    assert!(value("rebooked_appointments") > 0.0 && value("unverified_no_access_share_pct") > 0.0);
    // Every hard case is in the sample, so the comparison above covers it.
    for kpi in [
        "awaab_emergency_made_safe_24h_pct",
        "awaab_significant_investigated_pct",
        "awaab_significant_safety_works_pct",
    ] {
        assert!(
            truth[&(kpi.to_string(), None)].2 > 5.0,
            "{kpi}: {:?}",
            truth[&(kpi.to_string(), None)]
        );
    }
    let orders = read_csv(&data.path().join("truth/work_orders.csv"));
    let count = |test: &dyn Fn(&BTreeMap<String, String>) -> bool| {
        orders.iter().filter(|o| test(o)).count()
    };
    assert!(count(&|o| o["work_class"] == "void") > 10, "void works");
    assert!(
        count(&|o| o["work_class"] == "responsive" && o["occupied"] == "false") > 2,
        "responsive repairs to void homes"
    );
    assert!(
        count(&|o| o["current_priority"] != o["priority"]) > 10,
        "priority changes"
    );
    assert!(
        read_csv(&data.path().join("hms/tenancies.csv"))
            .iter()
            .filter(|t| !t["end_date"].is_empty())
            .count()
            > 10,
        "ended tenancies"
    );
    let appointments = read_csv(&data.path().join("truth/appointments.csv"));
    assert!(
        appointments
            .iter()
            .filter(|a| a["outcome"] == "aborted")
            .count()
            > 5,
        "aborted visits"
    );
    assert!(
        count(&|o| !o["parent_ref"].is_empty()) > 5,
        "follow-on orders"
    );
    assert!(
        count(&|o| o["repair_request_ref"].is_empty() && o["parent_ref"].is_empty()) > 5,
        "orders without a request"
    );
    // Messages sent twice, late (a request after its order) and corrected (a second outcome).
    let feed = std::fs::read_to_string(data.path().join("repairs/messages.jsonl")).unwrap();
    let (mut ids, mut duplicated, mut outcomes) =
        (BTreeSet::new(), 0, BTreeMap::<String, usize>::new());
    let (mut scheduled, mut late) = (BTreeSet::new(), 0);
    for line in feed.lines() {
        let message: serde_json::Value = serde_json::from_str(line).unwrap();
        if !ids.insert(message["messageId"].as_str().unwrap().to_string()) {
            duplicated += 1;
            continue;
        }
        match message["messageType"].as_str().unwrap() {
            "JobStatusUpdate" => {
                *outcomes
                    .entry(message["appointmentRef"].as_str().unwrap().into())
                    .or_default() += 1
            }
            "ScheduleRepair" => {
                scheduled.insert(
                    message["repairRequestRef"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            "RaiseRepair" if scheduled.contains(message["repairRequestRef"].as_str().unwrap()) => {
                late += 1
            }
            _ => {}
        }
    }
    assert!(
        duplicated > 5 && late > 5,
        "{duplicated} duplicated, {late} late"
    );
    assert!(
        outcomes.values().filter(|n| **n > 1).count() > 2,
        "corrected outcomes"
    );

    // Exceptions: the rules the generator's cases trigger name exactly the records the ground
    // truth says; the others (completed without a visit, outcome missing) name none.
    let flagged: BTreeSet<(String, String)> = read_csv(&out.path().join("exceptions.csv"))
        .into_iter()
        .map(|row| (row["rule"].clone(), row["record"].clone()))
        .collect();
    let expected = truth_exceptions(data.path(), "2025-04-01".parse().unwrap());
    let rules: BTreeSet<&String> = expected.iter().map(|(rule, _)| rule).collect();
    assert_eq!(
        rules.len(),
        6,
        "every case the generator writes is flagged somewhere: {rules:?}"
    );
    let missing: Vec<_> = expected.difference(&flagged).collect();
    let extra: Vec<_> = flagged.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "exceptions not flagged: {missing:?}; flagged but not in the truth: {extra:?}"
    );

    // Golden persons: never two true people in one golden record (households, twins), and at
    // most one extra golden record per source record carrying injected noise.
    check_golden(data.path(), out.path(), "person", "truth/persons.csv");
    check_golden(data.path(), out.path(), "property", "truth/properties.csv");

    // Tenancies link to golden persons and properties.
    let tenancies = read_csv(&out.path().join("tenancies.csv"));
    assert_eq!(
        tenancies.len() as u64,
        data_rows(&data.path().join("hms/tenancies.csv"))
    );
    assert!(
        tenancies
            .iter()
            .all(|t| !t["golden_property_id"].is_empty() && !t["golden_person_ids"].is_empty())
    );

    // Vulnerabilities: every one reported to stewards; contractors get a flag per home only.
    let vulnerabilities = read_csv(&out.path().join("vulnerabilities.csv"));
    assert_eq!(
        vulnerabilities.len() as u64,
        data_rows(&data.path().join("hms/vulnerabilities.csv"))
    );
    assert!(vulnerabilities.iter().any(|v| v["active"] == "false"));
    assert!(vulnerabilities.iter().any(|v| v["active"] == "true"));
    let alerts = read_csv(&out.path().join("contractor_alerts.csv"));
    assert!(!alerts.is_empty());
    for alert in &alerts {
        assert_eq!(
            alert.keys().collect::<Vec<_>>(),
            vec!["golden_property_id", "take_extra_care"]
        );
        assert!(alert["golden_property_id"].starts_with("GH-"));
    }
}

/// The bound on golden records: `true records <= golden <= true + noisy source records`.
/// A source record with no injected noise agrees exactly (after normalisation) with every
/// other noise-free record of the same real person or property on a match key (name + date
/// of birth; UPRN), so noise-free records of one real thing always form one cluster; each
/// noisy record can at worst start a cluster of its own. The lower bound holds because no
/// golden record may hold two real things.
fn check_golden(data: &std::path::Path, out: &std::path::Path, entity: &str, truth_file: &str) {
    let truth: BTreeMap<(String, String), (String, String)> = read_csv(&data.join(truth_file))
        .into_iter()
        .map(|row| {
            let id_column = if entity == "person" {
                "person_id"
            } else {
                "property_id"
            };
            (
                (row["source"].clone(), row["source_id"].clone()),
                (row[id_column].clone(), row["noise"].clone()),
            )
        })
        .collect();
    let xref: Vec<_> = read_csv(&out.join("xref.csv"))
        .into_iter()
        .filter(|row| row["entity"] == entity)
        .collect();
    assert_eq!(
        xref.len(),
        truth.len(),
        "every {entity} source record is in the cross-reference"
    );
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in &xref {
        let (true_id, _) = &truth[&(row["source"].clone(), row["source_id"].clone())];
        members
            .entry(row["golden_id"].clone())
            .or_default()
            .insert(true_id.clone());
    }
    let merged_wrongly: Vec<_> = members.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        merged_wrongly.is_empty(),
        "golden {entity} records holding several real ones: {merged_wrongly:?}"
    );
    let real: BTreeSet<&String> = truth.values().map(|(id, _)| id).collect();
    let noisy = truth
        .values()
        .filter(|(_, noise)| !noise.is_empty())
        .count();
    let golden = members.len();
    eprintln!(
        "{entity}: {} real, {golden} golden, {noisy} noisy source records",
        real.len()
    );
    assert!(
        golden >= real.len() && golden <= real.len() + noisy,
        "{entity}: {golden} golden for {} real + {noisy} noisy",
        real.len()
    );
}

#[test]
fn malformed_rows_are_dead_lettered_with_position_and_the_run_continues() {
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate(data.path(), 60, 9);
    let tenants = data.path().join("hms/tenants.csv");
    let tenant_rows = data_rows(&tenants);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&tenants)
        .unwrap();
    writeln!(file, "TBAD1,Mr,John,,Smith,31/02/1980,,07700900123,").unwrap();
    writeln!(file, ",Ms,Jane,,Smith,01/02/1980,,07700900124,").unwrap();
    drop(file);
    let feed = data.path().join("repairs/messages.jsonl");
    let feed_rows = data_rows(&feed);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&feed)
        .unwrap();
    writeln!(
        file,
        "{{\"messageType\": \"ScheduleRepair\", \"workOrderRef\": "
    )
    .unwrap();
    writeln!(
        file,
        "{{\"messageType\": \"Gossip\", \"workOrderRef\": \"WO1\"}}"
    )
    .unwrap();
    drop(file);

    let summary = run_once(data.path(), out.path(), &[]);
    let source = |name: &str| {
        summary["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let hms = source("hms_tenants");
    // The impossible date of birth costs the value, not the record: it flows, kept and
    // counted; the row without an id is a dead letter.
    assert_eq!(
        (hms["rows_read"].as_u64(), hms["dead_letters"].as_u64()),
        (Some(tenant_rows + 2), Some(1))
    );
    assert_eq!(hms["events_produced"].as_u64(), Some(tenant_rows + 1));
    assert_eq!(
        hms["unparsed"]["date_of_birth"],
        serde_json::json!({"count": 1, "examples": ["31/02/1980"]}),
        "{hms}"
    );
    let repairs = source("repairs_feed");
    assert_eq!(
        (
            repairs["rows_read"].as_u64(),
            repairs["dead_letters"].as_u64()
        ),
        (Some(feed_rows + 2), Some(2))
    );
    assert_eq!(summary["dead_letters"].as_u64(), Some(3));

    let dead: Vec<serde_json::Value> =
        std::fs::read_to_string(out.path().join("dead_letters.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
    let find = |position: String| {
        dead.iter()
            .find(|d| d["position"] == position.as_str())
            .unwrap_or_else(|| panic!("{position} in {dead:?}"))
            .clone()
    };
    let no_id = find(format!("hms/tenants.csv:{}", tenant_rows + 3));
    assert_eq!(no_id["field"], "person_ref");
    let broken = find(format!("repairs/messages.jsonl:{}", feed_rows + 1));
    assert!(
        broken["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON"),
        "{broken}"
    );
    let unknown = find(format!("repairs/messages.jsonl:{}", feed_rows + 2));
    assert_eq!(unknown["reason"], "no mapping for message type `Gossip`");
}

#[test]
fn a_missing_source_file_is_reported_by_name_before_anything_runs() {
    let data = tempfile::tempdir().unwrap();
    let output = goldthread()
        .args(["run", "--once", "--data-dir", data.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("hms/tenants.csv") && stderr.contains("goldthread generate"),
        "{stderr}"
    );
}
