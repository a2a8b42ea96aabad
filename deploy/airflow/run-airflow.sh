#!/usr/bin/env bash
# Starts one Airflow 3.3.2 component for the tweet_assets DAG, bound to 127.0.0.1 only:
#   run-airflow.sh api-server | dag-processor | scheduler | triggerer
# with the settings of deploy/airflow/airflow.env in the environment (systemd EnvironmentFile=).
# AIRFLOW_BIN: the airflow executable (default: `airflow` on PATH).
set -euo pipefail

usage="usage: run-airflow.sh api-server|dag-processor|scheduler|triggerer"
component="${1:?$usage}"
airflow="${AIRFLOW_BIN:-airflow}"

if [[ -z "${AIRFLOW__API_AUTH__JWT_SECRET:-}" ]]; then
  echo "run-airflow.sh: set AIRFLOW__API_AUTH__JWT_SECRET (one value for every component, e.g. openssl rand -hex 32) in airflow.env" >&2
  exit 2
fi

case "$component" in
  api-server)
    exec "$airflow" api-server --host "${AIRFLOW__API__HOST:-127.0.0.1}" --port "${AIRFLOW__API__PORT:-8080}" ;;
  dag-processor)
    exec "$airflow" dag-processor ;;
  scheduler)
    # the LocalExecutor's log server would listen on 0.0.0.0:8793 and [::]:8793 (Airflow 3.3.2,
    # airflow/utils/serve_logs/core.py: host "" hard-coded); the api-server reads the log files itself
    exec "$airflow" scheduler --skip-serve-logs ;;
  triggerer)
    # the same log server on 8794; only needed for deferrable tasks (the DAG has none)
    exec "$airflow" triggerer --skip-serve-logs ;;
  *)
    echo "run-airflow.sh: unknown component '$component'; $usage" >&2
    exit 2 ;;
esac
