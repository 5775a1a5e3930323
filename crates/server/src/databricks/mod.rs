//! Databricks access for the server: unified client authentication (the variables it reads, the host, the
//! credential chain, OAuth M2M, the CLI, the token cache), the `~/.databrickscfg` reader, Lakebase Postgres
//! password minting, and the MLflow assessments that carry users' feedback. Wire formats follow PROTOCOLS.md C, E
//! and F.

pub mod auth;
pub mod auth_type;
pub mod cli;
pub mod config_file;
pub mod error;
pub mod host;
pub mod lakebase;
pub mod m2m;
pub mod mlflow;
pub mod token_cache;
pub mod vars;

pub use auth::DatabricksAuth;
pub use auth_type::AuthType;
pub use config_file::{ConfigFile, ConfigFileError, Profile};
pub use error::AuthError;
pub use host::{HostError, normalize_host};
pub use lakebase::{LakebasePasswords, LakebaseSource};
pub use vars::{ProcessVars, Vars};
