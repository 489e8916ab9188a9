-- Migration 0013 on a 1M-row log (10 days): run from the repository's root on a database
-- with migrations 0001-0011 applied (see BENCHMARKS.md).
\set ON_ERROR_STOP on
insert into apps values ('a','a',null,null,0,0);
SELECT (extract(epoch from date_trunc('day', now() at time zone 'utc') - interval '9 days') * 1000)::bigint AS base \gset
insert into notifications (id, app_id, status, target, info, options, targeted, send_at, fanout_done, created_at, updated_at)
select 'n' || n, 'a', 'completed', '{}', '{}', '{}', 10000, 0, true, 0, 0 from generate_series(0, 99) n;
insert into deliveries (app_id, notification_id, device_id, platform, token, status, attempts, next_attempt_at, provider_status,
  provider_message_id, created_at, updated_at, delivered_at, attempts_log)
select 'a', 'n' || (g / 10000), 'dev_' || lpad((g % 10000)::text, 26, '0'), 'ios', md5(g::text) || md5((g + 1)::text), 'delivered', 1, c, 200,
  md5((g + 2)::text)::uuid::text, c, c + 150, c + 150, '[{"at":' || (c + 150) || ',"status":200,"latency_ms":42,"outcome":"delivered"}]'
from (select g, :base + (g / 100000) * 86400000 + (g % 100000) * 100 as c from generate_series(0, 999999) g) s;
checkpoint;
\timing on
begin;
\i migrations/postgres/0013_partitioned_deliveries.sql
commit;
\timing off
select count(*), count(distinct tableoid) from deliveries;
