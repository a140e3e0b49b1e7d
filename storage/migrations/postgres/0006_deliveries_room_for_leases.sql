-- A claim writes each delivery's lease, a column in no index, so PostgreSQL can update the row in
-- place on its page (a HOT update: no new index entries) if the page has room for the row's new
-- version. Packed full, it never had: every lease was a new row version elsewhere and an entry in
-- each of the table's four indexes, and a claim of 64 deliveries took 1.5-2.9 ms of the server's
-- time (EXPLAIN ANALYZE, a backlog of 5,000 to one endpoint), against 0.6-0.9 ms with half of each
-- page left free. Rows written from now on leave that room; existing pages keep theirs.
ALTER TABLE deliveries SET (fillfactor = 50);
