//! The chat app's browser client: a Leptos client-side app (WebAssembly) that talks to the server's JSON and
//! streaming API with the shared wire types.

mod api;
mod app;
mod components;
mod context;
mod highlight;
mod markdown;
mod route;
mod state;
mod theme;

use leptos::prelude::*;

fn main() {
    console_error_panic_hook::set_once();
    // A shared link is a page of its own, without the sidebar; the app opens from it by loading anew.
    match route::Route::current().share_id() {
        Some(id) => leptos::mount::mount_to_body(move || view! { <components::share_page::SharePage id=id/> }),
        None => leptos::mount::mount_to_body(app::App),
    }
}
