-- The loop after an export (gateway/tuning/): fine-tuning jobs, the model versions they made,
-- and the routing overrides that put a version in front of traffic.
-- One row per fine-tuning job: a job not yet finished is polled again after a restart.
CREATE TABLE tuning_runs (
    id               TEXT PRIMARY KEY,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT,
    export_run_id    TEXT,
    manifest_sha256  TEXT,
    launcher         TEXT NOT NULL,
    backend          TEXT NOT NULL,
    method           TEXT NOT NULL,
    base_model       TEXT NOT NULL,
    model            TEXT,
    status           TEXT NOT NULL,
    external_id      TEXT,
    result_model     TEXT,
    trained_tokens   INTEGER,
    cost_usd         REAL,
    error            TEXT,
    detail           TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX tuning_runs_status ON tuning_runs (status, created_at);
-- A model a tuning run made, with its lineage. `status`: candidate, canary, live, retired.
CREATE TABLE model_versions (
    id               TEXT PRIMARY KEY,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    model            TEXT NOT NULL,
    variant          TEXT NOT NULL,
    provider         TEXT NOT NULL,
    upstream_model   TEXT NOT NULL,
    base_model       TEXT,
    tuning_run_id    TEXT,
    export_run_id    TEXT,
    manifest_sha256  TEXT,
    status           TEXT NOT NULL,
    UNIQUE (model, variant)
);
-- The arms of a model as the store says (over config.yaml's baseline), one row per model:
-- `revision` grows with each change, so replicas see a change and writers cannot lose one.
CREATE TABLE route_overrides (
    model       TEXT PRIMARY KEY,
    revision    INTEGER NOT NULL,
    arms        TEXT NOT NULL,
    control     TEXT,
    updated_at  TEXT NOT NULL,
    updated_by  TEXT
)
