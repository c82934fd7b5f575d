//! `appointment_days`, kept as events arrive: the appointments per slot date and group that
//! the appointment KPIs count, with their rebookings. `sql/views/current.sql` defines it over
//! the history (other engines run that definition); this module keeps the same counts so
//! that a KPI reads a few hundred thousand groups instead of joining every appointment to
//! its visit, work order and property and ranking each work order's appointments.
//!
//! Per batch: the work orders it touches (an appointment's old and new work order, the work
//! order of a visit's appointment, a work order, the work orders at a property) have their
//! appointments' contributions taken out, the batch is applied, and their contributions are
//! put back. The Arrow table is built from the counts when a query scans it after a change.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use pipeline::{Envelope, Payload};

/// Outcomes at which an appointment did not go ahead (their attribution is kept).
const FAILED: &[&str] = &["no_access", "aborted", "missed", "cancelled"];

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
struct Counts {
    appointments: i64,
    rebooked: i64,
    delay_days: i64,
}

#[derive(Debug, Default)]
struct State {
    appointment_ids: Ids,
    bookings: Vec<Option<Booking>>,
    outcomes: Vec<Option<Outcome>>,
    order_ids: Ids,
    orders: Vec<Option<Order>>,
    /// Per work order: the appointments whose latest version names it.
    members: Vec<Vec<u32>>,
    property_ids: Ids,
    /// Per property: its patch (postcode district), if the property and its postcode are known.
    patches: Vec<Option<Arc<str>>>,
    /// Per property: the work orders whose latest version names it.
    property_orders: Vec<Vec<u32>>,
    strings: HashSet<Arc<str>>,
    counts: HashMap<Key, Counts>,
    /// The table built from `counts`, until the next change.
    built: Option<Vec<RecordBatch>>,
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
            self.members.push(Vec::new());
        }
        id
    }

    fn property(&mut self, reference: &str) -> usize {
        let (id, new) = self.property_ids.id(reference);
        if new {
            self.patches.push(None);
            self.property_orders.push(Vec::new());
        }
        id
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
            Payload::Property(_) => {
                let id = self.property(&envelope.source_ref.id);
                touched.extend(self.property_orders[id].iter().map(|order| *order as usize));
            }
            _ => {}
        }
    }

    /// Applies an event: the latest version replaces the one before.
    fn apply(&mut self, envelope: &Envelope) {
        let micros = |instant: Option<chrono::DateTime<chrono::Utc>>| {
            instant.map(|instant| instant.timestamp_micros())
        };
        match &envelope.payload {
            Payload::Appointment(appointment) => {
                let id = self.appointment(&envelope.source_ref.id);
                let order = self.order(&appointment.work_order_ref);
                match self.bookings[id]
                    .as_ref()
                    .map(|booking| booking.order as usize)
                {
                    Some(old) if old == order => {}
                    old => {
                        if let Some(old) = old {
                            self.members[old].retain(|member| *member as usize != id);
                        }
                        self.members[order].push(id as u32);
                    }
                }
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
                match self.orders[id]
                    .as_ref()
                    .map(|order| order.property as usize)
                {
                    Some(old) if old == property => {}
                    old => {
                        if let Some(old) = old {
                            self.property_orders[old].retain(|member| *member as usize != id);
                        }
                        self.property_orders[property].push(id as u32);
                    }
                }
                self.orders[id] = Some(Order {
                    contractor: self.intern_option(&order.contractor),
                    trade: self.intern_option(&order.trade),
                    property: property as u32,
                });
            }
            Payload::Property(property) => {
                let id = self.property(&envelope.source_ref.id);
                self.patches[id] = property
                    .postcode
                    .as_deref()
                    .map(|postcode| self.intern(postcode.split(' ').next().unwrap_or_default()));
            }
            _ => {}
        }
    }

    /// Adds (`sign` 1) or takes out (-1) the rows of a work order's appointments.
    fn contribute(&mut self, order: usize, sign: i64) {
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
        let unknown: Arc<str> = "unknown".into();
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
                evidenced: if no_access { evidenced } else { None },
                reminded: booking.reminder_sent.unwrap_or(false),
                contractor: work_order.and_then(|order| order.contractor.clone()),
                trade: work_order.and_then(|order| order.trade.clone()),
                patch: patch.clone(),
            };
            let delay = next.map(|next| i64::from(next - booking.slot_date));
            rows.push((key, delay));
        }
        for (key, delay) in rows {
            let (rebooked, delay_days) = (i64::from(delay.is_some()), delay.unwrap_or(0));
            match self.counts.entry(key) {
                Entry::Occupied(mut entry) => {
                    let counts = entry.get_mut();
                    counts.appointments += sign;
                    counts.rebooked += sign * rebooked;
                    counts.delay_days += sign * delay_days;
                    if counts.appointments == 0 {
                        entry.remove();
                    }
                }
                Entry::Vacant(entry) => {
                    debug_assert_eq!(sign, 1, "a row is taken out only after it was added");
                    entry.insert(Counts {
                        appointments: sign,
                        rebooked: sign * rebooked,
                        delay_days: sign * delay_days,
                    });
                }
            }
        }
    }
}

/// `appointment_days` kept as events arrive, scanned as a table.
#[derive(Debug)]
pub(crate) struct AppointmentDays {
    state: Mutex<State>,
    schema: SchemaRef,
}

impl AppointmentDays {
    pub(crate) fn new() -> AppointmentDays {
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let int = |name: &str| Field::new(name, DataType::Int64, true);
        AppointmentDays {
            state: Mutex::new(State::default()),
            schema: Arc::new(Schema::new(vec![
                Field::new("slot_date", DataType::Date32, true),
                int("weekday"),
                text("slot"),
                Field::new("slot_hours", DataType::Float64, true),
                text("outcome"),
                text("attribution"),
                Field::new("evidenced", DataType::Boolean, true),
                Field::new("reminded", DataType::Boolean, true),
                text("contractor"),
                text("trade"),
                text("patch"),
                int("appointments"),
                int("rebooked"),
                Field::new("delay_days", DataType::Float64, true),
            ])),
        }
    }

    /// Applies a batch of events (any kinds; those that change no appointment's row are
    /// skipped).
    pub(crate) fn apply(&self, envelopes: &[Envelope]) {
        let mut state = self.state.lock().expect("appointment days lock");
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
            state.apply(envelope);
        }
        for order in &touched {
            state.contribute(*order, 1);
        }
        if !touched.is_empty() {
            state.built = None;
        }
    }

    /// The table as it is now, built if it changed since it was last built.
    fn batches(&self) -> Result<Vec<RecordBatch>, datafusion::error::DataFusionError> {
        let mut state = self.state.lock().expect("appointment days lock");
        if let Some(built) = &state.built {
            return Ok(built.clone());
        }
        let mut keys: Vec<(&Key, &Counts)> = state.counts.iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut batches = Vec::new();
        for chunk in keys.chunks(BATCH_ROWS) {
            let (mut date, mut weekday, mut slot, mut hours) = (
                Date32Builder::new(),
                Int64Builder::new(),
                StringBuilder::new(),
                Float64Builder::new(),
            );
            let (mut outcome, mut attribution, mut evidenced, mut reminded) = (
                StringBuilder::new(),
                StringBuilder::new(),
                BooleanBuilder::new(),
                BooleanBuilder::new(),
            );
            let (mut contractor, mut trade, mut patch) = (
                StringBuilder::new(),
                StringBuilder::new(),
                StringBuilder::new(),
            );
            let (mut appointments, mut rebooked, mut delay) = (
                Int64Builder::new(),
                Int64Builder::new(),
                Float64Builder::new(),
            );
            for (key, counts) in chunk {
                date.append_value(key.slot_date);
                // 1970-01-01 was a Thursday; Sunday is 0, as date_part('dow', ...) counts.
                weekday.append_value(i64::from((key.slot_date + 4).rem_euclid(7)));
                slot.append_value(&key.slot);
                hours.append_option(key.slot_hours.map(f64::from_bits));
                outcome.append_option(key.outcome.as_deref());
                attribution.append_option(key.attribution.as_deref());
                evidenced.append_option(key.evidenced);
                reminded.append_value(key.reminded);
                contractor.append_option(key.contractor.as_deref());
                trade.append_option(key.trade.as_deref());
                patch.append_value(&key.patch);
                appointments.append_value(counts.appointments);
                rebooked.append_value(counts.rebooked);
                delay.append_value(counts.delay_days as f64);
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(date.finish()),
                Arc::new(weekday.finish()),
                Arc::new(slot.finish()),
                Arc::new(hours.finish()),
                Arc::new(outcome.finish()),
                Arc::new(attribution.finish()),
                Arc::new(evidenced.finish()),
                Arc::new(reminded.finish()),
                Arc::new(contractor.finish()),
                Arc::new(trade.finish()),
                Arc::new(patch.finish()),
                Arc::new(appointments.finish()),
                Arc::new(rebooked.finish()),
                Arc::new(delay.finish()),
            ];
            batches.push(RecordBatch::try_new(self.schema.clone(), columns)?);
        }
        state.built = Some(batches.clone());
        Ok(batches)
    }
}

/// Scans of `appointment_days` see the counts as they are when the scan is planned.
#[derive(Debug)]
pub(crate) struct AppointmentDaysTable(pub(crate) Arc<AppointmentDays>);

#[async_trait::async_trait]
impl TableProvider for AppointmentDaysTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema.clone()
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
        let batches = self.0.batches()?;
        // Spread the batches over the session's partitions so that a scan uses every core.
        let partitions = state.config().target_partitions().max(1);
        let mut spread = vec![Vec::new(); partitions];
        for (index, batch) in batches.into_iter().enumerate() {
            spread[index % partitions].push(batch);
        }
        MemTable::try_new(self.0.schema.clone(), spread)?
            .scan(state, projection, filters, limit)
            .await
    }
}
