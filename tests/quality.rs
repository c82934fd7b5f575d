//! Data quality: the default recording standard against the defects the generator injected
//! (its `truth/quality.csv`), a corrected record resolving its issue, and the weekly report
//! read in headless Chromium.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;

/// What the default standard should find in `data`: every defect the generator injected
/// (`truth/quality.csv`), and the vulnerabilities whose review date has passed today while
/// they have not ended (a rule about the day, so not in the generator's truth: read from the
/// extract here).
fn expected(data: &Path) -> BTreeSet<(String, String, String)> {
    let mut expected: BTreeSet<(String, String, String)> =
        read_csv(&data.join("truth/quality.csv"))
            .into_iter()
            .map(|row| {
                (
                    row["rule"].clone(),
                    row["source"].clone(),
                    row["source_id"].clone(),
                )
            })
            .collect();
    let vulnerabilities = data.join("hms/vulnerabilities.csv");
    if vulnerabilities.exists() {
        let today = chrono::Utc::now().date_naive();
        let date = |text: &str| chrono::NaiveDate::parse_from_str(text, "%d/%m/%Y").ok();
        for row in read_csv(&vulnerabilities) {
            let review = date(&row["review_date"]).unwrap();
            if review < today && date(&row["end_date"]).is_none_or(|end| end >= today) {
                expected.insert((
                    "vulnerability-reviewed".into(),
                    "hms".into(),
                    row["alert_id"].clone(),
                ));
            }
        }
    }
    expected
}

/// `goldthread quality-report` over `data`; the parsed report.json.
fn report(data: &Path, out: &Path) -> serde_json::Value {
    run_ok(&[
        "quality-report",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

/// The open issues of a report as (rule, source, source id).
fn open_issues(report: &serde_json::Value) -> BTreeSet<(String, String, String)> {
    report["owners"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|owner| owner["issues"].as_array().unwrap())
        .map(|issue| {
            (
                issue["rule"].as_str().unwrap().to_string(),
                issue["record"]["allocated_by"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                issue["record"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_default_standard_finds_exactly_the_defects_the_generator_injected() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate(data.path(), 400, 21);
    let report = report(data.path(), out.path());
    let truth = expected(data.path());
    let found = open_issues(&report);
    let per_rule = |set: &BTreeSet<(String, String, String)>| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (rule, _, _) in set {
            *counts.entry(rule.clone()).or_default() += 1;
        }
        counts
    };
    assert_eq!(per_rule(&found), per_rule(&truth), "open issues per rule");
    assert_eq!(found, truth, "the very records the generator broke");
    // Every injected kind of defect is there to be found.
    for rule in [
        "person-date-of-birth",
        "person-date-of-birth-valid",
        "tenant-nino",
        "person-nino-valid",
        "person-single-hms-record",
        "property-uprn",
        "property-asset-record",
        "person-date-of-birth-agrees",
        "vulnerability-reviewed",
    ] {
        assert!(per_rule(&truth).get(rule).is_some_and(|&n| n > 0), "{rule}");
    }
    // Every rule of the standard is scored, and a score is the share of records passing.
    for score in report["scores"].as_array().unwrap() {
        let (checked, failing) = (
            score["checked"].as_f64().unwrap(),
            score["failing"].as_f64().unwrap(),
        );
        let expected = if checked == 0.0 {
            1.0
        } else {
            1.0 - failing / checked
        };
        assert!(
            (score["score"].as_f64().unwrap() - expected).abs() < 1e-9,
            "{score}"
        );
    }
    // issues.csv: the same issues, naming records by reference only: no name, date of
    // birth, NINO, phone or email of anyone in the extracts.
    let rows = read_csv(&out.path().join("issues.csv"));
    assert_eq!(rows.len(), found.len());
    let text = std::fs::read_to_string(out.path().join("issues.csv")).unwrap()
        + &std::fs::read_to_string(out.path().join("report.json")).unwrap()
        + &std::fs::read_to_string(out.path().join("report.html")).unwrap();
    for row in read_csv(&data.path().join("hms/tenants.csv")) {
        for (column, value) in &row {
            if value.len() >= 5
                && ["surname", "dob", "ni_number", "phone", "email"].contains(&column.as_str())
            {
                assert!(
                    !text.contains(value.as_str()),
                    "{column} {value} is in the report"
                );
            }
        }
    }
}

/// Appends a CRM contact's row again, with a date of birth where it had none.
fn correct_date_of_birth(contacts: &Path, contact_id: &str) {
    let mut reader = csv::Reader::from_path(contacts).unwrap();
    let headers = reader.headers().unwrap().clone();
    let id = headers.iter().position(|h| h == "contact_id").unwrap();
    let dob = headers.iter().position(|h| h == "date_of_birth").unwrap();
    let mut corrected: Vec<String> = reader
        .records()
        .map(Result::unwrap)
        .find(|row| &row[id] == contact_id)
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(corrected[dob], "", "the generator left it empty");
    corrected[dob] = "1961-03-11".into();
    let mut writer = csv::WriterBuilder::new().from_writer(
        std::fs::OpenOptions::new()
            .append(true)
            .open(contacts)
            .unwrap(),
    );
    writer.write_record(&corrected).unwrap();
    writer.flush().unwrap();
}

#[test]
fn a_later_corrected_record_resolves_its_issue() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate(data.path(), 200, 5);
    let missing = read_csv(&data.path().join("truth/quality.csv"))
        .into_iter()
        .find(|row| row["rule"] == "person-date-of-birth")
        .expect("a CRM contact without a date of birth");
    assert_eq!(missing["source"], "crm");
    // The CRM is corrected: the contact's row again, later in the extract, with a date of
    // birth.
    correct_date_of_birth(&data.path().join("crm/contacts.csv"), &missing["source_id"]);

    let report = report(data.path(), out.path());
    let open = open_issues(&report);
    let key = (
        "person-date-of-birth".to_string(),
        "crm".to_string(),
        missing["source_id"].clone(),
    );
    assert!(!open.contains(&key), "still open after the correction");
    assert!(
        report["resolved_this_week"].as_u64().unwrap() >= 1,
        "{}",
        report["resolved_this_week"]
    );
    // The rest of the truth is still found.
    let truth = expected(data.path())
        .into_iter()
        .filter(|issue| *issue != key)
        .collect::<BTreeSet<_>>();
    assert_eq!(open, truth);
}

#[test]
fn the_weekly_report_reads_in_a_browser() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate(data.path(), 150, 8);
    let report = report(data.path(), out.path());
    let browser = Browser::start();
    browser.command(
        "POST",
        "/url",
        serde_json::json!({"url": format!("file://{}", out.path().join("report.html").display())}),
    );
    let open = browser.script("return document.querySelector('#open b').textContent");
    assert_eq!(open.as_str().unwrap(), report["open_issues"].to_string());
    let title = browser.script("return document.querySelector('h1').textContent");
    let week = report["week"].as_str().unwrap();
    assert!(title.as_str().unwrap().contains(week), "{title}");
    // A score row per rule and system, a section per owner, and the trend drawn.
    let scores = browser.script("return document.querySelectorAll('#scores tr').length - 1");
    assert_eq!(
        scores.as_u64().unwrap() as usize,
        report["scores"].as_array().unwrap().len()
    );
    let owners = browser.script(
        "return [...document.querySelectorAll('section.owner h2')].map(h => h.textContent)",
    );
    let owners: Vec<String> = owners
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    assert!(
        owners.iter().any(|h| h.starts_with("Asset management: ")),
        "{owners:?}"
    );
    let dimensions =
        browser.script("return document.querySelectorAll('#dimensions tr').length - 1");
    assert_eq!(
        dimensions.as_u64().unwrap() as usize,
        report["dimensions"].as_array().unwrap().len()
    );
    let points = browser.script("return document.querySelectorAll('svg.trend circle').length");
    assert_eq!(
        points.as_u64().unwrap() as usize,
        report["trend"].as_array().unwrap().len()
    );
    // It is laid out: the first owner's table is visible, with its rows.
    let rows = browser.script(
        "const t = document.querySelector('section.owner table'); return t.getBoundingClientRect().height > 0 ? t.rows.length : 0",
    );
    assert!(rows.as_u64().unwrap() > 1, "{rows}");
}

/// The truth's open issues per rule.
fn truth_per_rule(data: &Path) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (rule, _, _) in expected(data) {
        *counts.entry(rule).or_default() += 1;
    }
    counts
}

#[test]
fn a_run_keeps_the_register_live_and_serves_the_report_and_the_data_teams_page() {
    const VIEWER: &str = "viewer-secret-0001";
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate(data.path(), 150, 9);
    let truth = truth_per_rule(data.path());
    // `run --once`: the summary counts the open issues per rule, and quality/ holds the report.
    let summary = run_once(data.path(), out.path(), &[]);
    let counted: BTreeMap<String, u64> = summary["quality_issues"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, open)| open.as_u64() != Some(0))
        .map(|(rule, open)| (rule.clone(), open.as_u64().unwrap()))
        .collect();
    assert_eq!(counted, truth);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("quality/report.json")).unwrap())
            .unwrap();
    assert_eq!(written["open_issues"].as_u64(), Some(truth.values().sum()));
    // A served run: the API answers the same, and the data team's page shows it.
    let (_server, address, _, _) = serve(
        goldthread()
            .args(["run", "--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("GOLDTHREAD_VIEWER_TOKEN", VIEWER)
            .stderr(std::process::Stdio::null()),
    );
    let (status, _) = request(&address, "GET", "/api/quality/report", None, None);
    assert_eq!(status, 401, "a token is needed");
    let (status, body) = request(&address, "GET", "/api/quality/report", Some(VIEWER), None);
    assert_eq!(status, 200, "{body}");
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        open_issues(&served).len() as u64,
        truth.values().sum::<u64>()
    );
    let (status, body) = request(
        &address,
        "GET",
        "/api/quality/report?week=2026-W60",
        Some(VIEWER),
        None,
    );
    assert_eq!(status, 400, "{body}");
    let browser = Browser::start();
    browser.command(
        "POST",
        "/url",
        serde_json::json!({"url": format!("http://{address}/quality#token={VIEWER}")}),
    );
    let shown = browser.wait_for(
        "return document.getElementById('report').contentDocument?.querySelector('#open b')?.textContent ?? ''",
        std::time::Duration::from_secs(60),
        |value| !value.as_str().unwrap_or("").is_empty(),
    );
    assert_eq!(shown.as_str().unwrap(), served["open_issues"].to_string());
}

#[test]
fn the_register_lands_in_postgres_survives_a_restart_and_bi_sees_no_personal_data() {
    let pg = Postgres::start();
    let url = pg.url();
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate(data.path(), 150, 12);
    let truth: BTreeSet<String> = expected(data.path())
        .into_iter()
        .map(|(rule, source, id)| format!("{rule},{source},{id}"))
        .collect();
    let open_rows = |pg: &Postgres| -> BTreeSet<String> {
        pg.query(
            "SELECT string_agg(rule || ',' || source || ',' || source_id, E'\\n')
               FROM goldthread.quality_issue WHERE resolved_at IS NULL",
        )
        .lines()
        .map(str::to_string)
        .collect()
    };
    run_once(data.path(), out.path(), &["--postgres", &url]);
    assert_eq!(open_rows(&pg), truth, "every open issue is stored");
    let first_seen = pg.query("SELECT string_agg(first_seen::text, ',' ORDER BY rule, source, source_id) FROM goldthread.quality_issue");

    // A restart on the same extracts: the same issues, first seen when they were.
    run_once(data.path(), out.path(), &["--postgres", &url]);
    assert_eq!(open_rows(&pg), truth);
    assert_eq!(
        pg.query("SELECT string_agg(first_seen::text, ',' ORDER BY rule, source, source_id) FROM goldthread.quality_issue"),
        first_seen
    );

    // A corrected contact: its issue is resolved in the store.
    let missing = read_csv(&data.path().join("truth/quality.csv"))
        .into_iter()
        .find(|row| row["rule"] == "person-date-of-birth")
        .unwrap();
    correct_date_of_birth(&data.path().join("crm/contacts.csv"), &missing["source_id"]);
    run_once(data.path(), out.path(), &["--postgres", &url]);
    assert_eq!(
        pg.query(&format!(
            "SELECT resolved_at IS NOT NULL FROM goldthread.quality_issue
              WHERE rule = 'person-date-of-birth' AND source_id = '{}'",
            missing["source_id"]
        )),
        "t"
    );

    // BI: the quality views, and nothing that identifies a person.
    pg.query("CREATE ROLE quality_bi LOGIN IN ROLE goldthread_bi");
    let (ok, open, err) = pg.psql(
        "quality_bi",
        "SELECT count(*) FROM bi.quality_issue WHERE resolved_at IS NULL",
    );
    assert!(ok, "{err}");
    assert_eq!(open, (truth.len() - 1).to_string());
    let (ok, weekly, err) = pg.psql("quality_bi", "SELECT sum(open_issues) FROM bi.quality_weekly WHERE week = to_char(now(), 'IYYY-\"W\"IW')");
    assert!(ok, "{err}");
    assert_eq!(weekly, (truth.len() - 1).to_string());
    let (ok, _, err) = pg.psql(
        "quality_bi",
        "SELECT source_id FROM goldthread.quality_issue",
    );
    assert!(!ok && err.contains("permission denied"), "{err}");
    let columns = pg.query(
        "SELECT string_agg(column_name, ',') FROM information_schema.columns
          WHERE table_schema = 'bi' AND table_name IN ('quality_issue', 'quality_weekly')",
    );
    for personal in [
        "name",
        "birth",
        "nino",
        "phone",
        "email",
        "source_id",
        "problem",
    ] {
        assert!(!columns.contains(personal), "{personal} in {columns}");
    }
    let (_, everything, _) = pg.psql(
        "quality_bi",
        "SELECT string_agg(q::text, E'\\n') FROM bi.quality_issue q",
    );
    for row in read_csv(&data.path().join("hms/tenants.csv")) {
        for column in ["person_ref", "surname", "dob", "ni_number", "phone"] {
            let value = &row[column];
            if value.len() >= 5 {
                assert!(
                    !everything.contains(value.as_str()),
                    "{column} {value} in bi.quality_issue"
                );
            }
        }
    }
}

/// An HTTP receiver on a free port, standing in for a Teams or Slack incoming webhook: it
/// answers the first `failures` requests 500 and the rest 200, and hands over each body.
fn receiver(failures: usize) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (sender, bodies) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim_end().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if index < failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let _ = sender.send(String::from_utf8(body).unwrap());
        }
    });
    (format!("http://{address}/hook"), bodies)
}

#[test]
fn each_owner_gets_a_digest_of_its_issues_with_references_only_retried_until_taken() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate(data.path(), 120, 13);
    let config = data.path().join("notify.toml");
    let default = include_str!("../config/default.toml");
    std::fs::write(
        &config,
        format!(
            "{default}\n[[quality.notify]]\nowner = \"Asset management\"\nurl_env = \"ASSET_TEAM_WEBHOOK\"\n"
        ),
    )
    .unwrap();
    let (url, bodies) = receiver(1);
    let output = goldthread()
        .args(["quality-report", "--config", config.to_str().unwrap()])
        .args(["--data-dir", data.path().to_str().unwrap()])
        .args(["--out", out.path().to_str().unwrap(), "--notify"])
        .env("ASSET_TEAM_WEBHOOK", &url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let received: Vec<String> = bodies.try_iter().collect();
    assert_eq!(received.len(), 2, "refused once, then taken: {received:?}");
    assert_eq!(received[0], received[1], "the retry sends the same digest");
    let digest: serde_json::Value = serde_json::from_str(&received[1]).unwrap();
    let expected: BTreeSet<String> = read_csv(&data.path().join("truth/quality.csv"))
        .into_iter()
        .filter(|row| row["rule"] == "property-asset-record")
        .map(|row| format!("{}:{}", row["source"], row["source_id"]))
        .collect();
    assert_eq!(digest["open"].as_u64().unwrap() as usize, expected.len());
    let text = digest["text"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "Asset management has {} open issues",
            expected.len()
        )),
        "{text}"
    );
    let listed: BTreeSet<String> = digest["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|issue| {
            format!(
                "{}:{}",
                issue["source"].as_str().unwrap(),
                issue["source_id"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        listed.is_subset(&expected) && !listed.is_empty(),
        "{listed:?}"
    );
    // Nothing about anyone but the references: no address, name or other value of a home.
    for row in read_csv(&data.path().join("hms/properties.csv")) {
        for column in ["street", "postcode"] {
            assert!(
                !received[1].contains(row[column].as_str()),
                "{column} {}",
                row[column]
            );
        }
    }
    // A webhook that never takes it: the command says so, naming the variable, not the URL.
    let (url, _bodies) = receiver(usize::MAX);
    let output = goldthread()
        .args(["quality-report", "--config", config.to_str().unwrap()])
        .args(["--data-dir", data.path().to_str().unwrap()])
        .args(["--out", out.path().to_str().unwrap(), "--notify"])
        .env("ASSET_TEAM_WEBHOOK", &url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("ASSET_TEAM_WEBHOOK") && stderr.contains("500"),
        "{stderr}"
    );
    assert!(!stderr.contains(&url), "the URL is a secret: {stderr}");
}

#[test]
fn link_measures_an_incoming_landlord_against_the_standard_as_a_risk_table() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate(data.path(), 150, 14);
    run_ok(&[
        "link",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    let truth = truth_per_rule(data.path());
    let risks: BTreeMap<String, u64> = read_csv(&out.path().join("risk_register.csv"))
        .into_iter()
        .map(|row| (row["rule"].clone(), row["count"].parse().unwrap()))
        .collect();
    assert_eq!(
        risks, truth,
        "a row per gap the generator made, with its size"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["risks"].as_array().unwrap().len(), truth.len());
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("Knowledge gaps against the recording standard"));
    assert!(out.path().join("quality/issues.csv").exists());
}

#[test]
fn a_legacy_landlord_is_measured_against_the_receiving_one_with_the_example_config() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    run_ok(&[
        "generate",
        "--homes",
        "300",
        "--seed",
        "17",
        "--out",
        dir,
        "--legacy-homes",
        "120",
    ]);
    run_ok(&[
        "link",
        "--config",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/examples/legacy-landlord.toml"
        ),
        "--data-dir",
        dir,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    // The knowledge gaps: both landlords' injected defects, exactly.
    let mut truth = truth_per_rule(data.path());
    for (rule, count) in truth_per_rule(&data.path().join("acorn")) {
        *truth.entry(rule).or_default() += count;
    }
    let risks: BTreeMap<String, u64> = read_csv(&out.path().join("risk_register.csv"))
        .into_iter()
        .map(|row| (row["rule"].clone(), row["count"].parse().unwrap()))
        .collect();
    assert_eq!(risks, truth);
    // Acorn's residents and homes the receiving landlord already knows, and the new ones.
    let overlap = read_csv(&data.path().join("acorn/truth/overlap.csv"));
    let known = |prefix: &str| {
        overlap
            .iter()
            .filter(|row| row["source_id"].starts_with(prefix))
            .count() as u64
    };
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    let entity = |name: &str| {
        report["entities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entity| entity["entity"] == name)
            .unwrap()
            .clone()
    };
    let rows = |file: &str| read_csv_with(&data.path().join("acorn").join(file), b';').len() as u64;
    let (persons, homes) = (entity("person"), entity("property"));
    assert_eq!(
        persons["records_matched_elsewhere"]["acorn_hms"].as_u64(),
        Some(known("AC0"))
    );
    assert_eq!(
        homes["records_matched_elsewhere"]["acorn_hms"].as_u64(),
        Some(known("AC-P"))
    );
    assert_eq!(
        persons["only_in"]["acorn_hms"].as_u64().unwrap() + known("AC0"),
        rows("TENANTS_EXPORT.csv"),
        "every other Acorn tenant is new"
    );
    assert_eq!(
        homes["only_in"]["acorn_hms"].as_u64().unwrap() + known("AC-P"),
        rows("PROPERTY_LIST.csv")
    );
}
