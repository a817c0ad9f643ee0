#!/bin/sh
# Run once by the postgres image on an empty data volume: a read-only role for Grafana, which
# runs whatever SQL a dashboard panel holds. The gateway (role $POSTGRES_USER) creates the tables
# later, at its first start; default privileges make them readable to `grafana` then.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE grafana LOGIN PASSWORD '${GRAFANA_DB_PASSWORD}';
GRANT CONNECT ON DATABASE "${POSTGRES_DB}" TO grafana;
GRANT USAGE ON SCHEMA public TO grafana;
ALTER DEFAULT PRIVILEGES FOR ROLE "${POSTGRES_USER}" IN SCHEMA public GRANT SELECT ON TABLES TO grafana;
SQL
