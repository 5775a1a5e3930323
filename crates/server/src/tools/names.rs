//! The names tools are offered under. Chat-completion endpoints accept `[a-zA-Z0-9_-]{1,64}` only
//! (AGENTS-PROTOCOL.md §D), while MCP tool names may hold dots, slashes or spaces; a source's tools are also
//! prefixed with the source's name so two servers' `search` tools do not collide.

/// Longest tool name the endpoints accept.
const MAX_NAME_CHARS: usize = 64;

/// The name a tool is offered under: `{source}__{tool}` (or the tool's own name when unprefixed), every other
/// character than letters, digits, `_` and `-` replaced by `_`, cut to 64 characters.
pub fn wire_name(source: Option<&str>, tool: &str) -> String {
    let joined = match source {
        Some(source) => format!("{source}__{tool}"),
        None => tool.to_owned(),
    };
    let mut name: String = joined
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .take(MAX_NAME_CHARS)
        .collect();
    if name.is_empty() {
        name.push('_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_cleaned_for_the_endpoints() {
        assert_eq!(wire_name(Some("genie"), "query_space"), "genie__query_space");
        assert_eq!(wire_name(None, "list_chats"), "list_chats");
        assert_eq!(wire_name(Some("uc"), "main.sales.forecast"), "uc__main_sales_forecast");
        assert_eq!(wire_name(Some("x"), "café tool/v2"), "x__caf__tool_v2");
        assert_eq!(wire_name(None, ""), "_");
        assert_eq!(wire_name(Some("s"), &"a".repeat(100)).len(), 64);
    }
}
