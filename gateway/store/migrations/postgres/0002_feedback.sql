-- Feedback events. No foreign key to interactions: feedback may arrive before the recorder
-- has written its interaction's row.
CREATE TABLE feedback (
    id                  UUID PRIMARY KEY,
    interaction_id      UUID NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    rating              SMALLINT,
    thumbs              TEXT,
    score               DOUBLE PRECISION,
    outcome             TEXT,
    correction          TEXT,
    comment             TEXT,
    dimensions          JSONB,
    time_to_decision_ms BIGINT,
    source              TEXT,
    tags                JSONB NOT NULL DEFAULT '{}',
    idempotency_key     TEXT,
    edit_distance       INTEGER,
    correction_type     TEXT,
    api_key_name        TEXT
);
CREATE INDEX feedback_interaction_created ON feedback (interaction_id, created_at);
CREATE INDEX feedback_created_at ON feedback (created_at);
-- NULL keys never collide, so only feedback sent with a key is deduplicated.
CREATE UNIQUE INDEX feedback_idempotency ON feedback (interaction_id, idempotency_key);
