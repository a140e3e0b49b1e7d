CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    provider_job_id TEXT,
    status TEXT NOT NULL,
    audio_url TEXT,
    recording_id TEXT,
    options TEXT NOT NULL,
    metadata TEXT NOT NULL,
    error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    completed_at DOUBLE PRECISION,
    reconcile_at DOUBLE PRECISION,
    reconcile_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX jobs_provider_job ON jobs (provider, provider_job_id) WHERE provider_job_id IS NOT NULL;
CREATE INDEX jobs_reconcile ON jobs (reconcile_at) WHERE reconcile_at IS NOT NULL;

CREATE TABLE callbacks (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    job_id TEXT,
    provider_job_id TEXT,
    job_hint TEXT,
    method TEXT NOT NULL,
    headers TEXT NOT NULL,
    query TEXT NOT NULL,
    body BYTEA NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    lease_until DOUBLE PRECISION,
    last_error TEXT,
    processed_at DOUBLE PRECISION,
    UNIQUE (provider, dedupe_key)
);
CREATE INDEX callbacks_due ON callbacks (status, next_attempt_at);
CREATE INDEX callbacks_job ON callbacks (job_id);

CREATE TABLE transcripts (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    body BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    job_id TEXT NOT NULL UNIQUE,
    transcript_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    payload BYTEA NOT NULL
);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT,
    event_types TEXT NOT NULL,
    filter TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    disabled_reason TEXT,
    disabled_at DOUBLE PRECISION,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at DOUBLE PRECISION,
    failing_since DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    schedule_index INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION,
    lease_until DOUBLE PRECISION,
    last_status_code INTEGER,
    last_error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (event_id, subscription_id)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, status);

CREATE TABLE attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    attempted_at DOUBLE PRECISION NOT NULL,
    status_code INTEGER,
    latency_ms DOUBLE PRECISION,
    error TEXT,
    response_excerpt TEXT,
    trigger TEXT NOT NULL
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
