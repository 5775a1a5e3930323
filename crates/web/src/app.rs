//! The application root: provides the shared state ([`AppCtx`]), loads who is signed in and what the server offers,
//! and lays out the sidebar and the conversation.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::components::chat_view::ChatView;
use crate::components::sidebar::Sidebar;
use crate::components::topbar::TopBar;
use crate::context::AppCtx;
use crate::route::CurrentRoute;
use crate::state::chats::ChatList;
use crate::state::session::{SessionDeps, Sessions};

/// The application.
#[component]
pub fn App() -> impl IntoView {
    crate::theme::apply_saved_theme();
    let chats = ChatList::new();
    let ctx = AppCtx {
        route: CurrentRoute::install(),
        chats,
        sessions: Sessions::new(SessionDeps { chat_list: chats }),
        models: RwSignal::new(None),
        model: RwSignal::new(None),
        me: RwSignal::new(None),
        config: RwSignal::new(None),
        sidebar_open: RwSignal::new(false),
        banner: RwSignal::new(None),
    };
    provide_context(ctx);
    chats.reload();
    spawn_local(async move {
        let (me, config, models) = futures::join!(api::me(), api::config(), api::models());
        match me {
            Ok(me) => ctx.me.set(Some(me)),
            Err(error) => ctx.banner.set(Some(error.message())),
        }
        ctx.config.set(config.ok());
        if let Ok(models) = models {
            ctx.model.set(models.default_model.clone());
            ctx.models.set(Some(models));
        }
    });
    // Ctrl/Cmd+Shift+O: new chat, as in ChatGPT.
    let shortcut = window_event_listener(leptos::ev::keydown, move |ev| {
        if (ev.ctrl_key() || ev.meta_key()) && ev.shift_key() && ev.key().eq_ignore_ascii_case("o") {
            ev.prevent_default();
            ctx.new_chat();
        }
    });
    on_cleanup(move || shortcut.remove());

    view! {
        <a class="skip-link" href="#composer-input">"Skip to the message box"</a>
        <div class="app" class:sidebar-open=move || ctx.sidebar_open.get()>
            <Sidebar/>
            <div class="scrim" on:click=move |_| ctx.sidebar_open.set(false) aria-hidden="true"></div>
            <main class="main" id="main">
                <TopBar/>
                <Show when=move || ctx.banner.get().is_some()>
                    <div class="banner" role="alert">{move || ctx.banner.get()}</div>
                </Show>
                {move || {
                    let route = ctx.route.0.get();
                    view! { <ChatView route=route/> }
                }}
            </main>
        </div>
    }
}
