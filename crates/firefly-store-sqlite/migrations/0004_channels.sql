-- Upstream channels. Provider keys are stored encrypted (AES-256-GCM under the master
-- key); the store only ever sees the ciphertext.

CREATE TABLE channels (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL,
    provider        TEXT    NOT NULL,
    base_url        TEXT    NOT NULL,
    api_version     TEXT,
    keys_ciphertext TEXT    NOT NULL,
    key_hints       TEXT    NOT NULL,
    models          TEXT    NOT NULL,
    model_map       TEXT    NOT NULL,
    priority        INTEGER NOT NULL,
    weight          INTEGER NOT NULL CHECK (weight >= 0),
    rpm_limit       INTEGER,
    status          TEXT    NOT NULL CHECK (status IN ('enabled', 'disabled', 'auto_disabled')),
    status_reason   TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX channels_priority ON channels (priority DESC, id);
