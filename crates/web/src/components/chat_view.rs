//! The conversation pane: the message list (auto-scrolling while the user is at the bottom), the empty state for
//! a new chat, and the composer with the context gauge.

use leptos::prelude::*;
use uuid::Uuid;

use super::answer_actions;
use super::composer::Composer;
use super::context_gauge::ContextGauge;
use super::empty_state::EmptyState;
use super::icons::{Icon, Svg};
use super::message::{AnswerView, UserMessage};
use super::tools_menu::ToolsMenu;
use crate::context::AppCtx;
use crate::route::Route;
use crate::state::session::{Entry, Session};

/// How close to the bottom (px) still counts as "at the bottom" for auto-scroll.
const PIN_THRESHOLD: i32 = 80;

/// The conversation for a route: an empty new chat, or a chat's session.
#[component]
pub fn ChatView(
    /// Where the app is.
    route: Route,
) -> impl IntoView {
    let ctx = expect_context::<AppCtx>();
    let session: Option<Session> = route.chat_id().map(|id| ctx.sessions.get(id, true));
    // An opened chat goes on with the model or agent it last spoke to (when it is still offered), not the default.
    if let Some(session) = session {
        Effect::new(move |_| {
            let Some(model) = session.model.get() else { return };
            let offered =
                ctx.models.with_untracked(|list| list.as_ref().is_some_and(|l| l.models.iter().any(|m| m.id == model)));
            if offered {
                ctx.model.set(Some(model));
            }
        });
    }
    // A new chat's choice of tool sources, until its first message creates it.
    let new_tools = RwSignal::new(None::<Vec<String>>);
    let tools = session.map_or(new_tools, |session| session.tools);
    let send = Callback::new(move |text: String| {
        let model = ctx.model.get_untracked();
        match session {
            Some(session) => session.send(text, model),
            None => {
                // The chat is created by its first message; its id is chosen here so the URL can change at once.
                let id = Uuid::new_v4();
                let session = ctx.sessions.get(id, false);
                session.tools.set(new_tools.get_untracked());
                ctx.route.navigate(Route::Chat(id), false);
                session.send(text, model);
            }
        }
    });
    let busy = Signal::derive(move || session.is_some_and(|s| s.busy.get()));
    let stop = Callback::new(move |()| {
        if let Some(session) = session {
            session.stop();
        }
    });
    view! {
        {match session {
            None => view! { <EmptyState on_pick=send/> }.into_any(),
            Some(session) => view! { <Messages session=session/> }.into_any(),
        }}
        <div class="composer-bar">
            <ToolsMenu session=session chosen=tools/>
            <ContextGauge session=session/>
        </div>
        <Composer on_send=send on_stop=stop busy=busy/>
    }
}

/// The messages of a chat.
#[component]
fn Messages(
    /// The chat.
    session: Session,
) -> impl IntoView {
    let ctx = expect_context::<AppCtx>();
    let list = NodeRef::<leptos::html::Div>::new();
    let pinned = RwSignal::new(true);
    let on_scroll = move |_| {
        if let Some(list) = list.get() {
            pinned.set(list.scroll_height() - list.scroll_top() - list.client_height() < PIN_THRESHOLD);
        }
    };
    let scroll_to_bottom = move || {
        if let Some(list) = list.get() {
            list.set_scroll_top(list.scroll_height());
        }
    };
    // Follow the answer as it grows, unless the user scrolled up to read.
    Effect::new(move |_| {
        let size = session.thread.with(|thread| {
            let entries = thread.entries();
            let last = entries.last().map(|entry| match entry {
                Entry::Assistant { answer, .. } => {
                    answer.with(|a| a.text_len() + a.parts_version as usize + a.last_event as usize)
                }
                Entry::User { text, .. } => text.len(),
            });
            (entries.len(), last)
        });
        if pinned.get_untracked() {
            request_animation_frame(scroll_to_bottom);
        }
        size
    });
    let last_key = Memo::new(move |_| session.thread.with(|thread| thread.last_key()));
    view! {
        <div class="messages-wrap">
            <div
                class="messages"
                node_ref=list
                on:scroll=on_scroll
                // The controls inside messages' HTML (copy code, tool cards, approvals, votes, versions, edits),
                // delegated.
                on:click=move |ev| answer_actions::on_click(session, ctx.model, &ev)
                on:keydown=move |ev| answer_actions::on_keydown(&ev)
                on:input=move |ev| answer_actions::on_input(&ev)
                data-testid="messages"
                role="log"
                aria-live="polite"
                aria-label="Conversation"
            >
                <div class="messages-inner">
                    <Show when=move || session.thread.with(|thread| thread.older().is_some())>
                        <button class="button subtle load-older" on:click=move |_| session.load_older()>
                            "Load earlier messages"
                        </button>
                    </Show>
                    <Show when=move || session.loading.get() && session.thread.with(|thread| thread.is_empty())>
                        <p class="list-note" data-testid="loading">"Loading…"</p>
                    </Show>
                    <Show when=move || session.load_error.get().is_some()>
                        <div class="load-error" role="alert" data-testid="load-error">
                            <p>{move || session.load_error.get()}</p>
                            <button class="button" on:click=move |_| ctx.new_chat()>"Start a new chat"</button>
                        </div>
                    </Show>
                    <For
                        each=move || session.thread.with(|thread| thread.entries().to_vec())
                        key=Entry::view_key
                        let:entry
                    >
                        {match entry {
                            Entry::User { key, text, branch } => {
                                view! { <UserMessage session=session id=key text=text branch=branch/> }.into_any()
                            }
                            Entry::Assistant { key, answer, branch } => {
                                let shown = key.clone();
                                let is_last = Signal::derive(move || last_key.get().as_deref() == Some(shown.as_str()));
                                view! { <AnswerView id=key answer=answer session=session is_last=is_last branch=branch/> }
                                    .into_any()
                            }
                        }}
                    </For>
                    <Show when=move || session.notice.get().is_some()>
                        <p class="notice" role="status">{move || session.notice.get()}</p>
                    </Show>
                </div>
            </div>
            <Show when=move || !pinned.get()>
                <button
                    class="jump-to-bottom"
                    data-testid="jump-to-bottom"
                    aria-label="Jump to the latest message"
                    on:click=move |_| {
                        pinned.set(true);
                        scroll_to_bottom();
                    }
                >
                    <Svg icon=Icon::Down/>
                </button>
            </Show>
        </div>
    }
}
