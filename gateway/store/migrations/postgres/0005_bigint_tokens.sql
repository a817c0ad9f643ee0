-- Token counts are 64-bit, as in SQLite: an upstream reporting more than 2^31 tokens must not
-- make its row unstorable. (Rewrites the table once; on a large one, run `flywheel migrate`
-- in a quiet hour.)
ALTER TABLE interactions
    ALTER COLUMN prompt_tokens TYPE BIGINT,
    ALTER COLUMN completion_tokens TYPE BIGINT,
    ALTER COLUMN cached_tokens TYPE BIGINT,
    ALTER COLUMN reasoning_tokens TYPE BIGINT;
