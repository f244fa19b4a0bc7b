-- Credit holds: a request's worst-case cost reserved in the database (see
-- `firefly_store::CreditStore`). The held totals live next to what they limit and move
-- in the same transaction as the hold rows, under the user's balances row lock, so a
-- hold is one check on locked rows, not a SUM. Timestamps are UTC milliseconds, as in
-- 0001.

ALTER TABLE balances
    ADD COLUMN held BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT balances_held CHECK (held >= 0);
ALTER TABLE api_keys
    ADD COLUMN credits_held BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT api_keys_credits_held CHECK (credits_held >= 0);

-- No foreign keys: a hold is only ever written after its user's balances row (which
-- references the user), and api_key_id is counted only against a key of that user, as
-- in usage_logs; without them, inserting a hold also takes no shared lock on a users or
-- api_keys row. Ids compare byte for byte (utf8mb4_bin), as on the other backends.
CREATE TABLE credit_holds (
    id         VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    user_id    BIGINT NOT NULL,
    api_key_id BIGINT NULL,
    amount     BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    INDEX credit_holds_expires_at (expires_at),
    INDEX credit_holds_user (user_id),
    CONSTRAINT credit_holds_amount CHECK (amount >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
