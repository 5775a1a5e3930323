//! The chat's sources of tools (the user's records, MCP servers): a small menu by the composer, shown when the
//! picked model can use tools, to turn each source on or off for this chat. A source that cannot be reached says so.
//!
//! The checkboxes are written as HTML and their changes read by one delegated listener, like the controls inside
//! answers: a keyed list of components would cost the initial load several kilobytes for a handful of boxes.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::context::AppCtx;
use crate::highlight::escape_html;
use crate::state::session::{Session, toggled};

/// The menu; `chosen` is the open chat's choice, or the one a new chat will take with its first message.
#[component]
pub fn ToolsMenu(
    /// The open chat, if it exists yet.
    session: Option<Session>,
    /// The choice (`None`: every source).
    chosen: RwSignal<Option<Vec<String>>>,
) -> impl IntoView {
    let ctx = expect_context::<AppCtx>();
    let sources = move || ctx.config.with(|c| c.as_ref().map(|c| c.tools.clone()).unwrap_or_default());
    let hidden = move || {
        let model = ctx.model.get();
        let usable = ctx.models.with(|list| {
            list.as_ref().is_some_and(|l| l.models.iter().any(|m| m.tools && Some(&m.id) == model.as_ref()))
        });
        !usable || sources().is_empty()
    };
    let html = move || {
        let all = sources();
        chosen.with(|chosen| {
            let on = |name: &str| chosen.as_ref().is_none_or(|list| list.iter().any(|n| n == name));
            let mut html = format!("<summary>Tools {}/{}</summary>", all.iter().filter(|s| on(&s.name)).count(), all.len());
            for source in &all {
                let name = escape_html(&source.name);
                html.push_str(&format!(
                    "<label title=\"{}\"><input type=\"checkbox\" data-testid=\"tool-source\" data-source=\"{name}\"{}> \
                     {name}{}</label>",
                    escape_html(source.problem.as_deref().unwrap_or_default()),
                    if on(&source.name) { " checked" } else { "" },
                    if source.problem.is_some() { " (unavailable)" } else { "" },
                ));
            }
            html
        })
    };
    let on_change = move |ev: web_sys::Event| {
        let Some(name) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|e| e.get_attribute("data-source"))
        else {
            return;
        };
        let all: Vec<String> = sources().into_iter().map(|s| s.name).collect();
        let next = chosen.with_untracked(|c| toggled(c.as_deref(), &name, &all));
        match session {
            Some(session) => session.set_tools(next),
            None => chosen.set(Some(next)),
        }
    };
    view! { <details class="tools-menu" data-testid="tools-menu" hidden=hidden on:change=on_change inner_html=html></details> }
}
