-- Chats and their messages.
--
-- Everything lives in the `chat` schema. In Lakebase the app's service principal may create schemas in its
-- database but has no CREATE right on `public` (PostgreSQL 15 and later), and the schema it creates is one it
-- owns, so later migrations can alter its tables. The server creates the schema before running migrations so
-- that sqlx's own bookkeeping table lands here too.
create schema if not exists chat;

create table chat.chats (
    chat_id      uuid primary key,
    -- Stable user id from the Databricks Apps proxy (the email when it is known).
    owner_id     text        not null,
    title        text        not null,
    -- 'auto' titles may be replaced by a generated one; a title the user typed is never overwritten.
    title_source text        not null default 'auto',
    -- Model (serving endpoint) the chat uses.
    model        text,
    -- Free-form key another tool uses to attach the chat to its own entity.
    scope        text,
    created_at   timestamptz not null default now(),
    -- Last activity (a new message); the sidebar orders by it.
    updated_at   timestamptz not null default now(),
    -- Highest message seq handed out in this chat; bumped under the chat's row lock so seqs never collide.
    last_seq     bigint      not null default 0,
    -- Title words for search. 'simple' does no stemming, so it behaves the same for every language.
    title_search tsvector generated always as (to_tsvector('simple', title)) stored,
    constraint chats_title_length check (char_length(title) between 1 and 200),
    constraint chats_title_source_check check (title_source in ('auto', 'user')),
    constraint chats_scope_length check (scope is null or char_length(scope) between 1 and 200)
);

-- The sidebar and `GET /api/chats`: one user's chats, most recently active first, keyset-paginated on
-- (updated_at, chat_id). chat_id breaks ties between chats touched in the same microsecond.
create index chats_owner_recent_idx on chat.chats (owner_id, updated_at desc, chat_id desc);

-- `GET /api/chats?scope=`: the chats another tool attached to one of its entities, in the same order.
-- Partial, because most chats have no scope.
create index chats_owner_scope_recent_idx on chat.chats (owner_id, scope, updated_at desc, chat_id desc)
    where scope is not null;

-- `GET /api/chats?q=`: prefix search on title words.
create index chats_title_search_idx on chat.chats using gin (title_search);

create table chat.messages (
    message_id    uuid primary key,
    chat_id       uuid        not null references chat.chats (chat_id) on delete cascade,
    -- Position in the chat; defines the order (timestamps alone tie).
    seq           bigint      not null,
    role          text        not null,
    -- Typed content parts: [{"type":"text","text":...}, {"type":"reasoning","text":...}]; tool parts later.
    parts         jsonb       not null default '[]',
    status        text        not null,
    -- Model that wrote an assistant message.
    model         text,
    input_tokens  bigint,
    output_tokens bigint,
    -- Safe, user-facing description of a failure (never internals).
    error         text,
    -- Id the client gave the message; a retried request with the same id is recognised.
    client_id     text,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    -- Words of the answer text (not reasoning) for search, computed once the message stops changing so that
    -- the once-a-second checkpoints of a streaming answer do not re-index it each time.
    content_search tsvector generated always as (
        case when status <> 'streaming' then
            jsonb_to_tsvector('simple'::regconfig,
                              jsonb_path_query_array(parts, '$[*] ? (@.type == "text").text'),
                              '["string"]')
        end
    ) stored,
    constraint messages_role_check check (role in ('system', 'user', 'assistant', 'tool')),
    constraint messages_status_check
        check (status in ('complete', 'streaming', 'stopped', 'error', 'interrupted')),
    -- Also the index for history pages (where chat_id = $1 and seq < $2 order by seq desc) and for the
    -- cascade from chats.
    constraint messages_chat_seq_key unique (chat_id, seq),
    -- Idempotent retries: one message per client id in a chat. NULLs do not collide.
    constraint messages_chat_client_id_key unique (chat_id, client_id),
    constraint messages_client_id_length check (client_id is null or char_length(client_id) between 1 and 128)
);

-- `GET /api/chats?q=`: prefix search on message text.
create index messages_content_search_idx on chat.messages using gin (content_search);
