//! Per-user limits on starting turns: a rate (turns per minute, as a token bucket that allows short bursts) and
//! the number of answers one user may have streaming at once. They keep one user, or one runaway script, from
//! taking the model's capacity and the server's memory from everybody else. Both answer 429 with `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Past this many tracked users, idle ones are forgotten (their buckets are full again anyway).
const MAX_TRACKED_USERS: usize = 10_000;

/// The turn rate limit (`TURNS_PER_MINUTE`; `None`: unlimited).
pub struct TurnRate {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl TurnRate {
    /// At most `per_minute` turns per user per minute, all of which may come in a burst.
    pub fn new(per_minute: Option<u32>) -> Self {
        let limiter = per_minute.and_then(NonZeroU32::new).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        Self { limiter }
    }

    /// Takes one turn from `user`'s allowance, or says how long to wait.
    pub fn check(&self, user: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        if limiter.len() > MAX_TRACKED_USERS {
            limiter.retain_recent();
        }
        limiter.check_key(&user.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::RateLimited {
                message: format!("too many messages; try again in {retry_after_secs} s"),
                retry_after_secs: retry_after_secs.max(1),
            }
        })
    }
}

/// Answers streaming per user in this process (`MAX_CONCURRENT_TURNS_PER_USER`; `None`: unlimited).
#[derive(Clone)]
pub struct ConcurrentTurns {
    max: Option<usize>,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

/// One running answer of a user; frees its place when dropped.
pub struct TurnSlot {
    user: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

impl ConcurrentTurns {
    /// At most `max` answers streaming at once per user.
    pub fn new(max: Option<usize>) -> Self {
        Self { max: max.filter(|m| *m > 0), running: Arc::default() }
    }

    /// A place for one more answer of `user`, or 429 when they already have the maximum running.
    pub fn acquire(&self, user: &str) -> Result<TurnSlot, ApiError> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let count = running.entry(user.to_owned()).or_insert(0);
        if let Some(max) = self.max
            && *count >= max
        {
            return Err(ApiError::RateLimited {
                message: format!("{max} answers are already being written for you; wait for one to finish"),
                retry_after_secs: 5,
            });
        }
        *count += 1;
        Ok(TurnSlot { user: user.to_owned(), running: self.running.clone() })
    }
}

impl Drop for TurnSlot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_allows_a_burst_then_says_when_to_retry() {
        let rate = TurnRate::new(Some(3));
        for _ in 0..3 {
            assert!(rate.check("alice").is_ok());
        }
        match rate.check("alice") {
            Err(ApiError::RateLimited { retry_after_secs, .. }) => assert!((1..=20).contains(&retry_after_secs)),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(rate.check("bob").is_ok(), "users have separate allowances");
        assert!(TurnRate::new(None).check("alice").is_ok());
    }

    #[test]
    fn slots_are_counted_per_user_and_freed_on_drop() {
        let turns = ConcurrentTurns::new(Some(2));
        let first = turns.acquire("alice").ok();
        let _second = turns.acquire("alice").ok();
        assert!(matches!(turns.acquire("alice"), Err(ApiError::RateLimited { .. })));
        assert!(turns.acquire("bob").is_ok());
        drop(first);
        assert!(turns.acquire("alice").is_ok());
    }
}
