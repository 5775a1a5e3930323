//! One chat in the sidebar: open (a search hit on the branch that matched), rename inline, pin, archive, delete with
//! confirmation.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::{ChatSummary, UpdateChatRequest};

use super::icons::{Icon, Svg};
use crate::api;
use crate::context::AppCtx;
use crate::route::Route;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Show,
    Rename,
    ConfirmDelete,
}

/// A chat entry.
#[component]
pub fn ChatItem(
    /// The chat.
    chat: ChatSummary,
) -> impl IntoView {
    let ctx = expect_context::<AppCtx>();
    let id = chat.id;
    let (pinned, archived, hit) = (chat.pinned, chat.archived, chat.matched_message_id);
    let title = chat.title.clone();
    let mode = RwSignal::new(Mode::Show);
    let draft = RwSignal::new(title.clone());
    let error = RwSignal::new(None::<String>);
    let active = move || ctx.route.0.get() == Route::Chat(id);
    let original = StoredValue::new(title.clone());

    let save = move || {
        let new_title = draft.get_untracked().trim().to_owned();
        if new_title.is_empty() || new_title == original.get_value() {
            mode.set(Mode::Show);
            return;
        }
        spawn_local(async move {
            let change = UpdateChatRequest { title: Some(new_title), ..UpdateChatRequest::default() };
            let result = api::update_chat(id, change).await;
            match result {
                Ok(chat) => {
                    ctx.chats.model.update(|m| m.rename(id, &chat.title));
                    ctx.sessions.get(id, false).title.set(Some(chat.title));
                    mode.set(Mode::Show);
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message())),
            }
        });
    };
    let delete = move || {
        spawn_local(async move {
            match api::delete_chat(id).await {
                Ok(()) => {
                    ctx.chats.model.update(|m| m.remove(id));
                    ctx.sessions.forget(id);
                    if ctx.route.0.get_untracked() == Route::Chat(id) {
                        ctx.route.navigate(Route::NewChat, true);
                    }
                }
                Err(e) => {
                    error.set(Some(e.message()));
                    mode.set(Mode::Show);
                }
            }
        });
    };
    // The chat moves to another part of the sidebar: the keyboard follows it, or goes to the archived part.
    let place = move |pin, archive| {
        ctx.chats.place(id, pin, archive);
        request_animation_frame(move || {
            let selector = format!("[data-chat-id=\"{id}\"] .chat-link, .archived summary");
            if let Ok(Some(next)) = document().query_selector(&selector) {
                let _ = wasm_bindgen::JsCast::unchecked_into::<web_sys::HtmlElement>(next).focus();
            }
        });
    };
    view! {
        <li class="chat-item" class:active=active data-testid="chat-item" data-chat-id=id.to_string()>
            {move || match mode.get() {
                Mode::Rename => {
                    view! {
                        <input
                            class="rename-input"
                            data-testid="rename-input"
                            aria-label="Chat title"
                            maxlength="200"
                            prop:value=move || draft.get()
                            on:input=move |ev| draft.set(event_target_value(&ev))
                            on:keydown=move |ev| {
                                match ev.key().as_str() {
                                    "Enter" => save(),
                                    "Escape" => {
                                        draft.set(original.get_value());
                                        mode.set(Mode::Show);
                                    }
                                    _ => {}
                                }
                            }
                            on:blur=move |_| save()
                            autofocus
                        />
                    }
                        .into_any()
                }
                Mode::ConfirmDelete => {
                    view! {
                        <div class="confirm" role="group" aria-label="Delete this chat?">
                            <span>"Delete this chat?"</span>
                            <button class="button danger small" data-testid="confirm-delete" on:click=move |_| delete()>
                                "Delete"
                            </button>
                            <button class="button subtle small" data-testid="cancel-delete" on:click=move |_| mode.set(Mode::Show)>
                                "Cancel"
                            </button>
                        </div>
                    }
                        .into_any()
                }
                Mode::Show => {
                    let title = title.clone();
                    view! {
                        <a
                            class="chat-link"
                            href=format!("/chat/{id}")
                            data-testid="chat-link"
                            aria-current=move || if active() { "page" } else { "false" }
                            on:click=move |ev| {
                                ev.prevent_default();
                                // A message found by search may be on another branch than the active one: show it.
                                if let Some(message) = hit {
                                    ctx.sessions.get(id, false).show_leaf(message);
                                }
                                ctx.open_chat(id);
                            }
                        >
                            {title}
                        </a>
                        <span class="chat-actions">
                            <button
                                class="icon-button small"
                                data-testid="rename-chat"
                                aria-label="Rename chat"
                                title="Rename"
                                on:click=move |_| {
                                    draft.set(original.get_value());
                                    mode.set(Mode::Rename);
                                }
                            >
                                <Svg icon=Icon::Rename/>
                            </button>
                            {(!archived).then(|| {
                                let label = if pinned { "Unpin chat" } else { "Pin chat" };
                                view! {
                                    <button
                                        class="icon-button small"
                                        data-testid="pin-chat"
                                        aria-label=label
                                        title=label
                                        on:click=move |_| place(Some(!pinned), None)
                                    >
                                        <Svg icon=Icon::Pin/>
                                    </button>
                                }
                            })}
                            <button
                                class="icon-button small"
                                data-testid="archive-chat"
                                aria-label=if archived { "Unarchive chat" } else { "Archive chat" }
                                title=if archived { "Unarchive chat" } else { "Archive chat" }
                                on:click=move |_| place(None, Some(!archived))
                            >
                                <Svg icon=Icon::Archive/>
                            </button>
                            <button
                                class="icon-button small"
                                data-testid="delete-chat"
                                aria-label="Delete chat"
                                title="Delete"
                                on:click=move |_| mode.set(Mode::ConfirmDelete)
                            >
                                <Svg icon=Icon::Delete/>
                            </button>
                        </span>
                    }
                        .into_any()
                }
            }}
            <Show when=move || error.get().is_some()>
                <p class="item-error" role="alert">{move || error.get()}</p>
            </Show>
        </li>
    }
}
