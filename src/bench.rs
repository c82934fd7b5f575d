//! `goldthread bench-kpi`: the KPI suite over N synthetic appointments (with their repair
//! requests, work orders, outcomes and completions, appended through the live tables' own
//! path), timing each KPI file; optionally exporting the tables for DuckDB
//! (`sql/bench/kpi-suite` runs both and prints the comparison), and measuring event-to-KPI
//! latency: one new outcome appended, then the suite for today recomputed.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use pipeline::entity::{Appointment, RepairRequest, Visit, WorkOrder, WorkOrderUpdate};
use pipeline::{Envelope, Op, Payload, Reference, Source};
use rand::{Rng, SeedableRng};

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

fn event(id: String, system: &str, payload: Payload, at: chrono::DateTime<Utc>) -> Envelope {
    Envelope {
        event_id: Envelope::event_id_for("bench", &id),
        event_type: payload.kind().event_type().into(),
        source: Source {
            system: system.into(),
            instance: "bench".into(),
            op: Op::Read,
            position: id.clone(),
        },
        source_ref: Reference {
            id,
            allocated_by: system.into(),
        },
        occurred_at: Some(at),
        recorded_at: None,
        ingested_at: Utc::now(),
        payload,
        unparsed: Default::default(),
    }
}

const CONTRACTORS: &[&str] = &["North", "Aire", "Pennine", "In-house DLO"];
const TRADES: &[&str] = &[
    "plumbing",
    "electrical",
    "carpentry",
    "roofing",
    "gas",
    "general",
];
const SLOTS: &[(&str, u32, u32)] = &[("am", 8, 12), ("pm", 12, 17), ("all_day", 8, 17)];

/// One repair's events: request, work order, 1-3 appointments with outcomes, completion.
fn repair(
    rng: &mut rand_chacha::ChaCha8Rng,
    n: usize,
    start: NaiveDate,
    days: i64,
) -> Vec<Envelope> {
    let day = start + Duration::days(rng.random_range(0..days));
    let reported = Utc.from_utc_datetime(
        &day.and_hms_opt(rng.random_range(7..19), 0, 0)
            .expect("valid time"),
    );
    let priority = [2, 3, 4, 4, 4][rng.random_range(0..5)];
    let (rr, wo) = (format!("RR{n:09}"), format!("WO{n:09}"));
    let mut events = vec![
        event(
            rr.clone(),
            "repairs",
            Payload::RepairRequest(RepairRequest {
                property_ref: format!("P{:07}", rng.random_range(0..100_000)),
                reported_at: reported,
                priority: Some(priority),
                description: None,
                channel: None,
            }),
            reported,
        ),
        event(
            wo.clone(),
            "repairs",
            Payload::WorkOrder(WorkOrder {
                repair_request_ref: Some(rr),
                property_ref: format!("P{:07}", rng.random_range(0..100_000)),
                priority,
                raised_at: reported + Duration::minutes(30),
                contractor: Some(CONTRACTORS[rng.random_range(0..CONTRACTORS.len())].into()),
                trade: Some(TRADES[rng.random_range(0..TRADES.len())].into()),
                work_class: Some("responsive".into()),
                parent_ref: None,
            }),
            reported,
        ),
    ];
    let mut slot_day = day + Duration::days(rng.random_range(1..10));
    for attempt in 0..3 {
        let (slot, from, to) = SLOTS[rng.random_range(0..SLOTS.len())];
        let window = |hour: u32| {
            Utc.from_utc_datetime(&slot_day.and_hms_opt(hour, 0, 0).expect("valid time"))
        };
        let reference = format!("AP{n:09}{attempt}");
        events.push(event(
            reference.clone(),
            "repairs",
            Payload::Appointment(Appointment {
                work_order_ref: wo.clone(),
                slot_date: slot_day,
                slot: Some(slot.into()),
                window_start: Some(window(from)),
                window_end: Some(window(to)),
                booked_at: Some(reported + Duration::hours(1)),
                reminder_sent: Some(rng.random_bool(0.7)),
            }),
            reported + Duration::hours(1),
        ));
        let roll: f64 = rng.random();
        let outcome = if attempt == 2 || roll > 0.25 {
            "kept_completed"
        } else if roll > 0.12 {
            "no_access"
        } else if roll > 0.04 {
            "kept_not_completed"
        } else {
            "missed"
        };
        let arrived = window(from) + Duration::minutes(rng.random_range(0..180));
        events.push(event(
            reference.clone(),
            "repairs",
            Payload::Visit(Visit {
                appointment_ref: reference,
                work_order_ref: Some(wo.clone()),
                outcome: outcome.into(),
                attribution: (outcome == "no_access").then(|| "resident".into()),
                arrived_at: Some(arrived),
                contact_attempts: Some(rng.random_range(0..3)),
                card_left: Some(rng.random_bool(0.6)),
                photo: None,
            }),
            arrived,
        ));
        if outcome == "kept_completed" {
            events.push(event(
                wo.clone(),
                "repairs",
                Payload::WorkOrderUpdate(WorkOrderUpdate {
                    work_order_ref: wo.clone(),
                    status: "completed".into(),
                    status_at: arrived + Duration::hours(2),
                    type_code: Some(80),
                    follow_on_ref: None,
                }),
                arrived,
            ));
            break;
        }
        slot_day += Duration::days(rng.random_range(2..8));
    }
    events
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
