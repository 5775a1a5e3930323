//! An open chat: its messages on screen and the turn streaming in it. Sessions outlive the view (switching chats
//! keeps a streaming answer alive), and reconnect by event id when a stream drops.

use std::collections::HashMap;
use std::time::Duration;

use gloo_net::http::Request;
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::json;
use shared::{ChatRef, ChatSummary, MessagePage, Role, UiMessage};
use uuid::Uuid;

use super::answer::{AnswerState, Signal};
use super::chats::ChatList;
use crate::api::{self, ApiError, ChunkStream};

/// Attempts to reconnect a dropped stream before giving up.
const RECONNECT_ATTEMPTS: u32 = 6;

/// One message on screen.
#[derive(Clone)]
pub enum Entry {
    /// What the user wrote.
    User {
        /// Stable key for the list (message id or client id).
        key: String,
        /// The text.
        text: String,
    },
    /// An answer, updated as it streams.
    Assistant {
        /// Stable key for the list.
        key: String,
        /// The answer.
        answer: RwSignal<AnswerState>,
    },
}

impl Entry {
    /// The list key.
    pub fn key(&self) -> String {
        match self {
            Entry::User { key, .. } | Entry::Assistant { key, .. } => key.clone(),
        }
    }
}

/// What a session needs from the rest of the app.
#[derive(Clone, Copy)]
pub struct SessionDeps {
    /// The sidebar list, updated as turns happen.
    pub chat_list: ChatList,
}

/// An open chat.
#[derive(Clone, Copy)]
pub struct Session {
    /// Chat id.
    pub chat_id: Uuid,
    /// Messages, oldest first.
    pub entries: RwSignal<Vec<Entry>>,
    /// The history is loading.
    pub loading: RwSignal<bool>,
    /// Loading failed (e.g. the chat does not exist).
    pub load_error: RwSignal<Option<String>>,
    /// A turn is starting or streaming.
    pub busy: RwSignal<bool>,
    /// A short notice for the user (e.g. rate limited).
    pub notice: RwSignal<Option<String>>,
    /// Cursor of older messages not loaded yet.
    pub older: RwSignal<Option<String>>,
    /// The chat's title.
    pub title: RwSignal<Option<String>>,
    deps: SessionDeps,
    /// The app's owner: signals made later (new answers) must outlive whichever view triggered them.
    owner: StoredValue<Owner>,
    /// Whether the history was requested (or the chat began here, with nothing to load).
    loaded: StoredValue<bool>,
}

async fn sleep(duration: Duration) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, duration.as_millis() as i32);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

impl Session {
    fn new(chat_id: Uuid, deps: SessionDeps, owner: Owner) -> Self {
        Self {
            chat_id,
            entries: RwSignal::new(Vec::new()),
            loading: RwSignal::new(false),
            load_error: RwSignal::new(None),
            busy: RwSignal::new(false),
            notice: RwSignal::new(None),
            older: RwSignal::new(None),
            title: RwSignal::new(None),
            deps,
            owner: StoredValue::new(owner),
            loaded: StoredValue::new(false),
        }
    }

    /// A signal owned by the app (see `owner`).
    fn signal<T: Send + Sync + 'static>(self, value: T) -> RwSignal<T> {
        self.owner.with_value(|owner| owner.with(|| RwSignal::new(value)))
    }

    fn entries_from(self, messages: Vec<UiMessage>) -> Vec<Entry> {
        messages
            .into_iter()
            .map(|message| match message.role {
                Role::Assistant => Entry::Assistant {
                    key: message.id.to_string(),
                    answer: self.signal(AnswerState::from_stored(&message)),
                },
                _ => Entry::User { key: message.id.to_string(), text: message.text() },
            })
            .collect()
    }

    /// Loads the newest page of history; continues an answer that is still streaming.
    pub fn load(self) {
        self.loaded.set_value(true);
        self.loading.set(true);
        spawn_local(async move {
            let path = format!("/api/chats/{}/messages?limit=50", self.chat_id);
            let chat_path = format!("/api/chats/{}", self.chat_id);
            let (page, chat) = futures::join!(api::get::<MessagePage>(&path), api::get::<ChatSummary>(&chat_path));
            self.loading.set(false);
            match page {
                Ok(page) => {
                    self.load_error.set(None);
                    self.older.set(page.next_before);
                    let entries = self.entries_from(page.messages);
                    let streaming = entries.iter().rev().find_map(|entry| match entry {
                        Entry::Assistant { answer, .. } if answer.with_untracked(AnswerState::is_streaming) => {
                            Some(*answer)
                        }
                        _ => None,
                    });
                    self.entries.set(entries);
                    if let Ok(chat) = chat {
                        self.title.set(Some(chat.title));
                    }
                    if let Some(answer) = streaming {
                        self.busy.set(true);
                        self.reconnect(answer).await;
                    }
                }
                Err(ApiError::Api { status: 404, .. }) => {
                    self.load_error.set(Some("This chat does not exist, or it was deleted.".to_owned()));
                }
                Err(error) => self.load_error.set(Some(error.message())),
            }
        });
    }

    /// Loads the page of messages before the oldest one shown.
    pub fn load_older(self) {
        let Some(before) = self.older.get_untracked() else { return };
        spawn_local(async move {
            let path = format!("/api/chats/{}/messages?limit=50&before={before}", self.chat_id);
            if let Ok(page) = api::get::<MessagePage>(&path).await {
                self.older.set(page.next_before);
                let mut older = self.entries_from(page.messages);
                self.entries.update(|entries| {
                    older.append(entries);
                    *entries = older;
                });
            }
        });
    }

    /// Sends a message and streams the answer.
    pub fn send(self, text: String, model: Option<String>) {
        // A chat that starts here has no history to load later.
        if self.entries.with_untracked(Vec::is_empty) {
            self.loaded.set_value(true);
        }
        let client_id = Uuid::new_v4().to_string();
        let answer = self.signal(AnswerState::streaming());
        self.entries.update(|entries| {
            entries.push(Entry::User { key: client_id.clone(), text: text.clone() });
            entries.push(Entry::Assistant { key: format!("answer-{client_id}"), answer });
        });
        let body = json!({
            "id": self.chat_id,
            "message": {"id": client_id, "role": "user", "parts": [{"type": "text", "text": text}]},
            "model": model,
        });
        self.start(body, answer);
    }

    /// Answers the last message again, replacing the last answer (also the retry of a failed answer).
    pub fn regenerate(self, model: Option<String>) {
        let answer = self.signal(AnswerState::streaming());
        self.entries.update(|entries| {
            if matches!(entries.last(), Some(Entry::Assistant { .. })) {
                entries.pop();
            }
            entries.push(Entry::Assistant { key: format!("answer-{}", Uuid::new_v4()), answer });
        });
        let body = json!({"id": self.chat_id, "trigger": "regenerate-message", "messages": [], "model": model});
        self.start(body, answer);
    }

    fn start(self, body: serde_json::Value, answer: RwSignal<AnswerState>) {
        self.busy.set(true);
        self.notice.set(None);
        spawn_local(async move {
            match api::open_stream(Request::post("/api/chat").json(&body)).await {
                Ok(Some(stream)) => {
                    if !self.follow(stream, answer).await {
                        self.reconnect(answer).await;
                    }
                }
                Ok(None) => self.reconnect(answer).await,
                Err(error) if error.code() == Some("generation_in_progress") => {
                    // Another tab is answering in this chat: follow that answer instead.
                    self.entries.update(|entries| entries.truncate(entries.len().saturating_sub(2)));
                    self.notice.set(Some("An answer is already being written in this chat; following it.".to_owned()));
                    self.load();
                }
                Err(error) => {
                    answer.update(|a| a.fail(error.message()));
                    self.busy.set(false);
                }
            }
        });
    }

    /// Applies a stream to an answer; true when it reached the answer's end.
    async fn follow(self, mut stream: ChunkStream, answer: RwSignal<AnswerState>) -> bool {
        use futures::StreamExt;
        while let Some(item) = stream.next().await {
            let Ok((seq, chunk)) = item else { return false };
            let signal = answer.try_update(|a| a.apply(seq, chunk)).flatten();
            match signal {
                Some(Signal::Chat(chat)) => self.chat_changed(chat),
                Some(Signal::Finished(_)) => {
                    self.busy.set(false);
                    self.touch_in_list();
                    return true;
                }
                None => {}
            }
        }
        answer.with_untracked(|a| !a.is_streaming())
    }

    /// Reconnects to the answer after a dropped connection, from the last event seen, a few times.
    async fn reconnect(self, answer: RwSignal<AnswerState>) {
        for attempt in 0..RECONNECT_ATTEMPTS {
            if attempt > 0 {
                sleep(Duration::from_millis(500 * 2u64.pow(attempt - 1))).await;
            }
            let (last, message_id) = answer.with_untracked(|a| (a.last_event, a.message_id.clone()));
            let mut path = format!("/api/chat/{}/stream", self.chat_id);
            if let Some(id) = &message_id {
                path.push_str(&format!("?generation={id}"));
            }
            let mut request = Request::get(&path);
            if last > 0 {
                request = request.header("Last-Event-ID", &last.to_string());
            }
            match api::open_stream(request.build()).await {
                Ok(Some(stream)) => {
                    if self.follow(stream, answer).await {
                        return;
                    }
                }
                // Nothing streams any more: the stored message has the end.
                Ok(None) => {
                    self.refresh_answer(answer).await;
                    return;
                }
                Err(ApiError::Network(_)) => {}
                Err(error) => {
                    answer.update(|a| a.fail(error.message()));
                    self.busy.set(false);
                    return;
                }
            }
        }
        answer.update(|a| a.fail("The connection was lost. Reload the page to see the answer.".to_owned()));
        self.busy.set(false);
    }

    /// Replaces a streaming answer with its stored state.
    async fn refresh_answer(self, answer: RwSignal<AnswerState>) {
        let path = format!("/api/chats/{}/messages?limit=2", self.chat_id);
        if let Ok(page) = api::get::<MessagePage>(&path).await
            && let Some(stored) = page.messages.iter().rev().find(|m| m.role == Role::Assistant)
        {
            let state = AnswerState::from_stored(stored);
            let finished = !state.is_streaming();
            answer.set(state);
            if finished {
                self.busy.set(false);
                self.touch_in_list();
                return;
            }
        }
        self.busy.set(false);
    }

    /// Asks the server to stop the answer (the text so far is kept).
    pub fn stop(self) {
        spawn_local(async move {
            let _ = api::post_ignore(&format!("/api/chat/{}/stop", self.chat_id), &json!({})).await;
        });
    }

    fn chat_changed(self, chat: ChatRef) {
        self.title.set(Some(chat.title.clone()));
        self.deps.chat_list.model.update(|list| {
            if list.chats.iter().any(|c| c.id == chat.id) {
                list.rename(chat.id, &chat.title);
            } else {
                let now = chrono::DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default();
                list.touch(ChatSummary {
                    id: chat.id,
                    title: chat.title,
                    model: None,
                    scope: None,
                    created_at: now,
                    updated_at: now,
                });
            }
        });
    }

    fn touch_in_list(self) {
        let now = chrono::DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default();
        self.deps.chat_list.model.update(|list| {
            if let Some(mut chat) = list.chats.iter().find(|c| c.id == self.chat_id).cloned() {
                chat.updated_at = now;
                list.touch(chat);
            }
        });
    }
}

/// All sessions opened in this page, kept while the page lives.
#[derive(Clone, Copy)]
pub struct Sessions {
    map: StoredValue<HashMap<Uuid, Session>>,
    owner: StoredValue<Owner>,
    deps: SessionDeps,
}

impl Sessions {
    /// Creates the store; sessions' signals belong to the current (app) owner, not to whichever view opened them.
    pub fn new(deps: SessionDeps) -> Self {
        Self {
            map: StoredValue::new(HashMap::new()),
            owner: StoredValue::new(Owner::current().unwrap_or_default()),
            deps,
        }
    }

    /// The session of a chat, created on first use; with `load`, its history is loaded once.
    pub fn get(self, chat_id: Uuid, load: bool) -> Session {
        if let Some(session) = self.map.with_value(|map| map.get(&chat_id).copied()) {
            if load && !session.loaded.get_value() {
                session.load();
            }
            return session;
        }
        let owner = self.owner.get_value();
        let session = owner.with(|| Session::new(chat_id, self.deps, owner.clone()));
        self.map.update_value(|map| {
            map.insert(chat_id, session);
        });
        if load {
            session.load();
        }
        session
    }

    /// Forgets a chat's session (after it was deleted).
    pub fn forget(self, chat_id: Uuid) {
        self.map.update_value(|map| {
            map.remove(&chat_id);
        });
    }
}
