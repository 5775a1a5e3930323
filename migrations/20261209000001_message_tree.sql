-- Conversations as trees: every message has a parent, and a chat remembers which branch it shows.
--
-- Editing a question adds a sibling user message, regenerating an answer adds a sibling answer; nothing is deleted.
-- The model sees, and the messages API returns, the path from the chat's active leaf up to its root.
--
-- Safe on a live database, in steps that never hold a lock for longer than a moment:
-- 1. (here, one short transaction) Nullable columns, a foreign key not validated yet, the procedure that fills the
--    columns, and a trigger for servers of the previous version. Nothing reads the table.
-- 2. (outside a transaction) Existing chats become chains (each message's parent is the message before it), a few
--    hundred chats per transaction, so no row stays locked for more than a moment.
-- 3. (outside a transaction) The indexes, built concurrently: writes go on meanwhile.
-- 4. (a short transaction) The foreign key validated, with a lock that lets reads and writes go on.
--
-- A server of the previous version may still be running during a rolling deploy. It inserts messages without a
-- parent or depth; the trigger puts such a message at the end of the chat's newest branch, as that version meant
-- it, and shows that branch. The new version always sets `depth`, which is how the two are told apart.
alter table chat.messages
    -- The message this one follows; null for a root (the first question, or an edit of it).
    add column parent_id uuid,
    -- Position on its path: 1 for a root, the parent's depth + 1 otherwise.
    add column depth     integer;

alter table chat.chats
    -- The end of the branch the chat shows and continues; null for a chat without messages.
    add column active_leaf uuid;

-- A message's parent is in the same chat; deleting a message deletes what follows it (only whole chats are deleted
-- today, and the cascade from chats gets there first).
alter table chat.messages
    add constraint messages_parent_fkey foreign key (parent_id) references chat.messages (message_id)
        on delete cascade not valid;

-- Existing chats as chains: `batch` chats per transaction, in chat id order. Run again, it changes nothing already
-- right, so a migration interrupted halfway simply runs again.
create procedure chat.backfill_message_tree(batch integer)
    language plpgsql as
$$
declare
    after uuid := '00000000-0000-0000-0000-000000000000';
    chats uuid[];
begin
    loop
        select array_agg(chat_id order by chat_id) into chats
        from (select chat_id from chat.chats where chat_id > after order by chat_id limit batch) next;
        exit when chats is null;
        update chat.messages m
        set parent_id = chain.previous, depth = chain.position
        from (
            select message_id,
                   lag(message_id) over (partition by chat_id order by seq) as previous,
                   row_number() over (partition by chat_id order by seq)::integer as position
            from chat.messages
            where chat_id = any(chats)
        ) chain
        where chain.message_id = m.message_id
          and (m.parent_id is distinct from chain.previous or m.depth is distinct from chain.position);
        update chat.chats c
        set active_leaf = newest.message_id
        from (
            select distinct on (chat_id) chat_id, message_id
            from chat.messages
            where chat_id = any(chats)
            order by chat_id, seq desc
        ) newest
        where newest.chat_id = c.chat_id and c.active_leaf is distinct from newest.message_id;
        after := chats[array_length(chats, 1)];
        commit;
    end loop;
end
$$;

-- Messages written by a server of the previous version (no depth) follow the chat's newest message, and the chat
-- shows them. A statement-level trigger, because that version inserts a question and its answer in one statement and
-- the answer's parent is the question: at the end of the statement both are visible and are placed in order. In a
-- chat the backfill has not reached yet, the depth is counted (that version only ever made chains).
create function chat.message_tree_compat() returns trigger
    language plpgsql as
$$
declare
    legacy record;
    previous_id uuid;
    previous_depth integer;
begin
    for legacy in select message_id, chat_id, seq from inserted where depth is null order by chat_id, seq loop
        select message_id, depth into previous_id, previous_depth
        from chat.messages
        where chat_id = legacy.chat_id and seq < legacy.seq
        order by seq desc
        limit 1;
        if previous_id is not null and previous_depth is null then
            select count(*)::integer into previous_depth
            from chat.messages
            where chat_id = legacy.chat_id and seq < legacy.seq;
        end if;
        update chat.messages
        set parent_id = previous_id, depth = coalesce(previous_depth, 0) + 1
        where message_id = legacy.message_id;
        update chat.chats set active_leaf = legacy.message_id where chat_id = legacy.chat_id;
    end loop;
    return null;
end
$$;

create trigger messages_tree_compat
    after insert on chat.messages
    referencing new table as inserted
    for each statement
execute function chat.message_tree_compat();
