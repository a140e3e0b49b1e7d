-- A counter of the changes that decide which subscriptions an event goes to (a subscription
-- created, deleted, enabled or disabled, its event types or filter changed), kept by triggers so
-- that every writer bumps it: the API, the CLI, the delivery worker disabling an endpoint, SQL by
-- hand. The processor reads it with each claim, in the claim's statement, and re-reads the
-- subscriptions only when it moved, instead of once per batch. Health updates (failing_since)
-- and other columns leave it alone.
INSERT INTO meta (key, value) VALUES ('subscriptions_version', '0') ON CONFLICT (key) DO NOTHING;

CREATE FUNCTION callboard_subscriptions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'subscriptions_version';
    RETURN NULL;
END
$$;

CREATE TRIGGER subscriptions_added_or_removed AFTER INSERT OR DELETE ON subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION callboard_subscriptions_changed();

CREATE TRIGGER subscriptions_matching_changed AFTER UPDATE ON subscriptions
    FOR EACH ROW
    WHEN (OLD.enabled IS DISTINCT FROM NEW.enabled OR OLD.event_types IS DISTINCT FROM NEW.event_types
          OR OLD.filter IS DISTINCT FROM NEW.filter)
    EXECUTE FUNCTION callboard_subscriptions_changed();
