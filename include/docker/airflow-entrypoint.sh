#!/usr/bin/env bash
# The entrypoint of the Airloop image built offline (airflow-debian.Dockerfile), like the official
# Airflow image's: `bash ...` and `python ...` run as given, `airflow ...` too; anything else is
# an `airflow` command (`scheduler`, `celery worker`, `db migrate`, ...).
set -euo pipefail
case "${1:-}" in
  bash | sh | python | python3 | airflow)
    exec "$@"
    ;;
  *)
    exec airflow "$@"
    ;;
esac
