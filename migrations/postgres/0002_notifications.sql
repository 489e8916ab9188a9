-- Sending: notifications (what was asked), deliveries (the queue and the log,
-- one row per notification and device) and idempotency keys.

CREATE TABLE notifications (
    id                 TEXT PRIMARY KEY,
    app_id             TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    status             TEXT NOT NULL,           -- scheduled | queued | sending | completed | cancelled
    target             TEXT NOT NULL,           -- JSON of `to`
    info               TEXT NOT NULL,           -- JSON NotificationInfo (with `id`)
    options            TEXT NOT NULL,           -- JSON DeliveryOptions
    targeted           BIGINT NOT NULL,         -- estimate until fan-out is done, then exact
    send_at            BIGINT NOT NULL,
    expires_at         BIGINT,                  -- send_at + ttl_seconds
    fanout_done        BOOLEAN NOT NULL,
    fanout_cursor      TEXT,                    -- last device id expanded; NULL = not started
    fanned_out         BIGINT NOT NULL DEFAULT 0,
    fanout_lease_until BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    completed_at       BIGINT
);
CREATE INDEX notifications_fanout ON notifications (send_at) WHERE fanout_done = FALSE;
CREATE INDEX notifications_scheduled ON notifications (send_at) WHERE status = 'scheduled';
CREATE INDEX notifications_open ON notifications (id) WHERE status IN ('queued', 'sending');
-- Retention walks finished notifications oldest first.
CREATE INDEX notifications_finished ON notifications (completed_at) WHERE completed_at IS NOT NULL;

CREATE TABLE deliveries (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id              TEXT NOT NULL,
    notification_id     TEXT NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    device_id           TEXT,                   -- NULL for `tokens` targets of no registered device
    platform            TEXT NOT NULL,
    token               TEXT NOT NULL,          -- snapshot at fan-out
    status              TEXT NOT NULL,          -- pending | delivered | failed | expired | cancelled
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     BIGINT NOT NULL,        -- moved to lease_until while claimed
    lease_until         BIGINT,
    provider_status     INTEGER,
    reason              TEXT,
    provider_message_id TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    delivered_at        BIGINT
);
CREATE UNIQUE INDEX deliveries_notification_device ON deliveries (notification_id, device_id);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_pending_notification ON deliveries (notification_id) WHERE status = 'pending';
CREATE INDEX deliveries_app ON deliveries (app_id, id);
CREATE INDEX deliveries_notification ON deliveries (notification_id, id);
CREATE INDEX deliveries_device ON deliveries (device_id, id);

CREATE TABLE idempotency_keys (
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    response        TEXT NOT NULL,              -- JSON of the first 202 answer
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (app_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
