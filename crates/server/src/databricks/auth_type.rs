//! The ways of obtaining a workspace token that this server implements.

use std::fmt;

/// The supported ways of obtaining a workspace token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// Personal access token (`DATABRICKS_TOKEN` / `token`).
    Pat,
    /// OAuth client credentials (`DATABRICKS_CLIENT_ID` + `DATABRICKS_CLIENT_SECRET`).
    OAuthM2m,
    /// Tokens from `databricks auth token` (U2M login done by the CLI).
    DatabricksCli,
}

impl AuthType {
    /// The name used by `DATABRICKS_AUTH_TYPE` and `auth_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pat => "pat",
            Self::OAuthM2m => "oauth-m2m",
            Self::DatabricksCli => "databricks-cli",
        }
    }

    /// Parses an auth type name (case-insensitive); None for names this module does not implement.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "pat" => Some(Self::Pat),
            "oauth-m2m" => Some(Self::OAuthM2m),
            "databricks-cli" => Some(Self::DatabricksCli),
            _ => None,
        }
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
