-- A generation's bookkeeping moves onto its assistant message.
--
-- A generation was already identified by its assistant message; keeping its state in a second table cost every
-- turn an extra insert, an extra update per checkpoint and five more indexes to maintain, which measurably
-- limited how many turns per second one database could serve. The columns below are null/zero on every message
-- that is not an assistant answer.
alter table chat.messages
    -- Random id of the server process generating this answer; that process holds pg_advisory_lock(worker_id)
    -- while it lives, so a free lock means the answer's worker died and the answer can be recovered.
    add column worker_id        bigint,
    -- Highest event sequence number stored in generation_events (also the event id the stored parts reach).
    add column last_event_seq   bigint      not null default 0,
    -- Set by a stop request handled by another process; the worker sees it at its next checkpoint.
    add column cancel_requested boolean     not null default false,
    -- Last checkpoint (or start) of a streaming answer.
    add column heartbeat_at     timestamptz;

update chat.messages m
set worker_id = g.worker_id, last_event_seq = g.last_event_seq, cancel_requested = g.cancel_requested,
    heartbeat_at = g.heartbeat_at
from chat.generations g
where g.generation_id = m.message_id;

alter table chat.generation_events
    drop constraint generation_events_generation_id_fkey,
    add constraint generation_events_message_fkey
        foreign key (generation_id) references chat.messages (message_id) on delete cascade,
    add column created_at timestamptz not null default now();

drop table chat.generations;

-- One answer streaming at a time per chat, enforced across every server process: a second turn gets 409.
create unique index messages_one_streaming_per_chat_idx on chat.messages (chat_id) where status = 'streaming';

-- Recovery sweeps: streaming answers grouped by worker.
create index messages_streaming_worker_idx on chat.messages (worker_id) where status = 'streaming';

-- The retention janitor deletes old event batches by age.
create index generation_events_created_at_idx on chat.generation_events (created_at);
