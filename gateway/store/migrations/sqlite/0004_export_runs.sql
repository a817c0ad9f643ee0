-- One row per export run (CLI, admin API, or a scheduled job). A job's next incremental run
-- starts from the `watermark` of its latest `succeeded` run.
CREATE TABLE export_runs (
    id           TEXT PRIMARY KEY,
    job          TEXT,
    format       TEXT NOT NULL,
    status       TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    watermark    TEXT,
    rows         INTEGER,
    out_dir      TEXT,
    files        TEXT NOT NULL DEFAULT '[]',
    manifest     TEXT,
    error        TEXT
);
CREATE INDEX export_runs_job_started ON export_runs (job, started_at);
