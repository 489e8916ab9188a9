-- Issue 18: on Postgres the outbox triggers of 0007 become statement
-- triggers that return at once when no endpoint listens. SQLite has no
-- statement triggers (and its row triggers, run in the engine, cost far
-- less than a PL/pgSQL call), so it keeps those of 0007: this file only
-- keeps the two dialects' migrations numbered alike.
SELECT 1;
