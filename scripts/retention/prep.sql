\set ON_ERROR_STOP on
\timing on
-- Each table its own notifications, so that deleting one's cascades into it only.
CREATE TABLE notifs2 (LIKE notifs INCLUDING ALL);
INSERT INTO notifs2 SELECT * FROM notifs;
ALTER TABLE d_part DROP CONSTRAINT d_part_notification_id_fkey;
ALTER TABLE d_part ADD FOREIGN KEY (notification_id) REFERENCES notifs2(id) ON DELETE CASCADE;
-- 100 more notifications today, for the insert runs.
INSERT INTO notifs SELECT 'ntf_' || lpad(n::text, 26, '0'), 'app_bench', 'sending', NULL FROM generate_series(1000, 1099) n;
INSERT INTO notifs2 SELECT * FROM notifs WHERE status = 'sending';
ANALYZE notifs; ANALYZE notifs2;
