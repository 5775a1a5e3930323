-- Long chats that never overflow the model's context window.
--
-- When a branch no longer fits, its older part is summarised once and the summary is kept here, keyed by the last
-- message it covers: the path from the chat's first message to that message is the same on every branch through
-- it, so every later turn on any of those branches reuses the summary until it too must be folded into a newer one.
-- Messages the user pinned are never summarised: they are sent as they are (`pinned_ids`), and pinning a message
-- drops the summaries that could cover it.
alter table chat.messages add column pinned boolean not null default false;

create table chat.summaries (
    -- The last message the summary covers.
    through_id    uuid primary key references chat.messages (message_id) on delete cascade,
    chat_id       uuid        not null references chat.chats (chat_id) on delete cascade,
    -- The depth of that message (a pin drops the summaries at or below the pinned message's depth).
    through_depth integer     not null,
    -- How many messages it stands for.
    covered       integer     not null,
    -- Pinned messages it leaves out, sent as they are with it, oldest first.
    pinned_ids    uuid[]      not null default '{}',
    -- The summary itself: prose written by `model`.
    text          text        not null,
    model         text        not null,
    created_at    timestamptz not null default now(),
    constraint summaries_text_length check (char_length(text) between 1 and 20000)
);

-- Dropping a chat's summaries at or below a depth when a message is pinned.
create index summaries_chat_depth_idx on chat.summaries (chat_id, through_depth);
