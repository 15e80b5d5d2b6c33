-- TimescaleDB additions to version 2: the plain view alerts_hourly becomes a continuous
-- aggregate (same name and columns, so the command center's queries do not change). Its
-- refresh policy comes from config (citywatch.stream.timescale).
DROP VIEW IF EXISTS alerts_hourly;
CREATE MATERIALIZED VIEW IF NOT EXISTS alerts_hourly
WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 hour', event_time) AS hour, kind, district,
       count(*) AS alerts, count(*) FILTER (WHERE phase = 'start') AS starts,
       max(confidence) AS max_confidence
FROM alerts
GROUP BY hour, kind, district
WITH NO DATA;
