//! Client state: plain structs with the logic (tested natively), and the reactive wrappers the components use.

pub mod answer;
pub mod chats;
pub mod feedback;
pub mod layout;
pub mod session;
pub mod sharing;
pub mod thread;
