CREATE TABLE interactions (
    id                TEXT PRIMARY KEY,
    created_at        TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    requested_model   TEXT,
    variant           TEXT,
    provider          TEXT,
    upstream_model    TEXT,
    user              TEXT,
    session           TEXT,
    tags              TEXT NOT NULL DEFAULT '{}',
    api_key_name      TEXT,
    request           TEXT,
    response          TEXT,
    response_id       TEXT,
    stream            INTEGER NOT NULL DEFAULT 0,
    status            TEXT NOT NULL,
    http_status       INTEGER NOT NULL,
    error_type        TEXT,
    error_message     TEXT,
    finish_reason     TEXT,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cached_tokens     INTEGER,
    reasoning_tokens  INTEGER,
    usage_estimated   INTEGER NOT NULL DEFAULT 0,
    cost_usd          REAL,
    latency_ms        REAL,
    ttft_ms           REAL,
    quality_flags     TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX interactions_created_at ON interactions (created_at);
CREATE INDEX interactions_model_created ON interactions (requested_model, created_at);
CREATE INDEX interactions_response_id ON interactions (response_id);
CREATE INDEX interactions_user ON interactions (user);
CREATE INDEX interactions_session ON interactions (session);
