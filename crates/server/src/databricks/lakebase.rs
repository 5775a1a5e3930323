//! Lakebase Postgres passwords (PROTOCOLS.md E): minted per source (Autoscaling credential API, Provisioned
//! credential API, or the workspace token itself), cached until shortly before expiry with a single mint in flight.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::auth::DatabricksAuth;
use super::error::AuthError;
use super::token_cache::{Fetched, HTTP_TIMEOUT, TokenCache, describe_reqwest, instant_at};
use super::vars::Vars;

/// Variable holding the Autoscaling endpoint path (`projects/<p>/branches/<b>/endpoints/<e>`).
pub const ENV_LAKEBASE_ENDPOINT: &str = "LAKEBASE_ENDPOINT";
/// Variable holding the Provisioned database instance name.
pub const ENV_LAKEBASE_INSTANCE: &str = "LAKEBASE_INSTANCE";
/// Alternative variable for the Provisioned instance name.
pub const ENV_DATABASE_INSTANCE_NAME: &str = "DATABASE_INSTANCE_NAME";

const AUTOSCALING_PATH: &str = "/api/2.0/postgres/credentials";
const PROVISIONED_PATH: &str = "/api/2.0/database/credentials";
/// A PAT has no expiry, but a password derived from it is re-read hourly like Lakebase tokens (E.1).
const PAT_PASSWORD_LIFETIME: Duration = Duration::from_secs(3600);

/// Where Postgres passwords come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakebaseSource {
    /// Lakebase Autoscaling: `POST /api/2.0/postgres/credentials` for this endpoint path.
    Autoscaling {
        /// `projects/<project>/branches/<branch>/endpoints/<endpoint>`.
        endpoint: String,
    },
    /// Lakebase Provisioned: `POST /api/2.0/database/credentials` for this instance.
    Provisioned {
        /// The database instance name.
        instance: String,
    },
    /// The workspace OAuth token itself is the password (what the official chatbot template does, E.2).
    WorkspaceToken,
}

struct Inner {
    auth: DatabricksAuth,
    source: LakebaseSource,
    cache: TokenCache,
}

/// Shared, cheap-to-clone source of Lakebase passwords for new Postgres connections.
#[derive(Clone)]
pub struct LakebasePasswords {
    inner: Arc<Inner>,
}

impl fmt::Debug for LakebasePasswords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakebasePasswords").field("source", &self.inner.source).finish_non_exhaustive()
    }
}

/// Passwords are replaced when less than `min(2 min, 20% of lifetime)` remains: 2 minutes for real one-hour
/// credentials (E.4, AppKit), while a short-lived credential is still cached for most of its life.
fn password_lead(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(120))
}

#[derive(Deserialize)]
struct AutoscalingCredential {
    token: String,
    expire_time: String,
}

#[derive(Deserialize)]
struct ProvisionedCredential {
    token: String,
    expiration_time: String,
}

#[derive(Deserialize, Default)]
struct DatabricksErrorBody {
    error_code: Option<String>,
    message: Option<String>,
}

impl LakebasePasswords {
    /// Passwords from `source`, authenticated to the credential APIs with `auth`.
    pub fn new(auth: DatabricksAuth, source: LakebaseSource) -> Self {
        Self { inner: Arc::new(Inner { auth, source, cache: TokenCache::new("lakebase-password", password_lead) }) }
    }

    /// Chooses the source: LAKEBASE_ENDPOINT → Autoscaling, else LAKEBASE_INSTANCE / DATABASE_INSTANCE_NAME → Provisioned.
    ///
    /// With neither set, the workspace token itself is the password (WorkspaceToken).
    pub fn source_from_vars(vars: &dyn Vars) -> LakebaseSource {
        if let Some(endpoint) = vars.var(ENV_LAKEBASE_ENDPOINT) {
            return LakebaseSource::Autoscaling { endpoint: endpoint.trim().to_string() };
        }
        match vars.var(ENV_LAKEBASE_INSTANCE).or_else(|| vars.var(ENV_DATABASE_INSTANCE_NAME)) {
            Some(instance) => LakebaseSource::Provisioned { instance: instance.trim().to_string() },
            None => LakebaseSource::WorkspaceToken,
        }
    }

    /// The configured source.
    pub fn source(&self) -> &LakebaseSource {
        &self.inner.source
    }

    /// A password for a new Postgres connection: cached until 2 minutes before expiry, single refresh in flight.
    pub async fn password(&self) -> Result<SecretString, AuthError> {
        let inner = &*self.inner;
        Ok(inner.cache.get(|| inner.mint()).await?.secret)
    }

    /// Like [`password`](Self::password), with the moment the password stops working (`None`: unknown).
    pub async fn password_with_expiry(&self) -> Result<(SecretString, Option<Instant>), AuthError> {
        let inner = &*self.inner;
        let fetched = inner.cache.get(|| inner.mint()).await?;
        Ok((fetched.secret, fetched.expires))
    }

    /// Drop the cached credential (after a 28P01 authentication failure) so the next call mints a new one.
    pub fn invalidate(&self) {
        self.inner.cache.invalidate();
        if self.inner.source == LakebaseSource::WorkspaceToken {
            // The rejected password was the workspace token itself, so that cache is stale too.
            self.inner.auth.invalidate();
        }
    }
}

impl Inner {
    async fn mint(&self) -> Result<Fetched, AuthError> {
        match &self.source {
            LakebaseSource::WorkspaceToken => {
                let fetched = self.auth.fetched().await?;
                let expires = fetched.expires.unwrap_or_else(|| Instant::now() + PAT_PASSWORD_LIFETIME);
                Ok(Fetched { secret: fetched.secret, expires: Some(expires) })
            }
            LakebaseSource::Autoscaling { endpoint } => {
                let body = serde_json::json!({ "endpoint": endpoint });
                let fix = format!("{ENV_LAKEBASE_ENDPOINT}={endpoint:?} and the app's access to that endpoint");
                let credential: AutoscalingCredential = self.post(AUTOSCALING_PATH, &body, &fix).await?;
                self.fetched(credential.token, &credential.expire_time, AUTOSCALING_PATH)
            }
            LakebaseSource::Provisioned { instance } => {
                let request_id = uuid::Uuid::new_v4().to_string();
                let body = serde_json::json!({ "instance_names": [instance], "request_id": request_id });
                let fix = format!("{ENV_LAKEBASE_INSTANCE}={instance:?} and the app's access to that instance");
                let credential: ProvisionedCredential = self.post(PROVISIONED_PATH, &body, &fix).await?;
                self.fetched(credential.token, &credential.expiration_time, PROVISIONED_PATH)
            }
        }
    }

    fn fetched(&self, token: String, expiry: &str, path: &str) -> Result<Fetched, AuthError> {
        let expiry = DateTime::parse_from_rfc3339(expiry).map_err(|e| AuthError::Http {
            context: "lakebase: the credential API".into(),
            url: format!("{}{path}", self.auth.host()),
            reason: format!("returned an unreadable expiry ({e})"),
        })?;
        Ok(Fetched { secret: token.into(), expires: Some(instant_at(expiry.with_timezone(&Utc))) })
    }

    /// POSTs `body` with the workspace token; retries once with a fresh token after a 401 (revoked or rotated).
    async fn post<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value, fix: &str) -> Result<T, AuthError> {
        let url = format!("{}{path}", self.auth.host());
        let http_err = |reason: String| AuthError::Http {
            context: "lakebase: the credential API".into(),
            url: url.clone(),
            reason,
        };
        let mut retried = false;
        loop {
            let token = self.auth.token().await?;
            let response = self
                .auth
                .http()
                .post(&url)
                .bearer_auth(token.expose_secret())
                .json(body)
                .timeout(HTTP_TIMEOUT)
                .send()
                .await
                .map_err(|e| http_err(format!("could not be reached ({})", describe_reqwest(e))))?;
            let status = response.status();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| http_err(format!("failed mid-response ({})", describe_reqwest(e))))?;
            if status == reqwest::StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                self.auth.invalidate();
                continue;
            }
            if !status.is_success() {
                let parsed: DatabricksErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
                let message = parsed.message.unwrap_or_else(|| {
                    let text = String::from_utf8_lossy(&bytes);
                    let text: String = text.trim().chars().take(200).collect();
                    if text.is_empty() { "(empty body)".to_string() } else { text }
                });
                // Still 401 with a fresh workspace token: the identity itself is not accepted.
                let fix = if status == reqwest::StatusCode::UNAUTHORIZED {
                    format!("the workspace credentials ({}) used for {}", self.auth.auth_type(), self.auth.host())
                } else {
                    fix.to_string()
                };
                return Err(AuthError::Lakebase {
                    url,
                    status: status.as_u16(),
                    error_code: parsed.error_code.unwrap_or_else(|| "UNKNOWN".to_string()),
                    message,
                    fix,
                });
            }
            return serde_json::from_slice(&bytes)
                .map_err(|e| http_err(format!("returned an unreadable credential ({e})")));
        }
    }
}
