-- Upstream channels. Provider keys are stored encrypted (AES-256-GCM under the master
-- key); the store only ever sees the ciphertext. Timestamps are UTC milliseconds, as
-- in 0001. The key hints, models and model map are JSON texts, as in the other backends.
-- Names are not unique and are never looked up, so they keep the default collation.
-- The index matches the list order (priority descending, then id); MySQL 8 and
-- MariaDB 10.8+ keep descending index parts.

CREATE TABLE channels (
    id              BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name            VARCHAR(128)  NOT NULL,
    provider        VARCHAR(32)   NOT NULL,
    base_url        VARCHAR(2048) NOT NULL,
    api_version     VARCHAR(64)   NULL,
    keys_ciphertext MEDIUMTEXT    NOT NULL,
    key_hints       MEDIUMTEXT    NOT NULL,
    models          MEDIUMTEXT    NOT NULL,
    model_map       MEDIUMTEXT    NOT NULL,
    priority        BIGINT        NOT NULL,
    weight          BIGINT        NOT NULL,
    rpm_limit       BIGINT        NULL,
    status          VARCHAR(16)   NOT NULL,
    status_reason   VARCHAR(500)  NULL,
    created_at      BIGINT        NOT NULL,
    updated_at      BIGINT        NOT NULL,
    INDEX channels_priority (priority DESC, id),
    CONSTRAINT channels_weight CHECK (weight >= 0),
    CONSTRAINT channels_status CHECK (status IN ('enabled', 'disabled', 'auto_disabled'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
