//! The pipeline against a standalone Kafka-protocol broker (tansu, a separate process), with
//! change events written by an independent client (kcat) in the Debezium envelope, a kill -9
//! mid-stream that resumes from the positions stored in PostgreSQL, and TLS.

mod common;

use common::*;

/// The built-in configuration pointed at `broker`, with the HMS tenants read from a
/// Debezium topic instead of their CSV export.
fn config_with_debezium_tenants(broker: &Broker, topic: &str) -> String {
    with_debezium_tenants(&broker.config(), topic)
}

#[test]
fn debezium_changes_from_an_independent_client_give_the_same_golden_records_as_the_export() {
    let broker = Broker::start();
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 120, 4);

    // The reference: every source from its export, on the embedded broker.
    let reference = tempfile::tempdir().unwrap();
    run_once(data.path(), reference.path(), &[]);

    let topic = "hmsdb.dbo.tenants";
    broker.create_topic(topic, 2);
    let mut messages = tenants_as_change_events(data.path());
    let tenants = messages.len() as u64;
    // An update that changes nothing, a tombstone, and two messages that are not changes.
    messages.push(messages[0].replace("\"op\":\"r\"", "\"op\":\"u\""));
    messages.push(format!("{}\t", messages[0].split('\t').next().unwrap()));
    messages.push("T999998\t{\"op\": \"c\", \"after\": {\"forename\": \"Ann\"".into());
    messages.push("T999999\t{\"op\": \"m\", \"after\": {}}".into());
    broker.produce(topic, &messages);

    let config = data.path().join("debezium.toml");
    std::fs::write(&config, config_with_debezium_tenants(&broker, topic)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let summary = run_once(
        data.path(),
        out.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--postgres",
            &pg.url(),
        ],
    );
    assert!(
        summary["broker"]
            .as_str()
            .unwrap()
            .contains(&broker.address)
    );
    let cdc = summary["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|source| source["name"] == "hms_tenants_cdc")
        .expect("the debezium source is in the summary");
    assert_eq!(cdc["rows_read"], tenants + 4, "{cdc}");
    assert_eq!(cdc["events_produced"], tenants + 1, "{cdc}");
    assert_eq!(cdc["dead_letters"], 2, "{cdc}");

    // Golden ids come from source references, so the same people give the same xref.
    assert_eq!(
        std::fs::read_to_string(out.path().join("xref.csv")).unwrap(),
        std::fs::read_to_string(reference.path().join("xref.csv")).unwrap()
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM goldthread.golden_person"),
        summary["mdm"]["golden_persons"].to_string()
    );
    // The change's commit time is the record's recorded time.
    assert_eq!(
        pg.query("SELECT count(*) FROM goldthread.source_record WHERE kind = 'person' AND source = 'hms' AND event->>'recorded_at' = '2025-01-01T00:00:00Z'"),
        tenants.to_string()
    );
}

/// The KPI snapshots and the exceptions stored in two databases are the same, and not empty.
fn same_kpis_and_exceptions(pg: &Postgres, database: &str, reference: &str) {
    for table in [
        "(SELECT period_from, period_to, kpi, key, value, numerator, denominator FROM goldthread.kpi_snapshot)",
        "(SELECT rule, record, detail, as_of FROM goldthread.kpi_exception)",
    ] {
        let checksum = |database: &str| {
            pg.query_in(
                database,
                &format!("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"),
            )
        };
        assert_eq!(checksum(database), checksum(reference), "{table}");
        assert!(!checksum(reference).starts_with("0:"), "{table} is empty");
    }
}

#[test]
fn a_run_on_a_standalone_broker_killed_mid_stream_resumes_from_the_store_and_loses_nothing() {
    let broker = Broker::start();
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 150, 6);
    // Small batches for the run that is killed, so the kill lands between commits.
    // A killed member holds its partitions until its session times out: keep that short.
    // A rebalance may wait for a member it knows up to that member's max.poll.interval.ms
    // (librdkafka's default 300 s). Once, under CI's load, the restarted run below made no
    // progress for over 4 minutes after reading its positions, likely waiting on the killed
    // member so: bound that wait too.
    let on_broker = broker.config()
        + "\"session.timeout.ms\" = \"6000\"\n\"max.poll.interval.ms\" = \"10000\"\n";
    let small_batches = data.path().join("small-batches.toml");
    std::fs::write(
        &small_batches,
        on_broker.replace("batch_size = 5000", "batch_size = 100"),
    )
    .unwrap();
    let config = data.path().join("broker.toml");
    std::fs::write(&config, &on_broker).unwrap();
    let config = config.to_str().unwrap();

    // The reference: a clean run on the embedded broker into its own database.
    let clean = pg.create_database("clean");
    run_once(
        data.path(),
        tempfile::tempdir().unwrap().path(),
        &["--postgres", &clean],
    );

    let crashed = pg.create_database("crashed");
    run_killed_after_first_commit(&pg, "crashed", small_batches.to_str().unwrap(), data.path());
    let stored: u64 = pg
        .query_in("crashed", "SELECT count(*) FROM goldthread.source_record")
        .parse()
        .unwrap();
    let expected: u64 = pg
        .query_in("clean", "SELECT count(*) FROM goldthread.source_record")
        .parse()
        .unwrap();
    assert!(
        stored < expected,
        "killed after {stored} of {expected} records"
    );

    // The restart rebuilds from the store, sets the group to the stored positions, reads the
    // files again (their events are appended to the topics a second time) and consumes on,
    // after the killed member's session has timed out (see the test below).
    std::thread::sleep(std::time::Duration::from_secs(10));
    run_once(
        data.path(),
        tempfile::tempdir().unwrap().path(),
        &["--config", config, "--postgres", &crashed],
    );
    // Every derived row, the KPIs and the exceptions equal the clean run's.
    assert_eq!(checksums_in(&pg, "crashed"), checksums_in(&pg, "clean"));
    same_kpis_and_exceptions(&pg, "crashed", "clean");
}

/// A restart that does not read its repairs feed again (a drop folder's file, remembered as
/// read) gets the analytics' history from the store: killed with `kill -9` mid-stream, with
/// work orders whose priority changed already consumed, the restarted run consumes on from
/// the stored positions and must compute the KPIs and exceptions of a run that never stopped.
#[test]
fn a_run_killed_after_its_feed_was_read_keeps_the_analytics_history_across_the_restart() {
    let broker = Broker::start();
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 300, 6);
    let repairs = data.path().join("repairs");
    std::fs::rename(
        repairs.join("messages.jsonl"),
        repairs.join("messages-001.jsonl"),
    )
    .unwrap();
    // A drop folder reads a file once it is complete: unmodified for 2 s at startup.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(repairs.join("messages-001.jsonl"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let dropped = |config: String| {
        assert!(config.contains("path = \"repairs/messages.jsonl\""));
        config.replace(
            "path = \"repairs/messages.jsonl\"",
            "path = \"repairs/messages-*.jsonl\"",
        )
    };
    let write = |name: &str, text: String| {
        let path = data.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let embedded = write(
        "embedded.toml",
        dropped(include_str!("../config/default.toml").to_string()),
    );
    let on_broker = dropped(broker.config())
        + "\"session.timeout.ms\" = \"6000\"\n\"max.poll.interval.ms\" = \"10000\"\n";
    let small_batches = write(
        "small-batches.toml",
        on_broker.replace("batch_size = 5000", "batch_size = 20"),
    );
    let on_broker = write("broker.toml", on_broker);
    let period = ["--from", "2024-04-01", "--to", "2025-03-31"];

    let clean = pg.create_database("clean");
    let mut args = vec!["--config", embedded.as_str(), "--postgres", clean.as_str()];
    args.extend(period);
    let clean_out = tempfile::tempdir().unwrap();
    run_once(data.path(), clean_out.path(), &args);
    let versions: u64 = pg
        .query_in("clean", "SELECT count(*) FROM goldthread.source_event")
        .parse()
        .unwrap();

    // Killed once the feed is remembered as read and about half of it is consumed.
    let crashed = pg.create_database("crashed");
    let mut running = Running(
        goldthread()
            .args(["run", "--config", &small_batches, "--data-dir"])
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0", "--postgres", &crashed])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let stored = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the feed was never read"
        );
        let query = "SELECT (SELECT count(*) FROM goldthread.source_position WHERE source = 'repairs_feed/messages-001.jsonl') || ' ' || (SELECT count(*) FROM goldthread.source_event)";
        let (ok, answer, _) = pg.psql_in("crashed", "postgres", query);
        let counts: Vec<u64> = answer.split(' ').filter_map(|n| n.parse().ok()).collect();
        // Half-way: both versions of many changed orders consumed, many orders still to come.
        if ok && counts.len() == 2 && counts[0] == 1 && counts[1] > versions / 2 {
            running.0.kill().unwrap();
            running.0.wait().unwrap();
            break counts[1];
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(
        stored < versions,
        "killed after {stored} of {versions} repairs events were stored"
    );

    // The restart does not read the feed again: it restores, and consumes on. It comes after
    // the killed member's session has timed out: a member joining before then can be handed
    // no partitions by tansu (generation 1, an empty assignment, no rebalance when the dead
    // member expires), and waits for ever.
    std::thread::sleep(std::time::Duration::from_secs(10));
    let mut args = vec![
        "--config",
        on_broker.as_str(),
        "--postgres",
        crashed.as_str(),
    ];
    args.extend(period);
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("run.log");
    let mut restart = Running(
        goldthread()
            .args(["run", "--once", "--data-dir"])
            .arg(data.path())
            .arg("--out")
            .arg(out.path())
            .args(&args)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while restart.0.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let text = std::fs::read_to_string(&log).unwrap();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            panic!(
                "the restart did not finish:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let feed = summary["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|source| source["name"] == "repairs_feed");
    assert!(
        feed.is_none_or(|feed| feed["rows_read"] == 0),
        "the feed is not read again: {feed:?}"
    );
    same_kpis_and_exceptions(&pg, "crashed", "clean");
    let exceptions = |dir: &tempfile::TempDir| read_csv(&dir.path().join("exceptions.csv"));
    assert_eq!(exceptions(&out), exceptions(&clean_out));
    assert!(
        exceptions(&clean_out)
            .iter()
            .any(|row| row["rule"] == "priority_lowered_after_target")
    );
}

/// The broker hangs for 10 s, then PostgreSQL stops for 10 s, while a contractor posts job
/// updates: `/ready` and the metrics show each outage, nothing is lost, nothing doubled.
/// A real broker without a store: the hub lives in memory, so a restart rebuilds it from
/// the topics' beginning rather than from offsets an in-memory apply had committed (which
/// left the second run without the first run's change events).
#[test]
fn without_a_store_a_restart_rebuilds_the_hub_from_the_topics() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 40, 8);
    let topic = "hmsdb.dbo.tenants";
    broker.create_topic(topic, 2);
    broker.produce(topic, &tenants_as_change_events(data.path()));
    let config = data.path().join("debezium.toml");
    std::fs::write(&config, config_with_debezium_tenants(&broker, topic)).unwrap();
    let run = || {
        let out = tempfile::tempdir().unwrap();
        let summary = run_once(
            data.path(),
            out.path(),
            &["--config", config.to_str().unwrap()],
        );
        let xref = std::fs::read_to_string(out.path().join("xref.csv")).unwrap();
        (summary, xref)
    };
    let (first, first_xref) = run();
    let (second, second_xref) = run();
    // The second run's Debezium source has nothing new to read: the tenants come from the
    // canonical topic, read again from its beginning.
    let read = |summary: &serde_json::Value| {
        summary["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|source| source["name"] == "hms_tenants_cdc")
            .unwrap()["rows_read"]
            .clone()
    };
    assert!(read(&first).as_u64().unwrap() > 0);
    assert_eq!(read(&second), 0);
    assert_eq!(first["mdm"], second["mdm"]);
    assert_eq!(first_xref, second_xref);
}

/// Debezium creates its topics when its connector first runs: a source started before
/// then is retried (and shows so) until the topic exists, then reads it.
#[test]
fn a_debezium_source_started_before_its_topic_exists_reads_it_once_it_does() {
    const ADMIN: &str = "admin-secret-for-start-order";
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 20, 6);
    let topic = "hmsdb.dbo.tenants";
    let config = data.path().join("debezium.toml");
    std::fs::write(&config, config_with_debezium_tenants(&broker, topic)).unwrap();
    let (_running, address, _, _) = serve(
        goldthread()
            .args(["run", "--config", config.to_str().unwrap()])
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0"])
            .env("GOLDTHREAD_ADMIN_TOKEN", ADMIN)
            .stderr(std::process::Stdio::null()),
    );
    let wait_for = |what: &str, check: &dyn Fn() -> bool| wait_for(what, 120, check);
    let ready = || request(&address, "GET", "/ready", None, None);
    wait_for("the source to show as retrying", &|| {
        let (status, body) = ready();
        status == 503 && body.contains(r#""hms_tenants_cdc":"retrying""#)
    });

    broker.create_topic(topic, 2);
    broker.produce(topic, &tenants_as_change_events(data.path()));
    wait_for_the_last_tenant(&address, ADMIN, data.path(), 120);
}

#[test]
fn broker_and_postgres_outages_lose_nothing_and_show_in_readiness_and_metrics() {
    const VIEWER: &str = "viewer-secret-0001";
    const CONTRACTOR: &str = "contractor-secret-0001";
    let broker = Broker::start();
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 30, 2);
    let config = data.path().join("outages.toml");
    std::fs::write(&config, broker.config() + &contractor_job_updates()).unwrap();
    let (_running, address, _, _) = serve(
        goldthread()
            .args(["run", "--config", config.to_str().unwrap()])
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--postgres", &pg.url()])
            .env("GOLDTHREAD_VIEWER_TOKEN", VIEWER)
            .env("GOLDTHREAD_CONTRACTOR_A_TOKEN", CONTRACTOR)
            .stderr(std::process::Stdio::null()),
    );
    let ready = || request(&address, "GET", "/ready", None, None);
    let post = |id: &str| {
        let body = format!(
            r#"{{"messageId": "{id}", "job": "WO000001", "status": "in_progress", "statusAt": "2025-03-04T10:15:00Z"}}"#
        );
        request(
            &address,
            "POST",
            "/webhooks/contractor_a",
            Some(CONTRACTOR),
            Some(&body),
        )
    };
    let stored = |id: &str| {
        let (ok, count, _) = pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM goldthread.source_record WHERE source = 'repairs' AND source_id = '{id}'"),
        );
        if ok { count } else { "unreachable".into() }
    };
    let wait_for = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !check() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    assert_eq!(ready().0, 200, "{:?}", ready());

    // The broker hangs: not ready; a message posted meanwhile is answered once it is in.
    // (`/ready` checks at most every 2 s: it may answer from its last check meanwhile.)
    broker.pause();
    wait_for("not ready", &|| ready().0 == 503);
    let (status, body) = ready();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"broker\":\"unreachable\""), "{body}");
    let during = std::thread::scope(|scope| {
        let posting = scope.spawn(|| post("M-1"));
        std::thread::sleep(std::time::Duration::from_secs(10));
        broker.resume();
        posting.join().unwrap()
    });
    assert_eq!(during.0, 202, "{}", during.1);
    wait_for("M-1 in PostgreSQL", &|| stored("M-1") == "1");
    wait_for("ready again", &|| ready().0 == 200);

    // PostgreSQL stops: not ready; the broker still takes messages, and the stage holds
    // them (committing nothing) until the database is back.
    pg.stop();
    wait_for("not ready", &|| ready().0 == 503);
    let (status, body) = ready();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"postgres\":\"unreachable\""), "{body}");
    assert_eq!(post("M-2").0, 202);
    std::thread::sleep(std::time::Duration::from_secs(10));
    pg.resume();
    wait_for("M-2 in PostgreSQL", &|| stored("M-2") == "1");
    wait_for("ready again", &|| ready().0 == 200);

    let (_, metrics) = request(&address, "GET", "/metrics", Some(VIEWER), None);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(value("store_write_failures_total") >= 1.0, "{metrics}");
    assert_eq!(value("store_up"), 1.0);
    // Each message once.
    assert_eq!(stored("M-1"), "1");
    assert_eq!(stored("M-2"), "1");
}

/// Two processes in one consumer group on a standalone broker share the topics' partitions
/// and one store: one reads the files, both consume and match, each catching up with what
/// the other wrote before it writes. The store ends with exactly the rows of a single
/// process's run, and a steward verdict given through either process holds in both.
#[test]
fn two_processes_in_one_group_share_the_partitions_and_write_the_rows_of_one_run() {
    const VIEWER: &str = "viewer-secret-0001";
    const STEWARD: &str = "steward-secret-0001";
    let broker = Broker::start();
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 150, 8);
    let clean = pg.create_database("clean");
    run_once(
        data.path(),
        tempfile::tempdir().unwrap().path(),
        &["--postgres", &clean],
    );

    // Small batches, so that the two processes' writes interleave many times.
    let config = data.path().join("group.toml");
    std::fs::write(
        &config,
        broker
            .config()
            .replace("batch_size = 5000", "batch_size = 200"),
    )
    .unwrap();
    let scaled = pg.create_database("scaled");
    let member = |extra: &[&str]| {
        serve(
            goldthread()
                .args(["run", "--config", config.to_str().unwrap()])
                .args(["--data-dir", data.path().to_str().unwrap()])
                .args(["--listen", "127.0.0.1:0", "--postgres", &scaled])
                .args(extra)
                .env("GOLDTHREAD_VIEWER_TOKEN", VIEWER)
                .env("GOLDTHREAD_STEWARD_TOKEN", STEWARD)
                .stderr(std::process::Stdio::null()),
        )
    };
    // The consumer-only member joins first; the reader's `ready` waits for the group's
    // stored positions to reach every partition's end.
    let (_consumer, consumer_address, _, _) = member(&["--no-sources"]);
    let (_reader, reader_address, ready, _) = member(&[]);
    assert!(ready.starts_with("ready:"), "{ready}");

    assert_eq!(checksums_in(&pg, "scaled"), checksums_in(&pg, "clean"));
    let consumed = |address: &str| -> f64 {
        let (status, metrics) = request(address, "GET", "/metrics", Some(VIEWER), None);
        assert_eq!(status, 200, "{metrics}");
        metrics
            .lines()
            .filter(|line| line.starts_with("stage_events_consumed_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let (by_consumer, by_reader) = (consumed(&consumer_address), consumed(&reader_address));
    let events: f64 = pg
        .query_in("clean", "SELECT count(*) FROM goldthread.source_record")
        .parse()
        .unwrap();
    assert!(
        by_consumer > 0.0 && by_reader > 0.0 && by_consumer + by_reader >= events,
        "consumed: {by_consumer} by the consumer-only member, {by_reader} by the reader, of {events} records"
    );

    // Two merged HMS-CRM pairs; a steward splits one through each process. Each process
    // applies the other's verdict before it writes (the verdicts are stored whole), so both
    // stand.
    let pairs = pg.query_in(
        "scaled",
        "SELECT string_agg(hms || ' ' || crm, ' ') FROM (
             SELECT min(a.source_id) AS hms, min(b.source_id) AS crm
               FROM goldthread.xref a JOIN goldthread.xref b USING (golden_id)
              WHERE a.entity = 'person' AND a.source = 'hms' AND b.source = 'crm'
              GROUP BY golden_id ORDER BY 1 LIMIT 2) pairs",
    );
    let ids: Vec<&str> = pairs.split(' ').collect();
    assert_eq!(ids.len(), 4, "two merged pairs: {pairs}");
    for (address, pair) in [
        (&consumer_address, &ids[0..2]),
        (&reader_address, &ids[2..4]),
    ] {
        let body = serde_json::json!({
            "a": {"system": "hms", "id": pair[0]}, "b": {"system": "crm", "id": pair[1]},
            "verdict": "different", "reason": "different people: checked with the housing officer",
        })
        .to_string();
        let (status, response) = request(
            address,
            "POST",
            "/api/steward/decisions",
            Some(STEWARD),
            Some(&body),
        );
        assert_eq!(status, 200, "{response}");
    }
    assert_eq!(
        pg.query_in("scaled", "SELECT count(*) FROM goldthread.steward_verdict"),
        "2"
    );
    for pair in ids.chunks(2) {
        let golden = |source: &str, id: &str| {
            pg.query_in(
                "scaled",
                &format!("SELECT golden_id FROM goldthread.xref WHERE entity = 'person' AND source = '{source}' AND source_id = '{id}'"),
            )
        };
        assert_ne!(golden("hms", pair[0]), golden("crm", pair[1]), "{pair:?}");
    }
}

/// The resident set of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib * 1024
}

/// A slow sink holds the stage (here: PostgreSQL's write lock is held by someone else) while
/// a drop folder brings 250,000 work orders (about 135 MiB of events). The process reads and
/// produces all of them, but its memory grows by what its bounds allow (the consumer's
/// pre-fetch, one batch, the producer's window), not by what the broker holds; the lag shows
/// in the metrics, and once the sink is free every event is stored.
#[test]
fn a_slow_sink_holds_memory_to_the_configured_bounds_and_loses_nothing() {
    const VIEWER: &str = "viewer-secret-0001";
    const ORDERS: usize = 250_000;
    let broker = Broker::start();
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let drops = dir.path().join("drops");
    std::fs::create_dir(&drops).unwrap();
    let drop = |name: &str, range: std::ops::Range<usize>| {
        let mut text = String::from("ref,property,priority,raised,contractor\n");
        for i in range {
            text.push_str(&format!(
                "WO{i:07},P{:05},{},2025-01-0{}T09:00:00Z,Contractor {}\n",
                i % 5000,
                1 + i % 4,
                1 + i % 9,
                i % 7
            ));
        }
        // Written aside and renamed, so the watcher never sees half a file.
        let part = dir.path().join(name);
        std::fs::write(&part, text).unwrap();
        std::fs::rename(&part, drops.join(name)).unwrap();
    };
    drop("orders-0.csv", 0..10);
    let config = dir.path().join("backpressure.toml");
    std::fs::write(
        &config,
        broker.config().replace("data_dir = \"data/sample\"", "data_dir = \".\"")
            // The consumer pre-fetches at most 8 MiB, 1 MiB per fetch.
            + "\"queued.max.messages.kbytes\" = \"8192\"\n\"fetch.max.bytes\" = \"1048576\"\n",
    )
    .unwrap();
    // Only the drop folder: the built-in sources are replaced.
    let text = std::fs::read_to_string(&config).unwrap();
    let mut table: toml::Table = text.parse().unwrap();
    table.insert(
        "sources".into(),
        toml::Value::Array(vec![
            r#"
name = "order_drops"
system = "repairs"
path = "drops/orders-*.csv"
format = "csv"
watch = "200ms"
[mapping]
entity = "work_order"
id = "ref"
fields = { property_ref = "property", priority = "priority", raised_at = "raised", contractor = "contractor" }
"#
            .parse::<toml::Table>()
            .unwrap()
            .into(),
        ]),
    );
    std::fs::write(&config, toml::to_string(&table).unwrap()).unwrap();
    let (running, address, _, _) = serve(
        goldthread()
            .args(["run", "--config", config.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--postgres", &pg.url()])
            .env("GOLDTHREAD_VIEWER_TOKEN", VIEWER)
            .stderr(std::process::Stdio::null()),
    );
    let pid = running.0.id();
    let metric = |name: &str| -> f64 {
        let (status, metrics) = request(&address, "GET", "/metrics", Some(VIEWER), None);
        assert_eq!(status, 200, "{metrics}");
        metrics
            .lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let stored = || -> usize {
        pg.query("SELECT count(*) FROM goldthread.source_record WHERE kind = 'work_order'")
            .parse()
            .unwrap()
    };
    assert_eq!(stored(), 10);

    // The sink stops: another session holds the group's write lock.
    let mut holder = std::process::Command::new("psql")
        .args([&pg.url(), "-c"])
        .env("PGAPPNAME", "sink_holder")
        .arg(format!(
            "SELECT pg_advisory_lock({}); SELECT pg_sleep(600)",
            0x676f_6c64_7468_7264_i64
        ))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = rss(pid);
    drop("orders-1.csv", 10..ORDERS);
    // Memory is sampled while the drop is produced: it may grow at first (the pre-fetch
    // queue and the producer's window fill), then must stay flat while the rest goes by.
    let (mut first_third, mut peak) = (before, before);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let produced = metric("connector_events_produced_total");
        let now = rss(pid);
        peak = peak.max(now);
        if produced < (ORDERS / 3) as f64 {
            first_third = peak;
        }
        if produced >= ORDERS as f64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the drop was not produced"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The gauge is set once a second.
    std::thread::sleep(std::time::Duration::from_millis(2000));
    peak = peak.max(rss(pid));
    let waiting = metric("stage_batch_waiting_seconds");
    let held = stored();
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let produced = metric("kafka_bytes_produced_total") / (1 << 20) as f64;
    eprintln!(
        "memory: {:.1} MiB before, {:.1} MiB after a third, {:.1} MiB at the end, while {ORDERS} events ({produced:.0} MiB) waited; batch waiting {waiting} s",
        mib(before),
        mib(first_third),
        mib(peak)
    );
    assert!(
        held < ORDERS / 2,
        "the sink was held, yet {held} were stored"
    );
    assert!(waiting >= 2.0, "stage_batch_waiting_seconds {waiting}");
    // The bounds add up to about 40 MiB (8 MiB pre-fetch, the producer's 10,000 messages in
    // flight and the allocator's share); an unbounded queue holds at least the events' bytes.
    // When the bounded buffers fill depends on how fast the broker is, so growth after the
    // first third is only required to stay well below the bytes that went by meanwhile.
    assert!(
        mib(peak - before) < 64.0 && mib(peak - before) < produced / 2.0,
        "memory grew by {:.1} MiB while the sink was held ({produced:.0} MiB of events)",
        mib(peak - before)
    );
    assert!(
        mib(peak - first_third) < produced / 3.0,
        "memory grew by {:.1} MiB over the last two thirds ({:.0} MiB of events)",
        mib(peak - first_third),
        produced * 2.0 / 3.0
    );

    // The sink frees up: everything arrives, once.
    pg.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'sink_holder'");
    holder.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while stored() < ORDERS {
        assert!(std::time::Instant::now() < deadline, "stored {}", stored());
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(stored(), ORDERS);
}

/// Kafka over TLS (`[kafka.security] protocol = "ssl"`): the broker's certificate is
/// verified against `ca_file` and every event goes through, giving the golden records of a
/// run on the embedded broker; a CA that did not sign the certificate is refused at startup,
/// and the error names the failed handshake.
#[test]
fn a_run_over_tls_verifies_the_brokers_certificate() {
    let (broker, ca) = Broker::start_behind_tls();
    let data = tempfile::tempdir().unwrap();
    generate(data.path(), 40, 6);
    let reference = tempfile::tempdir().unwrap();
    let expected = run_once(data.path(), reference.path(), &[]);
    let config = |ca: &std::path::Path| {
        let path = data.path().join("tls.toml");
        let security = format!(
            "\n[kafka.security]\nprotocol = \"ssl\"\nca_file = \"{}\"\n",
            ca.display()
        );
        std::fs::write(&path, broker.config() + &security).unwrap();
        path
    };

    let out = tempfile::tempdir().unwrap();
    let summary = run_once(
        data.path(),
        out.path(),
        &["--config", config(&ca).to_str().unwrap()],
    );
    assert!(
        summary["broker"]
            .as_str()
            .unwrap()
            .contains(&broker.address)
    );
    let consumed = |summary: &serde_json::Value| -> u64 {
        summary["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|topic| topic["consumed"].as_u64().unwrap())
            .sum()
    };
    assert!(consumed(&summary) > 0);
    assert_eq!(consumed(&summary), consumed(&expected));
    assert_eq!(
        std::fs::read_to_string(out.path().join("xref.csv")).unwrap(),
        std::fs::read_to_string(reference.path().join("xref.csv")).unwrap()
    );

    let other = data.path().join("other.crt");
    self_signed(&other, &data.path().join("other.key"), "other");
    let refused_out = tempfile::tempdir().unwrap();
    let refused = goldthread()
        .args(["run", "--once", "--data-dir", data.path().to_str().unwrap()])
        .args(["--config", config(&other).to_str().unwrap()])
        .args(["--out", refused_out.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("SSL handshake failed") && stderr.contains("certificate verify failed"),
        "{stderr}"
    );
}
