//! Any text as an analyst's query (`POST /api/sql`), on the analysts' threads with the
//! default bounds: an answer or an error, never a panic, a stack overflow or an abort.
//! Builds DataFusion: `cargo fuzz run --features sql analyst_sql` (not run in CI, see
//! `fuzz/README.md`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fn analytics() -> &'static (tokio::runtime::Runtime, sql::Analytics) {
    static ANALYTICS: std::sync::OnceLock<(tokio::runtime::Runtime, sql::Analytics)> =
        std::sync::OnceLock::new();
    ANALYTICS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let analytics = runtime
            .block_on(sql::Analytics::new(sql::AnalyticsConfig {
                sql_timeout: std::time::Duration::from_millis(500),
                ..Default::default()
            }))
            .unwrap();
        (runtime, analytics)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let (runtime, analytics) = analytics();
    let _ = runtime.block_on(analytics.analyst_query(query));
});
