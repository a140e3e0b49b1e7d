-- The due indexes hold pending rows alone. A delivery's status is in both, so every attempt's
-- update put a new entry in each of the table's four indexes; now one that succeeds (what nearly
-- every attempt does) leaves the two partial ones instead, and they stay the size of the backlog
-- however much history the table keeps. Records of 27 attempts in a deep drain: see
-- docs/benchmarks.md, change 54.
-- The claim's per-endpoint index, without the status it now implies.
DROP INDEX deliveries_subscription_due;
CREATE INDEX deliveries_subscription_due ON deliveries (subscription_id, next_attempt_at, id)
    WHERE status = 'pending';
-- Listing deliveries by status (`GET /v1/deliveries?status=`) was all `deliveries_due` did. The
-- statuses that stay few (pending, failed, cancelled) keep an index; succeeded rows are most of the
-- table and found by the primary key's scan.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_status ON deliveries (status, id) WHERE status <> 'succeeded';
