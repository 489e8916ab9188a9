-- Delivery stats (API.md, Stats): counters per app, UTC minute (ms), final
-- status and provider reason ('' when none), moved by the statements that
-- record results: one upsert per batch and key, so a stats read sums a few
-- rows per minute instead of scanning the delivery log.
CREATE TABLE delivery_stats (
    app_id TEXT NOT NULL,
    minute BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (app_id, minute, status, reason)
);

-- The log so far, counted once (by the minute of each row's last change).
INSERT INTO delivery_stats (app_id, minute, status, reason, count)
SELECT app_id, (updated_at / 60000) * 60000, status,
       CASE WHEN status = 'delivered' THEN '' ELSE COALESCE(reason, '') END, COUNT(*)
FROM deliveries WHERE status IN ('delivered', 'failed', 'expired')
GROUP BY app_id, (updated_at / 60000) * 60000, status, CASE WHEN status = 'delivered' THEN '' ELSE COALESCE(reason, '') END;

-- Devices by platform and state, counted from the index alone.
CREATE INDEX devices_app_platform_active ON devices (app_id, platform, active);

-- The console lists an app's notifications newest first (ids are UUIDv7).
CREATE INDEX notifications_app ON notifications (app_id, id);
