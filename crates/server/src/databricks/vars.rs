//! Where the Databricks settings come from: the variables the unified authentication reads (PROTOCOLS.md C), and
//! the sources of variables (the process, the server's configuration snapshot, or a test's map).

use std::collections::HashMap;

use crate::config::EnvMap;

/// Workspace URL variable.
pub const ENV_HOST: &str = "DATABRICKS_HOST";
/// Personal access token variable.
pub const ENV_TOKEN: &str = "DATABRICKS_TOKEN";
/// OAuth M2M client id variable.
pub const ENV_CLIENT_ID: &str = "DATABRICKS_CLIENT_ID";
/// OAuth M2M client secret variable.
pub const ENV_CLIENT_SECRET: &str = "DATABRICKS_CLIENT_SECRET";
/// Variable forcing one auth type.
pub const ENV_AUTH_TYPE: &str = "DATABRICKS_AUTH_TYPE";
/// Variable naming the Databricks CLI binary.
pub const ENV_CLI_PATH: &str = "DATABRICKS_CLI_PATH";

/// A source of configuration variables, so tests can inject values; blank values count as unset.
pub trait Vars {
    /// The non-blank value of `name`, if any.
    fn var(&self, name: &str) -> Option<String>;
}

impl Vars for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }
}

/// Reads variables from the process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessVars;

impl Vars for ProcessVars {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Vars for EnvMap {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }
}
