-- Web Push (issue 15). An app's VAPID credentials, JSON {subject,
-- private_key} never echoed, and the public key browsers subscribe with
-- (readable with the client key). Failing as for APNs and FCM.
ALTER TABLE apps ADD COLUMN web_push TEXT;
ALTER TABLE apps ADD COLUMN web_push_public_key TEXT;
ALTER TABLE apps ADD COLUMN web_push_error TEXT;
ALTER TABLE apps ADD COLUMN web_push_failing_since BIGINT;

-- A web device's token is its subscription endpoint; its `environment`
-- (copied to its deliveries, as an iOS device's APNs host is) holds the
-- subscription's keys, "p256dh.auth" in base64url: what every send to it
-- needs beside the token, with no new column on the delivery path.
