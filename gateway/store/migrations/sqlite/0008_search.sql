-- Text search (gateway/store/search.py): the string values of each interaction's request and
-- response, one per line, in an FTS5 trigram index keyed by the interaction's rowid. Filled in
-- the background by gateway/store/indexer.py in rowid order, never by the recorder's insert.
CREATE VIRTUAL TABLE interaction_search USING fts5(body, tokenize = 'trigram');
-- A forgotten or expired interaction takes its indexed text with it.
CREATE TRIGGER interaction_search_forget AFTER DELETE ON interactions BEGIN
    DELETE FROM interaction_search WHERE rowid = old.rowid;
END
