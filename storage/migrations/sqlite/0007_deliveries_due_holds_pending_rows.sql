-- As PostgreSQL's 0007: the due indexes hold pending rows alone, so the update of a delivery that
-- succeeds removes its entries from them instead of moving them. The claim's index keeps the
-- status (with it, the index still covers the claim's reads) and the lease (migration 0004).
DROP INDEX deliveries_subscription_due;
CREATE INDEX deliveries_subscription_due ON deliveries (subscription_id, status, next_attempt_at, id, lease_until)
    WHERE status = 'pending';
DROP INDEX deliveries_due;
CREATE INDEX deliveries_status ON deliveries (status, id) WHERE status <> 'succeeded';
