-- The MLflow trace of an answer written by an agent (`tr-...`), so the user's feedback on the answer can be attached
-- to it. Null for answers without a trace (chat models, the local model). Adding a nullable column is instant in
-- PostgreSQL, so this is safe on a live database.
alter table chat.messages add column trace_id text;
