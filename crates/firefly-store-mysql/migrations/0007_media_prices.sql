-- Media prices: per image, per million characters of speech input, per second of
-- transcribed audio. NULL: the model is not priced for that kind of request.
ALTER TABLE model_prices ADD COLUMN per_image BIGINT CHECK (per_image >= 0);
ALTER TABLE model_prices ADD COLUMN per_mchar BIGINT CHECK (per_mchar >= 0);
ALTER TABLE model_prices ADD COLUMN per_second BIGINT CHECK (per_second >= 0);
