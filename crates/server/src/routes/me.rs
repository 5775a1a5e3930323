//! `GET /api/me`: the caller's identity.

use shared::Me;

#[cfg(feature = "openapi")]
use super::openapi::Unauthorized;
use crate::error::AppJson;
use crate::identity::CurrentUser;

/// Returns who the server thinks the caller is.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/api/me", tag = "system",
    responses((status = 200, body = Me), Unauthorized)))]
pub async fn me(user: CurrentUser) -> AppJson<Me> {
    AppJson(user.to_me())
}
