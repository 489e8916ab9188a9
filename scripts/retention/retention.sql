\set ON_ERROR_STOP on
\timing on
-- Retention of the 5 oldest days (5M rows, 500 notifications).
SELECT (extract(epoch from date_trunc('day', now() at time zone 'utc') - interval '4 days') * 1000)::bigint AS cutoff \gset
-- Today's retention (src/delivery/retention.rs): per notification, 2,000 rows a statement, each committed.
CREATE OR REPLACE PROCEDURE prune_plain(cutoff bigint) LANGUAGE plpgsql AS $$
DECLARE nid text; n bigint;
BEGIN
  LOOP
    SELECT id INTO nid FROM notifs WHERE completed_at IS NOT NULL AND completed_at < cutoff AND status = 'completed'
      ORDER BY completed_at LIMIT 1;
    EXIT WHEN nid IS NULL;
    LOOP
      DELETE FROM d_plain WHERE id IN (SELECT id FROM d_plain WHERE notification_id = nid LIMIT 2000);
      GET DIAGNOSTICS n = ROW_COUNT;
      COMMIT;
      EXIT WHEN n < 2000;
    END LOOP;
    DELETE FROM notifs WHERE id = nid;
    COMMIT;
  END LOOP;
END $$;
\timing off
CHECKPOINT;
SELECT pg_size_pretty(pg_total_relation_size('d_plain')) AS plain_before, count(*) AS plain_rows FROM d_plain;
SELECT pg_current_wal_lsn() AS l0 \gset
\timing on
\echo batched delete
CALL prune_plain(:cutoff);
\timing off
SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), :'l0')) AS delete_wal, pg_wal_lsn_diff(pg_current_wal_lsn(), :'l0') AS delete_wal_bytes;
SELECT pg_current_wal_lsn() AS l1 \gset
\timing on
\echo vacuum
VACUUM d_plain;
\timing off
SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), :'l1')) AS vacuum_wal, pg_wal_lsn_diff(pg_current_wal_lsn(), :'l1') AS vacuum_wal_bytes;
SELECT pg_size_pretty(pg_total_relation_size('d_plain')) AS plain_after, count(*) AS plain_rows FROM d_plain;

-- Partitioned: drop the 5 days (each checked for pending rows first), then the notifications.
SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) AS part_before FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'd_part'::regclass;
SELECT count(*) AS part_rows FROM d_part;
SELECT pg_current_wal_lsn() AS l2 \gset
\timing on
\echo drop partitions
SELECT EXISTS (SELECT 1 FROM d_part_0 WHERE status = 'pending');
DROP TABLE d_part_0;
SELECT EXISTS (SELECT 1 FROM d_part_1 WHERE status = 'pending');
DROP TABLE d_part_1;
SELECT EXISTS (SELECT 1 FROM d_part_2 WHERE status = 'pending');
DROP TABLE d_part_2;
SELECT EXISTS (SELECT 1 FROM d_part_3 WHERE status = 'pending');
DROP TABLE d_part_3;
SELECT EXISTS (SELECT 1 FROM d_part_4 WHERE status = 'pending');
DROP TABLE d_part_4;
\echo delete their notifications
DELETE FROM notifs2 WHERE completed_at IS NOT NULL AND completed_at < :cutoff AND status = 'completed';
\timing off
SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), :'l2')) AS drop_wal, pg_wal_lsn_diff(pg_current_wal_lsn(), :'l2') AS drop_wal_bytes;
SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) AS part_after FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'd_part'::regclass;
SELECT count(*) AS part_rows FROM d_part;
