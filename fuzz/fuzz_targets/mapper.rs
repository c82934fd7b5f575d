//! Any JSON document as a row of any entity, every canonical field mapped: an event the
//! pipeline accepts, or a rejection naming the field; never a panic.
#![no_main]

use connectors::Mapping;
use connectors::mapping::{Mapper, Raw, json_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let Ok(row) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let entity = goldthread_fuzz::entity(first);
    #[derive(serde::Deserialize)]
    struct Holder {
        mapping: Mapping,
    }
    let holder: Holder = toml::from_str(&goldthread_fuzz::mapping_toml(entity)).unwrap();
    let formats: toml::Table = toml::from_str(goldthread_fuzz::FORMATS).unwrap();
    let list = |key: &str| -> Vec<String> {
        formats[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|format| format.as_str().unwrap().to_string())
            .collect()
    };
    let (date_formats, datetime_formats) = (list("date_formats"), list("datetime_formats"));
    let mapper = Mapper {
        name: "fuzz",
        system: "legacy",
        date_formats: &date_formats,
        datetime_formats: &datetime_formats,
    };
    let lookup = |path: &str| json_path(&row, path).map(Raw::Json);
    match mapper.map(&holder.mapping, lookup, "fuzz:1".into(), pipeline::Op::Read) {
        Ok(event) => goldthread_fuzz::check_event(&event),
        Err(rejected) => assert!(!rejected.reason.is_empty()),
    }
});
