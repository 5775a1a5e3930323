//! Light and dark themes: follow the operating system unless the user picked one (remembered locally).

use leptos::prelude::*;

const KEY: &str = "theme";

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

/// The theme in effect: the saved choice, else the system's.
pub fn current() -> &'static str {
    match storage().and_then(|s| s.get_item(KEY).ok().flatten()).as_deref() {
        Some("dark") => "dark",
        Some("light") => "light",
        _ => {
            let dark = window().match_media("(prefers-color-scheme: dark)").ok().flatten().is_some_and(|m| m.matches());
            if dark { "dark" } else { "light" }
        }
    }
}

fn set_attribute(theme: &str) {
    if let Some(root) = document().document_element() {
        let _ = root.set_attribute("data-theme", theme);
    }
}

/// Applies the theme at start.
pub fn apply_saved_theme() {
    set_attribute(current());
}

/// Switches between light and dark and remembers the choice.
pub fn toggle() -> &'static str {
    let next = if current() == "dark" { "light" } else { "dark" };
    if let Some(storage) = storage() {
        let _ = storage.set_item(KEY, next);
    }
    set_attribute(next);
    next
}
