//! What every component shares, provided once by the app root: where the app is, the sidebar's chats, the open
//! chats, the models, who is signed in, and app-wide notices.

use leptos::prelude::*;
use shared::{AppConfig, Me, ModelList};
use uuid::Uuid;

use crate::route::{CurrentRoute, Route};
use crate::state::chats::ChatList;
use crate::state::session::Sessions;

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
