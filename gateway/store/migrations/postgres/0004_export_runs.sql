-- One row per export run (CLI, admin API, or a scheduled job). A job's next incremental run
-- starts from the `watermark` of its latest `succeeded` run.
CREATE TABLE export_runs (
    id           UUID PRIMARY KEY,
    job          TEXT,
    format       TEXT NOT NULL,
    status       TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    watermark    TIMESTAMPTZ,
    rows         INTEGER,
    out_dir      TEXT,
    files        JSONB NOT NULL DEFAULT '[]',
    manifest     JSONB,
    error        TEXT
);
CREATE INDEX export_runs_job_started ON export_runs (job, started_at);
