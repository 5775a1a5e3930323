//! Small inline SVG icons (no icon font or emoji: they render the same everywhere, in the text colour).

use leptos::prelude::*;

/// Which icon.
#[derive(Clone, Copy)]
pub enum Icon {
    /// Three lines.
    Menu,
    /// Pencil.
    Rename,
    /// Bin.
    Delete,
    /// Sun.
    Sun,
    /// Moon.
    Moon,
    /// Arrow up.
    Send,
    /// Square.
    Stop,
    /// Arrow down.
    Down,
    /// Tick.
    Check,
    /// Cross.
    Cross,
    /// Thumb up (flipped by CSS for thumb down).
    Thumb,
    /// Chevron to the left (mirrored by CSS for the right).
    Back,
    /// Pin.
    Pin,
    /// Box.
    Archive,
    /// Three dots.
    More,
}

impl Icon {
    fn path(self) -> &'static str {
        match self {
            Icon::Menu => "M4 6h16M4 12h16M4 18h16",
            Icon::Rename => "M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4",
            Icon::Delete => "M5 7h14M10 7V5h4v2M7 7l1 12h8l1-12M10 11v5M14 11v5",
            Icon::Sun => {
                "M12 4V2M12 22v-2M4 12H2M22 12h-2M5.6 5.6 4.2 4.2M19.8 19.8l-1.4-1.4M5.6 18.4l-1.4 1.4M19.8 4.2l-1.4 1.4M12 16a4 4 0 1 0 0-8 4 4 0 0 0 0 8z"
            }
            Icon::Moon => "M20 14.5A8 8 0 0 1 9.5 4 8 8 0 1 0 20 14.5z",
            Icon::Send => "M12 19V5M6 11l6-6 6 6",
            Icon::Stop => "M7 7h10v10H7z",
            Icon::Down => "M12 5v14M6 13l6 6 6-6",
            Icon::Check => "M5 12l5 5L20 7",
            Icon::Cross => "M6 6l12 12M18 6 6 18",
            Icon::Thumb => {
                "M7 11v10H3V11h4zm0 0 4-8c1.6 0 2.6 1.2 2.2 2.8L12.6 9H19a2 2 0 0 1 2 2.3l-1.2 7.4A2 2 0 0 1 17.8 21H7"
            }
            Icon::Back => "M15 6l-6 6 6 6",
            Icon::Pin => "M9 3h6l-1 7 4 4H6l4-4-1-7zM12 14v7",
            Icon::Archive => "M3 4h18v4H3zM5 8v12h14V8M10 12h4",
            Icon::More => "M5 12h.01M12 12h.01M19 12h.01",
        }
    }
}

impl Icon {
    /// The icon as markup, for HTML made as a string (the same as [`Svg`] draws).
    pub fn svg(self) -> String {
        format!(
            "<svg class=\"icon\" viewBox=\"0 0 24 24\" aria-hidden=\"true\"><path d=\"{}\"></path></svg>",
            self.path()
        )
    }
}

/// An icon, hidden from screen readers (its button carries the label).
#[component]
pub fn Svg(
    /// The icon.
    icon: Icon,
) -> impl IntoView {
    view! {
        // Size and stroke come from the `.icon` style (fewer attributes are less code for every icon).
        <svg class="icon" viewBox="0 0 24 24" aria-hidden="true">
            <path d=icon.path()></path>
        </svg>
    }
}
