\set ON_ERROR_STOP on
\timing on
-- The same 10M rows into the partitioned table (ids kept).
INSERT INTO d_part OVERRIDING SYSTEM VALUE SELECT * FROM d_plain;
SELECT setval(pg_get_serial_sequence('d_part', 'id'), (SELECT max(id) FROM d_part));
VACUUM ANALYZE d_plain;
VACUUM ANALYZE d_part;
CHECKPOINT;
