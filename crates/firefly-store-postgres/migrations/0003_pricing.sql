-- Prices per model (credits per million tokens) and user groups with multipliers.

CREATE TABLE model_prices (
    model                 TEXT   PRIMARY KEY,
    input_per_mtok        BIGINT NOT NULL CHECK (input_per_mtok >= 0),
    output_per_mtok       BIGINT NOT NULL CHECK (output_per_mtok >= 0),
    cached_input_per_mtok BIGINT CHECK (cached_input_per_mtok >= 0),
    updated_at            BIGINT NOT NULL
);

CREATE TABLE user_groups (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT   NOT NULL UNIQUE,
    multiplier_bp BIGINT NOT NULL CHECK (multiplier_bp >= 0),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE user_group_members (
    user_id  BIGINT PRIMARY KEY REFERENCES users (id),
    group_id BIGINT NOT NULL REFERENCES user_groups (id)
);
CREATE INDEX user_group_members_group ON user_group_members (group_id);
