//! `mdm::Master` over a throwaway PostgreSQL server: the invariants ARCHITECTURE.md states for
//! the store, checked at the owner of master data rather than end to end.

#[path = "../../tests/common/postgres.rs"]
mod postgres;

use std::time::Duration;

use chrono::Utc;
use mdm::master::{ActError, Action, Actor};
use mdm::store::{PostgresConfig, Store};
use mdm::{Entity, Hub, Master, MdmConfig, Verdict};
use pipeline::entity::{Payload, Person};
use pipeline::stage::{Batch, Origin, Positions};
use pipeline::{Envelope, Op, Reference, Source};
use postgres::Postgres;

const TOPIC: &str = "goldthread.hms.person";

fn reference(text: &str) -> Reference {
    let (system, id) = text.split_once(':').expect("system:id");
    Reference {
        id: id.into(),
        allocated_by: system.into(),
    }
}

/// A person event from `system:id`, the `version`th of that record.
fn person(record: &str, version: u32, given: &str, family: &str, phone: &str) -> Envelope {
    let reference = reference(record);
    let position = format!("{}:{version}", reference.id);
    Envelope {
        event_id: Envelope::event_id_for(&reference.allocated_by, &position),
        event_type: pipeline::EntityKind::Person.event_type().into(),
        source: Source {
            system: reference.allocated_by.clone(),
            instance: reference.allocated_by.clone(),
            op: Op::Read,
            position,
        },
        source_ref: reference,
        occurred_at: None,
        recorded_at: None,
        ingested_at: Utc::now(),
        payload: Payload::Person(Person {
            given_name: Some(given.into()),
            family_name: Some(family.into()),
            date_of_birth: "1961-03-11".parse().ok(),
            phone: Some(phone.into()),
            ..Person::default()
        }),
        unparsed: Default::default(),
    }
}

/// The batch a stage hands over: `events` read from partition `partition` of [`TOPIC`] at
/// offsets `first..`.
fn batch(events: Vec<Envelope>, partition: i32, first: i64) -> Batch {
    let origins: Vec<Origin> = (0..events.len() as i64)
        .map(|offset| Origin {
            topic: TOPIC.into(),
            partition,
            offset: first + offset,
        })
        .collect();
    let next: Positions = [((TOPIC.into(), partition), first + events.len() as i64)].into();
    Batch {
        events,
        origins,
        positions: next.clone(),
        consumed: next,
        ..Batch::default()
    }
}

fn steward() -> Actor {
    Actor {
        who: "sam".into(),
        role: "steward".into(),
    }
}

async fn store(server: &Postgres) -> Store {
    let store = Store::connect(&server.url(), &PostgresConfig::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// A process's master data, restored from the store (as `run` starts).
async fn restored(server: &Postgres) -> (Master, mdm::store::Restored) {
    let mut master = Master::new(
        Hub::new(MdmConfig::default()),
        Some(store(server).await),
        Duration::from_secs(2),
    );
    let restored = master.restore(|_| Ok(())).await.unwrap();
    (master, restored)
}

/// Applies a batch and, when its write was left to do, stores it.
async fn apply(master: &Master, batch: &Batch) -> mdm::master::BatchApplied {
    let applied = master.apply_batch(batch).await.unwrap();
    if applied.unstored {
        master
            .store_applied(&batch.consumed, &batch.kept_dead_letters)
            .await
            .unwrap();
    }
    applied
}

#[tokio::test]
async fn a_batch_positions_are_stored_with_its_write_and_a_failed_write_loses_nothing() {
    let server = Postgres::start();
    let (master, _) = restored(&server).await;
    let store = master.store().unwrap();

    let first = batch(
        vec![person("hms:T1", 1, "Margaret", "OBrien", "07700900123")],
        0,
        0,
    );
    let applied = master.apply_batch(&first).await.unwrap();
    assert!(applied.unstored, "a store this process alone writes to");
    assert_eq!(applied.kept, vec![true], "the analytics learn the event");
    assert!(
        store.positions().await.unwrap().is_empty(),
        "nothing is stored, so no position is, before the write"
    );
    master.store_applied(&first.consumed, &[]).await.unwrap();
    assert_eq!(store.positions().await.unwrap(), first.consumed);

    // The server goes away: the write fails once retrying is over, and its position with it.
    let second = batch(
        vec![person("crm:C1", 1, "Sean", "Murphy", "07700900999")],
        0,
        1,
    );
    master.apply_batch(&second).await.unwrap();
    server.stop();
    let failed = master.store_applied(&second.consumed, &[]).await;
    assert!(failed.is_err(), "{failed:?}");
    server.resume();
    assert_eq!(
        store.positions().await.unwrap(),
        first.consumed,
        "a failed write stores no position"
    );
    // The next write takes what the failed one took.
    let third = batch(
        vec![person("crm:C2", 1, "Aisha", "Khan", "07700900555")],
        0,
        2,
    );
    apply(&master, &third).await;
    assert_eq!(store.positions().await.unwrap(), third.consumed);
    let (again, restored) = restored(&server).await;
    assert_eq!(restored.events, 3, "every applied event is stored");
    assert_eq!(
        again.hub().golden_persons(),
        master.hub().golden_persons(),
        "a restart restores the hub the store was written from"
    );
}

#[tokio::test]
async fn a_group_writes_one_at_a_time_each_writer_caught_up_with_the_others() {
    let server = Postgres::start();
    let (mut a, restored_a) = restored(&server).await;
    let (mut b, restored_b) = restored(&server).await;
    a.coordinate(restored_a.synced);
    b.coordinate(restored_b.synced);

    // Margaret reaches one process, Peggy (the same person, in the CRM) the other, at once.
    let margaret = batch(
        vec![person("hms:T1", 1, "Margaret", "O'Brien", "07700900123")],
        0,
        0,
    );
    let peggy = batch(
        vec![person("crm:C1", 1, "Peggy", "OBrien", "07700900123")],
        1,
        0,
    );
    let (applied_a, applied_b) = tokio::join!(apply(&a, &margaret), apply(&b, &peggy));
    assert!(
        !applied_a.unstored && !applied_b.unstored,
        "stored in the write"
    );
    // Whichever wrote second applied the first's event before its own, inside its write:
    // the analytics learn that peer event beside the batch's own.
    let caught_up = [&applied_a, &applied_b]
        .iter()
        .filter(|applied| applied.learned.events.len() == 1)
        .count();
    assert_eq!(
        caught_up, 1,
        "one writer after the other, the second caught up"
    );

    // The next write of the other one catches it up too: one person, in both processes.
    let again_a = apply(&a, &batch(vec![], 0, 1)).await;
    let again_b = apply(&b, &batch(vec![], 1, 1)).await;
    assert_eq!(
        again_a.learned.events.len() + again_b.learned.events.len(),
        1,
        "each process learns each peer event once"
    );
    for master in [&a, &b] {
        let hub = master.hub();
        assert_eq!(hub.counts().person_records, 2);
        assert_eq!(hub.counts().golden_persons, 1, "{:?}", hub.review_queue());
    }
    let positions = a.store().unwrap().positions().await.unwrap();
    assert_eq!(
        positions.len(),
        2,
        "both partitions' positions: {positions:?}"
    );
}

#[tokio::test]
async fn an_erased_person_stays_erased_through_later_events_and_a_restart() {
    let server = Postgres::start();
    let (master, _) = restored(&server).await;
    apply(
        &master,
        &batch(
            vec![
                person("hms:T1", 1, "Margaret", "OBrien", "07700900123"),
                person("crm:C9", 1, "Sean", "Murphy", "07700900999"),
            ],
            0,
            0,
        ),
    )
    .await;
    let erase = Action::Erase {
        subject: "hms:T1".into(),
    };
    let refused = master.act(steward(), erase.clone(), " ".into()).await;
    assert!(
        matches!(&refused, Err(ActError::Refused(mdm::Error::BadInput(_)))),
        "a reason is required: {refused:?}"
    );
    let acted = master
        .act(steward(), erase, "erasure request 42".into())
        .await
        .unwrap();
    assert_eq!(acted.erasure.unwrap().records, vec![reference("hms:T1")]);
    assert_eq!(acted.entry.action, "erase");

    // An event about the person read again after the erasure is not applied or stored.
    let late = batch(
        vec![person("hms:T1", 2, "Margaret", "OBrien", "07700900123")],
        0,
        2,
    );
    let applied = apply(&master, &late).await;
    assert_eq!(applied.kept, vec![false]);
    assert!(
        applied.learned.events.is_empty(),
        "the analytics never see it"
    );

    let (again, restored) = restored(&server).await;
    assert!(again.hub().is_erased(&reference("hms:T1")));
    assert!(again.hub().person_subject("hms:T1").is_err());
    assert_eq!(again.hub().counts().golden_persons, 1, "Sean stays");
    assert_eq!(restored.events, 1, "the person's stored event is gone");
    assert_eq!(
        server.query("SELECT count(*) FROM goldthread.source_record WHERE source_id = 'T1'"),
        "0"
    );
    assert_eq!(restored.audit.len(), 1, "the erasure is audited");
}

#[tokio::test]
async fn a_steward_verdict_survives_a_restart() {
    let server = Postgres::start();
    let (master, _) = restored(&server).await;
    apply(
        &master,
        &batch(
            vec![
                person("hms:T1", 1, "Margaret", "O'Brien", "07700900123"),
                person("crm:C1", 1, "Peggy", "OBrien", "07700900123"),
            ],
            0,
            0,
        ),
    )
    .await;
    assert_eq!(
        master.hub().counts().golden_persons,
        1,
        "linked on their own"
    );
    let acted = master
        .act(
            steward(),
            Action::Decide {
                entity: Entity::Person,
                a: reference("hms:T1"),
                b: reference("crm:C1"),
                verdict: Verdict::Different,
            },
            "two sisters: checked with the housing officer".into(),
        )
        .await
        .unwrap();
    assert_eq!(acted.entry.who, "sam");
    assert_eq!(master.hub().counts().golden_persons, 2);

    let (again, restored) = restored(&server).await;
    assert_eq!(
        again.hub().counts().golden_persons,
        2,
        "kept apart after a restart"
    );
    assert_eq!(again.hub().verdicts(), master.hub().verdicts());
    assert_eq!(restored.audit.len(), 1);
    assert_eq!(again.audit()[0].reason, acted.entry.reason);
}

#[tokio::test]
async fn an_erasure_needs_the_store() {
    let master = Master::new(Hub::new(MdmConfig::default()), None, Duration::ZERO);
    let refused = master
        .act(
            steward(),
            Action::Erase {
                subject: "hms:T1".into(),
            },
            "erasure request 42".into(),
        )
        .await;
    assert!(
        matches!(&refused, Err(ActError::Refused(mdm::Error::Conflict(_)))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_steward_action_in_a_group_first_learns_what_the_others_wrote() {
    let server = Postgres::start();
    let (mut a, restored_a) = restored(&server).await;
    let (mut b, restored_b) = restored(&server).await;
    a.coordinate(restored_a.synced);
    b.coordinate(restored_b.synced);
    // Margaret and Peggy (one person) reach process a only.
    let both = vec![
        person("hms:T1", 1, "Margaret", "O'Brien", "07700900123"),
        person("crm:C1", 1, "Peggy", "OBrien", "07700900123"),
    ];
    apply(&a, &batch(both, 0, 0)).await;
    assert_eq!(a.hub().counts().golden_persons, 1);
    assert_eq!(
        b.hub().counts().person_records,
        0,
        "b has not written since"
    );
    // A steward splits Peggy off through process b: b applies a's records first.
    let split = Action::Split {
        entity: Entity::Person,
        record: reference("crm:C1"),
    };
    let acted = b
        .act(steward(), split, "two people: checked by phone".into())
        .await
        .unwrap();
    assert_eq!(acted.learned.events.len(), 2, "b learned a's records");
    assert_eq!(b.hub().counts().golden_persons, 2);
}
