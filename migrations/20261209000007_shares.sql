-- Read-only links to a branch of a chat (`/share/{id}`), which any signed-in user of the app can open.
--
-- A share names the last message it shows: viewers see the branch from the chat's first message down to it, and
-- nothing written later or on another branch. Revoking deletes the row, so a revoked link is exactly an unknown one.
-- The id is random (122 bits), so links cannot be guessed. A new table: instant, safe on a live database.
create table chat.shares (
    share_id    uuid primary key,
    chat_id     uuid        not null references chat.chats (chat_id) on delete cascade,
    -- The last message shown.
    leaf_id     uuid        not null references chat.messages (message_id) on delete cascade,
    -- How viewers see the owner: the display name or email the proxy gave when the link was made.
    owner_name  text        not null,
    created_at  timestamptz not null default now(),
    constraint shares_owner_name_length check (char_length(owner_name) between 1 and 200)
);

-- The owner's list of a chat's links, newest first (and the cascade from chats).
create index shares_chat_idx on chat.shares (chat_id, created_at desc);
-- The cascade from messages.
create index shares_leaf_idx on chat.shares (leaf_id);
