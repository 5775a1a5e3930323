//! Who is calling: the [`CurrentUser`] extractor.
//!
//! Behind the Databricks Apps proxy the user is `x-forwarded-email`, else `x-forwarded-user` (the proxy sets
//! them and strips any the browser sent). Outside Apps the headers could come from anyone, so they are ignored
//! and every request is the configured local user, unless `TRUST_FORWARDED_HEADERS=true` asks to trust them.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use shared::{IdentityMode, Me};

use crate::config::IdentityConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// Header with the user's email, set by the Databricks Apps proxy.
pub const EMAIL_HEADER: &str = "x-forwarded-email";
/// Header with the user's id at the identity provider, set by the Databricks Apps proxy.
pub const USER_HEADER: &str = "x-forwarded-user";
/// Header with the user's display name, set by the Databricks Apps proxy.
pub const NAME_HEADER: &str = "x-forwarded-preferred-username";
/// Header with the user's own OAuth token, set by the Databricks Apps proxy when the app has user authorization.
pub const ACCESS_TOKEN_HEADER: &str = "x-forwarded-access-token";

/// Longest identity accepted from a header.
const MAX_IDENTITY_CHARS: usize = 320;

/// The authenticated caller.
#[derive(Clone)]
pub struct CurrentUser {
    /// Owner key for chats: the lower-cased email when known, else the proxy's user id.
    pub id: String,
    /// Email, when known.
    pub email: Option<String>,
    /// Display name, when the proxy sends one.
    pub display_name: Option<String>,
    /// How the identity was established.
    pub mode: IdentityMode,
    /// The user's Databricks token, when the proxy forwards one (never logged).
    pub access_token: Option<secrecy::SecretString>,
}

impl std::fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentUser").field("id", &self.id).field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl PartialEq for CurrentUser {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.email == other.email && self.mode == other.mode
    }
}

impl CurrentUser {
    /// Resolves the caller from the request headers under the configured identity mode.
    pub fn from_headers(config: &IdentityConfig, headers: &HeaderMap) -> Result<Self, ApiError> {
        let mode = match config {
            IdentityConfig::LocalUser { email } => {
                return Ok(CurrentUser {
                    id: email.clone(),
                    email: Some(email.clone()),
                    display_name: None,
                    mode: IdentityMode::LocalUser,
                    access_token: None,
                });
            }
            IdentityConfig::DatabricksApps => IdentityMode::DatabricksApps,
            IdentityConfig::TrustedHeaders => IdentityMode::TrustedHeaders,
        };
        // Whitespace or case differences must not split one person into two owners.
        let email = header(headers, EMAIL_HEADER).map(|e| e.to_lowercase());
        let user = header(headers, USER_HEADER);
        let id = email.clone().or(user).ok_or(ApiError::Unauthorized)?;
        let access_token = headers
            .get(ACCESS_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| secrecy::SecretString::from(t.to_owned()));
        Ok(CurrentUser { id, email, display_name: header(headers, NAME_HEADER), mode, access_token })
    }

    /// The `GET /api/me` view.
    pub fn to_me(&self) -> Me {
        Me {
            user_id: self.id.clone(),
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            mode: self.mode,
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty() && value.chars().count() <= MAX_IDENTITY_CHARS).then(|| value.to_owned())
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        CurrentUser::from_headers(&state.config.identity, &parts.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn apps_mode_prefers_the_email_and_normalises_it() {
        let user = CurrentUser::from_headers(
            &IdentityConfig::DatabricksApps,
            &headers(&[(EMAIL_HEADER, "  Ada@Example.com "), (USER_HEADER, "123")]),
        )
        .expect("identified");
        assert_eq!(user.id, "ada@example.com");
    }

    #[test]
    fn apps_mode_falls_back_to_the_user_header() {
        let user = CurrentUser::from_headers(&IdentityConfig::DatabricksApps, &headers(&[(USER_HEADER, "123@456")]))
            .expect("identified");
        assert_eq!(user.id, "123@456");
        assert_eq!(user.email, None);
    }

    #[test]
    fn apps_mode_without_headers_is_unauthorized() {
        let result = CurrentUser::from_headers(&IdentityConfig::DatabricksApps, &headers(&[(EMAIL_HEADER, "   ")]));
        assert!(matches!(result, Err(ApiError::Unauthorized)));
    }

    #[test]
    fn local_mode_ignores_forwarded_headers() {
        let config = IdentityConfig::LocalUser { email: "dev@localhost".into() };
        let user = CurrentUser::from_headers(&config, &headers(&[(EMAIL_HEADER, "mallory@evil.example")]))
            .expect("identified");
        assert_eq!(user.id, "dev@localhost");
    }
}
