//! A message bubble: the user's text (edited in place), or an answer with its reasoning, its body (streamed
//! markdown, tool calls, the agents that took over, approval requests, older messages summarised; see
//! `answer_html.rs`), its sources, status, actions and vote; under either, the switcher between its versions when it
//! has several, and the pin.

use leptos::prelude::*;
use shared::{Branch, MessageStatus, TurnState};

use super::answer_html::{
    Piece, feedback_html, pieces, pin_html, question_actions_html, question_html, sources_html, versions_html,
};
use super::copy::copy_text;
use crate::context::AppCtx;
use crate::state::answer::AnswerState;
use crate::state::layout::{Summary, citations};
use crate::state::session::Session;

/// The switcher of an answer's versions (its buttons work through the message list's delegated listener), or
/// nothing.
fn versions(session: Session, id: String, branch: Option<Branch>) -> impl IntoView {
    branch.map(|branch| {
        view! { <span class="versions-slot" inner_html=move || versions_html(&id, &branch, session.busy.get())></span> }
    })
}

/// What the user wrote (plain text: the user's own words are never interpreted as markup), with the switcher of
/// its versions and Edit, which turns the text into a box to save as a new version (HTML made in `answer_html.rs`,
/// its controls handled in `answer_actions.rs`).
#[component]
pub fn UserMessage(
    /// Its chat.
    session: Session,
    /// Its id (or client id).
    id: String,
    /// The text.
    text: String,
    /// Its versions, when it has several.
    branch: Option<Branch>,
) -> impl IntoView {
    let key = id.clone();
    let editing = Memo::new(move |_| session.editing.with(|e| e.as_ref() == Some(&key)));
    let actions = {
        let id = id.clone();
        move || {
            let pinned = session.thread.with(|t| t.is_pinned(&id));
            question_actions_html(&id, branch.as_ref(), session.busy.get(), pinned)
        }
    };
    view! {
        <article class="message user" data-testid="message-user" aria-label="You" data-question=id>
            <div inner_html=move || question_html(&text, editing.get())></div>
            <div class="message-actions" hidden=move || editing.get() inner_html=actions></div>
        </article>
    }
}

/// An answer.
#[component]
pub fn AnswerView(
    /// Its key in the thread.
    id: String,
    /// The answer, updated as it streams.
    answer: RwSignal<AnswerState>,
    /// Its chat.
    session: Session,
    /// Whether it is the chat's last message (regenerate and retry apply to it).
    #[prop(into)]
    is_last: Signal<bool>,
    /// Its versions, when it has several.
    branch: Option<Branch>,
) -> impl IntoView {
    let ctx = expect_context::<AppCtx>();
    // What changes the finished pieces: the parts (not their text growing), a markdown block finishing, the status.
    let shape = Memo::new(move |_| {
        answer
            .with(|a| (a.parts_version, a.status, a.markdown.iter().map(|m| m.finished_blocks().len()).sum::<usize>()))
    });
    // The finished pieces are put into the page here, keyed: each is written once, and again only when it changes
    // (a `<For>` of them cost several kilobytes more WebAssembly).
    let body = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |shown: Option<Vec<Shown>>| {
        // Read, not only tracked: a memo nobody reads is never computed, and never changes.
        let _ = shape.get();
        let can_answer = is_last.get();
        let mut shown = shown.unwrap_or_default();
        if let Some(body) = body.get() {
            let pieces = answer.with_untracked(|a| pieces(a, can_answer));
            place(&body, &mut shown, pieces);
        }
        shown
    });
    // The text being written, then the sources (set into the page only when they change: an unchanged
    // `inner_html` is not written again).
    let tail = move || answer.with(|a| a.tail_html().to_owned() + &sources_html(&citations(&a.answer.parts)));
    let feedback = move || {
        answer.with(|a| {
            let id = a.message_id.as_deref()?;
            Some(feedback_html(id, a.feedback.as_ref(), a.feedback_error.as_deref()))
        })
    };
    let status = Memo::new(move |_| answer.with(|a| a.status));
    let has_reasoning = Memo::new(move |_| answer.with(AnswerState::has_reasoning));
    let streaming = move || status.get() == MessageStatus::Streaming;
    let waiting = move || {
        answer.with(|a| {
            if !a.is_streaming() || a.text_len() > 0 {
                return None;
            }
            Some(match &a.waiting {
                Some(TurnState::Queued { position }) => format!("Waiting for the model ({position} ahead)…"),
                Some(TurnState::Loading { progress: Some(percent) }) => {
                    format!("Loading the local model ({percent} %)…")
                }
                Some(TurnState::Loading { progress: None }) => "Loading the local model…".to_owned(),
                Some(TurnState::Retrying { after_secs }) => format!("The model is busy; retrying in {after_secs} s…"),
                // A summary being written says so itself.
                _ if a.answer.parts.iter().filter_map(Summary::of).any(|s| s.is_running()) => String::new(),
                _ if !a.has_reasoning() => "Thinking…".to_owned(),
                _ => String::new(),
            })
        })
    };
    let regenerate = move |_| session.regenerate(ctx.model.get_untracked());
    let pin = move || pin_html(&id, session.thread.with(|t| t.is_pinned(&id)));
    view! {
        <article
            class="message assistant"
            data-testid="message-assistant"
            data-status=move || status.get().as_str()
            aria-label="Assistant"
            aria-busy=move || streaming().to_string()
        >
            <Show when=move || has_reasoning.get()>
                <details class="reasoning" data-testid="reasoning">
                    <summary>{move || if streaming() && answer.with(|a| a.text_len() == 0) { "Thinking…" } else { "Thinking" }}</summary>
                    <div class="reasoning-text">{move || answer.with(AnswerState::reasoning)}</div>
                </details>
            </Show>
            <div class="markdown" data-testid="answer-text">
                <div node_ref=body></div>
                <div class="md-tail" inner_html=tail></div>
            </div>
            <Show when=move || waiting().is_some_and(|w| !w.is_empty())>
                <p class="waiting" data-testid="waiting"><span class="dot-pulse" aria-hidden="true"></span>{waiting}</p>
            </Show>
            {move || match status.get() {
                MessageStatus::Error | MessageStatus::Interrupted => {
                    let text = answer.with(|a| a.error.clone()).unwrap_or_else(|| "The answer failed.".to_owned());
                    view! {
                        <div class="answer-error" role="alert" data-testid="answer-error">
                            <span>{text}</span>
                            <Show when=move || is_last.get()>
                                <button class="button small" data-testid="retry" on:click=regenerate>"Retry"</button>
                            </Show>
                        </div>
                    }
                        .into_any()
                }
                MessageStatus::Stopped => view! { <p class="answer-note" data-testid="stopped">"Stopped"</p> }.into_any(),
                _ => ().into_any(),
            }}
            <Show when=move || !streaming()>
                <div class="answer-actions">
                    {versions(
                        session,
                        answer.with_untracked(|a| a.message_id.clone().unwrap_or_default()),
                        branch.clone(),
                    )}
                    <button
                        class="button subtle small"
                        data-testid="copy-answer"
                        on:click=move |_| copy_text(&answer.with_untracked(AnswerState::text))
                    >
                        "Copy"
                    </button>
                    <span class="feedback-slot" inner_html=feedback></span>
                    <span class="versions-slot" inner_html=pin.clone()></span>
                    <Show when=move || is_last.get() && status.get() != MessageStatus::Error>
                        <button class="button subtle small" data-testid="regenerate" on:click=regenerate>
                            "Regenerate"
                        </button>
                    </Show>
                    <span class="answer-meta">{move || answer.with(|a| a.model.clone())}</span>
                </div>
            </Show>
        </article>
    }
}

/// A piece on the page: its key and element.
type Shown = ((usize, u64), web_sys::Element);

/// Makes the children of `body` the pieces, writing only those whose key changed.
fn place(body: &web_sys::Element, shown: &mut Vec<Shown>, pieces: Vec<Piece>) {
    let count = pieces.len();
    for (at, Piece { key, html }) in pieces.into_iter().enumerate() {
        if shown.get(at).is_some_and(|(old, _)| *old == key) {
            continue;
        }
        let Ok(element) = document().create_element("div") else { continue };
        element.set_class_name("md-block");
        element.set_inner_html(&html);
        match shown.get_mut(at) {
            Some(old) => {
                // A tool card the user opened stays open in its new version (found by its `data-key`).
                while let Ok(Some(opened)) = old.1.query_selector("details[open]") {
                    let _ = opened.remove_attribute("open");
                    let key = opened.get_attribute("data-key").unwrap_or_default();
                    if let Ok(Some(again)) = element.query_selector(&format!("[data-key=\"{key}\"]")) {
                        let _ = again.set_attribute("open", "");
                    }
                }
                let _ = body.replace_child(&element, &old.1);
                *old = (key, element);
            }
            None => {
                let _ = body.append_child(&element);
                shown.push((key, element));
            }
        }
    }
    for (_, gone) in shown.drain(count.min(shown.len())..) {
        gone.remove();
    }
}
