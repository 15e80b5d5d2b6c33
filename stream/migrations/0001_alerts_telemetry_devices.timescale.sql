-- TimescaleDB additions to version 1, applied where TimescaleDB is usable (the extension is
-- created by the migration runner first, when this role may). On a site that ran version 1
-- on plain PostgreSQL and installed TimescaleDB later, this runs then: migrate_data moves the
-- existing rows into chunks. Statements pinned in tests/unit/test_timescale_sql.py; how to
-- check them on a real server: deploy/timescaledb.md.
SELECT create_hypertable('alerts', 'event_time', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('telemetry', 'time', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
-- Telemetry's compression settings (segmentby/orderby consistent with its unique key), and
-- the retention, compression and refresh policies, depend on the extension's version and on
-- config: citywatch.stream.timescale_sql makes them and applies them at every start.
