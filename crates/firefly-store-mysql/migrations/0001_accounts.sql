-- Accounts: users, preferences, login sessions with rotating refresh tokens, API keys.
-- Timestamps are UTC milliseconds since the Unix epoch.
-- Indexes are declared inline so InnoDB reuses them for the foreign keys.
-- Emails and hashes compare byte for byte (utf8mb4_bin), as in the other backends: a
-- case- or accent-insensitive collation would let two distinct hashes collide.
-- search_text (lowercased email and display name, written by the store: see
-- `firefly_store::search_text`) is utf8mb4_bin too, so search matches as on the other
-- backends instead of by this server's collation rules. TEXT, because lowercasing can
-- lengthen a string past the sum of the two columns' limits.

CREATE TABLE users (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email         VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    display_name  VARCHAR(255) NOT NULL,
    search_text   TEXT         CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    role          VARCHAR(16)  NOT NULL,
    status        VARCHAR(16)  NOT NULL,
    created_at    BIGINT       NOT NULL,
    updated_at    BIGINT       NOT NULL,
    CONSTRAINT users_email UNIQUE (email),
    INDEX users_created_at (created_at),
    CONSTRAINT users_role CHECK (role IN ('user', 'admin')),
    CONSTRAINT users_status CHECK (status IN ('active', 'disabled'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE user_preferences (
    user_id    BIGINT NOT NULL PRIMARY KEY,
    prefs      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT user_preferences_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE sessions (
    id           BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    revoked_at   BIGINT NULL,
    INDEX sessions_user (user_id),
    CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE refresh_tokens (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    session_id BIGINT       NOT NULL,
    token_hash VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    expires_at BIGINT       NOT NULL,
    used_at    BIGINT       NULL,
    created_at BIGINT       NOT NULL,
    CONSTRAINT refresh_tokens_hash UNIQUE (token_hash),
    INDEX refresh_tokens_session (session_id),
    CONSTRAINT refresh_tokens_session_fk FOREIGN KEY (session_id) REFERENCES sessions (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE api_keys (
    id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id      BIGINT       NOT NULL,
    name         VARCHAR(255) NOT NULL,
    key_hash     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    prefix       VARCHAR(255) NOT NULL,
    enabled      BOOLEAN      NOT NULL DEFAULT TRUE,
    expires_at   BIGINT       NULL,
    models       TEXT         NOT NULL,
    ip_allow     TEXT         NOT NULL,
    credit_limit BIGINT       NULL,
    rpm_limit    BIGINT       NULL,
    created_at   BIGINT       NOT NULL,
    updated_at   BIGINT       NOT NULL,
    deleted_at   BIGINT       NULL,
    CONSTRAINT api_keys_hash UNIQUE (key_hash),
    INDEX api_keys_user (user_id, deleted_at),
    CONSTRAINT api_keys_user_fk FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
