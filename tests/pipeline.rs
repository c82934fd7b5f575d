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

/// KPIs recomputed from the ground truth alone, by the definitions in sql/kpi/*.sql.
struct TruthKpis {
    made: f64,
    kept: f64,
    no_access: f64,
    missed: f64,
    emergency: (f64, f64),
    non_emergency: (f64, f64),
    average_days: f64,
}

fn truth_kpis(root: &std::path::Path, from: NaiveDate, to: NaiveDate) -> TruthKpis {
    let mut kpis = TruthKpis {
        made: 0.0,
        kept: 0.0,
        no_access: 0.0,
        missed: 0.0,
        emergency: (0.0, 0.0),
        non_emergency: (0.0, 0.0),
        average_days: 0.0,
    };
    for row in read_csv(&root.join("truth/appointments.csv")) {
        let slot: NaiveDate = row["slot_date"].parse().unwrap();
        if slot < from || slot > to || row["outcome"] == "cancelled" {
            continue;
        }
        kpis.made += 1.0;
        match row["outcome"].as_str() {
            "kept_completed" | "kept_not_completed" => kpis.kept += 1.0,
            "no_access" => {
                kpis.kept += 1.0;
                kpis.no_access += 1.0;
            }
            "missed" => kpis.missed += 1.0,
            _ => {}
        }
    }
    let target_hours = |priority: i64| match priority {
        1 | 2 => 24,
        3 => 120,
        _ => 672,
    };
    let mut days = Vec::new();
    for row in read_csv(&root.join("truth/work_orders.csv")) {
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
        let priority: i64 = row["priority"].parse().unwrap();
        let within = (completed - reported).num_seconds() <= target_hours(priority) * 3600;
        let bucket = if priority <= 2 {
            &mut kpis.emergency
        } else {
            &mut kpis.non_emergency
        };
        bucket.1 += 1.0;
        if within {
            bucket.0 += 1.0;
        }
        days.push(((completed.date_naive() - reported.date_naive()).num_days() + 1) as f64);
    }
    kpis.average_days = days.iter().sum::<f64>() / days.len() as f64;
    kpis
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
    let truth = truth_kpis(data.path(), FROM.parse().unwrap(), TO.parse().unwrap());
    close(
        &kpi(&summary, "appointments_made")["value"],
        truth.made,
        "appointments made",
    );
    close(
        &kpi(&summary, "appointments_kept")["value"],
        truth.kept,
        "appointments kept",
    );
    close(
        &kpi(&summary, "appointments_no_access")["value"],
        truth.no_access,
        "no access",
    );
    close(
        &kpi(&summary, "appointments_landlord_missed")["value"],
        truth.missed,
        "landlord missed",
    );
    close(
        &kpi(&summary, "appointments_kept_pct")["value"],
        100.0 * truth.kept / truth.made,
        "kept %",
    );
    close(
        &kpi(&summary, "no_access_rate_pct")["value"],
        100.0 * truth.no_access / truth.kept,
        "no-access rate",
    );
    close(
        &kpi(&summary, "landlord_missed_rate_pct")["value"],
        100.0 * truth.missed / truth.made,
        "missed rate",
    );
    close(
        &kpi(&summary, "no_access_wastage_gbp")["value"],
        25.0 * truth.no_access,
        "wastage",
    );
    close(
        &kpi(&summary, "landlord_missed_compensation_gbp")["value"],
        20.0 * truth.missed,
        "compensation",
    );
    let rp02 = kpi(&summary, "rp02_emergency_pct");
    close(
        &rp02["numerator"],
        truth.emergency.0,
        "RP02 emergency within target",
    );
    close(
        &rp02["denominator"],
        truth.emergency.1,
        "RP02 emergency completions",
    );
    close(
        &rp02["value"],
        100.0 * truth.emergency.0 / truth.emergency.1,
        "RP02 emergency",
    );
    let rp02 = kpi(&summary, "rp02_non_emergency_pct");
    close(
        &rp02["numerator"],
        truth.non_emergency.0,
        "RP02 non-emergency within target",
    );
    close(
        &rp02["denominator"],
        truth.non_emergency.1,
        "RP02 non-emergency completions",
    );
    close(
        &kpi(&summary, "hmpi90_avg_end_to_end_days")["value"],
        truth.average_days,
        "HMPI 90",
    );
    assert!(
        truth.made > 1000.0 && truth.emergency.1 > 50.0,
        "the sample is big enough to mean something"
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
    assert_eq!(
        (hms["rows_read"].as_u64(), hms["dead_letters"].as_u64()),
        (Some(tenant_rows + 2), Some(2))
    );
    assert_eq!(hms["events_produced"].as_u64(), Some(tenant_rows));
    let repairs = source("repairs_feed");
    assert_eq!(
        (
            repairs["rows_read"].as_u64(),
            repairs["dead_letters"].as_u64()
        ),
        (Some(feed_rows + 2), Some(2))
    );
    assert_eq!(summary["dead_letters"].as_u64(), Some(4));

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
    let bad_date = find(format!("hms/tenants.csv:{}", tenant_rows + 2));
    assert_eq!(bad_date["field"], "dob");
    assert!(
        bad_date["reason"]
            .as_str()
            .unwrap()
            .contains("cannot parse `31/02/1980` as a date"),
        "{bad_date}"
    );
    assert!(bad_date["raw"].as_str().unwrap().starts_with("TBAD1,"));
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
