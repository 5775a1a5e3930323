//! Why a Databricks credential could not be had; every message names the auth type and the fix, never a secret.

use super::auth_type::AuthType;
use super::config_file::ConfigFileError;
use super::host::HostError;
use super::vars::{ENV_AUTH_TYPE, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_TOKEN};

/// Why no token could be produced; the Display text names the auth type and the fix, and never contains secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The configured host is not a usable workspace URL.
    #[error("{origin}: {source}")]
    InvalidHost {
        /// Where the host came from.
        origin: String,
        /// What is wrong with it.
        #[source]
        source: HostError,
    },
    /// `.databrickscfg` or the requested profile could not be used.
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    /// An auth type name this module does not implement.
    #[error("{origin} is {value:?}, which is not supported here; use pat, oauth-m2m or databricks-cli")]
    UnknownAuthType {
        /// Where the name came from.
        origin: String,
        /// The name.
        value: String,
    },
    /// An auth type was forced but its credentials are missing.
    #[error("{auth_type}: selected by {forced_by}, but these are not set: {missing}")]
    MissingCredentials {
        /// The forced type.
        auth_type: AuthType,
        /// Where the type was forced.
        forced_by: String,
        /// The missing variables / profile keys.
        missing: String,
    },
    /// A host is configured but no credentials of any supported type.
    #[error(
        "no Databricks credentials found for {host} (tried pat and oauth-m2m in {searched}); set {ENV_TOKEN}, or {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}, or {ENV_AUTH_TYPE}=databricks-cli after `databricks auth login --host {host}`"
    )]
    NoCredentials {
        /// The normalised host.
        host: String,
        /// Where credentials were looked for.
        searched: String,
    },
    /// The OAuth token endpoint rejected the client id/secret.
    #[error("oauth-m2m: the token endpoint {url} refused the client credentials ({status} {error}); check {fix}")]
    ClientCredentialsRefused {
        /// The token endpoint.
        url: String,
        /// HTTP status code.
        status: u16,
        /// OAuth `error` code.
        error: String,
        /// Which settings hold the client credentials.
        fix: String,
    },
    /// An HTTP exchange with the workspace failed (transport, unexpected status or unreadable body).
    #[error("{context} {url} {reason}")]
    Http {
        /// Auth type or subsystem plus what was being called, e.g. "oauth-m2m: the token endpoint".
        context: String,
        /// The URL called.
        url: String,
        /// What went wrong and what to check.
        reason: String,
    },
    /// The Databricks CLI could not produce a token.
    #[error("databricks-cli: {reason}; run `databricks auth login --host {host}`")]
    Cli {
        /// What went wrong (quotes the CLI's first stderr line).
        reason: String,
        /// The normalised host, for the login hint.
        host: String,
    },
    /// The Lakebase credential API answered with an error.
    #[error("lakebase: POST {url} failed ({status} {error_code}): {message}; check {fix}")]
    Lakebase {
        /// The credential API URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Databricks `error_code`.
        error_code: String,
        /// Databricks `message`.
        message: String,
        /// Which setting to check.
        fix: String,
    },
}
