//! Tool calls in a chat-completions stream (AGENTS-PROTOCOL.md §D).
//!
//! [`CallAssembler`] puts streamed `tool_calls` pieces together by `index`: a call's card starts as soon as its
//! name is known, its arguments stream as they arrive, and at the end each call's complete arguments are parsed
//! (malformed JSON becomes a failed call, told to the model, never a crash). [`TextCalls`] catches models that
//! print their calls as text instead (Llama on some servers: `[{"name": "...", "parameters": {...}}]`, optionally
//! after `<|python_tag|>`): an answer that starts like a call is held back until it ends, then becomes calls when
//! it parses as calls of offered tools, or the text it was.

use serde_json::Value;
use shared::Content;

use super::wire::ToolCallDelta;

/// One call being assembled.
#[derive(Debug)]
struct Pending {
    index: usize,
    id: String,
    name: String,
    arguments: String,
    /// Whether its start was emitted (it needs a name first).
    started: bool,
}

/// Streamed tool calls, assembled by index.
#[derive(Debug, Default)]
pub struct CallAssembler {
    calls: Vec<Pending>,
}

impl CallAssembler {
    /// Takes one delta's pieces; emits starts and argument pieces.
    pub fn push(&mut self, pieces: Vec<ToolCallDelta>, out: &mut Vec<Content>) {
        for (position, piece) in pieces.into_iter().enumerate() {
            let index = piece.index.unwrap_or(position);
            let at = match self.calls.iter().position(|call| call.index == index) {
                Some(at) => at,
                None => {
                    self.calls.push(Pending {
                        index,
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                        started: false,
                    });
                    self.calls.len() - 1
                }
            };
            let call = &mut self.calls[at];
            if call.id.is_empty()
                && let Some(id) = piece.id.filter(|id| !id.is_empty())
            {
                call.id = id;
            }
            let function = piece.function.unwrap_or_default();
            if let Some(name) = function.name.filter(|name| !name.is_empty())
                && call.name.is_empty()
            {
                call.name = name;
            }
            let more = match function.arguments {
                Some(Value::String(text)) => text,
                Some(Value::Null) | None => String::new(),
                // Some servers send the arguments as an object rather than its text.
                Some(object) => object.to_string(),
            };
            if !call.started && !call.name.is_empty() {
                if call.id.is_empty() {
                    // A call needs an id its result can name; servers that leave it out get one that cannot
                    // collide with another step's calls.
                    call.id = format!("call_{}", uuid::Uuid::new_v4().simple());
                }
                call.started = true;
                out.push(Content::tool_input_start(&call.id, &call.name, false));
                if !call.arguments.is_empty() {
                    out.push(Content::tool_input_delta(&call.id, call.arguments.clone()));
                }
            }
            if !more.is_empty() {
                if call.started {
                    out.push(Content::tool_input_delta(&call.id, more.clone()));
                }
                call.arguments.push_str(&more);
            }
        }
    }

    /// Whether any call is being assembled.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Ends every call: its complete arguments, or a failed call when they are not a JSON object.
    pub fn finish(&mut self, out: &mut Vec<Content>) {
        for call in std::mem::take(&mut self.calls) {
            if call.name.is_empty() {
                // Arguments without a name: nothing the model could be told about, nothing to run.
                continue;
            }
            let text = call.arguments.trim();
            let parsed =
                if text.is_empty() { Ok(Value::Object(Default::default())) } else { serde_json::from_str(text) };
            match parsed {
                Ok(input @ Value::Object(_)) => out.push(Content::tool_input(&call.id, &call.name, input, false)),
                Ok(_) => {
                    out.push(Content::tool_input(&call.id, &call.name, Value::String(call.arguments), false));
                    out.push(Content::tool_error(&call.id, "the arguments must be a JSON object"));
                }
                Err(error) => {
                    out.push(Content::tool_input(&call.id, &call.name, Value::String(call.arguments), false));
                    out.push(Content::tool_error(&call.id, format!("the arguments are not valid JSON ({error})")));
                }
            }
        }
    }
}

/// Marker some Llama servers print before a call.
const PYTHON_TAG: &str = "<|python_tag|>";

/// Whether held text is still undecided, held as a possible call, or plain text.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Nothing but white space so far.
    #[default]
    Undecided,
    /// It starts like a printed call: held until the end.
    Holding,
    /// Plain text: passed on as it comes.
    Passing,
}

/// Text that may be tool calls printed as text (only watched when tools were offered).
#[derive(Debug, Default)]
pub struct TextCalls {
    tools: Vec<String>,
    hold: Hold,
    held: String,
}

impl TextCalls {
    /// Watches for printed calls of these tools; with none offered, text always passes.
    pub fn new(tools: Vec<String>) -> Self {
        let hold = if tools.is_empty() { Hold::Passing } else { Hold::Undecided };
        Self { tools, hold, held: String::new() }
    }

    /// Takes text; returns what may be shown now.
    pub fn push(&mut self, text: &str) -> Option<String> {
        match self.hold {
            Hold::Passing => return Some(text.to_owned()),
            Hold::Holding => {
                self.held.push_str(text);
                return None;
            }
            Hold::Undecided => self.held.push_str(text),
        }
        let start = self.held.trim_start();
        if start.is_empty() {
            return None;
        }
        if PYTHON_TAG.starts_with(start) && start.len() < PYTHON_TAG.len() {
            // Perhaps the start of the tag: wait for more.
            return None;
        }
        if start.starts_with('[') || start.starts_with('{') || start.starts_with(PYTHON_TAG) {
            self.hold = Hold::Holding;
            None
        } else {
            self.hold = Hold::Passing;
            Some(std::mem::take(&mut self.held))
        }
    }

    /// Ends the text: the calls it printed, or the text held back.
    pub fn finish(&mut self) -> Result<Vec<Content>, String> {
        let held = std::mem::take(&mut self.held);
        let hold = std::mem::replace(&mut self.hold, Hold::Passing);
        if hold != Hold::Holding {
            return Err(held);
        }
        match printed_calls(&held, &self.tools) {
            Some(calls) => Ok(calls),
            None => Err(held),
        }
    }
}

/// The calls printed in `text`, when it is nothing but calls of offered tools.
fn printed_calls(text: &str, tools: &[String]) -> Option<Vec<Content>> {
    let text = text.trim();
    let text = text.strip_prefix(PYTHON_TAG).unwrap_or(text).trim();
    // Several calls may be separated by `;` after the tag.
    let items: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items,
        Ok(item @ Value::Object(_)) => vec![item],
        _ => text.split(';').map(|one| serde_json::from_str(one.trim()).ok()).collect::<Option<Vec<Value>>>()?,
    };
    if items.is_empty() {
        return None;
    }
    let mut calls = Vec::with_capacity(items.len());
    for item in items {
        let name = item.get("name")?.as_str()?;
        if !tools.iter().any(|tool| tool == name) {
            return None;
        }
        let input = match item.get("parameters").or_else(|| item.get("arguments")) {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(Value::String(text)) => serde_json::from_str(text).ok()?,
            Some(input @ Value::Object(_)) => input.clone(),
            Some(_) => return None,
        };
        let id = format!("call_{}", uuid::Uuid::new_v4().simple());
        calls.push(Content::tool_input(id, name, input, false));
    }
    Some(calls)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shared::ToolEvent;

    use super::*;
    use crate::llm::chat_completions::wire::FunctionDelta;

    fn piece(index: usize, id: Option<&str>, name: Option<&str>, arguments: Option<&str>) -> ToolCallDelta {
        ToolCallDelta {
            index: Some(index),
            id: id.map(str::to_owned),
            function: Some(FunctionDelta {
                name: name.map(str::to_owned),
                arguments: arguments.map(|a| Value::String(a.to_owned())),
            }),
        }
    }

    fn inputs(out: &[Content]) -> Vec<(String, String, Value)> {
        out.iter()
            .filter_map(|content| match content {
                Content::Tool(event) => match event.as_ref() {
                    ToolEvent::Input { tool_call_id, tool_name, input, .. } => {
                        Some((tool_call_id.clone(), tool_name.clone(), input.clone()))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    #[test]
    fn parallel_calls_split_across_pieces_are_assembled_by_index() {
        let mut calls = CallAssembler::default();
        let mut out = Vec::new();
        calls.push(vec![piece(0, Some("a"), Some("list_chats"), Some(""))], &mut out);
        calls.push(vec![piece(1, Some("b"), Some("read_chat"), Some("{\"chat"))], &mut out);
        calls.push(vec![piece(0, None, None, Some("{\"limit\":"))], &mut out);
        calls.push(vec![piece(1, None, None, Some("_id\":\"x\"}"))], &mut out);
        calls.push(vec![piece(0, None, None, Some("3}"))], &mut out);
        assert_eq!(
            out[..3],
            [
                Content::tool_input_start("a", "list_chats", false),
                Content::tool_input_start("b", "read_chat", false),
                Content::tool_input_delta("b", "{\"chat"),
            ]
        );
        calls.finish(&mut out);
        assert_eq!(
            inputs(&out),
            [
                ("a".to_owned(), "list_chats".to_owned(), json!({"limit": 3})),
                ("b".to_owned(), "read_chat".to_owned(), json!({"chat_id": "x"})),
            ]
        );
        assert!(calls.is_empty());
    }

    #[test]
    fn empty_arguments_are_an_empty_object_and_a_missing_id_is_made_up() {
        let mut calls = CallAssembler::default();
        let mut out = Vec::new();
        calls.push(vec![piece(0, None, Some("current_user"), None)], &mut out);
        calls.finish(&mut out);
        let found = inputs(&out);
        assert_eq!(found.len(), 1);
        assert!(found[0].0.starts_with("call_") && found[0].0.len() > 20, "{}", found[0].0);
        assert_eq!(found[0].2, json!({}));
    }

    #[test]
    fn malformed_arguments_become_a_failed_call() {
        let mut calls = CallAssembler::default();
        let mut out = Vec::new();
        calls.push(vec![piece(0, Some("a"), Some("read_chat"), Some("{\"chat_id\": "))], &mut out);
        calls.finish(&mut out);
        assert!(matches!(out.last(), Some(Content::Tool(e)) if matches!(e.as_ref(),
            ToolEvent::Error { tool_call_id, error_text } if tool_call_id == "a" && error_text.contains("not valid JSON"))));
    }

    #[test]
    fn calls_printed_as_text_become_calls_of_offered_tools_only() {
        let tools = vec!["list_chats".to_owned(), "read_chat".to_owned()];
        let mut printed = TextCalls::new(tools.clone());
        assert_eq!(printed.push("  [{\"name\": \"list_chats\", "), None);
        assert_eq!(printed.push("\"parameters\": {\"limit\": 2}}]"), None);
        let calls = printed.finish().expect("calls");
        assert_eq!(inputs(&calls)[0].1, "list_chats");
        assert_eq!(inputs(&calls)[0].2, json!({"limit": 2}));

        let mut tagged = TextCalls::new(tools.clone());
        assert_eq!(tagged.push("<|python"), None);
        tagged.push("_tag|>{\"name\": \"read_chat\", \"arguments\": \"{\\\"chat_id\\\":\\\"c\\\"}\"}");
        assert_eq!(inputs(&tagged.finish().expect("calls"))[0].2, json!({"chat_id": "c"}));

        let mut unknown = TextCalls::new(tools.clone());
        unknown.push("[{\"name\": \"drop_db\", \"parameters\": {}}]");
        assert_eq!(unknown.finish(), Err("[{\"name\": \"drop_db\", \"parameters\": {}}]".to_owned()));

        let mut json_answer = TextCalls::new(tools.clone());
        json_answer.push("[1, 2, 3]");
        assert_eq!(json_answer.finish(), Err("[1, 2, 3]".to_owned()), "JSON that is no call is the answer");

        let mut prose = TextCalls::new(tools);
        assert_eq!(prose.push(" "), None);
        assert_eq!(prose.push("Hello"), Some(" Hello".to_owned()));
        assert_eq!(prose.push(" [x]"), Some(" [x]".to_owned()), "once text flows it is never held");
        assert_eq!(prose.finish(), Err(String::new()));

        let mut no_tools = TextCalls::new(Vec::new());
        assert_eq!(no_tools.push("[{\"name\""), Some("[{\"name\"".to_owned()));
    }
}
