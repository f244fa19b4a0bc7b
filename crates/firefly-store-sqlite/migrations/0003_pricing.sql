-- Prices per model (credits per million tokens) and user groups with multipliers.

CREATE TABLE model_prices (
    model                 TEXT    PRIMARY KEY,
    input_per_mtok        INTEGER NOT NULL CHECK (input_per_mtok >= 0),
    output_per_mtok       INTEGER NOT NULL CHECK (output_per_mtok >= 0),
    cached_input_per_mtok INTEGER CHECK (cached_input_per_mtok >= 0),
    updated_at            INTEGER NOT NULL
);

CREATE TABLE user_groups (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    multiplier_bp INTEGER NOT NULL CHECK (multiplier_bp >= 0),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE user_group_members (
    user_id  INTEGER PRIMARY KEY REFERENCES users (id),
    group_id INTEGER NOT NULL REFERENCES user_groups (id)
);
CREATE INDEX user_group_members_group ON user_group_members (group_id);
