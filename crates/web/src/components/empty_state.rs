//! A new chat's welcome: the configured greeting and a few suggested prompts.

use leptos::prelude::*;

use crate::context::AppCtx;

/// The empty state.
#[component]
pub fn EmptyState(
    /// Called with a suggestion the user picked.
    on_pick: Callback<String>,
) -> impl IntoView {
    let ctx = expect_context::<AppCtx>();
    let no_model = move || ctx.models.with(|m| m.as_ref().is_some_and(|m| m.models.is_empty()));
    view! {
        <section class="empty-state" data-testid="empty-state" aria-label="New chat">
            <h2 class="greeting" data-testid="greeting">
                {move || ctx.config.get().map(|c| c.greeting).unwrap_or_default()}
            </h2>
            <Show when=no_model>
                <p class="notice" role="alert" data-testid="no-model">
                    {move || ctx.models.get().and_then(|m| m.hint).unwrap_or_default()}
                </p>
            </Show>
            <ul class="suggestions">
                {move || {
                    ctx.config
                        .get()
                        .map(|c| c.suggestions)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|suggestion| {
                            let text = suggestion.clone();
                            view! {
                                <li>
                                    <button class="suggestion" data-testid="suggestion" on:click=move |_| on_pick.run(text.clone())>
                                        {suggestion}
                                    </button>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
        </section>
    }
}
