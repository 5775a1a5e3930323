//! Per-user limits on starting turns: a rate (turns per minute, as a bucket that allows a minute's turns in a burst)
//! and the number of answers one user may have streaming at once. They keep one user, or one runaway script, from
//! taking the model's capacity and the server's memory from everybody else. Both answer 429 with `Retry-After`.
//!
//! Both are kept in the database (`db::allowances`), so they hold for a user however their requests are spread over
//! server processes: checked in the transaction that stores the turn (a refusal stores nothing; a stored turn was
//! counted), two statements per started turn and nothing per token. When the database is too slow to answer the
//! check within [`CHECK_WAIT`], the turn is refused with 503 rather than left waiting.

use std::time::Duration;

use sqlx::PgConnection;

use crate::db::allowances::{self, Charged};
use crate::error::ApiError;

/// How long the check may wait for the database (for the user's row, held by their other turn starts for the few
/// milliseconds of a start, or for a slow database) before the turn is refused with 503.
pub const CHECK_WAIT: Duration = Duration::from_secs(5);

/// The window of the turn rate: a full bucket holds this much time's worth of turns.
const RATE_WINDOW_SECS: f64 = 60.0;

/// The limits on starting turns (`TURNS_PER_MINUTE`, `MAX_CONCURRENT_TURNS_PER_USER`; `None` or 0: unlimited).
#[derive(Debug, Clone, Copy, Default)]
pub struct TurnLimits {
    per_minute: Option<u32>,
    max_streaming: Option<usize>,
}

impl TurnLimits {
    /// At most `per_minute` turns per user per minute (all of which may come at once), and at most `max_streaming`
    /// answers streaming at once per user.
    pub fn new(per_minute: Option<u32>, max_streaming: Option<usize>) -> Self {
        Self { per_minute: per_minute.filter(|n| *n > 0), max_streaming: max_streaming.filter(|n| *n > 0) }
    }

    /// Charges one turn to `owner_id` in `tx` (the transaction that stores the turn), or says why not. Without
    /// limits this touches nothing.
    pub async fn take(&self, tx: &mut PgConnection, owner_id: &str) -> Result<(), ApiError> {
        if self.per_minute.is_none() && self.max_streaming.is_none() {
            return Ok(());
        }
        let interval = self.per_minute.map_or(0.0, |n| RATE_WINDOW_SECS / f64::from(n));
        let charged =
            tokio::time::timeout(CHECK_WAIT, allowances::charge(tx, owner_id, interval)).await.map_err(|_| {
                ApiError::Unavailable(anyhow::anyhow!("the turn limits were not checked within {CHECK_WAIT:?}"))
            })??;
        self.verdict(&charged)
    }

    /// Whether the charged turn is within both limits. The streaming limit first: a turn refused for it does not
    /// use up the rate (the whole charge is rolled back either way).
    fn verdict(&self, charged: &Charged) -> Result<(), ApiError> {
        if let Some(max) = self.max_streaming
            && charged.streaming >= i64::try_from(max).unwrap_or(i64::MAX)
        {
            return Err(ApiError::RateLimited {
                message: format!("{max} answers are already being written for you; wait for one to finish"),
                retry_after_secs: 5,
            });
        }
        if self.per_minute.is_some() {
            let ahead = (charged.next_turn_at - charged.now).as_seconds_f64();
            let over = ahead - RATE_WINDOW_SECS;
            if over > 0.0 {
                let retry_after_secs = over.ceil().max(1.0) as u64;
                return Err(ApiError::RateLimited {
                    message: format!("too many messages; try again in {retry_after_secs} s"),
                    retry_after_secs,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};

    use super::*;

    fn charged(ahead_secs: f64, streaming: i64) -> Charged {
        let now = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000);
        let ahead = TimeDelta::microseconds((ahead_secs * 1e6) as i64);
        Charged { next_turn_at: now + ahead, now, streaming }
    }

    /// The bucket as the database keeps it: each turn moves the instant one interval past the later of itself and now.
    fn charge(next_turn_at: &mut f64, now: f64, interval: f64) -> f64 {
        *next_turn_at = next_turn_at.max(now) + interval;
        *next_turn_at - now
    }

    #[test]
    fn the_rate_allows_a_minute_of_turns_at_once_then_says_when_to_retry() {
        let limits = TurnLimits::new(Some(3), None);
        let mut bucket = f64::NEG_INFINITY;
        for _ in 0..3 {
            let ahead = charge(&mut bucket, 0.0, 20.0);
            assert!(limits.verdict(&charged(ahead, 0)).is_ok(), "{ahead}");
        }
        // The refused charge is rolled back in the database; here it simply is not kept.
        let ahead = (bucket.max(0.0) + 20.0) - 0.0;
        match limits.verdict(&charged(ahead, 0)) {
            Err(ApiError::RateLimited { retry_after_secs, .. }) => assert_eq!(retry_after_secs, 20),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // 20 s later one turn has been paid back.
        let ahead = charge(&mut bucket, 20.0, 20.0);
        assert!(limits.verdict(&charged(ahead, 0)).is_ok(), "{ahead}");
    }

    #[test]
    fn a_part_second_wait_is_rounded_up() {
        let limits = TurnLimits::new(Some(60), None);
        match limits.verdict(&charged(60.2, 0)) {
            Err(ApiError::RateLimited { retry_after_secs, .. }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }

    #[test]
    fn streaming_answers_are_counted_up_to_the_maximum() {
        let limits = TurnLimits::new(None, Some(2));
        assert!(limits.verdict(&charged(0.0, 1)).is_ok());
        assert!(matches!(limits.verdict(&charged(0.0, 2)), Err(ApiError::RateLimited { retry_after_secs: 5, .. })));
    }

    #[test]
    fn zero_means_unlimited() {
        let limits = TurnLimits::new(Some(0), Some(0));
        assert!(limits.verdict(&charged(1e9, 1_000)).is_ok());
    }
}
