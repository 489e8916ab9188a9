\set ON_ERROR_STOP on
\timing on
SELECT (extract(epoch from date_trunc('day', now() at time zone 'utc') - interval '9 days') * 1000)::bigint AS base \gset
-- 10M rows: 1,000 notifications (100 a day, 10 days) x 10,000 devices, delivered.
INSERT INTO d_plain (app_id, notification_id, device_id, platform, token, status, attempts, next_attempt_at,
    provider_status, provider_message_id, created_at, updated_at, delivered_at, attempts_log)
SELECT 'app_bench', 'ntf_' || lpad((g / 10000)::text, 26, '0'), 'dev_' || lpad((g % 10000)::text, 26, '0'), 'ios',
    md5(g::text) || md5((g + 1)::text), 'delivered', 1, c, 200, md5((g + 2)::text)::uuid::text, c, c + 150, c + 150,
    '[{"at":' || (c + 150) || ',"status":200,"latency_ms":42,"outcome":"delivered"}]'
FROM (SELECT g, :base + ((g / 10000) / 100) * 86400000 + ((g / 10000) % 100) * 800000 + (g % 10000) * 10 AS c
      FROM generate_series(0, 9999999) g) s;
