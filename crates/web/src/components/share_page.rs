//! A chat someone shared (`/share/{id}`), for any signed-in user: its title, who shared it and when, its messages
//! read-only (drawn as in a chat, without controls), and "Continue in my chats", which copies it into a new chat of
//! the viewer and opens it there. A revoked or unknown link says so.
//!
//! The page is a page of its own, without the sidebar (`main.rs` mounts it instead of the app), made as one piece
//! of HTML once the chat has arrived; its few controls work through one delegated listener.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::SharedChat;
use uuid::Uuid;
use wasm_bindgen::JsValue;

use super::answer_actions::on_read_click;
use super::answer_html::{full_text, shared_html};
use crate::api::{self, ApiError};
use crate::highlight::escape_html;
use crate::route::Route;

/// What a link that leads nowhere shows.
const NOT_FOUND: &str = "This link was revoked or never existed.";

/// A time in the reader's language and zone ("7 Dec 2026"), with the time of day when `with_time`.
pub fn local_time(at: DateTime<Utc>, with_time: bool) -> String {
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&options, &"dateStyle".into(), &"medium".into());
    if with_time {
        let _ = js_sys::Reflect::set(&options, &"timeStyle".into(), &"short".into());
    }
    let date = js_sys::Date::new(&JsValue::from_f64(at.timestamp_millis() as f64));
    let language = window().navigator().language().unwrap_or_else(|| "en".to_owned());
    date.to_locale_string(&language, &options).into()
}

/// The page of a shared chat: its title, who shared it and when (`date`), "Continue in my chats", a line for what
/// went wrong (hidden), and the messages.
pub fn page_html(chat: &SharedChat, date: &str) -> String {
    format!(
        "<header class=\"topbar\"><div class=\"share-heading\"><h1 class=\"chat-title\" data-testid=\"chat-title\">{}</h1>\
         <p class=\"share-meta\" data-testid=\"share-meta\">Shared by {} · {}</p></div><button type=\"button\" \
         class=\"button primary\" data-action=\"continue\" data-testid=\"continue-chat\">Continue in my chats</button>\
         </header><p class=\"banner\" role=\"alert\" hidden></p><div class=\"messages\"><div class=\"messages-inner\" \
         data-testid=\"messages\" role=\"region\" aria-label=\"Conversation\">{}</div></div>",
        escape_html(&chat.title),
        escape_html(&chat.owner_name),
        escape_html(date),
        shared_html(&chat.messages),
    )
}

/// The page of a shared link.
#[component]
pub fn SharePage(
    /// The link's id.
    id: Uuid,
) -> impl IntoView {
    crate::theme::apply_saved_theme();
    // `None` while loading; the chat, or why it cannot be shown.
    let shared = RwSignal::new(None::<Result<SharedChat, String>>);
    spawn_local(async move {
        let result = api::shared_chat(id).await.map_err(|e| match e {
            ApiError::Api { status: 404, .. } => NOT_FOUND.to_owned(),
            other => other.message(),
        });
        if let Ok(chat) = &result {
            document().set_title(&chat.title);
        }
        shared.set(Some(result));
    });
    let html = move || {
        shared.with(|s| match s {
            None => "<p class=\"list-note\" data-testid=\"loading\">Loading…</p>".to_owned(),
            Some(Ok(chat)) => page_html(chat, &local_time(chat.shared_at, false)),
            Some(Err(why)) => format!(
                "<div class=\"load-error\" role=\"alert\" data-testid=\"share-not-found\"><h1 class=\"chat-title\">{}</h1>\
                 <p><a class=\"button\" href=\"/\">Go to my chats</a></p></div>",
                escape_html(why)
            ),
        })
    };
    // "Show all" in a tool card: the whole text, from the message.
    let full = move |message: &str, call: &str, label: &str| {
        shared.with_untracked(|s| {
            let chat = s.as_ref()?.as_ref().ok()?;
            let message = chat.messages.iter().find(|m| m.id.to_string() == message)?;
            full_text(&message.parts, call, label)
        })
    };
    // "Continue in my chats": the copy opens in the app (a page load: the app starts with its sidebar).
    let on_click = move |ev: leptos::ev::MouseEvent| {
        let Some(button) = on_read_click(&ev, full) else { return };
        if button.has_attribute("disabled") {
            return;
        }
        let _ = button.set_attribute("disabled", "");
        spawn_local(async move {
            match api::copy_share(id).await {
                Ok(chat) => {
                    let _ = window().location().assign(&Route::Chat(chat.id).path());
                }
                Err(why) => {
                    let _ = button.remove_attribute("disabled");
                    if let Ok(Some(banner)) = document().query_selector(".share-page .banner") {
                        banner.set_text_content(Some(&format!("The chat was not copied: {}", why.message())));
                        let _ = banner.remove_attribute("hidden");
                    }
                }
            }
        });
    };
    view! { <main class="main share-page" id="main" data-testid="share-page" on:click=on_click inner_html=html></main> }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use shared::UiMessage;

    use super::*;

    fn message(id: u128, role: &str, parts: serde_json::Value) -> UiMessage {
        serde_json::from_value(json!({
            "id": Uuid::from_u128(id), "role": role, "parts": parts,
            "metadata": {"status": "complete", "created_at": Utc::now(), "seq": id},
        }))
        .expect("a message")
    }

    #[test]
    fn the_page_names_the_chat_who_shared_it_and_shows_the_messages_without_controls() {
        let chat = SharedChat {
            id: Uuid::nil(),
            title: "Plans <b>".into(),
            owner_name: "Ann & Bo".into(),
            shared_at: Utc::now(),
            messages: vec![
                message(1, "user", json!([{"type": "text", "text": "Hi <there>"}])),
                message(
                    2,
                    "assistant",
                    json!([
                        {"type": "reasoning", "text": "hmm"},
                        {"type": "text", "text": "**Hello**"},
                        {"type": "source-url", "sourceId": "s", "url": "https://a.example/x"},
                    ]),
                ),
            ],
        };
        let html = page_html(&chat, "7 Dec 2026");
        assert!(html.contains(">Plans &lt;b&gt;</h1>"), "{html}");
        assert!(html.contains(">Shared by Ann &amp; Bo · 7 Dec 2026</p>"));
        assert!(html.contains("<div class=\"bubble\">Hi &lt;there&gt;</div>"));
        assert!(html.contains("<strong>Hello</strong>") && html.contains("<summary>Thinking</summary>"));
        assert!(html.contains("data-testid=\"sources\""));
        assert_eq!(html.matches("data-action=").count(), 1, "only Continue: {html}");
        assert_eq!(html.matches("data-testid=\"message-").count(), 2);
    }
}
