//! The enabled sources of tools under one policy: which tools are offered (read-only mode leaves writes out),
//! which calls wait for the user's approval, how long a call may take, and how large a result may be.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::{Checked, SourceTool, ToolCall, ToolContext, ToolRunner, ToolSource, wire_name};
pub use crate::config::ApprovalPolicy;
use crate::llm::ToolDefinition;

/// How tools are offered and run.
#[derive(Debug, Clone)]
pub struct ToolSettings {
    /// Offer only tools that only read (`CHAT_TOOLS_READ_ONLY`).
    pub read_only: bool,
    /// Which calls wait for the user.
    pub approval: ApprovalPolicy,
    /// Longest a call may take (`TOOL_TIMEOUT_SECS`).
    pub timeout: Duration,
}

impl Default for ToolSettings {
    fn default() -> Self {
        Self { read_only: false, approval: ApprovalPolicy::Writes, timeout: Duration::from_secs(30) }
    }
}

/// Largest result handed back to the model and stored (JSON bytes); a larger one is cut, with a note saying so. A
/// query tool can return a whole table: the model's context, the stored answer and every reader's copy of it
/// would all pay for it.
const MAX_RESULT_BYTES: usize = 64 * 1024;

/// The enabled sources of tools.
pub struct Toolbox {
    sources: Vec<Arc<dyn ToolSource>>,
    settings: ToolSettings,
}

impl Toolbox {
    /// Tools from these sources, under these settings.
    pub fn new(sources: Vec<Arc<dyn ToolSource>>, settings: ToolSettings) -> Self {
        Self { sources, settings }
    }

    /// Calls `visit` with each tool offered in a chat, in order, and the name it is offered as, until `visit` says
    /// it is done; of two tools with the same name the first is offered.
    fn each_offered(
        &self,
        context: &ToolContext,
        mut visit: impl FnMut(&str, &Arc<dyn ToolSource>, &SourceTool) -> bool,
    ) {
        let mut taken: Vec<String> = Vec::new();
        for source in self.sources.iter().filter(|source| context.uses(source.name())) {
            let prefix = (!source.unprefixed()).then(|| source.name());
            for tool in source.tools().iter().filter(|tool| !self.settings.read_only || tool.read_only) {
                let name = wire_name(prefix, &tool.name);
                if taken.contains(&name) {
                    continue;
                }
                if visit(&name, source, tool) {
                    return;
                }
                taken.push(name);
            }
        }
    }

    fn find(&self, name: &str, context: &ToolContext) -> Option<(Arc<dyn ToolSource>, SourceTool)> {
        let mut found = None;
        self.each_offered(context, |offered, source, tool| {
            if offered == name {
                found = Some((source.clone(), tool.clone()));
            }
            found.is_some()
        });
        found
    }

    /// Whether a tool of this name exists but read-only mode leaves it out (a write).
    fn hidden_by_read_only(&self, name: &str) -> bool {
        self.settings.read_only
            && self.sources.iter().any(|source| {
                let prefix = (!source.unprefixed()).then(|| source.name());
                source.tools().iter().any(|tool| wire_name(prefix, &tool.name) == name)
            })
    }
}

impl ToolRunner for Toolbox {
    fn definitions(&self, context: &ToolContext) -> Vec<ToolDefinition> {
        let mut definitions = Vec::new();
        self.each_offered(context, |name, _, tool| {
            definitions.push(ToolDefinition {
                name: name.to_owned(),
                description: tool.description.clone(),
                input_schema: tool.input_schema.clone(),
            });
            false
        });
        definitions
    }

    fn check(&self, call: &ToolCall, context: &ToolContext) -> Result<Checked, String> {
        let Some((_, tool)) = self.find(&call.name, context) else {
            return Err(if self.hidden_by_read_only(&call.name) {
                format!("`{}` changes data, and tools are read-only here", call.name)
            } else {
                format!("there is no tool named `{}`", call.name)
            });
        };
        tool.validate(&call.input)?;
        let ask = match self.settings.approval {
            ApprovalPolicy::All => true,
            ApprovalPolicy::Never => false,
            ApprovalPolicy::Writes => tool.needs_approval,
        };
        Ok(if ask { Checked::NeedsApproval } else { Checked::Run })
    }

    fn run<'a>(&'a self, call: &'a ToolCall, context: &'a ToolContext) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move {
            let (source, tool) =
                self.find(&call.name, context).ok_or_else(|| format!("there is no tool named `{}`", call.name))?;
            // Checked again: the call may have waited for an approval while the tool's schema changed.
            tool.validate(&call.input)?;
            let timeout = self.settings.timeout;
            let started = std::time::Instant::now();
            let result = match tokio::time::timeout(timeout, source.call(&tool, call.input.clone(), context)).await {
                Ok(result) => result,
                Err(_) => Err(format!("the tool did not answer within {} s", timeout.as_secs().max(1))),
            };
            tracing::info!(
                tool = %call.name, source = source.name(), ok = result.is_ok(),
                elapsed_ms = started.elapsed().as_millis() as u64, "tool call"
            );
            result.map(capped)
        })
    }

    fn reads_only(&self, call: &ToolCall, context: &ToolContext) -> bool {
        self.find(&call.name, context).is_some_and(|(_, tool)| tool.read_only)
    }

    fn source_of(&self, tool_name: &str) -> Option<String> {
        self.find(tool_name, &ToolContext::new("", uuid::Uuid::nil())).map(|(source, _)| source.name().to_owned())
    }

    fn sources(&self) -> Vec<shared::ToolSourceInfo> {
        self.sources
            .iter()
            .map(|source| shared::ToolSourceInfo {
                name: source.name().to_owned(),
                kind: source.kind().to_owned(),
                tools: source.tools().iter().filter(|tool| !self.settings.read_only || tool.read_only).count(),
                problem: source.problem(),
            })
            .collect()
    }
}

/// A result no larger than [`MAX_RESULT_BYTES`]: a larger one becomes the start of its JSON text and a note.
fn capped(result: Value) -> Value {
    let text = match &result {
        Value::String(text) if text.len() <= MAX_RESULT_BYTES => return result,
        Value::String(text) => text.clone(),
        other => {
            let text = other.to_string();
            if text.len() <= MAX_RESULT_BYTES {
                return result;
            }
            text
        }
    };
    let mut end = MAX_RESULT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Value::String(format!("{}… (cut: the result had {} bytes; ask for less)", &text[..end], text.len()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A source with a read tool and a write tool, answering with its input (`fail` fails, `slow` never answers).
    struct Fixed {
        name: &'static str,
        tools: Arc<[SourceTool]>,
    }

    impl Fixed {
        fn new(name: &'static str) -> Arc<Self> {
            let schema = json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"],
                                "additionalProperties": false});
            let tools = vec![
                SourceTool::new("find", "Finds.", schema.clone(), true, false).expect("valid"),
                SourceTool::new("erase", "Erases.", schema.clone(), false, true).expect("valid"),
                SourceTool::new("slow", "Never answers.", json!({}), true, false).expect("valid"),
            ];
            Arc::new(Self { name, tools: tools.into() })
        }
    }

    impl ToolSource for Fixed {
        fn name(&self) -> &str {
            self.name
        }

        fn kind(&self) -> &'static str {
            "mcp"
        }

        fn tools(&self) -> Arc<[SourceTool]> {
            self.tools.clone()
        }

        fn call<'a>(
            &'a self,
            tool: &'a SourceTool,
            input: Value,
            _context: &'a ToolContext,
        ) -> BoxFuture<'a, Result<Value, String>> {
            Box::pin(async move {
                match tool.name.as_str() {
                    "slow" => futures::future::pending().await,
                    _ => Ok(json!({"tool": tool.name, "input": input})),
                }
            })
        }
    }

    fn toolbox(settings: ToolSettings) -> Toolbox {
        Toolbox::new(vec![Fixed::new("srv"), Fixed::new("other")], settings)
    }

    fn call(name: &str, input: Value) -> ToolCall {
        ToolCall { id: "c".into(), name: name.into(), input }
    }

    fn context() -> ToolContext {
        ToolContext::new("u@example.com", uuid::Uuid::nil())
    }

    #[test]
    fn tools_are_offered_prefixed_by_their_source() {
        let names: Vec<String> =
            toolbox(ToolSettings::default()).definitions(&context()).into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["srv__find", "srv__erase", "srv__slow", "other__find", "other__erase", "other__slow"]);
    }

    #[test]
    fn read_only_mode_offers_and_runs_no_write() {
        let tools = toolbox(ToolSettings { read_only: true, ..ToolSettings::default() });
        assert!(tools.definitions(&context()).iter().all(|d| !d.name.ends_with("erase")));
        let refused = tools.check(&call("srv__erase", json!({"q": "x"})), &context()).expect_err("refused");
        assert!(refused.contains("read-only"), "{refused}");
        assert_eq!(tools.sources()[0].tools, 2);
    }

    #[test]
    fn calls_are_checked_against_the_schema_and_writes_wait_for_approval() {
        let tools = toolbox(ToolSettings::default());
        assert_eq!(tools.check(&call("srv__find", json!({"q": "x"})), &context()), Ok(Checked::Run));
        assert_eq!(tools.check(&call("srv__erase", json!({"q": "x"})), &context()), Ok(Checked::NeedsApproval));
        let invalid = tools.check(&call("srv__find", json!({"q": 3, "extra": true})), &context()).expect_err("invalid");
        assert!(invalid.starts_with("invalid arguments: "), "{invalid}");
        assert!(invalid.contains("/q"), "says where: {invalid}");
        let unknown = tools.check(&call("nope", json!({})), &context()).expect_err("unknown");
        assert_eq!(unknown, "there is no tool named `nope`");

        let never = toolbox(ToolSettings { approval: ApprovalPolicy::Never, ..ToolSettings::default() });
        assert_eq!(never.check(&call("srv__erase", json!({"q": "x"})), &context()), Ok(Checked::Run));
        let all = toolbox(ToolSettings { approval: ApprovalPolicy::All, ..ToolSettings::default() });
        assert_eq!(all.check(&call("srv__find", json!({"q": "x"})), &context()), Ok(Checked::NeedsApproval));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_runs_once_and_a_slow_one_times_out() {
        let tools = toolbox(ToolSettings { timeout: Duration::from_secs(2), ..ToolSettings::default() });
        let result = tools.run(&call("other__find", json!({"q": "x"})), &context()).await;
        assert_eq!(result, Ok(json!({"tool": "find", "input": {"q": "x"}})));
        let slow = tools.run(&call("srv__slow", json!({})), &context()).await;
        assert_eq!(slow, Err("the tool did not answer within 2 s".to_owned()));
    }

    #[test]
    fn a_schema_that_is_not_an_object_or_not_a_schema_is_refused() {
        assert!(SourceTool::new("t", "", json!({"type": "string"}), true, false).is_err());
        assert!(
            SourceTool::new("t", "", json!({"type": "object", "properties": {"a": {"type": 7}}}), true, false).is_err()
        );
        let untyped = SourceTool::new("t", "", json!({"properties": {}}), true, false).expect("valid");
        assert_eq!(untyped.input_schema["type"], "object", "a root type is added");
    }

    #[test]
    fn large_results_are_cut_with_a_note() {
        let small = json!({"rows": [1, 2, 3]});
        assert_eq!(capped(small.clone()), small);
        let large = capped(json!({"text": "é".repeat(MAX_RESULT_BYTES)}));
        let text = large.as_str().expect("a string");
        assert!(text.len() < MAX_RESULT_BYTES + 200);
        assert!(text.ends_with("ask for less)"), "{}", &text[text.len() - 80..]);
    }
}
