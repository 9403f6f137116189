-- API keys, stored as SHA-256 hashes only: the key itself is shown once, when it is created.
CREATE TABLE IF NOT EXISTS api_keys (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL,
    key_hash    bytea       NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- One row per answered /v1/predict, written asynchronously in batches.
CREATE TABLE IF NOT EXISTS inference_log (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL,
    key_id         text,        -- first 12 hex digits of the key's hash (joins api_keys.key_hash)
    model_version  text        NOT NULL,
    status         integer     NOT NULL,
    cached         boolean     NOT NULL,
    latency_ms     real        NOT NULL,
    image_bytes    integer     NOT NULL,
    detections     integer     NOT NULL,
    error_code     text
);
CREATE INDEX IF NOT EXISTS inference_log_at ON inference_log (at);
