-- Credits: balances, the append-only ledger, redemption codes.
-- Amounts are whole credits (BIGINT); timestamps are UTC milliseconds, as in 0001.
-- Idempotency keys and code hashes compare byte for byte (utf8mb4_bin): under the
-- default collation two distinct keys ('a' and 'A') would collide. VARCHAR(191) keeps
-- a unique utf8mb4 key within the 767-byte index limit of older row formats.

CREATE TABLE balances (
    user_id    BIGINT NOT NULL PRIMARY KEY,
    balance    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT balances_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE ledger (
    id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id         BIGINT       NOT NULL,
    kind            VARCHAR(16)  NOT NULL,
    amount          BIGINT       NOT NULL,
    balance_after   BIGINT       NOT NULL,
    idempotency_key VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    reference       VARCHAR(255) NULL,
    note            TEXT         NULL,
    actor_id        BIGINT       NULL,
    created_at      BIGINT       NOT NULL,
    CONSTRAINT ledger_idempotency_key UNIQUE (idempotency_key),
    INDEX ledger_user (user_id, id),
    INDEX ledger_actor (actor_id),
    CONSTRAINT ledger_user_fk FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT ledger_actor_fk FOREIGN KEY (actor_id) REFERENCES users (id),
    CONSTRAINT ledger_kind CHECK (kind IN ('grant', 'charge', 'refund', 'redeem', 'adjust'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The ledger is append-only: history is corrected with new rows, never rewritten.
-- Single-statement trigger bodies, so the file needs no DELIMITER (a client-side
-- command the driver does not have).
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
    FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the ledger is append-only';
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
    FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the ledger is append-only';

CREATE TABLE redemption_batches (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(255) NOT NULL,
    amount     BIGINT       NOT NULL,
    count      BIGINT       NOT NULL,
    expires_at BIGINT       NULL,
    created_by BIGINT       NOT NULL,
    created_at BIGINT       NOT NULL,
    INDEX redemption_batches_created_at (created_at),
    INDEX redemption_batches_created_by (created_by),
    CONSTRAINT redemption_batches_created_by_fk FOREIGN KEY (created_by) REFERENCES users (id),
    CONSTRAINT redemption_batches_amount CHECK (amount > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE redemption_codes (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    batch_id    BIGINT       NOT NULL,
    code_hash   VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    prefix      VARCHAR(32)  NOT NULL,
    redeemed_by BIGINT       NULL,
    redeemed_at BIGINT       NULL,
    CONSTRAINT redemption_codes_hash UNIQUE (code_hash),
    INDEX redemption_codes_batch (batch_id, redeemed_by),
    INDEX redemption_codes_redeemed_by (redeemed_by),
    CONSTRAINT redemption_codes_batch_fk FOREIGN KEY (batch_id) REFERENCES redemption_batches (id),
    CONSTRAINT redemption_codes_redeemed_by_fk FOREIGN KEY (redeemed_by) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
