//! The one error envelope every failing API response carries: `{"error":{"code":"...","message":"..."}}`.

use serde::{Deserialize, Serialize};

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// A machine-readable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `not_found`, `invalid_request`, `conflict`.
    pub code: String,
    /// Message safe to show to the user; never contains internal details.
    pub message: String,
    /// Id of the generation already running on the chat (only with code `generation_in_progress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<uuid::Uuid>,
    /// Seconds to wait before retrying (only with code `rate_limited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl ErrorBody {
    /// An error body with just a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                generation_id: None,
                retry_after_secs: None,
            },
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.error.message, self.error.code)
    }
}
