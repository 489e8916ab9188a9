\set ON_ERROR_STOP on
-- A second 1M of today's rows into each table, the partitioned one first this time.
INSERT INTO notifs SELECT 'ntf_' || lpad(n::text, 26, '0'), 'app_bench', 'sending', NULL FROM generate_series(1100, 1199) n;
INSERT INTO notifs2 SELECT * FROM notifs WHERE id >= 'ntf_00000000000000000000001100';
SELECT (extract(epoch from date_trunc('day', now() at time zone 'utc')) * 1000)::bigint + 7200000 AS today \gset
\timing on
\echo partitioned
INSERT INTO d_part (app_id, notification_id, device_id, platform, token, status, next_attempt_at, created_at, updated_at)
SELECT 'app_bench', 'ntf_' || lpad((1100 + g / 10000)::text, 26, '0'), 'dev_' || lpad((g % 10000)::text, 26, '0'), 'ios',
    md5(g::text) || md5((g + 1)::text), 'pending', :today + g, :today + g, :today + g
FROM generate_series(0, 999999) g;
\echo plain
INSERT INTO d_plain (app_id, notification_id, device_id, platform, token, status, next_attempt_at, created_at, updated_at)
SELECT 'app_bench', 'ntf_' || lpad((1100 + g / 10000)::text, 26, '0'), 'dev_' || lpad((g % 10000)::text, 26, '0'), 'ios',
    md5(g::text) || md5((g + 1)::text), 'pending', :today + g, :today + g, :today + g
FROM generate_series(0, 999999) g;
