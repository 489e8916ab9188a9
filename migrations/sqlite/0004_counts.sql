-- Final counts kept with the notification: a read is one row, not a GROUP
-- BY over its deliveries (pending = targeted - the four). On the
-- notification: what its owner decides (deliveries born failed, cancels).
-- In notification_counts: what the workers write back, so that their
-- write-backs never wait on the notification row the fan-out is holding.
ALTER TABLE notifications ADD COLUMN delivered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN failed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN expired BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN cancelled BIGINT NOT NULL DEFAULT 0;

CREATE TABLE notification_counts (
    notification_id TEXT PRIMARY KEY REFERENCES notifications(id) ON DELETE CASCADE,
    delivered       BIGINT NOT NULL DEFAULT 0,
    failed          BIGINT NOT NULL DEFAULT 0,
    expired         BIGINT NOT NULL DEFAULT 0,
    cancelled       BIGINT NOT NULL DEFAULT 0
);

UPDATE notifications SET
    delivered = (SELECT COUNT(*) FROM deliveries d WHERE d.notification_id = notifications.id AND d.status = 'delivered'),
    failed    = (SELECT COUNT(*) FROM deliveries d WHERE d.notification_id = notifications.id AND d.status = 'failed'),
    expired   = (SELECT COUNT(*) FROM deliveries d WHERE d.notification_id = notifications.id AND d.status = 'expired'),
    cancelled = (SELECT COUNT(*) FROM deliveries d WHERE d.notification_id = notifications.id AND d.status = 'cancelled');

-- Fewer indexes per delivery written: the counts replace the pending index,
-- and the fan-out cursor (advanced in the inserting transaction) already
-- keeps a device to one delivery per notification; (notification_id, id)
-- serves every lookup by notification.
DROP INDEX deliveries_pending_notification;
DROP INDEX deliveries_notification_device;
