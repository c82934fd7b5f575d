//! Synthetic repairs in bulk, for benchmarks (`goldthread bench-kpi`): each repair a
//! request, a work order, one to three appointments with their outcomes and a completion,
//! with nothing about people or homes beyond references. Unlike [`super::generate`] it
//! writes no files and keeps no ground truth: the KPI suite's cost is what is measured.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use pipeline::entity::{Appointment, RepairRequest, Visit, WorkOrder, WorkOrderUpdate};
use pipeline::{Envelope, Op, Payload, Reference, Source};
use rand::Rng;

/// A synthetic event of `system`'s record `id`, at `at`.
pub fn event(id: String, system: &str, payload: Payload, at: chrono::DateTime<Utc>) -> Envelope {
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

/// One repair's events: request, work order, 1-3 appointments with outcomes, completion;
/// the `n`th repair, reported on a day of the `days` from `start`.
pub fn repair(
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
                contractor: Some(
                    super::CONTRACTORS[rng.random_range(0..super::CONTRACTORS.len())].into(),
                ),
                trade: Some(super::TRADES[rng.random_range(0..super::TRADES.len())].into()),
                work_class: Some("responsive".into()),
                parent_ref: None,
            }),
            reported,
        ),
    ];
    let mut slot_day = day + Duration::days(rng.random_range(1..10));
    for attempt in 0..3 {
        // The weekday slots every work order can book (not the school run).
        let (slot, from, to) = super::SLOTS[rng.random_range(0..3)];
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
