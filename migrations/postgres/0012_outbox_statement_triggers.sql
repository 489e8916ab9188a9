-- Issue 18: the outbox triggers of 0007 ran once per row: every completed
-- notification and every failed delivery paid a PL/pgSQL call and a query
-- of `webhooks`, even in an app with no endpoint. These run once per
-- statement, over its transition tables. Each first asks whether any
-- enabled endpoint subscribes to the event, then whether any new row could
-- be one (the other updates of the table, a lease or a claim, stop
-- there without the join below), and returns at once if not; else one
-- INSERT ... SELECT writes the events of all its rows. Same events, same
-- JSON, still in the transaction of the change.
--
-- An UPDATE trigger with transition tables cannot name columns (`UPDATE OF
-- status`) nor see OLD in a WHEN, so it fires for every UPDATE of the table
-- and finds the changed rows by joining the old rows to the new ones.
--
-- `app.credentials_failing` keeps its row trigger: apps change rarely, and
-- `UPDATE OF apns_error, fcm_error` spares every other update of an app.
-- So does `device.deactivated`: as a statement trigger it would fire on
-- every registration (an insert-or-update), 12-13 us dearer each, while
-- its row trigger's WHEN (a device going inactive) spares them all.

DROP TRIGGER webhook_delivery_failed_insert ON deliveries;
DROP TRIGGER webhook_delivery_failed_update ON deliveries;
DROP TRIGGER webhook_notification_completed_insert ON notifications;
DROP TRIGGER webhook_notification_completed_update ON notifications;
DROP FUNCTION pushgate_delivery_failed();
DROP FUNCTION pushgate_notification_completed();

CREATE FUNCTION pushgate_deliveries_failed_insert() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.enabled AND strpos(w.events, '"delivery.failed"') > 0)
        OR NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.status = 'failed') THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_outbox (webhook_id, type, data, created_at)
    SELECT w.id, 'delivery.failed', json_build_object('notification_id', n.notification_id, 'device_id', n.device_id,
        'platform', n.platform, 'reason', n.reason)::text, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint
    FROM new_rows n
    JOIN webhooks w ON w.app_id = n.app_id AND w.enabled AND strpos(w.events, '"delivery.failed"') > 0
    WHERE n.status = 'failed';
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER webhook_deliveries_failed_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pushgate_deliveries_failed_insert();

CREATE FUNCTION pushgate_deliveries_failed_update() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.enabled AND strpos(w.events, '"delivery.failed"') > 0)
        OR NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.status = 'failed') THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_outbox (webhook_id, type, data, created_at)
    SELECT w.id, 'delivery.failed', json_build_object('notification_id', n.notification_id, 'device_id', n.device_id,
        'platform', n.platform, 'reason', n.reason)::text, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    JOIN webhooks w ON w.app_id = n.app_id AND w.enabled AND strpos(w.events, '"delivery.failed"') > 0
    WHERE n.status = 'failed' AND o.status <> 'failed';
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER webhook_deliveries_failed_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pushgate_deliveries_failed_update();

-- The counts: those on the row plus those the workers wrote back (0004).
CREATE FUNCTION pushgate_notifications_completed_insert() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.enabled AND strpos(w.events, '"notification.completed"') > 0)
        OR NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.status = 'completed') THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_outbox (webhook_id, type, data, created_at)
    SELECT w.id, 'notification.completed', json_build_object('id', n.id, 'counts', json_build_object(
            'targeted', n.targeted,
            'delivered', n.delivered + COALESCE(c.delivered, 0),
            'failed', n.failed + COALESCE(c.failed, 0),
            'expired', n.expired + COALESCE(c.expired, 0),
            'cancelled', n.cancelled + COALESCE(c.cancelled, 0)))::text, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint
    FROM new_rows n
    JOIN webhooks w ON w.app_id = n.app_id AND w.enabled AND strpos(w.events, '"notification.completed"') > 0
    LEFT JOIN notification_counts c ON c.notification_id = n.id
    WHERE n.status = 'completed';
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER webhook_notifications_completed_insert AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pushgate_notifications_completed_insert();

CREATE FUNCTION pushgate_notifications_completed_update() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.enabled AND strpos(w.events, '"notification.completed"') > 0)
        OR NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.status = 'completed') THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_outbox (webhook_id, type, data, created_at)
    SELECT w.id, 'notification.completed', json_build_object('id', n.id, 'counts', json_build_object(
            'targeted', n.targeted,
            'delivered', n.delivered + COALESCE(c.delivered, 0),
            'failed', n.failed + COALESCE(c.failed, 0),
            'expired', n.expired + COALESCE(c.expired, 0),
            'cancelled', n.cancelled + COALESCE(c.cancelled, 0)))::text, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    JOIN webhooks w ON w.app_id = n.app_id AND w.enabled AND strpos(w.events, '"notification.completed"') > 0
    LEFT JOIN notification_counts c ON c.notification_id = n.id
    WHERE n.status = 'completed' AND o.status <> 'completed';
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER webhook_notifications_completed_update AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pushgate_notifications_completed_update();
