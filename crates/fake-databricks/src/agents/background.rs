//! Background mode of a LongRunningAgentServer (AGENTS-PROTOCOL.md §H): a run plays its frames in a task of its
//! own, independent of any HTTP connection, and keeps them in memory numbered by `sequence_number` (from 0), each
//! tagged with the run's `response_id`. Any number of streams follow a run from a cursor: the frames after it,
//! then new ones as they come, then `data: [DONE]` when the run completed (a failed run's stream just ends).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::frames::{Frame, Sink, StreamEnd};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The agent finished its answer.
    Completed,
    /// The agent reported an error, or its stream was cut.
    Failed,
}

/// What a run has produced so far.
#[derive(Debug, Clone, Default)]
pub struct RunLog {
    /// Stored frames; a frame's index is its `sequence_number`.
    pub frames: Vec<Value>,
    /// Set once the run is over.
    pub end: Option<RunEnd>,
    /// 2 once the run was resumed (`resumed=1`), else 1.
    pub attempt: u32,
}

/// Where a resumed run records its `response.resumed` frame.
#[derive(Debug, Clone)]
pub struct Resumption {
    /// The sequence number of that frame (the first of the second attempt).
    pub at: usize,
    /// The conversation id the run was started with (the second attempt's is `<it>::attempt-2`).
    pub conversation_id: String,
}

/// One background run.
pub struct Run {
    id: String,
    log: watch::Sender<RunLog>,
}

/// The runs of a fake, by response id.
#[derive(Default)]
pub struct Runs {
    runs: Mutex<HashMap<String, Arc<Run>>>,
}

impl Runs {
    /// Starts playing `frames` as the run `id`, in a task of its own.
    pub fn start(&self, id: String, frames: Vec<Frame>, resumption: Option<Resumption>) -> Arc<Run> {
        let run = Arc::new(Run { id: id.clone(), log: watch::Sender::new(RunLog { attempt: 1, ..RunLog::default() }) });
        crate::lock(&self.runs).insert(id, run.clone());
        tokio::spawn(run.clone().play(frames, resumption));
        run
    }

    /// The run `id`, if there is one.
    pub fn get(&self, id: &str) -> Option<Arc<Run>> {
        crate::lock(&self.runs).get(id).cloned()
    }

    /// Forgets every run (running ones go on for whoever follows them).
    pub fn clear(&self) {
        crate::lock(&self.runs).clear();
    }
}

impl Run {
    /// `resp_<24 hex>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The frames so far and the end, if any.
    pub fn snapshot(&self) -> RunLog {
        self.log.borrow().clone()
    }

    async fn play(self: Arc<Self>, frames: Vec<Frame>, resumption: Option<Resumption>) {
        let (mut done, mut failed) = (false, false);
        for frame in frames {
            match frame {
                Frame::Data(value) => {
                    failed |= is_failure(&value);
                    self.append(value, resumption.as_ref());
                }
                Frame::Pause(pause) => tokio::time::sleep(pause).await,
                Frame::Done => {
                    done = true;
                    break;
                }
                Frame::Abort => break,
                // Never ends: whoever follows waits until they give up.
                Frame::Hang => std::future::pending::<()>().await,
                // A background run stores JSON events only.
                Frame::Raw(_) => {}
            }
        }
        let end = if done && !failed { RunEnd::Completed } else { RunEnd::Failed };
        self.log.send_modify(|log| log.end = Some(end));
    }

    fn append(&self, mut value: Value, resumption: Option<&Resumption>) {
        let id = self.id.clone();
        self.log.send_modify(|log| {
            if let Some(resumption) = resumption
                && log.frames.len() == resumption.at
            {
                // A crash-resumed run says so where its second attempt starts (AGENTS-PROTOCOL.md §H).
                let at = resumption.at;
                log.frames.push(json!({
                    "type": "response.resumed", "attempt": 2, "from_seq": at,
                    "conversation_id": format!("{}::attempt-2", resumption.conversation_id),
                    "sequence_number": at, "response_id": id,
                }));
                log.attempt = 2;
            }
            if let Some(object) = value.as_object_mut() {
                object.insert("sequence_number".into(), json!(log.frames.len()));
                object.insert("response_id".into(), json!(id));
            }
            log.frames.push(value);
        });
    }

    /// Streams the frames with a sequence number above `after` (all without it), then new ones until the run is
    /// over; `[DONE]` if it completed. As the real server does, `after = 0` reads from 0 inclusive (clients dedupe
    /// by `sequence_number`). After `cut_after` frames the connection is cut, the run going on.
    pub async fn follow(&self, sink: &Sink, after: Option<u64>, cut_after: Option<usize>) -> StreamEnd {
        let mut changes = self.log.subscribe();
        let mut next = match after {
            None | Some(0) => 0,
            Some(after) => after as usize + 1,
        };
        let mut sent = 0usize;
        loop {
            let (batch, end) = {
                let log = changes.borrow_and_update();
                (log.frames.get(next..).map(<[Value]>::to_vec).unwrap_or_default(), log.end)
            };
            for frame in batch {
                if cut_after == Some(sent) {
                    // The frames written so far reach the client before the connection drops, as when a proxy cuts a
                    // long stream (an abort right after a write can discard what the socket had not sent yet).
                    sink.pause(std::time::Duration::from_millis(20)).await;
                    sink.abort().await;
                    return StreamEnd::Cut;
                }
                if !sink.data(&frame).await {
                    return StreamEnd::ClientLeft;
                }
                sent += 1;
                next += 1;
            }
            if let Some(end) = end {
                if end == RunEnd::Completed && !sink.send("data: [DONE]\n\n".to_owned()).await {
                    return StreamEnd::ClientLeft;
                }
                return StreamEnd::Completed;
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return StreamEnd::Completed;
                    }
                }
                () = sink.closed() => return StreamEnd::ClientLeft,
            }
        }
    }

    /// `GET /responses/{id}` without `stream`: the run's status, its finished items and its trace.
    pub fn status(&self) -> Value {
        let log = self.snapshot();
        let status = match log.end {
            None => "in_progress",
            Some(RunEnd::Completed) => "completed",
            Some(RunEnd::Failed) => "failed",
        };
        let mut body = json!({"id": self.id, "object": "response", "status": status, "attempt_number": log.attempt});
        if log.end == Some(RunEnd::Completed) {
            let output: Vec<Value> = log
                .frames
                .iter()
                .filter(|frame| frame["type"] == "response.output_item.done")
                .map(|frame| frame["item"].clone())
                .collect();
            body["output"] = json!(output);
            if let Some(trace) = log.frames.iter().find_map(|frame| frame.get("trace_id")) {
                body["metadata"] = json!({ "trace_id": trace });
            }
        }
        if log.end == Some(RunEnd::Failed) {
            body["error"] = json!({"message": "The agent run failed.", "type": "server_error", "code": "task_failed"});
        }
        body
    }
}

/// Whether a frame reports a failure, in any of the agents' forms.
fn is_failure(frame: &Value) -> bool {
    frame.get("error").is_some()
        || frame.get("error_code").is_some()
        || matches!(frame["type"].as_str(), Some("error" | "response.failed" | "response.incomplete"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agents::frames::respond;

    fn text_frames(count: usize) -> Vec<Frame> {
        let mut frames: Vec<Frame> = (0..count)
            .flat_map(|i| {
                [
                    Frame::Pause(Duration::from_millis(5)),
                    Frame::Data(json!({"type": "response.output_text.delta", "delta": format!("w{i}")})),
                ]
            })
            .collect();
        frames.push(Frame::Done);
        frames
    }

    /// The body as far as it goes (up to a cut).
    async fn read(response: axum::response::Response) -> String {
        use futures::StreamExt;
        let mut body = response.into_body().into_data_stream();
        let mut text = String::new();
        while let Some(Ok(bytes)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
        text
    }

    fn sequence_numbers(body: &str) -> Vec<u64> {
        body.lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter_map(|data| serde_json::from_str::<Value>(data).ok())
            .filter_map(|frame| frame["sequence_number"].as_u64())
            .collect()
    }

    #[tokio::test]
    async fn a_stream_from_a_cursor_replays_what_follows_it_then_new_frames_then_done() {
        let runs = Runs::default();
        let run = runs.start("resp_1".into(), text_frames(6), None);
        tokio::time::sleep(Duration::from_millis(12)).await;

        let follower = run.clone();
        let body = read(respond(move |sink| async move {
            follower.follow(&sink, Some(1), None).await;
        }))
        .await;

        assert_eq!(sequence_numbers(&body), [2, 3, 4, 5], "exactly the frames after the cursor");
        let from_zero = run.clone();
        let again = read(respond(move |sink| async move {
            from_zero.follow(&sink, Some(0), None).await;
        }))
        .await;
        assert_eq!(sequence_numbers(&again), [0, 1, 2, 3, 4, 5], "a cursor of 0 reads from 0 inclusive");
        assert!(body.contains("\"response_id\":\"resp_1\""));
        assert!(body.trim_end().ends_with("data: [DONE]"));
        assert_eq!(run.snapshot().end, Some(RunEnd::Completed));
        assert_eq!(run.status()["status"], "completed");
        assert!(runs.get("resp_1").is_some() && runs.get("resp_2").is_none());
    }

    #[tokio::test]
    async fn a_cut_connection_leaves_the_run_going_and_a_resumed_run_says_so() {
        let runs = Runs::default();
        let resumption = Resumption { at: 2, conversation_id: "chat-1".into() };
        let run = runs.start("resp_2".into(), text_frames(4), Some(resumption));

        let first = run.clone();
        let cut = read(respond(move |sink| async move {
            first.follow(&sink, None, Some(2)).await;
        }))
        .await;
        let second = run.clone();
        let resumed = read(respond(move |sink| async move {
            second.follow(&sink, Some(1), None).await;
        }))
        .await;

        assert_eq!(sequence_numbers(&cut), [0, 1], "the first connection drops after two frames");
        assert!(!cut.contains("[DONE]"));
        assert_eq!(sequence_numbers(&resumed), [2, 3, 4], "the resumed frame, then the last two words");
        let first_resumed = resumed.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_default();
        let frame: Value = serde_json::from_str(first_resumed).unwrap_or_default();
        assert_eq!(frame["type"], "response.resumed");
        assert_eq!((frame["attempt"].as_u64(), frame["from_seq"].as_u64()), (Some(2), Some(2)));
        assert_eq!(frame["conversation_id"], "chat-1::attempt-2");
        assert_eq!(run.status()["attempt_number"], 2);
    }

    #[tokio::test]
    async fn a_failed_run_ends_without_done() {
        let runs = Runs::default();
        let run = runs.start("resp_3".into(), vec![Frame::Data(json!({"type": "error", "message": "boom"}))], None);
        let follower = run.clone();
        let body = read(respond(move |sink| async move {
            follower.follow(&sink, None, None).await;
        }))
        .await;
        assert_eq!(sequence_numbers(&body), [0]);
        assert!(!body.contains("[DONE]"));
        assert_eq!(run.status()["status"], "failed");
    }
}
