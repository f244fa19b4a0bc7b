//! Store traits, one per domain, and the conformance suite every backend runs.
//!
//! The server depends on these traits only; the binary picks a backend by URL scheme.
//! Methods that act on a user's object take the owner's id, so a query can never reach
//! another user's row: authorization holds at the data layer too.

mod billing;
mod channel;
#[cfg(feature = "conformance")]
pub mod conformance;
mod holds;
mod model;
mod pricing;
#[cfg(feature = "sql")]
pub mod sql;
pub mod testing;
mod usage;

pub use billing::*;
pub use channel::*;
pub use holds::*;
pub use model::*;
pub use pricing::*;
pub use usage::*;

use async_trait::async_trait;
use firefly_core::time::Millis;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated; the string names what was duplicated.
    #[error("duplicate {0}")]
    Conflict(&'static str),
    #[error("database error: {0}")]
    Database(Box<dyn std::error::Error + Send + Sync>),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user. The email must already be normalized (trimmed, lowercased);
    /// a duplicate gives `StoreError::Conflict("email")`.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn update_profile(&self, id: i64, patch: ProfilePatch, now: Millis) -> StoreResult<Option<User>>;
    /// Sets a new password hash and, in the same transaction, revokes every active session
    /// of the user, so a stolen refresh token dies with the old password. `false` (and
    /// nothing changed) when there is no such user.
    async fn change_password(&self, id: i64, password_hash: &str, now: Millis) -> StoreResult<bool>;
    async fn set_user_status(&self, id: i64, status: UserStatus, now: Millis) -> StoreResult<Option<User>>;
    async fn set_user_role(&self, id: i64, role: Role, now: Millis) -> StoreResult<Option<User>>;
    /// Admin listing, newest first; `search` matches email or display name (substring,
    /// case-insensitive by Unicode lowercasing, the same on every backend: see
    /// [`search_text`]). Served from the read replica when one is configured.
    async fn list_users(&self, query: &UserQuery) -> StoreResult<Page<User>>;
    /// Admins who can act: role `admin` and status `active`.
    async fn count_active_admins(&self) -> StoreResult<i64>;
    async fn get_preferences(&self, user_id: i64) -> StoreResult<Option<serde_json::Value>>;
    async fn put_preferences(&self, user_id: i64, prefs: &serde_json::Value, now: Millis) -> StoreResult<()>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Starts a login session (a refresh-token family) with its first token.
    async fn create_session(&self, user_id: i64, token_hash: &str, expires_at: Millis, now: Millis)
        -> StoreResult<i64>;
    /// Spends a refresh token and issues its successor, atomically. Spending a token
    /// twice revokes its whole session.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        new_expires_at: Millis,
        now: Millis,
    ) -> StoreResult<RotateOutcome>;
    async fn revoke_session(&self, user_id: i64, session_id: i64, now: Millis) -> StoreResult<bool>;
    async fn revoke_all_sessions(&self, user_id: i64, now: Millis) -> StoreResult<u64>;
    /// What an access token's bearer may do right now: user status and role, and
    /// whether the token's session is still active.
    async fn auth_state(&self, user_id: i64, session_id: i64) -> StoreResult<Option<AuthState>>;
}

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey>;
    /// The owner's live (not deleted) keys, newest first.
    async fn list_api_keys(&self, user_id: i64) -> StoreResult<Vec<ApiKey>>;
    async fn get_api_key(&self, user_id: i64, id: i64) -> StoreResult<Option<ApiKey>>;
    async fn update_api_key(
        &self,
        user_id: i64,
        id: i64,
        patch: ApiKeyPatch,
        now: Millis,
    ) -> StoreResult<Option<ApiKey>>;
    /// Deletes (revokes) a key; it stops authenticating at once and leaves the list.
    async fn delete_api_key(&self, user_id: i64, id: i64, now: Millis) -> StoreResult<bool>;
    /// The live key with this hash and its owner's state, for authentication.
    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyAuth>>;
}

#[async_trait]
pub trait BillingStore: Send + Sync {
    /// Appends a ledger row and moves the user's balance by its amount, atomically.
    /// A reused idempotency key answers `Duplicate` with the original row. Unless
    /// `allow_negative`, a debit that would take the balance below zero answers
    /// `Insufficient` and writes nothing.
    async fn append_ledger(&self, entry: NewLedgerEntry, allow_negative: bool) -> StoreResult<LedgerOutcome>;
    /// The user's balance (0 for a user with no ledger rows).
    async fn balance(&self, user_id: i64) -> StoreResult<i64>;
    /// The user's ledger, newest first, rows with `id < before` when given.
    async fn list_ledger(&self, user_id: i64, before: Option<i64>, limit: i64) -> StoreResult<Vec<LedgerEntry>>;
    /// The sum of the user's ledger amounts (equals `balance`; for checks).
    async fn ledger_sum(&self, user_id: i64) -> StoreResult<i64>;
    /// Creates a batch of redemption codes, all or none.
    async fn create_redemption_batch(
        &self,
        batch: NewRedemptionBatch,
        codes: Vec<NewRedemptionCode>,
    ) -> StoreResult<RedemptionBatch>;
    /// Batches, newest first, with how many of their codes were redeemed.
    async fn list_redemption_batches(&self, limit: i64, offset: i64) -> StoreResult<Page<RedemptionBatch>>;
    /// Redeems a code for `user_id`: marks it used and credits the batch amount in one
    /// transaction. A code is redeemed once, whatever the concurrency.
    async fn redeem_code(&self, code_hash: &str, user_id: i64, now: Millis) -> StoreResult<RedeemOutcome>;
}

#[async_trait]
pub trait PricingStore: Send + Sync {
    /// Sets a model's price, creating or replacing it.
    async fn put_model_price(&self, price: ModelPrice) -> StoreResult<()>;
    async fn model_price(&self, model: &str) -> StoreResult<Option<ModelPrice>>;
    /// Every priced model, by name.
    async fn list_model_prices(&self) -> StoreResult<Vec<ModelPrice>>;
    async fn delete_model_price(&self, model: &str) -> StoreResult<bool>;
    /// A duplicate name gives `Conflict("group")`.
    async fn create_group(&self, name: &str, multiplier_bp: i64, now: Millis) -> StoreResult<UserGroup>;
    async fn update_group(&self, id: i64, patch: GroupPatch, now: Millis) -> StoreResult<Option<UserGroup>>;
    /// Deletes a group; its members return to the default (1×).
    async fn delete_group(&self, id: i64) -> StoreResult<bool>;
    /// Groups by name, with member counts.
    async fn list_groups(&self) -> StoreResult<Vec<UserGroup>>;
    /// Puts a user in a group (`None`: the default). False if the user or group does not exist.
    async fn set_user_group(&self, user_id: i64, group_id: Option<i64>) -> StoreResult<bool>;
    /// The user's group, if any.
    async fn user_group(&self, user_id: i64) -> StoreResult<Option<UserGroup>>;
}

#[async_trait]
pub trait ChannelStore: Send + Sync {
    async fn create_channel(&self, spec: ChannelSpec, now: Millis) -> StoreResult<Channel>;
    async fn channel(&self, id: i64) -> StoreResult<Option<Channel>>;
    /// Every channel, highest priority first, then by id.
    async fn list_channels(&self) -> StoreResult<Vec<Channel>>;
    /// Replaces a channel's settings if it still has `expected_updated_at` (optimistic
    /// concurrency: two administrators cannot silently overwrite each other). `None`: no
    /// such channel; `Conflict("channel")`: it changed since it was read.
    async fn replace_channel(
        &self,
        id: i64,
        spec: ChannelSpec,
        expected_updated_at: Millis,
        now: Millis,
    ) -> StoreResult<Option<Channel>>;
    async fn delete_channel(&self, id: i64) -> StoreResult<bool>;
    /// Sets only the status and its reason (the relay's auto-disable and re-enable).
    async fn set_channel_status(
        &self,
        id: i64,
        status: ChannelStatus,
        reason: Option<&str>,
        now: Millis,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Writes a batch of finished requests in one transaction: for each record, the
    /// charge (a `charge` ledger row keyed `charge:{request_id}`, clamped to the balance,
    /// with the key's `credits_used` raised by the same amount), the call-log row and its
    /// daily rollup, after releasing the record's credit hold (`hold_id`) if it is live. A
    /// record whose request id was written before changes nothing but that release
    /// (`applied: false`), so a batch retried after an unknown commit outcome is safe.
    async fn record_usage(&self, batch: &[UsageRecord]) -> StoreResult<Vec<RecordedUsage>>;
    /// The call log, newest first, filtered.
    async fn list_usage_logs(&self, query: &UsageQuery) -> StoreResult<Vec<UsageLog>>;
    /// Rollup rows for days `from_day..=to_day` by day then model: one user's, or
    /// everyone's summed when `user_id` is `None`.
    async fn usage_days(&self, user_id: Option<i64>, from_day: i64, to_day: i64) -> StoreResult<Vec<UsageDay>>;
    /// Deletes up to `limit` call-log rows created before `before` (oldest first);
    /// rollups stay. Returns how many were deleted.
    async fn prune_usage_logs(&self, before: Millis, limit: i64) -> StoreResult<u64>;
}

/// Credit holds in the database: the reservation several instances sharing it can trust
/// (see [`NewHold`]). Every method is atomic on its own.
#[async_trait]
pub trait CreditStore: Send + Sync {
    /// Atomically: `available = balance - held` of the user (balance 0 for a user with no
    /// balances row) must be `>= amount`, and the key check of [`NewHold::key_limit`];
    /// then the hold is recorded and the held totals raised. A hold id that is still live
    /// answers `Held` without change (idempotent). A user who does not exist is an error.
    async fn hold_credits(&self, hold: &NewHold) -> StoreResult<HoldOutcome>;
    /// Releases a hold; false if it does not exist (already released or expired). Idempotent.
    async fn release_hold(&self, id: &str) -> StoreResult<bool>;
    /// Releases the holds with `expires_at <= now` (at most about [`EXPIRE_BATCH`] per
    /// call); returns how many. Safe to run on several instances at once.
    async fn expire_holds(&self, now: Millis) -> StoreResult<u64>;
    /// The user's held total (for checks and tests).
    async fn held_credits(&self, user_id: i64) -> StoreResult<i64>;
}

#[async_trait]
pub trait OpsStore: Send + Sync {
    /// Backend name: `sqlite`, `mysql` or `postgres`.
    fn kind(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;
    /// Applies pending migrations. Safe to call from several instances at once.
    async fn migrate(&self) -> StoreResult<()>;
    async fn migration_status(&self) -> StoreResult<MigrationStatus>;
    fn pool_stats(&self) -> Vec<PoolStats>;
    /// Closes the pools (primary and replica), waiting for connections in use to come
    /// back; afterwards every call fails.
    async fn close(&self);
}

/// Everything the server needs from storage.
pub trait Store:
    UserStore
    + SessionStore
    + ApiKeyStore
    + BillingStore
    + PricingStore
    + ChannelStore
    + UsageStore
    + CreditStore
    + OpsStore
{
}
impl<T> Store for T where
    T: UserStore
        + SessionStore
        + ApiKeyStore
        + BillingStore
        + PricingStore
        + ChannelStore
        + UsageStore
        + CreditStore
        + OpsStore
{
}

pub type DynStore = Arc<dyn Store>;

/// How a backend connects; the same for every backend.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    pub url: String,
    pub read_url: Option<String>,
    pub max_connections: u32,
    pub acquire_timeout: std::time::Duration,
}

impl ConnectSettings {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            read_url: None,
            max_connections: 10,
            acquire_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// The text `list_users` searches, stored in `users.search_text`: email and display name,
/// lowercased here rather than by the database, whose `LOWER()` and case-insensitive
/// collations differ between backends (SQLite's only folds ASCII). The server admits no
/// control characters in names, emails or searches, so a match never spans the newline.
pub fn search_text(email: &str, display_name: &str) -> String {
    format!("{}\n{}", email.to_lowercase(), display_name.to_lowercase())
}

/// A `LIKE ... ESCAPE '!'` pattern matching `search` as a substring of [`search_text`]:
/// lowercased the same way, with `%`, `_` and `!` escaped so they match literally. `!`
/// rather than a backslash, whose meaning in a string literal depends on MySQL's SQL mode.
pub fn like_pattern(search: &str) -> String {
    let mut out = String::with_capacity(search.len() + 2);
    out.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards_and_the_escape() {
        assert_eq!(like_pattern("a%b_c!d\\e"), "%a!%b!_c!!d\\e%");
        assert_eq!(like_pattern(""), "%%");
    }

    #[test]
    fn search_is_unicode_lowercase() {
        assert_eq!(like_pattern("ÉMILE 萤火"), "%émile 萤火%");
        assert_eq!(search_text("ada@example.com", "Émile ZOLA"), "ada@example.com\némile zola");
        assert!(search_text("a@b.c", "ÄRGER").contains(&like_pattern("Ärger").trim_matches('%').to_string()));
    }
}
