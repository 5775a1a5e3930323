//! Client state: plain structs with the logic (tested natively), and the reactive wrappers the components use.

pub mod answer;
pub mod chats;
pub mod session;
pub mod thread;
