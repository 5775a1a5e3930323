-- no-transaction
-- Siblings (the children of one message, in the order they were written) and the descent to a branch's leaf. Built
-- concurrently: writes go on meanwhile (see 20261209000001). A build that does not finish leaves an invalid index,
-- which the server drops before it runs this migration again (`db::drop_unfinished_indexes`).
create index concurrently if not exists messages_parent_idx on chat.messages (parent_id, seq)
    where parent_id is not null;
