-- citywatch store, version 4: what the command center needs.

-- 1. A feed position for every work-order event, so that the live feed resumes from
--    Last-Event-ID without gaps. Positions are taken under one transaction-scoped advisory
--    lock that is held until commit, so they become visible in the order they were taken: a
--    reader that has seen position N has seen every committed position below N. The trigger
--    does it, so no writer (Faust worker, API, a person with psql) can forget it.
CREATE SEQUENCE IF NOT EXISTS workorder_feed_seq;
ALTER TABLE workorder_events ADD COLUMN IF NOT EXISTS feed_id bigint;
WITH ordered AS (
    SELECT id, row_number() OVER (ORDER BY time, work_order_id, seq) AS n
    FROM workorder_events WHERE feed_id IS NULL
)
UPDATE workorder_events e SET feed_id = ordered.n FROM ordered WHERE e.id = ordered.id;
SELECT setval('workorder_feed_seq', COALESCE((SELECT max(feed_id) FROM workorder_events), 0) + 1, false);
CREATE UNIQUE INDEX IF NOT EXISTS workorder_events_feed_idx ON workorder_events (feed_id);

CREATE OR REPLACE FUNCTION citywatch_workorder_feed_position() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1668576372);  -- 'cfeed'; released at commit or rollback
    NEW.feed_id := nextval('workorder_feed_seq');
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS workorder_events_feed ON workorder_events;
CREATE TRIGGER workorder_events_feed BEFORE INSERT ON workorder_events
    FOR EACH ROW EXECUTE FUNCTION citywatch_workorder_feed_position();

-- The notification now names the feed position (listeners fetch from the table by it).
CREATE OR REPLACE FUNCTION citywatch_notify_workorder_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('workorder_events', json_build_object(
        'feed_id', NEW.feed_id, 'work_order_id', NEW.work_order_id, 'event_id', NEW.id,
        'event', NEW.event, 'state', NEW.to_state)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- 2. People and their bearer tokens. Only a token's SHA-256 is stored (tokens are 256-bit
--    random strings, so a fast hash is enough; the token itself is shown once).
CREATE TABLE IF NOT EXISTS center_users (
    name         text PRIMARY KEY,
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    display_name text NOT NULL DEFAULT '',
    source       text NOT NULL DEFAULT 'command' CHECK (source IN ('config', 'command')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    disabled_at  timestamptz
);
CREATE TABLE IF NOT EXISTS center_tokens (
    token_sha256 text PRIMARY KEY,
    user_name    text NOT NULL REFERENCES center_users (name) ON DELETE CASCADE,
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- 3. Photos people attach (a resolution photo, 处置后照片), kept with the work order.
CREATE TABLE IF NOT EXISTS work_order_attachments (
    id            text PRIMARY KEY,
    work_order_id text NOT NULL REFERENCES work_orders (id),
    content_type  text NOT NULL,
    sha256        text NOT NULL,
    data          bytea NOT NULL,
    uploaded_by   text NOT NULL,
    uploaded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS work_order_attachments_order_idx ON work_order_attachments (work_order_id);

-- 4. The list's default order and its common filters (keyset pagination on opened_at, id).
CREATE INDEX IF NOT EXISTS work_orders_list_idx ON work_orders (opened_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS work_orders_department_idx ON work_orders (department, opened_at DESC);
CREATE INDEX IF NOT EXISTS work_orders_district_idx ON work_orders (district, opened_at DESC);
CREATE INDEX IF NOT EXISTS work_orders_open_due_idx ON work_orders (due_at)
    WHERE state NOT IN ('resolved', 'verified', 'closed', 'false_positive');

-- 5. How far the stream tier has relayed people's work-order events (written by the API) to
--    Kafka, so that integrators consuming citywatch.workorder-events see them too.
CREATE TABLE IF NOT EXISTS feed_relays (
    name     text PRIMARY KEY,
    feed_id  bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Relaying starts with this version: every person's event from now on reaches Kafka.
INSERT INTO feed_relays (name, feed_id)
SELECT 'kafka-workorder-events', COALESCE(max(feed_id), 0) FROM workorder_events
ON CONFLICT (name) DO NOTHING;
