-- Where an agent's background run stands, for an answer streamed from an agent that runs in background mode
-- (a long-running agent app): {"response_id": "resp_...", "seq": N}, the upstream run and the last of its events
-- whose content the stored answer holds. When the connection to the agent drops, or this server restarts, the
-- answer is re-attached to the run from that point instead of failing. Null for every other answer. Adding a
-- nullable column is instant in PostgreSQL, so this is safe on a live database.
alter table chat.messages add column upstream_run jsonb;
