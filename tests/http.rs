//! The HTTP API of a running `goldthread run`: health, KPIs, golden records, metrics.

mod common;

use common::*;

const VIEWER: &str = "viewer-secret-0001";
const STEWARD: &str = "steward-secret-0002";
const ADMIN: &str = "admin-secret-0003";

/// A GET as the admin.
fn get(address: &str, path: &str) -> (u16, String) {
    request(address, "GET", path, Some(ADMIN), None)
}

#[test]
fn the_running_pipeline_serves_health_kpis_golden_records_and_metrics() {
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 80, 4);
    let log_path = data.path().join("stderr.log");
    let (mut running, address, ready, lines) = serve(
        goldthread()
            .args([
                "run",
                "--data-dir",
                data.path().to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .env("GOLDTHREAD_VIEWER_TOKEN", VIEWER)
            .env("GOLDTHREAD_STEWARD_TOKEN", STEWARD)
            .env("GOLDTHREAD_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "debug")
            .stderr(std::fs::File::create(&log_path).unwrap()),
    );
    assert!(ready.contains("events processed"), "{ready}");

    assert_eq!(
        request(&address, "GET", "/health", None, None),
        (200, "ok".to_string())
    );
    // Access control: no token, a wrong token, a role too low.
    assert_eq!(request(&address, "GET", "/api/kpis", None, None).0, 401);
    assert_eq!(
        request(&address, "GET", "/api/kpis", Some("guess"), None).0,
        401
    );
    assert_eq!(request(&address, "GET", "/metrics", None, None).0, 401);
    assert_eq!(
        request(&address, "GET", "/api/kpis", Some(VIEWER), None).0,
        200
    );
    assert_eq!(
        request(&address, "GET", "/api/review", Some(VIEWER), None).0,
        403
    );
    assert_eq!(
        request(&address, "GET", "/api/review", Some(STEWARD), None).0,
        200
    );
    assert_eq!(
        request(&address, "GET", "/api/steward/audit", Some(STEWARD), None).0,
        403
    );

    let (status, body) = get(&address, "/api/kpis?from=2024-04-01&to=2025-03-31");
    assert_eq!(status, 200, "{body}");
    let kpis: serde_json::Value = serde_json::from_str(&body).unwrap();
    let made = kpis["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["kpi"] == "appointments_made")
        .unwrap();
    assert!(made["value"].as_f64().unwrap() > 0.0, "{made}");
    let (status, body) = get(&address, "/api/kpis?from=yesterday");
    assert_eq!(status, 400);
    assert!(body.contains("`from`: `yesterday` is not a date"), "{body}");

    let first_tenant = read_csv(&data.path().join("hms/tenants.csv"))[0]["person_ref"].clone();
    let (status, body) = get(&address, &format!("/api/xref/hms/{first_tenant}"));
    assert_eq!(status, 200, "{body}");
    let xref: serde_json::Value = serde_json::from_str(&body).unwrap();
    let golden_id = xref["golden"][0]["golden_id"].as_str().unwrap().to_string();
    let (status, body) = get(&address, &format!("/api/golden/persons/{golden_id}"));
    assert_eq!(status, 200, "{body}");
    let person: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(person["golden_id"], golden_id.as_str());
    assert!(
        person["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|source| source["id"] == first_tenant.as_str()),
        "{person}"
    );
    assert_eq!(get(&address, "/api/golden/persons/GP-nope").0, 404);

    // The explanation of a merge: the first tenant known to two systems.
    let tenants = read_csv(&data.path().join("hms/tenants.csv"));
    let merged = tenants
        .iter()
        .take(50)
        .find_map(|tenant| {
            let (_, body) = get(&address, &format!("/api/xref/hms/{}", tenant["person_ref"]));
            let xref: serde_json::Value = serde_json::from_str(&body).ok()?;
            let id = xref["golden"][0]["golden_id"].as_str()?.to_string();
            let (_, body) = get(&address, &format!("/api/golden/persons/{id}"));
            let person: serde_json::Value = serde_json::from_str(&body).ok()?;
            (person["sources"].as_array()?.len() > 1).then_some(id)
        })
        .expect("some tenant is in the CRM too");
    let (status, body) = get(&address, &format!("/api/golden/persons/{merged}/explain"));
    assert_eq!(status, 200, "{body}");
    let explained: serde_json::Value = serde_json::from_str(&body).unwrap();
    let link = &explained["links"][0];
    assert_eq!(link["decided_by"], "model", "{explained}");
    assert!(link["score"]["probability"].as_f64().unwrap() >= 0.99);
    assert!(link["score"]["blocking_rule"].is_string(), "{link}");
    assert!(link["score"]["model_version"].is_string(), "{link}");
    assert!(
        link["score"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|field| field["comparison"] == "given_name" && field["level"].is_string()),
        "{link}"
    );
    assert_eq!(get(&address, "/api/golden/persons/GP-nope/explain").0, 404);
    let (status, body) = get(&address, "/api/review");
    assert_eq!(status, 200);
    assert!(body.starts_with('['), "{body}");

    // Steward workflow: reject the merge, see it split, withdraw, see it restored; audited.
    let (_, body) = get(&address, &format!("/api/golden/persons/{merged}"));
    let person: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sources = person["sources"].as_array().unwrap();
    let record = |source: &serde_json::Value| serde_json::json!({"system": source["allocated_by"], "id": source["id"]});
    let golden_of = |source: &serde_json::Value| {
        let path = format!(
            "/api/xref/{}/{}",
            source["allocated_by"].as_str().unwrap(),
            source["id"].as_str().unwrap()
        );
        let (_, body) = get(&address, &path);
        let xref: serde_json::Value = serde_json::from_str(&body).unwrap();
        xref["golden"][0]["golden_id"].as_str().unwrap().to_string()
    };
    let decision = |verdict: &str, reason: &str| {
        serde_json::json!({
            "a": record(&sources[0]), "b": record(&sources[1]),
            "verdict": verdict, "reason": reason,
        })
        .to_string()
    };
    let reject = decision("different", "two people: checked the tenancy file");
    let post = |token: &str, body: &str| {
        request(
            &address,
            "POST",
            "/api/steward/decisions",
            Some(token),
            Some(body),
        )
    };
    assert_eq!(post(VIEWER, &reject).0, 403);
    assert_eq!(post(STEWARD, &decision("different", " ")).0, 400);
    let (status, body) = post(STEWARD, &reject);
    assert_eq!(status, 200, "{body}");
    assert_ne!(golden_of(&sources[0]), golden_of(&sources[1]));
    let (status, body) = post(STEWARD, &decision("withdraw", "checked again: one person"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(golden_of(&sources[0]), golden_of(&sources[1]));
    assert_eq!(
        golden_of(&sources[0]),
        merged,
        "the same golden id comes back"
    );
    let (status, body) = request(&address, "GET", "/api/steward/audit", Some(ADMIN), None);
    assert_eq!(status, 200);
    let audit: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    assert_eq!(entries[0]["who"], "steward");
    assert_eq!(entries[0]["action"], "different");
    assert_eq!(entries[0]["reason"], "two people: checked the tenancy file");
    assert_eq!(entries[1]["action"], "withdraw");

    let first_property = read_csv(&data.path().join("hms/properties.csv"))[0]["prop_ref"].clone();
    let (_, body) = get(&address, &format!("/api/xref/hms/{first_property}"));
    let xref: serde_json::Value = serde_json::from_str(&body).unwrap();
    let property_id = xref["golden"][0]["golden_id"].as_str().unwrap().to_string();
    let (status, body) = get(&address, &format!("/api/golden/properties/{property_id}"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"uprn\""), "{body}");

    // Consumer lag comes from librdkafka's statistics, emitted every second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (status, metrics) = loop {
        let (status, metrics) = get(&address, "/metrics");
        if metrics.contains("stage_consumer_lag") || std::time::Instant::now() > deadline {
            break (status, metrics);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(status, 200);
    for name in [
        "connector_events_produced_total",
        "stage_events_consumed_total",
        "stage_commits_total",
        "mdm_xref_entries",
        "stage_consumer_lag",
        "stage_bytes_consumed_total",
        "kafka_bytes_produced_total",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }

    // Ctrl-C (SIGINT) stops it cleanly, printing the summary.
    let pid = running.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = running.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.collect();
    assert!(
        rest.iter().any(|line| line.starts_with("golden persons:")),
        "{rest:?}"
    );
    // Debug logs name the steward and the action, never a token.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("steward action"), "{log}");
    for secret in [VIEWER, STEWARD, ADMIN] {
        assert!(!log.contains(secret), "a token reached the logs");
    }
    assert!(!rest.iter().any(|line| line.contains(ADMIN)));
}

/// The running pipeline with a contractor's webhook: 202 only once the event is in Kafka,
/// a retry is answered without a second event, a bad message is refused with its reason.
#[test]
fn a_contractor_posts_job_updates_to_its_webhook() {
    const CONTRACTOR: &str = "contractor-secret-0004";
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 40, 4);
    let config = config_with_contractor_webhook(
        data.path(),
        r#"entity = "work_order_update"
id = "messageId"
fields = { work_order_ref = "job.reference", status = "status", status_at = "statusAt", type_code = "typeCode" }
"#,
    );
    let (_running, address, _, _) = serve(
        goldthread()
            .args(["run", "--config", config.to_str().unwrap()])
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("GOLDTHREAD_VIEWER_TOKEN", VIEWER)
            .env("GOLDTHREAD_CONTRACTOR_A_TOKEN", CONTRACTOR)
            .stderr(std::process::Stdio::null()),
    );
    let topic = "topic=\"goldthread.repairs.work_order_update\"";
    let consumed = || -> u64 {
        let (_, metrics) = request(&address, "GET", "/metrics", Some(VIEWER), None);
        metrics
            .lines()
            .find(|line| line.starts_with("stage_events_consumed_total{") && line.contains(topic))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let before = consumed();
    let message = r#"{"messageType": "JobStatusUpdate", "messageId": "M-1", "job": {"reference": "WO000001"}, "status": "completed", "statusAt": "2025-03-04T10:15:00Z", "typeCode": 80}"#;
    let post = |token: Option<&str>, body: &str| {
        request(
            &address,
            "POST",
            "/webhooks/contractor_a",
            token,
            Some(body),
        )
    };

    assert_eq!(post(None, message).0, 401);
    // A viewer's token is valid but not listed for this webhook; the contractor's token
    // reads nothing else.
    assert_eq!(post(Some(VIEWER), message).0, 403);
    assert_eq!(
        request(&address, "GET", "/api/kpis", Some(CONTRACTOR), None).0,
        403
    );

    let (status, body) = post(Some(CONTRACTOR), message);
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("\"event_id\""), "{body}");
    let (status, body) = post(Some(CONTRACTOR), message);
    assert_eq!(status, 200, "a retry: {body}");
    assert!(body.contains("\"duplicate\":true"), "{body}");
    let (status, body) = post(
        Some(CONTRACTOR),
        r#"{"messageType": "JobStatusUpdate", "messageId": "M-2", "job": {"reference": "WO000001"}, "status": "completed", "statusAt": "at noon"}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("status_at: cannot parse `at noon`"), "{body}");

    // The accepted message, once, reaches the stage.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while consumed() < before + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the event was not consumed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(consumed(), before + 1);
}

/// An independent client drives the API from its description: schemathesis (provisioned by
/// `tests/run`, GOLDTHREAD_SCHEMATHESIS) generates requests from `docs/openapi.yaml`, valid
/// and not, with and without the token, and checks every answer: no 5xx, only documented
/// status codes and content types, invalid input refused with a 4xx, nothing served without
/// a token. `/api/dashboard` is left out: a request with `after` waits up to 25 s by design.
#[test]
fn the_api_holds_to_its_openapi_description_under_generated_requests() {
    let schemathesis = std::env::var_os("GOLDTHREAD_SCHEMATHESIS").expect(
        "GOLDTHREAD_SCHEMATHESIS is not set: run tests/run, which creates a venv with schemathesis",
    );
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 60, 6);
    let (running, address, _, _) = serve(
        goldthread()
            .args(["run", "--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("GOLDTHREAD_ADMIN_TOKEN", ADMIN)
            .stderr(std::process::Stdio::null()),
    );
    let description = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
    let output = std::process::Command::new(schemathesis)
        .args(["run", description, "--url", &format!("http://{address}")])
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--exclude-path", "/api/dashboard"])
        .args(["--max-examples", "25", "--workers", "1", "--seed", "1"])
        .args(["--request-timeout", "30", "--no-color"])
        .current_dir(data.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("Tested: 20"), "{report}");
    drop(running);
}
