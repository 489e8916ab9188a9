-- Issue 20: leases name the instance that holds them, so an instance that
-- restarts after a crash takes back its own leases at once instead of
-- waiting for them to run out. An instance's id is stable across restarts
-- (`PUSHGATE_INSTANCE_ID`, by default host name and port).
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
ALTER TABLE notifications ADD COLUMN fanout_owner TEXT;
-- A fan-out whose instance stopped mid-way: the batches after its cursor
-- may have been sent, and count as attempts when sent again.
ALTER TABLE notifications ADD COLUMN fanout_abandoned BOOLEAN NOT NULL DEFAULT FALSE;
