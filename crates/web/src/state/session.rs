//! An open chat's effects: loading its thread (a branch of the conversation), sending and editing messages,
//! switching between versions, following the answer that streams in it, and reconnecting by event id when a stream
//! drops. What is on screen is the plain [`Thread`] (`thread.rs`); this module holds it in a signal and talks to the
//! server. Sessions outlive the view (switching chats keeps a streaming answer alive).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::{ChatRef, ChatSummary, MessagePage, Role, UpdateChatRequest};
use uuid::Uuid;
use wasm_bindgen::JsCast;

use super::answer::{AnswerState, Signal};
use super::chats::ChatList;
use super::thread::{Thread, question_of};
use crate::api::{self, ApiError, ChatStream, ChunkStream};

/// Attempts to reconnect a dropped stream before giving up.
const RECONNECT_ATTEMPTS: u32 = 6;
/// Messages per page of history.
const HISTORY_PAGE: u32 = 50;

/// The sources of tools chosen after turning `name` on or off, in the server's order (`all`); `chosen` `None`: all.
pub fn toggled(chosen: Option<&[String]>, name: &str, all: &[String]) -> Vec<String> {
    let on = |n: &String| chosen.is_none_or(|list| list.contains(n));
    all.iter().filter(|n| if *n == name { !on(n) } else { on(n) }).cloned().collect()
}

/// One message on screen, its answer in a signal of its own.
pub type Entry = super::thread::Entry<RwSignal<AnswerState>>;

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
    /// The messages on screen.
    pub thread: RwSignal<Thread<RwSignal<AnswerState>>>,
    /// The history is loading.
    pub loading: RwSignal<bool>,
    /// Loading failed (e.g. the chat does not exist).
    pub load_error: RwSignal<Option<String>>,
    /// A turn is starting or streaming.
    pub busy: RwSignal<bool>,
    /// A short notice for the user (e.g. rate limited).
    pub notice: RwSignal<Option<String>>,
    /// The chat's title.
    pub title: RwSignal<Option<String>>,
    /// The model or agent the chat last spoke to, once loaded (the picker follows it).
    pub model: RwSignal<Option<String>>,
    /// The sources of tools the chat uses (`None`: all).
    pub tools: RwSignal<Option<Vec<String>>>,
    /// The key of the question being edited, if one is.
    pub editing: RwSignal<Option<String>>,
    deps: SessionDeps,
    /// The app's owner: signals made later (new answers) must outlive whichever view triggered them.
    owner: StoredValue<Owner>,
    /// Whether the history was requested (or the chat began here, with nothing to load).
    loaded: StoredValue<bool>,
    /// The message whose branch the next load shows instead of the active one (a search hit).
    leaf: StoredValue<Option<Uuid>>,
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
            thread: RwSignal::new(Thread::default()),
            loading: RwSignal::new(false),
            load_error: RwSignal::new(None),
            busy: RwSignal::new(false),
            notice: RwSignal::new(None),
            title: RwSignal::new(None),
            model: RwSignal::new(None),
            tools: RwSignal::new(None),
            editing: RwSignal::new(None),
            deps,
            owner: StoredValue::new(owner),
            loaded: StoredValue::new(false),
            leaf: StoredValue::new(None),
        }
    }

    /// A signal owned by the app (see `owner`).
    fn signal<T: Send + Sync + 'static>(self, value: T) -> RwSignal<T> {
        self.owner.with_value(|owner| owner.with(|| RwSignal::new(value)))
    }

    /// Loads the newest page of history (of the active branch, or of the one through a search hit); continues an
    /// answer that is still streaming.
    pub fn load(self) {
        self.loaded.set_value(true);
        self.loading.set(true);
        let leaf = self.leaf.get_value();
        self.leaf.set_value(None);
        spawn_local(async move {
            let (page, chat) =
                futures::join!(api::messages(self.chat_id, None, leaf, HISTORY_PAGE), api::chat(self.chat_id));
            self.loading.set(false);
            match page {
                Ok(page) => {
                    self.load_error.set(None);
                    let streaming = self.show(page);
                    if let Ok(chat) = chat {
                        self.title.set(Some(chat.title));
                        self.model.set(chat.model);
                        self.tools.set(chat.tools);
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

    /// Loads the branch through `message` (a search hit) instead of the active one.
    pub fn show_leaf(self, message: Uuid) {
        self.leaf.set_value(Some(message));
        self.load();
    }

    /// Shows a page of a branch in place of what is shown; returns the answer that still streams in it.
    fn show(self, page: MessagePage) -> Option<RwSignal<AnswerState>> {
        self.thread
            .try_update(|thread| {
                // An answer already on screen keeps its signal (its keyed view stays), with the stored state; one
                // this page still follows keeps its own, which is ahead of the stored one.
                let before = thread.clone();
                thread.show_page(page, |answer| match answer.message_id.as_deref().and_then(|id| before.answer(id)) {
                    Some(signal) => {
                        if !signal.with_untracked(AnswerState::is_streaming) {
                            signal.set(answer);
                        }
                        signal
                    }
                    None => self.signal(answer),
                });
                thread.streaming_answer(|answer| answer.with_untracked(AnswerState::is_streaming))
            })
            .flatten()
    }

    /// Shows and continues the version `to` of a message: the branch through it, from the server. False when it
    /// did not happen (an answer is being written; the server's reason is shown).
    pub async fn switch(self, to: Uuid) -> bool {
        if self.busy.get_untracked() {
            return false;
        }
        match api::switch_branch(self.chat_id, to, HISTORY_PAGE).await {
            Ok(page) => {
                self.notice.set(None);
                self.show(page);
                true
            }
            Err(error) => {
                self.notice.set(Some(error.message()));
                false
            }
        }
    }

    /// The id of the answer shown last, when the thread ends with a stored one.
    fn last_answer_id(self) -> Option<String> {
        self.thread.with_untracked(|thread| match thread.entries().last() {
            Some(Entry::Assistant { answer, .. }) => answer.with_untracked(|a| a.message_id.clone()),
            _ => None,
        })
    }

    /// The answer on screen with this message id.
    pub fn answer(self, message_id: &str) -> Option<RwSignal<AnswerState>> {
        self.thread.with_untracked(|thread| {
            thread.entries().iter().find_map(|entry| match entry {
                Entry::Assistant { answer, .. }
                    if answer.with_untracked(|a| a.message_id.as_deref() == Some(message_id)) =>
                {
                    Some(*answer)
                }
                _ => None,
            })
        })
    }

    /// Pins the message shown under `key`, or unpins it: at once on screen, and back with the reason if the server
    /// refuses. A question sent from this page is known to the server by another id, the parent of its answer.
    pub fn toggle_pin(self, key: String) {
        let (pinned, answer, sent) =
            self.thread.with_untracked(|t| (!t.is_pinned(&key), t.answer(&key), t.sent_answer(&key)));
        let answer_id = |answer: Option<RwSignal<AnswerState>>| answer?.with_untracked(|a| a.message_id.clone());
        self.thread.update(|t| t.set_pinned(&key, pinned));
        // The toggle is drawn again: the keyboard goes back to it.
        let refocus = key.clone();
        request_animation_frame(move || {
            if let Ok(Some(toggle)) = document().query_selector(&format!("[data-pin=\"{refocus}\"]")) {
                let _ = toggle.unchecked_into::<web_sys::HtmlElement>().focus();
            }
        });
        spawn_local(async move {
            let id = match (answer, sent) {
                (Some(_), _) => answer_id(answer),
                (None, Some(_)) => match answer_id(sent) {
                    Some(reply) => match api::messages(self.chat_id, None, Uuid::parse_str(&reply).ok(), 100).await {
                        Ok(page) => question_of(&page.messages, &reply),
                        Err(_) => None,
                    },
                    None => None,
                },
                (None, None) => Some(key.clone()),
            };
            let result = match id {
                Some(id) => api::pin_message(self.chat_id, &id, pinned).await.map_err(|e| e.message()),
                None => Err("the message is not saved yet".to_owned()),
            };
            if let Err(why) = result {
                self.thread.update(|t| t.set_pinned(&key, !pinned));
                self.notice
                    .set(Some(format!("The message was not {}: {why}", if pinned { "pinned" } else { "unpinned" })));
            }
        });
    }

    /// Loads the page of messages before the oldest one shown.
    pub fn load_older(self) {
        let Some(before) = self.thread.with_untracked(|thread| thread.older().map(str::to_owned)) else { return };
        spawn_local(async move {
            if let Ok(page) = api::messages(self.chat_id, Some(&before), None, HISTORY_PAGE).await {
                self.thread.update(|thread| thread.prepend_page(page, |answer| self.signal(answer)));
            }
        });
    }

    /// Sends a message and streams the answer.
    pub fn send(self, text: String, model: Option<String>) {
        // A chat that starts here has no history to load later.
        if self.thread.with_untracked(Thread::is_empty) {
            self.loaded.set_value(true);
        }
        let client_id = Uuid::new_v4().to_string();
        // The message follows the answer on screen: the branch shown is the one continued.
        let after = self.last_answer_id();
        let answer = self.signal(AnswerState::streaming());
        self.thread.update(|thread| thread.send(&client_id, text.clone(), answer));
        let (chat_id, tools) = (self.chat_id, self.tools.get_untracked());
        let opening = async move { api::send_message(chat_id, client_id, &text, model, tools, after, None).await };
        self.start(answer, opening, false);
    }

    /// Sends `text` as a new version of the question `key` and streams its answer in place of what followed the
    /// question (which stays on the server, on the branch left).
    pub fn edit(self, key: String, text: String, model: Option<String>) {
        let client_id = Uuid::new_v4().to_string();
        let answer = self.signal(AnswerState::streaming());
        if self.busy.get_untracked()
            || self.thread.try_update(|thread| thread.edit(&key, &client_id, text.clone(), answer)) != Some(true)
        {
            return;
        }
        let chat_id = self.chat_id;
        let opening = async move { api::send_message(chat_id, client_id, &text, model, None, None, Some(key)).await };
        self.start(answer, opening, true);
    }

    /// Chooses the chat's sources of tools.
    pub fn set_tools(self, chosen: Vec<String>) {
        self.tools.set(Some(chosen.clone()));
        // A chat that does not exist yet takes the choice with its first message.
        if self.loaded.get_value() && !self.thread.with_untracked(Thread::is_empty) {
            spawn_local(async move {
                let change = UpdateChatRequest { tools: Some(chosen), ..UpdateChatRequest::default() };
                if let Err(error) = api::update_chat(self.chat_id, change).await {
                    self.notice.set(Some(error.message()));
                }
            });
        }
    }

    /// Answers the last question again (also the retry of a failed answer): a new version of the last answer,
    /// shown in its place; the server keeps the old one beside it.
    pub fn regenerate(self, model: Option<String>) {
        let last = self.last_answer_id();
        let answer = self.signal(AnswerState::streaming());
        self.thread.update(|thread| thread.regenerate(format!("answer-{}", Uuid::new_v4()), answer));
        let chat_id = self.chat_id;
        self.start(answer, async move { api::regenerate(chat_id, model, last).await }, true);
    }

    /// Streams the answer a turn opens into `answer`. A turn that made a new version of a message (`branching`)
    /// loads the thread again once it ends, so both versions show their switcher.
    fn start(
        self,
        answer: RwSignal<AnswerState>,
        opening: impl Future<Output = api::ApiResult<ChatStream>> + 'static,
        branching: bool,
    ) {
        self.busy.set(true);
        self.notice.set(None);
        // A turn ends the editing of a question (editing waits for the answer to finish).
        self.editing.set(None);
        spawn_local(async move {
            match opening.await {
                Ok(Some(stream)) => {
                    if !self.follow(stream, answer).await {
                        self.reconnect(answer).await;
                    }
                }
                Ok(None) => self.reconnect(answer).await,
                Err(error) if error.code() == Some("generation_in_progress") => {
                    // Another tab is answering in this chat: follow that answer instead.
                    self.thread.update(Thread::withdraw_sent);
                    self.notice.set(Some("An answer is already being written in this chat; following it.".to_owned()));
                    self.load();
                    return;
                }
                Err(error) => {
                    self.busy.set(false);
                    if !branching {
                        answer.update(|a| a.fail(error.message()));
                        return;
                    }
                    // Nothing was stored: the thread as it was comes back, with the reason.
                    self.notice.set(Some(error.message()));
                }
            }
            if branching {
                self.load();
            }
        });
    }

    /// Answers an agent's approval request in `answer`: once the server takes it, the answer streams on in the
    /// same message. A request that is gone (404) or was answered already, or after which the chat went on (409),
    /// reloads the thread with a notice; other errors show on the request. A second answer while one is sent is
    /// ignored.
    pub fn answer_approval(self, answer: RwSignal<AnswerState>, id: String, approve: bool, reason: Option<String>) {
        if answer.try_update(|a| a.approval_sent(None)) != Some(true) {
            return;
        }
        spawn_local(async move {
            let opened = api::answer_approval(self.chat_id, &id, approve, reason.clone()).await;
            match opened {
                Ok(stream) => {
                    self.busy.set(true);
                    self.notice.set(None);
                    answer.update(|a| a.resume_after(&id, approve, reason.as_deref()));
                    let finished = match stream {
                        Some(stream) => self.follow(stream, answer).await,
                        None => false,
                    };
                    if !finished {
                        self.reconnect(answer).await;
                    }
                }
                Err(ApiError::Api { status: status @ (404 | 409), .. }) => {
                    let why = if status == 404 {
                        "This request is gone: the agent no longer waits for an answer to it."
                    } else {
                        "This request was already answered, or the chat went on without it."
                    };
                    answer.update(|a| {
                        a.approval_sent(Some(String::new()));
                    });
                    self.notice.set(Some(format!("{why} The conversation has been reloaded.")));
                    self.load();
                }
                Err(error) => answer.update(|a| {
                    a.approval_sent(Some(error.message()));
                }),
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
                    if answer.with_untracked(AnswerState::changed_chats) {
                        self.deps.chat_list.reload();
                    }
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
            match api::resume(self.chat_id, message_id.as_deref(), last).await {
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
        if let Ok(page) = api::messages(self.chat_id, None, None, 2).await
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
            let _ = api::stop(self.chat_id).await;
        });
    }

    fn chat_changed(self, chat: ChatRef) {
        self.title.set(Some(chat.title.clone()));
        self.deps.chat_list.model.update(|list| {
            if list.find(chat.id).is_some() {
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
                    tools: None,
                    pinned: false,
                    archived: false,
                    matched_message_id: None,
                });
            }
        });
    }

    fn touch_in_list(self) {
        let now = chrono::DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default();
        self.deps.chat_list.model.update(|list| {
            if let Some(mut chat) = list.find(self.chat_id).cloned() {
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

#[cfg(test)]
mod tests {
    use super::toggled;

    #[test]
    fn turning_a_source_off_and_on_keeps_the_servers_order() {
        let all = ["records".to_owned(), "genie".to_owned(), "uc".to_owned()];
        assert_eq!(toggled(None, "genie", &all), ["records", "uc"]);
        let chosen = ["uc".to_owned()];
        assert_eq!(toggled(Some(&chosen), "records", &all), ["records", "uc"]);
        assert_eq!(toggled(Some(&chosen), "uc", &all), Vec::<String>::new());
        let gone = ["old".to_owned(), "uc".to_owned()];
        assert_eq!(toggled(Some(&gone), "genie", &all), ["genie", "uc"], "sources the server dropped fall away");
    }
}
