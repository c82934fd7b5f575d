//! The issue register: opened, refreshed and resolved as events are applied; the rules about
//! golden records and the day reconciled when it is read.

use super::*;

/// One issue: a record failing a rule, from when it was first seen failing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    pub rule: String,
    pub dimension: Dimension,
    pub severity: Severity,
    /// The team that fixes it, and the system where the fix is made.
    pub owner: String,
    pub system: String,
    /// The record, by its source reference only.
    pub record: Reference,
    pub golden_id: Option<String>,
    /// What is wrong, without the values.
    pub problem: String,
    pub fix: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// The issue register: open issues, and those resolved.
#[derive(Debug, Default)]
pub struct Register {
    pub(super) standard: Standard,
    /// Open issues by rule (index) and record.
    pub(super) open: HashMap<(usize, Reference), Issue>,
    pub(super) resolved: Vec<Issue>,
    /// Records seen per entity and system: what a score is out of.
    records: HashMap<(EntityKind, String), std::collections::HashSet<String>>,
    /// The dates `not_past` rules compare with the day, per rule and record: the date, and
    /// the `unless_past` date.
    dated: HashMap<(usize, Reference), (NaiveDate, Option<NaiveDate>)>,
    /// Issues opened, refreshed or resolved since the store last took them (when tracked).
    changed: Vec<Issue>,
    tracking: bool,
}

impl Register {
    pub fn new(standard: Standard) -> Register {
        Register {
            standard,
            ..Register::default()
        }
    }

    pub fn standard(&self) -> &Standard {
        &self.standard
    }

    /// Keeps what changes for the store (`take_changes`).
    pub fn track_changes(&mut self) {
        self.tracking = true;
    }

    /// The issues changed since the last call, in their current state, oldest change first.
    pub fn take_changes(&mut self) -> Vec<Issue> {
        std::mem::take(&mut self.changed)
    }

    /// Changes a failed write took, back ahead of any made since.
    pub fn put_back(&mut self, mut changes: Vec<Issue>) {
        changes.append(&mut self.changed);
        self.changed = changes;
    }

    /// The issues a store holds (open and resolved), before the events are applied again:
    /// an issue still failing keeps when it was first seen. Issues of rules no longer in the
    /// standard are left out.
    pub fn restore(&mut self, issues: Vec<Issue>) {
        for issue in issues {
            let Some(index) = self
                .standard
                .rules
                .iter()
                .position(|c| c.rule.id == issue.rule)
            else {
                continue;
            };
            if issue.resolved_at.is_some() {
                self.resolved.push(issue);
            } else {
                self.open.insert((index, issue.record.clone()), issue);
            }
        }
    }

    fn changed(&mut self, issue: &Issue) {
        if self.tracking {
            self.changed.push(issue.clone());
        }
    }

    /// Evaluates the rules about one record on an event applied to the hub: opens the issues
    /// it fails, refreshes those still failing and resolves those it now passes (all of the
    /// record's, when the event deletes it).
    pub fn apply(&mut self, event: &Envelope) {
        let kind = event.payload.kind();
        if !matches!(
            kind,
            EntityKind::Person
                | EntityKind::Property
                | EntityKind::Tenancy
                | EntityKind::Vulnerability
        ) {
            return;
        }
        let at = event
            .recorded_at
            .or(event.occurred_at)
            .unwrap_or(event.ingested_at);
        let system = event.source_ref.allocated_by.clone();
        // The payload's fields, read once for every rule about this kind of record.
        let values = if self
            .standard
            .rules
            .iter()
            .any(|compiled| compiled.entity == kind)
        {
            payload_fields(&event.payload)
        } else {
            serde_json::Map::new()
        };
        let records = self.records.entry((kind, system.clone())).or_default();
        let failures = if event.source.op == Op::Delete {
            records.remove(&event.source_ref.id);
            Vec::new()
        } else {
            records.insert(event.source_ref.id.clone());
            self.standard.failures(event, &values)
        };
        let mut failing = vec![None; self.standard.rules.len()];
        for (index, problem) in failures {
            failing[index] = Some(problem);
        }
        if self.standard.rules.iter().any(|compiled| {
            compiled.entity == kind && matches!(compiled.check, Check::NotPast { .. })
        }) {
            let date = |field: &str| {
                values
                    .get(field)
                    .and_then(Value::as_str)
                    .and_then(|text| text.parse::<NaiveDate>().ok())
            };
            for (index, compiled) in self.standard.rules.iter().enumerate() {
                if let Check::NotPast { field, unless } = &compiled.check
                    && compiled.entity == kind
                {
                    let key = (index, event.source_ref.clone());
                    match date(field)
                        .filter(|_| event.source.op != Op::Delete && compiled.applies_to(&system))
                    {
                        Some(due) => {
                            self.dated
                                .insert(key, (due, unless.as_deref().and_then(&date)));
                        }
                        None => {
                            self.dated.remove(&key);
                        }
                    }
                }
            }
        }
        for (index, compiled) in self.standard.rules.iter().enumerate() {
            if compiled.entity != kind || compiled.check.when_read() {
                continue;
            }
            let key = (index, event.source_ref.clone());
            match failing[index].take() {
                Some(problem) => {
                    let owner = self.standard.owner(&compiled.rule, &system);
                    let issue = self.open.entry(key).or_insert_with(|| Issue {
                        rule: compiled.rule.id.clone(),
                        dimension: compiled.rule.dimension,
                        severity: compiled.rule.severity,
                        owner,
                        system: system.clone(),
                        record: event.source_ref.clone(),
                        golden_id: None,
                        problem: problem.clone(),
                        fix: compiled.rule.fix.clone(),
                        first_seen: at,
                        last_seen: at,
                        resolved_at: None,
                    });
                    issue.problem = problem;
                    issue.last_seen = issue.last_seen.max(at);
                    if self.tracking {
                        self.changed.push(issue.clone());
                    }
                }
                None => {
                    if let Some(mut issue) = self.open.remove(&key) {
                        issue.resolved_at = Some(at.max(issue.last_seen));
                        if self.tracking {
                            self.changed.push(issue.clone());
                        }
                        self.resolved.push(issue);
                    }
                }
            }
        }
    }

    /// Evaluates the rules about golden records over `hub`, as of `at`: opens, refreshes and
    /// resolves their issues, and names the golden record of every open issue.
    pub fn reconcile(&mut self, hub: &Hub, at: DateTime<Utc>) {
        let mut failing: HashMap<(usize, Reference), (String, String)> = HashMap::new();
        let mut conflicts: HashMap<EntityKind, Vec<crate::Conflict>> = HashMap::new();
        for (index, compiled) in self.standard.rules.iter().enumerate() {
            if let Check::Agree(field) = &compiled.check {
                let entity = match compiled.entity {
                    EntityKind::Person => Entity::Person,
                    _ => Entity::Property,
                };
                let found = conflicts
                    .entry(compiled.entity)
                    .or_insert_with(|| hub.conflicts(entity));
                // The systems' order, then ids, picks the reference value.
                let rank = |reference: &Reference| {
                    let system = compiled
                        .rule
                        .systems
                        .iter()
                        .position(|system| *system == reference.allocated_by)
                        .unwrap_or(usize::MAX);
                    (
                        system,
                        reference.allocated_by.clone(),
                        reference.id.len(),
                        reference.id.clone(),
                    )
                };
                for conflict in found.iter().filter(|conflict| conflict.attribute == field) {
                    let mut values: Vec<&(Reference, String)> = conflict
                        .values
                        .iter()
                        .filter(|(reference, _)| compiled.applies_to(&reference.allocated_by))
                        .collect();
                    values.sort_by_key(|(reference, _)| rank(reference));
                    let Some((first, reference_value)) = values.first().map(|(r, v)| (r, v)) else {
                        continue;
                    };
                    for (record, value) in &values[1..] {
                        if value != reference_value {
                            let problem = format!(
                                "{field} differs from {}:{}'s",
                                first.allocated_by, first.id
                            );
                            failing.insert(
                                (index, record.clone()),
                                (conflict.golden_id.clone(), problem),
                            );
                        }
                    }
                }
                continue;
            }
            if !compiled.check.golden() {
                continue;
            }
            let golden: Vec<(String, Vec<Reference>)> = match compiled.entity {
                EntityKind::Person => hub
                    .golden_persons()
                    .into_iter()
                    .map(|g| (g.golden_id, g.sources))
                    .collect(),
                _ => hub
                    .golden_properties()
                    .into_iter()
                    .map(|g| (g.golden_id, g.sources))
                    .collect(),
            };
            for (golden_id, mut sources) in golden {
                sources.retain(|source| compiled.applies_to(&source.allocated_by));
                match &compiled.check {
                    Check::Unique => {
                        // Per system, every record but the first (by id) is a duplicate.
                        sources.sort_by(|a, b| {
                            (&a.allocated_by, a.id.len(), &a.id).cmp(&(
                                &b.allocated_by,
                                b.id.len(),
                                &b.id,
                            ))
                        });
                        for pair in sources.windows(2) {
                            if pair[0].allocated_by == pair[1].allocated_by {
                                let problem = format!(
                                    "a second {} record of golden record {golden_id} (first: {})",
                                    pair[1].allocated_by, pair[0].id
                                );
                                failing
                                    .insert((index, pair[1].clone()), (golden_id.clone(), problem));
                            }
                        }
                    }
                    Check::HasRecordFrom(system)
                        if !sources.iter().any(|source| &source.allocated_by == system) =>
                    {
                        // The issue is about the home as the first system holding it knows it.
                        if let Some(first) = sources
                            .iter()
                            .min_by(|a, b| (&a.allocated_by, &a.id).cmp(&(&b.allocated_by, &b.id)))
                        {
                            let problem = format!("no {system} record");
                            failing.insert((index, first.clone()), (golden_id.clone(), problem));
                        }
                    }
                    _ => {}
                }
            }
        }
        // What is due by a date that has passed.
        let today = at.date_naive();
        for ((index, record), (due, unless)) in &self.dated {
            if *due < today && unless.is_none_or(|ended| ended >= today) {
                let field = match &self.standard.rules[*index].check {
                    Check::NotPast { field, .. } => field.as_str(),
                    _ => continue,
                };
                failing.insert(
                    (*index, record.clone()),
                    (String::new(), format!("{field} has passed")),
                );
            }
        }
        // Resolve what no longer fails.
        let stale: Vec<(usize, Reference)> = self
            .open
            .keys()
            .filter(|(index, _)| self.standard.rules[*index].check.when_read())
            .filter(|key| !failing.contains_key(*key))
            .cloned()
            .collect();
        for key in stale {
            if let Some(mut issue) = self.open.remove(&key) {
                issue.resolved_at = Some(at);
                self.changed(&issue);
                self.resolved.push(issue);
            }
        }
        for ((index, record), (golden_id, problem)) in failing {
            let compiled = &self.standard.rules[index];
            let owner = self.standard.owner(&compiled.rule, &record.allocated_by);
            let system = compiled
                .rule
                .has_record_from
                .clone()
                .unwrap_or_else(|| record.allocated_by.clone());
            let issue = self
                .open
                .entry((index, record.clone()))
                .or_insert_with(|| Issue {
                    rule: compiled.rule.id.clone(),
                    dimension: compiled.rule.dimension,
                    severity: compiled.rule.severity,
                    owner,
                    system,
                    record,
                    golden_id: None,
                    problem: String::new(),
                    fix: compiled.rule.fix.clone(),
                    first_seen: at,
                    last_seen: at,
                    resolved_at: None,
                });
            // A rule about the day names no golden record: it is looked up below.
            let golden_id = (!golden_id.is_empty())
                .then_some(golden_id)
                .or(issue.golden_id.clone());
            let changed =
                issue.problem != problem || issue.golden_id != golden_id || issue.first_seen == at;
            issue.problem = problem;
            issue.golden_id = golden_id;
            issue.last_seen = at;
            if changed && self.tracking {
                self.changed.push(issue.clone());
            }
        }
        // The golden record of every other open issue, for whoever looks at it.
        for ((_, record), issue) in self.open.iter_mut() {
            if issue.golden_id.is_none() {
                let entity = match record_entity(issue, &self.standard) {
                    Some(entity) => entity,
                    None => continue,
                };
                issue.golden_id = hub
                    .golden_ids_of(record)
                    .into_iter()
                    .find(|(of, _)| *of == entity.as_str())
                    .map(|(_, golden_id)| golden_id.to_string());
            }
        }
    }

    /// The day of the latest issue seen (first seen, last seen or resolved).
    pub fn latest(&self) -> Option<NaiveDate> {
        self.open
            .values()
            .map(|issue| issue.last_seen)
            .chain(self.resolved.iter().filter_map(|issue| issue.resolved_at))
            .max()
            .map(|at| at.date_naive())
    }

    /// Forgets everything about erased records (their issues name them).
    pub fn forget(&mut self, records: &[Reference]) {
        self.open.retain(|(_, record), _| !records.contains(record));
        self.resolved
            .retain(|issue| !records.contains(&issue.record));
        for reference in records {
            for ((_, system), ids) in self.records.iter_mut() {
                if *system == reference.allocated_by {
                    ids.remove(&reference.id);
                }
            }
        }
    }

    /// The open issues, by rule then record.
    pub fn open(&self) -> Vec<&Issue> {
        let mut open: Vec<&Issue> = self.open.values().collect();
        open.sort_by(|a, b| (&a.rule, &a.record).cmp(&(&b.rule, &b.record)));
        open
    }

    pub fn resolved(&self) -> &[Issue] {
        &self.resolved
    }

    /// Open issues per rule id (every rule of the standard, zero included).
    pub fn open_per_rule(&self) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> = self
            .standard
            .rules()
            .map(|rule| (rule.id.clone(), 0))
            .collect();
        for issue in self.open.values() {
            *counts.entry(issue.rule.clone()).or_default() += 1;
        }
        counts
    }

    /// The records a rule is checked against, per system: its entity's records (or golden
    /// records, for a rule about golden records, under the system `golden`).
    pub(super) fn checked(
        &self,
        index: usize,
        hub_golden: &HashMap<EntityKind, usize>,
    ) -> Vec<(String, usize)> {
        let compiled = &self.standard.rules[index];
        if compiled.check.golden() {
            return vec![(
                "golden".into(),
                hub_golden.get(&compiled.entity).copied().unwrap_or(0),
            )];
        }
        let mut checked: Vec<(String, usize)> = self
            .records
            .iter()
            .filter(|((kind, system), _)| *kind == compiled.entity && compiled.applies_to(system))
            .map(|((_, system), ids)| (system.clone(), ids.len()))
            .collect();
        checked.sort();
        checked
    }
}
