//! A message bubble: the user's text, or an answer with its reasoning, its body (streamed markdown, tool calls,
//! the agents that took over, approval requests; see `answer_html.rs`), its sources, status, actions and vote.

use leptos::prelude::*;
use shared::{MessageStatus, TurnState};

use super::answer_html::{Piece, feedback_html, pieces, sources_html};
use super::copy::copy_text;
use crate::context::AppCtx;
use crate::state::answer::AnswerState;
use crate::state::layout::citations;
use crate::state::session::Session;

/// What the user wrote (plain text: the user's own words are never interpreted as markup).
#[component]
pub fn UserMessage(
    /// The text.
    text: String,
) -> impl IntoView {
    view! {
        <article class="message user" data-testid="message-user" aria-label="You">
            <div class="bubble">{text}</div>
        </article>
    }
}

/// An answer.
#[component]
pub fn AnswerView(
    /// The answer, updated as it streams.
    answer: RwSignal<AnswerState>,
    /// Its chat.
    session: Session,
    /// Whether it is the chat's last message (regenerate and retry apply to it).
    #[prop(into)]
    is_last: Signal<bool>,
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
                _ if !a.has_reasoning() => "Thinking…".to_owned(),
                _ => String::new(),
            })
        })
    };
    let regenerate = move |_| session.regenerate(ctx.model.get_untracked());
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
                    <button
                        class="button subtle small"
                        data-testid="copy-answer"
                        on:click=move |_| copy_text(&answer.with_untracked(AnswerState::text))
                    >
                        "Copy"
                    </button>
                    <span class="feedback-slot" inner_html=feedback></span>
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
