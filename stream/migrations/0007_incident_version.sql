-- citywatch store, version 7: a version on each work order's incident state, for stream
-- workers that share a place.
--
-- With several workers, an incident near a Kafka key's cell border can be read and extended
-- by two of them (citywatch.stream.dedup_claim). Each worker writes the incident's dedup
-- state (episodes, sources, last activity, open/closed) from its memory, so a worker holding
-- an old copy would overwrite what the other added. Every write by a stream worker bumps
-- incident_version; a worker whose copy is older than the row (the version moved since it
-- read it) rebuilds its state from the database and retries instead of writing.
ALTER TABLE work_orders ADD COLUMN IF NOT EXISTS incident_version bigint NOT NULL DEFAULT 0;
