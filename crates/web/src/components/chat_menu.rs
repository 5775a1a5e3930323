//! The chat's menu in the top bar: Share… opens a dialog that makes a read-only link to the branch shown (its
//! address shown with Copy) and lists the chat's links with Revoke; Export downloads the chat as Markdown or JSON,
//! of the branch shown or of every version (plain links: the browser downloads the file). The menu is a disclosure
//! (`<details>`: Enter and Space open it), closed by Escape or by leaving it; the dialog is a modal `<dialog>`
//! (Escape closes it, the keyboard stays inside and comes back to the menu). Their HTML is made here as strings and
//! their controls handled by delegated listeners, as inside messages: views per control cost the initial load.

use chrono::{DateTime, Utc};
use leptos::ev::{FocusEvent, KeyboardEvent, MouseEvent};
use leptos::prelude::*;
use leptos::task::spawn_local;
use uuid::Uuid;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlDialogElement, HtmlElement};

use super::copy::copy_text;
use super::icons::Icon;
use super::share_page::local_time;
use crate::api;
use crate::context::AppCtx;
use crate::highlight::escape_html;
use crate::state::sharing::Sharing;

/// The menu of the chat `chat` (its button and, opened, Share… and the four exports) and its share dialog, empty
/// until it is opened.
pub fn menu_html(chat: Uuid) -> String {
    let export = |format: &str, scope: &str, label: &str| {
        format!(
            "<a class=\"menu-item\" href=\"{}\" download data-testid=\"export-{format}-{scope}\">{label}</a>",
            escape_html(&api::export_url(chat, format, scope))
        )
    };
    format!(
        "<details data-testid=\"chat-menu\"><summary class=\"icon-button\" aria-label=\"Chat menu\" \
         title=\"Share or export\" data-testid=\"chat-menu-button\">{}</summary><div class=\"menu\"><button \
         type=\"button\" class=\"menu-item\" data-action=\"share\" data-testid=\"share-chat\">Share…</button>\
         <p class=\"menu-label\">Export</p>{}{}{}{}</div></details><dialog class=\"share-dialog\" \
         aria-labelledby=\"share-title\" data-testid=\"share-dialog\"><div class=\"dialog-body\"></div><p \
         class=\"dialog-status\" \
         role=\"status\" data-testid=\"share-status\"></p><p class=\"dialog-actions\"><button type=\"button\" \
         class=\"button\" data-action=\"close\" data-testid=\"close-dialog\">Close</button></p></dialog>",
        Icon::More.svg(),
        export("markdown", "active", "Markdown, this branch"),
        export("markdown", "all", "Markdown, all versions"),
        export("json", "active", "JSON, this branch"),
        export("json", "all", "JSON, all versions"),
    )
}

/// The share dialog's content above its status line: what a link shows, the link just made with Copy, Create link,
/// and the chat's links with Revoke. `origin` makes the addresses whole; `date` writes when a link was made.
pub fn dialog_html(sharing: &Sharing, origin: &str, date: &dyn Fn(DateTime<Utc>) -> String) -> String {
    let mut html = String::from(
        "<h2 class=\"dialog-title\" id=\"share-title\">Share this chat</h2><p class=\"dialog-note\">A link shows this \
         branch of the chat up to its last message, read-only, to anyone signed in to this app. Nothing written later \
         is shared.</p>",
    );
    if let Some(share) = &sharing.created {
        html.push_str(&format!(
            "<p class=\"share-created\"><input class=\"share-url\" readonly value=\"{}{}\" aria-label=\"Link to share\" \
             data-testid=\"share-url\"><button type=\"button\" class=\"button small\" data-action=\"copy-link\" \
             data-testid=\"copy-link\">Copy</button></p>",
            escape_html(origin),
            escape_html(&share.url),
        ));
    }
    html.push_str(
        "<button type=\"button\" class=\"button primary\" data-action=\"create\" data-testid=\"create-link\">Create \
         link</button><h3 class=\"menu-label\">Links to this chat</h3>",
    );
    match &sharing.links {
        None => html.push_str("<p class=\"list-note\">Loading…</p>"),
        Some(links) if links.is_empty() => {
            html.push_str("<p class=\"list-note\" data-testid=\"no-links\">No links yet.</p>")
        }
        Some(links) => {
            html.push_str("<ul class=\"share-list\" data-testid=\"share-list\">");
            for share in links {
                let address = escape_html(&format!("{origin}{}", share.url));
                html.push_str(&format!(
                    "<li data-testid=\"share-link\"><a href=\"{address}\" target=\"_blank\" rel=\"noopener\">{address}</a>\
                     <span class=\"share-date\">{}</span><button type=\"button\" class=\"button subtle small\" \
                     data-action=\"revoke\" data-share=\"{}\" data-testid=\"revoke-link\">Revoke<span \
                     class=\"visually-hidden\"> {address}</span></button></li>",
                    escape_html(&date(share.created_at)),
                    share.id,
                ));
            }
            html.push_str("</ul>");
        }
    }
    html
}

/// The open chat's menu, with its share dialog (nothing without a chat).
#[component]
pub fn ChatMenu() -> impl IntoView {
    let ctx = expect_context::<AppCtx>();
    let sharing = StoredValue::new(Sharing::default());
    // Changes the dialog's state and draws it (its status line apart, so screen readers hear it change).
    let change = move |root: &Element, apply: &dyn Fn(&mut Sharing)| {
        sharing.update_value(|s| apply(s));
        let origin = window().location().origin().unwrap_or_default();
        sharing.with_value(|s| {
            if let Ok(Some(body)) = root.query_selector(".dialog-body") {
                body.set_inner_html(&dialog_html(s, &origin, &|at| local_time(at, true)));
            }
            if let Ok(Some(status)) = root.query_selector(".dialog-status") {
                status.set_text_content(s.status.as_deref());
            }
        });
    };
    let on_click = move |ev: MouseEvent| {
        let (Some(chat), Some(root)) = (ctx.route.0.get_untracked().chat_id(), ev.current_target()) else { return };
        let root: Element = root.unchecked_into();
        let target: Element = event_target(&ev);
        let dialog = root.query_selector("dialog").ok().flatten().map(JsCast::unchecked_into::<HtmlDialogElement>);
        if target.closest(".menu a").ok().flatten().is_some() {
            // An export: the download goes on, the menu closes.
            close_menu(&root, true);
            return;
        }
        let (Some(button), Some(dialog)) = (target.closest("button[data-action]").ok().flatten(), dialog) else {
            return;
        };
        let action = button.get_attribute("data-action").unwrap_or_default();
        match action.as_str() {
            "share" => {
                close_menu(&root, false);
                change(&root, &|s| *s = Sharing::opening());
                let _ = dialog.show_modal();
                spawn_local(async move {
                    let links = api::shares(chat).await;
                    change(&root, &|s| match &links {
                        Ok(list) => {
                            s.links = Some(list.shares.clone());
                            s.busy = false;
                        }
                        Err(error) => s.failed(error.message()),
                    });
                });
            }
            "close" => {
                dialog.close();
                close_menu(&root, true);
            }
            "copy-link" => {
                let origin = window().location().origin().unwrap_or_default();
                if let Some(url) = sharing.with_value(|s| s.created.as_ref().map(|share| share.url.clone())) {
                    copy_text(&format!("{origin}{url}"));
                    change(&root, &|s| s.status = Some("Link copied.".to_owned()));
                    focus_in(&root, "[data-action=copy-link]");
                }
            }
            _ if sharing.with_value(|s| s.busy) => {}
            "create" => {
                change(&root, &|s| s.busy = true);
                spawn_local(async move {
                    let made = api::create_share(chat).await;
                    change(&root, &|s| match &made {
                        Ok(share) => s.made(share.clone()),
                        Err(error) => s.failed(format!("The link was not created: {}", error.message())),
                    });
                    focus_in(&root, if made.is_ok() { "[data-action=copy-link]" } else { "[data-action=create]" });
                });
            }
            "revoke" => {
                let Some(id) = button.get_attribute("data-share").and_then(|id| Uuid::parse_str(&id).ok()) else {
                    return;
                };
                change(&root, &|s| s.busy = true);
                spawn_local(async move {
                    let revoked = api::revoke_share(id).await;
                    change(&root, &|s| match &revoked {
                        Ok(()) => s.revoked(id),
                        Err(error) => s.failed(format!("The link was not revoked: {}", error.message())),
                    });
                    focus_in(&root, "[data-action=create]");
                });
            }
            _ => {}
        }
    };
    // Escape closes the dialog (instead of the browser, so the keyboard goes back to the menu), else the menu.
    let on_keydown = move |ev: KeyboardEvent| {
        let Some(root) = ev.current_target() else { return };
        let root: Element = root.unchecked_into();
        if ev.key() != "Escape" {
            return;
        }
        let target: Element = event_target(&ev);
        if let Ok(Some(dialog)) = target.closest("dialog") {
            dialog.unchecked_into::<HtmlDialogElement>().close();
        } else if root.query_selector("details[open]").ok().flatten().is_none() {
            return;
        }
        ev.prevent_default();
        close_menu(&root, true);
    };
    // Leaving the menu (tabbing on, clicking elsewhere) closes it.
    let on_focus_out = move |ev: FocusEvent| {
        let to = ev.related_target().map(JsCast::unchecked_into::<web_sys::Node>);
        let menu: Element = event_target(&ev);
        if let Ok(Some(details)) = menu.closest("details")
            && !details.contains(to.as_ref())
        {
            let _ = details.remove_attribute("open");
        }
    };
    view! {
        <div
            class="chat-menu"
            on:click=on_click
            on:keydown=on_keydown
            on:focusout=on_focus_out
            inner_html=move || ctx.route.0.get().chat_id().map(menu_html).unwrap_or_default()
        ></div>
    }
}

/// Closes the menu; with `focus`, the keyboard goes to its button.
fn close_menu(root: &Element, focus: bool) {
    if let Ok(Some(details)) = root.query_selector("details") {
        let _ = details.remove_attribute("open");
    }
    if focus {
        focus_in(root, "summary");
    }
}

fn focus_in(root: &Element, selector: &str) {
    if let Ok(Some(element)) = root.query_selector(selector) {
        let _ = element.unchecked_into::<HtmlElement>().focus();
    }
}

#[cfg(test)]
mod tests {
    use shared::Share;

    use super::*;

    #[test]
    fn the_menu_shares_and_exports_four_ways() {
        let html = menu_html(Uuid::nil());
        assert!(html.contains("aria-label=\"Chat menu\"") && html.contains("data-action=\"share\""), "{html}");
        assert!(html.contains(
            "href=\"/api/chats/00000000-0000-0000-0000-000000000000/export?format=markdown&amp;scope=active\" \
             download data-testid=\"export-markdown-active\">Markdown, this branch</a>"
        ));
        assert_eq!(html.matches(" download ").count(), 4);
        assert!(html.contains(">JSON, all versions</a>"));
    }

    #[test]
    fn the_dialog_shows_the_new_link_to_copy_and_every_link_to_revoke() {
        let date = |_: DateTime<Utc>| "today".to_owned();
        let loading = dialog_html(&Sharing::opening(), "https://x.example", &date);
        assert!(loading.contains("Loading…") && !loading.contains("share-url"), "{loading}");
        let share = Share {
            id: Uuid::from_u128(7),
            chat_id: Uuid::nil(),
            leaf_id: Uuid::nil(),
            url: "/share/s<1>".into(),
            created_at: Utc::now(),
        };
        let mut sharing = Sharing { links: Some(Vec::new()), ..Sharing::default() };
        assert!(dialog_html(&sharing, "https://x.example", &date).contains("No links yet."));
        sharing.made(share.clone());
        let html = dialog_html(&sharing, "https://x.example", &date);
        assert!(html.contains("value=\"https://x.example/share/s&lt;1&gt;\""), "{html}");
        assert!(html.contains("data-action=\"copy-link\""));
        assert!(html.contains(&format!("data-action=\"revoke\" data-share=\"{}\"", share.id)));
        assert!(html.contains("<span class=\"share-date\">today</span>"));
        assert_eq!(html.matches("data-testid=\"share-link\"").count(), 1);
    }
}
