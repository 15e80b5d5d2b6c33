-- TimescaleDB additions to version 2: the plain view alerts_hourly becomes a continuous
-- aggregate (same name and columns, so the command center's queries do not change). Real-time
-- aggregation is asked for explicitly (the default turned off in TimescaleDB 2.13), so the
-- hour not yet materialized is read from alerts. Created WITH NO DATA (a refresh cannot run
-- inside the migration's transaction): the migration runner materializes it once right after,
-- and its refresh policy (window from workflow.late_data) comes from citywatch.stream.timescale_sql.
DROP VIEW IF EXISTS alerts_hourly;
CREATE MATERIALIZED VIEW IF NOT EXISTS alerts_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', event_time) AS hour, kind, district,
       count(*) AS alerts, count(*) FILTER (WHERE phase = 'start') AS starts,
       max(confidence) AS max_confidence
FROM alerts
GROUP BY hour, kind, district
WITH NO DATA;
