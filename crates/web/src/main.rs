//! Browser entry point: installs the panic hook and mounts the app.

use gloo_net::http::Request;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::Health;

/// The application root. It reports whether the server and its database answer.
#[component]
fn App() -> impl IntoView {
    let (health, set_health) = signal(String::from("checking the server..."));
    spawn_local(async move {
        let text = match Request::get("/api/health").send().await {
            Ok(response) => match response.json::<Health>().await {
                Ok(health) if health.database => "Server and database are up.".to_owned(),
                Ok(_) => "The server is up but cannot reach its database.".to_owned(),
                Err(_) => "The server answered with something unexpected.".to_owned(),
            },
            Err(_) => "The server cannot be reached.".to_owned(),
        };
        set_health.set(text);
    });
    view! {
        <main>
            <h1>"Chat"</h1>
            <p data-testid="health">{health}</p>
        </main>
    }
}

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
