//! What the fuzz targets share: source configurations that map every canonical field, so
//! each fuzzed value meets the parser of its kind.

use pipeline::EntityKind;

/// A mapping of `entity` taking its id from `id` and every canonical field from the key of
/// the same name.
pub fn mapping_toml(entity: EntityKind) -> String {
    let fields: Vec<String> = entity
        .fields()
        .iter()
        .map(|field| format!("{0} = \"{0}\"", field.name))
        .collect();
    format!(
        "[mapping]\nentity = \"{entity}\"\nid = \"id\"\nfields = {{ {} }}\n",
        fields.join(", ")
    )
}

/// The entity a fuzz input's first byte picks.
pub fn entity(byte: u8) -> EntityKind {
    EntityKind::ALL[usize::from(byte) % EntityKind::ALL.len()]
}

/// The date and date-time formats a legacy extract might use.
pub const FORMATS: &str = r#"date_formats = ["%Y-%m-%d", "%d/%m/%Y", "%Y%m%d"]
datetime_formats = ["%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M"]
"#;

/// Every event a source returns is one goldthread accepts downstream.
pub fn check_event(event: &pipeline::Envelope) {
    event
        .check_times()
        .expect("an event's times are inside the years goldthread accepts");
    let bytes = serde_json::to_vec(event).expect("an event serialises");
    let back: pipeline::Envelope = serde_json::from_slice(&bytes).expect("and reads back");
    assert_eq!(&back, event);
}
