//! Databricks access for the server: unified client authentication (host, credential chain, token cache), the
//! `~/.databrickscfg` reader, and Lakebase Postgres password minting. Wire formats follow PROTOCOLS.md C and E.

pub mod auth;
pub mod config_file;
pub mod lakebase;

pub use auth::{AuthError, AuthType, DatabricksAuth, HostError, ProcessVars, Vars, normalize_host};
pub use config_file::{ConfigFile, ConfigFileError, Profile};
pub use lakebase::{LakebasePasswords, LakebaseSource};
