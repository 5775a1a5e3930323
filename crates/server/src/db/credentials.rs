//! Lakebase passwords for the pool (PROTOCOLS.md §E): Lakebase takes a short-lived OAuth credential as the
//! Postgres password, checked only when a connection opens. The pool therefore always holds connect options with
//! a current password: minted before the first connection, replaced ahead of expiry by a background task, and
//! replaced at once when the database refuses a password (SQLSTATE 28P01, e.g. after a revocation). Connections
//! already open stay valid, as Lakebase enforces expiry only at login.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::databricks::LakebasePasswords;

/// Longest pause between two looks at the credential (the cache decides when a new one is minted).
const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest pause between two looks, and between two re-mints after refused passwords.
const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Tells a pool's password rotation that the database refused the password (SQLSTATE 28P01), so it mints a new
/// one now rather than at its next scheduled look. Each pool has its own: two servers in one process (tests, tools)
/// never wake each other's rotation.
#[derive(Clone, Debug, Default)]
pub struct PasswordRefusals(Arc<Notify>);

impl PasswordRefusals {
    /// Records a refusal.
    pub fn note(&self) {
        self.0.notify_waiters();
    }

    /// Records a refusal if `error` is one.
    pub fn observe(&self, error: &sqlx::Error) {
        if is_auth_failure(error) {
            self.note();
        }
    }

    async fn refused(&self) {
        self.0.notified().await;
    }
}

/// Whether an error is PostgreSQL refusing the password (SQLSTATE 28P01 `invalid_password`).
pub fn is_auth_failure(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("28P01"))
}

/// Keeps a pool's password current.
pub struct PasswordRotation {
    passwords: LakebasePasswords,
    base: PgConnectOptions,
    current: std::sync::Mutex<SecretString>,
}

impl PasswordRotation {
    /// Mints the first password; returns the rotation and the connect options to open the pool with.
    pub async fn start(
        passwords: LakebasePasswords,
        base: PgConnectOptions,
    ) -> anyhow::Result<(Arc<Self>, PgConnectOptions, Option<Instant>)> {
        let (password, expires) = passwords
            .password_with_expiry()
            .await
            .map_err(|error| anyhow::anyhow!("cannot get a Lakebase password for {}: {error}", base.get_username()))?;
        let options = base.clone().password(password.expose_secret());
        let rotation = Arc::new(Self { passwords, base, current: std::sync::Mutex::new(password) });
        Ok((rotation, options, expires.map(Instant::from_std)))
    }

    /// Replaces the pool's password whenever the credential changes or the database refuses it, until the pool
    /// closes.
    pub fn spawn(
        self: Arc<Self>,
        pool: PgPool,
        first_expiry: Option<Instant>,
        refusals: PasswordRefusals,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut expires = first_expiry;
            let mut last_forced: Option<Instant> = None;
            while !pool.is_closed() {
                let refused = tokio::select! {
                    () = refusals.refused() => true,
                    () = tokio::time::sleep(check_interval(expires, Instant::now())) => false,
                };
                if refused {
                    // Many requests fail together when a password is revoked; mint once for all of them.
                    if last_forced.is_some_and(|at| at.elapsed() < MIN_CHECK_INTERVAL) {
                        continue;
                    }
                    last_forced = Some(Instant::now());
                    tracing::warn!("the database refused the Lakebase password; minting a new one");
                    self.passwords.invalidate();
                }
                match self.passwords.password_with_expiry().await {
                    Ok((password, new_expiry)) => {
                        expires = new_expiry.map(Instant::from_std);
                        self.install(&pool, password);
                    }
                    Err(error) => {
                        tracing::error!(error = %error, "minting a Lakebase password failed; will retry");
                        expires = None;
                    }
                }
            }
        })
    }

    /// Hands `password` to the connections the pool opens from now on, if it is new.
    fn install(&self, pool: &PgPool, password: SecretString) {
        let mut current = self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.expose_secret() == password.expose_secret() {
            return;
        }
        pool.set_connect_options(self.base.clone().password(password.expose_secret()));
        *current = password;
        tracing::info!("new Lakebase password in use for new connections");
    }
}

/// How long to wait before looking at the credential again: a quarter of its remaining life, so the look after
/// the cache starts minting (2 minutes before expiry for one-hour credentials) comes well before expiry.
fn check_interval(expires: Option<Instant>, now: Instant) -> Duration {
    match expires {
        Some(at) => (at.saturating_duration_since(now) / 4).clamp(MIN_CHECK_INTERVAL, MAX_CHECK_INTERVAL),
        // Unknown expiry, or the last mint failed: look again soon.
        None => MIN_CHECK_INTERVAL * 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_pool_hears_only_its_own_refusals() {
        let (mine, theirs) = (PasswordRefusals::default(), PasswordRefusals::default());
        let waiting = tokio::spawn({
            let mine = mine.clone();
            async move { mine.refused().await }
        });
        tokio::task::yield_now().await;
        theirs.note();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "another pool's refusal woke this rotation");
        mine.note();
        tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("woken").expect("task");
    }

    #[test]
    fn looks_again_at_a_quarter_of_the_remaining_life_within_bounds() {
        let now = Instant::now();
        assert_eq!(check_interval(Some(now + Duration::from_secs(3600)), now), MAX_CHECK_INTERVAL);
        assert_eq!(check_interval(Some(now + Duration::from_secs(40)), now), Duration::from_secs(10));
        assert_eq!(check_interval(Some(now), now), MIN_CHECK_INTERVAL);
        assert_eq!(check_interval(None, now), Duration::from_secs(5));
    }
}
