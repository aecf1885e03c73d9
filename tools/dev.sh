#!/usr/bin/env bash
# The project's two entry points (README "Set-up commands"):
#   bash tools/dev.sh demo [args]   install the default host if needed, run the example workflow headless,
#                                   print the video's path (args go to tools/run_workflow.py)
#   bash tools/dev.sh test [args]   install every available host, run the whole suite on each of them
#                                   (args go to pytest), print a table: host, ComfyUI version, result, time
# Hosts (hosts/hosts.ini): "newest" (the upstream tree in ../shared/hosts, when it is there) and
# "oldest" (the registry's ComfyUI 0.3.75 build); "library" is no host: the library's tests alone, in a
# Python with only its declared dependencies (no ComfyUI). MV2ID_HOSTS="newest" (or "oldest", "default")
# picks others; COMFYUI_PATH=/path/to/ComfyUI tests that ComfyUI instead.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
cmd="${1:-}"; shift || true
case "$cmd" in
  demo) want="${MV2ID_HOSTS:-default}" ;;
  test) want="${MV2ID_HOSTS:-all}" ;;
  *) echo "usage: bash tools/dev.sh {demo|test} [args]" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
mapfile -t hosts < <(python3 tools/setup_host.py $want)

run_on() {  # run_on <env.sh> <command...>: in a subshell with that host's MV2ID_* variables
  local env="$1"; shift
  ( set -a; source "$env"; set +a; "$@" )
}

if [[ "$cmd" == demo ]]; then
  IFS=$'\t' read -r _ env <<< "${hosts[0]}"
  run_on "$env" bash -c 'echo "[mv2id-demo] host: $MV2ID_HOST_DESCRIPTION" >&2; exec "$MV2ID_PYTHON" tools/run_workflow.py "$@"' _ "$@"
  exit $?
fi

rc_all=0
table="| host | ComfyUI | result | time |\n| --- | --- | --- | --- |\n"
for line in "${hosts[@]}"; do
  IFS=$'\t' read -r name env <<< "$line"
  log="$ROOT/out/test-$name.log"
  mkdir -p "$ROOT/out"
  echo "=== tests on host '$name' ===" >&2
  start=$SECONDS
  set +e
  # an environment without ComfyUI (hosts.ini source = none) runs the library's tests alone; on a host,
  # a host that cannot be found is an error (tests/conftest.py), never skipped tests
  run_on "$env" bash -c 'if [[ -z "${MV2ID_COMFYUI:-}" ]]; then set -- -m "not server" "$@"; else export MV2ID_REQUIRE_HOST=1; fi
                         exec "$MV2ID_PYTHON" -m pytest "$@"' _ "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  # pytest exits 5 when nothing was collected: for this project that means a broken tree
  if [[ $rc -eq 5 ]]; then echo "pytest collected no tests on host '$name': treating as a failure" >&2; rc=1; fi
  if [[ $rc -ne 0 ]]; then rc_all=1; fi
  # pytest's last line, e.g. "=== 5 failed, 195 passed in 255.56s ===" (or without the = with -q)
  summary="$(grep -E '(passed|failed|error|skipped).* in [0-9.]+s' "$log" | tail -n1 | sed -E 's/^=+ //; s/ in [0-9.]+s.*//' || true)"
  desc="$(run_on "$env" bash -c 'echo "$MV2ID_HOST_DESCRIPTION"')"
  table+="| $name | $desc | ${summary:-exit $rc} | $((SECONDS - start)) s |\n"
done
printf "\n%b" "$table" >&2
exit $rc_all
