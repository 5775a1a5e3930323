//! The MLflow assessments API (PROTOCOLS.md F): a user's vote on an answer becomes an assessment named
//! `user_feedback` on the answer's trace, is changed in place, and is deleted with the vote. Calls carry the app's own
//! workspace token, never the user's: the app's identity is the one granted CAN_EDIT on the experiment.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::DatabricksAuth;
use super::token_cache::describe_reqwest;

/// The name every vote's assessment has, up or down alike, so that MLflow counts them as one metric.
pub const ASSESSMENT_NAME: &str = "user_feedback";
/// Time limit of one call: a vote that waits longer is retried later rather than holding its sender.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an error body is kept for the log.
const MAX_ERROR_CHARS: usize = 200;

/// A vote as MLflow records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote<'a> {
    /// Up is `true`, down is `false` (the assessment's `feedback.value`).
    pub up: bool,
    /// The user's comment (the assessment's `rationale`).
    pub rationale: Option<&'a str>,
}

/// Why a call did not go through. The text names the status and MLflow's own message, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// Worth trying again later: no connection, a timeout, a 5xx, a 429, or no workspace token right now.
    #[error("{0}")]
    Transient(String),
    /// MLflow refused the request (a 4xx other than 429); trying the same again will most likely fail again.
    #[error("MLflow refused the request ({status} {error_code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Databricks `error_code`.
        error_code: String,
        /// Databricks `message`, shortened.
        message: String,
    },
    /// A trace or assessment id that cannot be one segment of a URL path (empty, `.` or `..`).
    #[error("the id `{0}` cannot be part of an MLflow URL")]
    UnusableId(String),
}

impl MlflowError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, MlflowError::Transient(_))
    }

    /// Whether MLflow says the trace or assessment does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, MlflowError::Refused { status: 404, .. })
    }
}

#[derive(Deserialize)]
struct Created {
    assessment: CreatedAssessment,
}

#[derive(Deserialize)]
struct CreatedAssessment {
    assessment_id: String,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    error_code: Option<String>,
    message: Option<String>,
}

/// Client of the assessments API of the configured workspace. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MlflowClient {
    auth: DatabricksAuth,
}

impl MlflowClient {
    /// A client calling the workspace of `auth` with its token.
    pub fn new(auth: DatabricksAuth) -> Self {
        Self { auth }
    }

    /// Records a first vote by `source_id` (the user's email) on the trace; returns the new assessment's id.
    pub async fn create(&self, trace_id: &str, source_id: &str, vote: Vote<'_>) -> Result<String, MlflowError> {
        let url = assessments_url(self.auth.host(), trace_id, None)?;
        let body = self.call(Method::POST, url, Some(&create_body(trace_id, source_id, vote))).await?;
        let created: Created = serde_json::from_slice(&body)
            .map_err(|e| MlflowError::Transient(format!("MLflow answered with an unreadable assessment ({e})")))?;
        Ok(created.assessment.assessment_id)
    }

    /// Changes a vote in place: value and rationale (a vote without a comment clears the old one).
    pub async fn update(&self, trace_id: &str, assessment_id: &str, vote: Vote<'_>) -> Result<(), MlflowError> {
        let url = assessments_url(self.auth.host(), trace_id, Some(assessment_id))?;
        self.call(Method::PATCH, url, Some(&update_body(trace_id, vote))).await.map(drop)
    }

    /// Removes a vote's assessment; one that is already gone counts as removed.
    pub async fn delete(&self, trace_id: &str, assessment_id: &str) -> Result<(), MlflowError> {
        let url = assessments_url(self.auth.host(), trace_id, Some(assessment_id))?;
        match self.call(Method::DELETE, url, None).await {
            Err(error) if error.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }

    /// One call with the workspace token; a 401 is tried once more with a fresh token (rotated or revoked).
    async fn call(&self, method: Method, url: Url, body: Option<&Value>) -> Result<bytes::Bytes, MlflowError> {
        let mut retried = false;
        loop {
            let token = self
                .auth
                .token()
                .await
                .map_err(|error| MlflowError::Transient(format!("no workspace token for MLflow calls: {error}")))?;
            let mut request = self
                .auth
                .http()
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose_secret())
                .timeout(CALL_TIMEOUT);
            if let Some(body) = body {
                request = request.json(body);
            }
            let unreachable =
                |e| MlflowError::Transient(format!("MLflow could not be reached ({})", describe_reqwest(e)));
            let response = request.send().await.map_err(unreachable)?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(unreachable)?;
            if status == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                self.auth.invalidate();
                continue;
            }
            if status.is_success() {
                return Ok(bytes);
            }
            return Err(classify(status, &bytes));
        }
    }
}

/// `{host}/api/3.0/mlflow/traces/{trace_id}/assessments[/{assessment_id}]`, each id one escaped path segment: the ids
/// come from the agent and from MLflow, and must not be able to name another path.
fn assessments_url(host: &str, trace_id: &str, assessment_id: Option<&str>) -> Result<Url, MlflowError> {
    // The URL parser takes `.` and `..` as moves within the path, not as names.
    if let Some(id) = [Some(trace_id), assessment_id].into_iter().flatten().find(|id| matches!(*id, "" | "." | "..")) {
        return Err(MlflowError::UnusableId(id.to_owned()));
    }
    let mut url = Url::parse(host).map_err(|e| MlflowError::Transient(format!("unusable workspace URL ({e})")))?;
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| MlflowError::Transient("unusable workspace URL (it cannot have a path)".to_owned()))?;
        segments.pop_if_empty().extend(["api", "3.0", "mlflow", "traces", trace_id, "assessments"]);
        if let Some(id) = assessment_id {
            segments.push(id);
        }
    }
    Ok(url)
}

/// The body of a first vote.
fn create_body(trace_id: &str, source_id: &str, vote: Vote<'_>) -> Value {
    let mut assessment = json!({
        "trace_id": trace_id,
        "assessment_name": ASSESSMENT_NAME,
        "source": {"source_type": "HUMAN", "source_id": source_id},
        "feedback": {"value": vote.up},
    });
    if let Some(rationale) = vote.rationale {
        assessment["rationale"] = json!(rationale);
    }
    json!({ "assessment": assessment })
}

/// The body of a changed vote. No `source`: MLflow refuses to update it (400 "The field `source` may not be
/// updated.").
fn update_body(trace_id: &str, vote: Vote<'_>) -> Value {
    let mut assessment = json!({
        "trace_id": trace_id,
        "assessment_name": ASSESSMENT_NAME,
        "feedback": {"value": vote.up},
    });
    if let Some(rationale) = vote.rationale {
        assessment["rationale"] = json!(rationale);
    }
    json!({ "assessment": assessment, "update_mask": "feedback,rationale" })
}

/// What a failed status means for the vote: 429 and 5xx pass, other refusals do not.
fn classify(status: StatusCode, body: &[u8]) -> MlflowError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = parsed.message.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let message: String = message.chars().take(MAX_ERROR_CHARS).collect();
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return MlflowError::Transient(format!("MLflow answered {status}: {message}"));
    }
    MlflowError::Refused {
        status: status.as_u16(),
        error_code: parsed.error_code.unwrap_or_else(|| "UNKNOWN".to_owned()),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_single_escaped_path_segments() {
        let url = assessments_url("https://adb-1.2.azuredatabricks.net", "tr-abc", None).expect("url");
        assert_eq!(url.as_str(), "https://adb-1.2.azuredatabricks.net/api/3.0/mlflow/traces/tr-abc/assessments");
        let url = assessments_url("http://127.0.0.1:9000/", "tr-1", Some("a-2")).expect("url");
        assert_eq!(url.as_str(), "http://127.0.0.1:9000/api/3.0/mlflow/traces/tr-1/assessments/a-2");
        let url = assessments_url("https://h.example.com", "trace:/loc/../x?y", Some("a/b")).expect("url");
        assert_eq!(
            url.as_str(),
            "https://h.example.com/api/3.0/mlflow/traces/trace:%2Floc%2F..%2Fx%3Fy/assessments/a%2Fb"
        );
        for unusable in ["", ".", ".."] {
            assert!(matches!(assessments_url("https://h", unusable, None), Err(MlflowError::UnusableId(_))));
            assert!(matches!(assessments_url("https://h", "tr-1", Some(unusable)), Err(MlflowError::UnusableId(_))));
        }
    }

    #[test]
    fn a_first_vote_names_its_human_source_and_a_change_never_sends_one() {
        let vote = Vote { up: false, rationale: Some("wrong year") };
        assert_eq!(
            create_body("tr-1", "ann@example.com", vote),
            json!({"assessment": {
                "trace_id": "tr-1", "assessment_name": "user_feedback",
                "source": {"source_type": "HUMAN", "source_id": "ann@example.com"},
                "feedback": {"value": false}, "rationale": "wrong year"}})
        );
        assert_eq!(
            update_body("tr-1", Vote { up: true, rationale: None }),
            json!({"assessment": {"trace_id": "tr-1", "assessment_name": "user_feedback", "feedback": {"value": true}},
                   "update_mask": "feedback,rationale"})
        );
    }

    #[test]
    fn rate_limits_and_server_errors_are_retried_other_refusals_are_not() {
        assert!(matches!(classify(StatusCode::TOO_MANY_REQUESTS, b""), MlflowError::Transient(_)));
        assert!(matches!(classify(StatusCode::BAD_GATEWAY, b"<html>"), MlflowError::Transient(_)));
        let refused = classify(
            StatusCode::BAD_REQUEST,
            br#"{"error_code":"INVALID_PARAMETER_VALUE","message":"The field `source` may not be updated."}"#,
        );
        assert_eq!(
            refused.to_string(),
            "MLflow refused the request (400 INVALID_PARAMETER_VALUE): The field `source` may not be updated."
        );
        assert!(classify(StatusCode::NOT_FOUND, b"").is_not_found());
        let long = "x".repeat(5000);
        match classify(StatusCode::FORBIDDEN, long.as_bytes()) {
            MlflowError::Refused { message, .. } => assert_eq!(message.len(), MAX_ERROR_CHARS),
            other => panic!("{other}"),
        }
    }
}
