-- citywatch store, version 8: short work-order numbers people can read out on the phone.
--
-- A 12345 center numbers its orders by site, date and the day's sequence
-- (DEMO-20261206-0042); the machine id (inc.cam-renmin-102.open-burning…) stays the key.
-- The database assigns the number when the row is first inserted, whoever inserts it (the
-- stream worker, the center's hotline form, a person with psql), so it is stable and unique.
-- The date is the day the order was opened, in the site's time zone.

-- 1. The site the numbers are for. The command center writes its site id and zone here at
--    start (citywatch.storage.workorders.record_numbering_site); until then the site of the
--    newest alert and UTC stand in.
CREATE TABLE IF NOT EXISTS work_order_numbering (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    site      text NOT NULL,
    timezone  text NOT NULL DEFAULT 'UTC'
);

-- 2. The last sequence number given out per prefix and day.
CREATE TABLE IF NOT EXISTS work_order_number_days (
    prefix text    NOT NULL,
    day    date    NOT NULL,
    last   integer NOT NULL,
    PRIMARY KEY (prefix, day)
);

ALTER TABLE work_orders ADD COLUMN IF NOT EXISTS number text;

CREATE OR REPLACE FUNCTION citywatch_work_order_number(opened timestamptz) RETURNS text AS $$
DECLARE
    site_id text;
    zone    text;
    local_day date;
    next_seq integer;
BEGIN
    SELECT n.site, n.timezone INTO site_id, zone FROM work_order_numbering n;
    IF site_id IS NULL THEN
        SELECT a.site INTO site_id FROM alerts a ORDER BY a.event_time DESC LIMIT 1;
        zone := 'UTC';
    END IF;
    site_id := upper(coalesce(site_id, 'CW'));
    local_day := (opened AT TIME ZONE zone)::date;
    INSERT INTO work_order_number_days AS d (prefix, day, last) VALUES (site_id, local_day, 1)
    ON CONFLICT (prefix, day) DO UPDATE SET last = d.last + 1
    RETURNING d.last INTO next_seq;
    RETURN site_id || '-' || to_char(local_day, 'YYYYMMDD') || '-'
        || CASE WHEN next_seq < 10000 THEN lpad(next_seq::text, 4, '0') ELSE next_seq::text END;
END;
$$ LANGUAGE plpgsql;

-- Every writer of work-order events already takes the feed's transaction lock
-- (0004_center.sql); numbering takes it first too, so counters are only ever touched under
-- it (two transactions never wait on each other's day rows in opposite orders). A row that
-- already exists is an upsert about to update it: it keeps its number and takes none.
CREATE OR REPLACE FUNCTION citywatch_number_work_order() RETURNS trigger AS $$
BEGIN
    IF NEW.number IS NOT NULL OR EXISTS (SELECT 1 FROM work_orders WHERE id = NEW.id) THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(1668576372);
    NEW.number := citywatch_work_order_number(NEW.opened_at);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS work_orders_number ON work_orders;
CREATE TRIGGER work_orders_number BEFORE INSERT ON work_orders
    FOR EACH ROW EXECUTE FUNCTION citywatch_number_work_order();

-- 3. Orders from before this version are numbered in the order they were opened.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT id, opened_at FROM work_orders WHERE number IS NULL ORDER BY opened_at, id LOOP
        UPDATE work_orders SET number = citywatch_work_order_number(r.opened_at) WHERE id = r.id;
    END LOOP;
END;
$$;
CREATE UNIQUE INDEX IF NOT EXISTS work_orders_number_idx ON work_orders (number);
