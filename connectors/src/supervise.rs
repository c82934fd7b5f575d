//! Every source that runs while `goldthread run` serves runs under [`supervise`]: retried
//! with backoff when it fails, its health shown by `/ready` and the `connector_up` gauge
//! ([`SourceHealth`]).

use pipeline::metrics as names;
use tokio::sync::watch;

/// Where a supervised source stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    Running,
    /// It failed for a reason a retry may mend, and is retried.
    Retrying,
    /// It failed for a reason only a change of configuration mends, and is not retried.
    Stopped,
}

/// Where each supervised source stands: `/ready` and the `connector_up` gauge.
#[derive(Debug, Default)]
pub struct SourceHealth(std::sync::Mutex<std::collections::BTreeMap<String, SourceState>>);

impl SourceHealth {
    pub fn set(&self, source: &str, state: SourceState) {
        self.0
            .lock()
            .expect("source health lock")
            .insert(source.to_string(), state);
        let up = if state == SourceState::Running {
            1.0
        } else {
            0.0
        };
        metrics::gauge!(names::CONNECTOR_UP, "source" => source.to_string()).set(up);
    }

    /// Each source and where it stands.
    pub fn sources(&self) -> std::collections::BTreeMap<String, SourceState> {
        self.0.lock().expect("source health lock").clone()
    }
}

/// The longest wait between two attempts of a failing source.
const MOST_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs a source's `attempt` under supervision. With `once` the first failure is the
/// source's answer (a run that reads to the end fails fast). Otherwise a failure a retry may
/// mend (a topic that does not exist yet, a database or broker down: anything but
/// `BadInput`) is logged and the source retried after 1 s, 2 s, ... up to 30 s, for as long
/// as the process serves: start order and outages do not stop it for good. A configuration
/// the source cannot run with (an unset `url_env`, a URL that does not parse, a login the
/// server refuses) stops it: retrying cannot help. `health` shows which.
pub async fn supervise<T, F>(
    name: &str,
    once: bool,
    health: &SourceHealth,
    shutdown: &mut watch::Receiver<bool>,
    mut attempt: impl FnMut() -> F,
) -> crate::Result<T>
where
    F: std::future::Future<Output = crate::Result<T>>,
{
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        health.set(name, SourceState::Running);
        let started = std::time::Instant::now();
        let error = match attempt().await {
            Ok(done) => return Ok(done),
            Err(error) if once || error.class() == pipeline::ErrorClass::BadInput => {
                let error_text = pipeline::error::chain(&error);
                if once {
                    tracing::error!(source = name, error = %error_text, "source stopped");
                } else {
                    tracing::error!(source = name, error = %error_text, "source stopped (not retried: fix its configuration and restart)");
                }
                health.set(name, SourceState::Stopped);
                return Err(error);
            }
            Err(error) => error,
        };
        health.set(name, SourceState::Retrying);
        // A source that ran a while before failing starts its backoff over.
        if started.elapsed() > MOST_BACKOFF {
            backoff = std::time::Duration::from_secs(1);
        }
        let error_text = pipeline::error::chain(&error);
        tracing::error!(source = name, error = %error_text, retry_in = ?backoff, "source failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Err(error),
        }
        backoff = (backoff * 2).min(MOST_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_elsewhere_is_retried_and_a_configuration_error_stops_the_source() {
        let health = SourceHealth::default();
        let (_stop, mut shutdown) = watch::channel(false);
        // A database down at the first attempt: retried (after 1 s), then it runs.
        let mut attempts = 0;
        let answer = supervise("db", false, &health, &mut shutdown, || {
            attempts += 1;
            let attempt = attempts;
            async move {
                if attempt == 1 {
                    Err(crate::Error::Unavailable("database starting up".into()))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(answer.unwrap(), 2);
        assert_eq!(health.sources()["db"], SourceState::Running);
        // An unset `url_env` cannot mend itself: one attempt, and the source stops.
        let mut attempts = 0;
        let answer: crate::Result<()> = supervise("cdc", false, &health, &mut shutdown, || {
            attempts += 1;
            async { Err(crate::Error::config("cdc", "url_env: set DB_URL")) }
        })
        .await;
        assert!(answer.is_err());
        assert_eq!(attempts, 1);
        assert_eq!(health.sources()["cdc"], SourceState::Stopped);
    }
}
