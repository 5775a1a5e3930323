//! The application root: shared state (contexts), the layout and the two views (new chat, chat).

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::{AppConfig, Me, ModelList};
use uuid::Uuid;

use crate::api;
use crate::components::chat_view::ChatView;
use crate::components::sidebar::Sidebar;
use crate::components::topbar::TopBar;
use crate::route::{CurrentRoute, Route};
use crate::state::chats::ChatList;
use crate::state::session::{SessionDeps, Sessions};

/// Everything the components share.
#[derive(Clone, Copy)]
pub struct AppCtx {
    /// Where the app is.
    pub route: CurrentRoute,
    /// The sidebar's chats.
    pub chats: ChatList,
    /// Open chats.
    pub sessions: Sessions,
    /// Models offered by the server.
    pub models: RwSignal<Option<ModelList>>,
    /// The model picked for the next message.
    pub model: RwSignal<Option<String>>,
    /// Who is signed in.
    pub me: RwSignal<Option<Me>>,
    /// Greeting and suggestions.
    pub config: RwSignal<Option<AppConfig>>,
    /// The sidebar is shown on a narrow screen.
    pub sidebar_open: RwSignal<bool>,
    /// A message for the whole app (e.g. the server cannot be reached).
    pub banner: RwSignal<Option<String>>,
}

impl AppCtx {
    /// Goes to a new, empty chat.
    pub fn new_chat(self) {
        self.route.navigate(Route::NewChat, false);
        self.sidebar_open.set(false);
    }

    /// Opens a chat.
    pub fn open_chat(self, id: Uuid) {
        self.route.navigate(Route::Chat(id), false);
        self.sidebar_open.set(false);
    }
}

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
        let (me, config, models) = futures::join!(
            api::get::<Me>("/api/me"),
            api::get::<AppConfig>("/api/config"),
            api::get::<ModelList>("/api/models")
        );
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
