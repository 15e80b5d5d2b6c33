#!/bin/sh
# First start of an empty TimescaleDB volume (docker-entrypoint-initdb.d): the `citywatch` role
# that every citywatch process logs in as, owner of the `citywatch` database but no superuser,
# and the timescaledb extension created there by the superuser, so the migrations find it
# installed (a non-superuser cannot create it; see deploy/timescaledb.md).
set -eu
password="$(cat "${CITYWATCH_DB_PASSWORD_FILE:-/run/secrets/db-password}")"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=pw="$password" <<'SQL'
CREATE ROLE citywatch LOGIN PASSWORD :'pw';
ALTER DATABASE citywatch OWNER TO citywatch;
ALTER SCHEMA public OWNER TO citywatch;
CREATE EXTENSION IF NOT EXISTS timescaledb;
-- lets citywatch read shared_preload_libraries itself when it checks for TimescaleDB
GRANT pg_read_all_settings TO citywatch;
SQL
