//! OAuth machine-to-machine: a workspace token from a service principal's client id and secret (PROTOCOLS.md C.3).

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::error::AuthError;
use super::token_cache::{Fetched, HTTP_TIMEOUT, describe_reqwest};
use super::vars::ENV_HOST;

/// Lifetime assumed when the token endpoint omits `expires_in` (C.6: OAuth tokens live one hour).
const DEFAULT_OAUTH_LIFETIME: Duration = Duration::from_secs(3600);

/// OAuth credentials for the client-credentials grant.
pub(super) struct M2m {
    pub(super) token_url: String,
    pub(super) client_id: String,
    pub(super) client_secret: SecretString,
    /// Names the settings that hold the credentials, for error messages.
    pub(super) fix: String,
}

#[derive(Deserialize)]
struct OAuthToken {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct OAuthErrorBody {
    error: Option<String>,
    error_description: Option<String>,
}

impl M2m {
    pub(super) async fn fetch(&self, http: &reqwest::Client) -> Result<Fetched, AuthError> {
        let url = &self.token_url;
        let http_err = |reason: String| AuthError::Http {
            context: "oauth-m2m: the token endpoint".into(),
            url: url.clone(),
            reason,
        };
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.client_id,
            self.client_secret.expose_secret()
        ));
        let mut header = HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| http_err("cannot be called: the client credentials are not valid header text".into()))?;
        header.set_sensitive(true);
        let started = Instant::now();
        let response = http
            .post(url)
            .header(AUTHORIZATION, header)
            .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .map_err(|e| http_err(format!("could not be reached ({}); check {ENV_HOST}", describe_reqwest(e))))?;
        let status = response.status();
        let body =
            response.bytes().await.map_err(|e| http_err(format!("failed mid-response ({})", describe_reqwest(e))))?;
        if !status.is_success() {
            let parsed: OAuthErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            let code = parsed.error.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
            if status == reqwest::StatusCode::UNAUTHORIZED
                || matches!(code.as_str(), "invalid_client" | "unauthorized_client")
            {
                return Err(AuthError::ClientCredentialsRefused {
                    url: url.clone(),
                    status: status.as_u16(),
                    error: code,
                    fix: self.fix.clone(),
                });
            }
            let detail = parsed.error_description.map(|d| format!(": {d}")).unwrap_or_default();
            return Err(http_err(format!("answered {} {code}{detail}", status.as_u16())));
        }
        let token: OAuthToken = serde_json::from_slice(&body)
            .map_err(|e| http_err(format!("returned an unreadable token response ({e})")))?;
        let lifetime = token.expires_in.map_or(DEFAULT_OAUTH_LIFETIME, Duration::from_secs);
        Ok(Fetched { secret: token.access_token.into(), expires: Some(started + lifetime) })
    }
}
