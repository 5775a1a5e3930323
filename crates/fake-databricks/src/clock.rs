//! A process-wide microsecond clock, so a benchmark running the fake in its own process can compare the moment
//! a token was sent with the moment it arrived through the server.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Microseconds since this process first asked.
pub fn micros() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}
