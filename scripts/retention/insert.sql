\set ON_ERROR_STOP on
\timing on
-- 1M pending rows of today into each table (100 notifications x 10,000 devices), as a fan-out writes them.
SELECT (extract(epoch from date_trunc('day', now() at time zone 'utc')) * 1000)::bigint + 3600000 AS today \gset
\echo plain
INSERT INTO d_plain (app_id, notification_id, device_id, platform, token, status, next_attempt_at, created_at, updated_at)
SELECT 'app_bench', 'ntf_' || lpad((1000 + g / 10000)::text, 26, '0'), 'dev_' || lpad((g % 10000)::text, 26, '0'), 'ios',
    md5(g::text) || md5((g + 1)::text), 'pending', :today + g, :today + g, :today + g
FROM generate_series(0, 999999) g;
\echo partitioned
INSERT INTO d_part (app_id, notification_id, device_id, platform, token, status, next_attempt_at, created_at, updated_at)
SELECT 'app_bench', 'ntf_' || lpad((1000 + g / 10000)::text, 26, '0'), 'dev_' || lpad((g % 10000)::text, 26, '0'), 'ios',
    md5(g::text) || md5((g + 1)::text), 'pending', :today + g, :today + g, :today + g
FROM generate_series(0, 999999) g;
ANALYZE d_plain; ANALYZE d_part;
