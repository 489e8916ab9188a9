\set ON_ERROR_STOP on
\timing on
-- The write-back's UPDATE of deliveries (src/store/deliveries.rs), 100 statements of 1,000 results, one
-- transaction each: on the plain table by id, on the partitioned by id, and on the partitioned by id and created_at.
CREATE OR REPLACE PROCEDURE wb(tbl regclass, first_id bigint, with_created boolean) LANGUAGE plpgsql AS $$
DECLARE batch json; sql text;
BEGIN
  sql := format('UPDATE %s AS d SET status = v.next_status, attempts = d.attempts + v.inc, next_attempt_at = v.next_attempt_at, '
    'lease_until = NULL, provider_status = COALESCE(v.provider_status, d.provider_status), reason = v.reason, '
    'provider_message_id = v.provider_message_id, delivered_at = v.delivered_at, updated_at = v.delivered_at, '
    'attempts_log = CASE WHEN v.attempt IS NULL THEN d.attempts_log ELSE COALESCE(RTRIM(d.attempts_log, '']'') || '','', ''['') || v.attempt || '']'' END '
    'FROM json_to_recordset($1) AS v(id bigint, created_at bigint, next_status text, inc int, next_attempt_at bigint, provider_status int, '
    'reason text, provider_message_id text, delivered_at bigint, attempt text) WHERE d.id = v.id %s AND d.status = ''pending''',
    tbl, CASE WHEN with_created THEN 'AND d.created_at = v.created_at' ELSE '' END);
  FOR i IN 0 .. 99 LOOP
    SELECT json_agg(json_build_object('id', id, 'created_at', created_at, 'next_status', 'delivered', 'inc', 1,
        'next_attempt_at', next_attempt_at, 'provider_status', 200, 'reason', NULL, 'provider_message_id', md5(id::text),
        'delivered_at', created_at + 100, 'attempt', '{"at":1,"status":200,"latency_ms":40}'))
      INTO batch FROM d_plain WHERE id >= first_id + i * 1000 AND id < first_id + (i + 1) * 1000;
    EXECUTE sql USING batch;
    COMMIT;
  END LOOP;
END $$;
SELECT min(id) AS first FROM d_plain WHERE status = 'pending' \gset
SELECT min(id) AS pfirst FROM d_part WHERE status = 'pending' AND created_at > 0 \gset
\echo plain by id
CALL wb('d_plain', :first, false);
\echo partitioned by id
CALL wb('d_part', :pfirst + 100000, false);
\echo partitioned by id and created_at
CALL wb('d_part', :pfirst + 200000, true);
\timing off
SELECT (SELECT count(*) FROM d_plain WHERE status = 'delivered' AND id >= :first AND id < :first + 100000) AS plain_updated,
       (SELECT count(*) FROM d_part WHERE status = 'delivered' AND id >= :pfirst + 100000 AND id < :pfirst + 300000) AS part_updated;
