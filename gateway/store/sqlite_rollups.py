"""What the SQLite recorder adds to the rollups (gateway/store/rollups.py) for each batch it
inserts, in the batch's transaction.

SQLite has no statement triggers: a row trigger cost the recorder's thread ~19 us for every
row (50 -> 32 us a row for a 500-row batch without it), one upsert and one lookup per row. So
the store adds a batch up once, from the rows whose rowid is above the largest before the
insert: exactly the rows it inserted (a replayed id is ignored, and SQLite gives each new row
a rowid above every existing one), one upsert per (hour, model, variant) in the batch. Deletes
keep their row trigger (migration 0011): forget and retention are rare, and delete anywhere.
Rows written into the file by other means than the store are not in the rollups.
"""

from __future__ import annotations

import json

from gateway.store.rollups import COUNTS

# Where this batch's rows will start, read under the write lock (BEGIN IMMEDIATE).
BATCH_START = "SELECT coalesce(max(rowid), 0) FROM interactions"

_BUCKET = (
    "CASE WHEN latency_ms IS NULL THEN -1000"
    " ELSE CAST(floor(ln(min(max(latency_ms, 0.001), 1e9)) / ln(1.1)) AS INTEGER) END"
)
# The rollup's summed columns, in the table's order.
_SUMMED = (*COUNTS, "latency_ms", "ttft_known", "ttft_ms")

# The batch per (hour, model, variant, latency bucket), then per hour with its histogram.
_ADD_BATCH = f"""
INSERT INTO interaction_rollups
SELECT hour, model, variant, {", ".join(f"sum({name})" for name in _SUMMED)},
    coalesce(json_group_object(CAST(bucket AS TEXT), interactions)
        FILTER (WHERE bucket <> -1000), '{{}}')
FROM (
    SELECT CAST(strftime('%s', created_at) AS INTEGER) / 3600 * 3600 AS hour,
        coalesce(requested_model, '') AS model, coalesce(variant, '') AS variant,
        {_BUCKET} AS bucket, count(*) AS interactions,
        sum(status = 'success') AS success, sum(status = 'error') AS error,
        sum(status = 'client_disconnected') AS client_disconnected,
        total(cost_usd) AS cost_usd, count(cost_usd) AS cost_known,
        coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
        coalesce(sum(completion_tokens), 0) AS completion_tokens,
        total(latency_ms) AS latency_ms, count(ttft_ms) AS ttft_known, total(ttft_ms) AS ttft_ms
    FROM interactions WHERE rowid > ?1 GROUP BY 1, 2, 3, 4
)
WHERE true  -- SQLite needs a WHERE before an upsert's ON CONFLICT after a SELECT
GROUP BY hour, model, variant
ON CONFLICT (hour, model, variant) DO UPDATE SET
    {", ".join(f"{name} = {name} + excluded.{name}" for name in _SUMMED)},
    latency_histogram = flywheel_histogram_add(latency_histogram, excluded.latency_histogram)
"""

# Feedback that arrived before its interaction's row learns where it belongs.
_PLACE_FEEDBACK = """
UPDATE feedback_latest SET (created_at, model, variant) = (
    SELECT created_at, requested_model, variant FROM interactions i
    WHERE i.id = feedback_latest.interaction_id)
WHERE interaction_id IN (SELECT id FROM interactions WHERE rowid > ?1)
"""

# Run after the batch's insert, each with BATCH_START's value.
AFTER_BATCH = (_ADD_BATCH, _PLACE_FEEDBACK)


def histogram_add(stored: str, added: str) -> str:
    """Two histograms (JSON: bucket -> count) added bucket by bucket: SQLite's
    `flywheel_histogram_add`, called once per hour, model and variant of a batch."""
    total: dict[str, int] = json.loads(stored)
    for bucket, count in json.loads(added).items():
        total[bucket] = total.get(bucket, 0) + count
    return json.dumps(total, separators=(",", ":"))
