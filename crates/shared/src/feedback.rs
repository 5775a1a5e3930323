//! Feedback on answers: a user's vote (up or down, with an optional comment) on one assistant message, as
//! `PUT /api/chats/{chat_id}/messages/{message_id}/feedback` takes and returns it and as the messages API shows it in
//! `metadata.feedback`, and whether the vote has reached MLflow.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest comment accepted with a vote, in characters.
pub const MAX_FEEDBACK_COMMENT_CHARS: usize = 2000;

/// The vote itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    /// A good answer.
    Up,
    /// A bad answer.
    Down,
}

impl Rating {
    /// The database and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Up => "up",
            Rating::Down => "down",
        }
    }

    /// Parses the database and wire spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "up" => Some(Rating::Up),
            "down" => Some(Rating::Down),
            _ => None,
        }
    }
}

/// Where the vote stands with MLflow (an assessment on the answer's trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FeedbackSync {
    /// Kept in the app only: MLflow feedback sync is off, or the answer has no trace.
    Off,
    /// Not in MLflow yet; the server keeps trying.
    Pending,
    /// MLflow has this vote.
    Synced,
    /// MLflow refused this vote repeatedly; voting again tries once more.
    Failed,
}

impl FeedbackSync {
    /// The database and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackSync::Off => "off",
            FeedbackSync::Pending => "pending",
            FeedbackSync::Synced => "synced",
            FeedbackSync::Failed => "failed",
        }
    }

    /// Parses the database and wire spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "off" => Some(FeedbackSync::Off),
            "pending" => Some(FeedbackSync::Pending),
            "synced" => Some(FeedbackSync::Synced),
            "failed" => Some(FeedbackSync::Failed),
            _ => None,
        }
    }
}

/// The caller's vote on an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Feedback {
    /// Up or down.
    pub rating: Rating,
    /// What the user wrote with the vote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// When the vote was last changed.
    pub updated_at: DateTime<Utc>,
    /// Whether MLflow has it.
    pub sync: FeedbackSync,
}

/// Body of `PUT /api/chats/{chat_id}/messages/{message_id}/feedback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// Up or down.
    pub rating: Rating,
    /// Optional comment, at most 2,000 characters; surrounding white space is trimmed and a blank one is no comment.
    /// Line breaks and tabs are kept; other control characters are refused.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 2000, pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"))]
    pub comment: Option<String>,
}

/// What `GET /api/config` says about feedback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedbackFeatures {
    /// Votes on answers with a trace are sent to MLflow as assessments.
    pub mlflow: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for rating in [Rating::Up, Rating::Down] {
            assert_eq!(Rating::parse(rating.as_str()), Some(rating));
        }
        for sync in [FeedbackSync::Off, FeedbackSync::Pending, FeedbackSync::Synced, FeedbackSync::Failed] {
            assert_eq!(FeedbackSync::parse(sync.as_str()), Some(sync));
            assert_eq!(serde_json::to_value(sync).expect("json"), sync.as_str());
        }
        assert_eq!(Rating::parse("sideways"), None);
    }

    #[test]
    fn a_request_refuses_unknown_fields_and_ratings() {
        let ok: FeedbackRequest = serde_json::from_str(r#"{"rating":"down","comment":"too long"}"#).expect("valid");
        assert_eq!(ok, FeedbackRequest { rating: Rating::Down, comment: Some("too long".into()) });
        assert!(serde_json::from_str::<FeedbackRequest>(r#"{"rating":"up","stars":5}"#).is_err());
        assert!(serde_json::from_str::<FeedbackRequest>(r#"{"rating":"meh"}"#).is_err());
        assert!(serde_json::from_str::<FeedbackRequest>(r#"{"comment":"no rating"}"#).is_err());
    }

    #[test]
    fn feedback_without_a_comment_leaves_it_out() {
        let feedback = Feedback {
            rating: Rating::Up,
            comment: None,
            updated_at: DateTime::from_timestamp(0, 0).expect("epoch"),
            sync: FeedbackSync::Off,
        };
        let json = serde_json::to_value(&feedback).expect("json");
        assert_eq!(json, serde_json::json!({"rating": "up", "updated_at": "1970-01-01T00:00:00Z", "sync": "off"}));
    }
}
