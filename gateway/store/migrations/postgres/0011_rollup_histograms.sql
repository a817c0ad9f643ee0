-- The hourly rollups hold one row per (hour, model, variant), its latency histogram inside the
-- row as jsonb ({"<bucket>": count}, buckets as in 0010; rows without a latency are counted but
-- in no bucket). 0010 kept a row per latency bucket as well: ~25 times the rows, and summing a
-- month's 70k of them took 0.2-0.3 s at 1M interactions, near the console's page budget.
-- Counts, sums and histograms are unchanged, so is how they are read
-- (gateway/store/rollups.py).

-- Two histograms added bucket by bucket (a negative count takes away).
CREATE FUNCTION flywheel_histogram_add(a JSONB, b JSONB) RETURNS JSONB
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(key, total), '{}'::jsonb)
    FROM (SELECT key, sum(value::bigint) AS total
          FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b)) e
          GROUP BY key) s
$$;

CREATE TABLE interaction_rollups_by_hour (
    hour                BIGINT NOT NULL,
    model               TEXT NOT NULL,
    variant             TEXT NOT NULL,
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
    latency_histogram   JSONB NOT NULL,
    PRIMARY KEY (hour, model, variant)
);

INSERT INTO interaction_rollups_by_hour
SELECT hour, model, variant, sum(interactions), sum(success), sum(error),
    sum(client_disconnected), sum(cost_usd), sum(cost_known), sum(prompt_tokens),
    sum(completion_tokens), sum(latency_ms), sum(ttft_known), sum(ttft_ms),
    coalesce(jsonb_object_agg(latency_bucket::text, interactions)
        FILTER (WHERE latency_bucket <> -1000 AND interactions <> 0), '{}'::jsonb)
FROM interaction_rollups GROUP BY hour, model, variant;

DROP TRIGGER interactions_rollup_added ON interactions;
DROP TRIGGER interactions_rollup_removed ON interactions;
DROP FUNCTION flywheel_rollup_added();
DROP FUNCTION flywheel_rollup_removed();
DROP TABLE interaction_rollups;
ALTER TABLE interaction_rollups_by_hour RENAME TO interaction_rollups;
ALTER INDEX interaction_rollups_by_hour_pkey RENAME TO interaction_rollups_pkey;

-- A batch of inserted rows is added once per statement, one upsert per (hour, model, variant).
CREATE FUNCTION flywheel_rollup_added() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO interaction_rollups
    SELECT hour, model, variant, sum(n), sum(success), sum(error), sum(client_disconnected),
        sum(cost_usd), sum(cost_known), sum(prompt_tokens), sum(completion_tokens),
        sum(latency_ms), sum(ttft_known), sum(ttft_ms),
        coalesce(jsonb_object_agg(bucket::text, n) FILTER (WHERE bucket <> -1000), '{}'::jsonb)
    FROM (
        SELECT flywheel_hour(created_at) AS hour, coalesce(requested_model, '') AS model,
            coalesce(variant, '') AS variant, flywheel_latency_bucket(latency_ms) AS bucket,
            count(*) AS n, count(*) FILTER (WHERE status = 'success') AS success,
            count(*) FILTER (WHERE status = 'error') AS error,
            count(*) FILTER (WHERE status = 'client_disconnected') AS client_disconnected,
            coalesce(sum(cost_usd), 0) AS cost_usd, count(cost_usd) AS cost_known,
            coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
            coalesce(sum(completion_tokens), 0) AS completion_tokens,
            coalesce(sum(latency_ms), 0) AS latency_ms, count(ttft_ms) AS ttft_known,
            coalesce(sum(ttft_ms), 0) AS ttft_ms
        FROM added GROUP BY 1, 2, 3, 4
    ) per_bucket
    GROUP BY hour, model, variant
    ON CONFLICT (hour, model, variant) DO UPDATE SET
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
        ttft_ms = interaction_rollups.ttft_ms + excluded.ttft_ms,
        latency_histogram = flywheel_histogram_add(
            interaction_rollups.latency_histogram, excluded.latency_histogram);
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
        ttft_ms = ttft_ms - coalesce(OLD.ttft_ms, 0),
        latency_histogram = CASE WHEN OLD.latency_ms IS NULL THEN latency_histogram
            ELSE flywheel_histogram_add(latency_histogram,
                jsonb_build_object(flywheel_latency_bucket(OLD.latency_ms)::text, -1)) END
    WHERE hour = flywheel_hour(OLD.created_at) AND model = coalesce(OLD.requested_model, '')
        AND variant = coalesce(OLD.variant, '');
    -- Its feedback (deleted with it by forget, or kept) belongs nowhere any more.
    UPDATE feedback_latest SET created_at = NULL, model = NULL, variant = NULL
        WHERE interaction_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER interactions_rollup_removed AFTER DELETE ON interactions
    FOR EACH ROW EXECUTE FUNCTION flywheel_rollup_removed();
