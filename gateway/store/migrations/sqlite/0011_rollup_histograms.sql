-- The hourly rollups hold one row per (hour, model, variant), its latency histogram inside the
-- row as JSON ({"<bucket>": count}, buckets as in 0010; rows without a latency are counted but
-- in no bucket). 0010 kept a row per latency bucket as well: ~25 times the rows, and summing a
-- month's 70k of them was a sort that took 0.15-0.4 s on SQLite at 1M interactions, more than
-- the console's page budget. Counts, sums and histograms are unchanged, so is how they are
-- read (gateway/store/rollups.py).

CREATE TABLE interaction_rollups_by_hour (
    hour                INTEGER NOT NULL,  -- the hour's start, epoch seconds (UTC)
    model               TEXT NOT NULL,
    variant             TEXT NOT NULL,
    interactions        INTEGER NOT NULL,
    success             INTEGER NOT NULL,
    error               INTEGER NOT NULL,
    client_disconnected INTEGER NOT NULL,
    cost_usd            REAL NOT NULL,
    cost_known          INTEGER NOT NULL,
    prompt_tokens       INTEGER NOT NULL,
    completion_tokens   INTEGER NOT NULL,
    latency_ms          REAL NOT NULL,     -- sum
    ttft_known          INTEGER NOT NULL,
    ttft_ms             REAL NOT NULL,     -- sum
    latency_histogram   TEXT NOT NULL,     -- JSON: bucket -> interactions
    PRIMARY KEY (hour, model, variant)
) WITHOUT ROWID;

INSERT INTO interaction_rollups_by_hour
SELECT hour, model, variant, sum(interactions), sum(success), sum(error),
    sum(client_disconnected), total(cost_usd), sum(cost_known), sum(prompt_tokens),
    sum(completion_tokens), total(latency_ms), sum(ttft_known), total(ttft_ms),
    json_group_object(CAST(latency_bucket AS TEXT), interactions)
        FILTER (WHERE latency_bucket <> -1000 AND interactions <> 0)
FROM interaction_rollups GROUP BY hour, model, variant;

DROP TRIGGER interactions_rollup_insert;
DROP TRIGGER interactions_rollup_delete;
DROP TABLE interaction_rollups;
ALTER TABLE interaction_rollups_by_hour RENAME TO interaction_rollups;

-- Inserts are added up by the store, once per batch, in the batch's transaction
-- (gateway/store/sqlite_rollups.py): a row trigger cost the recorder ~19 us a row. It places
-- feedback that arrived before its interaction too. A delete takes its row away here; the JSON
-- path of its bucket is spelled out twice, as a trigger has no variables.
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
        ttft_ms = ttft_ms - coalesce(OLD.ttft_ms, 0),
        latency_histogram = CASE WHEN OLD.latency_ms IS NULL THEN latency_histogram
            ELSE json_set(latency_histogram,
                '$."' || CAST(floor(ln(min(max(OLD.latency_ms, 0.001), 1e9)) / ln(1.1))
                              AS INTEGER) || '"',
                json_extract(latency_histogram,
                    '$."' || CAST(floor(ln(min(max(OLD.latency_ms, 0.001), 1e9)) / ln(1.1))
                                  AS INTEGER) || '"') - 1) END
    WHERE hour = CAST(strftime('%s', OLD.created_at) AS INTEGER) / 3600 * 3600
      AND model = coalesce(OLD.requested_model, '') AND variant = coalesce(OLD.variant, '');
    UPDATE feedback_latest SET created_at = NULL, model = NULL, variant = NULL
        WHERE interaction_id = OLD.id;
END;
