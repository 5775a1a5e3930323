//! The sidebar's chat list: pages, search, grouping by recency, and local updates as turns happen.

use chrono::{DateTime, FixedOffset, Offset, Utc};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::{ChatPage, ChatSummary};
use uuid::Uuid;

use crate::api;

/// A recency group in the sidebar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Active today (local time).
    Today,
    /// Active yesterday.
    Yesterday,
    /// Active in the last seven days.
    LastWeek,
    /// Older.
    Older,
}

impl Group {
    /// Heading shown above the group.
    pub fn label(self) -> &'static str {
        match self {
            Group::Today => "Today",
            Group::Yesterday => "Yesterday",
            Group::LastWeek => "Last 7 days",
            Group::Older => "Older",
        }
    }
}

/// The group of a chat last active at `updated_at`, seen from `now` in a zone `offset_minutes` east of UTC.
pub fn group_of(updated_at: DateTime<Utc>, now: DateTime<Utc>, offset_minutes: i32) -> Group {
    let zone = FixedOffset::east_opt(offset_minutes * 60).unwrap_or_else(|| Utc.fix());
    let today = now.with_timezone(&zone).date_naive();
    let day = updated_at.with_timezone(&zone).date_naive();
    match (today - day).num_days() {
        i64::MIN..=0 => Group::Today,
        1 => Group::Yesterday,
        2..=6 => Group::LastWeek,
        _ => Group::Older,
    }
}

/// Chats split into consecutive recency groups, keeping their order.
pub fn grouped(chats: &[ChatSummary], now: DateTime<Utc>, offset_minutes: i32) -> Vec<(Group, Vec<ChatSummary>)> {
    let mut groups: Vec<(Group, Vec<ChatSummary>)> = Vec::new();
    for chat in chats {
        let group = group_of(chat.updated_at, now, offset_minutes);
        match groups.last_mut() {
            Some((last, items)) if *last == group => items.push(chat.clone()),
            _ => groups.push((group, vec![chat.clone()])),
        }
    }
    groups
}

/// The loaded part of the list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatListModel {
    /// Chats, most recently active first.
    pub chats: Vec<ChatSummary>,
    /// Cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
    /// Whether the first page arrived.
    pub loaded: bool,
}

impl ChatListModel {
    /// Replaces everything with a first page.
    pub fn replace(&mut self, page: ChatPage) {
        self.chats = page.chats;
        self.next_cursor = page.next_cursor;
        self.loaded = true;
    }

    /// Appends the next page, skipping chats already shown (a chat can move between pages while scrolling).
    pub fn append(&mut self, page: ChatPage) {
        for chat in page.chats {
            if !self.chats.iter().any(|c| c.id == chat.id) {
                self.chats.push(chat);
            }
        }
        self.next_cursor = page.next_cursor;
    }

    /// Puts a chat first (new activity), adding it if it is not listed.
    pub fn touch(&mut self, chat: ChatSummary) {
        self.chats.retain(|c| c.id != chat.id);
        self.chats.insert(0, chat);
    }

    /// Sets a chat's title in place.
    pub fn rename(&mut self, id: Uuid, title: &str) {
        if let Some(chat) = self.chats.iter_mut().find(|c| c.id == id) {
            chat.title = title.to_owned();
        }
    }

    /// Removes a chat.
    pub fn remove(&mut self, id: Uuid) {
        self.chats.retain(|c| c.id != id);
    }
}

/// The reactive chat list (a context).
#[derive(Clone, Copy)]
pub struct ChatList {
    /// What is loaded.
    pub model: RwSignal<ChatListModel>,
    /// The search box.
    pub query: RwSignal<String>,
    /// A page is being fetched.
    pub loading: RwSignal<bool>,
    /// The last failure, shown in the sidebar.
    pub error: RwSignal<Option<String>>,
    /// Increments on every new search so a late answer to an old one is ignored.
    generation: RwSignal<u32>,
}

impl ChatList {
    /// An empty list.
    pub fn new() -> Self {
        Self {
            model: RwSignal::new(ChatListModel::default()),
            query: RwSignal::new(String::new()),
            loading: RwSignal::new(false),
            error: RwSignal::new(None),
            generation: RwSignal::new(0),
        }
    }

    /// Loads the first page for the current search.
    pub fn reload(self) {
        let generation = self.generation.get_untracked() + 1;
        self.generation.set(generation);
        let query = self.query.get_untracked();
        self.loading.set(true);
        spawn_local(async move {
            let result = api::chats(&query, None).await;
            if self.generation.get_untracked() != generation {
                return;
            }
            self.loading.set(false);
            match result {
                Ok(page) => {
                    self.error.set(None);
                    self.model.update(|m| m.replace(page));
                }
                Err(error) => self.error.set(Some(error.message())),
            }
        });
    }

    /// Loads the next page, if any and if none is loading.
    pub fn load_more(self) {
        let Some(cursor) = self.model.with_untracked(|m| m.next_cursor.clone()) else { return };
        if self.loading.get_untracked() {
            return;
        }
        let generation = self.generation.get_untracked();
        let query = self.query.get_untracked();
        self.loading.set(true);
        spawn_local(async move {
            let result = api::chats(&query, Some(&cursor)).await;
            if self.generation.get_untracked() != generation {
                return;
            }
            self.loading.set(false);
            match result {
                Ok(page) => self.model.update(|m| m.append(page)),
                Err(error) => self.error.set(Some(error.message())),
            }
        });
    }
}

impl Default for ChatList {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).map(|d| d.with_timezone(&Utc)).unwrap_or_default()
    }

    fn chat(n: u128, updated: &str) -> ChatSummary {
        ChatSummary {
            id: Uuid::from_u128(n),
            title: format!("chat {n}"),
            model: None,
            scope: None,
            created_at: at(updated),
            updated_at: at(updated),
            tools: None,
        }
    }

    #[test]
    fn groups_follow_local_calendar_days() {
        let now = at("2026-11-22T01:30:00Z");
        // 01:30 UTC is still the 21st in New York (UTC-5): a chat from 23:00 UTC on the 21st is "today" there.
        assert_eq!(group_of(at("2026-11-21T23:00:00Z"), now, -300), Group::Today);
        assert_eq!(group_of(at("2026-11-21T23:00:00Z"), now, 0), Group::Yesterday);
        assert_eq!(group_of(at("2026-11-17T12:00:00Z"), now, 0), Group::LastWeek);
        assert_eq!(group_of(at("2026-11-10T12:00:00Z"), now, 0), Group::Older);
        assert_eq!(group_of(at("2026-11-22T05:00:00Z"), now, 0), Group::Today, "clock skew counts as today");
    }

    #[test]
    fn grouping_keeps_order() {
        let now = at("2026-11-22T12:00:00Z");
        let chats = [chat(1, "2026-11-22T10:00:00Z"), chat(2, "2026-11-21T10:00:00Z"), chat(3, "2026-11-01T10:00:00Z")];
        let groups = grouped(&chats, now, 0);
        let shape: Vec<(Group, usize)> = groups.iter().map(|(g, c)| (*g, c.len())).collect();
        assert_eq!(shape, vec![(Group::Today, 1), (Group::Yesterday, 1), (Group::Older, 1)]);
    }

    #[test]
    fn model_updates() {
        let mut model = ChatListModel::default();
        model.replace(ChatPage {
            chats: vec![chat(1, "2026-11-22T10:00:00Z"), chat(2, "2026-11-22T09:00:00Z")],
            next_cursor: Some("c".into()),
        });
        model.append(ChatPage {
            chats: vec![chat(2, "2026-11-22T09:00:00Z"), chat(3, "2026-11-22T08:00:00Z")],
            next_cursor: None,
        });
        assert_eq!(model.chats.iter().map(|c| c.id.as_u128()).collect::<Vec<_>>(), vec![1, 2, 3]);
        model.touch(chat(3, "2026-11-22T11:00:00Z"));
        model.rename(Uuid::from_u128(1), "renamed");
        model.remove(Uuid::from_u128(2));
        assert_eq!(model.chats.iter().map(|c| c.title.as_str()).collect::<Vec<_>>(), vec!["chat 3", "renamed"]);
        assert_eq!(model.next_cursor, None);
    }
}
