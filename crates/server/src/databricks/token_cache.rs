//! A single-flight cache of one expiring secret (a workspace token, a Lakebase password): refreshed ahead of
//! expiry by one caller while the others wait, and kept past a failed refresh until it expires.

use std::error::Error as _;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::error::AuthError;

/// Per-request timeout for calls to the workspace, so a hung endpoint cannot stall every caller behind the lock.
pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// After a failed refresh, keep serving the still-valid old value this long before trying again.
const RETRY_BACKOFF: Duration = Duration::from_secs(10);

/// A secret with the moment it stops working (None: never).
#[derive(Clone)]
pub(crate) struct Fetched {
    pub(crate) secret: SecretString,
    pub(crate) expires: Option<Instant>,
}

/// Converts a wall-clock expiry into a monotonic deadline (already-past times become "now").
pub(crate) fn instant_at(expiry: DateTime<Utc>) -> Instant {
    let now = Instant::now();
    match (expiry - Utc::now()).to_std() {
        Ok(left) => now + left,
        Err(_) => now,
    }
}

#[derive(Clone)]
struct Entry {
    fetched: Fetched,
    refresh_at: Option<Instant>,
}

#[derive(Default)]
struct CacheState {
    entry: Option<Entry>,
    /// Set after a failed refresh that fell back to the old value, to avoid hammering a failing endpoint.
    retry_at: Option<Instant>,
}

/// Caches one expiring secret; refreshes it `lead(lifetime)` before expiry with a single refresh in flight.
pub(crate) struct TokenCache {
    label: &'static str,
    lead: fn(Duration) -> Duration,
    state: Mutex<CacheState>,
    // Held across the fetch so concurrent callers queue behind one refresh instead of each calling the endpoint;
    // tokio's Mutex is released if the refreshing caller is cancelled, letting the next waiter take over.
    refresh: tokio::sync::Mutex<()>,
}

impl TokenCache {
    /// A cache named `label` in logs, refreshing `lead(lifetime)` ahead of expiry.
    pub(crate) fn new(label: &'static str, lead: fn(Duration) -> Duration) -> Self {
        Self { label, lead, state: Mutex::new(CacheState::default()), refresh: tokio::sync::Mutex::new(()) }
    }

    fn state(&self) -> MutexGuard<'_, CacheState> {
        // The state is a plain value that is always consistent, so a panic elsewhere cannot corrupt it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(&self, now: Instant) -> Option<Fetched> {
        self.state().entry.as_ref().filter(|e| e.refresh_at.is_none_or(|at| now < at)).map(|e| e.fetched.clone())
    }

    /// The cached value if fresh, else the result of one `fetch` shared by all concurrent callers.
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<Fetched, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, AuthError>>,
    {
        if let Some(fetched) = self.fresh(Instant::now()) {
            return Ok(fetched);
        }
        let _in_flight = self.refresh.lock().await;
        let now = Instant::now();
        // Whoever held the lock before us may have refreshed already.
        if let Some(fetched) = self.fresh(now) {
            return Ok(fetched);
        }
        let (fallback, retry_at) = {
            let state = self.state();
            let old = state.entry.as_ref().filter(|e| e.fetched.expires.is_none_or(|x| now < x));
            (old.map(|e| e.fetched.clone()), state.retry_at)
        };
        if let (Some(old), Some(retry_at)) = (&fallback, retry_at)
            && now < retry_at
        {
            return Ok(old.clone());
        }
        let started = Instant::now();
        match fetch().await {
            Ok(fetched) => {
                let refresh_at = fetched.expires.map(|expires| {
                    let lead = (self.lead)(expires.saturating_duration_since(started));
                    expires.checked_sub(lead).unwrap_or(started)
                });
                *self.state() =
                    CacheState { entry: Some(Entry { fetched: fetched.clone(), refresh_at }), retry_at: None };
                Ok(fetched)
            }
            Err(error) => match fallback {
                Some(old) if old.expires.is_none_or(|x| Instant::now() < x) => {
                    tracing::warn!(cache = self.label, %error, "refresh failed; serving the cached value until expiry");
                    self.state().retry_at = Some(Instant::now() + RETRY_BACKOFF);
                    Ok(old)
                }
                _ => Err(error),
            },
        }
    }

    /// Forgets the cached value so the next `get` fetches.
    pub(crate) fn invalidate(&self) {
        *self.state() = CacheState::default();
    }
}

/// Joins an error's source chain, without repeating the URL, for operator-facing messages.
pub(crate) fn describe_reqwest(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
