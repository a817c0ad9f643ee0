-- Nothing to change: SQLite's INTEGER already holds 64 bits. Kept so that both engines list
-- the same migrations (PostgreSQL widens its token columns to BIGINT here).
SELECT 1
