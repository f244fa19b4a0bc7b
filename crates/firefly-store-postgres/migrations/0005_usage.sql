-- Usage: the API call log (one row per relayed request), its daily rollups, and the API
-- keys' token and concurrency limits with the credits spent through each key.
-- Timestamps are UTC milliseconds, as in 0001; days count from 1970-01-01 (UTC).
-- Text lengths are checked here as MySQL's column types check them there, so a record
-- is refused alike on every backend (see `firefly_store::UsageRecord`). Model names
-- collate as "C" (bytes), so rollups sort as on the other backends.

ALTER TABLE api_keys
    ADD COLUMN tpm_limit         BIGINT,
    ADD COLUMN concurrency_limit BIGINT,
    ADD COLUMN credits_used      BIGINT NOT NULL DEFAULT 0;

-- api_key_id and channel_id have no foreign key: keys are only soft-deleted, channels are
-- deleted for real, and a log row outlives both. Listing pages by id, newest first.
CREATE TABLE usage_logs (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id     TEXT    NOT NULL UNIQUE CHECK (char_length(request_id) <= 128),
    user_id        BIGINT  NOT NULL REFERENCES users (id),
    api_key_id     BIGINT,
    channel_id     BIGINT,
    endpoint       TEXT    NOT NULL CHECK (char_length(endpoint) <= 64),
    model          TEXT    COLLATE "C" NOT NULL CHECK (char_length(model) <= 191),
    stream         BOOLEAN NOT NULL,
    input_tokens   BIGINT  NOT NULL,
    output_tokens  BIGINT  NOT NULL,
    cached_tokens  BIGINT  NOT NULL,
    credits        BIGINT  NOT NULL,
    latency_ms     BIGINT  NOT NULL,
    first_token_ms BIGINT,
    status         BIGINT  NOT NULL,
    error_code     TEXT    CHECK (char_length(error_code) <= 128),
    error_message  TEXT    CHECK (char_length(error_message) <= 16000),
    created_at     BIGINT  NOT NULL
);
CREATE INDEX usage_logs_user ON usage_logs (user_id, id);
CREATE INDEX usage_logs_key ON usage_logs (api_key_id, id);
CREATE INDEX usage_logs_created_at ON usage_logs (created_at);

-- One row per user, day and model, kept as log rows are written and never pruned. The
-- key serves one user's range of days; usage_daily_day serves everyone's.
CREATE TABLE usage_daily (
    user_id       BIGINT NOT NULL REFERENCES users (id),
    day           BIGINT NOT NULL,
    model         TEXT   COLLATE "C" NOT NULL,
    requests      BIGINT NOT NULL,
    failures      BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    credits       BIGINT NOT NULL,
    PRIMARY KEY (user_id, day, model)
);
CREATE INDEX usage_daily_day ON usage_daily (day, model);
