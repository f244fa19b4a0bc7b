-- Credit holds: a request's worst-case cost reserved in the database (see
-- `firefly_store::CreditStore`). The held totals live next to what they limit and move
-- in the same transaction as the hold rows, so a hold is one check on the user's row,
-- not a SUM. Timestamps are UTC milliseconds, as in 0001.

ALTER TABLE balances ADD COLUMN held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0);
ALTER TABLE api_keys ADD COLUMN credits_held INTEGER NOT NULL DEFAULT 0 CHECK (credits_held >= 0);

-- No foreign keys: a hold is only ever written after its user's balances row (which
-- references the user), and api_key_id is counted only against a key of that user, as
-- in usage_logs. Ids compare byte for byte (SQLite's default BINARY collation), as on
-- the other backends.
CREATE TABLE credit_holds (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (length(id) <= 64),
    user_id    INTEGER NOT NULL,
    api_key_id INTEGER,
    amount     INTEGER NOT NULL CHECK (amount >= 0),
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX credit_holds_expires_at ON credit_holds (expires_at);
CREATE INDEX credit_holds_user ON credit_holds (user_id);
