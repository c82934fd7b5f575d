//! Any message on a Debezium topic: an event the pipeline accepts, a dead letter, or a
//! skipped tombstone; never a panic.
#![no_main]

use connectors::DebeziumConfig;
use libfuzzer_sys::fuzz_target;
use pipeline::stage::{Decoded, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&first, payload)) = data.split_first() else {
        return;
    };
    let config: DebeziumConfig = toml::from_str(&format!(
        "name = \"fuzz_cdc\"\nsystem = \"legacy\"\ntopics = [\"db.dbo.t\"]\n{}{}",
        goldthread_fuzz::FORMATS,
        goldthread_fuzz::mapping_toml(goldthread_fuzz::entity(first))
    ))
    .unwrap();
    let message = Message {
        topic: "db.dbo.t",
        partition: 0,
        offset: 1,
        payload: (first & 0x80 == 0).then_some(payload),
    };
    match config.decode(&message) {
        Decoded::Event(event) => goldthread_fuzz::check_event(&event),
        Decoded::DeadLetter(dead_letter) => assert!(!dead_letter.reason.is_empty()),
        Decoded::Skip => {}
        Decoded::Kept(_) => panic!("a Debezium source never keeps a dead letter"),
    }
});
