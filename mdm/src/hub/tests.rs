use super::*;
use crate::testing::{event, person};

#[test]
fn nickname_and_swapped_dob_link_hms_and_crm() {
    let mut hub = Hub::new(MdmConfig::default());
    hub.apply(&event(
        "hms",
        "T1",
        person("Mrs Margaret", "O'Brien", "1961-03-11", "07700900123"),
    ));
    let peggy = |phone: Option<&str>| {
        Payload::Person(Person {
            full_name: Some("Peggy OBrien".into()),
            date_of_birth: "1961-11-03".parse().ok(),
            phone: phone.map(str::to_string),
            email: Some("peggy@example.com".into()),
            ..Person::default()
        })
    };
    // Names and a swapped date of birth alone: likely, not certain (there are many
    // Margaret O'Briens among 50,000 people); a steward decides.
    hub.apply(&event("crm", "C1", peggy(None)));
    assert_eq!(hub.counts().golden_persons, 2);
    assert_eq!(hub.review_queue().len(), 1, "{:?}", hub.review_queue());
    // With the phone the CRM holds in its own format, one person.
    hub.apply(&event("crm", "C1", peggy(Some("+44 7700 900123"))));
    assert_eq!(
        hub.counts().golden_persons,
        1,
        "Peggy = Margaret, day and month swapped"
    );
    let golden = &hub.golden_persons()[0];
    assert_eq!(
        golden.given_name.as_deref(),
        Some("Margaret"),
        "hms is trusted over crm"
    );
    assert_eq!(golden.title.as_deref(), Some("Mrs"));
    assert_eq!(golden.lineage["given_name"].allocated_by, "hms");
    assert_eq!(golden.sources.len(), 2);
}

#[test]
fn persons_normalised_ahead_give_the_hub_that_applying_one_by_one_gives() {
    let events = vec![
        event(
            "hms",
            "T1",
            person("Margaret", "OBrien", "1961-03-11", "07700900123"),
        ),
        event("hms", "P1", Payload::Tenancy(Default::default())),
        event(
            "crm",
            "C1",
            person("Peggy", "O'Brien", "1961-03-11", "07700900123"),
        ),
        event(
            "crm",
            "C2",
            person("Sean", "Murphy", "1970-01-02", "07700900999"),
        ),
    ];
    let mut one_by_one = Hub::new(MdmConfig::default());
    for event in &events {
        one_by_one.apply(event);
    }
    let fields = one_by_one.person_model().spec.fields.clone();
    // Normalised for the hub's model, and for other fields (normalised again by the hub).
    for fields in [fields.clone(), fields[..1].to_vec()] {
        let mut ahead = Hub::new(MdmConfig::default());
        let mut seen = Vec::new();
        ahead.apply_all(&events, NormalisedPersons::of(&events, &fields), |index| {
            seen.push(index)
        });
        assert_eq!(seen, [0, 1, 2, 3]);
        assert_eq!(ahead.xref(), one_by_one.xref());
        assert_eq!(ahead.golden_persons(), one_by_one.golden_persons());
        assert_eq!(ahead.counts().golden_persons, 2);
    }
}

#[test]
fn merges_explain_themselves_and_steward_verdicts_hold_until_withdrawn() {
    let mut hub = Hub::new(MdmConfig::default());
    let hms = Reference {
        id: "T1".into(),
        allocated_by: "hms".into(),
    };
    let crm = Reference {
        id: "C1".into(),
        allocated_by: "crm".into(),
    };
    hub.apply(&event(
        "hms",
        "T1",
        person("Robert", "Mensah", "1968-11-23", "07525984967"),
    ));
    hub.apply(&event(
        "crm",
        "C1",
        person("Bob", "Mensah", "1968-11-23", "07525 984967"),
    ));
    let golden = hub.golden_ids_of(&hms)[0].1.to_string();
    let links = hub.explain(Entity::Person, &golden).unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].decided_by, "model");
    let score = links[0].score.as_ref().unwrap();
    assert!(score.probability >= 0.99, "{score:?}");
    assert_eq!(
        score.fields.len(),
        hub.person_model().spec.comparisons.len()
    );
    assert!(!score.model_version.is_empty());

    let before = hub.xref();
    hub.steward(Entity::Person, &hms, &crm, Verdict::Different)
        .unwrap();
    assert_eq!(hub.counts().golden_persons, 2);
    // An update of either record does not undo the verdict.
    hub.apply(&event(
        "crm",
        "C1",
        person("Bob", "Mensah", "1968-11-23", "07525 984967"),
    ));
    assert_eq!(hub.counts().golden_persons, 2);
    hub.steward(Entity::Person, &hms, &crm, Verdict::Withdraw)
        .unwrap();
    assert_eq!(hub.xref(), before, "withdrawing restores the exact xref");
    // A record matched with itself is a bad request; a record nobody holds is not found.
    let failure = hub
        .steward(Entity::Person, &hms, &hms, Verdict::Same)
        .unwrap_err();
    assert_eq!(failure.class(), pipeline::ErrorClass::BadInput, "{failure}");
    let nobody = Reference {
        id: "T404".into(),
        allocated_by: "hms".into(),
    };
    let failure = hub
        .steward(Entity::Person, &hms, &nobody, Verdict::Same)
        .unwrap_err();
    assert_eq!(failure.class(), pipeline::ErrorClass::NotFound, "{failure}");
    let failure = hub.erase("no-such-golden-id").unwrap_err();
    assert_eq!(failure.class(), pipeline::ErrorClass::NotFound, "{failure}");
}

/// What a restart does: the stored records applied again (some twice, as a replay of an
/// uncommitted batch would), then the steward verdicts in force.
#[test]
fn records_applied_again_and_verdicts_replayed_rebuild_the_same_hub() {
    let events = vec![
        event(
            "hms",
            "T1",
            person("Robert", "Mensah", "1968-11-23", "07525984967"),
        ),
        event(
            "crm",
            "C1",
            person("Bob", "Mensah", "1968-11-23", "07525 984967"),
        ),
        event(
            "crm",
            "C2",
            person("Rob", "Mensah", "1968-11-23", "07525 984967"),
        ),
        event(
            "hms",
            "T2",
            Payload::Person(Person {
                given_name: Some("Ann".into()),
                family_name: Some("Lee".into()),
                nino: Some("AA000000A".into()),
                postcode: Some("not a postcode".into()),
                date_of_birth: "1900-01-01".parse().ok(),
                ..Person::default()
            }),
        ),
        event(
            "asset",
            "P1",
            Payload::Property(Property {
                uprn: Some("no-uprn".into()),
                address: Some("14 High Street".into()),
                postcode: Some("LS1 4AB".into()),
                ..Property::default()
            }),
        ),
    ];
    let reference = |system: &str, id: &str| Reference {
        id: id.into(),
        allocated_by: system.into(),
    };
    let mut live = Hub::new(MdmConfig::default());
    for event in &events {
        live.apply(event);
    }
    live.steward(
        Entity::Person,
        &reference("hms", "T1"),
        &reference("crm", "C1"),
        Verdict::Different,
    )
    .unwrap();
    live.steward(
        Entity::Person,
        &reference("crm", "C2"),
        &reference("hms", "T2"),
        Verdict::Same,
    )
    .unwrap();
    let quality = live.quality().clone();
    assert_eq!(quality.placeholder_ninos, 1);
    assert_eq!(quality.invalid_uprns, 1);

    let mut restarted = Hub::new(MdmConfig::default());
    for event in events.iter().chain(&events) {
        restarted.apply(event);
    }
    for verdict in live.verdicts() {
        restarted
            .steward(verdict.entity, &verdict.a, &verdict.b, verdict.verdict)
            .unwrap();
    }
    assert_eq!(restarted.xref(), live.xref());
    assert_eq!(restarted.verdicts(), live.verdicts());
    assert_eq!(restarted.verdicts().len(), 2);
    assert_eq!(
        restarted.quality(),
        &quality,
        "a record applied twice is counted once"
    );
}

#[test]
fn changes_name_what_a_store_must_write_again() {
    let mut hub = Hub::new(MdmConfig::default());
    hub.track_changes();
    hub.apply(&event(
        "hms",
        "T1",
        person("Robert", "Mensah", "1968-11-23", "07525984967"),
    ));
    hub.apply(&event(
        "hms",
        "T2",
        person("Ann", "Lee", "1970-02-03", "07700900001"),
    ));
    let first = hub.take_changes();
    assert_eq!(first.person_records.len(), 2);
    assert_eq!(first.persons, hub.golden_person_ids());
    assert!(hub.take_changes().is_empty(), "taken once");

    // A CRM record joins Robert: his golden record and the newcomer's own id change;
    // Ann's do not.
    hub.apply(&event(
        "crm",
        "C1",
        person("Bob", "Mensah", "1968-11-23", "07525 984967"),
    ));
    let robert = hub.golden_ids_of(&Reference {
        id: "T1".into(),
        allocated_by: "hms".into(),
    })[0]
        .1
        .to_string();
    let changes = hub.take_changes();
    assert!(changes.persons.contains(&robert));
    assert!(changes.person_records.iter().any(|r| r.id == "C1"));
    assert!(changes.person_records.iter().all(|r| r.id != "T2"));
    assert!(changes.tenancies.is_empty() && changes.properties.is_empty());

    // A steward's split changes the same records back.
    hub.split(
        Entity::Person,
        &Reference {
            id: "C1".into(),
            allocated_by: "crm".into(),
        },
    )
    .unwrap();
    let split = hub.take_changes();
    assert!(split.persons.contains(&robert));
    assert_eq!(split.person_records.len(), 2);
}

#[test]
fn an_erased_person_leaves_every_output_and_stays_out() {
    let mut hub = Hub::new(MdmConfig::default());
    let robert = person("Robert", "Mensah", "1968-11-23", "07525984967");
    hub.apply(&event("hms", "T1", robert.clone()));
    hub.apply(&event(
        "crm",
        "C1",
        person("Bob", "Mensah", "1968-11-23", "07525 984967"),
    ));
    hub.apply(&event(
        "hms",
        "T2",
        person("Ann", "Lee", "1970-02-03", "07700900001"),
    ));
    hub.apply(&event("hms", "P1", property(Some("1"), "1 High Street")));
    hub.apply(&event(
        "hms",
        "TY1",
        Payload::Tenancy(Tenancy {
            property_ref: "P1".into(),
            party_refs: vec!["T1".into(), "T2".into()],
            ..Tenancy::default()
        }),
    ));
    hub.apply(&event(
        "hms",
        "V1",
        Payload::Vulnerability(Vulnerability {
            person_ref: "T1".into(),
            code: "20-01".into(),
            ..Vulnerability::default()
        }),
    ));
    let t1 = Reference {
        id: "T1".into(),
        allocated_by: "hms".into(),
    };
    let golden = hub.golden_ids_of(&t1)[0].1.to_string();
    let ann = hub.golden_ids_of(&Reference {
        id: "T2".into(),
        allocated_by: "hms".into(),
    })[0]
        .1
        .to_string();
    assert_eq!(hub.counts().golden_persons, 2);

    let erasure = hub.erase(&golden).unwrap();
    assert_eq!(
        erasure.records.len(),
        2,
        "both source records of the person"
    );
    assert_eq!(erasure.vulnerabilities.len(), 1);
    assert!(
        hub.xref()
            .iter()
            .all(|row| row.source_id != "T1" && row.source_id != "C1")
    );
    assert_eq!(hub.counts().golden_persons, 1);
    assert_eq!(hub.counts().person_records, 1);
    assert!(hub.golden_person(&golden).is_none());
    assert!(hub.vulnerabilities(NaiveDate::MIN).is_empty());
    assert_eq!(hub.tenancies()[0].golden_person_ids, vec![ann.clone()]);

    // The source sends the record again (a file read again, an update): ignored.
    assert_eq!(hub.apply(&event("hms", "T1", robert)), Applied::Erased);
    assert_eq!(hub.counts().person_records, 1);
    assert!(hub.golden_ids_of(&t1).is_empty());
    assert_eq!(hub.quality(), &Quality::default());
    // The other person is untouched.
    assert_eq!(
        hub.golden_person(&ann).unwrap().given_name.as_deref(),
        Some("Ann")
    );
}

#[test]
fn survivorship_rules_and_overrides_choose_with_lineage() {
    let mut config = MdmConfig::default();
    config
        .survivorship
        .insert("phone".into(), SurvivorshipRule::MostRecent);
    let mut hub = Hub::new(config);
    hub.apply(&event(
        "hms",
        "T1",
        Payload::Person(Person {
            given_name: Some("Robert".into()),
            family_name: Some("Mensah".into()),
            date_of_birth: "1968-11-23".parse().ok(),
            phone: Some("07525984967".into()),
            email: Some("bob@example.com".into()),
            ..Person::default()
        }),
    ));
    hub.apply(&event(
        "crm",
        "C1",
        Payload::Person(Person {
            given_name: Some("Robert".into()),
            family_name: Some("Mensah".into()),
            date_of_birth: "1968-11-23".parse().ok(),
            phone: Some("07525984967".into()),
            email: Some("bob@example.com".into()),
            ..Person::default()
        }),
    ));
    let mut update = event(
        "crm",
        "C1",
        Payload::Person(Person {
            given_name: Some("Robert".into()),
            family_name: Some("Mensah".into()),
            date_of_birth: "1968-11-23".parse().ok(),
            phone: Some("07700900999".into()),
            email: Some("bob@example.com".into()),
            ..Person::default()
        }),
    );
    update.recorded_at = "2025-01-02T10:00:00Z".parse().ok();
    hub.apply(&update);
    let golden = hub.golden_persons().remove(0);
    assert_eq!(golden.sources.len(), 2);
    assert_eq!(golden.phone.as_deref(), Some("07700900999"), "most recent");
    assert_eq!(golden.lineage["phone"].allocated_by, "crm");
    assert_eq!(golden.lineage["given_name"].allocated_by, "hms", "trust");
    hub.set_override(
        &golden.golden_id,
        "family_name",
        Some("Mensah-Owusu".into()),
    );
    let golden = hub.golden_person(&golden.golden_id).unwrap();
    assert_eq!(golden.family_name.as_deref(), Some("Mensah-Owusu"));
    assert_eq!(golden.lineage["family_name"].allocated_by, "steward");
}

#[test]
fn configured_blocking_rules_decide_who_is_compared() {
    // Only NINOs block: two records of one person without NINOs are never compared.
    let config = MdmConfig {
        blocking: Some(vec![vec!["nino".into()]]),
        ..MdmConfig::default()
    };
    let mut hub = Hub::new(config);
    assert_eq!(hub.person_model().spec.blocking.len(), 1);
    hub.apply(&event(
        "hms",
        "T1",
        person("Robert", "Mensah", "1968-11-23", "07525984967"),
    ));
    hub.apply(&event(
        "crm",
        "C1",
        person("Robert", "Mensah", "1968-11-23", "07525984967"),
    ));
    assert_eq!(hub.counts().golden_persons, 2);
}

#[test]
fn vulnerabilities_lapse_after_their_end_date_and_contractors_get_no_detail() {
    let mut hub = Hub::new(MdmConfig::default());
    hub.apply(&event(
        "hms",
        "T1",
        person("Ann", "Smith", "1970-01-02", "07700900123"),
    ));
    hub.apply(&event("hms", "P1", property(Some("1"), "1 High Street")));
    hub.apply(&event(
        "hms",
        "TY1",
        Payload::Tenancy(Tenancy {
            property_ref: "P1".into(),
            party_refs: vec!["T1".into()],
            ..Tenancy::default()
        }),
    ));
    let date = |text: &str| text.parse::<NaiveDate>().ok();
    for (id, end, review) in [
        ("V1", None, date("2025-01-01")),
        ("V2", date("2024-06-30"), None),
    ] {
        hub.apply(&event(
            "hms",
            id,
            Payload::Vulnerability(Vulnerability {
                person_ref: "T1".into(),
                code: "20-01".into(),
                description: Some("Physical disability".into()),
                start_date: date("2024-01-01"),
                end_date: end,
                review_date: review,
                temporary: None,
            }),
        ));
    }
    let today = date("2025-03-31").unwrap();
    let statuses = hub.vulnerabilities(today);
    let by_id = |id: &str| statuses.iter().find(|s| s.vulnerability.id == id).unwrap();
    assert!(by_id("V1").active && by_id("V1").review_overdue);
    assert!(!by_id("V2").active, "lapsed after its end date");
    assert!(by_id("V1").golden_person_id.is_some());
    let alerts = hub.contractor_alerts(today);
    assert_eq!(alerts.len(), 1);
    let text = serde_json::to_string(&alerts).unwrap();
    assert!(!text.contains("20-01") && !text.contains("disability") && !text.contains("GP-"));
    assert!(
        hub.contractor_alerts(date("2023-01-01").unwrap())
            .is_empty()
    );
}

#[test]
fn twins_and_households_stay_apart() {
    let mut hub = Hub::new(MdmConfig::default());
    hub.apply(&event(
        "hms",
        "T1",
        person("Amira", "Khan", "1990-05-06", "07700900123"),
    ));
    hub.apply(&event(
        "hms",
        "T2",
        person("Aisha", "Khan", "1990-05-06", "07700900123"),
    ));
    hub.apply(&event(
        "hms",
        "T3",
        person("Mohammed", "Khan", "1960-01-02", "07700900123"),
    ));
    assert_eq!(hub.counts().golden_persons, 3);
    // The twins score as one person but for their given names, and say so.
    let twin = Reference {
        id: "T2".into(),
        allocated_by: "hms".into(),
    };
    let golden = hub.golden_ids_of(&twin)[0].1.to_string();
    let explained = hub.vetoed(Entity::Person, &golden);
    let vetoed = explained.first().expect("the vetoed pair is explained");
    assert_eq!(vetoed.decided_by, "vetoed");
    let score = vetoed.score.as_ref().unwrap();
    assert!(score.weight > 0.0, "{score:?}");
    assert_eq!(
        score.vetoed_by.as_deref(),
        Some("given_name below jaro_winkler_low")
    );
}

#[test]
fn same_name_and_phone_with_different_dates_of_birth_stay_apart() {
    let mut hub = Hub::new(MdmConfig::default());
    hub.apply(&event(
        "hms",
        "T1",
        person("John", "Smith", "1950-05-06", "07700900123"),
    ));
    hub.apply(&event(
        "crm",
        "C1",
        person("Jack", "Smith", "1980-07-08", "07700900123"),
    ));
    assert_eq!(hub.counts().golden_persons, 2);
    assert_eq!(hub.quality().blocked_links, 1);
}

#[test]
fn a_shared_name_and_phone_without_a_date_of_birth_is_not_a_link() {
    // A parent and adult child of one name on the household phone; the CRM copy has no
    // usable date of birth, so nothing says which of the two it is.
    let mut hub = Hub::new(MdmConfig::default());
    hub.apply(&event(
        "hms",
        "T1",
        person("Rebecca", "Harris", "1970-05-06", "07700900123"),
    ));
    hub.apply(&event(
        "hms",
        "T2",
        person("Rebecca", "Harris", "2001-02-03", "07700900123"),
    ));
    hub.apply(&event(
        "crm",
        "C1",
        person("Rebecca", "Harris", "1900-01-01", "07700900123"),
    ));
    assert_eq!(hub.counts().golden_persons, 3);
    // Both candidate links wait for a steward, with their explanations.
    let review = hub.review_queue();
    assert_eq!(review.len(), 2, "{review:?}");
    assert!(
        review
            .iter()
            .all(|item| item.b.id == "C1" || item.a.id == "C1")
    );
}

#[test]
fn placeholder_ninos_are_not_evidence() {
    let mut hub = Hub::new(MdmConfig::default());
    for (id, given) in [("T1", "Ann"), ("T2", "Bea")] {
        hub.apply(&event(
            "hms",
            id,
            Payload::Person(Person {
                given_name: Some(given.into()),
                family_name: Some("Smith".into()),
                nino: Some("QQ123456C".into()),
                ..Person::default()
            }),
        ));
    }
    assert_eq!(hub.counts().golden_persons, 2);
    assert_eq!(hub.quality().placeholder_ninos, 2);
}

fn property(uprn: Option<&str>, address: &str) -> Payload {
    Payload::Property(Property {
        uprn: uprn.map(str::to_string),
        address: Some(address.into()),
        postcode: Some("LS6 1AB".into()),
        ..Property::default()
    })
}

#[test]
fn properties_link_on_a_shared_identifier() {
    let mut hub = Hub::new(MdmConfig::default());
    let with_id = |id: &str| {
        Payload::Property(Property {
            address: Some("Unit 4, Mill Yard".into()),
            identifiers: [("asset_no".to_string(), id.to_string())].into(),
            ..Property::default()
        })
    };
    hub.apply(&event("asset", "A1", with_id("ast-0042")));
    hub.apply(&event("hms", "P9", with_id("AST 0042")));
    hub.apply(&event("hms", "P10", with_id("AST-0043")));
    assert_eq!(hub.counts().golden_properties, 2);
}

#[test]
fn properties_link_on_uprn_or_address_and_never_collapse_14b_to_flat_b() {
    let mut hub = Hub::new(MdmConfig::default());
    hub.apply(&event(
        "hms",
        "P1",
        Payload::Property(Property {
            uprn: Some("100023000001".into()),
            parent_uprn: Some("100023000000".into()),
            saon: Some("B".into()),
            paon: Some("14".into()),
            street: Some("High Street".into()),
            postcode: Some("LS6 1AB".into()),
            ..Property::default()
        }),
    ));
    hub.apply(&event(
        "hms",
        "P0",
        property(Some("100023000000"), "14 High Street"),
    ));
    hub.apply(&event(
        "hms",
        "P2",
        property(Some("100023000002"), "14B High Street"),
    ));
    hub.apply(&event("asset", "A1", property(None, "Flat B, 14 High St")));
    hub.apply(&event(
        "asset",
        "A2",
        property(Some("100023000001"), "14b High Street"),
    ));
    assert_eq!(hub.counts().golden_properties, 3);
    let flat = hub
        .golden_property(
            hub.properties
                .golden_id_of(&Reference {
                    id: "P1".into(),
                    allocated_by: "hms".into(),
                })
                .unwrap(),
        )
        .unwrap();
    assert_eq!(flat.sources.len(), 3, "{flat:?}");
    assert!(flat.parent_golden_id.is_some());
    assert_eq!(flat.street.as_deref(), Some("HIGH STREET"));
}

#[test]
fn tenancies_resolve_through_the_xref_whatever_the_order() {
    let mut hub = Hub::new(MdmConfig::default());
    hub.apply(&event(
        "hms",
        "TY1",
        Payload::Tenancy(Tenancy {
            property_ref: "P1".into(),
            party_refs: vec!["T1".into()],
            ..Tenancy::default()
        }),
    ));
    assert_eq!(hub.tenancies()[0].golden_person_ids.len(), 0);
    hub.apply(&event(
        "hms",
        "T1",
        person("Ann", "Smith", "1970-01-02", "07700900123"),
    ));
    hub.apply(&event("hms", "P1", property(Some("1"), "1 High Street")));
    let tenancy = &hub.tenancies()[0];
    assert_eq!(tenancy.golden_person_ids.len(), 1);
    assert!(tenancy.golden_property_id.is_some());
}
