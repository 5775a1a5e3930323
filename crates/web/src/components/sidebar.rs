//! The chat history: new chat, search, the pinned chats, the others grouped by recency with infinite scroll, and the
//! archived chats folded at the bottom.

use leptos::prelude::*;

use super::chat_item::ChatItem;
use crate::context::AppCtx;
use crate::state::chats::{ChatList, Section, grouped};

/// The items of the pinned or archived part of the sidebar, with a button for its next page.
fn items(chats: ChatList, section: Section) -> impl IntoView {
    view! {
        <ul>
            {move || {
                let list = chats.model.with(|m| m.get(section).chats.clone());
                list.into_iter().map(|chat| view! { <ChatItem chat=chat/> }).collect_view()
            }}
        </ul>
        <button
            class="button subtle load-more"
            hidden=move || chats.model.with(|m| m.get(section).next_cursor.is_none())
            on:click=move |_| chats.load_more(section)
        >
            "Load more"
        </button>
    }
}

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
            chats.load_more(Section::Listed);
        }
    };
    let groups = move || {
        let now = chrono::DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default();
        let offset = -(js_sys::Date::new_0().get_timezone_offset() as i32);
        chats.model.with(|m| grouped(&m.listed.chats, now, offset))
    };
    let searching = move || chats.model.with(|m| m.searching);
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
                <section
                    class="chat-group"
                    data-testid="pinned"
                    hidden=move || chats.model.with(|m| m.searching || m.pinned.chats.is_empty())
                >
                    <h2 class="group-label">"Pinned"</h2>
                    {items(chats, Section::Pinned)}
                </section>
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
                <Show when=move || {
                    chats.model.with(|m| m.listed.loaded && m.listed.chats.is_empty() && m.pinned.chats.is_empty())
                }>
                    <p class="list-note" data-testid="no-chats">
                        {move || if searching() { "No chats match." } else { "No chats yet." }}
                    </p>
                </Show>
                <Show when=move || chats.model.with(|m| m.listed.next_cursor.is_some())>
                    <button
                        class="button subtle load-more"
                        on:click=move |_| chats.load_more(Section::Listed)
                        data-testid="load-more"
                    >
                        {move || if chats.loading.get() { "Loading…" } else { "Load more" }}
                    </button>
                </Show>
                <Show when=move || chats.error.get().is_some()>
                    <p class="list-note error" role="alert" data-testid="chats-error">{move || chats.error.get()}</p>
                </Show>
                <details
                    class="chat-group archived"
                    data-testid="archived"
                    hidden=searching
                    on:toggle=move |ev| {
                        if event_target::<web_sys::Element>(&ev).has_attribute("open") {
                            chats.load_archived();
                        }
                    }
                >
                    <summary class="group-label">"Archived"</summary>
                    {items(chats, Section::Archived)}
                    <p
                        class="list-note"
                        hidden=move || chats.model.with(|m| !m.archived.loaded || !m.archived.chats.is_empty())
                    >
                        "No archived chats."
                    </p>
                </details>
            </nav>
        </aside>
    }
}
