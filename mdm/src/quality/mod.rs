//! Data quality as the landlord writes it down: a recording standard (rules per entity and
//! field, each with a dimension, a severity and an owner) and the live issue register it
//! keeps. Rules about one record (`present`, `any_present`, `valid`) are evaluated on every
//! event as it is applied: a failing record opens an issue, a later event that passes closes
//! it. Rules about golden records (`unique_within_system`, `has_record_from`, `agree`) and
//! about the day (`not_past`) are evaluated when the register is read
//! ([`Register::reconcile`]). An issue names the record by its source reference only, never
//! by its values. [`report`] renders the weekly report for people.
//!
//! `standard.rs`: the standard and its rules; `register.rs`: the issue register; `weekly.rs`:
//! the weekly report, owners' digests and the risk table, as data.

mod register;
pub mod report;
mod standard;
mod weekly;

pub use register::{Issue, Register};
pub use standard::*;
pub use weekly::*;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use pipeline::{EntityKind, Envelope, Op, Payload, Reference};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::normalise::{self, Nino};
use crate::{Entity, Hub};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MdmConfig;
    use crate::testing::{event, person};
    use pipeline::entity::{Person, Property};

    fn register() -> Register {
        Register::new(Standard::from_config(&QualityConfig::default()).unwrap())
    }

    #[test]
    fn the_default_standard_is_valid_and_a_rule_names_exactly_one_check() {
        assert!(Standard::from_config(&QualityConfig::default()).is_ok());
        let config: QualityConfig = toml::from_str(
            r#"
            [[rules]]
            id = "bad"
            description = "two checks"
            entity = "person"
            dimension = "completeness"
            fix = "-"
            present = ["date_of_birth"]
            valid = ["nino"]
            [[rules]]
            id = "person-contact"
            description = "a second rule of that id"
            entity = "person"
            dimension = "completeness"
            fix = "-"
            present = ["shoe_size"]
            "#,
        )
        .unwrap();
        let problems = Standard::from_config(&config).unwrap_err();
        assert!(
            problems.contains("`bad`: name exactly one check"),
            "{problems}"
        );
        assert!(
            problems.contains("`person-contact`: the id is used twice"),
            "{problems}"
        );
        assert!(
            problems.contains("`shoe_size` is not a person field"),
            "{problems}"
        );
    }

    #[test]
    fn a_failing_record_opens_an_issue_and_a_corrected_event_resolves_it() {
        let mut register = register();
        let mut missing = event(
            "crm",
            "C1",
            Payload::Person(Person {
                given_name: Some("Ann".into()),
                nino: Some("QQ123456C".into()),
                phone: Some("07700900123".into()),
                ..Person::default()
            }),
        );
        register.apply(&missing);
        let open = register.open_per_rule();
        assert_eq!(open["person-date-of-birth"], 1);
        assert_eq!(open["person-nino-valid"], 1);
        assert_eq!(open["tenant-nino"], 0, "an HMS rule: not for the CRM");
        let issue = register.open()[0].clone();
        assert!(
            !issue.problem.contains("QQ123456C"),
            "no values: {}",
            issue.problem
        );
        // The CRM is corrected: a later event with the date of birth and no placeholder.
        let first_seen = issue.first_seen;
        missing.recorded_at = Some(first_seen + chrono::Duration::days(3));
        if let Payload::Person(person) = &mut missing.payload {
            person.date_of_birth = "1961-03-11".parse().ok();
            person.nino = None;
        }
        register.apply(&missing);
        assert!(register.open().is_empty(), "{:?}", register.open());
        assert_eq!(register.resolved().len(), 2);
        assert!(register.resolved().iter().all(|issue| {
            issue.resolved_at == Some(first_seen + chrono::Duration::days(3))
                && issue.first_seen == first_seen
        }));
    }

    #[test]
    fn golden_record_rules_find_duplicates_within_a_system_and_homes_without_an_asset_record() {
        let mut hub = Hub::new(MdmConfig::default());
        let mut register = register();
        let margaret = || person("Margaret", "OBrien", "1961-03-11", "07700900123");
        for (system, id) in [("hms", "T1"), ("hms", "T2"), ("crm", "C1")] {
            let event = event(system, id, margaret());
            hub.apply(&event);
            register.apply(&event);
        }
        let home = |uprn: &str| {
            Payload::Property(Property {
                uprn: Some(uprn.into()),
                paon: Some("14".into()),
                street: Some("High Street".into()),
                postcode: Some("LS1 4AB".into()),
                ..Property::default()
            })
        };
        for (system, id, uprn) in [
            ("hms", "P1", "100"),
            ("asset", "A1", "100"),
            ("hms", "P2", "200"),
        ] {
            let event = event(system, id, home(uprn));
            hub.apply(&event);
            register.apply(&event);
        }
        register.reconcile(&hub, Utc::now());
        let open = register.open_per_rule();
        assert_eq!(open["person-single-hms-record"], 1);
        assert_eq!(open["property-asset-record"], 1);
        let duplicate = register
            .open()
            .into_iter()
            .find(|issue| issue.rule == "person-single-hms-record")
            .unwrap()
            .clone();
        assert_eq!(
            duplicate.record.id, "T2",
            "the second record is the duplicate"
        );
        assert!(duplicate.golden_id.is_some());
        let asset = register
            .open()
            .into_iter()
            .find(|issue| issue.rule == "property-asset-record")
            .unwrap()
            .clone();
        assert_eq!(
            (asset.record.id.as_str(), asset.system.as_str()),
            ("P2", "asset")
        );
        assert_eq!(asset.owner, "Asset management");
        // The asset record arrives: resolved at the next reconciliation.
        let event = event("asset", "A2", home("200"));
        hub.apply(&event);
        register.apply(&event);
        register.reconcile(&hub, Utc::now());
        assert_eq!(register.open_per_rule()["property-asset-record"], 0);
    }

    #[test]
    fn the_weekly_report_counts_new_and_resolved_issues_and_scores_each_system() {
        let mut register = register();
        let hub = Hub::new(MdmConfig::default());
        let monday = "2026-11-30T09:00:00Z".parse::<DateTime<Utc>>().unwrap();
        for (id, days, dob) in [
            ("C1", 0, None),
            ("C2", 1, Some("1970-01-02")),
            ("C3", -7, None),
        ] {
            let mut event = event(
                "crm",
                id,
                Payload::Person(Person {
                    phone: Some("07700900123".into()),
                    date_of_birth: dob.and_then(|d| d.parse().ok()),
                    ..Person::default()
                }),
            );
            event.recorded_at = Some(monday + chrono::Duration::days(days));
            register.apply(&event);
        }
        let weekly = register.weekly(&hub, "2026-12-02".parse().unwrap(), 2);
        assert_eq!(weekly.week, "2026-W49");
        assert_eq!(weekly.open_issues, 2, "C1 and C3 have no date of birth");
        assert_eq!(
            weekly.new_this_week, 1,
            "C3's issue is from the week before"
        );
        let dob = weekly
            .scores
            .iter()
            .find(|score| score.rule == "person-date-of-birth" && score.system == "crm")
            .unwrap();
        assert_eq!((dob.checked, dob.failing), (3, 2));
        assert_eq!(weekly.trend.len(), 3);
        assert_eq!(weekly.trend.last().unwrap().open, 2);
        assert_eq!(
            weekly.trend[1].open, 1,
            "C3 alone at the end of the week before"
        );
        assert_eq!(weekly.costliest[0], ("person.date_of_birth".to_string(), 2));
    }
}
