-- The delivery claim takes each subscription's earliest due deliveries: with the due time in the
-- index (and the id, the tie-break of the order), that is a range scan that stops at its LIMIT
-- instead of a sort of the whole backlog.
-- It replaces (subscription_id, status), which is its prefix.
CREATE INDEX deliveries_subscription_due ON deliveries (subscription_id, status, next_attempt_at, id);
DROP INDEX deliveries_subscription;
