-- Generations: the server-side life of an assistant answer, independent of any HTTP request.
--
-- A generation's id is its assistant message's id. While it runs, one server process (the worker) owns it,
-- appends its events to an in-memory log, and checkpoints them here at least once a second; any process can
-- then replay the events to a client that reconnects (resume), and stop or recover the generation.
create table chat.generations (
    generation_id    uuid primary key references chat.messages (message_id) on delete cascade,
    chat_id          uuid        not null references chat.chats (chat_id) on delete cascade,
    user_message_id  uuid        not null references chat.messages (message_id) on delete cascade,
    status           text        not null default 'running',
    -- Random id of the server process running it; that process holds pg_advisory_lock(worker_id) for as long
    -- as it lives, so a free lock means the worker died and the generation can be recovered.
    worker_id        bigint      not null,
    -- Highest event sequence number stored in generation_events.
    last_event_seq   bigint      not null default 0,
    -- Set by a stop request handled by another process; the worker sees it at its next checkpoint.
    cancel_requested boolean     not null default false,
    heartbeat_at     timestamptz not null default now(),
    created_at       timestamptz not null default now(),
    finished_at      timestamptz,
    constraint generations_status_check check (status in ('running', 'finished'))
);

-- One generation at a time per chat, enforced across every server process: a second turn gets 409.
create unique index generations_one_running_per_chat_idx on chat.generations (chat_id) where status = 'running';

-- Recovery sweeps: running generations grouped by worker.
create index generations_running_worker_idx on chat.generations (worker_id) where status = 'running';

-- Resuming by event id just after a generation ended: the chat's latest generation.
create index generations_chat_recent_idx on chat.generations (chat_id, created_at desc);

-- The retention janitor deletes finished generations (and their events) by age.
create index generations_finished_at_idx on chat.generations (finished_at) where status = 'finished';

-- The event log of a generation, in batches: each checkpoint appends one row holding the UI-message-stream
-- chunks with sequence numbers first_seq..=last_seq, in order.
create table chat.generation_events (
    generation_id uuid   not null references chat.generations (generation_id) on delete cascade,
    first_seq     bigint not null,
    last_seq      bigint not null,
    events        jsonb  not null,
    -- Also the index for replaying from a sequence number.
    primary key (generation_id, first_seq),
    constraint generation_events_range_check check (first_seq >= 1 and last_seq >= first_seq)
);
