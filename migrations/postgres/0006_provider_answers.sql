-- Issue 12: what the gateway needs to meet Apple and Google as they behave.
-- The APNs environment of a delivery's device (NULL: the app's), copied
-- with its token so that retries go to the same host.
ALTER TABLE deliveries ADD COLUMN environment TEXT;

-- A provider whose credentials are refused is `failing` with the refusal and
-- since when; NULL: `ok`. Kept apart from `updated_at`, which versions the
-- credentials themselves.
ALTER TABLE apps ADD COLUMN apns_error TEXT;
ALTER TABLE apps ADD COLUMN apns_failing_since BIGINT;
ALTER TABLE apps ADD COLUMN fcm_error TEXT;
ALTER TABLE apps ADD COLUMN fcm_failing_since BIGINT;

-- The APNs provider token of each key, shared by every instance: Apple
-- refuses a key's token renewed more than once per 20 minutes.
CREATE TABLE provider_tokens (
    team_id     TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,              -- of the .p8, so a replaced key gets its own row
    jwt         TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,            -- ms
    PRIMARY KEY (team_id, key_id, fingerprint)
);

-- Every attempt of a delivery, a JSON array appended to by the write-back
-- itself (no statement of its own); NULL: none yet.
ALTER TABLE deliveries ADD COLUMN attempts_log TEXT;
