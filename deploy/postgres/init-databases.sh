#!/bin/bash
# Runs once, when the postgres volume is empty (docker-entrypoint-initdb.d). One server, three
# databases owned by $POSTGRES_USER: the reel catalog ($POSTGRES_DB, created by the image),
# MLflow's backend store and the Prefect server's database (which needs pg_trgm).
set -euo pipefail
for db in ${REEL_EXTRA_DATABASES:-mlflow prefect}; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<-SQL
	SELECT 'CREATE DATABASE "$db" OWNER "$POSTGRES_USER"'
	WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\gexec
SQL
done
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname prefect \
  -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm'
