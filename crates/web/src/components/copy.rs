//! Copying to the clipboard, for the copy buttons of answers and code blocks.

use leptos::prelude::*;

/// Copies text to the clipboard (best effort: the browser may refuse without a secure context).
pub fn copy_text(text: &str) {
    let clipboard = window().navigator().clipboard();
    let _ = clipboard.write_text(text);
}
