-- Credit holds: a request's worst-case cost reserved in the database (see
-- `firefly_store::CreditStore`). The held totals live next to what they limit and move
-- in the same transaction as the hold rows, under the user's balances row lock, so a
-- hold is one check on locked rows, not a SUM. Timestamps are UTC milliseconds, as in
-- 0001.

ALTER TABLE balances ADD COLUMN held BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0);
ALTER TABLE api_keys ADD COLUMN credits_held BIGINT NOT NULL DEFAULT 0 CHECK (credits_held >= 0);

-- No foreign keys: a hold is only ever written after its user's balances row (which
-- references the user), and api_key_id is counted only against a key of that user, as
-- in usage_logs. Ids collate as "C" (bytes), as on the other backends; the length is
-- checked as MySQL's VARCHAR(64) checks it there.
CREATE TABLE credit_holds (
    id         TEXT COLLATE "C" PRIMARY KEY CHECK (char_length(id) <= 64),
    user_id    BIGINT NOT NULL,
    api_key_id BIGINT,
    amount     BIGINT NOT NULL CHECK (amount >= 0),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX credit_holds_expires_at ON credit_holds (expires_at);
CREATE INDEX credit_holds_user ON credit_holds (user_id);
