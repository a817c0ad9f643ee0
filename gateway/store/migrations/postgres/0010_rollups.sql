-- Hourly rollups for the overview and /admin/stats (gateway/store/rollups.py says how they
-- are read). Kept by triggers on insert and delete of interactions and feedback: exact for
-- rows that commit late (spool replays) and for forget/retention deletes, nothing for the
-- request path to do (the recorder writes in the background); an insert statement's rows are
-- added together (statement trigger), a delete takes away each row.
-- No personal data: models, variants, counts and sums only; feedback_latest holds the
-- latest judgement values, never a comment or a correction.

-- The hour holding a moment, as epoch seconds; and the latency histogram's bucket: k holds
-- [1.1^k, 1.1^(k+1)) ms, -1000 when unknown. Clamped so that no value (NaN, infinity) can
-- fail an insert. The reads use the same functions for the rows at a window's edges.
CREATE FUNCTION flywheel_hour(at TIMESTAMPTZ) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CAST(floor(extract(epoch FROM at) / 3600) AS BIGINT) * 3600
$$;
CREATE FUNCTION flywheel_latency_bucket(ms DOUBLE PRECISION) RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ms IS NULL THEN -1000
        ELSE CAST(floor(ln(least(greatest(ms, 0.001::float8), 1e9::float8)) / ln(1.1::float8))
                  AS INTEGER) END
$$;
-- "<created_at in UTC, fixed width> <id>": text order is the order of (created_at, id).
CREATE FUNCTION flywheel_feedback_key(at TIMESTAMPTZ, id UUID) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || ' ' || id::text
$$;

-- Per (hour, model, variant, latency bucket): exact counts and sums. The latency bucket makes
-- the rows a histogram while each interaction still touches exactly one row. NULL model or
-- variant is stored as '' (NULLs never conflict in a unique key).
CREATE TABLE interaction_rollups (
    hour                BIGINT NOT NULL,
    model               TEXT NOT NULL,
    variant             TEXT NOT NULL,
    latency_bucket      INTEGER NOT NULL,
    interactions        BIGINT NOT NULL,
    success             BIGINT NOT NULL,
    error               BIGINT NOT NULL,
    client_disconnected BIGINT NOT NULL,
    cost_usd            DOUBLE PRECISION NOT NULL,
    cost_known          BIGINT NOT NULL,
    prompt_tokens       BIGINT NOT NULL,
    completion_tokens   BIGINT NOT NULL,
    latency_ms          DOUBLE PRECISION NOT NULL,
    ttft_known          BIGINT NOT NULL,
    ttft_ms             DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hour, model, variant, latency_bucket)
);

-- Per interaction with feedback: its events, the latest value of each field the overview
-- counts with the key of the event that set it, and the interaction's time, model and variant
-- once its row exists.
CREATE TABLE feedback_latest (
    interaction_id     UUID PRIMARY KEY,
    created_at         TIMESTAMPTZ,
    model              TEXT,
    variant            TEXT,
    events             BIGINT NOT NULL,
    thumbs             TEXT,
    thumbs_at          TEXT,
    rating             INTEGER,
    rating_at          TEXT,
    outcome            TEXT,
    outcome_at         TEXT,
    correction_type    TEXT,
    correction_type_at TEXT
);
CREATE INDEX feedback_latest_created ON feedback_latest (created_at);

-- A batch of inserted rows is added once per statement: the recorder writes each batch as one
-- INSERT (gateway/store/postgres.py), so a batch of 500 costs one upsert per hour, model,
-- variant and latency bucket in it, not 500 (a row trigger doubled the insert's time).
CREATE FUNCTION flywheel_rollup_added() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO interaction_rollups
    SELECT flywheel_hour(created_at), coalesce(requested_model, ''), coalesce(variant, ''),
        flywheel_latency_bucket(latency_ms), count(*),
        count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'error'),
        count(*) FILTER (WHERE status = 'client_disconnected'),
        coalesce(sum(cost_usd), 0), count(cost_usd),
        coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
        coalesce(sum(latency_ms), 0), count(ttft_ms), coalesce(sum(ttft_ms), 0)
    FROM added GROUP BY 1, 2, 3, 4
    ON CONFLICT (hour, model, variant, latency_bucket) DO UPDATE SET
        interactions = interaction_rollups.interactions + excluded.interactions,
        success = interaction_rollups.success + excluded.success,
        error = interaction_rollups.error + excluded.error,
        client_disconnected = interaction_rollups.client_disconnected + excluded.client_disconnected,
        cost_usd = interaction_rollups.cost_usd + excluded.cost_usd,
        cost_known = interaction_rollups.cost_known + excluded.cost_known,
        prompt_tokens = interaction_rollups.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = interaction_rollups.completion_tokens + excluded.completion_tokens,
        latency_ms = interaction_rollups.latency_ms + excluded.latency_ms,
        ttft_known = interaction_rollups.ttft_known + excluded.ttft_known,
        ttft_ms = interaction_rollups.ttft_ms + excluded.ttft_ms;
    -- Feedback that arrived before its interaction's row learns where it belongs.
    UPDATE feedback_latest l SET created_at = a.created_at, model = a.requested_model,
        variant = a.variant
    FROM added a WHERE l.interaction_id = a.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER interactions_rollup_added AFTER INSERT ON interactions
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION flywheel_rollup_added();

-- A delete (forget, retention: rare, batched) takes each row away again.
CREATE FUNCTION flywheel_rollup_removed() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    UPDATE interaction_rollups SET
        interactions = interactions - 1,
        success = success - (OLD.status = 'success')::int,
        error = error - (OLD.status = 'error')::int,
        client_disconnected = client_disconnected - (OLD.status = 'client_disconnected')::int,
        cost_usd = cost_usd - coalesce(OLD.cost_usd, 0),
        cost_known = cost_known - (OLD.cost_usd IS NOT NULL)::int,
        prompt_tokens = prompt_tokens - coalesce(OLD.prompt_tokens, 0),
        completion_tokens = completion_tokens - coalesce(OLD.completion_tokens, 0),
        latency_ms = latency_ms - coalesce(OLD.latency_ms, 0),
        ttft_known = ttft_known - (OLD.ttft_ms IS NOT NULL)::int,
        ttft_ms = ttft_ms - coalesce(OLD.ttft_ms, 0)
    WHERE hour = flywheel_hour(OLD.created_at) AND model = coalesce(OLD.requested_model, '')
        AND variant = coalesce(OLD.variant, '')
        AND latency_bucket = flywheel_latency_bucket(OLD.latency_ms);
    -- Its feedback (deleted with it by forget, or kept) belongs nowhere any more.
    UPDATE feedback_latest SET created_at = NULL, model = NULL, variant = NULL
        WHERE interaction_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER interactions_rollup_removed AFTER DELETE ON interactions
    FOR EACH ROW EXECUTE FUNCTION flywheel_rollup_removed();

-- The search queue (migration 0008) the same way: one statement per batch, not one per row.
DROP TRIGGER interactions_queue_search ON interactions;
DROP FUNCTION flywheel_queue_search();
CREATE FUNCTION flywheel_queue_search() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO interaction_search_queue (interaction_id) SELECT id FROM added;
    RETURN NULL;
END
$$;
CREATE TRIGGER interactions_queue_search AFTER INSERT ON interactions
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION flywheel_queue_search();

CREATE FUNCTION flywheel_feedback_latest_insert() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    k TEXT := flywheel_feedback_key(NEW.created_at, NEW.id);
BEGIN
    INSERT INTO feedback_latest AS l
    SELECT NEW.interaction_id, i.created_at, i.requested_model, i.variant, 1,
        NEW.thumbs, CASE WHEN NEW.thumbs IS NOT NULL THEN k END,
        NEW.rating, CASE WHEN NEW.rating IS NOT NULL THEN k END,
        NEW.outcome, CASE WHEN NEW.outcome IS NOT NULL THEN k END,
        NEW.correction_type, CASE WHEN NEW.correction_type IS NOT NULL THEN k END
    FROM (SELECT 1) AS one LEFT JOIN interactions i ON i.id = NEW.interaction_id
    ON CONFLICT (interaction_id) DO UPDATE SET
        events = l.events + 1,
        thumbs = CASE WHEN excluded.thumbs_at > coalesce(l.thumbs_at, '')
                      THEN excluded.thumbs ELSE l.thumbs END,
        thumbs_at = CASE WHEN excluded.thumbs_at > coalesce(l.thumbs_at, '')
                         THEN excluded.thumbs_at ELSE l.thumbs_at END,
        rating = CASE WHEN excluded.rating_at > coalesce(l.rating_at, '')
                      THEN excluded.rating ELSE l.rating END,
        rating_at = CASE WHEN excluded.rating_at > coalesce(l.rating_at, '')
                         THEN excluded.rating_at ELSE l.rating_at END,
        outcome = CASE WHEN excluded.outcome_at > coalesce(l.outcome_at, '')
                       THEN excluded.outcome ELSE l.outcome END,
        outcome_at = CASE WHEN excluded.outcome_at > coalesce(l.outcome_at, '')
                          THEN excluded.outcome_at ELSE l.outcome_at END,
        correction_type = CASE WHEN excluded.correction_type_at > coalesce(l.correction_type_at, '')
                               THEN excluded.correction_type ELSE l.correction_type END,
        correction_type_at = CASE
            WHEN excluded.correction_type_at > coalesce(l.correction_type_at, '')
            THEN excluded.correction_type_at ELSE l.correction_type_at END;
    RETURN NULL;
END
$$;
CREATE TRIGGER feedback_latest_insert AFTER INSERT ON feedback
    FOR EACH ROW EXECUTE FUNCTION flywheel_feedback_latest_insert();

-- A deleted event (forget, retention) may have been the latest: the row is built again from
-- the events left. Deletes are rare and batched; the recorder never deletes.
CREATE FUNCTION flywheel_feedback_latest_delete() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM feedback_latest WHERE interaction_id = OLD.interaction_id;
    INSERT INTO feedback_latest
    SELECT OLD.interaction_id, i.created_at, i.requested_model, i.variant, n.events,
        t.thumbs, t.at, r.rating, r.at, o.outcome, o.at, c.correction_type, c.at
    FROM (SELECT count(*) AS events FROM feedback WHERE interaction_id = OLD.interaction_id) n
    LEFT JOIN interactions i ON i.id = OLD.interaction_id
    LEFT JOIN (SELECT thumbs, flywheel_feedback_key(created_at, id) AS at FROM feedback
               WHERE interaction_id = OLD.interaction_id AND thumbs IS NOT NULL
               ORDER BY created_at DESC, id DESC LIMIT 1) t ON true
    LEFT JOIN (SELECT rating, flywheel_feedback_key(created_at, id) AS at FROM feedback
               WHERE interaction_id = OLD.interaction_id AND rating IS NOT NULL
               ORDER BY created_at DESC, id DESC LIMIT 1) r ON true
    LEFT JOIN (SELECT outcome, flywheel_feedback_key(created_at, id) AS at FROM feedback
               WHERE interaction_id = OLD.interaction_id AND outcome IS NOT NULL
               ORDER BY created_at DESC, id DESC LIMIT 1) o ON true
    LEFT JOIN (SELECT correction_type, flywheel_feedback_key(created_at, id) AS at FROM feedback
               WHERE interaction_id = OLD.interaction_id AND correction_type IS NOT NULL
               ORDER BY created_at DESC, id DESC LIMIT 1) c ON true
    WHERE n.events > 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER feedback_latest_delete AFTER DELETE ON feedback
    FOR EACH ROW EXECUTE FUNCTION flywheel_feedback_latest_delete();

-- Rows already stored.
INSERT INTO interaction_rollups
SELECT flywheel_hour(created_at) AS h, coalesce(requested_model, '') AS m,
    coalesce(variant, '') AS v, flywheel_latency_bucket(latency_ms) AS b,
    count(*), count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'error'),
    count(*) FILTER (WHERE status = 'client_disconnected'), coalesce(sum(cost_usd), 0),
    count(cost_usd), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
    coalesce(sum(latency_ms), 0), count(ttft_ms), coalesce(sum(ttft_ms), 0)
FROM interactions GROUP BY h, m, v, b;

INSERT INTO feedback_latest
SELECT e.interaction_id, i.created_at, i.requested_model, i.variant, e.events,
    t.value, t.at, r.value, r.at, o.value, o.at, c.value, c.at
FROM (SELECT interaction_id, count(*) AS events FROM feedback GROUP BY interaction_id) e
LEFT JOIN interactions i ON i.id = e.interaction_id
LEFT JOIN (SELECT DISTINCT ON (interaction_id) interaction_id, thumbs AS value,
           flywheel_feedback_key(created_at, id) AS at FROM feedback WHERE thumbs IS NOT NULL
           ORDER BY interaction_id, created_at DESC, id DESC) t USING (interaction_id)
LEFT JOIN (SELECT DISTINCT ON (interaction_id) interaction_id, rating AS value,
           flywheel_feedback_key(created_at, id) AS at FROM feedback WHERE rating IS NOT NULL
           ORDER BY interaction_id, created_at DESC, id DESC) r USING (interaction_id)
LEFT JOIN (SELECT DISTINCT ON (interaction_id) interaction_id, outcome AS value,
           flywheel_feedback_key(created_at, id) AS at FROM feedback WHERE outcome IS NOT NULL
           ORDER BY interaction_id, created_at DESC, id DESC) o USING (interaction_id)
LEFT JOIN (SELECT DISTINCT ON (interaction_id) interaction_id, correction_type AS value,
           flywheel_feedback_key(created_at, id) AS at FROM feedback
           WHERE correction_type IS NOT NULL
           ORDER BY interaction_id, created_at DESC, id DESC) c USING (interaction_id);
