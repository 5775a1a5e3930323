//! The fixed pieces of the fake agents' answers, public so tests can assert on them: the tool they call with its
//! arguments and output, their citations, the approval they ask for and the texts around it.

use serde_json::{Value, json};

use super::request::ApprovalResponse;

/// The tool the fake agents call (`tool=1`).
pub const TOOL_NAME: &str = "search_docs";

/// The MCP tool an agent asks approval for (`approval=1`).
pub const APPROVAL_TOOL: &str = "send_email";

/// The MCP server of that tool.
pub const APPROVAL_SERVER: &str = "mail-server";

/// The text before an approval request.
pub const APPROVAL_PROMPT: &str = "I need your approval to send an email.";

/// The user's question: the text without its `[[fake ...]]` directives, trimmed.
pub fn question(user_text: &str) -> String {
    let stripped = match (user_text.rfind("[[fake"), user_text.rfind("]]")) {
        (Some(start), Some(end)) if end > start => format!("{}{}", &user_text[..start], &user_text[end + 2..]),
        _ => user_text.to_owned(),
    };
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The arguments of the tool call, as the object they parse to.
pub fn tool_input(user_text: &str) -> Value {
    json!({ "query": question(user_text), "limit": 3 })
}

/// The tool's result, as the object its output string parses to.
pub fn tool_output(user_text: &str) -> Value {
    json!({ "query": question(user_text), "matches": 3, "best": "Fake handbook, chapter 2" })
}

/// The arguments of the approval request, as the object they parse to.
pub fn approval_input() -> Value {
    json!({ "to": "ops@example.com" })
}

/// Citation `index` (1-based) of `cite=N`.
pub fn citation(index: usize, text_len: usize) -> Value {
    json!({
        "type": "url_citation",
        "url": format!("https://docs.example.com/fake/{index}"),
        "title": format!("Fake source {index}"),
        "start_index": 0,
        "end_index": text_len,
    })
}

/// The answer to an approval decision: `Approved: sent.` or `Denied: <reason or "no reason">.`
pub fn approval_answer(approval: &ApprovalResponse) -> String {
    if approval.approve {
        "Approved: sent.".to_owned()
    } else {
        format!("Denied: {}.", approval.reason.as_deref().unwrap_or("no reason"))
    }
}

/// Splits a string into `pieces` parts on character boundaries (a tool's arguments as they stream).
pub fn pieces(text: &str, pieces: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(pieces.max(1)).max(1);
    chars.chunks(size).map(|chunk| chunk.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_leaves_out_the_directives_and_arguments_stream_in_pieces() {
        assert_eq!(question("  What is  Lakebase? [[fake tool=1]] "), "What is Lakebase?");
        let arguments = tool_input("hi [[fake tool=1]]").to_string();
        let parts = pieces(&arguments, 3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), arguments);
        assert_eq!(pieces("ab", 5).concat(), "ab");
        let denied = ApprovalResponse { approval_request_id: "apr-1".into(), approve: false, reason: None };
        assert_eq!(approval_answer(&denied), "Denied: no reason.");
    }
}
