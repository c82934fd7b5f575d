//! The tables goldthread keeps as events arrive instead of computing them per query:
//! `appointment_days` (the appointments per slot date and group that the appointment KPIs
//! count, with their rebookings), `repair_days` (completed repairs per completion day and
//! group, with their first visit's outcome), `order_days` (work orders per raised day,
//! cancelled or not, with an appointment or not) and `hazard_days` (Awaab's Law hazards per
//! report day, with their completion and first visit). `sql/views/current.sql` defines each over
//! the history (other engines run those definitions); this module keeps the same counts so
//! that a KPI reads a few hundred thousand groups instead of joining every appointment to
//! its visit, work order and property, every work order to its request and status, and
//! ranking each work order's appointments.
//!
//! Per batch: the work orders it touches (an appointment's old and new work order, the work
//! order of a visit's appointment, a work order, its status updates, the work orders of a
//! repair request, the work orders at a property) have their rows taken out, the batch is
//! applied, and their rows are put back. A table is built from its counts when a query scans
//! it after a change.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate};

use crate::tables::{BatchBuilder, Cell};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use pipeline::{Envelope, Payload};

/// Outcomes at which an appointment did not go ahead (their attribution is kept).
const FAILED: &[&str] = &["no_access", "aborted", "missed", "cancelled"];

/// Outcomes at which an operative attended and worked: a visit, for the first-visit measures.
const VISITED: &[&str] = &["kept_completed", "kept_not_completed", "aborted"];

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The date `days` after 1970-01-01.
fn date(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date") + chrono::Duration::days(days.into())
}

/// The day (since 1970-01-01) of an instant in microseconds.
fn day(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// Rows per Arrow batch of the built table, so that a scan spreads over the cores.
const BATCH_ROWS: usize = 8192;

/// Dense ids for references, with the reference kept once.
#[derive(Debug, Default)]
struct Ids {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Ids {
    fn get(&self, name: &str) -> Option<usize> {
        self.ids.get(name).map(|id| *id as usize)
    }

    /// The id of `name`, and whether it is new.
    fn id(&mut self, name: &str) -> (usize, bool) {
        if let Some(id) = self.get(name) {
            return (id, false);
        }
        let name: Arc<str> = name.into();
        let id = self.names.len();
        self.ids.insert(name.clone(), id as u32);
        self.names.push(name);
        (id, true)
    }
}

/// The latest version of an appointment, as far as the counts need it.
#[derive(Debug)]
struct Booking {
    order: u32,
    slot_date: i32,
    slot: Option<Arc<str>>,
    window_start: Option<i64>,
    window_end: Option<i64>,
    reminder_sent: Option<bool>,
}

/// The latest visit (outcome) of an appointment.
#[derive(Debug)]
struct Outcome {
    outcome: Arc<str>,
    attribution: Option<Arc<str>>,
    arrived_at: Option<i64>,
    contact_attempts: Option<i64>,
    card_left: Option<bool>,
}

/// The latest version of a work order.
#[derive(Debug)]
struct Order {
    contractor: Option<Arc<str>>,
    trade: Option<Arc<str>>,
    property: u32,
    request: Option<u32>,
    raised_at: i64,
    work_class: Option<Arc<str>>,
    /// The first version's priority and target: the priority at report time when no repair
    /// request arrived.
    first_priority: i64,
    first_due_at: Option<i64>,
}

/// The latest version of a tenancy, as occupancy needs it.
#[derive(Debug)]
struct Let {
    property: u32,
    start: Option<i32>,
    end: Option<i32>,
}

/// The latest version of a repair request.
#[derive(Debug)]
struct Request {
    reported_at: i64,
    priority: Option<i64>,
    due_at: Option<i64>,
}

/// A work order's status: its latest completion and cancellation (any version).
#[derive(Debug, Default, Clone, Copy)]
struct Status {
    completed_at: Option<i64>,
    cancelled_at: Option<i64>,
}

/// One row of `repair_days` without its count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RepairKey {
    completed_on: i32,
    priority: i64,
    work_class: Arc<str>,
    within_target: bool,
    days: i64,
    first_visit_outcome: Option<Arc<str>>,
    /// A tenancy in force at the property on the report day (NULL: no tenancy known at all).
    occupied: Option<bool>,
}

/// One row of `hazard_days` without its count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct HazardKey {
    reported_on: i32,
    emergency: bool,
    significant: bool,
    completed_on: Option<i32>,
    made_safe_24h: bool,
    open_since: Option<i64>,
    investigated_on: Option<i32>,
}

/// One row of `order_days` without its count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct OrderKey {
    raised_on: i32,
    cancelled: bool,
    booked: bool,
}

/// One row of `appointment_days` without its counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    slot_date: i32,
    slot: Arc<str>,
    /// The bits of the slot's width in hours (an f64).
    slot_hours: Option<u64>,
    outcome: Option<Arc<str>>,
    attribution: Option<Arc<str>>,
    evidenced: Option<bool>,
    reminded: bool,
    contractor: Option<Arc<str>>,
    trade: Option<Arc<str>>,
    patch: Arc<str>,
}

#[derive(Debug, Default)]
struct State {
    appointment_ids: Ids,
    bookings: Vec<Option<Booking>>,
    outcomes: Vec<Option<Outcome>>,
    order_ids: Ids,
    orders: Vec<Option<Order>>,
    statuses: Vec<Status>,
    /// Per work order: the appointments whose latest version names it.
    members: Vec<Vec<u32>>,
    request_ids: Ids,
    requests: Vec<Option<Request>>,
    /// Per repair request: the work orders whose latest version names it.
    request_orders: Vec<Vec<u32>>,
    property_ids: Ids,
    /// Per property: its patch (postcode district), if the property and its postcode are known.
    patches: Vec<Option<Arc<str>>>,
    /// Per property: the work orders whose latest version names it.
    property_orders: Vec<Vec<u32>>,
    /// Tenancies by source and reference: the latest version's property, first and last day.
    tenancy_ids: Ids,
    tenancies: Vec<Option<Let>>,
    /// Per property: the tenancies whose latest version names it.
    property_tenancies: Vec<Vec<u32>>,
    /// Tenancies known: with none, no home can be told occupied or void.
    known_tenancies: usize,
    strings: HashSet<Arc<str>>,
    /// Per `appointment_days` row: appointments, rebooked, delay days.
    counts: HashMap<Key, [i64; 3]>,
    repairs: HashMap<RepairKey, [i64; 1]>,
    raised: HashMap<OrderKey, [i64; 1]>,
    hazards: HashMap<HazardKey, [i64; 1]>,
    /// Each table built from its counts, until the next change.
    built: [Option<Vec<RecordBatch>>; 4],
    /// Priorities whose repairs are Awaab's Law emergency hazards (`repair_targets`).
    awaab_emergency: BTreeSet<i64>,
    /// Trades whose repairs are significant hazards (`hazard_trades`).
    hazard_trades: BTreeSet<String>,
}

/// Moves `member` from the list of `old` to the list of `new` (either may be none).
fn relink(lists: &mut [Vec<u32>], member: usize, old: Option<usize>, new: Option<usize>) {
    if old == new {
        return;
    }
    if let Some(old) = old {
        lists[old].retain(|other| *other as usize != member);
    }
    if let Some(new) = new {
        lists[new].push(member as u32);
    }
}

/// Kleene AND of SQL booleans (NULL is unknown).
fn all(terms: &[Option<bool>]) -> Option<bool> {
    if terms.contains(&Some(false)) {
        Some(false)
    } else if terms.contains(&None) {
        None
    } else {
        Some(true)
    }
}

impl State {
    fn intern(&mut self, value: &str) -> Arc<str> {
        if let Some(interned) = self.strings.get(value) {
            return interned.clone();
        }
        let interned: Arc<str> = value.into();
        self.strings.insert(interned.clone());
        interned
    }

    fn intern_option(&mut self, value: &Option<String>) -> Option<Arc<str>> {
        value.as_deref().map(|value| self.intern(value))
    }

    fn appointment(&mut self, reference: &str) -> usize {
        let (id, new) = self.appointment_ids.id(reference);
        if new {
            self.bookings.push(None);
            self.outcomes.push(None);
        }
        id
    }

    fn order(&mut self, reference: &str) -> usize {
        let (id, new) = self.order_ids.id(reference);
        if new {
            self.orders.push(None);
            self.statuses.push(Status::default());
            self.members.push(Vec::new());
        }
        id
    }

    fn request(&mut self, reference: &str) -> usize {
        let (id, new) = self.request_ids.id(reference);
        if new {
            self.requests.push(None);
            self.request_orders.push(Vec::new());
        }
        id
    }

    fn property(&mut self, reference: &str) -> usize {
        let (id, new) = self.property_ids.id(reference);
        if new {
            self.patches.push(None);
            self.property_orders.push(Vec::new());
            self.property_tenancies.push(Vec::new());
        }
        id
    }

    fn tenancy(&mut self, source: &str, reference: &str) -> usize {
        let (id, new) = self.tenancy_ids.id(&format!("{source}\u{1f}{reference}"));
        if new {
            self.tenancies.push(None);
        }
        id
    }

    /// Whether a tenancy was in force at a property on a day: none known at all is NULL.
    fn occupied(&self, property: usize, on: i32) -> Option<bool> {
        (self.known_tenancies > 0).then(|| {
            self.property_tenancies[property].iter().any(|id| {
                self.tenancies[*id as usize]
                    .as_ref()
                    .is_some_and(|tenancy| {
                        tenancy.start.is_none_or(|start| start <= on)
                            && tenancy.end.is_none_or(|end| on <= end)
                    })
            })
        })
    }

    /// The work orders whose appointments' rows an event changes, before it is applied.
    fn touched(&mut self, envelope: &Envelope, touched: &mut BTreeSet<usize>) {
        match &envelope.payload {
            Payload::Appointment(appointment) => {
                let id = self.appointment(&envelope.source_ref.id);
                if let Some(booking) = &self.bookings[id] {
                    touched.insert(booking.order as usize);
                }
                touched.insert(self.order(&appointment.work_order_ref));
            }
            Payload::Visit(visit) => {
                let id = self.appointment(&visit.appointment_ref);
                if let Some(booking) = &self.bookings[id] {
                    touched.insert(booking.order as usize);
                }
            }
            Payload::WorkOrder(_) => {
                touched.insert(self.order(&envelope.source_ref.id));
            }
            Payload::WorkOrderUpdate(update) => {
                touched.insert(self.order(&update.work_order_ref));
            }
            Payload::RepairRequest(_) => {
                let id = self.request(&envelope.source_ref.id);
                touched.extend(self.request_orders[id].iter().map(|order| *order as usize));
            }
            Payload::Property(_) => {
                let id = self.property(&envelope.source_ref.id);
                touched.extend(self.property_orders[id].iter().map(|order| *order as usize));
            }
            Payload::Tenancy(tenancy) => {
                if self.known_tenancies == 0 {
                    // The first tenancy makes every repair's occupancy known.
                    touched.extend(0..self.orders.len());
                }
                let id = self.tenancy(&envelope.source_ref.allocated_by, &envelope.source_ref.id);
                if let Some(old) = &self.tenancies[id] {
                    let old = old.property as usize;
                    touched.extend(
                        self.property_orders[old]
                            .iter()
                            .map(|order| *order as usize),
                    );
                }
                let new = self.property(&tenancy.property_ref);
                touched.extend(
                    self.property_orders[new]
                        .iter()
                        .map(|order| *order as usize),
                );
            }
            _ => {}
        }
    }

    /// Applies an event: the latest version replaces the one before. `due` is the target
    /// instant of a report (priority, when) as the live tables store it.
    fn apply(&mut self, envelope: &Envelope, due: &Due<'_>) {
        let micros = |instant: Option<chrono::DateTime<chrono::Utc>>| {
            instant.map(|instant| instant.timestamp_micros())
        };
        match &envelope.payload {
            Payload::Appointment(appointment) => {
                let id = self.appointment(&envelope.source_ref.id);
                let order = self.order(&appointment.work_order_ref);
                let old = self.bookings[id]
                    .as_ref()
                    .map(|booking| booking.order as usize);
                relink(&mut self.members, id, old, Some(order));
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
                self.bookings[id] = Some(Booking {
                    order: order as u32,
                    slot_date: (appointment.slot_date - epoch).num_days() as i32,
                    slot: self.intern_option(&appointment.slot),
                    window_start: micros(appointment.window_start),
                    window_end: micros(appointment.window_end),
                    reminder_sent: appointment.reminder_sent,
                });
            }
            Payload::Visit(visit) => {
                let id = self.appointment(&visit.appointment_ref);
                self.outcomes[id] = Some(Outcome {
                    outcome: self.intern(&visit.outcome),
                    attribution: self.intern_option(&visit.attribution),
                    arrived_at: micros(visit.arrived_at),
                    contact_attempts: visit.contact_attempts,
                    card_left: visit.card_left,
                });
            }
            Payload::WorkOrder(order) => {
                let id = self.order(&envelope.source_ref.id);
                let property = self.property(&order.property_ref);
                let request = order
                    .repair_request_ref
                    .as_deref()
                    .map(|request| self.request(request));
                let old = self.orders[id].as_ref();
                let (old_property, old_request) = (
                    old.map(|old| old.property as usize),
                    old.and_then(|old| old.request)
                        .map(|request| request as usize),
                );
                let (first_priority, first_due_at) = match old {
                    Some(old) => (old.first_priority, old.first_due_at),
                    None => (
                        order.priority,
                        micros(due(Some(order.priority), order.raised_at)),
                    ),
                };
                relink(&mut self.property_orders, id, old_property, Some(property));
                relink(&mut self.request_orders, id, old_request, request);
                self.orders[id] = Some(Order {
                    contractor: self.intern_option(&order.contractor),
                    trade: self.intern_option(&order.trade),
                    property: property as u32,
                    request: request.map(|request| request as u32),
                    raised_at: order.raised_at.timestamp_micros(),
                    work_class: self.intern_option(&order.work_class),
                    first_priority,
                    first_due_at,
                });
            }
            Payload::WorkOrderUpdate(update) => {
                let id = self.order(&update.work_order_ref);
                let at = Some(update.status_at.timestamp_micros());
                let status = &mut self.statuses[id];
                match update.status.as_str() {
                    "completed" => status.completed_at = status.completed_at.max(at),
                    "cancelled" => status.cancelled_at = status.cancelled_at.max(at),
                    _ => {}
                }
            }
            Payload::RepairRequest(request) => {
                let id = self.request(&envelope.source_ref.id);
                self.requests[id] = Some(Request {
                    reported_at: request.reported_at.timestamp_micros(),
                    priority: request.priority,
                    due_at: micros(due(request.priority, request.reported_at)),
                });
            }
            Payload::Property(property) => {
                let id = self.property(&envelope.source_ref.id);
                self.patches[id] = property
                    .postcode
                    .as_deref()
                    .map(|postcode| self.intern(postcode.split(' ').next().unwrap_or_default()));
            }
            Payload::Tenancy(tenancy) => {
                let id = self.tenancy(&envelope.source_ref.allocated_by, &envelope.source_ref.id);
                let property = self.property(&tenancy.property_ref);
                let old = self.tenancies[id].as_ref().map(|old| old.property as usize);
                if old.is_none() {
                    self.known_tenancies += 1;
                }
                relink(&mut self.property_tenancies, id, old, Some(property));
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
                let day =
                    |date: Option<NaiveDate>| date.map(|date| (date - epoch).num_days() as i32);
                self.tenancies[id] = Some(Let {
                    property: property as u32,
                    start: day(tenancy.start_date),
                    end: day(tenancy.end_date),
                });
            }
            _ => {}
        }
    }

    /// Adds (`sign` 1) or takes out (-1) the rows of a work order's appointments.
    fn contribute(&mut self, order: usize, sign: i64) {
        let unknown = self.intern("unknown");
        let mut members: Vec<(&Booking, usize)> = self.members[order]
            .iter()
            .filter_map(|id| Some((self.bookings[*id as usize].as_ref()?, *id as usize)))
            .collect();
        // The view's LEAD order: slot date, window start (NULLs last), reference.
        members.sort_by(|(a, a_id), (b, b_id)| {
            (a.slot_date, a.window_start.is_none(), a.window_start)
                .cmp(&(b.slot_date, b.window_start.is_none(), b.window_start))
                .then_with(|| {
                    self.appointment_ids.names[*a_id].cmp(&self.appointment_ids.names[*b_id])
                })
        });
        let work_order = self.orders[order].as_ref();
        let patch = work_order
            .and_then(|order| self.patches[order.property as usize].clone())
            .unwrap_or_else(|| unknown.clone());
        let mut rows = Vec::with_capacity(members.len());
        for (index, (booking, id)) in members.iter().enumerate() {
            let visit = self.outcomes[*id].as_ref();
            let outcome = visit.map(|visit| visit.outcome.clone());
            let failed = outcome
                .as_deref()
                .is_some_and(|outcome| FAILED.contains(&outcome));
            let no_access = outcome.as_deref() == Some("no_access");
            let evidenced = visit.filter(|_| no_access).and_then(|visit| {
                let compare = |bound: Option<i64>, after: bool| {
                    visit.arrived_at.zip(bound).map(|(arrived, bound)| {
                        if after {
                            arrived >= bound
                        } else {
                            arrived <= bound
                        }
                    })
                };
                all(&[
                    Some(visit.arrived_at.is_some()),
                    compare(booking.window_start, true),
                    compare(booking.window_end, false),
                    Some(visit.contact_attempts.unwrap_or(0) >= 1),
                    Some(visit.card_left.unwrap_or(false)),
                ])
            });
            let next = members.get(index + 1).map(|(next, _)| next.slot_date);
            let key = Key {
                slot_date: booking.slot_date,
                slot: booking.slot.clone().unwrap_or_else(|| unknown.clone()),
                slot_hours: booking
                    .window_start
                    .zip(booking.window_end)
                    .map(|(start, end)| {
                        ((end as f64 / 1e6 - start as f64 / 1e6) / 3600.0).to_bits()
                    }),
                attribution: visit
                    .filter(|_| failed)
                    .and_then(|visit| visit.attribution.clone()),
                outcome,
                evidenced,
                reminded: booking.reminder_sent.unwrap_or(false),
                contractor: work_order.and_then(|order| order.contractor.clone()),
                trade: work_order.and_then(|order| order.trade.clone()),
                patch: patch.clone(),
            };
            let delay = next.map(|next| i64::from(next - booking.slot_date));
            rows.push((key, delay));
        }
        let booked = members.iter().any(|(_, id)| {
            self.outcomes[*id]
                .as_ref()
                .is_none_or(|visit| &*visit.outcome != "cancelled")
        });
        // The first visit: its outcome and the day of the visit (the arrival, else the slot).
        let first_visit = members.iter().find_map(|(booking, id)| {
            self.outcomes[*id]
                .as_ref()
                .filter(|visit| VISITED.contains(&&*visit.outcome))
                .map(|visit| {
                    let on = visit.arrived_at.map_or(booking.slot_date, day);
                    (visit.outcome.clone(), on)
                })
        });
        if let Some(work_order) = work_order {
            // As the `repairs` view: the request's report time, priority and target first.
            let request = work_order
                .request
                .and_then(|request| self.requests[request as usize].as_ref());
            let status = self.statuses[order];
            let raised = OrderKey {
                raised_on: day(work_order.raised_at),
                cancelled: status.cancelled_at.is_some(),
                booked,
            };
            let clock_start = request.map_or(work_order.raised_at, |r| r.reported_at);
            let priority = request
                .and_then(|r| r.priority)
                .unwrap_or(work_order.first_priority);
            let work_class = work_order
                .work_class
                .clone()
                .unwrap_or_else(|| "responsive".into());
            let repair = match (status.completed_at, status.cancelled_at) {
                (Some(completed_at), None) => {
                    let due_at = request.and_then(|r| r.due_at).or(work_order.first_due_at);
                    Some(RepairKey {
                        completed_on: day(completed_at),
                        priority,
                        work_class: work_class.clone(),
                        within_target: due_at.is_some_and(|due| completed_at <= due),
                        days: i64::from(day(completed_at) - day(clock_start)) + 1,
                        first_visit_outcome: first_visit
                            .as_ref()
                            .map(|(outcome, _)| outcome.clone()),
                        occupied: self.occupied(work_order.property as usize, day(clock_start)),
                    })
                }
                _ => None,
            };
            let emergency = self.awaab_emergency.contains(&priority);
            let significant = work_order
                .trade
                .as_deref()
                .is_some_and(|trade| self.hazard_trades.contains(trade));
            let hazard = (status.cancelled_at.is_none()
                && &*work_class == "responsive"
                && (emergency || significant))
                .then(|| HazardKey {
                    reported_on: day(clock_start),
                    emergency,
                    significant,
                    completed_on: status.completed_at.map(day),
                    made_safe_24h: status
                        .completed_at
                        .is_some_and(|completed| completed - clock_start <= MICROS_PER_DAY),
                    open_since: status.completed_at.is_none().then_some(clock_start),
                    investigated_on: first_visit.map(|(_, on)| on),
                });
            add(&mut self.raised, raised, [sign]);
            if let Some(repair) = repair {
                add(&mut self.repairs, repair, [sign]);
            }
            if let Some(hazard) = hazard {
                add(&mut self.hazards, hazard, [sign]);
            }
        }
        for (key, delay) in rows {
            let (rebooked, delay_days) = (i64::from(delay.is_some()), delay.unwrap_or(0));
            add(
                &mut self.counts,
                key,
                [sign, sign * rebooked, sign * delay_days],
            );
        }
    }
}

/// Adds a row's counts (taken out: negative) to its group; the first count is the group's
/// number of rows, and a group that has none left is dropped.
fn add<K: std::hash::Hash + Eq, const N: usize>(
    counts: &mut HashMap<K, [i64; N]>,
    key: K,
    delta: [i64; N],
) {
    match counts.entry(key) {
        Entry::Occupied(mut entry) => {
            for (count, delta) in entry.get_mut().iter_mut().zip(delta) {
                *count += delta;
            }
            if entry.get()[0] == 0 {
                entry.remove();
            }
        }
        Entry::Vacant(entry) => {
            debug_assert_eq!(delta[0], 1, "a row is taken out only after it was added");
            entry.insert(delta);
        }
    }
}

/// The target instant of a report (priority, when), as the live tables store it.
pub(crate) type Due<'a> = dyn Fn(Option<i64>, chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>>
    + 'a;

/// The kept tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Appointments = 0,
    Repairs = 1,
    Orders = 2,
    Hazards = 3,
}

impl Table {
    pub(crate) const ALL: [Table; 4] = [
        Table::Appointments,
        Table::Repairs,
        Table::Orders,
        Table::Hazards,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Appointments => "appointment_days",
            Table::Repairs => "repair_days",
            Table::Orders => "order_days",
            Table::Hazards => "hazard_days",
        }
    }
}

/// The kept tables' state, applied batch by batch and scanned as tables.
#[derive(Debug)]
pub(crate) struct Kept {
    state: Mutex<State>,
    schemas: [SchemaRef; 4],
}

/// Batches of `BATCH_ROWS` rows, in key order.
fn build<K: Ord, C>(
    schema: &SchemaRef,
    counts: &HashMap<K, C>,
    row: impl for<'a> Fn(&'a K, &'a C) -> Vec<Cell<'a>>,
) -> Result<Vec<RecordBatch>, crate::Error> {
    let mut rows: Vec<(&K, &C)> = counts.iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut batches = Vec::new();
    for chunk in rows.chunks(BATCH_ROWS) {
        let mut builder = BatchBuilder::new(schema.clone());
        for (key, counts) in chunk {
            builder.push(&row(key, counts));
        }
        batches.push(builder.finish()?);
    }
    Ok(batches)
}

impl Kept {
    /// `awaab_emergency`: the priorities `repair_targets` marks as Awaab's Law emergency
    /// hazards; `hazard_trades`: the trades of significant hazards.
    pub(crate) fn new(awaab_emergency: BTreeSet<i64>, hazard_trades: BTreeSet<String>) -> Kept {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        // The outcome, which most files filter on, is dictionary-encoded.
        let outcome = |name: &str| {
            let dictionary =
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
            Field::new(name, dictionary, true)
        };
        let int = |name: &str| Field::new(name, DataType::Int64, true);
        let date = |name: &str| Field::new(name, DataType::Date32, true);
        let float = |name: &str| Field::new(name, DataType::Float64, true);
        let boolean = |name: &str| Field::new(name, DataType::Boolean, true);
        Kept {
            state: Mutex::new(State {
                awaab_emergency,
                hazard_trades,
                ..State::default()
            }),
            schemas: [
                Arc::new(Schema::new(vec![
                    date("slot_date"),
                    int("weekday"),
                    text("slot"),
                    float("slot_hours"),
                    outcome("outcome"),
                    text("attribution"),
                    boolean("evidenced"),
                    boolean("reminded"),
                    text("contractor"),
                    text("trade"),
                    text("patch"),
                    int("appointments"),
                    int("rebooked"),
                    float("delay_days"),
                ])),
                Arc::new(Schema::new(vec![
                    date("completed_on"),
                    int("priority"),
                    text("work_class"),
                    boolean("within_target"),
                    float("days"),
                    outcome("first_visit_outcome"),
                    boolean("occupied"),
                    int("repairs"),
                ])),
                Arc::new(Schema::new(vec![
                    date("raised_on"),
                    boolean("cancelled"),
                    boolean("booked"),
                    int("orders"),
                ])),
                Arc::new(Schema::new(vec![
                    date("reported_on"),
                    boolean("emergency"),
                    boolean("significant"),
                    date("completed_on"),
                    boolean("made_safe_24h"),
                    Field::new(
                        "open_since",
                        DataType::Timestamp(TimeUnit::Microsecond, None),
                        true,
                    ),
                    date("investigated_on"),
                    int("repairs"),
                ])),
            ],
        }
    }

    /// Applies a batch of events (any kinds; those that change no row are only recorded).
    /// `due` gives a report's target instant as the live tables store it.
    pub(crate) fn apply(&self, envelopes: &[Envelope], due: &Due<'_>) {
        let mut state = self.state.lock().expect("kept tables lock");
        let mut touched = BTreeSet::new();
        for envelope in envelopes {
            state.touched(envelope, &mut touched);
        }
        for order in &touched {
            state.contribute(*order, -1);
        }
        // Every event is applied, whether or not it changes a row now: a property's postcode
        // matters once a work order names it.
        for envelope in envelopes {
            state.apply(envelope, due);
        }
        for order in &touched {
            state.contribute(*order, 1);
        }
        if !touched.is_empty() {
            state.built = Default::default();
        }
    }

    /// Rows per kept table.
    pub(crate) fn rows(&self) -> Vec<(&'static str, usize)> {
        let state = self.state.lock().expect("kept tables lock");
        let rows = [
            state.counts.len(),
            state.repairs.len(),
            state.raised.len(),
            state.hazards.len(),
        ];
        Table::ALL
            .iter()
            .map(|table| table.name())
            .zip(rows)
            .collect()
    }

    /// A table as it is now, built if it changed since it was last built.
    fn batches(
        &self,
        table: Table,
    ) -> Result<Vec<RecordBatch>, datafusion::error::DataFusionError> {
        let mut state = self.state.lock().expect("kept tables lock");
        if let Some(built) = &state.built[table as usize] {
            return Ok(built.clone());
        }
        let schema = &self.schemas[table as usize];
        let batches = match table {
            Table::Appointments => build(schema, &state.counts, |key, counts| {
                vec![
                    Cell::Date(Some(date(key.slot_date))),
                    // 1970-01-01 was a Thursday; Sunday is 0, as date_part('dow', ...) counts.
                    Cell::Int(Some(i64::from((key.slot_date + 4).rem_euclid(7)))),
                    Cell::Text(Some(&key.slot)),
                    Cell::Float(key.slot_hours.map(f64::from_bits)),
                    Cell::Text(key.outcome.as_deref()),
                    Cell::Text(key.attribution.as_deref()),
                    Cell::Bool(key.evidenced),
                    Cell::Bool(Some(key.reminded)),
                    Cell::Text(key.contractor.as_deref()),
                    Cell::Text(key.trade.as_deref()),
                    Cell::Text(Some(&key.patch)),
                    Cell::Int(Some(counts[0])),
                    Cell::Int(Some(counts[1])),
                    Cell::Float(Some(counts[2] as f64)),
                ]
            }),
            Table::Repairs => build(schema, &state.repairs, |key, repairs| {
                vec![
                    Cell::Date(Some(date(key.completed_on))),
                    Cell::Int(Some(key.priority)),
                    Cell::Text(Some(&key.work_class)),
                    Cell::Bool(Some(key.within_target)),
                    Cell::Float(Some(key.days as f64)),
                    Cell::Text(key.first_visit_outcome.as_deref()),
                    Cell::Bool(key.occupied),
                    Cell::Int(Some(repairs[0])),
                ]
            }),
            Table::Hazards => build(schema, &state.hazards, |key, repairs| {
                vec![
                    Cell::Date(Some(date(key.reported_on))),
                    Cell::Bool(Some(key.emergency)),
                    Cell::Bool(Some(key.significant)),
                    Cell::Date(key.completed_on.map(date)),
                    Cell::Bool(Some(key.made_safe_24h)),
                    Cell::Instant(key.open_since.and_then(DateTime::from_timestamp_micros)),
                    Cell::Date(key.investigated_on.map(date)),
                    Cell::Int(Some(repairs[0])),
                ]
            }),
            Table::Orders => build(schema, &state.raised, |key, orders| {
                vec![
                    Cell::Date(Some(date(key.raised_on))),
                    Cell::Bool(Some(key.cancelled)),
                    Cell::Bool(Some(key.booked)),
                    Cell::Int(Some(orders[0])),
                ]
            }),
        };
        let batches = batches
            .map_err(|error| datafusion::error::DataFusionError::External(Box::new(error)))?;
        state.built[table as usize] = Some(batches.clone());
        Ok(batches)
    }
}

/// A kept table for the session: a scan sees the counts as they are when it is planned.
#[derive(Debug)]
pub(crate) struct KeptTable {
    pub(crate) kept: Arc<Kept>,
    pub(crate) table: Table,
}

#[async_trait::async_trait]
impl TableProvider for KeptTable {
    fn schema(&self) -> SchemaRef {
        self.kept.schemas[self.table as usize].clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let batches = self.kept.batches(self.table)?;
        // Spread the batches over the session's partitions so that a scan uses every core.
        let partitions = state.config().target_partitions().max(1);
        let mut spread = vec![Vec::new(); partitions];
        for (index, batch) in batches.into_iter().enumerate() {
            spread[index % partitions].push(batch);
        }
        MemTable::try_new(self.schema(), spread)?
            .scan(state, projection, filters, limit)
            .await
    }
}
