-- Prices per model (credits per million tokens) and user groups with multipliers.
-- Money is whole credits (BIGINT); timestamps are UTC milliseconds, as in 0001.
-- Model and group names compare byte for byte (utf8mb4_bin), as in the other backends:
-- model names are exact ('GPT-4O' is not 'gpt-4o'), and both lists sort by bytes.
-- VARCHAR(191) keeps a utf8mb4 key within the 767-byte index limit of older row formats.

CREATE TABLE model_prices (
    model                 VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    input_per_mtok        BIGINT       NOT NULL,
    output_per_mtok       BIGINT       NOT NULL,
    cached_input_per_mtok BIGINT       NULL,
    updated_at            BIGINT       NOT NULL,
    CONSTRAINT model_prices_input CHECK (input_per_mtok >= 0),
    CONSTRAINT model_prices_output CHECK (output_per_mtok >= 0),
    CONSTRAINT model_prices_cached_input CHECK (cached_input_per_mtok >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE user_groups (
    id            BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name          VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    multiplier_bp BIGINT      NOT NULL,
    created_at    BIGINT      NOT NULL,
    updated_at    BIGINT      NOT NULL,
    CONSTRAINT user_groups_name UNIQUE (name),
    CONSTRAINT user_groups_multiplier CHECK (multiplier_bp >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE user_group_members (
    user_id  BIGINT NOT NULL PRIMARY KEY,
    group_id BIGINT NOT NULL,
    INDEX user_group_members_group (group_id),
    CONSTRAINT user_group_members_user_fk FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT user_group_members_group_fk FOREIGN KEY (group_id) REFERENCES user_groups (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
