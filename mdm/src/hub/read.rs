//! Reading the hub: golden records with survivorship and lineage, explanations, conflicts,
//! the review queue, tenancies, vulnerabilities and contractor alerts, the cross-reference
//! and redirects.

use super::*;

impl Hub {
    /// Members of a cluster with when they were recorded, most trusted first (source rank,
    /// then most recent).
    fn ranked<'a, R>(
        &self,
        index: &'a ClusterIndex,
        golden_id: &str,
        records: &'a [R],
        recorded_at: impl Fn(&R) -> Option<DateTime<Utc>>,
    ) -> Vec<(&'a Reference, &'a R, Option<DateTime<Utc>>)> {
        let mut members: Vec<(&Reference, &R, Option<DateTime<Utc>>)> = index
            .member_slots(golden_id)
            .iter()
            .map(|&slot| {
                let record = &records[slot];
                (index.reference(slot), record, recorded_at(record))
            })
            .collect();
        // Then by reference: the same order whatever order the records arrived in.
        members.sort_by_key(|(reference, _, recorded_at)| {
            (
                self.config.rank(&reference.allocated_by),
                std::cmp::Reverse(*recorded_at),
                *reference,
            )
        });
        members
    }

    fn survivorship<'a, R>(
        &'a self,
        golden_id: &str,
        members: &'a [(&'a Reference, &'a R, Option<DateTime<Utc>>)],
    ) -> Survivorship<'a, R> {
        Survivorship {
            members,
            rules: &self.config.survivorship,
            overrides: self.overrides.get(golden_id),
            lineage: BTreeMap::new(),
        }
    }

    /// The golden person an id (live or absorbed) resolves to.
    pub fn golden_person(&self, golden_id: &str) -> Option<GoldenPerson> {
        let golden_id = self.persons.resolve(golden_id)?;
        let members = self.ranked(&self.persons, &golden_id, &self.person_records, |record| {
            record.recorded_at
        });
        let mut survive = self.survivorship(&golden_id, &members);
        let title = survive.pick("title", |record| record.title.clone());
        let given_name = survive.pick("given_name", |record| record.given.clone());
        let middle_name = survive.pick("middle_name", |record| record.middle.clone());
        let family_name = survive.pick("family_name", |record| record.family.clone());
        let date_of_birth = survive.pick("date_of_birth", |record| record.date_of_birth);
        let nino = survive.pick("nino", |record| record.nino.clone());
        let phone = survive.pick("phone", |record| record.phone.clone());
        let email = survive.pick("email", |record| record.email.clone());
        let postcode = survive.pick("postcode", |record| record.postcode.clone());
        let lineage = survive.lineage;
        Some(GoldenPerson {
            sources: members
                .iter()
                .map(|(reference, _, _)| (*reference).clone())
                .collect(),
            golden_id,
            title,
            given_name,
            middle_name,
            family_name,
            date_of_birth,
            nino,
            phone,
            email,
            postcode,
            lineage,
        })
    }

    /// The golden property an id (live or absorbed) resolves to.
    pub fn golden_property(&self, golden_id: &str) -> Option<GoldenProperty> {
        let golden_id = self.properties.resolve(golden_id)?;
        let members = self.ranked(
            &self.properties,
            &golden_id,
            &self.property_records,
            |record| record.recorded_at,
        );
        let mut survive = self.survivorship(&golden_id, &members);
        let uprn = survive.pick("uprn", |record| record.uprn.clone());
        let parent_uprn = survive.pick("parent_uprn", |record| record.parent_uprn.clone());
        let saon = survive.pick("saon", |record| record.address.saon.clone());
        let paon = survive.pick("paon", |record| record.address.paon.clone());
        let street = survive.pick("street", |record| record.address.street.clone());
        let locality = survive.pick("locality", |record| record.address.locality.clone());
        let town = survive.pick("town", |record| record.address.town.clone());
        let postcode = survive.pick("postcode", |record| record.address.postcode.clone());
        let property_type = survive.pick("property_type", |record| record.property_type.clone());
        let lineage = survive.lineage;
        let parent_golden_id = parent_uprn
            .as_ref()
            .and_then(|parent| self.property_keys.get(&format!("uprn:{parent}")))
            .and_then(|slots| slots.first())
            .map(|&slot| self.properties.golden_id_of_slot(slot).to_string());
        Some(GoldenProperty {
            sources: members
                .iter()
                .map(|(reference, _, _)| (*reference).clone())
                .collect(),
            golden_id,
            uprn,
            parent_uprn,
            parent_golden_id,
            saon,
            paon,
            street,
            locality,
            town,
            postcode,
            property_type,
            lineage,
        })
    }

    /// The pairs of a golden person's records with records that scored above the link
    /// threshold but a requirement kept apart (`decided_by` `vetoed`), explained.
    pub fn vetoed(&self, entity: Entity, golden_id: &str) -> Vec<LinkExplanation> {
        let mut explanations = Vec::new();
        if entity == Entity::Person
            && let Some(golden_id) = self.persons.resolve(golden_id)
        {
            let members = self.persons.member_slots(&golden_id);
            for (&(a, b), _) in self
                .vetoed
                .iter()
                .filter(|((a, b), _)| members.contains(a) || members.contains(b))
            {
                let (a, b) = if self.persons.reference(a) <= self.persons.reference(b) {
                    (a, b)
                } else {
                    (b, a)
                };
                explanations.push(LinkExplanation {
                    a: self.persons.reference(a).clone(),
                    b: self.persons.reference(b).clone(),
                    decided_by: "vetoed",
                    score: self.matcher.explain(a, b),
                    key: None,
                });
            }
        }
        explanations
    }

    /// Why the records of a golden record are together: every link inside it, explained.
    pub fn explain(&self, entity: Entity, golden_id: &str) -> Option<Vec<LinkExplanation>> {
        let index = self.index(entity);
        let golden_id = index.resolve(golden_id)?;
        Some(
            index
                .links_within(&golden_id)
                .into_iter()
                .map(|(a, b, weight)| {
                    // Each pair reads the same whatever order its records arrived in.
                    let (a, b) = if index.reference(a) <= index.reference(b) {
                        (a, b)
                    } else {
                        (b, a)
                    };
                    let (decided_by, score, key) = if weight.is_infinite() {
                        ("steward", None, None)
                    } else {
                        match entity {
                            Entity::Person => ("model", self.matcher.explain(a, b), None),
                            Entity::Property => {
                                let shared = self.property_records[a]
                                    .keys
                                    .iter()
                                    .find(|key| self.property_records[b].keys.contains(key))
                                    .cloned();
                                ("rule", None, shared)
                            }
                        }
                    };
                    LinkExplanation {
                        a: index.reference(a).clone(),
                        b: index.reference(b).clone(),
                        decided_by,
                        score,
                        key,
                    }
                })
                .collect(),
        )
    }

    /// Golden records whose source records disagree on an attribute (after normalisation):
    /// what survivorship had to choose between, for the reconciliation report.
    pub fn conflicts(&self, entity: Entity) -> Vec<Conflict> {
        fn collect<R>(
            index: &ClusterIndex,
            records: &[R],
            attributes: &[Attribute<R>],
            out: &mut Vec<Conflict>,
        ) {
            for golden_id in index.golden_ids() {
                let members = index.member_slots(golden_id);
                if members.len() < 2 {
                    continue;
                }
                for (attribute, get) in attributes {
                    let values: Vec<(Reference, String)> = members
                        .iter()
                        .filter_map(|&slot| {
                            get(&records[slot]).map(|value| (index.reference(slot).clone(), value))
                        })
                        .collect();
                    let distinct: std::collections::BTreeSet<&str> =
                        values.iter().map(|(_, value)| value.as_str()).collect();
                    if distinct.len() > 1 {
                        out.push(Conflict {
                            golden_id: golden_id.to_string(),
                            attribute,
                            values,
                        });
                    }
                }
            }
        }
        let mut out = Vec::new();
        match entity {
            Entity::Person => collect(
                &self.persons,
                &self.person_records,
                &[
                    ("given_name", |r| r.given.as_deref().map(normalise::fold)),
                    ("family_name", |r| r.family.as_deref().map(normalise::fold)),
                    ("date_of_birth", |r| r.date_of_birth.map(|d| d.to_string())),
                    ("nino", |r| r.nino.clone()),
                    ("phone", |r| r.phone.clone()),
                    ("email", |r| r.email.clone()),
                    ("postcode", |r| r.postcode.clone()),
                ],
                &mut out,
            ),
            Entity::Property => collect(
                &self.properties,
                &self.property_records,
                &[
                    ("uprn", |r| r.uprn.clone()),
                    ("saon", |r| r.address.saon.clone()),
                    ("paon", |r| r.address.paon.clone()),
                    ("street", |r| r.address.street.clone()),
                    ("postcode", |r| r.address.postcode.clone()),
                    ("property_type", |r| r.property_type.clone()),
                ],
                &mut out,
            ),
        }
        out
    }

    /// Person pairs a steward should decide, with their explanations, strongest first: pairs
    /// scored between the thresholds, and ambiguous links (one record matching two records
    /// that may not be one), that sit in different golden records.
    pub fn review_queue(&self) -> Vec<ReviewItem> {
        let held = self.persons.held_links();
        let mut items: Vec<(f64, ReviewItem)> = self
            .reviews
            .iter()
            .map(|(&pair, &weight)| (pair, weight))
            .chain(held.into_iter().map(|(a, b, weight)| ((a, b), weight)))
            .filter(|&((a, b), _)| self.persons.cluster_of(a) != self.persons.cluster_of(b))
            .filter_map(|((a, b), weight)| {
                let (a, b) = if self.persons.reference(a) <= self.persons.reference(b) {
                    (a, b)
                } else {
                    (b, a)
                };
                Some((
                    weight,
                    ReviewItem {
                        entity: Entity::Person,
                        a: self.persons.reference(a).clone(),
                        b: self.persons.reference(b).clone(),
                        golden_a: self.persons.golden_id_of_slot(a).to_string(),
                        golden_b: self.persons.golden_id_of_slot(b).to_string(),
                        score: self.matcher.explain(a, b)?,
                    },
                ))
            })
            .collect();
        items.sort_by(|x, y| {
            y.0.total_cmp(&x.0)
                .then_with(|| (&x.1.a, &x.1.b).cmp(&(&y.1.a, &y.1.b)))
        });
        items.into_iter().map(|(_, item)| item).collect()
    }

    /// Live golden person ids, sorted.
    pub fn golden_person_ids(&self) -> Vec<String> {
        self.persons
            .golden_ids()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Live golden property ids, sorted.
    pub fn golden_property_ids(&self) -> Vec<String> {
        self.properties
            .golden_ids()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    pub fn golden_persons(&self) -> Vec<GoldenPerson> {
        self.persons
            .golden_ids()
            .into_iter()
            .filter_map(|id| self.golden_person(id))
            .collect()
    }

    pub fn golden_properties(&self) -> Vec<GoldenProperty> {
        self.properties
            .golden_ids()
            .into_iter()
            .filter_map(|id| self.golden_property(id))
            .collect()
    }

    /// Tenancies with their parties and property resolved to golden ids. A party or property
    /// whose source record has not arrived yet stays unresolved until it does.
    pub fn tenancies(&self) -> Vec<GoldenTenancy> {
        self.tenancies
            .iter()
            .map(|(reference, tenancy)| {
                let local = |id: &str| Reference {
                    id: id.to_string(),
                    allocated_by: reference.allocated_by.clone(),
                };
                GoldenTenancy {
                    tenancy: reference.clone(),
                    golden_property_id: self
                        .properties
                        .golden_id_of(&local(&tenancy.property_ref))
                        .map(str::to_string),
                    golden_person_ids: tenancy
                        .party_refs
                        .iter()
                        .filter_map(|party| {
                            self.persons.golden_id_of(&local(party)).map(str::to_string)
                        })
                        .collect(),
                    start_date: tenancy.start_date,
                    end_date: tenancy.end_date,
                    tenure: tenancy.tenure.clone(),
                }
            })
            .collect()
    }

    /// The tenancy record held for a reference, as the source sent it.
    pub fn tenancy(&self, reference: &Reference) -> Option<&Tenancy> {
        self.tenancies.get(reference)
    }

    /// The vulnerability record held for a reference.
    pub fn vulnerability(&self, reference: &Reference) -> Option<&Vulnerability> {
        self.vulnerabilities.get(reference)
    }

    /// Every vulnerability as of `today`: it lapses automatically after its end date.
    pub fn vulnerabilities(&self, today: NaiveDate) -> Vec<VulnerabilityStatus> {
        self.vulnerabilities
            .iter()
            .map(|(reference, vulnerability)| {
                let active = vulnerability.start_date.is_none_or(|start| start <= today)
                    && vulnerability.end_date.is_none_or(|end| end >= today);
                let person = Reference {
                    id: vulnerability.person_ref.clone(),
                    allocated_by: reference.allocated_by.clone(),
                };
                VulnerabilityStatus {
                    vulnerability: reference.clone(),
                    golden_person_id: self.persons.golden_id_of(&person).map(str::to_string),
                    code: vulnerability.code.clone(),
                    description: vulnerability.description.clone(),
                    start_date: vulnerability.start_date,
                    end_date: vulnerability.end_date,
                    review_date: vulnerability.review_date,
                    active,
                    review_overdue: active
                        && vulnerability
                            .review_date
                            .is_some_and(|review| review < today),
                }
            })
            .collect()
    }

    /// How many vulnerabilities are active, overdue for review and lapsed on `today`, and
    /// how many homes contractors see flagged.
    pub fn vulnerability_counts(&self, today: NaiveDate) -> VulnerabilityCounts {
        let statuses = self.vulnerabilities(today);
        VulnerabilityCounts {
            as_of: today,
            active: statuses.iter().filter(|status| status.active).count(),
            review_overdue: statuses.iter().filter(|s| s.review_overdue).count(),
            lapsed: statuses.iter().filter(|status| !status.active).count(),
            homes_flagged: self.contractor_alerts(today).len(),
        }
    }

    /// Homes where a current tenancy holder has an active vulnerability as of `today`: the
    /// contractor-facing flag, which carries no detail.
    pub fn contractor_alerts(&self, today: NaiveDate) -> Vec<ContractorAlert> {
        let vulnerable: std::collections::HashSet<String> = self
            .vulnerabilities(today)
            .into_iter()
            .filter(|status| status.active)
            .filter_map(|status| status.golden_person_id)
            .collect();
        let mut alerts: Vec<ContractorAlert> = self
            .tenancies()
            .into_iter()
            .filter(|tenancy| tenancy.end_date.is_none_or(|end| end >= today))
            .filter(|tenancy| {
                tenancy
                    .golden_person_ids
                    .iter()
                    .any(|person| vulnerable.contains(person))
            })
            .filter_map(|tenancy| tenancy.golden_property_id)
            .map(|golden_property_id| ContractorAlert {
                golden_property_id,
                take_extra_care: true,
            })
            .collect();
        alerts.sort();
        alerts.dedup();
        alerts
    }

    /// The cross-reference: every person and property source record and its golden id.
    pub fn xref(&self) -> Vec<XrefEntry> {
        let entries = |entity: &'static str, index: &ClusterIndex| {
            index
                .xref()
                .into_iter()
                .map(|(reference, golden_id)| XrefEntry {
                    entity,
                    source: reference.allocated_by.clone(),
                    source_id: reference.id.clone(),
                    golden_id: golden_id.to_string(),
                })
                .collect::<Vec<_>>()
        };
        let mut rows = entries("person", &self.persons);
        rows.extend(entries("property", &self.properties));
        rows
    }

    /// The (entity, golden id) of every person or property source record with this reference.
    pub fn golden_ids_of(&self, reference: &Reference) -> Vec<(&'static str, &str)> {
        let person = self
            .persons
            .golden_id_of(reference)
            .map(|id| ("person", id));
        let property = self
            .properties
            .golden_id_of(reference)
            .map(|id| ("property", id));
        person.into_iter().chain(property).collect()
    }

    /// Golden ids absorbed into another cluster, with the live id each resolves to now.
    pub fn redirects(&self) -> Vec<(Entity, String, String)> {
        [Entity::Person, Entity::Property]
            .into_iter()
            .flat_map(|entity| {
                let index = self.index(entity);
                index.redirects().into_keys().filter_map(move |from| {
                    let to = index.resolve(from)?;
                    Some((entity, from.to_string(), to))
                })
            })
            .collect()
    }

    /// The redirects that may have changed with `changes` (see
    /// `ClusterIndex::redirects_through`), as `redirects` gives them.
    pub fn redirects_changed(&self, changes: &Changes) -> Vec<(Entity, String, String)> {
        [
            (Entity::Person, &changes.persons),
            (Entity::Property, &changes.properties),
        ]
        .into_iter()
        .flat_map(|(entity, ids)| {
            let changed: FxHashSet<&str> = ids.iter().map(String::as_str).collect();
            self.index(entity)
                .redirects_through(&changed)
                .into_iter()
                .map(move |(from, to)| (entity, from.to_string(), to))
        })
        .collect()
    }
}
