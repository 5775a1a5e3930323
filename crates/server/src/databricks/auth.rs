//! Databricks unified client authentication (PROTOCOLS.md C): the credential chain (forced type → PAT → OAuth M2M
//! → config profile) that picks where the workspace token comes from, and the token it hands out (cached, refreshed
//! ahead of expiry).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::auth_type::AuthType;
use super::cli::Cli;
use super::config_file::{self, Profile};
use super::error::AuthError;
use super::host::normalize_host;
use super::m2m::M2m;
use super::token_cache::{Fetched, TokenCache};
use super::vars::{ENV_AUTH_TYPE, ENV_CLI_PATH, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_HOST, ENV_TOKEN, Vars};

/// Workspace tokens are refreshed when less than `min(300 s, 20% of lifetime)` remains.
fn workspace_token_lead(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(300))
}

enum Source {
    Pat(SecretString),
    M2m(M2m),
    Cli(Cli),
}

struct Inner {
    host: String,
    auth_type: AuthType,
    profile: Option<String>,
    source: Source,
    http: reqwest::Client,
    cache: TokenCache,
}

/// Workspace credentials resolved once at startup; cheap to clone, shares one token cache.
#[derive(Clone)]
pub struct DatabricksAuth {
    inner: Arc<Inner>,
}

impl fmt::Debug for DatabricksAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabricksAuth")
            .field("host", &self.inner.host)
            .field("auth_type", &self.inner.auth_type)
            .field("profile", &self.inner.profile)
            .finish_non_exhaustive()
    }
}

/// Settings from one place (environment or profile), before the chain picks an auth type.
#[derive(Default)]
struct Settings {
    host: Option<String>,
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    cli_path: Option<String>,
}

impl Settings {
    fn from_vars(vars: &dyn Vars) -> Self {
        Self {
            host: vars.var(ENV_HOST),
            token: vars.var(ENV_TOKEN),
            client_id: vars.var(ENV_CLIENT_ID),
            client_secret: vars.var(ENV_CLIENT_SECRET),
            cli_path: vars.var(ENV_CLI_PATH),
        }
    }

    fn from_profile(profile: &Profile) -> Self {
        let get = |key: &str| profile.get(key).map(str::to_string);
        Self {
            host: get("host"),
            token: get("token"),
            client_id: get("client_id"),
            client_secret: get("client_secret"),
            cli_path: get("databricks_cli_path"),
        }
    }

    fn has_client_credentials(&self) -> bool {
        self.client_id.is_some() && self.client_secret.is_some()
    }
}

/// The environment and the chosen profile, merged per attribute with the environment winning.
struct Resolution<'a> {
    env: Settings,
    file: Settings,
    profile: Option<&'a Profile>,
}

impl Resolution<'_> {
    fn origin(&self, env_name: &str, key: &str, from_env: bool) -> String {
        match (from_env, self.profile) {
            (false, Some(profile)) => profile.describe_key(key),
            _ => env_name.to_string(),
        }
    }

    fn pat(&self) -> Option<Source> {
        let token = self.env.token.clone().or_else(|| self.file.token.clone())?;
        Some(Source::Pat(token.into()))
    }

    fn m2m(&self, host: &str) -> Option<Source> {
        let client_id = self.env.client_id.clone().or_else(|| self.file.client_id.clone())?;
        let client_secret = self.env.client_secret.clone().or_else(|| self.file.client_secret.clone())?;
        let id_origin = self.origin(ENV_CLIENT_ID, "client_id", self.env.client_id.is_some());
        let secret_origin = self.origin(ENV_CLIENT_SECRET, "client_secret", self.env.client_secret.is_some());
        let fix = match (self.env.client_id.is_some(), self.env.client_secret.is_some(), self.profile) {
            (false, false, Some(profile)) => {
                format!("client_id / client_secret in profile [{}] of {}", profile.name(), profile.path().display())
            }
            _ => format!("{id_origin} / {secret_origin}"),
        };
        Some(Source::M2m(M2m {
            token_url: format!("{host}/oidc/v1/token"),
            client_id,
            client_secret: client_secret.into(),
            fix,
        }))
    }

    fn cli(&self, vars: &dyn Vars, host: &str) -> Source {
        let args: Vec<String> = match self.profile {
            Some(profile) => vec!["auth".into(), "token".into(), "--profile".into(), profile.name().into()],
            None => vec!["auth".into(), "token".into(), "--host".into(), host.into()],
        };
        let child_env = ["PATH", "HOME", config_file::ENV_CONFIG_FILE]
            .into_iter()
            .filter_map(|name| vars.var(name).map(|value| (name, value)))
            .collect();
        Source::Cli(Cli {
            program: self.env.cli_path.clone().or_else(|| self.file.cli_path.clone()).map(PathBuf::from),
            args,
            search_path: vars.var("PATH").map(OsString::from),
            child_env,
        })
    }

    /// Builds the source for a forced type, or explains which credentials are missing.
    fn forced(&self, vars: &dyn Vars, host: &str, auth_type: AuthType, forced_by: String) -> Result<Source, AuthError> {
        let missing = |names: &[(&str, &str)]| AuthError::MissingCredentials {
            auth_type,
            forced_by: forced_by.clone(),
            missing: names
                .iter()
                .map(|(env, key)| format!("{env} (or {key} in the profile)"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        match auth_type {
            AuthType::Pat => self.pat().ok_or_else(|| missing(&[(ENV_TOKEN, "token")])),
            AuthType::OAuthM2m => self.m2m(host).ok_or_else(|| {
                let has_id = self.env.client_id.is_some() || self.file.client_id.is_some();
                let has_secret = self.env.client_secret.is_some() || self.file.client_secret.is_some();
                let mut names = Vec::new();
                if !has_id {
                    names.push((ENV_CLIENT_ID, "client_id"));
                }
                if !has_secret {
                    names.push((ENV_CLIENT_SECRET, "client_secret"));
                }
                missing(&names)
            }),
            AuthType::DatabricksCli => Ok(self.cli(vars, host)),
        }
    }
}

/// Whether the config file must be consulted: a profile was named, or the environment alone is incomplete.
fn needs_profile(vars: &dyn Vars, env: &Settings, forced: Option<AuthType>) -> bool {
    if vars.var(config_file::ENV_CONFIG_PROFILE).is_some() || env.host.is_none() {
        return true;
    }
    match forced {
        Some(AuthType::Pat) => env.token.is_none(),
        Some(AuthType::OAuthM2m) => !env.has_client_credentials(),
        Some(AuthType::DatabricksCli) => false,
        None => env.token.is_none() && !env.has_client_credentials(),
    }
}

impl DatabricksAuth {
    /// Resolves host and credentials from `vars`; None when no Databricks host is configured anywhere (env or profile).
    pub fn from_vars(vars: &dyn Vars, http: reqwest::Client) -> Result<Option<Self>, AuthError> {
        let forced_env = match vars.var(ENV_AUTH_TYPE) {
            Some(value) => Some(
                AuthType::from_name(&value)
                    .ok_or_else(|| AuthError::UnknownAuthType { origin: ENV_AUTH_TYPE.into(), value })?,
            ),
            None => None,
        };
        let env = Settings::from_vars(vars);
        let profile = if needs_profile(vars, &env, forced_env) { config_file::load_profile(vars)? } else { None };
        let file = profile.as_ref().map(Settings::from_profile).unwrap_or_default();
        let resolution = Resolution { env, file, profile: profile.as_ref() };

        let Some(raw_host) = resolution.env.host.as_deref().or(resolution.file.host.as_deref()) else {
            tracing::debug!("no Databricks host configured; Databricks features are off");
            return Ok(None);
        };
        let host_origin = resolution.origin(ENV_HOST, "host", resolution.env.host.is_some());
        let host = normalize_host(raw_host).map_err(|source| AuthError::InvalidHost { origin: host_origin, source })?;
        if let (Some(_), Some(profile_host), Some(profile)) =
            (&resolution.env.host, &resolution.file.host, resolution.profile)
            && normalize_host(profile_host).ok().as_deref() != Some(host.as_str())
        {
            // Env wins (spec), but the profile's credentials were issued for another host: say so once.
            tracing::warn!(profile = profile.name(), %host, "DATABRICKS_HOST overrides the host of the config profile");
        }

        let profile_auth_type = match resolution.profile.and_then(|p| p.get("auth_type").map(|v| (p, v))) {
            Some((p, value)) => Some((
                AuthType::from_name(value).ok_or_else(|| AuthError::UnknownAuthType {
                    origin: p.describe_key("auth_type"),
                    value: value.to_string(),
                })?,
                p.describe_key("auth_type"),
            )),
            None => None,
        };
        // Env credentials beat everything from the file (spec order: PAT → M2M → profile); the profile's
        // `auth_type` only decides among the profile's own credentials.
        let source = if let Some(auth_type) = forced_env {
            resolution.forced(vars, &host, auth_type, ENV_AUTH_TYPE.to_string())?
        } else if let Some(token) = resolution.env.token.clone() {
            Source::Pat(token.into())
        } else if resolution.env.has_client_credentials() {
            resolution.m2m(&host).ok_or_else(|| no_credentials(&host, resolution.profile))?
        } else if let Some((auth_type, forced_by)) = profile_auth_type {
            resolution.forced(vars, &host, auth_type, forced_by)?
        } else if let Some(source) = resolution.pat() {
            source
        } else {
            resolution.m2m(&host).ok_or_else(|| no_credentials(&host, resolution.profile))?
        };
        let auth_type = match &source {
            Source::Pat(_) => AuthType::Pat,
            Source::M2m(_) => AuthType::OAuthM2m,
            Source::Cli(_) => AuthType::DatabricksCli,
        };
        let profile_name = resolution.profile.map(|p| p.name().to_string());
        tracing::debug!(%host, %auth_type, profile = profile_name.as_deref(), "resolved Databricks authentication");
        Ok(Some(Self {
            inner: Arc::new(Inner {
                host,
                auth_type,
                profile: profile_name,
                source,
                http,
                cache: TokenCache::new("databricks-token", workspace_token_lead),
            }),
        }))
    }

    /// The normalised workspace URL, e.g. `https://adb-1.7.azuredatabricks.net`.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The auth type the chain selected.
    pub fn auth_type(&self) -> AuthType {
        self.inner.auth_type
    }

    /// The config profile used, if any.
    pub fn profile(&self) -> Option<&str> {
        self.inner.profile.as_deref()
    }

    /// The HTTP client used for token and credential calls.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// A valid bearer token, cached; refreshed ahead of expiry with a single refresh in flight.
    pub async fn token(&self) -> Result<SecretString, AuthError> {
        Ok(self.fetched().await?.secret)
    }

    /// The token with its expiry, for callers that cache derived credentials.
    pub(crate) async fn fetched(&self) -> Result<Fetched, AuthError> {
        let inner = &*self.inner;
        inner.cache.get(|| inner.fetch()).await
    }

    /// Forget the cached token (e.g. after a 401) so the next call fetches a new one.
    pub fn invalidate(&self) {
        self.inner.cache.invalidate();
    }
}

impl Inner {
    async fn fetch(&self) -> Result<Fetched, AuthError> {
        match &self.source {
            Source::Pat(token) => Ok(Fetched { secret: token.clone(), expires: None }),
            Source::M2m(m2m) => m2m.fetch(&self.http).await,
            Source::Cli(cli) => cli.fetch(&self.host).await,
        }
    }
}

fn no_credentials(host: &str, profile: Option<&Profile>) -> AuthError {
    let searched = match profile {
        Some(p) => format!("the environment and profile [{}] of {}", p.name(), p.path().display()),
        None => "the environment (no config profile found)".to_string(),
    };
    AuthError::NoCredentials { host: host.to_string(), searched }
}
