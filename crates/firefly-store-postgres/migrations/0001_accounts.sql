-- Accounts: users, preferences, login sessions with rotating refresh tokens, API keys.
-- Timestamps are UTC milliseconds since the Unix epoch. JSON columns stay TEXT so every
-- backend stores the same text.

CREATE TABLE users (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    -- Lowercased email and display name, written by the store: see `firefly_store::search_text`.
    search_text   TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('user', 'admin')),
    status        TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX users_created_at ON users (created_at);

CREATE TABLE user_preferences (
    user_id    BIGINT PRIMARY KEY REFERENCES users (id),
    prefs      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions (id),
    token_hash TEXT   NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      BIGINT  NOT NULL REFERENCES users (id),
    name         TEXT    NOT NULL,
    key_hash     TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at   BIGINT,
    models       TEXT    NOT NULL,
    ip_allow     TEXT    NOT NULL,
    credit_limit BIGINT,
    rpm_limit    BIGINT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    deleted_at   BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_id, deleted_at);
