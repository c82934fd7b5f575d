//! Any bytes as a CSV or JSON lines export: every row read is one event or one dead letter,
//! nothing panics, and every event is one the pipeline accepts.
#![no_main]

use connectors::{FileSource, Record, SourceConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let entity = goldthread_fuzz::entity(first >> 1);
    let csv = first & 1 == 0;
    let dir = std::env::temp_dir().join(format!("goldthread-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = if csv { "export.csv" } else { "export.jsonl" };
    std::fs::write(dir.join(file), body).unwrap();
    let config: SourceConfig = toml::from_str(&format!(
        "name = \"fuzz\"\nsystem = \"legacy\"\npath = \"{file}\"\nformat = \"{}\"\n{}{}",
        if csv { "csv" } else { "jsonl" },
        goldthread_fuzz::FORMATS,
        goldthread_fuzz::mapping_toml(entity)
    ))
    .unwrap();
    // A CSV whose header lacks a mapped column is a configuration error, as it should be.
    let Ok(mut source) = FileSource::open(&config, &dir) else {
        return;
    };
    let (mut events, mut dead_letters) = (0u64, 0u64);
    while let Some(record) = source.next_record() {
        match record.expect("an in-memory file reads") {
            Record::Event(event) => {
                goldthread_fuzz::check_event(&event);
                events += 1;
            }
            Record::DeadLetter(dead_letter) => {
                assert!(dead_letter.raw.len() <= pipeline::MAX_DEAD_LETTER_RAW_BYTES + 64);
                dead_letters += 1;
            }
        }
    }
    assert_eq!(source.rows_read(), events + dead_letters);
});
