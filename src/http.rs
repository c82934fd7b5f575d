//! The HTTP API: health, Prometheus metrics, KPIs and golden records (axum).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;

use crate::run::Shared;

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    metrics: Option<PrometheusHandle>,
}

pub fn router(shared: Arc<Shared>, metrics: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
        .route("/api/kpis", get(kpis))
        .route("/api/golden/persons/{id}", get(golden_person))
        .route("/api/golden/properties/{id}", get(golden_property))
        .route("/api/golden/persons/{id}/explain", get(explain_person))
        .route("/api/golden/properties/{id}/explain", get(explain_property))
        .route("/api/review", get(review))
        .route("/api/xref/{system}/{id}", get(xref))
        .with_state(AppState { shared, metrics })
}

async fn health() -> &'static str {
    "ok"
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

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
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
        Err(failure) => error(StatusCode::BAD_REQUEST, format!("{failure:#}")),
    }
}

async fn golden_person(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let found = state
        .shared
        .hub
        .lock()
        .expect("hub lock")
        .golden_person(&id);
    match found {
        Some(person) => Json(person).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no golden person `{id}`")),
    }
}

async fn golden_property(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let found = state
        .shared
        .hub
        .lock()
        .expect("hub lock")
        .golden_property(&id);
    match found {
        Some(property) => Json(property).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no golden property `{id}`")),
    }
}

/// Why a golden record holds its source records: each link with the model's per-field
/// levels and weights, or the rule or steward decision behind it.
fn explain(state: &AppState, entity: mdm::Entity, id: &str) -> Response {
    let found = state
        .shared
        .hub
        .lock()
        .expect("hub lock")
        .explain(entity, id);
    match found {
        Some(links) => Json(serde_json::json!({ "golden_id": id, "links": links })).into_response(),
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
    let queue = state.shared.hub.lock().expect("hub lock").review_queue();
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
    let hub = state.shared.hub.lock().expect("hub lock");
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
