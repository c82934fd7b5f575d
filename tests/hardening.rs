//! Hostile input and clients against the running binary: each was a crash, a starved API or
//! lost data before; the process must stay up, answer `/health` within a second, and lose
//! nothing.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const VIEWER: &str = "viewer-secret-for-hardening-1";
const CONTRACTOR: &str = "contractor-secret-for-hardening-4";

/// A webhook taking HACT RaiseRepair and JobStatusUpdate messages.
fn webhook_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("webhook.toml");
    let webhook = contractor_webhook(
        r#"type_field = "messageType"
[webhooks.messages.RaiseRepair]
entity = "repair_request"
id = "repairReference"
fields = { property_ref = "propertyReference", reported_at = "dateReported", priority = "priority" }
[webhooks.messages.JobStatusUpdate]
entity = "work_order_update"
id = "messageId"
fields = { work_order_ref = "job.reference", status = "status", status_at = "statusAt" }
"#,
    );
    std::fs::write(
        &config,
        include_str!("../config/default.toml").replace(
            "allow_volatile_acknowledgements = false",
            "allow_volatile_acknowledgements = true",
        ) + &webhook,
    )
    .unwrap();
    config
}

/// Resident memory of a process, bytes.
fn resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// `/health` answers, and within a second.
fn healthy(address: &str) {
    let started = Instant::now();
    assert_eq!(
        request(address, "GET", "/health", None, None),
        (200, "ok".to_string())
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "/health took {:?}",
        started.elapsed()
    );
}

#[test]
fn hostile_requests_and_idle_clients_leave_the_process_serving() {
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 20, 5);
    let config = webhook_config(data.path());
    // Started as shells and systemd start a service: 1,024 open files at most (soft).
    let (mut running, address, _, _) = serve(
        std::process::Command::new("sh")
            .args(["-c", "ulimit -S -n 1024 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_goldthread"))
            .args(["run", "--config", config.to_str().unwrap()])
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("GOLDTHREAD_VIEWER_TOKEN", VIEWER)
            .env("GOLDTHREAD_CONTRACTOR_A_TOKEN", CONTRACTOR)
            .stderr(std::process::Stdio::null()),
    );
    let pid = running.0.id();
    let post = |path: &str, token: &str, body: &str| {
        request(&address, "POST", path, Some(token), Some(body))
    };

    // A viewer's SQL: a thousand terms overflowed a worker's stack and ended the process.
    let sum = format!(r#"{{"sql": "SELECT {}"}}"#, vec!["1"; 1_000].join("+"));
    let (status, body) = post("/api/sql", VIEWER, &sum);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("nest more than"), "{body}");
    healthy(&address);
    // A gigabyte string took resident memory from 150 MB to 4 GB, and kept it.
    let baseline = resident(pid);
    let (status, body) = post(
        "/api/sql",
        VIEWER,
        r#"{"sql": "SELECT length(repeat('x', 1000000000))"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        resident(pid) < baseline + (1 << 30),
        "{} -> {}",
        baseline,
        resident(pid)
    );
    let (status, body) = post("/api/sql", VIEWER, r#"{"sql": "SELECT 1 + 1 AS two"}"#);
    assert_eq!((status, body.contains(r#""two":2"#)), (200, true), "{body}");
    // Viewers see a person's postcode district, as BI does, not the postcode.
    let (status, body) = post(
        "/api/sql",
        VIEWER,
        r#"{"sql": "SELECT * FROM golden_persons LIMIT 1"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""columns":["golden_id","postcode_district","n_sources"]"#),
        "{body}"
    );

    // An instant in the year 262,150 (microseconds since the epoch) was answered 202, then
    // ended the process when the stage computed its target.
    let (status, body) = post(
        "/webhooks/contractor_a",
        CONTRACTOR,
        r#"{"messageType": "RaiseRepair", "messageId": "R-1", "repairReference": "RR-1", "propertyReference": "P1", "priority": 2, "dateReported": 8210266833600000000}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("outside the years 1800-2199"), "{body}");
    healthy(&address);

    // A body over the largest message: 413 (it was 503, "retry", for ever).
    let padding = "x".repeat(300 * 1024);
    let oversized = format!(
        r#"{{"messageType": "JobStatusUpdate", "messageId": "M-big", "job": {{"reference": "WO000001"}}, "status": "{padding}", "statusAt": "2025-03-04T10:15:00Z"}}"#
    );
    let (status, body) = post("/webhooks/contractor_a", CONTRACTOR, &oversized);
    assert_eq!(status, 413, "{body}");
    // A message id reused with another body is a conflict, not silently dropped.
    let message = |status: &str| {
        format!(
            r#"{{"messageType": "JobStatusUpdate", "messageId": "M-7", "job": {{"reference": "WO000001"}}, "status": "{status}", "statusAt": "2025-03-04T10:15:00Z"}}"#
        )
    };
    assert_eq!(
        post("/webhooks/contractor_a", CONTRACTOR, &message("completed")).0,
        202
    );
    assert_eq!(
        post("/webhooks/contractor_a", CONTRACTOR, &message("completed")).0,
        200
    );
    let (status, body) = post("/webhooks/contractor_a", CONTRACTOR, &message("cancelled"));
    assert_eq!(status, 409, "{body}");

    // 1,100 clients that send half a request head and wait: more than the 1,024 open files
    // the process was started with.
    let idle: Vec<TcpStream> = (0..1_100)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    healthy(&address);
    let (status, _) = request(&address, "GET", "/ready", None, None);
    assert_eq!(status, 200);
    drop(idle);
    assert!(
        running.0.try_wait().unwrap().is_none(),
        "the process is still running"
    );
}

#[test]
fn a_debezium_source_started_before_its_topic_exists_reads_it_once_it_does() {
    const ADMIN: &str = "admin-secret-for-hardening-3";
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 20, 6);
    let config = data.path().join("debezium.toml");
    let topic = "hmsdb.dbo.tenants";
    std::fs::write(
        &config,
        with_debezium_tenants(include_str!("../config/default.toml"), topic),
    )
    .unwrap();
    let mut child = goldthread()
        .args(["run", "--config", config.to_str().unwrap()])
        .args(["--data-dir", data.path().to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .env("GOLDTHREAD_ADMIN_TOKEN", ADMIN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let _running = Running(child);
    let mut lines = std::io::BufRead::lines(stdout).map(Result::unwrap);
    let broker = lines
        .by_ref()
        .find_map(|line| {
            line.strip_prefix("broker: embedded (")
                .map(|rest| rest.trim_end_matches(')').to_string())
        })
        .expect("the embedded broker's address is printed");
    let address = lines
        .by_ref()
        .find_map(|line| {
            line.strip_prefix("listening on http://")
                .map(str::to_string)
        })
        .unwrap();
    lines.find(|line| line.starts_with("ready:")).unwrap();

    let wait_for = |what: &str, check: &dyn Fn() -> bool| wait_for(what, 90, check);
    // The topic does not exist: the source is retried, and readiness says so.
    let ready = || request(&address, "GET", "/ready", None, None);
    wait_for("the source to show as retrying", &|| {
        let (status, body) = ready();
        status == 503 && body.contains(r#""hms_tenants_cdc":"retrying""#)
    });
    let (_, metrics) = request(&address, "GET", "/metrics", Some(ADMIN), None);
    assert!(
        metrics.contains(r#"connector_up{source="hms_tenants_cdc"} 0"#),
        "{metrics}"
    );

    // Debezium starts later and creates the topic with its first changes (kcat here).
    let events = tenants_as_change_events(data.path());
    let mut kcat = std::process::Command::new("kcat")
        .args(["-P", "-b", &broker, "-t", topic, "-K", "\t"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat runs (tests/run installs it)");
    kcat.stdin
        .take()
        .unwrap()
        .write_all((events.join("\n") + "\n").as_bytes())
        .unwrap();
    assert!(kcat.wait().unwrap().success());

    wait_for_the_last_tenant(&address, ADMIN, data.path(), 90);
    let (_, body) = ready();
    assert!(body.contains(r#""hms_tenants_cdc":"ok""#), "{body}");
}

#[test]
fn acknowledging_without_a_durable_place_is_refused_at_startup() {
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 5, 7);
    let config = webhook_config(data.path());
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "allow_volatile_acknowledgements = true",
        "allow_volatile_acknowledgements = false",
    );
    std::fs::write(&config, text).unwrap();
    let log = data.path().join("stderr.log");
    let mut running = Running(
        goldthread()
            .args(["run", "--config", config.to_str().unwrap()])
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // A run that accepts would serve until stopped.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the run was not refused");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("webhook `contractor_a` answers 202")
            && stderr.contains("Set postgres.url"),
        "{stderr}"
    );
}

/// The command line reaches a remote instance over TLS only: `https://` (with a CA file for
/// a self-signed certificate in front of the API), and never sends a token over plain
/// `http://` to another machine.
#[test]
fn the_cli_calls_a_remote_instance_over_https_only() {
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 20, 5);
    let (_running, address, _, _) = serve(
        goldthread()
            .args(["run", "--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("GOLDTHREAD_VIEWER_TOKEN", VIEWER)
            .stderr(std::process::Stdio::null()),
    );
    // TLS in front of the API, as a reverse proxy would put it.
    let certificates = tempfile::tempdir().unwrap();
    let (cert, key) = (
        certificates.path().join("api.crt"),
        certificates.path().join("api.key"),
    );
    self_signed(&cert, &key, "127.0.0.1");
    let front = format!("127.0.0.1:{}", free_port());
    let port = front.rsplit(':').next().unwrap();
    let _proxy = tls_proxy(port, &address, &cert, &key);

    let kpi = |url: &str, ca_file: Option<&std::path::Path>| {
        let mut command = goldthread();
        command
            .args(["kpi", "--url", url])
            .env("GOLDTHREAD_TOKEN", VIEWER);
        if let Some(ca_file) = ca_file {
            command.arg("--ca-file").arg(ca_file);
        }
        command.output().unwrap()
    };
    let https = format!("https://{front}");
    let trusted = kpi(&https, Some(&cert));
    assert!(trusted.status.success(), "{trusted:?}");
    assert!(
        String::from_utf8_lossy(&trusted.stdout).contains("appointments_made"),
        "{trusted:?}"
    );
    // A certificate nobody vouched for is refused.
    let untrusted = kpi(&https, None);
    assert!(!untrusted.status.success());
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("TLS with"),
        "{untrusted:?}"
    );
    // Plain http:// to this machine works; to another it is refused before anything is
    // sent.
    assert!(kpi(&format!("http://{address}"), None).status.success());
    let remote = kpi("http://steward.example.org:8080", None);
    assert!(!remote.status.success());
    assert!(
        String::from_utf8_lossy(&remote.stderr).contains("use https://"),
        "{remote:?}"
    );
}
