-- Feedback events. No foreign key to interactions: feedback may arrive before the recorder
-- has written its interaction's row.
CREATE TABLE feedback (
    id                  TEXT PRIMARY KEY,
    interaction_id      TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    rating              INTEGER,
    thumbs              TEXT,
    score               REAL,
    outcome             TEXT,
    correction          TEXT,
    comment             TEXT,
    dimensions          TEXT,
    time_to_decision_ms INTEGER,
    source              TEXT,
    tags                TEXT NOT NULL DEFAULT '{}',
    idempotency_key     TEXT,
    edit_distance       INTEGER,
    correction_type     TEXT,
    api_key_name        TEXT
);
CREATE INDEX feedback_interaction_created ON feedback (interaction_id, created_at);
CREATE INDEX feedback_created_at ON feedback (created_at);
-- NULL keys never collide, so only feedback sent with a key is deduplicated.
CREATE UNIQUE INDEX feedback_idempotency ON feedback (interaction_id, idempotency_key);
