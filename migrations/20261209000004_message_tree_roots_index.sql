-- no-transaction
-- Sibling roots (the first question and its edits). Built concurrently, like the index before it.
create index concurrently if not exists messages_roots_idx on chat.messages (chat_id, seq) where parent_id is null;
