-- Pinned chats stay at the top of the sidebar; archived chats leave the list (and search) until brought back.
-- Nullable columns: instant to add, safe on a live database.
alter table chat.chats
    add column pinned_at   timestamptz,
    add column archived_at timestamptz;

-- The sidebar's pinned section: few rows per user, so a partial index keeps it off the main list's index.
create index chats_owner_pinned_idx on chat.chats (owner_id, updated_at desc, chat_id desc) where pinned_at is not null;
-- The archived section, likewise.
create index chats_owner_archived_idx on chat.chats (owner_id, updated_at desc, chat_id desc)
    where archived_at is not null;
