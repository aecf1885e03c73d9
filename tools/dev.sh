#!/usr/bin/env bash
# The project's two entry points (README "Set-up commands"):
#   bash tools/dev.sh demo [args]   set up the host, run the example workflow headless, print the video path
#   bash tools/dev.sh test [args]   set up the host, run the whole test suite (args go to pytest)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-}"; shift || true
bash "$ROOT/tools/setup_host.sh"
# shellcheck disable=SC1091
source "${MV2ID_HOST_DIR:-$ROOT/.host}/env.sh"
cd "$ROOT"
case "$cmd" in
  demo)
    exec "$MV2ID_PYTHON" tools/run_workflow.py "$@" ;;
  test)
    set +e
    "$MV2ID_PYTHON" -m pytest "$@"
    rc=$?
    set -e
    # pytest exits 5 when nothing was collected: for this project that means a broken tree
    if [[ $rc -eq 5 ]]; then echo "pytest collected no tests: treating as a failure" >&2; exit 1; fi
    exit $rc ;;
  *)
    echo "usage: bash tools/dev.sh {demo|test} [args]" >&2; exit 2 ;;
esac
