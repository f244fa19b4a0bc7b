//! Credits: an append-only ledger whose rows carry unique idempotency keys, a balance
//! per user that always equals the sum of that user's ledger, and redemption codes.

use firefly_core::time::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerKind {
    /// Credits given: the sign-up grant, an administrator's grant.
    Grant,
    /// Credits spent on a request.
    Charge,
    /// Credits given back for a request.
    Refund,
    /// Credits from a redemption code.
    Redeem,
    /// An administrator's correction, either sign.
    Adjust,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Grant => "grant",
            LedgerKind::Charge => "charge",
            LedgerKind::Refund => "refund",
            LedgerKind::Redeem => "redeem",
            LedgerKind::Adjust => "adjust",
        }
    }
    pub fn parse(s: &str) -> Option<LedgerKind> {
        Some(match s {
            "grant" => LedgerKind::Grant,
            "charge" => LedgerKind::Charge,
            "refund" => LedgerKind::Refund,
            "redeem" => LedgerKind::Redeem,
            "adjust" => LedgerKind::Adjust,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct NewLedgerEntry {
    pub user_id: i64,
    pub kind: LedgerKind,
    /// Signed: positive adds credits, negative spends them.
    pub amount: i64,
    /// Unique across the ledger: applying the same key twice changes nothing the second time.
    pub idempotency_key: String,
    /// What the row is about: a request id, a redemption code id, ...
    pub reference: Option<String>,
    pub note: Option<String>,
    /// The administrator who made a grant or adjustment.
    pub actor_id: Option<i64>,
    pub now: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: i64,
    pub user_id: i64,
    pub kind: LedgerKind,
    pub amount: i64,
    /// The user's balance right after this row.
    pub balance_after: i64,
    pub idempotency_key: String,
    pub reference: Option<String>,
    pub note: Option<String>,
    pub actor_id: Option<i64>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerOutcome {
    Applied(LedgerEntry),
    /// The idempotency key was used before: this is the row it made, and nothing changed.
    Duplicate(LedgerEntry),
    /// A debit that would take the balance below zero was refused; nothing changed.
    Insufficient {
        balance: i64,
    },
    /// The idempotency key was used before for a different entry (another user, kind
    /// or amount): nothing changed, and the other entry is not disclosed.
    KeyConflict,
}

impl LedgerOutcome {
    /// The answer for an entry whose idempotency key already names `existing`: the same
    /// entry repeated is a `Duplicate`; anything else reusing the key is a `KeyConflict`.
    pub fn for_existing(existing: LedgerEntry, entry: &NewLedgerEntry) -> LedgerOutcome {
        let same = existing.user_id == entry.user_id && existing.kind == entry.kind && existing.amount == entry.amount;
        if same {
            LedgerOutcome::Duplicate(existing)
        } else {
            LedgerOutcome::KeyConflict
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewRedemptionBatch {
    pub name: String,
    /// Credits each code gives.
    pub amount: i64,
    pub expires_at: Option<Millis>,
    pub created_by: i64,
    pub now: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedemptionBatch {
    pub id: i64,
    pub name: String,
    pub amount: i64,
    pub count: i64,
    pub redeemed: i64,
    pub expires_at: Option<Millis>,
    pub created_by: i64,
    pub created_at: Millis,
}

/// One code of a new batch: only its hash is stored, with a prefix for recognition.
#[derive(Debug, Clone)]
pub struct NewRedemptionCode {
    pub code_hash: String,
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemOutcome {
    Redeemed(LedgerEntry),
    NotFound,
    AlreadyRedeemed,
    Expired,
}

impl NewLedgerEntry {
    /// The sign-up grant of a new user, written in the same transaction as the user.
    pub fn signup_grant(user_id: i64, amount: i64, now: Millis) -> NewLedgerEntry {
        NewLedgerEntry {
            user_id,
            kind: LedgerKind::Grant,
            amount,
            idempotency_key: format!("signup:{user_id}"),
            reference: Some("signup".into()),
            note: None,
            actor_id: None,
            now,
        }
    }
}
