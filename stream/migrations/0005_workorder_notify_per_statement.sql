-- Version 5: one notification per statement that inserts work-order events, not one per
-- event. A notification is only a nudge (listeners read the events from the table by feed
-- position, center/feed.py); the stream worker inserts thousands of events in one
-- statement, and a row trigger queued a notification for each (with its JSON payload),
-- which PostgreSQL then delivered to every listening command-center process, each waking
-- for every one. (The worker's own rate does not change measurably either way.)
-- Payload: {"feed_id": the highest feed position inserted, "events": how many}.
CREATE OR REPLACE FUNCTION citywatch_notify_workorder_events() RETURNS trigger AS $$
DECLARE
    last_position bigint;
    inserted_count bigint;
BEGIN
    SELECT max(feed_id), count(*) INTO last_position, inserted_count FROM inserted_events;
    IF inserted_count > 0 THEN
        PERFORM pg_notify('workorder_events', json_build_object(
            'feed_id', last_position, 'events', inserted_count)::text);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS workorder_events_notify ON workorder_events;
CREATE TRIGGER workorder_events_notify AFTER INSERT ON workorder_events
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION citywatch_notify_workorder_events();
DROP FUNCTION IF EXISTS citywatch_notify_workorder_event();
