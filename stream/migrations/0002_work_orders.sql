-- citywatch store, version 2: work orders (one per deduplicated incident), their alerts,
-- their audit trail, and the grid placement of alerts for KPIs.

ALTER TABLE alerts ADD COLUMN IF NOT EXISTS district text;

CREATE TABLE IF NOT EXISTS work_orders (
    id              text PRIMARY KEY,
    kind            text        NOT NULL,
    category_code   text        NOT NULL,
    category_name   text        NOT NULL DEFAULT '',
    department      text        NOT NULL,
    priority        smallint    NOT NULL CHECK (priority BETWEEN 1 AND 4),
    state           text        NOT NULL,
    sla_tier        text        NOT NULL,
    opened_at       timestamptz NOT NULL,
    due_at          timestamptz,
    clock_started_at timestamptz NOT NULL,
    escalated_levels jsonb      NOT NULL DEFAULT '[]',
    resolved_at     timestamptz,
    closed_at       timestamptz,
    escalation_level text,
    district        text,
    street          text,
    community       text,
    lat             double precision,
    lon             double precision,
    -- dedup state of the incident behind the work order (restored when a worker starts)
    incident_state  text        NOT NULL DEFAULT 'open' CHECK (incident_state IN ('open', 'closed')),
    incident_closed_at timestamptz,
    last_activity   timestamptz NOT NULL,
    episodes        jsonb       NOT NULL DEFAULT '[]',
    open_episodes   jsonb       NOT NULL DEFAULT '[]',
    sources         jsonb       NOT NULL DEFAULT '[]',
    alert_count     integer     NOT NULL DEFAULT 0,
    max_confidence  real        NOT NULL DEFAULT 0,
    reopen_count    integer     NOT NULL DEFAULT 0,
    attributes      jsonb       NOT NULL DEFAULT '{}',
    seq             integer     NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS work_orders_state_idx ON work_orders (state, due_at);
CREATE INDEX IF NOT EXISTS work_orders_incident_idx ON work_orders (kind, incident_state);
CREATE INDEX IF NOT EXISTS work_orders_opened_idx ON work_orders (opened_at DESC);
CREATE INDEX IF NOT EXISTS work_orders_geo_idx ON work_orders (lat, lon);

CREATE TABLE IF NOT EXISTS work_order_alerts (
    work_order_id   text NOT NULL REFERENCES work_orders (id),
    alert_id        text NOT NULL,
    added_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (work_order_id, alert_id)
);
CREATE INDEX IF NOT EXISTS work_order_alerts_alert_idx ON work_order_alerts (alert_id);

CREATE TABLE IF NOT EXISTS workorder_events (
    id              text PRIMARY KEY,
    work_order_id   text        NOT NULL REFERENCES work_orders (id),
    seq             integer     NOT NULL,
    event           text        NOT NULL,
    from_state      text,
    to_state        text        NOT NULL,
    actor           text        NOT NULL,
    time            timestamptz NOT NULL,
    reason          text,
    data            jsonb       NOT NULL DEFAULT '{}',
    UNIQUE (work_order_id, seq)
);
CREATE INDEX IF NOT EXISTS workorder_events_time_idx ON workorder_events (time);

-- The command center listens on this channel (payload: work-order id and event id).
CREATE OR REPLACE FUNCTION citywatch_notify_workorder_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('workorder_events', json_build_object(
        'work_order_id', NEW.work_order_id, 'event_id', NEW.id, 'event', NEW.event,
        'state', NEW.to_state)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS workorder_events_notify ON workorder_events;
CREATE TRIGGER workorder_events_notify AFTER INSERT ON workorder_events
    FOR EACH ROW EXECUTE FUNCTION citywatch_notify_workorder_event();

-- Alerts per kind, district and hour. A plain view on PostgreSQL; with TimescaleDB the
-- .timescale.sql companion replaces it by a continuous aggregate of the same shape.
CREATE OR REPLACE VIEW alerts_hourly AS
SELECT date_trunc('hour', event_time) AS hour, kind, district,
       count(*) AS alerts, count(*) FILTER (WHERE phase = 'start') AS starts,
       max(confidence) AS max_confidence
FROM alerts
GROUP BY 1, 2, 3;
