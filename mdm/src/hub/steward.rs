//! What stewards and erasure change: verdicts on a pair (and their withdrawal), splits,
//! overrides of a golden record's attribute, and putting a person beyond use.

use super::*;

impl Hub {
    /// A steward's verdict on two person or property records. Verdicts are constraints the
    /// engine keeps through later updates until withdrawn; withdrawing restores exactly what
    /// the engine would have decided.
    pub fn steward(
        &mut self,
        entity: Entity,
        a: &Reference,
        b: &Reference,
        verdict: Verdict,
    ) -> Result<Vec<String>, crate::Error> {
        let index = self.index(entity);
        let slot = |reference: &Reference| {
            index.slot_of(reference).ok_or_else(|| {
                crate::Error::NotFound(format!(
                    "no {} record {}:{}",
                    entity.as_str(),
                    reference.allocated_by,
                    reference.id
                ))
            })
        };
        let (x, y) = (slot(a)?, slot(b)?);
        if x == y {
            return Err(crate::Error::BadInput(
                "a record cannot be matched with itself".into(),
            ));
        }
        let upsert = match entity {
            Entity::Person => {
                let matcher = &self.matcher;
                let conflict = |p: usize, q: usize| matcher.conflict(p, q);
                match verdict {
                    Verdict::Same => self.persons.decide(x, y, true, conflict),
                    Verdict::Different => self.persons.decide(x, y, false, conflict),
                    Verdict::Withdraw => self.persons.undecide(x, y, conflict),
                }
            }
            Entity::Property => {
                let records = &self.property_records;
                let conflict = |p: usize, q: usize| uprns_conflict(records, p, q);
                match verdict {
                    Verdict::Same => self.properties.decide(x, y, true, conflict),
                    Verdict::Different => self.properties.decide(x, y, false, conflict),
                    Verdict::Withdraw => self.properties.undecide(x, y, conflict),
                }
            }
        };
        let index = self.index(entity);
        let mut affected = vec![
            index.golden_id_of_slot(x).to_string(),
            index.golden_id_of_slot(y).to_string(),
        ];
        affected.extend(upsert.absorbed);
        affected.extend(upsert.revived);
        affected.sort();
        affected.dedup();
        Ok(affected)
    }

    /// The live golden person a subject names: a golden id (absorbed ids resolve) or one of
    /// their source records as `system:id`.
    pub fn person_subject(&self, subject: &str) -> Result<String, crate::Error> {
        match subject.split_once(':') {
            Some((system, id)) => {
                let reference = Reference {
                    id: id.to_string(),
                    allocated_by: system.to_string(),
                };
                self.persons
                    .golden_id_of(&reference)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        crate::Error::NotFound(format!("no person source record `{subject}`"))
                    })
            }
            None => self
                .persons
                .resolve(subject)
                .ok_or_else(|| crate::Error::NotFound(format!("no golden person `{subject}`"))),
        }
    }

    /// Puts a person beyond use (a granted erasure request): every source record of the
    /// golden person loses its values, links and steward verdicts and leaves the
    /// cross-reference and golden records; their vulnerabilities go; later events about
    /// those records are ignored. `golden_id` may be an absorbed id.
    pub fn erase(&mut self, golden_id: &str) -> Result<Erasure, crate::Error> {
        let golden_id = self
            .persons
            .resolve(golden_id)
            .ok_or_else(|| crate::Error::NotFound(format!("no golden person `{golden_id}`")))?;
        let slots = self.persons.member_slots(&golden_id).to_vec();
        let mut records = Vec::new();
        for slot in slots {
            let reference = self.persons.reference(slot).clone();
            self.quality
                .account(&self.person_records[slot].findings, -1);
            self.person_records[slot] = PersonRecord::default();
            self.matcher.erase(slot);
            self.reviews.retain(|&(a, b), _| a != slot && b != slot);
            self.vetoed.retain(|&(a, b), _| a != slot && b != slot);
            let matcher = &self.matcher;
            self.persons.retire(slot, |a, b| matcher.conflict(a, b));
            self.erased.insert(reference.clone());
            records.push(reference);
        }
        self.overrides.remove(&golden_id);
        let vulnerabilities = self.forget_vulnerabilities();
        records.sort();
        Ok(Erasure {
            golden_id,
            records,
            vulnerabilities,
        })
    }

    /// Marks person records as erased before their events arrive (a restart applies the
    /// stored erasures first, so files read again do not bring the person back).
    pub fn suppress(&mut self, references: impl IntoIterator<Item = Reference>) {
        self.erased.extend(references);
    }

    /// Removes the vulnerabilities of erased people; returns their references.
    fn forget_vulnerabilities(&mut self) -> Vec<Reference> {
        let erased = &self.erased;
        let gone: Vec<Reference> = self
            .vulnerabilities
            .iter()
            .filter(|(reference, vulnerability)| {
                erased.contains(&Reference {
                    id: vulnerability.person_ref.clone(),
                    allocated_by: reference.allocated_by.clone(),
                })
            })
            .map(|(reference, _)| reference.clone())
            .collect();
        for reference in &gone {
            self.vulnerabilities.remove(reference);
            if self.track_changes {
                self.changed_vulnerabilities.insert(reference.clone());
            }
        }
        gone
    }

    /// Whether a person record has been erased.
    pub fn is_erased(&self, reference: &Reference) -> bool {
        self.erased.contains(reference)
    }

    /// A steward splits a record out of its golden record: a never-match verdict between it
    /// and each other member (withdraw them one by one to undo). Returns the golden ids
    /// affected.
    pub fn split(
        &mut self,
        entity: Entity,
        reference: &Reference,
    ) -> Result<Vec<String>, crate::Error> {
        let index = self.index(entity);
        let slot = index.slot_of(reference).ok_or_else(|| {
            crate::Error::NotFound(format!(
                "no {} record {}:{}",
                entity.as_str(),
                reference.allocated_by,
                reference.id
            ))
        })?;
        let others: Vec<Reference> = index
            .member_slots(index.golden_id_of_slot(slot))
            .iter()
            .filter(|&&other| other != slot)
            .map(|&other| index.reference(other).clone())
            .collect();
        let mut affected = Vec::new();
        for other in &others {
            affected.extend(self.steward(entity, reference, other, Verdict::Different)?);
        }
        affected.sort();
        affected.dedup();
        Ok(affected)
    }

    /// A steward sets an attribute of a golden record by hand (`None` clears it); the
    /// lineage then says `steward`. Attribute names are those of the golden record.
    pub fn set_override(&mut self, golden_id: &str, attribute: &str, value: Option<String>) {
        self.persons.mark_golden_id(golden_id);
        self.properties.mark_golden_id(golden_id);
        let entry = self.overrides.entry(golden_id.to_string()).or_default();
        match value {
            Some(value) => {
                entry.insert(attribute.to_string(), value);
            }
            None => {
                entry.remove(attribute);
            }
        }
    }

    /// Every steward verdict in force (`Same` or `Different`), by entity then pair: what a
    /// restart applies again after the records.
    pub fn verdicts(&self) -> Vec<StewardVerdict> {
        [Entity::Person, Entity::Property]
            .into_iter()
            .flat_map(|entity| {
                self.index(entity)
                    .decisions()
                    .into_iter()
                    .map(move |(a, b, same)| StewardVerdict {
                        entity,
                        a: a.clone(),
                        b: b.clone(),
                        verdict: if same {
                            Verdict::Same
                        } else {
                            Verdict::Different
                        },
                    })
            })
            .collect()
    }
}
