//! The bar above the conversation: menu button (narrow screens), title, the chat's menu (share, export), model
//! picker (agents marked as such), theme, identity.

use leptos::prelude::*;
use shared::ModelKind;

use super::chat_menu::ChatMenu;
use super::icons::{Icon, Svg};
use crate::context::AppCtx;

/// The top bar.
#[component]
pub fn TopBar() -> impl IntoView {
    let ctx = expect_context::<AppCtx>();
    let theme = RwSignal::new(crate::theme::current());
    let title = move || match ctx.route.0.get().chat_id() {
        Some(id) => ctx.sessions.get(id, false).title.get().unwrap_or_default(),
        None => "New chat".to_owned(),
    };
    Effect::new(move |_| {
        let title = title();
        document().set_title(if title.is_empty() { "Chat" } else { &title });
    });
    view! {
        <header class="topbar">
            <button
                class="icon-button menu-button"
                data-testid="toggle-sidebar"
                aria-label="Show chats"
                aria-expanded=move || ctx.sidebar_open.get().to_string()
                on:click=move |_| ctx.sidebar_open.update(|open| *open = !*open)
            >
                <Svg icon=Icon::Menu/>
            </button>
            <h1 class="chat-title" data-testid="chat-title">{title}</h1>
            <ChatMenu/>
            <label class="model-picker">
                <span class="visually-hidden">"Model"</span>
                <select
                    data-testid="model-picker"
                    aria-label="Model"
                    // The full name on hover: a long endpoint name is cut to the picker's width.
                    title=move || {
                        let selected = ctx.model.get();
                        ctx.models.with(|list| {
                            list.as_ref()
                                .and_then(|list| list.models.iter().find(|m| selected.as_deref() == Some(m.id.as_str())))
                                .map(|m| m.display_name.clone())
                                .unwrap_or_default()
                        })
                    }
                    prop:value=move || ctx.model.get().unwrap_or_default()
                    on:change=move |ev| ctx.model.set(Some(event_target_value(&ev)))
                    disabled=move || ctx.models.with(|m| m.as_ref().is_none_or(|m| m.models.is_empty()))
                >
                    {move || {
                        ctx.models
                            .get()
                            .map(|list| {
                                list.models
                                    .into_iter()
                                    .map(|m| {
                                        // The kind is part of the name, so it is seen and read out in the list and
                                        // in the closed picker.
                                        let name = match m.kind {
                                            ModelKind::Agent => format!("{} · Agent", m.display_name),
                                            ModelKind::Model => m.display_name,
                                        };
                                        view! {
                                            <option value=m.id.clone() title=m.description.unwrap_or_default()>
                                                {name}
                                            </option>
                                        }
                                    })
                                    .collect_view()
                            })
                    }}
                </select>
            </label>
            <button
                class="icon-button"
                data-testid="theme-toggle"
                aria-label=move || if theme.get() == "dark" { "Switch to the light theme" } else { "Switch to the dark theme" }
                on:click=move |_| theme.set(crate::theme::toggle())
            >
                {move || view! { <Svg icon=if theme.get() == "dark" { Icon::Sun } else { Icon::Moon }/> }}
            </button>
            <span class="identity" data-testid="identity" title=move || ctx.me.get().map(|m| m.user_id).unwrap_or_default()>
                <span class="avatar" aria-hidden="true">
                    {move || ctx.me.get().and_then(|m| m.user_id.chars().next()).map(String::from)}
                </span>
                <span class="identity-name">{move || ctx.me.get().map(|m| m.email.unwrap_or(m.user_id))}</span>
            </span>
        </header>
    }
}
