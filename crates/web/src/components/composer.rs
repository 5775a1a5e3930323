//! The message box: multi-line, Enter sends, Shift+Enter adds a line; Stop while an answer streams.

use leptos::prelude::*;

use super::icons::{Icon, Svg};

/// The composer.
#[component]
pub fn Composer(
    /// Called with the text to send.
    on_send: Callback<String>,
    /// Called when the user stops the answer.
    on_stop: Callback<()>,
    /// Whether an answer is streaming.
    #[prop(into)]
    busy: Signal<bool>,
) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let input = NodeRef::<leptos::html::Textarea>::new();
    let can_send = move || !busy.get() && !text.with(|t| t.trim().is_empty());
    let send = move || {
        if !can_send() {
            return;
        }
        let message = text.get_untracked();
        text.set(String::new());
        on_send.run(message);
    };
    // Grow with the text, up to a limit set in CSS.
    Effect::new(move |_| {
        text.track();
        if let Some(input) = input.get() {
            let style = web_sys::HtmlElement::style(&input);
            let _ = style.set_property("height", "auto");
            let _ = style.set_property("height", &format!("{}px", input.scroll_height()));
        }
    });
    Effect::new(move |_| {
        if let Some(input) = input.get() {
            let _ = input.focus();
        }
    });
    view! {
        <form
            class="composer"
            data-testid="composer"
            on:submit=move |ev| {
                ev.prevent_default();
                send();
            }
        >
            <label class="visually-hidden" for="composer-input">"Message"</label>
            <textarea
                id="composer-input"
                node_ref=input
                rows="1"
                placeholder="Send a message"
                data-testid="composer-input"
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
                on:keydown=move |ev| {
                    // Enter sends; Shift+Enter adds a line; Enter while composing (IME) is part of the input.
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        send();
                    }
                }
            ></textarea>
            {move || {
                if busy.get() {
                    view! {
                        <button type="button" class="send stop" data-testid="stop" aria-label="Stop the answer" on:click=move |_| on_stop.run(())>
                            <Svg icon=Icon::Stop/>
                        </button>
                    }
                        .into_any()
                } else {
                    view! {
                        <button type="submit" class="send" data-testid="send" aria-label="Send" disabled=move || !can_send()>
                            <Svg icon=Icon::Send/>
                        </button>
                    }
                        .into_any()
                }
            }}
        </form>
    }
}
