#!/usr/bin/env bash
# Postgres init script (docker-compose.yaml mounts this folder on /docker-entrypoint-initdb.d):
# runs once, when the Postgres volume is new. Airflow's metadata database is POSTGRES_DB; this
# adds MLflow's two, owned by their own login so Airflow's password cannot touch them:
#   mlflow       the tracking and model registry store (MLFLOW_BACKEND_STORE_URI)
#   mlflow_auth  the basic-auth app's users and permissions (kept apart: both use Alembic)
# The password comes from the environment and reaches psql as a variable, never as SQL text.
set -euo pipefail
: "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD in .env (see .env.example)}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE USER mlflow WITH PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
SQL
echo "created databases mlflow and mlflow_auth, owned by user mlflow"
