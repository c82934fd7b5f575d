//! `goldthread bench-kpi`: the KPI suite over N synthetic appointments (with their repair
//! requests, work orders, outcomes and completions, appended through the live tables' own
//! path), timing each KPI file; optionally exporting the tables for DuckDB
//! (`sql/bench/kpi-suite` runs both and prints the comparison), and measuring event-to-KPI
//! latency: one new outcome appended, then the suite for today recomputed.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use connectors::sample::repairs::{event, repair};
use pipeline::Payload;
use pipeline::entity::Visit;
use rand::SeedableRng;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Appointments to generate (about 0.77 work orders each).
    #[arg(long, default_value_t = 10_000_000)]
    appointments: usize,
    /// Runs per KPI file (the best is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Write the tables for DuckDB (sql/duckdb/compare.py) here.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Event-to-KPI latency samples.
    #[arg(long, default_value_t = 20)]
    latency_samples: usize,
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    // Awaab's Law gets a population: priority 2 repairs are emergency hazards and roofing
    // repairs significant ones (the default configuration names no priority or trade the
    // generated repairs have).
    let mut config = sql::AnalyticsConfig::default();
    config.awaab.emergency_priorities = vec![2];
    config.awaab.significant_hazard_trades = vec!["roofing".into()];
    let analytics = sql::Analytics::new(config).await?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let start = NaiveDate::from_ymd_opt(2024, 4, 1).expect("valid date");
    let started = Instant::now();
    let progress = indicatif::ProgressBar::new(args.appointments as u64);
    let (mut appointments, mut events, mut n) = (0, 0, 0);
    while appointments < args.appointments {
        let mut chunk = Vec::with_capacity(60_000);
        while chunk.len() < 50_000 && appointments < args.appointments {
            let repair = repair(&mut rng, n, start, 365);
            n += 1;
            let booked = repair
                .iter()
                .filter(|event| matches!(event.payload, Payload::Appointment(_)))
                .count();
            appointments += booked;
            progress.inc(booked as u64);
            chunk.extend(repair);
        }
        events += analytics.append(&chunk)?;
    }
    progress.finish_and_clear();
    let load = started.elapsed().as_secs_f64();
    println!(
        "{appointments} appointments, {n} work orders, {events} events appended in {load:.1} s ({:.0} events/s)",
        events as f64 / load
    );
    // What the KPI files read: the counts kept as events arrive.
    let kept: Vec<String> = analytics
        .kept_rows()
        .iter()
        .map(|(table, rows)| format!("{table} {rows}"))
        .collect();
    println!("kept tables (rows): {}", kept.join(", "));
    let (from, to) = (start, start + Duration::days(400));
    let as_of = sql::calendar::as_of(to);
    // Each file alone, best of `repeat`, through the suite's own runner.
    let mut times: std::collections::BTreeMap<String, f64> = Default::default();
    for _ in 0..args.repeat {
        for (file, seconds) in analytics.time_each(from, to, as_of).await? {
            let best = times.entry(file).or_insert(f64::MAX);
            *best = best.min(seconds);
        }
    }
    println!("{:<28} {:>12}", "KPI file", "DataFusion s");
    for (file, seconds) in &times {
        println!("{file:<28} {seconds:>12.3}");
    }
    println!("{:<28} {:>12.3}", "total", times.values().sum::<f64>());
    // Event-to-KPI latency: append one outcome, recompute today's suite.
    let mut latencies = Vec::new();
    for sample in 0..args.latency_samples {
        let at = Utc.from_utc_datetime(&to.and_hms_opt(10, 0, 0).expect("valid time"));
        let reference = format!("LAT{sample}");
        let visit = event(
            reference.clone(),
            "repairs",
            Payload::Visit(Visit {
                appointment_ref: reference,
                work_order_ref: None,
                outcome: "no_access".into(),
                attribution: None,
                arrived_at: Some(at),
                contact_attempts: None,
                card_left: None,
                photo: None,
            }),
            at,
        );
        let started = Instant::now();
        analytics.append(std::slice::from_ref(&visit))?;
        analytics.kpis(to, to, as_of).await?;
        latencies.push(started.elapsed().as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);
    if !latencies.is_empty() {
        let p99 =
            latencies[((latencies.len() as f64 * 0.99).ceil() as usize).min(latencies.len()) - 1];
        println!(
            "event-to-KPI latency (append one outcome, recompute today's suite), {} samples: p50 {:.3} s, p99 {p99:.3} s",
            latencies.len(),
            latencies[latencies.len() / 2]
        );
    }
    if let Some(dir) = &args.export {
        let started = Instant::now();
        analytics.export(dir, from, to, as_of)?;
        // The suite's values for the whole period, for sql/bench/kpi-suite to hold DuckDB's to.
        let table = analytics.kpis(from, to, as_of).await?;
        std::fs::write(
            dir.join("goldthread_kpis.json"),
            serde_json::to_string(&table.rows)?,
        )?;
        println!(
            "exported to {} in {:.1} s",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
