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
];

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
    let xref_rows = read_csv(&out.path().join("xref.csv")).len();
    assert_eq!(
        pg.query("SELECT count(*) FROM goldthread.xref"),
        xref_rows.to_string()
    );
    assert_ne!(
        pg.query("SELECT count(*) FROM goldthread.match_decision WHERE decided_by = 'model'"),
        "0"
    );
    assert_eq!(
        pg.query("SELECT string_agg(version::text, ',' ORDER BY version) FROM public.goldthread_migrations"),
        "1,2"
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
    let (ok, _, err) = pg.psql(
        "dashboards",
        "SELECT given_name FROM goldthread.golden_person",
    );
    assert!(!ok && err.contains("permission denied"), "{err}");
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
    let (_running, address, _, _) = serve(
        goldthread()
            .args(["run", "--data-dir", data.path().to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--postgres", &url])
            .env("GOLDTHREAD_STEWARD_TOKEN", "steward-secret")
            .stderr(std::process::Stdio::null()),
    );
    // A merged HMS tenant and CRM contact, from the store itself.
    let pair = pg.query(
        "SELECT a.source_id || ' ' || b.source_id FROM goldthread.xref a JOIN goldthread.xref b USING (golden_id)
          WHERE a.entity = 'person' AND a.source = 'hms' AND b.source = 'crm'
          ORDER BY a.source_id LIMIT 1",
    );
    let (hms, crm) = pair.split_once(' ').expect("a merged pair");
    let body = serde_json::json!({
        "a": {"system": "hms", "id": hms}, "b": {"system": "crm", "id": crm},
        "verdict": "different", "reason": "different people: checked with the housing officer",
    })
    .to_string();
    let (status, response) = request(
        &address,
        "POST",
        "/api/steward/decisions",
        Some("steward-secret"),
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
    // A BI login cannot read the audit (it names source records).
    pg.query("CREATE ROLE dashboards LOGIN IN ROLE goldthread_bi");
    let (ok, _, _) = pg.psql("dashboards", "SELECT * FROM goldthread.steward_audit");
    assert!(!ok);
}
