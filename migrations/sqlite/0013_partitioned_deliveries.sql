-- Issue 18 partitions the delivery log by day on Postgres; SQLite keeps its
-- table (and its retention deletes rows in batches).
SELECT 1;
