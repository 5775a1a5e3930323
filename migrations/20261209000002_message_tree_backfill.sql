-- no-transaction
-- Existing chats become chains, 200 chats per transaction (see the previous migration). Outside a transaction so
-- that the procedure can commit each batch: rows are locked only while their batch is written.
call chat.backfill_message_tree(200);
