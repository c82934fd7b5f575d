//! The HTTP API: health, Prometheus metrics, KPIs, golden records, explanations and the
//! steward workflow (axum), behind bearer tokens with roles (`crate::auth`).

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::NaiveDate;
use connectors::driver::webhook::Webhooks;
use connectors::supervise::SourceState;
use metrics_exporter_prometheus::PrometheusHandle;
use pipeline::Reference;
use serde::Deserialize;

use crate::auth::{Caller, Role, Tokens};
use crate::state::{ActFailed, Shared};

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    /// The `[[webhooks]]` endpoints and the message ids they have seen.
    webhooks: Arc<Webhooks>,
    metrics: Option<PrometheusHandle>,
    /// The last readiness check and when it was made: `/ready` checks at most once per
    /// [`READY_FOR`], however often it is asked.
    ready: Arc<tokio::sync::Mutex<Option<(std::time::Instant, Readiness)>>>,
}

/// How long a readiness check's answer is served again.
const READY_FOR: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone)]
struct Readiness {
    up: bool,
    body: serde_json::Value,
}

/// Lets a request through when its bearer token has at least `minimum`'s role; the caller
/// goes into the request's extensions for the handler (and the audit trail).
async fn require(
    State((tokens, minimum)): State<(Arc<Tokens>, Role)>,
    mut request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    match tokens.caller(authorization) {
        None => error(StatusCode::UNAUTHORIZED, "a valid bearer token is required"),
        Some(caller) if caller.role < minimum => error(
            StatusCode::FORBIDDEN,
            format!("this needs the {minimum:?} role"),
        ),
        Some(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
    }
}

pub fn router(
    shared: Arc<Shared>,
    webhooks: Webhooks,
    metrics: Option<PrometheusHandle>,
    tokens: Tokens,
) -> Router {
    let tokens = Arc::new(tokens);
    let guard = |role: Role| middleware::from_fn_with_state((tokens.clone(), role), require);
    // Viewers: KPIs, metrics and pseudonymous data (golden ids, properties).
    let viewer = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/api/kpis", get(kpis))
        .route("/api/dashboard", get(dashboard))
        .route("/api/exceptions", get(exceptions))
        .route("/api/quality/report", get(quality_report))
        .route("/api/sql", post(analyst_sql))
        .route("/api/golden/properties/{id}", get(golden_property))
        .route("/api/golden/properties/{id}/explain", get(explain_property))
        .route_layer(guard(Role::Viewer));
    // Stewards: identity data, the review queue and decisions.
    let steward = Router::new()
        .route("/api/golden/persons/{id}", get(golden_person))
        .route("/api/golden/persons/{id}/explain", get(explain_person))
        .route("/api/xref/{system}/{id}", get(xref))
        .route("/api/review", get(review))
        .route("/api/steward/decisions", post(decide))
        .route("/api/steward/splits", post(split))
        .route_layer(guard(Role::Steward));
    let admin = Router::new()
        .route("/api/steward/audit", get(audit))
        .route("/api/admin/erasures", post(erase))
        .route_layer(guard(Role::Admin));
    // Contractors' systems: their webhooks (the handler checks the token is listed).
    // Bodies a little over the largest message are read, answered 413 and dead-lettered;
    // larger ones are refused unread.
    let contractor = Router::new()
        .route("/webhooks/{name}", post(webhook))
        .route_layer(guard(Role::Contractor))
        .layer(axum::extract::DefaultBodyLimit::max(
            4 * pipeline::MAX_ROW_BYTES,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/dashboard", get(dashboard_page))
        .route("/quality", get(quality_page))
        .route("/ready", get(ready))
        .merge(contractor)
        .merge(viewer)
        .merge(steward)
        .merge(admin)
        .layer(middleware::map_response(json_errors))
        .with_state(AppState {
            shared,
            webhooks: Arc::new(webhooks),
            metrics,
            ready: Default::default(),
        })
}

/// The `[http]` bounds the server keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
}

/// Open files kept for everything but connections: the store's pool, Kafka's sockets, the
/// sources' files.
const RESERVED_FILES: u64 = 512;

/// Serves `router` on `listener` until `shutdown`, keeping `limits`: at most
/// `max_connections` at once (fewer if the open-file limit is lower; it is raised to the
/// hard limit first), each closed when its request head does not arrive within
/// `header_read_timeout`. Idle or slow clients then cannot starve `/health` or the webhooks.
/// In-flight requests get up to 10 s to finish at shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => files,
        Err(error) => {
            tracing::warn!(%error, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let room = usize::try_from(files.saturating_sub(RESERVED_FILES).max(64)).unwrap_or(usize::MAX);
    let max_connections = limits.max_connections.min(room);
    if max_connections < limits.max_connections {
        tracing::warn!(
            max_connections,
            open_files = files,
            "http.max_connections lowered to what the open-file limit allows"
        );
    }
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let router = router.layer(middleware::from_fn_with_state(
        limits.request_timeout,
        request_timeout,
    ));
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut stopped => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was taken.
                    tracing::warn!(%error, "accepting a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        // Owned by `graceful`, which waits for it at shutdown.
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight 10 s after shutdown were cut");
    }
    Ok(())
}

/// Answers 408 when a request (reading its body, and the answer) takes longer than allowed.
async fn request_timeout(
    State(limit): State<std::time::Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {limit:?} (http.request_timeout)"),
        ),
    }
}

async fn health() -> &'static str {
    "ok"
}

/// `GET /ready`: 200 when the broker and PostgreSQL (when configured) answer within two
/// seconds and every Debezium and PostgreSQL source runs, else 503; the body says which
/// (a failed source is `retrying`, or `stopped` when only its configuration can mend it). Open like `/health`, for load balancers and
/// orchestrators: it tells only up or down. Checked at most every two seconds: concurrent
/// callers share one check.
async fn ready(State(state): State<AppState>) -> Response {
    let mut last = state.ready.lock().await;
    let readiness = match last.as_ref() {
        Some((at, readiness)) if at.elapsed() < READY_FOR => readiness.clone(),
        _ => {
            let readiness = check_ready(&state.shared).await;
            *last = Some((std::time::Instant::now(), readiness.clone()));
            readiness
        }
    };
    drop(last);
    let status = if readiness.up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness.body)).into_response()
}

async fn check_ready(shared: &Arc<Shared>) -> Readiness {
    let timeout = std::time::Duration::from_secs(2);
    let cluster = shared.cluster.clone();
    let broker = tokio::task::spawn_blocking(move || cluster.reachable(timeout))
        .await
        .map_err(|error| error.to_string())
        .and_then(|reached| reached.map_err(|error| error.to_string()));
    let postgres = match shared.master.store() {
        None => None,
        Some(store) => Some(store.reachable(timeout).await),
    };
    let sources = shared.sources.sources();
    let up = broker.is_ok()
        && postgres.as_ref().is_none_or(Result::is_ok)
        && sources.values().all(|&state| state == SourceState::Running);
    let describe = |result: &Result<(), String>| match result {
        Ok(()) => "ok".to_string(),
        Err(_) => "unreachable".to_string(),
    };
    let sources: serde_json::Map<String, serde_json::Value> = sources
        .into_iter()
        .map(|(name, state)| {
            let state = match state {
                SourceState::Running => "ok",
                SourceState::Retrying => "retrying",
                SourceState::Stopped => "stopped",
            };
            (name, state.into())
        })
        .collect();
    let body = serde_json::json!({
        "broker": describe(&broker),
        "postgres": postgres.as_ref().map(describe),
        "sources": sources,
    });
    if let Err(error) = &broker {
        tracing::warn!(%error, "not ready: broker");
    }
    if let Some(Err(error)) = &postgres {
        tracing::warn!(%error, "not ready: postgres");
    }
    Readiness { up, body }
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => handle.render().into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed",
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct Period {
    from: Option<String>,
    to: Option<String>,
}

/// Every error answers JSON `{"error": ...}`, as `docs/openapi.yaml` says: axum's own
/// rejections (a query or a body that does not parse, a body that is not JSON or is too
/// large) answer plain text, so they are wrapped. Their other headers are kept.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !text {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let wrapped = error(status, message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let (json, body) = wrapped.into_parts();
    parts.headers.extend(json.headers);
    Response::from_parts(parts, body)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The answer to a failure of `class`, with its causes; one that is not the caller's is
/// logged too.
fn failed(failure: &(dyn std::error::Error + 'static), class: pipeline::ErrorClass) -> Response {
    let message = pipeline::error::chain(failure);
    let status = status_of(class);
    if status.is_server_error() {
        tracing::error!(error = %message, "answering {status}");
    }
    error(status, message)
}

/// The answer to an error of `class`: the caller's fault is a 4xx, only a failure elsewhere
/// or a bug a 5xx.
fn status_of(class: pipeline::ErrorClass) -> StatusCode {
    match class {
        pipeline::ErrorClass::BadInput => StatusCode::BAD_REQUEST,
        pipeline::ErrorClass::NotFound => StatusCode::NOT_FOUND,
        pipeline::ErrorClass::Conflict => StatusCode::CONFLICT,
        pipeline::ErrorClass::External => StatusCode::SERVICE_UNAVAILABLE,
        pipeline::ErrorClass::Bug => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn parse_date(name: &str, value: Option<&str>) -> Result<Option<NaiveDate>, String> {
    value
        .map(|text| {
            text.parse::<NaiveDate>()
                .map_err(|_| format!("`{name}`: `{text}` is not a date (YYYY-MM-DD)"))
        })
        .transpose()
}

async fn kpis(State(state): State<AppState>, Query(period): Query<Period>) -> Response {
    let (from, to) = match (
        parse_date("from", period.from.as_deref()),
        parse_date("to", period.to.as_deref()),
    ) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(message), _) | (_, Err(message)) => return error(StatusCode::BAD_REQUEST, message),
    };
    match state.shared.kpis(from, to).await {
        Ok(table) => Json(table).into_response(),
        Err(failure) => failed(&failure, failure.class()),
    }
}

/// `GET /dashboard`: the repairs managers' page. The page holds no data; it asks for a
/// token and reads `/api/dashboard` with it.
async fn dashboard_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("dashboard.html"),
    )
        .into_response()
}

/// `GET /quality`: the data team's page, the weekly quality report refreshed live. Like
/// `/dashboard`, it holds no data: it reads `/api/quality/report` with a viewer token.
async fn quality_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("quality.html"),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QualityQuery {
    /// `2026-W49`; default: the week of the latest issue.
    week: Option<String>,
    /// `json` (default) or `html`.
    format: Option<String>,
}

/// `GET /api/quality/report?week=2026-W49&format=json|html`: the weekly data quality report
/// (issues name records by source reference only), the golden-record rules evaluated now.
async fn quality_report(
    State(state): State<AppState>,
    Query(query): Query<QualityQuery>,
) -> Response {
    let day = match query
        .week
        .as_deref()
        .map(mdm::quality::report::parse_week)
        .transpose()
    {
        Ok(day) => day,
        Err(message) => return error(StatusCode::BAD_REQUEST, format!("week: {message}")),
    };
    let html = match query.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("format: `{other}` is not json or html"),
            );
        }
    };
    let master = state.shared.master.clone();
    // Evaluating the golden-record rules reads every golden record: off the async workers.
    let weekly = match tokio::task::spawn_blocking(move || master.quality_report(day, 8)).await {
        Ok(weekly) => weekly,
        Err(failure) => return error(StatusCode::INTERNAL_SERVER_ERROR, failure.to_string()),
    };
    if html {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            mdm::quality::report::html(&weekly),
        )
            .into_response()
    } else {
        Json(weekly).into_response()
    }
}

#[derive(Debug, Deserialize)]
struct After {
    after: Option<u64>,
}

/// `GET /api/dashboard?after=N`: the live results; with `after`, waits (up to 25 s) for a
/// computation newer than version N, so the page updates as soon as events arrive.
async fn dashboard(State(state): State<AppState>, Query(after): Query<After>) -> Response {
    let wait = if after.after.is_some() {
        std::time::Duration::from_secs(25)
    } else {
        std::time::Duration::from_secs(10)
    };
    match state.shared.live.newer_than(after.after, wait).await {
        Some(dashboard) => Json(dashboard.as_ref()).into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the dashboard has not been computed yet",
        ),
    }
}

#[derive(Debug, Deserialize)]
struct Day {
    day: Option<String>,
}

/// `GET /api/exceptions?day=YYYY-MM-DD`: every data exception as of the end of the day.
async fn exceptions(State(state): State<AppState>, Query(day): Query<Day>) -> Response {
    let day = match parse_date("day", day.day.as_deref()) {
        Ok(day) => day,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match state.shared.exceptions(day).await {
        Ok(rows) => Json(rows).into_response(),
        Err(failure) => failed(&failure, failure.class()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalystQuery {
    sql: String,
}

/// `POST /api/sql` `{"sql": "SELECT ..."}`: one read-only query over the live tables and
/// views, cut at `analytics.sql_row_limit` rows (`truncated` says so) and stopped after
/// `analytics.sql_timeout` (408); 503 while `analytics.sql_concurrency` queries run and as
/// many wait.
async fn analyst_sql(State(state): State<AppState>, Json(query): Json<AnalystQuery>) -> Response {
    match state.shared.analyst_query(&query.sql).await {
        Ok(result) => Json(result).into_response(),
        Err(failure @ sql::Error::Timeout(_)) => {
            error(StatusCode::REQUEST_TIMEOUT, failure.to_string())
        }
        Err(failure @ sql::Error::Busy) => {
            let mut response = error(StatusCode::SERVICE_UNAVAILABLE, failure.to_string());
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
        Err(failure) => error(StatusCode::BAD_REQUEST, failure.to_string()),
    }
}

async fn golden_person(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let found = state.shared.master.hub().golden_person(&id);
    match found {
        Some(person) => Json(person).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no golden person `{id}`")),
    }
}

async fn golden_property(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let found = state.shared.master.hub().golden_property(&id);
    match found {
        Some(property) => Json(property).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no golden property `{id}`")),
    }
}

/// Why a golden record holds its source records: each link with the model's per-field
/// levels and weights, or the rule or steward decision behind it; and the pairs a
/// requirement kept apart although they scored above the link threshold (`vetoed`).
fn explain(state: &AppState, entity: mdm::Entity, id: &str) -> Response {
    let found = {
        let hub = state.shared.master.hub();
        hub.explain(entity, id)
            .map(|links| (links, hub.vetoed(entity, id)))
    };
    match found {
        Some((links, vetoed)) => {
            Json(serde_json::json!({ "golden_id": id, "links": links, "vetoed": vetoed }))
                .into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("no golden {} `{id}`", entity.as_str()),
        ),
    }
}

async fn explain_person(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    explain(&state, mdm::Entity::Person, &id)
}

async fn explain_property(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    explain(&state, mdm::Entity::Property, &id)
}

/// The steward review queue: pairs between the thresholds and ambiguous links, explained.
async fn review(State(state): State<AppState>) -> Response {
    let queue = state.shared.master.hub().review_queue();
    Json(queue).into_response()
}

/// The golden records a source record belongs to (`/api/xref/hms/T000001`): a list, since a
/// system may use one id for a person and a property.
async fn xref(
    State(state): State<AppState>,
    Path((system, id)): Path<(String, String)>,
) -> Response {
    let reference = pipeline::Reference {
        id,
        allocated_by: system,
    };
    let hub = state.shared.master.hub();
    let matches: Vec<serde_json::Value> = hub
        .golden_ids_of(&reference)
        .into_iter()
        .map(|(entity, golden_id)| serde_json::json!({ "entity": entity, "golden_id": golden_id }))
        .collect();
    if matches.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no source record {}:{}",
                reference.allocated_by, reference.id
            ),
        );
    }
    Json(serde_json::json!({ "source": reference.allocated_by, "source_id": reference.id, "golden": matches })).into_response()
}

/// A source record in a request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordRef {
    system: String,
    id: String,
}

impl RecordRef {
    fn reference(&self) -> Reference {
        Reference {
            id: self.id.clone(),
            allocated_by: self.system.clone(),
        }
    }
}

/// `POST /api/steward/decisions`: accept (`same`) or reject (`different`) a pair, or
/// withdraw an earlier verdict.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    #[serde(default = "person")]
    entity: mdm::Entity,
    a: RecordRef,
    b: RecordRef,
    verdict: mdm::Verdict,
    reason: String,
}

/// `POST /api/steward/splits`: take a record out of its golden record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Split {
    #[serde(default = "person")]
    entity: mdm::Entity,
    record: RecordRef,
    reason: String,
}

fn person() -> mdm::Entity {
    mdm::Entity::Person
}

/// Applies a steward action to the live engine and audits it (in PostgreSQL too, when
/// configured: a failure there is reported, the action already stands in the engine).
async fn steward_action(
    state: &AppState,
    caller: Caller,
    action: mdm::master::Action,
    reason: String,
) -> Response {
    let actor = mdm::master::Actor {
        who: caller.name,
        role: caller.role.as_str().to_string(),
    };
    match state.shared.act(actor, action, reason).await {
        Ok(entry) => Json(entry).into_response(),
        Err(ActFailed::Master(mdm::master::ActError::Refused(refused))) => {
            error(status_of(refused.class()), refused.to_string())
        }
        Err(failure) => failed(&failure, failure.class()),
    }
}

/// `POST /api/admin/erasures`: puts a person beyond use (a granted erasure request).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseRequest {
    /// A golden person id, or a source record as `system:id`.
    subject: String,
    reason: String,
}

async fn erase(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<EraseRequest>,
) -> Response {
    let action = mdm::master::Action::Erase {
        subject: request.subject,
    };
    steward_action(&state, caller, action, request.reason).await
}

async fn decide(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(decision): Json<Decision>,
) -> Response {
    let action = mdm::master::Action::Decide {
        entity: decision.entity,
        a: decision.a.reference(),
        b: decision.b.reference(),
        verdict: decision.verdict,
    };
    steward_action(&state, caller, action, decision.reason).await
}

async fn split(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(split): Json<Split>,
) -> Response {
    let action = mdm::master::Action::Split {
        entity: split.entity,
        record: split.record.reference(),
    };
    steward_action(&state, caller, action, split.reason).await
}

/// `POST /webhooks/{name}`: a contractor's job update, answered as
/// `connectors::driver::webhook::Received::answer` says.
async fn webhook(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let shared = state.shared.as_ref();
    let received = state
        .webhooks
        .receive(&shared.cluster, shared, &caller.name, &name, &body)
        .await;
    let (status, answer) = received.answer(&name, &caller.name);
    let status = StatusCode::from_u16(status).expect("a valid status");
    (status, Json(answer)).into_response()
}

/// `GET /api/steward/audit`: every steward action, oldest first.
async fn audit(State(state): State<AppState>) -> Response {
    let entries = state.shared.master.audit();
    Json(entries).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steward_error_answers_with_its_class() {
        let bad = mdm::Error::BadInput("a record cannot be matched with itself".into());
        assert_eq!(status_of(bad.class()), StatusCode::BAD_REQUEST);
        let missing = mdm::Error::NotFound("no golden person `x`".into());
        assert_eq!(status_of(missing.class()), StatusCode::NOT_FOUND);
    }
}
