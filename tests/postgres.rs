//! Golden records, decisions and KPIs in a real PostgreSQL server (a throwaway cluster this
//! test starts), read back through the BI schema and roles.

mod common;

use common::*;

/// A checksum of a table's rows, in a stable order.
fn checksum(pg: &Postgres, table: &str) -> String {
    pg.query(&format!(
        "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"
    ))
}

const TABLES: &[&str] = &[
    "goldthread.golden_person",
    "goldthread.golden_property",
    "goldthread.xref",
    "goldthread.tenancy",
    "goldthread.match_decision",
    "goldthread.review_queue",
    "goldthread.vulnerability",
    "goldthread.redirect",
    // History, timestamps included: a replay moves nothing, so it records nothing.
    "goldthread.xref_history",
    "goldthread.merge_history",
];

/// An HMS tenant and a CRM contact merged into one golden person, from the store itself:
/// (HMS id, CRM id, golden id).
fn merged_pair(pg: &Postgres) -> (String, String, String) {
    let pair = pg.query(
        "SELECT a.source_id || ' ' || b.source_id || ' ' || a.golden_id
           FROM goldthread.xref a JOIN goldthread.xref b USING (golden_id)
          WHERE a.entity = 'person' AND a.source = 'hms' AND b.source = 'crm'
          ORDER BY a.source_id LIMIT 1",
    );
    let parts: Vec<&str> = pair.split(' ').collect();
    assert_eq!(parts.len(), 3, "a merged pair: {pair}");
    (parts[0].into(), parts[1].into(), parts[2].into())
}

#[test]
fn run_writes_golden_records_that_bi_reads_pseudonymously_and_a_replay_writes_the_same_rows() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 120, 9);
    let out = tempfile::tempdir().unwrap();
    let url = pg.url();
    let summary = run_once(data.path(), out.path(), &["--postgres", &url]);

    // What the run wrote to files is what it wrote to PostgreSQL.
    let persons = summary["mdm"]["golden_persons"].as_u64().unwrap();
    assert_eq!(
        pg.query("SELECT count(*) FROM goldthread.golden_person"),
        persons.to_string()
    );
    // Batches write only what changed; the end state is the hub's whole state, row for row.
    let lines = |file: &str, columns: &[&str]| {
        let mut lines: Vec<String> = read_csv(&out.path().join(file))
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|column| row[*column].as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        lines.sort();
        lines.join("\n")
    };
    assert_eq!(
        pg.query("SELECT string_agg(line, E'\\n' ORDER BY line) FROM (SELECT entity || ',' || source || ',' || source_id || ',' || golden_id AS line FROM goldthread.xref) x"),
        lines("xref.csv", &["entity", "source", "source_id", "golden_id"])
    );
    assert_eq!(
        pg.query("SELECT string_agg(golden_id || ',' || coalesce(given_name, '') || ',' || coalesce(postcode, ''), E'\\n' ORDER BY golden_id || ',' || coalesce(given_name, '') || ',' || coalesce(postcode, '')) FROM goldthread.golden_person"),
        lines("golden_persons.csv", &["golden_id", "given_name", "postcode"])
    );
    assert_eq!(
        pg.query("SELECT string_agg(line, E'\\n' ORDER BY line) FROM (SELECT tenancy_id || ',' || coalesce(golden_property_id, '') || ',' || array_to_string(golden_person_ids, ';') AS line FROM goldthread.tenancy) t"),
        lines("tenancies.csv", &["tenancy_id", "golden_property_id", "golden_person_ids"])
    );
    assert_ne!(
        pg.query("SELECT count(*) FROM goldthread.match_decision WHERE decided_by = 'model'"),
        "0"
    );
    // Every numbered file in mdm/migrations/ is applied.
    let mut files: Vec<u32> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/mdm/migrations"))
            .unwrap()
            .filter_map(|entry| entry.unwrap().file_name().to_str()?.get(..4)?.parse().ok())
            .collect();
    files.sort_unstable();
    let files: Vec<String> = files.iter().map(u32::to_string).collect();
    assert_eq!(
        pg.query("SELECT string_agg(version::text, ',' ORDER BY version) FROM public.goldthread_migrations"),
        files.join(",")
    );
    // Positions consumed are recorded with the rows.
    assert_eq!(
        pg.query("SELECT count(*) FROM goldthread.consumed WHERE next_offset > 0"),
        pg.query("SELECT count(*) FROM goldthread.consumed")
    );
    let kept: f64 = pg
        .query("SELECT value FROM bi.repairs_kpi WHERE kpi = 'appointments_kept_pct'")
        .parse()
        .unwrap();
    assert!(kept > 50.0, "{kept}");

    // A BI login reads the bi views, and no identity column.
    pg.query("CREATE ROLE dashboards LOGIN IN ROLE goldthread_bi");
    let (ok, count, err) = pg.psql("dashboards", "SELECT count(*) FROM bi.golden_person");
    assert!(ok, "{err}");
    assert_eq!(count, persons.to_string());
    for sql in [
        "SELECT given_name FROM goldthread.golden_person",
        "SELECT code FROM goldthread.vulnerability",
    ] {
        let (ok, _, err) = pg.psql("dashboards", sql);
        assert!(!ok && err.contains("permission denied"), "{sql}: {err}");
    }
    // Households, the contractor flag and the daily KPI snapshot are there for BI.
    for (sql, expected) in [
        (
            "SELECT count(*) FROM bi.repairs_kpi_daily WHERE snapshot_date = current_date AND kpi = 'appointments_kept_pct'",
            "1".to_string(),
        ),
        (
            "SELECT count(*) FROM bi.household",
            pg.query("SELECT count(*) FROM goldthread.tenancy WHERE end_date IS NULL OR end_date >= current_date"),
        ),
        (
            "SELECT count(*) FROM bi.contractor_alert",
            pg.query("SELECT count(DISTINCT h.golden_property_id) FROM goldthread.household h JOIN goldthread.vulnerability_status v ON v.active AND v.golden_person_id = ANY (h.golden_person_ids)"),
        ),
    ] {
        let (ok, count, err) = pg.psql("dashboards", sql);
        assert!(ok, "{sql}: {err}");
        assert_eq!(count, expected, "{sql}");
    }
    assert_ne!(pg.query("SELECT count(*) FROM bi.household"), "0");
    // The breakdowns and the data exceptions are there too.
    let (ok, exceptions, err) = pg.psql("dashboards", "SELECT count(*) FROM bi.repairs_exception");
    assert!(ok, "{err}");
    assert_eq!(
        exceptions,
        read_csv(&out.path().join("exceptions.csv"))
            .len()
            .to_string()
    );
    assert_ne!(
        pg.query("SELECT count(*) FROM bi.repairs_kpi_daily WHERE kpi = 'wastage_gbp_by_contractor' AND key IS NOT NULL"),
        "0"
    );
    let (ok, columns, err) = pg.psql(
        "dashboards",
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'bi' AND table_name = 'golden_person'",
    );
    assert!(ok, "{err}");
    for identity in [
        "given_name",
        "family_name",
        "date_of_birth",
        "nino",
        "phone",
        "email",
    ] {
        assert!(!columns.contains(identity), "{columns}");
    }

    // Replaying every event from offset 0 (a second run over the same sources) writes the
    // same rows, with no duplicates.
    let before: Vec<String> = TABLES.iter().map(|table| checksum(&pg, table)).collect();
    let again = tempfile::tempdir().unwrap();
    run_once(data.path(), again.path(), &["--postgres", &url]);
    let after: Vec<String> = TABLES.iter().map(|table| checksum(&pg, table)).collect();
    assert_eq!(before, after);
}

#[test]
fn steward_actions_are_audited_in_postgres() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 60, 2);
    let url = pg.url();
    let (running, address, _, _) = serve(
        goldthread()
            .args(["run", "--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--postgres", &url])
            .env("GOLDTHREAD_STEWARD_TOKEN", "steward-secret-0001")
            .stderr(std::process::Stdio::null()),
    );
    // A served run keeps the live periods' results in PostgreSQL.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while pg.query(
        "SELECT count(DISTINCT period) FROM bi.repairs_kpi_live WHERE kpi = 'appointments_made'",
    ) != "3"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no live KPIs in PostgreSQL"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let (hms, crm, _) = merged_pair(&pg);
    let (hms, crm) = (hms.as_str(), crm.as_str());
    let body = serde_json::json!({
        "a": {"system": "hms", "id": hms}, "b": {"system": "crm", "id": crm},
        "verdict": "different", "reason": "different people: checked with the housing officer",
    })
    .to_string();
    let (status, response) = request(
        &address,
        "POST",
        "/api/steward/decisions",
        Some("steward-secret-0001"),
        Some(&body),
    );
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        pg.query("SELECT who || '|' || action || '|' || reason || '|' || jsonb_array_length(records) FROM goldthread.steward_audit"),
        "steward|different|different people: checked with the housing officer|2"
    );
    // The split is in the tables BI reads at once.
    assert_eq!(
        pg.query(&format!(
            "SELECT count(DISTINCT golden_id) FROM goldthread.xref
              WHERE entity = 'person' AND (source, source_id) IN (('hms', '{hms}'), ('crm', '{crm}'))"
        )),
        "2"
    );
    // The subject access report from the store honours the verdict: the HMS record's
    // subject is not shown the other person's record (from the files it would be).
    let output = goldthread()
        .args(["sar", &format!("hms:{hms}"), "--postgres", &url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains(&format!("\"source_id\": \"{hms}\"")),
        "{report}"
    );
    assert!(
        !report.contains(&format!("\"source_id\": \"{crm}\"")),
        "{report}"
    );
    // A BI login cannot read the audit (it names source records).
    pg.query("CREATE ROLE dashboards LOGIN IN ROLE goldthread_bi");
    let (ok, _, _) = pg.psql("dashboards", "SELECT * FROM goldthread.steward_audit");
    assert!(!ok);
    // With PostgreSQL away the action stands in memory only, and the steward is told so as
    // a failure elsewhere (503, worth retrying), with the cause.
    pg.stop();
    let (status, response) = request(
        &address,
        "POST",
        "/api/steward/decisions",
        Some("steward-secret-0001"),
        Some(&body),
    );
    assert_eq!(status, 503, "{response}");
    assert!(
        response.contains("PostgreSQL could not be updated: "),
        "{response}"
    );
    pg.resume();

    // After a crash and a restart the verdict still stands: the engine is rebuilt from the
    // stored records and verdicts, and the replayed events do not merge the pair again.
    drop(running);
    let apart = format!(
        "SELECT count(DISTINCT golden_id) FROM goldthread.xref
          WHERE entity = 'person' AND (source, source_id) IN (('hms', '{hms}'), ('crm', '{crm}'))"
    );
    let summary = run_once(
        data.path(),
        tempfile::tempdir().unwrap().path(),
        &["--postgres", &url],
    );
    assert_eq!(pg.query(&apart), "2");
    assert_eq!(
        pg.query("SELECT verdict || ' ' || source_id_a || ' ' || source_id_b FROM goldthread.steward_verdict"),
        format!("different {} {}", crm.min(hms), crm.max(hms))
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM goldthread.steward_audit"),
        "1"
    );
    assert_eq!(
        summary["mdm"]["golden_persons"]
            .as_u64()
            .unwrap()
            .to_string(),
        pg.query("SELECT count(*) FROM goldthread.golden_person")
    );
    // The cross-reference history shows the record moving out of the merged golden record.
    assert_eq!(
        pg.query(&format!(
            "SELECT count(*) FROM goldthread.xref_history WHERE source = 'crm' AND source_id = '{crm}'"
        )),
        "2"
    );
}

#[test]
fn a_run_killed_mid_stream_and_restarted_writes_exactly_the_rows_of_a_clean_run() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 300, 5);
    // Small batches, so the kill lands between many committed transactions.
    let config = data.path().join("small-batches.toml");
    let default = include_str!("../config/default.toml");
    assert!(default.contains("batch_size = 5000"));
    std::fs::write(
        &config,
        default.replace("batch_size = 5000", "batch_size = 100"),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let clean = pg.create_database("clean");
    run_once(
        data.path(),
        tempfile::tempdir().unwrap().path(),
        &["--config", config, "--postgres", &clean],
    );
    let expected = checksums_in(&pg, "clean");
    let records: u64 = pg
        .query_in("clean", "SELECT count(*) FROM goldthread.source_record")
        .parse()
        .unwrap();

    let crashed = pg.create_database("crashed");
    // Kill -9 once some batches are in and before all of them are.
    run_killed_after_first_commit(&pg, "crashed", config, data.path());
    let stored: u64 = pg
        .query_in("crashed", "SELECT count(*) FROM goldthread.source_record")
        .parse()
        .unwrap();
    assert!(
        stored > 0 && stored < records,
        "killed after {stored} of {records} source records"
    );

    // The restart rebuilds from what was committed and consumes everything again.
    let summary = run_once(
        data.path(),
        tempfile::tempdir().unwrap().path(),
        &["--config", config, "--postgres", &crashed],
    );
    assert_eq!(checksums_in(&pg, "crashed"), expected);
    // Nothing doubled in the run's own counts either.
    let persons: u64 = pg
        .query_in("clean", "SELECT count(*) FROM goldthread.golden_person")
        .parse()
        .unwrap();
    assert_eq!(summary["mdm"]["golden_persons"].as_u64(), Some(persons));
    // Every record has one current golden id; earlier ones (from the half-run) are closed.
    assert_eq!(
        pg.query_in(
            "crashed",
            "SELECT count(*) FROM goldthread.xref_history WHERE valid_to IS NULL"
        ),
        pg.query_in("crashed", "SELECT count(*) FROM goldthread.xref")
    );
}

/// The store gone for longer than `postgres.retry_for` while the sources are being read stops
/// the run at once, and the operator reads why: the stage's whole chain, down to the refused
/// connection. (The sources used to wait two minutes for the stage that had stopped, then
/// report only that they had waited.)
#[test]
fn a_store_lost_mid_run_stops_it_at_once_and_says_why() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 1000, 5);
    let config = data.path().join("short-retry.toml");
    let default = include_str!("../config/default.toml");
    assert!(default.contains("batch_size = 5000") && !default.contains("[postgres]"));
    std::fs::write(
        &config,
        default.replace("batch_size = 5000", "batch_size = 100")
            + "\n[postgres]\nretry_for = \"1s\"\n",
    )
    .unwrap();
    let database = pg.create_database("lost");
    let mut running = Running(
        goldthread()
            .args(["run", "--once", "--config", config.to_str().unwrap()])
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--postgres", &database])
            .env("RUST_BACKTRACE", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for("a batch in PostgreSQL", 120, &|| {
        let (ok, count, _) = pg.psql_in(
            "lost",
            "postgres",
            "SELECT count(*) FROM goldthread.consumed",
        );
        ok && count.parse::<u64>().unwrap_or(0) > 0
    });
    pg.stop();
    let stopped = std::time::Instant::now();
    let mut stderr = running.0.stderr.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < std::time::Duration::from_secs(60),
            "still running a minute after PostgreSQL stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let stderr = reading.join().unwrap();
    assert!(!status.success(), "{stderr}");
    let error = &stderr[stderr.find("Error:").expect("an error")..];
    for cause in [
        "the MDM and analytics stage",
        "writing the batch to PostgreSQL",
        "PostgreSQL writes failed for 1s (postgres.retry_for)",
    ] {
        assert!(error.contains(cause), "`{cause}` in {error}");
    }
}

/// A restart gives the analytics every version they had, not only each record's latest:
/// a work order whose priority changed, a status update after another. A second run over
/// the same store with nothing new to read (every source file empty) restores the first
/// run's state and must compute the same KPIs, breakdowns and exceptions.
#[test]
fn a_restart_restores_the_analytics_history_and_computes_the_same_kpis() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 300, 5);
    // The hard cases this needs are in the data: work orders in more than one version.
    let feed = std::fs::read_to_string(data.path().join("repairs/messages.jsonl")).unwrap();
    let mut schedules = std::collections::BTreeMap::<String, usize>::new();
    for line in feed.lines() {
        let message: serde_json::Value = serde_json::from_str(line).unwrap();
        if message["messageType"] == "ScheduleRepair" {
            *schedules
                .entry(message["workOrderRef"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert!(schedules.values().filter(|versions| **versions > 1).count() > 5);

    let url = pg.create_database("history");
    let period = ["--from", "2024-04-01", "--to", "2025-03-31"];
    let mut args = vec!["--postgres", url.as_str()];
    args.extend(period);
    let (out, again) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = run_once(data.path(), out.path(), &args);

    // The same sources, with nothing in them.
    let empty = tempfile::tempdir().unwrap();
    for file in walk(data.path()) {
        let relative = file.strip_prefix(data.path()).unwrap();
        let target = empty.path().join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let kept = if file.extension().is_some_and(|e| e == "csv") {
            text.lines()
                .next()
                .map(|header| format!("{header}\n"))
                .unwrap_or_default()
        } else {
            String::new()
        };
        std::fs::write(target, kept).unwrap();
    }
    let second = run_once(empty.path(), again.path(), &args);
    assert_eq!(
        second["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|source| source["rows_read"].as_u64().unwrap())
            .sum::<u64>(),
        0
    );
    let rows = |summary: &serde_json::Value| summary["kpis"]["rows"].clone();
    assert!(rows(&first).as_array().unwrap().len() > 30);
    assert_eq!(rows(&second), rows(&first), "KPIs and breakdowns");
    let exceptions = |dir: &tempfile::TempDir| read_csv(&dir.path().join("exceptions.csv"));
    assert_eq!(exceptions(&again), exceptions(&out), "exceptions");
    assert!(
        first["exceptions"]
            .to_string()
            .contains("priority_lowered_after_target"),
        "the data has the case that reads history: {}",
        first["exceptions"]
    );
}

#[test]
fn an_erased_person_leaves_the_store_and_stays_out_after_a_restart() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 60, 3);
    let url = pg.url();
    let (running, address, _, _) = serve(
        goldthread()
            .args(["run", "--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--postgres", &url])
            .env("GOLDTHREAD_STEWARD_TOKEN", "steward-secret-0001")
            .env("GOLDTHREAD_ADMIN_TOKEN", "admin-secret-0001")
            .stderr(std::process::Stdio::null()),
    );
    let cli = |token: &str, args: &[&str]| {
        goldthread()
            .args(args)
            .args(["--url", &format!("http://{address}")])
            .env("GOLDTHREAD_TOKEN", token)
            .output()
            .unwrap()
    };
    // The steward CLI reads the review queue through the running instance.
    let review = cli("steward-secret-0001", &["steward", "review"]);
    assert!(review.status.success(), "{review:?}");
    assert!(String::from_utf8_lossy(&review.stdout).contains("pairs; decide with"));

    let (hms, crm, golden) = merged_pair(&pg);
    let subject = format!("hms:{hms}");
    let held = format!(
        "SELECT (SELECT count(*) FROM goldthread.xref WHERE (source, source_id) IN (('hms', '{hms}'), ('crm', '{crm}')))
              + (SELECT count(*) FROM goldthread.xref_history WHERE (source, source_id) IN (('hms', '{hms}'), ('crm', '{crm}')))
              + (SELECT count(*) FROM goldthread.source_record WHERE kind = 'person' AND (source, source_id) IN (('hms', '{hms}'), ('crm', '{crm}')))
              + (SELECT count(*) FROM goldthread.golden_person WHERE golden_id = '{golden}')"
    );
    assert_ne!(pg.query(&held), "0");
    // The subject access report from the store lists both records.
    let sar = |subject: &str| {
        let output = goldthread()
            .args(["sar", subject, "--postgres", &url])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let report = sar(&subject);
    assert!(
        report.contains(&format!("\"source_id\": \"{hms}\""))
            && report.contains(&format!("\"source_id\": \"{crm}\"")),
        "{report}"
    );

    // Erasure is an admin's: a steward is refused.
    let refused = cli(
        "steward-secret-0001",
        &["erase", &subject, "--reason", "ERQ-17"],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("403"),
        "{refused:?}"
    );
    let erased = cli(
        "admin-secret-0001",
        &["erase", &subject, "--reason", "ERQ-17 granted"],
    );
    assert!(erased.status.success(), "{erased:?}");
    assert_eq!(pg.query(&held), "0", "nothing of the person is left");
    assert_eq!(
        pg.query("SELECT action || ' ' || reason || ' ' || jsonb_array_length(records) FROM goldthread.steward_audit"),
        "erase ERQ-17 granted 2"
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM goldthread.erasure WHERE entity = 'person'"),
        "2"
    );
    // An erased subject's report says only that, and when: by either record or golden id.
    for asked in [subject.clone(), format!("crm:{crm}"), golden.clone()] {
        let report: serde_json::Value = serde_json::from_str(&sar(&asked)).unwrap();
        assert_eq!(
            report.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["erased_at", "held", "subject"],
            "{report}"
        );
    }

    // A restart reads the same files again: the person does not come back.
    drop(running);
    run_once(
        data.path(),
        tempfile::tempdir().unwrap().path(),
        &["--postgres", &url],
    );
    assert_eq!(pg.query(&held), "0");
}

/// A config with one `[[postgres_sources]]` entry, `hms_db_tenants`, reading the source
/// database's tenants as people; `reading` holds its table and how it is read (cursor or
/// logical replication). Written to `dir/source.toml`.
fn tenants_source_config(dir: &std::path::Path, reading: &str) -> std::path::PathBuf {
    let config = dir.join("source.toml");
    std::fs::write(
        &config,
        r#"
data_dir = "."

[[postgres_sources]]
name = "hms_db_tenants"
system = "hms"
url_env = "HMS_DATABASE_URL"
"#
        .to_string()
            + reading
            + r#"[postgres_sources.mapping]
entity = "person"
id = "tenant_id"
fields = { given_name = "forename", family_name = "surname", date_of_birth = "dob" }
"#,
    )
    .unwrap();
    config
}

/// `run --once` with `config` into the store at `store`, reading a source database whose URL
/// goes in `HMS_DATABASE_URL`; the summary of the first source.
fn run_source_db(config: &std::path::Path, store: &str, source_db: &str) -> serde_json::Value {
    let out = tempfile::tempdir().unwrap();
    let output = goldthread()
        .args(["run", "--once", "--config", config.to_str().unwrap()])
        .args(["--out", out.path().to_str().unwrap(), "--postgres", store])
        .env("HMS_DATABASE_URL", source_db)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    summary["sources"][0].clone()
}

#[test]
fn a_polled_source_table_resumes_from_its_confirmed_position() {
    let pg = Postgres::start();
    let store = pg.create_database("store");
    let source_db = pg.create_database("hmsdb");
    pg.query_in(
        "hmsdb",
        "CREATE TABLE tenants (tenant_id text, forename text, surname text, dob date,
                               row_version bigserial);
         ALTER TABLE tenants ALTER COLUMN row_version DROP NOT NULL;
         INSERT INTO tenants (tenant_id, forename, surname, dob) VALUES
           ('T1', 'Ann', 'Lee', '1970-02-03'), ('T2', 'Bob', 'Mensah', '1968-11-23'),
           ('T3', 'Chloe', 'Pryce', '1971-07-30'), ('T4', NULL, 'Nobody', '1980-01-01');",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = tenants_source_config(
        dir.path(),
        "table = \"public.tenants\"\ncursor = \"row_version\"\nbatch_size = 2\n",
    );
    let run = || run_source_db(&config, &store, &source_db);
    let first = run();
    assert_eq!(first["rows_read"], 4, "{first}");
    assert_eq!(first["events_produced"], 4, "{first}");
    assert_eq!(
        pg.query_in("store", "SELECT count(*) FROM goldthread.golden_person"),
        "4"
    );
    assert_eq!(
        pg.query_in("store", "SELECT position FROM goldthread.source_position"),
        "4"
    );

    // New and changed rows only: the second run starts after the confirmed position.
    pg.query_in(
        "hmsdb",
        "INSERT INTO tenants (tenant_id, forename, surname, dob) VALUES ('T5', 'Dan', 'Okafor', '1990-05-06');
         UPDATE tenants SET forename = 'Robert', row_version = nextval('tenants_row_version_seq') WHERE tenant_id = 'T2';",
    );
    let second = run();
    assert_eq!(second["rows_read"], 2, "{second}");
    assert_eq!(
        pg.query_in("store", "SELECT count(*) FROM goldthread.golden_person"),
        "5"
    );
    assert_eq!(
        pg.query_in("store", "SELECT given_name FROM goldthread.golden_person g JOIN goldthread.xref x USING (golden_id) WHERE x.source_id = 'T2'"),
        "Robert"
    );

    // A transaction takes a cursor value and stays open while a later one commits: polling
    // waits for it rather than moving past its row (which it would then never read).
    let mut open = std::process::Command::new("psql")
        .args(["-At", "-v", "ON_ERROR_STOP=1", &source_db])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut session = open.stdin.take().unwrap();
    use std::io::Write;
    writeln!(
        session,
        "BEGIN; INSERT INTO tenants (tenant_id, forename, surname, dob) VALUES ('T6', 'Eve', 'Ahmed', '1985-09-09'); SELECT 'inserted';"
    )
    .unwrap();
    let mut reply = std::io::BufReader::new(open.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("inserted") {
        line.clear();
        std::io::BufRead::read_line(&mut reply, &mut line).unwrap();
    }
    // T7 takes the next value and commits; a NULL cursor is reported, never skipped unseen
    // (it was a panic).
    pg.query_in(
        "hmsdb",
        "INSERT INTO tenants (tenant_id, forename, surname, dob) VALUES ('T7', 'Fay', 'Brown', '1975-01-01');
         INSERT INTO tenants (tenant_id, forename, surname, dob, row_version) VALUES ('T8', 'Gus', 'Null', '1960-01-01', NULL);",
    );
    let held = run();
    assert_eq!(held["events_produced"], 0, "{held}");
    assert_eq!(held["dead_letters"], 1, "the NULL cursor: {held}");
    writeln!(session, "COMMIT;").unwrap();
    drop(session);
    assert!(open.wait().unwrap().success());
    let after = run();
    assert_eq!(after["events_produced"], 2, "T6 and T7: {after}");
    assert_eq!(
        pg.query_in(
            "store",
            "SELECT string_agg(source_id, ',' ORDER BY source_id) FROM goldthread.xref WHERE source_id IN ('T6', 'T7')"
        ),
        "T6,T7"
    );
}

#[test]
fn drop_folder_files_are_read_once_and_new_ones_as_they_arrive() {
    let pg = Postgres::start();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let drops = dir.path().join("drops");
    std::fs::create_dir(&drops).unwrap();
    let drop = |file: &str, rows: &[(&str, &str, &str)]| {
        let mut text = String::from("person_ref,forename,surname,dob\n");
        for (id, forename, surname) in rows {
            text.push_str(&format!(
                "{id},{forename},{surname},1970-01-0{}\n",
                id.len()
            ));
        }
        std::fs::write(drops.join(file), text).unwrap();
    };
    drop(
        "tenants-001.csv",
        &[("A1", "Ann", "Lee"), ("A2", "Bob", "Mensah")],
    );
    drop(
        "tenants-002.csv",
        &[("A3", "Chloe", "Pryce"), ("A4", "Dan", "Okafor")],
    );
    std::fs::write(drops.join("notes.txt"), "not a drop").unwrap();
    let config = dir.path().join("drops.toml");
    std::fs::write(
        &config,
        legacy_tenants_config("drops/tenants-*.csv", "watch = \"200ms\""),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let once = || {
        let out = tempfile::tempdir().unwrap();
        run_ok(&[
            "run",
            "--once",
            "--config",
            config,
            "--postgres",
            &url,
            "--out",
            out.path().to_str().unwrap(),
        ]);
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join("summary.json")).unwrap(),
        )
        .unwrap();
        summary["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|source| source["path"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(once(), ["drops/tenants-001.csv", "drops/tenants-002.csv"]);
    assert_eq!(
        pg.query("SELECT count(*) FROM goldthread.golden_person"),
        "4"
    );
    // Files already read are not read again; a new one is.
    drop("tenants-003.csv", &[("A5", "Eve", "Shah")]);
    assert_eq!(once(), ["drops/tenants-003.csv"]);
    assert_eq!(
        pg.query("SELECT count(*) FROM goldthread.golden_person"),
        "5"
    );

    // A served run picks up a file dropped while it runs.
    let (_running, _, _, _) = serve(
        goldthread()
            .args(["run", "--config", config, "--postgres", &url])
            .args(["--listen", "127.0.0.1:0"])
            .stderr(std::process::Stdio::null()),
    );
    drop("tenants-004.csv", &[("A6", "Fay", "Ng")]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pg.query("SELECT count(*) FROM goldthread.golden_person") != "6" {
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped file was not read"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Recorded as read once its events are stored (just after they are).
    wait_for("tenants-004.csv recorded as read", 30, &|| {
        pg.query("SELECT string_agg(source, ',' ORDER BY source) FROM goldthread.source_position")
            == "legacy_drops/tenants-001.csv,legacy_drops/tenants-002.csv,legacy_drops/tenants-003.csv,legacy_drops/tenants-004.csv"
    });

    // An erasure recorded by another process after this one applied a record's event, and
    // before it wrote it: the store never holds the erased record again.
    pg.query(
        "INSERT INTO goldthread.erasure VALUES (now(), 'admin', 'ERQ-99', 'GP-x', 'person', 'acorn', 'A9')",
    );
    drop(
        "tenants-006.csv",
        &[("A9", "Ida", "Jones"), ("A10", "Jo", "King")],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pg.query("SELECT count(*) FROM goldthread.source_record WHERE source_id = 'A10'") != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "tenants-006.csv was not read"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        pg.query("SELECT count(*) FROM goldthread.source_record WHERE source_id = 'A9'"),
        "0"
    );

    // A file written in two parts, a second apart: read once complete (its first part was
    // read, the file remembered as read, and its last row lost).
    let path = drops.join("tenants-005.csv");
    std::fs::write(
        &path,
        "person_ref,forename,surname,dob\nA7,Gus,Hale,1970-01-02\nA8,Ha",
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    std::io::Write::write_all(
        &mut std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap(),
        b"l,Ito,1970-01-02\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pg
        .query("SELECT count(*) FROM goldthread.golden_person WHERE given_name IN ('Gus', 'Hal')")
        != "2"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the file written in two parts was not read whole"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        pg.query("SELECT count(*) FROM goldthread.source_record WHERE source = 'acorn' AND source_id = 'A8'"),
        "1"
    );
}

#[test]
fn logical_replication_snapshots_then_streams_changes_and_resumes_from_its_slot() {
    let pg = Postgres::start();
    let store = pg.create_database("store");
    let source_db = pg.create_database("hmsdb");
    pg.query_in(
        "hmsdb",
        "CREATE TABLE tenants (tenant_id text PRIMARY KEY, forename text, surname text, dob date);
         INSERT INTO tenants VALUES ('T1', 'Ann', 'Lee', '1970-02-03'), ('T2', 'Bob', 'Mensah', '1968-11-23');
         CREATE PUBLICATION goldthread_hms FOR TABLE tenants;",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = tenants_source_config(
        dir.path(),
        "table = \"tenants\"\nmode = \"logical\"\npublication = \"goldthread_hms\"\n",
    );
    let run = || {
        run_source_db(&config, &store, &source_db)["rows_read"]
            .as_u64()
            .unwrap()
    };
    let golden = || pg.query_in("store", "SELECT count(*) FROM goldthread.golden_person");

    // A first start created the slot and was killed before its snapshot was stored: the
    // next start reads the table whole again (it read nothing, and the rows were lost).
    pg.query_in(
        "hmsdb",
        "SELECT pg_create_logical_replication_slot('goldthread_hms_db_tenants', 'pgoutput')",
    );
    assert_eq!(run(), 2);
    assert_eq!(golden(), "2");
    // Then every insert, update and delete, in commit order (a delete keeps the record's
    // last image), and not the snapshot again: it is stored.
    pg.query_in(
        "hmsdb",
        "INSERT INTO tenants VALUES ('T3', 'Chloe', 'Pryce', '1971-07-30');
         UPDATE tenants SET forename = 'Robert' WHERE tenant_id = 'T2';
         DELETE FROM tenants WHERE tenant_id = 'T1';",
    );
    assert_eq!(run(), 3);
    assert_eq!(golden(), "3");
    assert_eq!(
        pg.query_in("store", "SELECT given_name FROM goldthread.golden_person g JOIN goldthread.xref x USING (golden_id) WHERE x.source_id = 'T2'"),
        "Robert"
    );
    // The slot was advanced past what was read: nothing is read twice.
    assert_eq!(run(), 0);
}

#[test]
fn the_store_connects_over_tls_and_verifies_the_server_certificate() {
    let (pg, ca) = Postgres::start_tls_only();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 20, 1);
    let run = |config: Option<&std::path::Path>, url: &str| {
        let out = tempfile::tempdir().unwrap();
        let mut command = goldthread();
        command.args(["run", "--once", "--data-dir", data.path().to_str().unwrap()]);
        command.args(["--out", out.path().to_str().unwrap(), "--postgres", url]);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        command.output().unwrap()
    };
    // The server takes TLS connections only.
    let plain = run(None, &format!("{}?sslmode=disable", pg.url()));
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("no encryption"),
        "{plain:?}"
    );
    // With the CA that signed the server's certificate: verified TLS, and the run's rows land.
    let config = data.path().join("tls.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[postgres]\ntls_ca_file = \"{}\"\n",
            include_str!("../config/default.toml"),
            ca.display()
        ),
    )
    .unwrap();
    let verified = run(Some(&config), &format!("{}?sslmode=require", pg.url()));
    assert!(verified.status.success(), "{verified:?}");
    assert_ne!(
        pg.query("SELECT count(*) FROM goldthread.golden_person"),
        "0"
    );
    // A certificate the configured CA did not sign is refused.
    let other = data.path().join("other.crt");
    let output = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=other", "-keyout"])
        .arg(data.path().join("other.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(output.status.success());
    std::fs::write(
        &config,
        format!(
            "{}\n[postgres]\ntls_ca_file = \"{}\"\n",
            include_str!("../config/default.toml"),
            other.display()
        ),
    )
    .unwrap();
    let untrusted = run(Some(&config), &format!("{}?sslmode=require", pg.url()));
    assert!(!untrusted.status.success(), "{untrusted:?}");
}

/// The contractor's token for `serve_contractor_webhook`'s run.
const CONTRACTOR: &str = "contractor-secret-stored-5";

/// A served run over a small sample landlord in `data` with the contractor's job-update
/// webhook (and `extra` configuration), storing to `pg`: the process and its address.
fn serve_contractor_webhook(
    pg: &Postgres,
    data: &std::path::Path,
    extra: &str,
    stderr: std::process::Stdio,
) -> (Running, String) {
    generate(data, 10, 3);
    let config = data.join("webhook.toml");
    let text = include_str!("../config/default.toml").to_string() + &contractor_job_updates();
    std::fs::write(&config, text + extra).unwrap();
    let (running, address, _, _) = serve(
        goldthread()
            .args(["run", "--config", config.to_str().unwrap()])
            .args(["--data-dir", data.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--postgres", &pg.url()])
            .env("GOLDTHREAD_CONTRACTOR_A_TOKEN", CONTRACTOR)
            .stderr(stderr),
    );
    (running, address)
}

/// On the embedded broker a webhook's 202 waits for the store: once answered, the event is
/// in PostgreSQL, so a kill -9 right after loses nothing. Without PostgreSQL such a run is
/// refused (`tests/hardening.rs`).
#[test]
fn a_webhooks_202_on_the_embedded_broker_means_the_event_is_stored() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    let (running, address) =
        serve_contractor_webhook(&pg, data.path(), "", std::process::Stdio::null());
    for id in ["M-1", "M-2", "M-3"] {
        let body = format!(
            r#"{{"messageId": "{id}", "job": "WO000001", "status": "in_progress", "statusAt": "2025-03-04T10:15:00Z"}}"#
        );
        let (status, answer) = request(
            &address,
            "POST",
            "/webhooks/contractor_a",
            Some(CONTRACTOR),
            Some(&body),
        );
        assert_eq!(status, 202, "{answer}");
        // No wait: answered means stored.
        assert_eq!(
            pg.query(&format!(
                "SELECT count(*) FROM goldthread.source_record WHERE source = 'repairs' AND source_id = '{id}'"
            )),
            "1"
        );
    }
    drop(running);
}

/// A served run whose store is gone for longer than `postgres.retry_for` stops, as Ctrl-C
/// stops it: the webhook waiting for its event to be stored is answered (503: retry), not
/// left hanging or cut, and the process exits with the store's failure as its cause.
#[test]
fn a_served_run_whose_store_is_lost_answers_what_waits_and_stops_with_the_cause() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    let log = data.path().join("stderr.log");
    let retry_briefly = "\n[postgres]\nretry_for = \"1s\"\n";
    let stderr = std::fs::File::create(&log).unwrap();
    let (mut running, address) =
        serve_contractor_webhook(&pg, data.path(), retry_briefly, stderr.into());
    pg.stop();
    let asked = std::time::Instant::now();
    let body = r#"{"messageId": "M-9", "job": "WO000001", "status": "in_progress", "statusAt": "2025-03-04T10:15:00Z"}"#;
    let (status, answer) = request(
        &address,
        "POST",
        "/webhooks/contractor_a",
        Some(CONTRACTOR),
        Some(body),
    );
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("the stage stopped"), "{answer}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(60),
        "answered only after {:?}",
        asked.elapsed()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let exited = loop {
        if let Some(exited) = running.0.try_wait().unwrap() {
            break exited;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after its stage stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(!exited.success());
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("PostgreSQL writes failed for 1s (postgres.retry_for)"),
        "{stderr}"
    );
}

/// Dead letters are kept in the store by the record they are about: a subject access report
/// lists them, and an erasure keeps where and which field, not the row or the reason.
#[test]
fn dead_letters_are_kept_reported_and_erased_with_their_record() {
    let pg = Postgres::start();
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tenants.csv"),
        "person_ref,forename,surname,dob\nA1,Ann,Lee,1970-01-02\nA1,Ann,Lee\nA2,Bob,Ng,1980-05-06\n",
    )
    .unwrap();
    let config = dir.path().join("tenants.toml");
    std::fs::write(&config, legacy_tenants_config("tenants.csv", "")).unwrap();
    let config = config.to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    run_ok(&[
        "run",
        "--once",
        "--config",
        config,
        "--postgres",
        &url,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(
        pg.query("SELECT position || ' ' || ref_source || ':' || ref_id || ' ' || raw FROM goldthread.dead_letter"),
        "tenants.csv:3 acorn:A1 A1,Ann,Lee"
    );
    let sar = |subject: &str| {
        let output = goldthread()
            .args(["sar", subject, "--postgres", &url])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let report = sar("acorn:A1");
    assert_eq!(
        report["dead_letters"][0]["position"], "tenants.csv:3",
        "{report}"
    );
    assert_eq!(sar("acorn:A2")["dead_letters"], serde_json::json!([]));

    let (_running, address, _, _) = serve(
        goldthread()
            .args(["run", "--config", config, "--postgres", &url])
            .args(["--listen", "127.0.0.1:0"])
            .env("GOLDTHREAD_ADMIN_TOKEN", "admin-secret-dead-letters")
            .stderr(std::process::Stdio::null()),
    );
    let erased = goldthread()
        .args(["erase", "acorn:A1", "--reason", "ERQ-3"])
        .args(["--url", &format!("http://{address}")])
        .env("GOLDTHREAD_TOKEN", "admin-secret-dead-letters")
        .output()
        .unwrap();
    assert!(erased.status.success(), "{erased:?}");
    assert_eq!(
        pg.query("SELECT position || ' ' || coalesce(field, '-') || ' ' || reason || ' ' || raw FROM goldthread.dead_letter"),
        "tenants.csv:3 - [erased] [erased]"
    );
    assert!(sar("acorn:A1")["erased_at"].is_string());
}
