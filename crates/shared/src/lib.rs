//! Wire contract between the chat server, the web app and other internal tools.
//!
//! Only serde types live here: no I/O, no async runtime, no database. The crate builds for native targets
//! and for `wasm32-unknown-unknown`. JSON is `snake_case` with RFC 3339 times, except the streaming chunks and
//! UI messages, which follow the Vercel AI SDK wire format (`camelCase`) so any `useChat` front end can talk
//! to the server unchanged.

pub mod answer;
pub mod chat;
pub mod error;
pub mod export;
pub mod feedback;
pub mod message;
pub mod model;
pub mod share;
pub mod stream;
pub mod turn;
pub mod user;

pub use answer::*;
pub use chat::*;
pub use error::*;
pub use export::*;
pub use feedback::*;
pub use message::*;
pub use model::*;
pub use share::*;
pub use stream::*;
pub use turn::*;
pub use user::*;

/// Longest chat title accepted from a client, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest `scope` key accepted from a client, in characters.
pub const MAX_SCOPE_CHARS: usize = 200;
/// Largest page a client may ask for when listing chats or messages.
pub const MAX_PAGE_LIMIT: u32 = 100;
/// Page size used when a client gives no `limit`.
pub const DEFAULT_PAGE_LIMIT: u32 = 30;
