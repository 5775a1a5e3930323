//! Rebuilds the server when a migration changes, because `sqlx::migrate!` embeds them at compile time.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
