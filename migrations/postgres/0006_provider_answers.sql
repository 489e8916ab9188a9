-- Issue 12: what the gateway needs to meet Apple and Google as they behave.
-- The APNs environment of a delivery's device (NULL: the app's), copied
-- with its token so that retries go to the same host.
ALTER TABLE deliveries ADD COLUMN environment TEXT;
