-- PostgreSQL only (see its 0006): SQLite updates a row in place whatever its page holds, and its
-- claim reads the lease from the index (migration 0004).
SELECT 1;
