use firefly_core::time::Millis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> Option<UserStatus> {
        match s {
            "active" => Some(UserStatus::Active),
            "disabled" => Some(UserStatus::Disabled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub status: UserStatus,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    /// Credits granted at sign-up, written with the user in one transaction as a ledger
    /// row with the idempotency key `signup:<user id>`. 0: none.
    pub initial_credits: i64,
    pub now: Millis,
}

#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub search: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    Rotated {
        user_id: i64,
        session_id: i64,
    },
    /// The token had already been spent: its session is now revoked.
    Reused {
        user_id: i64,
    },
    /// Unknown, expired, or its session was revoked.
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthState {
    pub role: Role,
    pub status: UserStatus,
    pub session_active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// The first characters of the key, shown so a user can tell keys apart.
    pub prefix: String,
    pub enabled: bool,
    pub expires_at: Option<Millis>,
    /// Models the key may call; empty means any.
    pub models: Vec<String>,
    /// Addresses or CIDR ranges the key may be used from; empty means any.
    pub ip_allow: Vec<String>,
    /// Most credits the key may spend in total; `None` means no key-level limit.
    pub credit_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    /// Most tokens (input + output) per minute; `None`: no key-level limit.
    pub tpm_limit: Option<i64>,
    /// Most requests in flight at once; `None`: no key-level limit.
    pub concurrency_limit: Option<i64>,
    /// Credits spent through this key so far (counted against `credit_limit`).
    pub credits_used: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub user_id: i64,
    pub name: String,
    pub key_hash: String,
    pub prefix: String,
    pub expires_at: Option<Millis>,
    pub models: Vec<String>,
    pub ip_allow: Vec<String>,
    pub credit_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub concurrency_limit: Option<i64>,
    pub now: Millis,
}

/// A partial update: `None` leaves a field alone; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub expires_at: Option<Option<Millis>>,
    pub models: Option<Vec<String>>,
    pub ip_allow: Option<Vec<String>>,
    pub credit_limit: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i64>>,
    pub tpm_limit: Option<Option<i64>>,
    pub concurrency_limit: Option<Option<i64>>,
}

/// A key found by its hash, with what authentication needs to know of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyAuth {
    pub key: ApiKey,
    pub user_status: UserStatus,
    pub user_role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Migrations this binary knows.
    pub expected: i64,
    /// Migrations applied successfully to the database.
    pub applied: i64,
    /// The highest applied version, if any.
    pub latest_applied: Option<i64>,
    /// Versions applied to the database that this binary does not know (a newer binary ran).
    pub unknown: i64,
}

impl MigrationStatus {
    /// The status from the versions this binary `known`s and those `applied` successfully.
    pub fn compute(known: &[i64], applied: &[i64]) -> MigrationStatus {
        let is_known = |v: &&i64| known.contains(v);
        MigrationStatus {
            expected: known.len() as i64,
            applied: applied.iter().filter(is_known).count() as i64,
            latest_applied: applied.iter().copied().max(),
            unknown: applied.iter().filter(|v| !is_known(v)).count() as i64,
        }
    }

    pub fn is_current(&self) -> bool {
        self.applied == self.expected && self.unknown == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// `primary` or `replica`.
    pub pool: &'static str,
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// Shared JSON encoding of string lists, the same text in every backend.
pub fn encode_list(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

pub fn decode_list(text: &str) -> Result<Vec<String>, crate::StoreError> {
    serde_json::from_str(text).map_err(|e| crate::StoreError::Corrupt(format!("list column: {e}")))
}

#[cfg(test)]
mod tests {
    use super::MigrationStatus;

    #[test]
    fn migration_status_counts_known_and_unknown() {
        let fresh = MigrationStatus::compute(&[1, 2], &[]);
        assert_eq!(fresh, MigrationStatus { expected: 2, applied: 0, latest_applied: None, unknown: 0 });
        assert!(!fresh.is_current());
        assert!(MigrationStatus::compute(&[1, 2], &[1, 2]).is_current());
        let newer = MigrationStatus::compute(&[1, 2], &[1, 2, 3]);
        assert_eq!(newer, MigrationStatus { expected: 2, applied: 2, latest_applied: Some(3), unknown: 1 });
        assert!(!newer.is_current());
    }
}
