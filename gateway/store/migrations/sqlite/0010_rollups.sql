-- Hourly rollups for the overview and /admin/stats (gateway/store/rollups.py says how they
-- are read). Kept by triggers on insert and delete of interactions and feedback: exact for
-- rows that commit late (spool replays) and for forget/retention deletes, nothing for the
-- request path to do (the recorder writes in the background), one upsert per row per table.
-- No personal data: models, variants, counts and sums only; feedback_latest holds the
-- latest judgement values, never a comment or a correction.

-- Per (hour, model, variant, latency bucket): exact counts and sums. The latency bucket makes
-- the rows a histogram (buckets 10% wide: bucket k holds [1.1^k, 1.1^(k+1)) ms; -1000 when
-- the latency is unknown) while each interaction still touches exactly one row. NULL model
-- or variant is stored as '' (NULLs never conflict in a unique key).
CREATE TABLE interaction_rollups (
    hour                INTEGER NOT NULL,  -- the hour's start, epoch seconds (UTC)
    model               TEXT NOT NULL,
    variant             TEXT NOT NULL,
    latency_bucket      INTEGER NOT NULL,
    interactions        INTEGER NOT NULL,
    success             INTEGER NOT NULL,
    error               INTEGER NOT NULL,
    client_disconnected INTEGER NOT NULL,
    cost_usd            REAL NOT NULL,
    cost_known          INTEGER NOT NULL,  -- rows with a cost: none known shows as unknown
    prompt_tokens       INTEGER NOT NULL,
    completion_tokens   INTEGER NOT NULL,
    latency_ms          REAL NOT NULL,     -- sum
    ttft_known          INTEGER NOT NULL,
    ttft_ms             REAL NOT NULL,     -- sum
    PRIMARY KEY (hour, model, variant, latency_bucket)
) WITHOUT ROWID;

CREATE TRIGGER interactions_rollup_insert AFTER INSERT ON interactions BEGIN
    INSERT INTO interaction_rollups VALUES (
        CAST(strftime('%s', NEW.created_at) AS INTEGER) / 3600 * 3600,
        coalesce(NEW.requested_model, ''), coalesce(NEW.variant, ''),
        CASE WHEN NEW.latency_ms IS NULL THEN -1000
             ELSE CAST(floor(ln(min(max(NEW.latency_ms, 0.001), 1e9)) / ln(1.1)) AS INTEGER) END,
        1, NEW.status = 'success', NEW.status = 'error', NEW.status = 'client_disconnected',
        coalesce(NEW.cost_usd, 0), NEW.cost_usd IS NOT NULL,
        coalesce(NEW.prompt_tokens, 0), coalesce(NEW.completion_tokens, 0),
        coalesce(NEW.latency_ms, 0), NEW.ttft_ms IS NOT NULL, coalesce(NEW.ttft_ms, 0))
    ON CONFLICT (hour, model, variant, latency_bucket) DO UPDATE SET
        interactions = interactions + 1,
        success = success + excluded.success,
        error = error + excluded.error,
        client_disconnected = client_disconnected + excluded.client_disconnected,
        cost_usd = cost_usd + excluded.cost_usd,
        cost_known = cost_known + excluded.cost_known,
        prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens,
        latency_ms = latency_ms + excluded.latency_ms,
        ttft_known = ttft_known + excluded.ttft_known,
        ttft_ms = ttft_ms + excluded.ttft_ms;
    -- Feedback that arrived before its interaction's row learns where it belongs.
    UPDATE feedback_latest SET created_at = NEW.created_at, model = NEW.requested_model,
        variant = NEW.variant WHERE interaction_id = NEW.id;
END;

CREATE TRIGGER interactions_rollup_delete AFTER DELETE ON interactions BEGIN
    UPDATE interaction_rollups SET
        interactions = interactions - 1,
        success = success - (OLD.status = 'success'),
        error = error - (OLD.status = 'error'),
        client_disconnected = client_disconnected - (OLD.status = 'client_disconnected'),
        cost_usd = cost_usd - coalesce(OLD.cost_usd, 0),
        cost_known = cost_known - (OLD.cost_usd IS NOT NULL),
        prompt_tokens = prompt_tokens - coalesce(OLD.prompt_tokens, 0),
        completion_tokens = completion_tokens - coalesce(OLD.completion_tokens, 0),
        latency_ms = latency_ms - coalesce(OLD.latency_ms, 0),
        ttft_known = ttft_known - (OLD.ttft_ms IS NOT NULL),
        ttft_ms = ttft_ms - coalesce(OLD.ttft_ms, 0)
    WHERE hour = CAST(strftime('%s', OLD.created_at) AS INTEGER) / 3600 * 3600
      AND model = coalesce(OLD.requested_model, '') AND variant = coalesce(OLD.variant, '')
      AND latency_bucket = CASE WHEN OLD.latency_ms IS NULL THEN -1000
          ELSE CAST(floor(ln(min(max(OLD.latency_ms, 0.001), 1e9)) / ln(1.1)) AS INTEGER) END;
    UPDATE feedback_latest SET created_at = NULL, model = NULL, variant = NULL
        WHERE interaction_id = OLD.id;
END;

-- Per interaction with feedback: its events and the latest value of each field the overview
-- counts, with the (created_at, id) of the event that set it ("<created_at> <id>": text order
-- is the order `ORDER BY created_at, id` gives), and the interaction's time, model and variant
-- once its row exists. The overview reads the window's judged interactions from here instead
-- of probing the feedback table for every interaction of the window.
CREATE TABLE feedback_latest (
    interaction_id     TEXT PRIMARY KEY,
    created_at         TEXT,
    model              TEXT,
    variant            TEXT,
    events             INTEGER NOT NULL,
    thumbs             TEXT,
    thumbs_at          TEXT,
    rating             INTEGER,
    rating_at          TEXT,
    outcome            TEXT,
    outcome_at         TEXT,
    correction_type    TEXT,
    correction_type_at TEXT
);
-- Covering: the overview reads a month's judged interactions from the index alone.
CREATE INDEX feedback_latest_created ON feedback_latest
    (created_at, model, variant, thumbs, rating, outcome, correction_type, events);

CREATE TRIGGER feedback_latest_insert AFTER INSERT ON feedback BEGIN
    INSERT INTO feedback_latest
    SELECT NEW.interaction_id, i.created_at, i.requested_model, i.variant, 1,
        NEW.thumbs, CASE WHEN NEW.thumbs IS NOT NULL THEN NEW.created_at || ' ' || NEW.id END,
        NEW.rating, CASE WHEN NEW.rating IS NOT NULL THEN NEW.created_at || ' ' || NEW.id END,
        NEW.outcome, CASE WHEN NEW.outcome IS NOT NULL THEN NEW.created_at || ' ' || NEW.id END,
        NEW.correction_type,
        CASE WHEN NEW.correction_type IS NOT NULL THEN NEW.created_at || ' ' || NEW.id END
    FROM (SELECT 1) LEFT JOIN interactions i ON i.id = NEW.interaction_id
    WHERE true  -- SQLite needs a WHERE before an upsert's ON CONFLICT after a SELECT
    ON CONFLICT (interaction_id) DO UPDATE SET
        events = events + 1,
        thumbs = CASE WHEN excluded.thumbs_at > coalesce(thumbs_at, '')
                      THEN excluded.thumbs ELSE thumbs END,
        thumbs_at = CASE WHEN excluded.thumbs_at > coalesce(thumbs_at, '')
                         THEN excluded.thumbs_at ELSE thumbs_at END,
        rating = CASE WHEN excluded.rating_at > coalesce(rating_at, '')
                      THEN excluded.rating ELSE rating END,
        rating_at = CASE WHEN excluded.rating_at > coalesce(rating_at, '')
                         THEN excluded.rating_at ELSE rating_at END,
        outcome = CASE WHEN excluded.outcome_at > coalesce(outcome_at, '')
                       THEN excluded.outcome ELSE outcome END,
        outcome_at = CASE WHEN excluded.outcome_at > coalesce(outcome_at, '')
                          THEN excluded.outcome_at ELSE outcome_at END,
        correction_type = CASE WHEN excluded.correction_type_at > coalesce(correction_type_at, '')
                               THEN excluded.correction_type ELSE correction_type END,
        correction_type_at = CASE WHEN excluded.correction_type_at > coalesce(correction_type_at, '')
                                  THEN excluded.correction_type_at ELSE correction_type_at END;
END;

-- A deleted event (forget, retention) may have been the latest: the row is built again from
-- the events left. Deletes are rare and batched; the recorder never deletes.
CREATE TRIGGER feedback_latest_delete AFTER DELETE ON feedback BEGIN
    DELETE FROM feedback_latest WHERE interaction_id = OLD.interaction_id;
    INSERT INTO feedback_latest
    SELECT OLD.interaction_id, i.created_at, i.requested_model, i.variant, n.events,
        t.thumbs, t.at, r.rating, r.at, o.outcome, o.at, c.correction_type, c.at
    FROM (SELECT count(*) AS events FROM feedback WHERE interaction_id = OLD.interaction_id) n
    LEFT JOIN interactions i ON i.id = OLD.interaction_id
    LEFT JOIN (SELECT thumbs, created_at || ' ' || id AS at FROM feedback
               WHERE interaction_id = OLD.interaction_id AND thumbs IS NOT NULL
               ORDER BY created_at DESC, id DESC LIMIT 1) t
    LEFT JOIN (SELECT rating, created_at || ' ' || id AS at FROM feedback
               WHERE interaction_id = OLD.interaction_id AND rating IS NOT NULL
               ORDER BY created_at DESC, id DESC LIMIT 1) r
    LEFT JOIN (SELECT outcome, created_at || ' ' || id AS at FROM feedback
               WHERE interaction_id = OLD.interaction_id AND outcome IS NOT NULL
               ORDER BY created_at DESC, id DESC LIMIT 1) o
    LEFT JOIN (SELECT correction_type, created_at || ' ' || id AS at FROM feedback
               WHERE interaction_id = OLD.interaction_id AND correction_type IS NOT NULL
               ORDER BY created_at DESC, id DESC LIMIT 1) c
    WHERE n.events > 0;
END;

-- Rows already stored.
INSERT INTO interaction_rollups
SELECT CAST(strftime('%s', created_at) AS INTEGER) / 3600 * 3600 AS h,
    coalesce(requested_model, '') AS m, coalesce(variant, '') AS v,
    CASE WHEN latency_ms IS NULL THEN -1000
         ELSE CAST(floor(ln(min(max(latency_ms, 0.001), 1e9)) / ln(1.1)) AS INTEGER) END AS b,
    count(*), sum(status = 'success'), sum(status = 'error'),
    sum(status = 'client_disconnected'), total(cost_usd), count(cost_usd),
    coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), total(latency_ms), count(ttft_ms),
    total(ttft_ms)
FROM interactions GROUP BY h, m, v, b;

INSERT INTO feedback_latest
SELECT e.interaction_id, i.created_at, i.requested_model, i.variant, e.events,
    (SELECT thumbs FROM feedback f WHERE f.interaction_id = e.interaction_id
     AND thumbs IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1),
    (SELECT created_at || ' ' || id FROM feedback f WHERE f.interaction_id = e.interaction_id
     AND thumbs IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1),
    (SELECT rating FROM feedback f WHERE f.interaction_id = e.interaction_id
     AND rating IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1),
    (SELECT created_at || ' ' || id FROM feedback f WHERE f.interaction_id = e.interaction_id
     AND rating IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1),
    (SELECT outcome FROM feedback f WHERE f.interaction_id = e.interaction_id
     AND outcome IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1),
    (SELECT created_at || ' ' || id FROM feedback f WHERE f.interaction_id = e.interaction_id
     AND outcome IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1),
    (SELECT correction_type FROM feedback f WHERE f.interaction_id = e.interaction_id
     AND correction_type IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1),
    (SELECT created_at || ' ' || id FROM feedback f WHERE f.interaction_id = e.interaction_id
     AND correction_type IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1)
FROM (SELECT interaction_id, count(*) AS events FROM feedback GROUP BY interaction_id) e
LEFT JOIN interactions i ON i.id = e.interaction_id;
