//! The MLflow assessments API of the fake workspace (PROTOCOLS.md F): create, update and delete assessments on traces,
//! with the refusals real MLflow makes (a `source` in an update, an unknown assessment). Calls need a valid bearer
//! token like the other workspace APIs. Every call is recorded, and a test can make the next calls fail with a status
//! of its choosing.
//!
//! - `POST /api/3.0/mlflow/traces/{trace_id}/assessments` → `{"assessment": {..., "assessment_id": "a-<hex>"}}`
//! - `PATCH /api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}` (with `update_mask`)
//! - `DELETE /api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}`

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::{FakeState, FakeWorkspace};

/// One call the fake MLflow received.
#[derive(Debug, Clone, PartialEq)]
pub struct MlflowCall {
    /// `POST`, `PATCH` or `DELETE`.
    pub method: Method,
    /// Request path.
    pub path: String,
    /// Parsed JSON body (`Null` when there was none).
    pub body: Value,
    /// `Authorization` header, if any.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Inner {
    calls: Vec<MlflowCall>,
    /// Assessments by id, as MLflow would return them.
    assessments: HashMap<String, Value>,
    /// Calls still to fail, and with which status.
    failures: Option<(usize, StatusCode)>,
}

/// The fake MLflow's state: recorded calls, stored assessments, scripted failures.
#[derive(Default)]
pub struct FakeMlflow {
    inner: Mutex<Inner>,
}

impl FakeMlflow {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain collections: a handler that panicked cannot leave them inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every call so far, oldest first (refused and failed ones included).
    pub fn calls(&self) -> Vec<MlflowCall> {
        self.lock().calls.clone()
    }

    /// The calls so far with this method.
    pub fn calls_with(&self, method: Method) -> Vec<MlflowCall> {
        self.calls().into_iter().filter(|call| call.method == method).collect()
    }

    /// The assessments that exist now, by id.
    pub fn assessments(&self) -> HashMap<String, Value> {
        self.lock().assessments.clone()
    }

    /// Makes the next `count` calls (after the token check) fail with `status` and a Databricks error body.
    pub fn fail_next(&self, count: usize, status: StatusCode) {
        self.lock().failures = Some((count, status)).filter(|(count, _)| *count > 0);
    }
}

impl FakeWorkspace {
    /// The fake MLflow assessments API.
    pub fn mlflow(&self) -> &FakeMlflow {
        &self.state.mlflow
    }
}

/// The MLflow routes of the fake.
pub fn router(state: Arc<FakeState>) -> Router {
    Router::new()
        .route("/api/3.0/mlflow/traces/{trace_id}/assessments", post(create))
        .route(
            "/api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}",
            axum::routing::patch(update).delete(delete),
        )
        .with_state(state)
}

/// The standard Databricks error answer.
fn error(status: StatusCode, error_code: &str, message: &str) -> Response {
    (status, Json(json!({ "error_code": error_code, "message": message }))).into_response()
}

/// What every call goes through: it is recorded, the token checked, a scripted failure applied, the body parsed.
fn admit(
    state: &FakeState,
    method: Method,
    path: String,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, Box<Response>> {
    let parsed = if body.is_empty() { Value::Null } else { serde_json::from_slice(body).unwrap_or(Value::Null) };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mlflow = &state.mlflow;
    mlflow.lock().calls.push(MlflowCall { method, path, body: parsed.clone(), authorization });
    state.workspace().check_bearer(headers)?;
    let failure = {
        let mut inner = mlflow.lock();
        let failure = inner.failures.map(|(_, status)| status);
        inner.failures =
            inner.failures.and_then(|(count, status)| Some((count - 1, status)).filter(|(left, _)| *left > 0));
        failure
    };
    if let Some(status) = failure {
        return Err(Box::new(error(status, "TEMPORARILY_UNAVAILABLE", "scripted failure")));
    }
    if !body.is_empty() && parsed.is_null() {
        return Err(Box::new(error(StatusCode::BAD_REQUEST, "MALFORMED_REQUEST", "Could not parse request body")));
    }
    Ok(parsed)
}

async fn create(
    State(state): State<Arc<FakeState>>,
    Path(trace_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/api/3.0/mlflow/traces/{trace_id}/assessments");
    let body = match admit(&state, Method::POST, path, &headers, &body) {
        Ok(body) => body,
        Err(refusal) => return *refusal,
    };
    let Some(mut assessment) = body.get("assessment").filter(|a| a.is_object()).cloned() else {
        return error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "Field 'assessment' is required.");
    };
    if assessment["trace_id"] != trace_id.as_str() {
        return error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "The trace id of the path and body differ.");
    }
    let named = assessment["assessment_name"].as_str().is_some_and(|name| !name.is_empty() && !name.contains('.'));
    let sourced =
        assessment["source"]["source_type"].as_str().is_some() && assessment["source"]["source_id"].is_string();
    if !named || !sourced || !assessment["feedback"].is_object() {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "An assessment needs an assessment_name without '.', a source and a feedback.",
        );
    }
    let id = format!("a-{}", uuid::Uuid::new_v4().simple());
    assessment["assessment_id"] = json!(id);
    assessment["create_time"] = json!(chrono::Utc::now().to_rfc3339());
    state.mlflow.lock().assessments.insert(id, assessment.clone());
    Json(json!({ "assessment": assessment })).into_response()
}

async fn update(
    State(state): State<Arc<FakeState>>,
    Path((trace_id, assessment_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}");
    let body = match admit(&state, Method::PATCH, path, &headers, &body) {
        Ok(body) => body,
        Err(refusal) => return *refusal,
    };
    let changes = &body["assessment"];
    if changes.get("source").is_some() {
        return error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "The field `source` may not be updated.");
    }
    let Some(mask) = body["update_mask"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "Field 'update_mask' is required.");
    };
    let mut inner = state.mlflow.lock();
    let Some(stored) = inner.assessments.get_mut(&assessment_id).filter(|a| a["trace_id"] == trace_id.as_str()) else {
        return not_found(&assessment_id);
    };
    for field in mask.split(',').map(str::trim) {
        match changes.get(field) {
            Some(value) => stored[field] = value.clone(),
            None => {
                if let Some(object) = stored.as_object_mut() {
                    object.remove(field);
                }
            }
        }
    }
    Json(json!({ "assessment": stored.clone() })).into_response()
}

async fn delete(
    State(state): State<Arc<FakeState>>,
    Path((trace_id, assessment_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/api/3.0/mlflow/traces/{trace_id}/assessments/{assessment_id}");
    if let Err(refusal) = admit(&state, Method::DELETE, path, &headers, &body) {
        return *refusal;
    }
    let mut inner = state.mlflow.lock();
    if inner.assessments.get(&assessment_id).is_none_or(|a| a["trace_id"] != trace_id.as_str()) {
        return not_found(&assessment_id);
    }
    inner.assessments.remove(&assessment_id);
    Json(json!({})).into_response()
}

fn not_found(assessment_id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", &format!("Assessment with ID '{assessment_id}' not found."))
}
