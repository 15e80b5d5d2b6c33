-- TimescaleDB additions to version 1 (applied only where the extension is available;
-- checked by inspection in tests, since TimescaleDB is not installable from this project's
-- package sources).
CREATE EXTENSION IF NOT EXISTS timescaledb;
SELECT create_hypertable('alerts', 'event_time', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('telemetry', 'time', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id');
-- Retention and compression policies come from config (services.database.timescale) and are
-- applied at every start by citywatch.stream.timescale, so an operator can change them.
