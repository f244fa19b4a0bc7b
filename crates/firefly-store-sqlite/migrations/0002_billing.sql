-- Credits: balances, the append-only ledger, redemption codes.

CREATE TABLE balances (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id),
    balance    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE ledger (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('grant', 'charge', 'refund', 'redeem', 'adjust')),
    amount          INTEGER NOT NULL,
    balance_after   INTEGER NOT NULL,
    idempotency_key TEXT    NOT NULL UNIQUE,
    reference       TEXT,
    note            TEXT,
    actor_id        INTEGER REFERENCES users (id),
    created_at      INTEGER NOT NULL
);
CREATE INDEX ledger_user ON ledger (user_id, id);

-- The ledger is append-only: history is corrected with new rows, never rewritten.
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

CREATE TABLE redemption_batches (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    count      INTEGER NOT NULL,
    expires_at INTEGER,
    created_by INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL
);

CREATE TABLE redemption_codes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id    INTEGER NOT NULL REFERENCES redemption_batches (id),
    code_hash   TEXT    NOT NULL UNIQUE,
    prefix      TEXT    NOT NULL,
    redeemed_by INTEGER REFERENCES users (id),
    redeemed_at INTEGER
);
CREATE INDEX redemption_codes_batch ON redemption_codes (batch_id, redeemed_by);
