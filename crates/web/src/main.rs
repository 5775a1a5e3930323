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

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}
