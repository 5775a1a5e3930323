//! Opaque pagination cursors.
//!
//! A chat-list cursor is the (updated_at, chat_id) of the last chat on a page, base64url-encoded so clients
//! treat it as opaque. A message cursor is the seq of the oldest message on a page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike, Utc};
use uuid::Uuid;

/// A cursor a client sent that is not one this server made (the routes answer 400 with the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// A malformed chat-list cursor.
    #[error("invalid cursor: pass back the `next_cursor` of a previous page")]
    Chats,
    /// A malformed message-page cursor.
    #[error("invalid `before` cursor: pass back the `next_before` of a previous page")]
    Messages,
}

/// Position after which the next page of chats starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatCursor {
    /// `updated_at` of the last chat already returned.
    pub updated_at: DateTime<Utc>,
    /// `chat_id` of the last chat already returned (breaks ties in time).
    pub chat_id: Uuid,
}

impl ChatCursor {
    /// Encodes the cursor for a client.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.updated_at.timestamp_micros(), self.chat_id.simple()))
    }

    /// Decodes a client's cursor.
    pub fn decode(raw: &str) -> Result<Self, CursorError> {
        let invalid = || CursorError::Chats;
        let bytes = URL_SAFE_NO_PAD.decode(raw.as_bytes()).map_err(|_| invalid())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once('|').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        // chrono represents times PostgreSQL refuses (before 4713 BC), which would fail the query; no chat is
        // outside years 1 to 9999 anyway.
        let updated_at =
            DateTime::from_timestamp_micros(micros).filter(|t| (1..=9999).contains(&t.year())).ok_or_else(invalid)?;
        Ok(ChatCursor { updated_at, chat_id: Uuid::parse_str(id).map_err(|_| invalid())? })
    }
}

/// Decodes a message-page cursor (the seq of the oldest message already returned).
pub fn decode_message_cursor(raw: &str) -> Result<i64, CursorError> {
    raw.parse::<i64>().ok().filter(|seq| *seq > 0).ok_or(CursorError::Messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_cursor_round_trips() {
        let cursor = ChatCursor {
            updated_at: DateTime::from_timestamp_micros(1_763_800_000_123_456).expect("time"),
            chat_id: Uuid::now_v7(),
        };
        assert_eq!(ChatCursor::decode(&cursor.encode()).expect("decodes"), cursor);
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        for raw in [
            "",
            "!!!",
            "bm9waXBl",
            &URL_SAFE_NO_PAD.encode("12|not-a-uuid"),
            &URL_SAFE_NO_PAD.encode("x|00000000000000000000000000000000"),
            &URL_SAFE_NO_PAD.encode("-1000000000000000000|00000000000000000000000000000000"),
        ] {
            assert!(ChatCursor::decode(raw).is_err(), "{raw}");
        }
        for raw in ["0", "-1", "abc", ""] {
            assert!(decode_message_cursor(raw).is_err(), "{raw}");
        }
    }
}
