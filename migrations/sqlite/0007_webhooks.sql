-- Issue 14: webhooks, events to the application's servers.
-- An app's endpoints. `secret` signs (it cannot be hashed: the gateway
-- signs with it); the previous one keeps signing beside it until
-- `previous_secret_until` after a rotation.
CREATE TABLE webhooks (
    id                    TEXT PRIMARY KEY,
    app_id                TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    url                   TEXT NOT NULL,
    description           TEXT,
    events                TEXT NOT NULL,            -- JSON array of event types
    enabled               BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason       TEXT,
    secret                TEXT NOT NULL,
    previous_secret       TEXT,
    previous_secret_until BIGINT,
    failing_since         BIGINT,                   -- ms; NULL: the last attempt succeeded
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX webhooks_app ON webhooks (app_id, id);

-- The outbox: one row per event and subscribed endpoint, written in the
-- transaction of the change that caused it (by the triggers below, or by
-- the gateway for events that change nothing stored). Sealed into messages
-- by the webhook worker, which batches the high-volume types.
CREATE TABLE webhook_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL,                       -- JSON object
    created_at BIGINT NOT NULL
);

-- What is sent: one signed body per message, retried until a 2xx.
CREATE TABLE webhook_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    msg_id          TEXT NOT NULL,                  -- `webhook-id`, the same on every attempt
    type            TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | failed
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,                -- ms; moved to the lease's end while claimed
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt_at) WHERE status = 'pending';

-- Every attempt, as operators query them.
CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id  TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    msg_id      TEXT NOT NULL,
    type        TEXT NOT NULL,
    attempt     INT NOT NULL,
    status      TEXT NOT NULL,                      -- succeeded | failed
    http_status INT,
    latency_ms  BIGINT NOT NULL,
    error       TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_webhook ON webhook_attempts (webhook_id, id);

-- The events of stored changes come from triggers: every statement that
-- deactivates a device, fails a delivery, completes a notification or finds
-- credentials refused (the write-back, the fan-out commit, the sweep, a
-- deletion...) writes its events in its own transaction, whichever path
-- made the change. Each inserts one outbox row per enabled endpoint of the
-- app subscribed to the event.
CREATE TRIGGER webhook_device_deactivated AFTER UPDATE OF active ON devices
WHEN OLD.active AND NOT NEW.active BEGIN
    INSERT INTO webhook_outbox (webhook_id, type, data, created_at)
    SELECT w.id, 'device.deactivated', json_object('device_id', NEW.id, 'user_id', NEW.user_id, 'platform', NEW.platform, 'token', NEW.token, 'reason', NEW.deactivated_reason), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM webhooks w WHERE w.app_id = NEW.app_id AND w.enabled AND instr(w.events, '"device.deactivated"') > 0;
END;

CREATE TRIGGER webhook_delivery_failed_insert AFTER INSERT ON deliveries
WHEN NEW.status = 'failed' BEGIN
    INSERT INTO webhook_outbox (webhook_id, type, data, created_at)
    SELECT w.id, 'delivery.failed', json_object('notification_id', NEW.notification_id, 'device_id', NEW.device_id, 'platform', NEW.platform, 'reason', NEW.reason), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM webhooks w WHERE w.app_id = NEW.app_id AND w.enabled AND instr(w.events, '"delivery.failed"') > 0;
END;

CREATE TRIGGER webhook_delivery_failed_update AFTER UPDATE OF status ON deliveries
WHEN NEW.status = 'failed' AND OLD.status <> 'failed' BEGIN
    INSERT INTO webhook_outbox (webhook_id, type, data, created_at)
    SELECT w.id, 'delivery.failed', json_object('notification_id', NEW.notification_id, 'device_id', NEW.device_id, 'platform', NEW.platform, 'reason', NEW.reason), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM webhooks w WHERE w.app_id = NEW.app_id AND w.enabled AND instr(w.events, '"delivery.failed"') > 0;
END;

CREATE TRIGGER webhook_notification_completed_insert AFTER INSERT ON notifications
WHEN NEW.status = 'completed' BEGIN
    INSERT INTO webhook_outbox (webhook_id, type, data, created_at)
    SELECT w.id, 'notification.completed', (SELECT json_object('id', NEW.id, 'counts', json_object(
        'targeted', NEW.targeted,
        'delivered', NEW.delivered + COALESCE(c.delivered, 0),
        'failed', NEW.failed + COALESCE(c.failed, 0),
        'expired', NEW.expired + COALESCE(c.expired, 0),
        'cancelled', NEW.cancelled + COALESCE(c.cancelled, 0)))
        FROM (SELECT 1) AS one LEFT JOIN notification_counts c ON c.notification_id = NEW.id), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM webhooks w WHERE w.app_id = NEW.app_id AND w.enabled AND instr(w.events, '"notification.completed"') > 0;
END;

CREATE TRIGGER webhook_notification_completed_update AFTER UPDATE OF status ON notifications
WHEN NEW.status = 'completed' AND OLD.status <> 'completed' BEGIN
    INSERT INTO webhook_outbox (webhook_id, type, data, created_at)
    SELECT w.id, 'notification.completed', (SELECT json_object('id', NEW.id, 'counts', json_object(
        'targeted', NEW.targeted,
        'delivered', NEW.delivered + COALESCE(c.delivered, 0),
        'failed', NEW.failed + COALESCE(c.failed, 0),
        'expired', NEW.expired + COALESCE(c.expired, 0),
        'cancelled', NEW.cancelled + COALESCE(c.cancelled, 0)))
        FROM (SELECT 1) AS one LEFT JOIN notification_counts c ON c.notification_id = NEW.id), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM webhooks w WHERE w.app_id = NEW.app_id AND w.enabled AND instr(w.events, '"notification.completed"') > 0;
END;

CREATE TRIGGER webhook_credentials_failing_apns AFTER UPDATE OF apns_error ON apps
WHEN NEW.apns_error IS NOT NULL AND OLD.apns_error IS NULL BEGIN
    INSERT INTO webhook_outbox (webhook_id, type, data, created_at)
    SELECT w.id, 'app.credentials_failing', json_object('provider', 'apns', 'reason', NEW.apns_error), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM webhooks w WHERE w.app_id = NEW.id AND w.enabled AND instr(w.events, '"app.credentials_failing"') > 0;
END;

CREATE TRIGGER webhook_credentials_failing_fcm AFTER UPDATE OF fcm_error ON apps
WHEN NEW.fcm_error IS NOT NULL AND OLD.fcm_error IS NULL BEGIN
    INSERT INTO webhook_outbox (webhook_id, type, data, created_at)
    SELECT w.id, 'app.credentials_failing', json_object('provider', 'fcm', 'reason', NEW.fcm_error), CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM webhooks w WHERE w.app_id = NEW.id AND w.enabled AND instr(w.events, '"app.credentials_failing"') > 0;
END;
