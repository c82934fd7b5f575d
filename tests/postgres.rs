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
        pg.query("SELECT count(*) FROM public.goldthread_migrations"),
        "1"
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
