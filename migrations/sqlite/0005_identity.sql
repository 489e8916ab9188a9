-- Identity (API.md, Identity). Apps created before this keep trusting
-- client-given user ids ('open'); new apps are created 'verified'.
-- The identity secret must be readable to verify user tokens (HMAC): it is
-- never returned by a read, only by create and rotate.
ALTER TABLE apps ADD COLUMN identity TEXT NOT NULL DEFAULT 'open';
ALTER TABLE apps ADD COLUMN client_relay TEXT NOT NULL DEFAULT 'same_user';
ALTER TABLE apps ADD COLUMN identity_secret TEXT;
ALTER TABLE apps ADD COLUMN previous_identity_secret TEXT;
ALTER TABLE apps ADD COLUMN previous_identity_secret_until BIGINT;

-- SHA-256 of the device's secret (handed once to the client key that
-- registered it); NULL for devices registered by server keys or before.
ALTER TABLE devices ADD COLUMN secret_hash TEXT;
