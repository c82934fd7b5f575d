//! Any sequence of `pgoutput` messages (relations, then row changes): each is a change, no
//! change, or a reason; a change maps to an event or a dead letter; never a panic.
#![no_main]

use connectors::PgSourceConfig;
use connectors::pg::PgOutput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|messages: Vec<Vec<u8>>| {
    let config: PgSourceConfig = toml::from_str(&format!(
        "name = \"fuzz_db\"\nsystem = \"legacy\"\nurl_env = \"FUZZ_URL\"\ntable = \"public.t\"\ncursor = \"v\"\n{}{}",
        goldthread_fuzz::FORMATS,
        goldthread_fuzz::mapping_toml(goldthread_fuzz::entity(messages.len() as u8))
    ))
    .unwrap();
    let mut decoder = PgOutput::default();
    for (index, message) in messages.iter().enumerate() {
        match decoder.decode(message) {
            Ok(Some(change)) => match config.decode_change(&format!("0/{index}"), &change) {
                connectors::Record::Event(event) => goldthread_fuzz::check_event(&event),
                connectors::Record::DeadLetter(dead_letter) => {
                    assert!(!dead_letter.reason.is_empty())
                }
            },
            Ok(None) => {}
            Err(reason) => assert!(!reason.is_empty()),
        }
    }
});
