-- Usage: the API call log (one row per relayed request), its daily rollups, and the API
-- keys' token and concurrency limits with the credits spent through each key.
-- Timestamps are UTC milliseconds, as in 0001; days count from 1970-01-01 (UTC).
-- Text lengths are checked here as MySQL's column types check them there, so a record
-- is refused alike on every backend (see `firefly_store::UsageRecord`).

ALTER TABLE api_keys ADD COLUMN tpm_limit INTEGER;
ALTER TABLE api_keys ADD COLUMN concurrency_limit INTEGER;
ALTER TABLE api_keys ADD COLUMN credits_used INTEGER NOT NULL DEFAULT 0;

-- api_key_id and channel_id have no foreign key: keys are only soft-deleted, channels are
-- deleted for real, and a log row outlives both. Listing pages by id, newest first.
CREATE TABLE usage_logs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id     TEXT    NOT NULL UNIQUE CHECK (length(request_id) <= 128),
    user_id        INTEGER NOT NULL REFERENCES users (id),
    api_key_id     INTEGER,
    channel_id     INTEGER,
    endpoint       TEXT    NOT NULL CHECK (length(endpoint) <= 64),
    model          TEXT    NOT NULL CHECK (length(model) <= 191),
    stream         INTEGER NOT NULL CHECK (stream IN (0, 1)),
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cached_tokens  INTEGER NOT NULL,
    credits        INTEGER NOT NULL,
    latency_ms     INTEGER NOT NULL,
    first_token_ms INTEGER,
    status         INTEGER NOT NULL,
    error_code     TEXT    CHECK (length(error_code) <= 128),
    error_message  TEXT    CHECK (length(error_message) <= 16000),
    created_at     INTEGER NOT NULL
);
CREATE INDEX usage_logs_user ON usage_logs (user_id, id);
CREATE INDEX usage_logs_key ON usage_logs (api_key_id, id);
CREATE INDEX usage_logs_created_at ON usage_logs (created_at);

-- One row per user, day and model, kept as log rows are written and never pruned. The
-- key serves one user's range of days; usage_daily_day serves everyone's.
CREATE TABLE usage_daily (
    user_id       INTEGER NOT NULL REFERENCES users (id),
    day           INTEGER NOT NULL,
    model         TEXT    NOT NULL,
    requests      INTEGER NOT NULL,
    failures      INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    credits       INTEGER NOT NULL,
    PRIMARY KEY (user_id, day, model)
);
CREATE INDEX usage_daily_day ON usage_daily (day, model);
