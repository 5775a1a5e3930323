-- The last step of conversation trees (see 20261209000001): the foreign key checked against the existing rows,
-- with a lock that lets reads and writes go on, and the backfill procedure dropped.
alter table chat.messages validate constraint messages_parent_fkey;

drop procedure chat.backfill_message_tree(integer);
