//! A streaming answer's events as stored (`chat.generation_events`), so any process can replay them: batches of
//! consecutive events, written by checkpoints and the final write, read by followers on other processes, deleted
//! after the retention time.

use serde::{Deserialize, Serialize};
use shared::UiChunk;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

/// An event as stored: text and reasoning deltas as compact arrays (`["t", 1, " word"]`, a third of the size of
/// the chunk JSON, and most events are deltas), anything else as its UI chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredEvent {
    /// `[kind, part, text]`.
    Delta(StoredKind, u16, String),
    /// Any other chunk.
    Chunk(UiChunk),
}

/// Kind of a stored delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredKind {
    /// Answer text.
    #[serde(rename = "t")]
    Text,
    /// Reasoning.
    #[serde(rename = "r")]
    Reasoning,
}

impl From<StoredEvent> for UiChunk {
    fn from(event: StoredEvent) -> Self {
        match event {
            StoredEvent::Delta(StoredKind::Text, part, delta) => UiChunk::TextDelta { id: part.to_string(), delta },
            StoredEvent::Delta(StoredKind::Reasoning, part, delta) => {
                UiChunk::ReasoningDelta { id: part.to_string(), delta }
            }
            StoredEvent::Chunk(chunk) => chunk,
        }
    }
}

impl From<UiChunk> for StoredEvent {
    fn from(chunk: UiChunk) -> Self {
        // Part ids are the part's index in the turn's log; anything else is kept whole.
        match chunk {
            UiChunk::TextDelta { id, delta } => match id.parse::<u16>() {
                Ok(part) => StoredEvent::Delta(StoredKind::Text, part, delta),
                Err(_) => StoredEvent::Chunk(UiChunk::TextDelta { id, delta }),
            },
            UiChunk::ReasoningDelta { id, delta } => match id.parse::<u16>() {
                Ok(part) => StoredEvent::Delta(StoredKind::Reasoning, part, delta),
                Err(_) => StoredEvent::Chunk(UiChunk::ReasoningDelta { id, delta }),
            },
            other => StoredEvent::Chunk(other),
        }
    }
}

/// Stored event batches that contain events after `after_seq`, in order: (first sequence number, events).
pub async fn events_after(
    db: impl PgExecutor<'_>,
    answer_id: Uuid,
    after_seq: i64,
) -> sqlx::Result<Vec<(i64, Vec<StoredEvent>)>> {
    let rows = sqlx::query!(
        // language=PostgreSQL
        r#"
        select first_seq, events as "events: Json<Vec<StoredEvent>>"
        from chat.generation_events
        where generation_id = $1 and last_seq > $2
        order by first_seq
        "#,
        answer_id,
        after_seq
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.first_seq, r.events.0)).collect())
}

/// Deletes event batches older than `retention_secs` whose answer has finished; the messages stay.
pub async fn purge_events(db: impl PgExecutor<'_>, retention_secs: f64) -> sqlx::Result<u64> {
    let result = sqlx::query!(
        // language=PostgreSQL
        r#"
        delete from chat.generation_events e
        where e.created_at < now() - make_interval(secs => $1)
          and not exists (select 1 from chat.messages m where m.message_id = e.generation_id and m.status = 'streaming')
        "#,
        retention_secs
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_are_stored_compactly_and_read_back_as_the_same_chunks() {
        let chunks = vec![
            UiChunk::StartStep,
            UiChunk::ReasoningDelta { id: "0".into(), delta: "why".into() },
            UiChunk::TextDelta { id: "1".into(), delta: " w1".into() },
            UiChunk::ToolInputDelta { tool_call_id: "c1".into(), input_text_delta: "{".into() },
            UiChunk::TextEnd { id: "1".into() },
        ];
        let stored: Vec<StoredEvent> = chunks.iter().cloned().map(StoredEvent::from).collect();
        let json = serde_json::to_string(&stored).expect("serializes");
        assert!(json.contains(r#"["r",0,"why"]"#) && json.contains(r#"["t",1," w1"]"#), "{json}");
        let back: Vec<StoredEvent> = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.into_iter().map(UiChunk::from).collect::<Vec<_>>(), chunks);
    }
}
