-- Credits: balances, the append-only ledger, redemption codes.

CREATE TABLE balances (
    user_id    BIGINT PRIMARY KEY REFERENCES users (id),
    balance    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE ledger (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id),
    kind            TEXT   NOT NULL CHECK (kind IN ('grant', 'charge', 'refund', 'redeem', 'adjust')),
    amount          BIGINT NOT NULL,
    balance_after   BIGINT NOT NULL,
    idempotency_key TEXT   NOT NULL UNIQUE,
    reference       TEXT,
    note            TEXT,
    actor_id        BIGINT REFERENCES users (id),
    created_at      BIGINT NOT NULL
);
CREATE INDEX ledger_user ON ledger (user_id, id);

-- The ledger is append-only: history is corrected with new rows, never rewritten.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only';
END
$$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

CREATE TABLE redemption_batches (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT   NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount > 0),
    count      BIGINT NOT NULL,
    expires_at BIGINT,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL
);

CREATE TABLE redemption_codes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id    BIGINT NOT NULL REFERENCES redemption_batches (id),
    code_hash   TEXT   NOT NULL UNIQUE,
    prefix      TEXT   NOT NULL,
    redeemed_by BIGINT REFERENCES users (id),
    redeemed_at BIGINT
);
CREATE INDEX redemption_codes_batch ON redemption_codes (batch_id, redeemed_by);
