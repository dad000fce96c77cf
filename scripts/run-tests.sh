#!/usr/bin/env bash
# Runs the test suite with throwaway state: a fresh Prefect home, a real PostgreSQL server for
# the catalog tests (started here unless REEL_TEST_POSTGRES_URL is set), and the venv's pytest.
# Extra arguments go to pytest (e.g. -m "not slow", -k media).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/reel-test.XXXXXX)
chmod 755 "$tmp"   # the PostgreSQL server runs as user postgres and needs to enter it
export PREFECT_HOME="$tmp/prefect"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=180
export PREFECT_LOGGING_LEVEL=WARNING
export MPLBACKEND=Agg
pg_started=""
cleanup() {
  if [[ -n "$pg_started" ]]; then bash scripts/postgres.sh stop "$tmp/pg" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp" 2>/dev/null || true
}
trap cleanup EXIT
if [[ -z "${REEL_TEST_POSTGRES_URL:-}" ]]; then
  port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  REEL_TEST_POSTGRES_URL=$(bash scripts/postgres.sh start "$tmp/pg" "$port" | tail -n 1)
  export REEL_TEST_POSTGRES_URL
  pg_started=1
fi
echo "PostgreSQL for tests: $REEL_TEST_POSTGRES_URL"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# exit code 5 = no tests collected (e.g. a marker filter deselected everything): not a failure
if [[ $rc -eq 5 ]]; then rc=0; fi
exit $rc
