-- Evidence announced after its alert (a camera's clip is finished a few seconds after the
-- episode starts). Kept in its own table, keyed by the notice id, so a notice that arrives
-- before its alert is stored is not lost; the command center joins on alert_id.
CREATE TABLE IF NOT EXISTS evidence (
    id           text        PRIMARY KEY,
    alert_id     text        NOT NULL,
    device_id    text        NOT NULL,
    kind         text        NOT NULL,
    uri          text        NOT NULL,
    content_type text        NOT NULL,
    sha256       text,
    event_time   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS evidence_alert_idx ON evidence (alert_id);
