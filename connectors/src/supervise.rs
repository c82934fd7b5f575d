//! Every source that runs while `goldthread run` serves runs under [`supervise`]: retried
//! with backoff when it fails, its health shown by `/ready` and the `connector_up` gauge
//! ([`SourceHealth`]).

use pipeline::metrics as names;
use tokio::sync::watch;

/// Whether each supervised source is running: `/ready` and the `connector_up` gauge.
#[derive(Debug, Default)]
pub struct SourceHealth(std::sync::Mutex<std::collections::BTreeMap<String, bool>>);

impl SourceHealth {
    pub fn set(&self, source: &str, up: bool) {
        self.0
            .lock()
            .expect("source health lock")
            .insert(source.to_string(), up);
        metrics::gauge!(names::CONNECTOR_UP, "source" => source.to_string()).set(if up {
            1.0
        } else {
            0.0
        });
    }

    /// Each source and whether it runs.
    pub fn sources(&self) -> std::collections::BTreeMap<String, bool> {
        self.0.lock().expect("source health lock").clone()
    }
}

/// The longest wait between two attempts of a failing source.
const MOST_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs a source's `attempt` under supervision. With `once` the first failure is the
/// source's answer (a run that reads to the end fails fast). Otherwise a failure (a topic
/// that does not exist yet, a database or broker down) is logged and the source retried
/// after 1 s, 2 s, ... up to 30 s, for as long as the process serves: start order and
/// outages do not stop it for good. `health` shows it down meanwhile.
pub async fn supervise<T, E, F>(
    name: &str,
    once: bool,
    health: &SourceHealth,
    shutdown: &mut watch::Receiver<bool>,
    mut attempt: impl FnMut() -> F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        health.set(name, true);
        let started = std::time::Instant::now();
        let error = match attempt().await {
            Ok(done) => return Ok(done),
            Err(error) if once => {
                tracing::error!(source = name, error = %format!("{error:#}"), "source stopped");
                health.set(name, false);
                return Err(error);
            }
            Err(error) => error,
        };
        health.set(name, false);
        // A source that ran a while before failing starts its backoff over.
        if started.elapsed() > MOST_BACKOFF {
            backoff = std::time::Duration::from_secs(1);
        }
        tracing::error!(source = name, error = %format!("{error:#}"), retry_in = ?backoff, "source failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Err(error),
        }
        backoff = (backoff * 2).min(MOST_BACKOFF);
    }
}
