-- A counter of the changes that decide which subscriptions an event goes to (a subscription
-- created, deleted, enabled or disabled, its event types or filter changed), kept by triggers so
-- that every writer bumps it: the API, the CLI, the delivery worker disabling an endpoint, SQL by
-- hand. The processor reads it with each claim and re-reads the subscriptions only when it
-- moved, instead of once per batch. Health updates (failing_since) and other columns leave it
-- alone.
INSERT INTO meta (key, value) VALUES ('subscriptions_version', '0') ON CONFLICT (key) DO NOTHING;

CREATE TRIGGER subscriptions_added AFTER INSERT ON subscriptions
BEGIN
    UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'subscriptions_version';
END;

CREATE TRIGGER subscriptions_removed AFTER DELETE ON subscriptions
BEGIN
    UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'subscriptions_version';
END;

CREATE TRIGGER subscriptions_matching_changed AFTER UPDATE OF enabled, event_types, filter ON subscriptions
    WHEN OLD.enabled IS NOT NEW.enabled OR OLD.event_types IS NOT NEW.event_types OR OLD.filter IS NOT NEW.filter
BEGIN
    UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'subscriptions_version';
END;
