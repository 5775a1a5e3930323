//! Building turn plans: users, unique messages with the fake model's directives, and a small seeded random
//! generator so a run can be repeated exactly (`--seed`).

use fake_databricks::scenario::numbered_text;
use shared::MessageStatus;
use uuid::Uuid;

use super::client::{AfterLeaving, Expect, Leave, TurnPlan};

/// Users the suite sends as; each chat belongs to one, every other one is a stranger to it.
pub const USERS: usize = 6;

/// The `i`-th user's email.
pub fn user(i: usize) -> String {
    format!("fault-user-{}@example.com", i % USERS)
}

/// Someone other than `owner`.
pub fn stranger_of(owner: &str, pick: u64) -> String {
    let owner_index = (0..USERS).find(|&i| user(i) == owner).unwrap_or(0);
    user(owner_index + 1 + (pick as usize % (USERS - 1)))
}

/// SplitMix64: tiny, seedable, good enough to pick fault points.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..high` (`low` when the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low { low } else { low + self.next_u64() % (high - low) }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }

    /// A v4-shaped uuid from this generator (repeatable ids).
    pub fn uuid(&mut self) -> Uuid {
        let high = self.next_u64();
        let low = self.next_u64();
        uuid::Builder::from_random_bytes(((u128::from(high) << 64) | u128::from(low)).to_be_bytes()).into_uuid()
    }
}

/// Makes plans for one scenario.
pub struct Planner {
    rng: Rng,
    counter: usize,
    /// Tag naming the scenario in every message (helps when reading a database by hand).
    tag: &'static str,
}

impl Planner {
    /// A planner for the scenario `tag`.
    pub fn new(tag: &'static str, seed: u64) -> Self {
        Self { rng: Rng::new(seed), counter: 0, tag }
    }

    /// The random generator.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// A healthy turn in a new chat: `tokens` words, `delay_ms` apart, read to the end, stored complete.
    pub fn healthy(&mut self, tokens: usize, delay_ms: u64) -> TurnPlan {
        self.turn(&format!("tokens={tokens} delay_ms={delay_ms}"), &numbered_text(tokens), |full| {
            Expect::exactly(MessageStatus::Complete, full)
        })
    }

    /// A turn in a new chat whose directives are `directives`; the model would stream `full_text` in full.
    pub fn turn(&mut self, directives: &str, full_text: &str, expect: impl FnOnce(&str) -> Expect) -> TurnPlan {
        let chat_id = self.rng.uuid();
        self.turn_in(chat_id, user(self.counter), directives, full_text, expect(full_text))
    }

    /// A turn in a given chat.
    pub fn turn_in(
        &mut self,
        chat_id: Uuid,
        owner: String,
        directives: &str,
        full_text: &str,
        expect: Expect,
    ) -> TurnPlan {
        self.counter += 1;
        // A word unique to this message: search probes look for it, and the fake counts attempts by message.
        let nonce = format!("q{:012x}", self.rng.next_u64() >> 16);
        TurnPlan {
            user: owner,
            chat_id,
            client_message_id: format!("m-{}", self.rng.uuid().simple()),
            message: format!("{} {} {nonce} [[fake {directives}]]", self.tag, self.counter),
            full_text: full_text.to_owned(),
            leave: Leave::Never,
            then: AfterLeaving::Nothing,
            stop_after: None,
            resume_on_break: false,
            expect,
        }
    }

    /// The next turn of an existing chat, healthy.
    pub fn follow_up(&mut self, previous: &TurnPlan, tokens: usize) -> TurnPlan {
        let full = numbered_text(tokens);
        self.turn_in(
            previous.chat_id,
            previous.user.clone(),
            &format!("tokens={tokens} delay_ms=1"),
            &full,
            Expect::exactly(MessageStatus::Complete, &full),
        )
    }
}

/// The unique word of a plan's message (see [`Planner::turn_in`]).
pub fn nonce_of(plan: &TurnPlan) -> Option<&str> {
    plan.message.split_whitespace().find(|w| w.len() == 13 && w.starts_with('q'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_repeat_with_the_same_seed() {
        let first = Planner::new("t", 7).healthy(3, 1);
        let second = Planner::new("t", 7).healthy(3, 1);
        assert_eq!((first.chat_id, &first.message), (second.chat_id, &second.message));
        assert!(nonce_of(&first).is_some(), "{}", first.message);
    }

    #[test]
    fn a_stranger_is_never_the_owner() {
        for pick in 0..20 {
            assert_ne!(stranger_of(&user(2), pick), user(2));
        }
    }
}
