//! Credit holds: a request's worst-case cost reserved in the database, so several
//! instances sharing it can never each believe they hold the same credits.
//!
//! A hold is a row of `credit_holds`; the totals it raises live next to what they limit
//! (`balances.held`, `api_keys.credits_held`) and change in the same transaction as the
//! rows, under the user's balances row lock. A hold is then one check on locked rows:
//!
//! ```text
//! available(user) = balance − held
//! available(key)  = key_limit − credits_used − credits_held
//! ```
//!
//! Holds end by release (the request settled: `record_usage` releases the record's hold
//! in the transaction that charges it) or by expiry, so a crashed instance cannot pin
//! credits for ever. Every writer takes a user's balances row lock before that user's key
//! rows and hold rows, so holds, releases, expiry and usage writes cannot deadlock.

use firefly_core::time::Millis;

/// The longest hold id every backend accepts.
pub const MAX_HOLD_ID_LEN: usize = 64;

/// Expired holds `expire_holds` looks at per call, at most (a user's expired holds are
/// released together, so a call may release a few more).
pub const EXPIRE_BATCH: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    /// Unique, at most [`MAX_HOLD_ID_LEN`] ASCII characters (the relay uses its request
    /// id + a suffix). Compared byte for byte on every backend.
    pub id: String,
    pub user_id: i64,
    /// The key the request came through: its `credits_held` is raised with the user's
    /// `held`. A key that is not this user's is left alone (and counts as nothing used).
    pub api_key_id: Option<i64>,
    /// The key's credit limit, when it has one: the hold also fails unless
    /// `credits_used + credits_held + amount <= limit` for that key.
    pub key_limit: Option<i64>,
    /// ≥ 0 (a negative amount is refused by the database). A hold of 0 is recorded too,
    /// so release works alike, and never fails.
    pub amount: i64,
    pub expires_at: Millis,
    pub now: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOutcome {
    /// The credits are held (or this hold id is already live: nothing changed).
    Held,
    /// The user's balance less what is already held does not cover the amount;
    /// `available` is that difference, never below 0. Nothing changed.
    Insufficient { available: i64 },
    /// The key's limit less what it used and holds does not cover the amount;
    /// `available` is that difference, never below 0. Nothing changed.
    KeyLimitReached { available: i64 },
}

/// What a key row says about a hold, read under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCredits {
    pub credits_used: i64,
    pub credits_held: i64,
}

impl NewHold {
    /// Whether this hold fits, given the user's locked `balance` and `held` and, when the
    /// hold names a key of the user, that key's locked row (`None`: counts as nothing).
    /// The user's balance is checked first.
    pub fn check(&self, balance: i64, held: i64, key: Option<KeyCredits>) -> HoldOutcome {
        if self.amount <= 0 {
            return HoldOutcome::Held;
        }
        let available = balance.saturating_sub(held);
        if available < self.amount {
            return HoldOutcome::Insufficient { available: available.max(0) };
        }
        if let (Some(limit), Some(_)) = (self.key_limit, self.api_key_id) {
            let key = key.unwrap_or(KeyCredits { credits_used: 0, credits_held: 0 });
            let available = limit.saturating_sub(key.credits_used.saturating_add(key.credits_held));
            if available < self.amount {
                return HoldOutcome::KeyLimitReached { available: available.max(0) };
            }
        }
        HoldOutcome::Held
    }

    /// Whether the key's row must be read (and locked) to check this hold.
    pub fn checks_key(&self) -> bool {
        self.amount > 0 && self.api_key_id.is_some() && self.key_limit.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(amount: i64, key_limit: Option<i64>) -> NewHold {
        NewHold { id: "h".into(), user_id: 1, api_key_id: Some(7), key_limit, amount, expires_at: 10, now: 0 }
    }

    fn key(used: i64, held: i64) -> Option<KeyCredits> {
        Some(KeyCredits { credits_used: used, credits_held: held })
    }

    #[test]
    fn balance_less_held_must_cover_the_amount() {
        assert_eq!(hold(60, None).check(100, 40, None), HoldOutcome::Held);
        assert_eq!(hold(61, None).check(100, 40, None), HoldOutcome::Insufficient { available: 60 });
        assert_eq!(hold(1, None).check(-5, 0, None), HoldOutcome::Insufficient { available: 0 });
        assert_eq!(hold(1, None).check(i64::MIN, i64::MAX, None), HoldOutcome::Insufficient { available: 0 });
    }

    #[test]
    fn key_limit_counts_used_and_held() {
        assert_eq!(hold(30, Some(100)).check(1_000, 0, key(50, 20)), HoldOutcome::Held);
        assert_eq!(hold(31, Some(100)).check(1_000, 0, key(50, 20)), HoldOutcome::KeyLimitReached { available: 30 });
        assert_eq!(hold(1, Some(100)).check(1_000, 0, key(150, 0)), HoldOutcome::KeyLimitReached { available: 0 });
        // A key that is not the user's counts as nothing used or held; the limit still binds.
        assert_eq!(hold(101, Some(100)).check(1_000, 0, None), HoldOutcome::KeyLimitReached { available: 100 });
        // The balance is checked first.
        assert_eq!(hold(50, Some(10)).check(20, 0, key(0, 0)), HoldOutcome::Insufficient { available: 20 });
        // No limit, or no key: only the balance counts.
        assert_eq!(hold(500, None).check(1_000, 0, key(10_000, 0)), HoldOutcome::Held);
        let mut keyless = hold(500, Some(10));
        keyless.api_key_id = None;
        assert_eq!(keyless.check(1_000, 0, None), HoldOutcome::Held);
        assert!(!keyless.checks_key());
        assert!(hold(1, Some(10)).checks_key());
        assert!(!hold(1, None).checks_key());
    }

    #[test]
    fn nothing_to_hold_never_fails() {
        assert_eq!(hold(0, Some(0)).check(-10, 5, key(100, 100)), HoldOutcome::Held);
        assert!(!hold(0, Some(0)).checks_key());
    }
}
