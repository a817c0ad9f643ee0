-- Text search (gateway/store/search.py): the string values of each interaction's request and
-- response, one per line, and a GIN index of their lowercase trigrams (pg_trgm's idea, without
-- needing the extension). Filled in the background by gateway/store/indexer.py.

-- Every string value of both documents (never a key), one per line.
CREATE FUNCTION flywheel_search_text(request JSONB, response JSONB) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(string_agg(v #>> '{}', E'\n'), '')
    FROM (SELECT jsonb_path_query(request, 'strict $.**') AS v
          UNION ALL SELECT jsonb_path_query(response, 'strict $.**')) AS strings
    WHERE jsonb_typeof(v) = 'string'
$$;

-- Every three-character piece of a text (the caller lowercases it), plus a few shorter ones
-- from the ends that no search asks for. Cut by regexp_replace at three offsets rather than
-- substr() per position: built-in C instead of a row per character, 7x faster. U+0001 is the
-- cut mark (a text holding one loses the pieces across it).
CREATE FUNCTION flywheel_trigrams(t TEXT) RETURNS TEXT[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_remove(
        string_to_array(regexp_replace(t, '(...)', E'\\1\x01', 'g'), E'\x01')
        || string_to_array(regexp_replace(substr(t, 2), '(...)', E'\\1\x01', 'g'), E'\x01')
        || string_to_array(regexp_replace(substr(t, 3), '(...)', E'\\1\x01', 'g'), E'\x01'),
        '')
$$;

CREATE TABLE interaction_search (
    -- A forgotten or expired interaction takes its indexed text with it.
    interaction_id UUID PRIMARY KEY REFERENCES interactions (id) ON DELETE CASCADE,
    body           TEXT NOT NULL
);
-- On an expression: the pieces are computed once, into the index, and never stored twice.
CREATE INDEX interaction_search_trigrams
    ON interaction_search USING GIN (flywheel_trigrams(lower(body)));

-- Ids written and not indexed yet. Commits do not come in the order of any column a writer
-- fills, so a watermark would skip a row committed late; a queue cannot. No key: one heap
-- row per insert is all the recorder pays.
CREATE TABLE interaction_search_queue (interaction_id UUID NOT NULL);

CREATE FUNCTION flywheel_queue_search() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO interaction_search_queue (interaction_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER interactions_queue_search AFTER INSERT ON interactions
    FOR EACH ROW EXECUTE FUNCTION flywheel_queue_search();

-- Rows already stored wait on the queue like new ones.
INSERT INTO interaction_search_queue (interaction_id) SELECT id FROM interactions;
