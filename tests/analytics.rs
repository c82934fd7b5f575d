//! The analytics against independent engines and a real browser: the whole KPI suite and
//! the exception rules in DuckDB over the same tables; the live dashboard in headless
//! Chromium, updated by a contractor's webhook without a reload; the analyst SQL endpoint;
//! `goldthread kpi` in both modes.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

const VIEWER: &str = "viewer-secret-0001";
const CONTRACTOR: &str = "contractor-secret-0004";

fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        _ => a.is_null() && b.is_null(),
    }
}

/// The Python with DuckDB that `tests/run` provisions (GOLDTHREAD_DUCKDB_PYTHON).
fn duckdb_python() -> PathBuf {
    std::env::var_os("GOLDTHREAD_DUCKDB_PYTHON")
        .map(PathBuf::from)
        .expect(
            "GOLDTHREAD_DUCKDB_PYTHON is not set: run tests/run, which creates a venv with duckdb",
        )
}

#[test]
fn duckdb_computes_the_same_kpis_and_exceptions_from_the_same_tables() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let export = out.path().join("export");
    generate(data.path(), 250, 11);
    let summary = run_once(
        data.path(),
        out.path(),
        &["--export", export.to_str().unwrap()],
    );
    let output = std::process::Command::new(duckdb_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sql/duckdb/compare.py"
        ))
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let duckdb: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let key = |row: &serde_json::Value| (row["kpi"].to_string(), row["key"].to_string());
    let ours: BTreeMap<_, _> = summary["kpis"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (key(row), row))
        .collect();
    let theirs: BTreeMap<_, _> = duckdb["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (key(row), row))
        .collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "the same KPIs and groups"
    );
    assert!(ours.len() > 60, "breakdowns included: {}", ours.len());
    for (name, row) in &ours {
        for field in ["value", "numerator", "denominator"] {
            assert!(
                close(&row[field], &theirs[name][field]),
                "{name:?} {field}: DataFusion {}, DuckDB {}",
                row[field],
                theirs[name][field]
            );
        }
    }

    let exceptions: Vec<(String, String, String)> = read_csv(&out.path().join("exceptions.csv"))
        .into_iter()
        .map(|row| {
            (
                row["rule"].clone(),
                row["record"].clone(),
                row["detail"].clone(),
            )
        })
        .collect();
    let mut duck_exceptions: Vec<(String, String, String)> = duckdb["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let text = |field: &str| row[field].as_str().unwrap_or("").to_string();
            (text("rule"), text("record"), text("detail"))
        })
        .collect();
    duck_exceptions.sort();
    assert!(!exceptions.is_empty());
    // Details hold timestamps, which the engines print differently; rule and record must agree.
    let names = |rows: &[(String, String, String)]| {
        rows.iter()
            .map(|(rule, record, _)| (rule.clone(), record.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&exceptions), names(&duck_exceptions));
}

fn served_with_webhook(data: &std::path::Path) -> (Running, String) {
    let config = config_with_contractor_webhook(
        data,
        r#"entity = "visit"
id = "appointmentRef"
fields = { appointment_ref = "appointmentRef", work_order_ref = "workOrderRef", outcome = "outcome", attribution = "attribution" }
"#,
    );
    let (running, address, _, _) = serve(
        goldthread()
            .args(["run", "--config", config.to_str().unwrap()])
            .args(["--data-dir", data.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("GOLDTHREAD_VIEWER_TOKEN", VIEWER)
            .env("GOLDTHREAD_CONTRACTOR_A_TOKEN", CONTRACTOR)
            .stderr(std::process::Stdio::null()),
    );
    (running, address)
}

#[test]
fn the_dashboard_fills_its_tiles_and_follows_a_new_outcome_without_a_reload() {
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 40, 4);
    // An appointment kept and completed in the regulator year: the contractor reports it
    // again as a resident no-access.
    let appointment = read_csv(&data.path().join("truth/appointments.csv"))
        .into_iter()
        .find(|row| row["outcome"] == "kept_completed" && row["slot_date"].as_str() >= "2024-06-01")
        .unwrap();
    let (_server, address) = served_with_webhook(data.path());
    let browser = Browser::start();
    browser.command(
        "POST",
        "/url",
        serde_json::json!({"url": format!("http://{address}/dashboard#token={VIEWER}")}),
    );
    let tile = "document.querySelector('[data-period=regulator_year] [data-kpi=no_access_rate_pct] .detail')?.textContent ?? ''";
    let detail = |value: &serde_json::Value| value.as_str().unwrap_or("").to_string();
    // The first computation may predate the data: wait for the year's appointments.
    browser.wait_for(
        "return document.querySelector('[data-period=regulator_year] [data-kpi=appointments_made] .value')?.textContent ?? ''",
        Duration::from_secs(120),
        |value| value.as_str().unwrap_or("").replace(',', "").parse::<f64>().is_ok_and(|made| made > 0.0),
    );
    let before = browser.script(&format!("return {tile}"));
    assert!(detail(&before).contains(" / "), "{before}");
    // Every period's tiles are filled: counts and percentages, not blanks.
    let made = browser.script(
        "return [...document.querySelectorAll('[data-kpi=appointments_made] .value')].map(e => e.textContent)",
    );
    assert_eq!(made.as_array().unwrap().len(), 3, "{made}");
    let kept = browser.script(
        "return document.querySelector('[data-period=regulator_year] [data-kpi=appointments_kept_pct] .value').textContent",
    );
    assert!(detail(&kept).ends_with('%'), "{kept}");
    let heat_cells = browser.script("return document.querySelectorAll('#heatmap td.cell').length");
    assert!(heat_cells.as_u64().unwrap() >= 4, "{heat_cells}");
    // Marks this page load: a reload would lose it.
    browser.script("window.loadedOnce = 'yes'; return null");

    let message = serde_json::json!({
        "messageType": "JobStatusUpdate",
        "messageId": "M-DASH-1",
        "appointmentRef": appointment["appointment_ref"],
        "workOrderRef": appointment["work_order_ref"],
        "outcome": "no_access",
        "attribution": "resident",
    });
    let (status, body) = request(
        &address,
        "POST",
        "/webhooks/contractor_a",
        Some(CONTRACTOR),
        Some(&message.to_string()),
    );
    assert_eq!(status, 202, "{body}");
    let after = browser.wait_for(
        &format!("return {tile}"),
        Duration::from_secs(120),
        |value| *value != before,
    );
    let count = |text: &str| -> f64 {
        text.split(" / ")
            .next()
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap()
    };
    assert_eq!(
        count(&detail(&after)),
        count(&detail(&before)) + 1.0,
        "{before} -> {after}"
    );
    assert_eq!(
        browser.script("return window.loadedOnce"),
        "yes",
        "no reload"
    );

    let png = browser.command("GET", "/screenshot", serde_json::Value::Null);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    assert!(bytes.starts_with(b"\x89PNG"));
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, bytes).unwrap();
    eprintln!("screenshot: {}", path.display());
}

#[test]
fn analysts_query_the_live_tables_read_only_with_a_row_limit_and_kpi_reads_both_ways() {
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 40, 5);
    let config = data.path().join("limits.toml");
    std::fs::write(
        &config,
        include_str!("../config/default.toml")
            .replace("sql_row_limit = 10000", "sql_row_limit = 5")
            .replace("sql_timeout = \"10s\"", "sql_timeout = \"1s\""),
    )
    .unwrap();
    let (_server, address, _, _) = serve(
        goldthread()
            .args(["run", "--config", config.to_str().unwrap()])
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("GOLDTHREAD_VIEWER_TOKEN", VIEWER)
            .stderr(std::process::Stdio::null()),
    );
    let sql = |text: &str| {
        let body = serde_json::json!({ "sql": text }).to_string();
        let (status, answer) = request(&address, "POST", "/api/sql", Some(VIEWER), Some(&body));
        (
            status,
            serde_json::from_str::<serde_json::Value>(&answer).unwrap(),
        )
    };
    assert_eq!(
        request(&address, "POST", "/api/sql", None, Some("{}")).0,
        401
    );
    let (status, answer) = sql("SELECT ref, outcome FROM appointment_outcomes ORDER BY ref");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rows"].as_array().unwrap().len(), 5);
    assert_eq!(answer["truncated"], true);
    assert_eq!(answer["columns"], serde_json::json!(["ref", "outcome"]));
    let (status, answer) = sql("SELECT COUNT(*) AS n FROM appointment_outcomes");
    assert_eq!(
        (status, &answer["truncated"]),
        (200, &serde_json::json!(false))
    );
    // The golden records are there as they are now, though no one has asked for KPIs yet.
    let (status, answer) = sql("SELECT COUNT(*) AS n FROM golden_properties");
    assert_eq!(status, 200, "{answer}");
    assert!(answer["rows"][0]["n"].as_u64().unwrap() > 0, "{answer}");
    for statement in [
        "DROP VIEW repairs",
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO visits SELECT * FROM visits",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let (status, answer) = sql(statement);
        assert_eq!(status, 400, "{statement}: {answer}");
    }
    // Stopped at the timeout: summing over 18,628 calendar days squared is far more than a
    // second's work.
    let started = Instant::now();
    let (status, answer) = sql(
        "SELECT SUM(a.working_day_number * b.working_day_number) FROM calendar a CROSS JOIN calendar b",
    );
    assert_eq!(status, 408, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(answer["error"].as_str().unwrap().contains("1s"), "{answer}");
    assert!(
        sql("SELECT * FROM no_such_table").1["error"]
            .as_str()
            .unwrap()
            .contains("no_such_table")
    );

    // `goldthread kpi` over the files and against the running instance: the same suite.
    let csv = run_ok(&[
        "kpi",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--format",
        "csv",
        "--from",
        "2024-04-01",
        "--to",
        "2025-03-31",
    ]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(
        csv.starts_with("kpi,key,value,numerator,denominator,definition\n"),
        "{csv}"
    );
    let remote = goldthread()
        .args([
            "kpi",
            "--url",
            &format!("http://{address}"),
            "--format",
            "csv",
        ])
        .args(["--from", "2024-04-01", "--to", "2025-03-31"])
        .env("GOLDTHREAD_TOKEN", VIEWER)
        .output()
        .unwrap();
    assert!(
        remote.status.success(),
        "{}",
        String::from_utf8_lossy(&remote.stderr)
    );
    assert_eq!(String::from_utf8(remote.stdout).unwrap(), csv);
    let table = run_ok(&["kpi", "--data-dir", data.path().to_str().unwrap()]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("wastage_gbp_by_contractor") && table.contains("rp02_emergency_pct"),
        "{table}"
    );
}
