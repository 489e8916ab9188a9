-- Scratch schema: the deliveries table as migrations 0002..0011 leave it
-- (plain), and the same partitioned by day.
\set ON_ERROR_STOP on
DROP TABLE IF EXISTS d_plain, d_part, d_plain_1m, d_part_1m CASCADE;
DROP TABLE IF EXISTS notifs, notifs2 CASCADE;
CREATE TABLE notifs (id TEXT PRIMARY KEY, app_id TEXT NOT NULL, status TEXT NOT NULL, completed_at BIGINT);
CREATE INDEX notifs_finished ON notifs (completed_at) WHERE completed_at IS NOT NULL;
-- day 0 = 9 days ago ... day 9 = today (UTC)
SELECT (extract(epoch from date_trunc('day', now() at time zone 'utc') - interval '9 days') * 1000)::bigint AS base \gset
INSERT INTO notifs SELECT 'ntf_' || lpad(n::text, 26, '0'), 'app_bench', 'completed', :base + (n / 100) * 86400000 + (n % 100) * 800000 + 200000
FROM generate_series(0, 999) n;

CREATE TABLE d_plain (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id TEXT NOT NULL, notification_id TEXT NOT NULL REFERENCES notifs(id) ON DELETE CASCADE,
    device_id TEXT, platform TEXT NOT NULL, token TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL, lease_until BIGINT,
    provider_status INTEGER, reason TEXT, provider_message_id TEXT,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, delivered_at BIGINT,
    environment TEXT, attempts_log TEXT, lease_owner TEXT);
CREATE INDEX d_plain_due ON d_plain (next_attempt_at) WHERE status = 'pending';
CREATE INDEX d_plain_app ON d_plain (app_id, id);
CREATE INDEX d_plain_notification ON d_plain (notification_id, id);
CREATE INDEX d_plain_device ON d_plain (device_id, id);

CREATE TABLE d_part (
    id BIGINT GENERATED ALWAYS AS IDENTITY,
    app_id TEXT NOT NULL, notification_id TEXT NOT NULL REFERENCES notifs(id) ON DELETE CASCADE,
    device_id TEXT, platform TEXT NOT NULL, token TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL, lease_until BIGINT,
    provider_status INTEGER, reason TEXT, provider_message_id TEXT,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, delivered_at BIGINT,
    environment TEXT, attempts_log TEXT, lease_owner TEXT,
    PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
CREATE INDEX d_part_due ON d_part (next_attempt_at) WHERE status = 'pending';
CREATE INDEX d_part_app ON d_part (app_id, id);
CREATE INDEX d_part_notification ON d_part (notification_id, id);
CREATE INDEX d_part_device ON d_part (device_id, id);
SELECT format('CREATE TABLE d_part_%s PARTITION OF d_part FOR VALUES FROM (%s) TO (%s)', k, :base + k * 86400000, :base + (k + 1) * 86400000)
FROM generate_series(0, 11) k \gexec
CREATE TABLE d_part_default PARTITION OF d_part DEFAULT;
