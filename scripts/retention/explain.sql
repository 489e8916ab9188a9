\set ON_ERROR_STOP on
SELECT (extract(epoch from now()) * 1000)::bigint + 86400000 AS now \gset
BEGIN;
\echo === claim (Postgres text of claim_deliveries)
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) UPDATE d_part SET lease_until = :now, next_attempt_at = :now, lease_owner = 'x',
 attempts = attempts + CASE WHEN lease_until IS NULL THEN 0 ELSE 1 END
 WHERE (id, created_at) IN (SELECT id, created_at FROM d_part WHERE status = 'pending' AND next_attempt_at <= :now ORDER BY next_attempt_at LIMIT 500 FOR UPDATE SKIP LOCKED)
 RETURNING id, app_id, notification_id, device_id, platform, token, attempts, environment, status;
ROLLBACK;
BEGIN;
\echo === write-back by id (500 rows)
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) UPDATE d_part AS d SET status = v.next_status, updated_at = 1
 FROM json_to_recordset((SELECT json_agg(json_build_object('id', id, 'next_status', 'delivered')) FROM generate_series(10800001, 10800500) id)) AS v(id bigint, next_status text)
 WHERE d.id = v.id AND d.status = 'pending';
ROLLBACK;
BEGIN;
\echo === cancel by notification
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) UPDATE d_part SET status = 'cancelled', updated_at = 1, next_attempt_at = 1
 WHERE notification_id = 'ntf_00000000000000000000001099' AND status = 'pending' AND (lease_until IS NULL OR lease_until < 1);
ROLLBACK;
\echo === list by notification (an old one)
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) SELECT id, status FROM d_part WHERE notification_id = 'ntf_00000000000000000000000550' ORDER BY id DESC LIMIT 50;
\echo === list by device
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) SELECT id, status FROM d_part WHERE app_id = 'app_bench' AND device_id = 'dev_00000000000000000000004242' ORDER BY id DESC LIMIT 50;
\echo === list by device, plain
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) SELECT id, status FROM d_plain WHERE app_id = 'app_bench' AND device_id = 'dev_00000000000000000000004242' ORDER BY id DESC LIMIT 50;
\echo === batched retention delete, partitioned
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) DELETE FROM d_part WHERE (id, created_at) IN (SELECT id, created_at FROM d_part WHERE notification_id = 'ntf_00000000000000000000000950' LIMIT 2000);
ROLLBACK;
