//! The chat history: new chat, search, chats grouped by recency, infinite scroll.

use leptos::prelude::*;

use super::chat_item::ChatItem;
use crate::context::AppCtx;
use crate::state::chats::grouped;

/// The sidebar.
#[component]
pub fn Sidebar() -> impl IntoView {
    let ctx = expect_context::<AppCtx>();
    let chats = ctx.chats;
    let search_version = StoredValue::new(0u32);
    let on_search = move |ev: leptos::ev::Event| {
        chats.query.set(event_target_value(&ev));
        // Debounce: search when typing pauses.
        let version = search_version.get_value() + 1;
        search_version.set_value(version);
        set_timeout(
            move || {
                if search_version.get_value() == version {
                    chats.reload();
                }
            },
            std::time::Duration::from_millis(250),
        );
    };
    let list = NodeRef::<leptos::html::Nav>::new();
    let on_scroll = move |_| {
        if let Some(list) = list.get()
            && list.scroll_top() + list.client_height() + 200 >= list.scroll_height()
        {
            chats.load_more();
        }
    };
    let groups = move || {
        let now = chrono::DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default();
        let offset = -(js_sys::Date::new_0().get_timezone_offset() as i32);
        chats.model.with(|m| grouped(&m.chats, now, offset))
    };
    view! {
        <aside class="sidebar" aria-label="Chat history" data-testid="sidebar">
            <div class="sidebar-head">
                <span class="brand"><span class="brand-mark" aria-hidden="true"></span>"Chat"</span>
                <button class="button primary" data-testid="new-chat" on:click=move |_| ctx.new_chat()>
                    "New chat"
                </button>
            </div>
            <input
                class="search"
                type="search"
                placeholder="Search chats"
                aria-label="Search chats"
                data-testid="chat-search"
                prop:value=move || chats.query.get()
                on:input=on_search
            />
            <nav class="chat-list" aria-label="Chats" node_ref=list on:scroll=on_scroll data-testid="chat-list">
                {move || {
                    groups()
                        .into_iter()
                        .map(|(group, items)| {
                            view! {
                                <section class="chat-group">
                                    <h2 class="group-label">{group.label()}</h2>
                                    <ul>
                                        {items.into_iter().map(|chat| view! { <ChatItem chat=chat/> }).collect_view()}
                                    </ul>
                                </section>
                            }
                        })
                        .collect_view()
                }}
                <Show when=move || chats.model.with(|m| m.loaded && m.chats.is_empty())>
                    <p class="list-note" data-testid="no-chats">
                        {move || if chats.query.get().trim().is_empty() { "No chats yet." } else { "No chats match." }}
                    </p>
                </Show>
                <Show when=move || chats.model.with(|m| m.next_cursor.is_some())>
                    <button class="button subtle load-more" on:click=move |_| chats.load_more() data-testid="load-more">
                        {move || if chats.loading.get() { "Loading…" } else { "Load more" }}
                    </button>
                </Show>
                <Show when=move || chats.error.get().is_some()>
                    <p class="list-note error" role="alert">{move || chats.error.get()}</p>
                </Show>
            </nav>
        </aside>
    }
}
