-- The sources of tools (the user's records, MCP servers) a chat's model may use, as the user chose them for the
-- chat; null: every source the server offers.
alter table chat.chats add column tool_sources text[];
alter table chat.chats add constraint chats_tool_sources_count
    check (tool_sources is null or cardinality(tool_sources) <= 64);
