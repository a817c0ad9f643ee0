CREATE TABLE interactions (
    id                UUID PRIMARY KEY,
    created_at        TIMESTAMPTZ NOT NULL,
    endpoint          TEXT NOT NULL,
    requested_model   TEXT,
    variant           TEXT,
    provider          TEXT,
    upstream_model    TEXT,
    "user"            TEXT,
    session           TEXT,
    tags              JSONB NOT NULL DEFAULT '{}',
    api_key_name      TEXT,
    request           JSONB,
    response          JSONB,
    response_id       TEXT,
    stream            BOOLEAN NOT NULL DEFAULT FALSE,
    status            TEXT NOT NULL,
    http_status       INTEGER NOT NULL,
    error_type        TEXT,
    error_message     TEXT,
    finish_reason     TEXT,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cached_tokens     INTEGER,
    reasoning_tokens  INTEGER,
    usage_estimated   BOOLEAN NOT NULL DEFAULT FALSE,
    cost_usd          DOUBLE PRECISION,
    latency_ms        DOUBLE PRECISION,
    ttft_ms           DOUBLE PRECISION,
    quality_flags     JSONB NOT NULL DEFAULT '[]'
);
CREATE INDEX interactions_created_at ON interactions (created_at);
CREATE INDEX interactions_model_created ON interactions (requested_model, created_at);
CREATE INDEX interactions_response_id ON interactions (response_id);
CREATE INDEX interactions_user ON interactions ("user");
CREATE INDEX interactions_session ON interactions (session);
CREATE INDEX interactions_tags ON interactions USING GIN (tags);
