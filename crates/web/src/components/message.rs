//! A message bubble: the user's text, or an answer with its reasoning, streamed markdown, status and actions.

use leptos::prelude::*;
use shared::{MessageStatus, TurnState};

use super::copy::copy_text;
use crate::context::AppCtx;
use crate::state::answer::AnswerState;
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
    let finished = Memo::new(move |_| answer.with(|a| a.markdown.finished_blocks().len()));
    let status = Memo::new(move |_| answer.with(|a| a.status));
    let has_reasoning = Memo::new(move |_| answer.with(AnswerState::has_reasoning));
    let streaming = move || status.get() == MessageStatus::Streaming;
    let waiting = move || {
        answer.with(|a| {
            if !a.is_streaming() || !a.text().is_empty() {
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
                    <summary>{move || if streaming() && answer.with(|a| a.text().is_empty()) { "Thinking…" } else { "Thinking" }}</summary>
                    <div class="reasoning-text">{move || answer.with(AnswerState::reasoning)}</div>
                </details>
            </Show>
            <div class="markdown" data-testid="answer-text">
                <For each=move || 0..finished.get() key=|index| *index let:index>
                    <div
                        class="md-block"
                        inner_html=answer.with_untracked(|a| a.markdown.finished_blocks().get(index).cloned().unwrap_or_default())
                    ></div>
                </For>
                <div class="md-tail" inner_html=move || answer.with(|a| a.markdown.tail_html().to_owned())></div>
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
                        on:click=move |_| copy_text(&answer.with_untracked(|a| a.text().to_owned()))
                    >
                        "Copy"
                    </button>
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
