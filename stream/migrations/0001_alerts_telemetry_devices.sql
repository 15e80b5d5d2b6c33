-- citywatch store, version 1: devices, alerts and telemetry.
-- Runs on plain PostgreSQL; 0001_alerts_telemetry_devices.timescale.sql adds the
-- TimescaleDB parts when the extension is available.

CREATE TABLE IF NOT EXISTS devices (
    id          text PRIMARY KEY,
    site        text NOT NULL,
    kind        text NOT NULL,
    gateway     text,
    name        text NOT NULL DEFAULT '',
    district    text,
    street      text,
    community   text,
    lat         double precision,
    lon         double precision,
    state       text,              -- online / offline from retained status messages
    last_seen   timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per alert lifecycle message. The key includes event_time because a TimescaleDB
-- hypertable needs its time column in every unique index; a resend carries the same id and
-- event_time, so (id, event_time) still makes every write idempotent.
CREATE TABLE IF NOT EXISTS alerts (
    id           text        NOT NULL,
    event_time   timestamptz NOT NULL,
    episode_id   text        NOT NULL,
    seq          integer     NOT NULL,
    site         text        NOT NULL,
    device_kind  text        NOT NULL,
    device_id    text        NOT NULL,
    kind         text        NOT NULL,
    rule         text        NOT NULL,
    phase        text        NOT NULL CHECK (phase IN ('start', 'update', 'end')),
    zone         text,
    lat          double precision,
    lon          double precision,
    confidence   real        NOT NULL,
    track_id     text,
    evidence     jsonb       NOT NULL DEFAULT '[]',
    attributes   jsonb       NOT NULL DEFAULT '{}',
    received_at  timestamptz NOT NULL DEFAULT now(),
    kafka_topic  text,
    kafka_partition integer,
    kafka_offset bigint,
    PRIMARY KEY (id, event_time)
);
CREATE INDEX IF NOT EXISTS alerts_event_time_idx ON alerts (event_time DESC);
CREATE INDEX IF NOT EXISTS alerts_episode_idx ON alerts (episode_id, seq);
CREATE INDEX IF NOT EXISTS alerts_device_time_idx ON alerts (device_id, event_time DESC);

CREATE TABLE IF NOT EXISTS telemetry (
    id          text        NOT NULL,
    time        timestamptz NOT NULL,
    device_id   text        NOT NULL,
    metrics     jsonb       NOT NULL,
    PRIMARY KEY (id, time)
);
CREATE INDEX IF NOT EXISTS telemetry_device_time_idx ON telemetry (device_id, time DESC);
