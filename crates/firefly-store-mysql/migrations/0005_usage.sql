-- Usage: the API call log (one row per relayed request), its daily rollups, and the API
-- keys' token and concurrency limits with the credits spent through each key.
-- Timestamps are UTC milliseconds, as in 0001; days count from 1970-01-01 (UTC).
-- Request ids and model names compare byte for byte (utf8mb4_bin), as in the other
-- backends; VARCHAR(191) keeps a utf8mb4 key within the 767-byte index limit of older
-- row formats. The column sizes are the limits the other backends check (see
-- `firefly_store::UsageRecord`); TEXT holds 65,535 bytes, so at least 16,000 characters.

ALTER TABLE api_keys
    ADD COLUMN tpm_limit         BIGINT NULL,
    ADD COLUMN concurrency_limit BIGINT NULL,
    ADD COLUMN credits_used      BIGINT NOT NULL DEFAULT 0;

-- api_key_id and channel_id have no foreign key: keys are only soft-deleted, channels are
-- deleted for real, and a log row outlives both. Without one, writing a log row also
-- takes no shared lock on the key row that the same transaction then updates
-- (credits_used). Listing pages by id, newest first.
CREATE TABLE usage_logs (
    id             BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    request_id     VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    user_id        BIGINT       NOT NULL,
    api_key_id     BIGINT       NULL,
    channel_id     BIGINT       NULL,
    endpoint       VARCHAR(64)  NOT NULL,
    model          VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    stream         BOOLEAN      NOT NULL,
    input_tokens   BIGINT       NOT NULL,
    output_tokens  BIGINT       NOT NULL,
    cached_tokens  BIGINT       NOT NULL,
    credits        BIGINT       NOT NULL,
    latency_ms     BIGINT       NOT NULL,
    first_token_ms BIGINT       NULL,
    status         BIGINT       NOT NULL,
    error_code     VARCHAR(128) NULL,
    error_message  TEXT         NULL,
    created_at     BIGINT       NOT NULL,
    CONSTRAINT usage_logs_request_id UNIQUE (request_id),
    INDEX usage_logs_user (user_id, id),
    INDEX usage_logs_key (api_key_id, id),
    INDEX usage_logs_created_at (created_at),
    CONSTRAINT usage_logs_user_fk FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT usage_logs_error_message CHECK (CHAR_LENGTH(error_message) <= 16000)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per user, day and model, kept as log rows are written and never pruned. The
-- key serves one user's range of days; usage_daily_day serves everyone's.
CREATE TABLE usage_daily (
    user_id       BIGINT       NOT NULL,
    day           BIGINT       NOT NULL,
    model         VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    requests      BIGINT       NOT NULL,
    failures      BIGINT       NOT NULL,
    input_tokens  BIGINT       NOT NULL,
    output_tokens BIGINT       NOT NULL,
    credits       BIGINT       NOT NULL,
    PRIMARY KEY (user_id, day, model),
    INDEX usage_daily_day (day, model),
    CONSTRAINT usage_daily_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
