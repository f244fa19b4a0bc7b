-- Upstream channels. Provider keys are stored encrypted (AES-256-GCM under the master
-- key); the store only ever sees the ciphertext. Lists and the model map are JSON text,
-- as on the other backends.

CREATE TABLE channels (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT   NOT NULL,
    provider        TEXT   NOT NULL,
    base_url        TEXT   NOT NULL,
    api_version     TEXT,
    keys_ciphertext TEXT   NOT NULL,
    key_hints       TEXT   NOT NULL,
    models          TEXT   NOT NULL,
    model_map       TEXT   NOT NULL,
    priority        BIGINT NOT NULL,
    weight          BIGINT NOT NULL CHECK (weight >= 0),
    rpm_limit       BIGINT,
    status          TEXT   NOT NULL CHECK (status IN ('enabled', 'disabled', 'auto_disabled')),
    status_reason   TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX channels_priority ON channels (priority DESC, id);
