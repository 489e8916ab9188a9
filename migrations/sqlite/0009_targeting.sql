-- Issue 16, targeting: device tags, a sortable key of the app version, and
-- sends at each device's local time.

-- Tags: a JSON object of string, number or boolean values, read with the
-- JSON functions (Postgres also indexes them).
ALTER TABLE devices ADD COLUMN tags TEXT;

-- `app_version` as four zero-padded numbers, so that text order is version
-- order (3.10.0 > 3.9.2); NULL when the version starts with no number.
-- Written by every registration and PATCH that sets `app_version`; devices
-- from before this migration get theirs when the gateway starts.
ALTER TABLE devices ADD COLUMN version_key TEXT;
CREATE INDEX devices_version ON devices (app_id, version_key);

-- `options.local_time` (HH:MM) of a send: its fan-out schedules each
-- delivery at that time in the device's time zone.
ALTER TABLE notifications ADD COLUMN local_time TEXT;
