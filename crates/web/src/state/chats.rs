//! The sidebar's chats: the pinned ones, the list grouped by recency (with pages and search), the archived ones;
//! local updates as turns happen, and chats moved between these parts at once when pinned or archived.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::{ChatPage, ChatSummary, UpdateChatRequest};
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
    // Local calendar days since the epoch (integers: calendar types would cost the WebAssembly more).
    let day = |at: DateTime<Utc>| (at.timestamp() + i64::from(offset_minutes) * 60).div_euclid(86_400);
    match day(now) - day(updated_at) {
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

/// A part of the sidebar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Pinned chats, at the top.
    Pinned,
    /// The other chats (or, while searching, every chat that matches).
    Listed,
    /// Archived chats, at the bottom, folded.
    Archived,
}

impl Section {
    /// Its chats in `GET /api/chats`.
    fn filter(self) -> &'static str {
        match self {
            Section::Pinned => "pinned=true",
            Section::Listed => "pinned=false",
            Section::Archived => "archived=true",
        }
    }
}

/// What the sidebar has loaded, part by part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sections {
    /// Pinned chats.
    pub pinned: ChatListModel,
    /// The list (or the search results).
    pub listed: ChatListModel,
    /// Archived chats.
    pub archived: ChatListModel,
    /// The list holds search results: found chats stay in it, pinned or not.
    pub searching: bool,
}

impl Sections {
    /// One part.
    pub fn get(&self, section: Section) -> &ChatListModel {
        match section {
            Section::Pinned => &self.pinned,
            Section::Listed => &self.listed,
            Section::Archived => &self.archived,
        }
    }

    /// One part, to change.
    pub fn section(&mut self, section: Section) -> &mut ChatListModel {
        match section {
            Section::Pinned => &mut self.pinned,
            Section::Listed => &mut self.listed,
            Section::Archived => &mut self.archived,
        }
    }

    /// The part a chat goes in.
    fn section_of(&self, chat: &ChatSummary) -> Section {
        match (chat.archived, chat.pinned) {
            (true, _) => Section::Archived,
            (false, true) if !self.searching => Section::Pinned,
            _ => Section::Listed,
        }
    }

    /// A chat, wherever it is.
    pub fn find(&self, id: Uuid) -> Option<&ChatSummary> {
        [&self.pinned, &self.listed, &self.archived].into_iter().flat_map(|m| &m.chats).find(|c| c.id == id)
    }

    /// Sets a chat's title in place.
    pub fn rename(&mut self, id: Uuid, title: &str) {
        for section in [Section::Pinned, Section::Listed, Section::Archived] {
            self.section(section).rename(id, title);
        }
    }

    /// Removes a chat.
    pub fn remove(&mut self, id: Uuid) {
        for section in [Section::Pinned, Section::Listed, Section::Archived] {
            self.section(section).remove(id);
        }
    }

    /// Puts a chat first in its part (new activity), adding it if it is not listed.
    pub fn touch(&mut self, chat: ChatSummary) {
        self.remove(chat.id);
        let section = self.section_of(&chat);
        self.section(section).chats.insert(0, chat);
    }

    /// Puts a chat in its part, in order of activity (newest first), replacing the copy shown.
    pub fn put(&mut self, chat: ChatSummary) {
        self.remove(chat.id);
        let section = self.section_of(&chat);
        let list = &mut self.section(section).chats;
        let at = list.iter().position(|c| (c.updated_at, c.id) < (chat.updated_at, chat.id)).unwrap_or(list.len());
        list.insert(at, chat);
    }

    /// Pins or archives a chat (`None`: unchanged) and moves it to its new part; returns it as it was, to put back
    /// if the server refuses.
    pub fn place(&mut self, id: Uuid, pinned: Option<bool>, archived: Option<bool>) -> Option<ChatSummary> {
        let before = self.find(id)?.clone();
        let mut chat = before.clone();
        chat.pinned = pinned.unwrap_or(chat.pinned);
        chat.archived = archived.unwrap_or(chat.archived);
        self.put(chat);
        Some(before)
    }
}

/// The reactive chat list (a context).
#[derive(Clone, Copy)]
pub struct ChatList {
    /// What is loaded.
    pub model: RwSignal<Sections>,
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
            model: RwSignal::new(Sections::default()),
            query: RwSignal::new(String::new()),
            loading: RwSignal::new(false),
            error: RwSignal::new(None),
            generation: RwSignal::new(0),
        }
    }

    /// Loads the first page of the pinned chats and of the list, or of the results of the current search.
    pub fn reload(self) {
        let generation = self.generation.get_untracked() + 1;
        self.generation.set(generation);
        let query = self.query.get_untracked();
        let searching = !query.trim().is_empty();
        self.loading.set(true);
        spawn_local(async move {
            let pinned = async {
                match searching {
                    true => Ok(ChatPage { chats: Vec::new(), next_cursor: None }),
                    false => api::chats("", Section::Pinned.filter(), None).await,
                }
            };
            let (listed, pinned) = futures::join!(api::chats(&query, Section::Listed.filter(), None), pinned);
            if self.generation.get_untracked() != generation {
                return;
            }
            self.loading.set(false);
            match (listed, pinned) {
                (Ok(listed), Ok(pinned)) => {
                    self.error.set(None);
                    self.model.update(|m| {
                        m.searching = searching;
                        m.listed.replace(listed);
                        m.pinned.replace(pinned);
                    });
                }
                (Err(error), _) | (_, Err(error)) => self.error.set(Some(error.message())),
            }
        });
    }

    /// Loads the first page of the archived chats (each time the part is opened, so it is current).
    pub fn load_archived(self) {
        spawn_local(async move {
            match api::chats("", Section::Archived.filter(), None).await {
                Ok(page) => self.model.update(|m| m.archived.replace(page)),
                Err(error) => self.error.set(Some(error.message())),
            }
        });
    }

    /// Loads the next page of a part, if any and if none is loading.
    pub fn load_more(self, section: Section) {
        let Some(cursor) = self.model.with_untracked(|m| m.get(section).next_cursor.clone()) else { return };
        if self.loading.get_untracked() {
            return;
        }
        let generation = self.generation.get_untracked();
        let query = if section == Section::Listed { self.query.get_untracked() } else { String::new() };
        self.loading.set(true);
        spawn_local(async move {
            let result = api::chats(&query, section.filter(), Some(&cursor)).await;
            if self.generation.get_untracked() != generation {
                return;
            }
            self.loading.set(false);
            match result {
                Ok(page) => self.model.update(|m| m.section(section).append(page)),
                Err(error) => self.error.set(Some(error.message())),
            }
        });
    }

    /// Pins or unpins, archives or brings back a chat: it moves at once, and goes back with the reason if the
    /// server refuses.
    pub fn place(self, id: Uuid, pinned: Option<bool>, archived: Option<bool>) {
        let Some(before) = self.model.try_update(|m| m.place(id, pinned, archived)).flatten() else { return };
        spawn_local(async move {
            let change = UpdateChatRequest { pinned, archived, ..UpdateChatRequest::default() };
            match api::update_chat(id, change).await {
                Ok(chat) => self.model.update(|m| m.put(chat)),
                Err(error) => {
                    self.model.update(|m| m.put(before));
                    self.error.set(Some(format!("The chat was not moved: {}", error.message())));
                }
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
            pinned: false,
            archived: false,
            matched_message_id: None,
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
        model.rename(Uuid::from_u128(1), "renamed");
        model.remove(Uuid::from_u128(2));
        assert_eq!(model.chats.iter().map(|c| c.title.as_str()).collect::<Vec<_>>(), vec!["renamed", "chat 3"]);
        assert_eq!(model.next_cursor, None);
    }

    fn ids(model: &ChatListModel) -> Vec<u128> {
        model.chats.iter().map(|c| c.id.as_u128()).collect()
    }

    #[test]
    fn chats_move_between_parts_in_order_of_activity_and_back() {
        let mut sections = Sections::default();
        let listed =
            vec![chat(1, "2026-11-22T10:00:00Z"), chat(2, "2026-11-22T09:00:00Z"), chat(3, "2026-11-22T08:00:00Z")];
        sections.listed.replace(ChatPage { chats: listed, next_cursor: None });
        let pinned = ChatSummary { pinned: true, ..chat(4, "2026-11-22T08:30:00Z") };
        sections.pinned.replace(ChatPage { chats: vec![pinned], next_cursor: None });

        let before = sections.place(Uuid::from_u128(2), Some(true), None).expect("a listed chat");
        assert_eq!((ids(&sections.pinned), ids(&sections.listed)), (vec![2, 4], vec![1, 3]));
        assert!(sections.find(Uuid::from_u128(2)).is_some_and(|c| c.pinned));
        sections.put(before);
        assert_eq!((ids(&sections.pinned), ids(&sections.listed)), (vec![4], vec![1, 2, 3]), "refused: put back");

        sections.place(Uuid::from_u128(4), None, Some(true));
        assert_eq!((ids(&sections.pinned), ids(&sections.archived)), (vec![], vec![4]));
        sections.place(Uuid::from_u128(4), None, Some(false));
        assert_eq!((ids(&sections.pinned), ids(&sections.archived)), (vec![4], vec![]), "still pinned when back");
        assert_eq!(sections.place(Uuid::from_u128(99), Some(true), None), None);

        sections.touch(ChatSummary { pinned: true, ..chat(4, "2026-11-22T11:00:00Z") });
        sections.touch(chat(5, "2026-11-22T11:00:00Z"));
        assert_eq!((ids(&sections.pinned), ids(&sections.listed)), (vec![4], vec![5, 1, 2, 3]));
        sections.rename(Uuid::from_u128(4), "renamed");
        sections.remove(Uuid::from_u128(1));
        assert_eq!(sections.find(Uuid::from_u128(4)).map(|c| c.title.as_str()), Some("renamed"));
        assert_eq!(ids(&sections.listed), [5, 2, 3]);

        sections.searching = true;
        sections.place(Uuid::from_u128(2), Some(true), None);
        assert_eq!(ids(&sections.listed), [5, 2, 3], "a search result stays among the results when pinned");
        sections.place(Uuid::from_u128(2), None, Some(true));
        assert_eq!((ids(&sections.listed), ids(&sections.archived)), (vec![5, 3], vec![2]));
    }
}
