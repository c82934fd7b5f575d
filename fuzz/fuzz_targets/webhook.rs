//! Any body posted to a webhook: (message id, an event the pipeline accepts) or a refusal
//! with a reason; never a panic.
#![no_main]

use connectors::WebhookConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let config: WebhookConfig = toml::from_str(&format!(
        "name = \"fuzz\"\nsystem = \"contractor\"\ntokens = [\"contractor\"]\nmessage_id = \"id\"\n{}{}",
        goldthread_fuzz::FORMATS,
        goldthread_fuzz::mapping_toml(goldthread_fuzz::entity(first))
    ))
    .unwrap();
    match config.decode(body) {
        Ok((message_id, event)) => {
            assert!(!message_id.is_empty());
            goldthread_fuzz::check_event(&event);
        }
        Err(refused) => assert!(!refused.rejected.reason.is_empty()),
    }
});
