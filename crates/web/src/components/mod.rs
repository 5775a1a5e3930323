//! The app's components, one noun each.

pub mod answer_actions;
pub mod answer_html;
pub mod chat_item;
pub mod chat_menu;
pub mod chat_view;
pub mod composer;
pub mod context_gauge;
pub mod copy;
pub mod empty_state;
pub mod icons;
pub mod message;
pub mod share_page;
pub mod sidebar;
pub mod tools_menu;
pub mod topbar;
