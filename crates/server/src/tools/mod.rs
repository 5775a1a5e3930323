//! Tools the model may call, run by this server between two model steps.
//!
//! The turn engine offers the runner's tools with every model request and, when a step ends with tool calls the
//! model's side did not run, hands each call to [`ToolRunner::run`] and feeds the results back in the next step.
//! A source of tools (the user's own records, Genie, Unity Catalog functions, AI Search, MCP servers) is a
//! [`ToolRunner`]; today the server has none ([`NoTools`]), so models only write.

use futures::future::BoxFuture;
use serde_json::Value;

use crate::llm::ToolDefinition;

/// Who a tool runs for: the same checks as the HTTP API apply.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The calling user's owner id (their email).
    pub owner_id: String,
    /// The chat the call was made in.
    pub chat_id: uuid::Uuid,
}

/// One call to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The call's id.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// Its arguments.
    pub input: Value,
}

/// A source of tools.
pub trait ToolRunner: Send + Sync {
    /// The tools offered to the model (for this user).
    fn definitions(&self, context: &ToolContext) -> Vec<ToolDefinition>;

    /// Runs one call: its result, or an error fit to show the user and to tell the model. Never panics on bad
    /// input: an unknown tool or invalid arguments are errors like any other.
    fn run<'a>(&'a self, call: &'a ToolCall, context: &'a ToolContext) -> BoxFuture<'a, Result<Value, String>>;
}

/// No tools at all.
pub struct NoTools;

impl ToolRunner for NoTools {
    fn definitions(&self, _context: &ToolContext) -> Vec<ToolDefinition> {
        Vec::new()
    }

    fn run<'a>(&'a self, call: &'a ToolCall, _context: &'a ToolContext) -> BoxFuture<'a, Result<Value, String>> {
        let error = format!("there is no tool named `{}`", call.name);
        Box::pin(async move { Err(error) })
    }
}
