-- Users' votes on answers (up or down, with an optional comment), and their copy in MLflow.
--
-- One row per answer and user. When MLflow feedback sync is on and the answer has a trace, the vote is also an
-- assessment on that trace: its id is kept here, so a changed or removed vote updates the same assessment from any
-- server process, after any restart. A vote that has not reached MLflow yet is `pending` with a time for its next
-- attempt; every process claims due votes with `FOR UPDATE SKIP LOCKED`. A removed vote whose assessment still has to
-- be deleted stays as a row without a rating (a tombstone) until MLflow confirms the deletion.
--
-- The rows go with their answer (`on delete cascade`), so deleting a chat or regenerating an answer needs nothing
-- more. A new table with no rows is instant to create, so this is safe on a live database.
create table chat.message_feedback (
    message_id    uuid        not null references chat.messages (message_id) on delete cascade,
    -- The voter: the owner id of the chat (the lower-cased email when known).
    user_id       text        not null,
    -- 'up' or 'down'; null on a tombstone (the vote was removed, its MLflow assessment is still to be deleted).
    rating        text,
    -- What the user wrote with the vote (the assessment's rationale).
    comment       text,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    -- Bumped by every change of the vote, so that an attempt that sent an older vote never marks a newer one synced.
    revision      bigint      not null default 1,
    -- 'off': never sent (sync off, or the answer has no trace); 'pending': to be sent; 'synced': MLflow has this
    -- revision; 'failed': MLflow refused it repeatedly (a new vote tries again).
    sync          text        not null,
    -- The MLflow assessment (`a-...`), once created.
    assessment_id text,
    -- Failed attempts since the vote last changed; the backoff grows with them.
    sync_attempts integer     not null default 0,
    -- When a pending vote is tried next.
    next_sync_at  timestamptz,
    -- A process is sending this vote until then; others leave it alone, and it expires if that process dies.
    claimed_until timestamptz,
    primary key (message_id, user_id),
    constraint message_feedback_rating_check check (rating is null or rating in ('up', 'down')),
    constraint message_feedback_comment_length check (comment is null or char_length(comment) between 1 and 2000),
    constraint message_feedback_sync_check check (sync in ('off', 'pending', 'synced', 'failed')),
    -- A tombstone exists only until its deletion reaches MLflow.
    constraint message_feedback_tombstone_pending check (rating is not null or sync = 'pending'),
    constraint message_feedback_pending_has_time check (sync <> 'pending' or next_sync_at is not null)
);

-- The sync workers' question: pending votes whose next attempt is due, oldest first. Partial, because almost every
-- vote is synced or off.
create index message_feedback_due_idx on chat.message_feedback (next_sync_at) where sync = 'pending';
