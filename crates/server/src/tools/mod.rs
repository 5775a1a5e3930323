//! Tools the model may call, run by this server between two model steps (AGENTS-PROTOCOL.md §D).
//!
//! The turn engine offers the enabled tools with every request to a chat-completions model and, when a step ends
//! with tool calls, checks each call ([`ToolRunner::check`]: a known tool, arguments valid against its JSON Schema,
//! whether the user must approve it) and runs the ones it may ([`ToolRunner::run`], in parallel, each with a
//! timeout); results and errors alike go back to the model in the next step.
//!
//! Tools come from [`ToolSource`]s: the user's own records ([`records`]) and MCP servers ([`mcp`]: Genie, Unity
//! Catalog functions, AI Search through Databricks managed MCP, or any MCP server). [`Toolbox`] puts the enabled
//! sources together under one policy (read-only mode, approvals, timeout).

pub mod mcp;
mod names;
pub mod records;
mod toolbox;

use std::sync::Arc;

use futures::future::BoxFuture;
use secrecy::SecretString;
use serde_json::Value;

use crate::llm::ToolDefinition;

pub use names::wire_name;
pub use toolbox::{ApprovalPolicy, ToolSettings, Toolbox};

/// Who a tool runs for: the same checks as the HTTP API apply, with the user's identity and never more.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The calling user's owner id (their email).
    pub owner_id: String,
    /// The chat the call was made in.
    pub chat_id: uuid::Uuid,
    /// The user's Databricks token, when models are called on the user's behalf (`MODEL_AUTH=user`): workspace
    /// tools (managed MCP) are then called with it, so Unity Catalog permissions apply per user.
    pub user_token: Option<SecretString>,
    /// The sources of tools the chat uses (the user's choice for it); `None`: every source.
    pub sources: Option<Vec<String>>,
}

impl ToolContext {
    /// A context without a user token, with every source.
    pub fn new(owner_id: impl Into<String>, chat_id: uuid::Uuid) -> Self {
        Self { owner_id: owner_id.into(), chat_id, user_token: None, sources: None }
    }

    /// Whether the chat uses this source.
    pub fn uses(&self, source: &str) -> bool {
        self.sources.as_ref().is_none_or(|sources| sources.iter().any(|name| name == source))
    }
}

/// One call to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The call's id.
    pub id: String,
    /// The tool's name, as offered to the model.
    pub name: String,
    /// Its arguments.
    pub input: Value,
}

/// What may happen to a checked call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Run it now.
    Run,
    /// The user must allow it first.
    NeedsApproval,
}

/// The tools the turn engine may offer and run.
pub trait ToolRunner: Send + Sync {
    /// The tools offered to the model (for this user), with names the model may call.
    fn definitions(&self, context: &ToolContext) -> Vec<ToolDefinition>;

    /// Checks a call before it runs: an unknown tool, a tool not offered in this mode, or arguments that do not
    /// match the tool's schema are errors fit to show the user and to tell the model.
    fn check(&self, call: &ToolCall, context: &ToolContext) -> Result<Checked, String>;

    /// Runs one call (already checked): its result, or an error fit to show the user and to tell the model
    /// (the tool's own error, a timeout). Never panics on bad input.
    fn run<'a>(&'a self, call: &'a ToolCall, context: &'a ToolContext) -> BoxFuture<'a, Result<Value, String>>;

    /// Whether a checked call only reads (running it twice, or once without a trace, changes nothing).
    fn reads_only(&self, _call: &ToolCall, _context: &ToolContext) -> bool {
        false
    }

    /// The source (`records`, an MCP server) of an offered tool.
    fn source_of(&self, _tool_name: &str) -> Option<String> {
        None
    }

    /// The sources of tools and whether each can be used now (`GET /api/config`).
    fn sources(&self) -> Vec<shared::ToolSourceInfo> {
        Vec::new()
    }
}

/// No tools at all.
pub struct NoTools;

impl ToolRunner for NoTools {
    fn definitions(&self, _context: &ToolContext) -> Vec<ToolDefinition> {
        Vec::new()
    }

    fn check(&self, call: &ToolCall, _context: &ToolContext) -> Result<Checked, String> {
        Err(format!("there is no tool named `{}`", call.name))
    }

    fn run<'a>(&'a self, call: &'a ToolCall, _context: &'a ToolContext) -> BoxFuture<'a, Result<Value, String>> {
        let error = format!("there is no tool named `{}`", call.name);
        Box::pin(async move { Err(error) })
    }
}

/// A tool as its source describes it.
#[derive(Clone)]
pub struct SourceTool {
    /// The source's own name for it.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments (an object).
    pub input_schema: Value,
    /// Only reads: offered in read-only mode. A tool that does not say so counts as a write.
    pub read_only: bool,
    /// Changes or deletes something the user may not want changed: asks the user first (unless approvals are
    /// configured off).
    pub needs_approval: bool,
    /// The schema, compiled: every call's arguments are checked against it.
    validator: Arc<Validator>,
}

/// A compiled schema.
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

/// Where a schema's `$ref`s may lead: nowhere outside the schema. A tool's schema comes from the model's side of
/// the world (an MCP server): it must not make this server read a file or fetch a URL.
struct NoLoader;

impl boon::UrlLoader for NoLoader {
    fn load(&self, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
        Err(format!("a tool's schema may not refer to {url}").into())
    }
}

impl std::fmt::Debug for SourceTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceTool")
            .field("name", &self.name)
            .field("read_only", &self.read_only)
            .field("needs_approval", &self.needs_approval)
            .finish_non_exhaustive()
    }
}

impl SourceTool {
    /// A tool; an error when its schema is not a valid JSON Schema of an object (the tool is then not offered:
    /// a model cannot be told how to call it, and its calls could not be checked).
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
        read_only: bool,
        needs_approval: bool,
    ) -> Result<Self, String> {
        let name = name.into();
        let mut input_schema = input_schema;
        match input_schema.as_object_mut() {
            // Some endpoints refuse a schema without a root type (AGENTS-PROTOCOL.md §D); an object it must be.
            Some(schema) if schema.get("type").is_none() => {
                schema.insert("type".into(), Value::from("object"));
            }
            Some(schema) if schema.get("type") == Some(&Value::from("object")) => {}
            _ => return Err(format!("the tool `{name}` does not take an object")),
        }
        let invalid = |error: boon::CompileError| format!("the tool `{name}` has an invalid input schema: {error}");
        let mut compiler = boon::Compiler::new();
        compiler.use_loader(Box::new(NoLoader));
        compiler.set_default_draft(boon::Draft::V2020_12);
        let location = "urn:tool-input";
        compiler.add_resource(location, input_schema.clone()).map_err(invalid)?;
        let mut schemas = boon::Schemas::new();
        let index = compiler.compile(location, &mut schemas).map_err(invalid)?;
        let validator = Validator { schemas, index };
        Ok(Self {
            name,
            description: description.into(),
            input_schema,
            read_only,
            needs_approval,
            validator: Arc::new(validator),
        })
    }

    /// Checks arguments against the schema: the first few problems, each with where it is.
    pub fn validate(&self, input: &Value) -> Result<(), String> {
        let Validator { schemas, index } = self.validator.as_ref();
        let Err(error) = schemas.validate(input, *index) else { return Ok(()) };
        let mut problems = Vec::new();
        leaf_problems(&error, &mut problems);
        Err(format!("invalid arguments: {}", problems.join("; ")))
    }
}

/// The innermost problems of a validation error (at most three), each with where it is in the arguments.
fn leaf_problems(error: &boon::ValidationError<'_, '_>, problems: &mut Vec<String>) {
    if problems.len() >= 3 {
        return;
    }
    if error.causes.is_empty() {
        let at = error.instance_location.to_string();
        problems.push(if at.is_empty() { error.kind.to_string() } else { format!("{at}: {}", error.kind) });
    }
    for cause in &error.causes {
        leaf_problems(cause, problems);
    }
}

/// A source of tools: the user's own records, or one MCP server.
pub trait ToolSource: Send + Sync {
    /// The source's name: what `CHAT_TOOLS` lists, and the prefix of its tools' names (`genie__query`).
    fn name(&self) -> &str;

    /// Whether its tools are offered under their own names (the built-in ones) rather than prefixed.
    fn unprefixed(&self) -> bool {
        false
    }

    /// What kind of source it is (`records`, `mcp`), for `GET /api/config`.
    fn kind(&self) -> &'static str;

    /// Its tools now; none while it cannot be reached.
    fn tools(&self) -> Arc<[SourceTool]>;

    /// Why it cannot be used now, when it cannot.
    fn problem(&self) -> Option<String> {
        None
    }

    /// Calls one of its tools (by its own name) with checked arguments.
    fn call<'a>(
        &'a self,
        tool: &'a SourceTool,
        input: Value,
        context: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, String>>;
}
