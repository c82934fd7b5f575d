//! Canonical entities (HACT-aligned) and the field schema connectors map source columns onto.
//!
//! [`EntityKind::fields`] is the contract of the field mapping in `config/`: a source column
//! may map to any field listed there, and the connector parses it by its [`FieldKind`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The entities goldthread knows. The wire name is the snake_case form (`work_order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Person,
    Tenancy,
    Property,
    RepairRequest,
    WorkOrder,
    /// A status change of a work order (HACT JobStatusUpdate, WorkOrderComplete).
    WorkOrderUpdate,
    Appointment,
    /// What happened when an operative went (or did not go) to an appointment.
    Visit,
    Vulnerability,
}

/// How a connector parses a source value for a canonical field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Integer,
    Bool,
    /// A calendar date; parsed with the source's `date_formats`.
    Date,
    /// An instant; parsed as RFC 3339 or with the source's `datetime_formats` (naive = UTC).
    DateTime,
    /// A list of text values; `;`-separated in CSV, an array in JSON.
    List,
}

/// One canonical field: its name, how it is parsed, and whether an event needs it.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
    pub required: bool,
}

const fn opt(name: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required: false,
    }
}

const fn req(name: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required: true,
    }
}

use FieldKind::{Bool, Date, DateTime as Instant, Integer, List, Text};

const PERSON: &[FieldSpec] = &[
    opt("title", Text),
    opt("given_name", Text),
    opt("middle_name", Text),
    opt("family_name", Text),
    opt("full_name", Text),
    opt("date_of_birth", Date),
    opt("nino", Text),
    opt("phone", Text),
    opt("email", Text),
    opt("address", Text),
    opt("saon", Text),
    opt("paon", Text),
    opt("street", Text),
    opt("town", Text),
    opt("postcode", Text),
    opt("uprn", Text),
];
const TENANCY: &[FieldSpec] = &[
    req("property_ref", Text),
    opt("party_refs", List),
    opt("start_date", Date),
    opt("end_date", Date),
    opt("tenure", Text),
];
const PROPERTY: &[FieldSpec] = &[
    opt("uprn", Text),
    opt("parent_uprn", Text),
    opt("saon", Text),
    opt("paon", Text),
    opt("street", Text),
    opt("locality", Text),
    opt("town", Text),
    opt("postcode", Text),
    opt("address", Text),
    opt("property_type", Text),
];
const REPAIR_REQUEST: &[FieldSpec] = &[
    req("property_ref", Text),
    req("reported_at", Instant),
    opt("priority", Integer),
    opt("description", Text),
    opt("channel", Text),
];
const WORK_ORDER: &[FieldSpec] = &[
    opt("repair_request_ref", Text),
    req("property_ref", Text),
    req("priority", Integer),
    req("raised_at", Instant),
    opt("contractor", Text),
    opt("trade", Text),
    opt("work_class", Text),
    opt("parent_ref", Text),
];
const WORK_ORDER_UPDATE: &[FieldSpec] = &[
    req("work_order_ref", Text),
    req("status", Text),
    req("status_at", Instant),
    opt("type_code", Integer),
    opt("follow_on_ref", Text),
];
const APPOINTMENT: &[FieldSpec] = &[
    req("work_order_ref", Text),
    req("slot_date", Date),
    opt("slot", Text),
    opt("window_start", Instant),
    opt("window_end", Instant),
    opt("booked_at", Instant),
    opt("reminder_sent", Bool),
];
const VISIT: &[FieldSpec] = &[
    req("appointment_ref", Text),
    opt("work_order_ref", Text),
    req("outcome", Text),
    opt("attribution", Text),
    opt("arrived_at", Instant),
    opt("contact_attempts", Integer),
    opt("card_left", Bool),
    opt("photo", Bool),
];
const VULNERABILITY: &[FieldSpec] = &[
    req("person_ref", Text),
    req("code", Text),
    opt("description", Text),
    opt("start_date", Date),
    opt("end_date", Date),
    opt("review_date", Date),
    opt("temporary", Bool),
];

impl EntityKind {
    pub const ALL: [EntityKind; 9] = [
        EntityKind::Person,
        EntityKind::Tenancy,
        EntityKind::Property,
        EntityKind::RepairRequest,
        EntityKind::WorkOrder,
        EntityKind::WorkOrderUpdate,
        EntityKind::Appointment,
        EntityKind::Visit,
        EntityKind::Vulnerability,
    ];

    /// The snake_case wire name, used in topic names and config.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Person => "person",
            EntityKind::Tenancy => "tenancy",
            EntityKind::Property => "property",
            EntityKind::RepairRequest => "repair_request",
            EntityKind::WorkOrder => "work_order",
            EntityKind::WorkOrderUpdate => "work_order_update",
            EntityKind::Appointment => "appointment",
            EntityKind::Visit => "visit",
            EntityKind::Vulnerability => "vulnerability",
        }
    }

    pub fn parse(name: &str) -> Option<EntityKind> {
        EntityKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// The canonical fields of this entity (besides its own id, which every event carries).
    pub fn fields(self) -> &'static [FieldSpec] {
        match self {
            EntityKind::Person => PERSON,
            EntityKind::Tenancy => TENANCY,
            EntityKind::Property => PROPERTY,
            EntityKind::RepairRequest => REPAIR_REQUEST,
            EntityKind::WorkOrder => WORK_ORDER,
            EntityKind::WorkOrderUpdate => WORK_ORDER_UPDATE,
            EntityKind::Appointment => APPOINTMENT,
            EntityKind::Visit => VISIT,
            EntityKind::Vulnerability => VULNERABILITY,
        }
    }

    pub fn field(self, name: &str) -> Option<&'static FieldSpec> {
        self.fields().iter().find(|field| field.name == name)
    }

    /// The event type (with major version) of an upsert of this entity.
    pub fn event_type(self) -> &'static str {
        match self {
            EntityKind::Person => "person.upserted.v1",
            EntityKind::Tenancy => "tenancy.upserted.v1",
            EntityKind::Property => "property.upserted.v1",
            EntityKind::RepairRequest => "repair_request.reported.v1",
            EntityKind::WorkOrder => "work_order.raised.v1",
            EntityKind::WorkOrderUpdate => "work_order.status_changed.v1",
            EntityKind::Appointment => "appointment.booked.v1",
            EntityKind::Visit => "appointment.visited.v1",
            EntityKind::Vulnerability => "vulnerability.upserted.v1",
        }
    }
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person as one source system knows them (tenant, household member, CRM contact).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub title: Option<String>,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub family_name: Option<String>,
    /// The whole name in one field, for sources that do not split it.
    pub full_name: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub nino: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// A correspondence address on one line.
    pub address: Option<String>,
    /// Or in parts: the flat or unit,
    pub saon: Option<String>,
    /// the street number or building name,
    pub paon: Option<String>,
    pub street: Option<String>,
    pub town: Option<String>,
    pub postcode: Option<String>,
    /// The UPRN of the person's address, where the source knows it.
    pub uprn: Option<String>,
    /// Other identifiers by name (`legacy_ref`, `housing_benefit_ref`): the mapping's
    /// `identifiers` table. The same name in two sources is the same scheme.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub identifiers: std::collections::BTreeMap<String, String>,
}

/// A tenancy: who (party source ids) holds which property (property source id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tenancy {
    pub property_ref: String,
    #[serde(default)]
    pub party_refs: Vec<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub tenure: Option<String>,
}

/// A property, structured per BS7666 where the source allows, or as one address line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Property {
    pub uprn: Option<String>,
    /// The block's UPRN, for a unit inside a block.
    pub parent_uprn: Option<String>,
    /// Secondary addressable object name: the flat or unit.
    pub saon: Option<String>,
    /// Primary addressable object name: the building number or name.
    pub paon: Option<String>,
    pub street: Option<String>,
    pub locality: Option<String>,
    pub town: Option<String>,
    pub postcode: Option<String>,
    /// The whole address on one line, for sources that do not split it.
    pub address: Option<String>,
    /// house, flat, bungalow, block...
    pub property_type: Option<String>,
    /// Other identifiers by name (an asset system's own number): the mapping's
    /// `identifiers` table.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub identifiers: std::collections::BTreeMap<String, String>,
}

/// A tenant's report of a defect (HACT RaiseRepair): the repair clock starts here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairRequest {
    pub property_ref: String,
    pub reported_at: DateTime<Utc>,
    /// HACT priority code at report time: 1 Immediate, 2 Emergency, 3 Urgent, 4 Normal, 5 Inspection.
    pub priority: Option<i64>,
    pub description: Option<String>,
    pub channel: Option<String>,
}

/// A work order (HACT ScheduleRepair).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrder {
    pub repair_request_ref: Option<String>,
    pub property_ref: String,
    /// HACT priority code at report time (the target comes from this, not a later change).
    pub priority: i64,
    pub raised_at: DateTime<Utc>,
    pub contractor: Option<String>,
    pub trade: Option<String>,
    /// responsive, void or planned; RP02 counts responsive work only.
    pub work_class: Option<String>,
    /// The work order this one follows on from.
    pub parent_ref: Option<String>,
}

/// A status change of a work order (HACT JobStatusUpdate / WorkOrderComplete).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrderUpdate {
    pub work_order_ref: String,
    /// completed, cancelled, in_progress, ...
    pub status: String,
    pub status_at: DateTime<Utc>,
    /// The HACT JobStatusUpdate TypeCode, where the source gives one (70 = denied access).
    pub type_code: Option<i64>,
    pub follow_on_ref: Option<String>,
}

/// A booked appointment (HACT RefinedAppointmentWindow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appointment {
    pub work_order_ref: String,
    pub slot_date: NaiveDate,
    /// am, pm, all_day or school_run.
    pub slot: Option<String>,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub booked_at: Option<DateTime<Utc>>,
    pub reminder_sent: Option<bool>,
}

/// The outcome of an appointment, with its attribution and no-access evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub appointment_ref: String,
    pub work_order_ref: Option<String>,
    /// kept_completed, kept_not_completed, no_access, missed, cancelled, aborted.
    pub outcome: String,
    /// resident, landlord or contractor.
    pub attribution: Option<String>,
    pub arrived_at: Option<DateTime<Utc>>,
    pub contact_attempts: Option<i64>,
    pub card_left: Option<bool>,
    pub photo: Option<bool>,
}

/// A person alert (HACT person alert codes): special category data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    pub person_ref: String,
    pub code: String,
    pub description: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    pub review_date: Option<NaiveDate>,
    pub temporary: Option<bool>,
}

/// The payload of a canonical event, tagged on the wire by `entity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entity", rename_all = "snake_case")]
pub enum Payload {
    Person(Person),
    Tenancy(Tenancy),
    Property(Property),
    RepairRequest(RepairRequest),
    WorkOrder(WorkOrder),
    WorkOrderUpdate(WorkOrderUpdate),
    Appointment(Appointment),
    Visit(Visit),
    Vulnerability(Vulnerability),
}

impl Payload {
    pub fn kind(&self) -> EntityKind {
        match self {
            Payload::Person(_) => EntityKind::Person,
            Payload::Tenancy(_) => EntityKind::Tenancy,
            Payload::Property(_) => EntityKind::Property,
            Payload::RepairRequest(_) => EntityKind::RepairRequest,
            Payload::WorkOrder(_) => EntityKind::WorkOrder,
            Payload::WorkOrderUpdate(_) => EntityKind::WorkOrderUpdate,
            Payload::Appointment(_) => EntityKind::Appointment,
            Payload::Visit(_) => EntityKind::Visit,
            Payload::Vulnerability(_) => EntityKind::Vulnerability,
        }
    }

    /// Builds a payload from canonical fields already parsed to JSON values by their
    /// [`FieldKind`]. The error names the field at fault.
    pub fn from_fields(
        kind: EntityKind,
        mut fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Payload, String> {
        for spec in kind.fields() {
            if spec.required && fields.get(spec.name).is_none_or(|value| value.is_null()) {
                return Err(format!("required field `{}` is missing", spec.name));
            }
        }
        fields.insert(
            "entity".into(),
            serde_json::Value::String(kind.as_str().into()),
        );
        serde_json::from_value(serde_json::Value::Object(fields)).map_err(|error| error.to_string())
    }
}

/// The years a date or instant may fall in (inclusive). A value outside is a mapping error,
/// not an event: no landlord record predates 1800 or is due after 2199, and every derived
/// time (a repair's target, a working day) stays far inside what chrono and Arrow represent.
pub const YEARS: std::ops::RangeInclusive<i32> = 1800..=2199;

/// Checks a date against [`YEARS`].
pub fn check_date(date: NaiveDate) -> Result<(), String> {
    use chrono::Datelike;
    if YEARS.contains(&date.year()) {
        Ok(())
    } else {
        Err(format!(
            "{date} is outside the years {}-{}",
            YEARS.start(),
            YEARS.end()
        ))
    }
}

/// Checks an instant against [`YEARS`].
pub fn check_instant(instant: DateTime<Utc>) -> Result<(), String> {
    check_date(instant.date_naive())
}

impl Payload {
    /// Checks every date and instant of the payload against [`YEARS`]; the error names the
    /// field.
    pub fn check_times(&self) -> Result<(), (&'static str, String)> {
        let mut dates: Vec<(&'static str, NaiveDate)> = Vec::new();
        let mut instants: Vec<(&'static str, DateTime<Utc>)> = Vec::new();
        match self {
            Payload::Person(person) => {
                dates.extend(person.date_of_birth.map(|d| ("date_of_birth", d)))
            }
            Payload::Tenancy(tenancy) => {
                dates.extend(tenancy.start_date.map(|d| ("start_date", d)));
                dates.extend(tenancy.end_date.map(|d| ("end_date", d)));
            }
            Payload::Property(_) => {}
            Payload::RepairRequest(request) => instants.push(("reported_at", request.reported_at)),
            Payload::WorkOrder(order) => instants.push(("raised_at", order.raised_at)),
            Payload::WorkOrderUpdate(update) => instants.push(("status_at", update.status_at)),
            Payload::Appointment(appointment) => {
                dates.push(("slot_date", appointment.slot_date));
                instants.extend(appointment.window_start.map(|t| ("window_start", t)));
                instants.extend(appointment.window_end.map(|t| ("window_end", t)));
                instants.extend(appointment.booked_at.map(|t| ("booked_at", t)));
            }
            Payload::Visit(visit) => instants.extend(visit.arrived_at.map(|t| ("arrived_at", t))),
            Payload::Vulnerability(vulnerability) => {
                dates.extend(vulnerability.start_date.map(|d| ("start_date", d)));
                dates.extend(vulnerability.end_date.map(|d| ("end_date", d)));
                dates.extend(vulnerability.review_date.map(|d| ("review_date", d)));
            }
        }
        let dates = dates
            .into_iter()
            .map(|(field, date)| (field, check_date(date)));
        let instants = instants
            .into_iter()
            .map(|(field, instant)| (field, check_instant(instant)));
        match dates.chain(instants).find(|(_, checked)| checked.is_err()) {
            Some((field, Err(reason))) => Err((field, reason)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_value(kind: FieldKind) -> serde_json::Value {
        match kind {
            FieldKind::Text => "x".into(),
            FieldKind::Integer => 3.into(),
            FieldKind::Bool => true.into(),
            FieldKind::Date => "2025-04-01".into(),
            FieldKind::DateTime => "2025-04-01T09:30:00Z".into(),
            FieldKind::List => serde_json::json!(["a", "b"]),
        }
    }

    /// The field schema and the payload structs must agree exactly: every schema field
    /// round-trips, and the struct has no field the schema does not list.
    #[test]
    fn schema_matches_payload_structs() {
        for kind in EntityKind::ALL {
            let fields: serde_json::Map<_, _> = kind
                .fields()
                .iter()
                .map(|spec| (spec.name.to_string(), sample_value(spec.kind)))
                .collect();
            let payload = Payload::from_fields(kind, fields.clone()).unwrap();
            assert_eq!(payload.kind(), kind);
            let mut back = match serde_json::to_value(&payload).unwrap() {
                serde_json::Value::Object(map) => map,
                other => panic!("{other:?}"),
            };
            assert_eq!(back.remove("entity"), Some(kind.as_str().into()));
            assert_eq!(back, fields, "{kind}");
        }
    }

    #[test]
    fn missing_required_field_is_named() {
        let error = Payload::from_fields(EntityKind::WorkOrder, Default::default()).unwrap_err();
        assert_eq!(error, "required field `property_ref` is missing");
    }

    #[test]
    fn entity_names_round_trip() {
        for kind in EntityKind::ALL {
            assert_eq!(EntityKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EntityKind::parse("tenant"), None);
    }

    #[test]
    fn times_outside_the_window_are_named() {
        let fields: serde_json::Map<_, _> = EntityKind::Appointment
            .fields()
            .iter()
            .map(|spec| (spec.name.to_string(), sample_value(spec.kind)))
            .collect();
        let payload = Payload::from_fields(EntityKind::Appointment, fields).unwrap();
        assert_eq!(payload.check_times(), Ok(()));
        let Payload::Appointment(mut appointment) = payload else {
            panic!("an appointment")
        };
        // The reproduction's `dateReported`, read as microseconds since the epoch.
        appointment.booked_at = DateTime::from_timestamp_micros(8_210_266_833_600_000_000);
        let payload = Payload::Appointment(appointment);
        let (field, reason) = payload.check_times().unwrap_err();
        assert_eq!(field, "booked_at");
        assert!(reason.contains("outside the years 1800-2199"), "{reason}");
        assert!(check_date(NaiveDate::from_ymd_opt(1799, 12, 31).unwrap()).is_err());
        assert!(check_date(NaiveDate::from_ymd_opt(2199, 12, 31).unwrap()).is_ok());
    }
}
