-- Who did what through the admin surface, and when (gateway/privacy/audit.py). Append-only:
-- nothing in Flywheel updates a row here, and only retention removes old ones.
CREATE TABLE audit_log (
    id          UUID PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL,
    actor       TEXT,
    action      TEXT NOT NULL,
    target      TEXT,
    status      INTEGER,
    detail      JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_created ON audit_log (created_at);
CREATE INDEX audit_log_action_created ON audit_log (action, created_at);
-- People who asked to be forgotten, as the salted hash their exports carry, never their id:
-- the recorder drops their rows that were still in flight or spooled when they were forgotten.
CREATE TABLE forgotten (
    subject_hash  TEXT NOT NULL,
    kind          TEXT NOT NULL,
    forgotten_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, subject_hash)
);
CREATE INDEX export_runs_started ON export_runs (started_at);
