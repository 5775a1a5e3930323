//! The places the app can be: a new chat (`/`), a chat (`/chat/{id}`) or a chat someone shared (`/share/{id}`),
//! kept in sync with the URL.

use leptos::prelude::*;
use uuid::Uuid;

/// Where the app is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The empty state, ready for a first message.
    NewChat,
    /// One chat.
    Chat(Uuid),
    /// A shared link: someone's chat, read-only.
    Share(Uuid),
}

impl Route {
    /// Parses a location path.
    pub fn parse(path: &str) -> Self {
        let id = |prefix| path.strip_prefix(prefix).and_then(|id| Uuid::parse_str(id.trim_end_matches('/')).ok());
        match (id("/chat/"), id("/share/")) {
            (Some(id), _) => Route::Chat(id),
            (_, Some(id)) => Route::Share(id),
            _ => Route::NewChat,
        }
    }

    /// Where the address bar says the app is.
    pub fn current() -> Self {
        Route::parse(&window().location().pathname().unwrap_or_default())
    }

    /// The location path.
    pub fn path(self) -> String {
        match self {
            Route::NewChat => "/".to_owned(),
            Route::Chat(id) => format!("/chat/{id}"),
            Route::Share(id) => format!("/share/{id}"),
        }
    }

    /// The id of the caller's chat shown, if any.
    pub fn chat_id(self) -> Option<Uuid> {
        match self {
            Route::Chat(id) => Some(id),
            Route::NewChat | Route::Share(_) => None,
        }
    }

    /// The shared link shown, if any.
    pub fn share_id(self) -> Option<Uuid> {
        match self {
            Route::Share(id) => Some(id),
            _ => None,
        }
    }
}

/// The current route as a signal, updated by [`navigate`] and by the browser's back/forward buttons.
#[derive(Clone, Copy)]
pub struct CurrentRoute(pub RwSignal<Route>);

impl CurrentRoute {
    /// Reads the route from the address bar and follows back/forward navigation.
    pub fn install() -> Self {
        let current = RwSignal::new(Route::current());
        let handle = window_event_listener(leptos::ev::popstate, move |_| current.set(Route::current()));
        // The listener lives as long as the page.
        std::mem::forget(handle);
        CurrentRoute(current)
    }

    /// Goes to a route, adding a history entry (or replacing the current one).
    pub fn navigate(self, route: Route, replace: bool) {
        if self.0.get_untracked() == route {
            return;
        }
        if let Ok(history) = window().history() {
            let path = route.path();
            let _ = if replace {
                history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path))
            } else {
                history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path))
            };
        }
        self.0.set(route);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let id = Uuid::nil();
        assert_eq!(Route::parse(&Route::Chat(id).path()), Route::Chat(id));
        assert_eq!(Route::parse("/"), Route::NewChat);
        assert_eq!(Route::parse("/chat/not-a-uuid"), Route::NewChat);
        assert_eq!(Route::parse("/chat/00000000-0000-0000-0000-000000000000/"), Route::Chat(id));
        assert_eq!(Route::parse(&Route::Share(id).path()), Route::Share(id));
        assert_eq!(Route::parse("/share/nope"), Route::NewChat);
        assert_eq!((Route::Share(id).chat_id(), Route::Share(id).share_id()), (None, Some(id)));
        assert_eq!(Route::Chat(id).share_id(), None);
    }
}
