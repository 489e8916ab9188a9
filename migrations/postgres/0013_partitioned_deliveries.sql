-- Issue 18: the delivery log partitioned by UTC day (`created_at`, ms), so
-- that retention drops whole days (a catalog change) instead of deleting
-- rows (every row and index entry written to the WAL, then vacuumed).
-- Partitions are named `deliveries_YYYYMMDD`; the gateway creates them ahead
-- (`pushgate_delivery_partitions`), and `deliveries_default` takes any row
-- no day partition covers, so an insert never fails for lack of one. The
-- primary key includes `created_at`, as a partitioned table's must.

-- Creates the day partitions of `days` UTC days from the one holding
-- `first_ms`; those that exist are skipped without a lock. Rows the default
-- partition already holds for a day (an instance whose chores stopped, a
-- clock ahead) move into that day's new partition.
CREATE FUNCTION pushgate_delivery_partitions(first_ms BIGINT, days INT) RETURNS INT AS $$
DECLARE
    day_ms CONSTANT BIGINT := 86400000;
    start_ms BIGINT := first_ms - (first_ms % day_ms);
    name TEXT;
    created INT := 0;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        name := 'deliveries_' || to_char(to_timestamp(start_ms / 1000) AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF deliveries FOR VALUES FROM (%s) TO (%s)',
                    name, start_ms, start_ms + day_ms);
                created := created + 1;
            EXCEPTION WHEN duplicate_table THEN
                NULL; -- another instance made it meanwhile
            WHEN check_violation THEN
                EXECUTE format('CREATE TABLE %I (LIKE deliveries INCLUDING DEFAULTS)', name);
                EXECUTE format('WITH moved AS (DELETE FROM deliveries_default WHERE created_at >= %s AND created_at < %s '
                    'RETURNING *) INSERT INTO %I SELECT * FROM moved', start_ms, start_ms + day_ms, name);
                EXECUTE format('ALTER TABLE deliveries ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                    name, start_ms, start_ms + day_ms);
                created := created + 1;
            END;
        END IF;
        start_ms := start_ms + day_ms;
    END LOOP;
    RETURN created;
END $$ LANGUAGE plpgsql;

ALTER TABLE deliveries RENAME TO deliveries_unpartitioned;
ALTER SEQUENCE deliveries_id_seq RENAME TO deliveries_unpartitioned_id_seq;

CREATE TABLE deliveries (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY,
    app_id              TEXT NOT NULL,
    notification_id     TEXT NOT NULL CONSTRAINT deliveries_notification_id_fkey REFERENCES notifications(id) ON DELETE CASCADE,
    device_id           TEXT,
    platform            TEXT NOT NULL,
    token               TEXT NOT NULL,
    status              TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at     BIGINT NOT NULL,
    lease_until         BIGINT,
    provider_status     INTEGER,
    reason              TEXT,
    provider_message_id TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    delivered_at        BIGINT,
    environment         TEXT,
    attempts_log        TEXT,
    lease_owner         TEXT
) PARTITION BY RANGE (created_at);
CREATE TABLE deliveries_default PARTITION OF deliveries DEFAULT;

-- A partition for every day the log holds, and today's and the next two.
SELECT pushgate_delivery_partitions(day, 1)
FROM (SELECT DISTINCT created_at - created_at % 86400000 AS day FROM deliveries_unpartitioned) AS days;
SELECT pushgate_delivery_partitions((EXTRACT(EPOCH FROM now()) * 1000)::bigint, 3);

-- Ids go on from where the old table's left off.
SELECT setval(pg_get_serial_sequence('deliveries', 'id'), last_value, is_called) FROM deliveries_unpartitioned_id_seq;
INSERT INTO deliveries (id, app_id, notification_id, device_id, platform, token, status, attempts, next_attempt_at,
    lease_until, provider_status, reason, provider_message_id, created_at, updated_at, delivered_at, environment,
    attempts_log, lease_owner)
OVERRIDING SYSTEM VALUE
SELECT id, app_id, notification_id, device_id, platform, token, status, attempts, next_attempt_at,
    lease_until, provider_status, reason, provider_message_id, created_at, updated_at, delivered_at, environment,
    attempts_log, lease_owner
FROM deliveries_unpartitioned;
DROP TABLE deliveries_unpartitioned;

-- The indexes of 0002 and 0004, built once the rows are in (each partition
-- gets its own).
ALTER TABLE deliveries ADD PRIMARY KEY (id, created_at);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_app ON deliveries (app_id, id);
CREATE INDEX deliveries_notification ON deliveries (notification_id, id);
CREATE INDEX deliveries_device ON deliveries (device_id, id);

-- The outbox triggers of 0012 (their functions stay: only the triggers
-- went with the old table), made after the copy so that moving the log
-- writes no event again. Statement triggers on the partitioned table see
-- the rows of every partition a statement touches.
CREATE TRIGGER webhook_deliveries_failed_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pushgate_deliveries_failed_insert();
CREATE TRIGGER webhook_deliveries_failed_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pushgate_deliveries_failed_update();
