#!/usr/bin/env bash
# Dashboard throughput with and without a login flood, on one server instance.
#
# Usage: flood.sh HARNESS_DIR [options] -- SERVER_COMMAND [ARGS...]
#   HARNESS_DIR        the writable copy of the shared bench harness (get_bench.sh, login_cookie.py, .venv)
#   --label NAME       label prefix of the FIGURE lines               (default: portcullis-flood)
#   --base URL         where the server listens                       (default: http://127.0.0.1:18080)
#   --user U --pass P  the account whose /dashboard is measured        (default: user0001 / password-0001)
#   --conns N          flood connections                              (default: 64)
#   --wait-quiet       wait_quiet.sh before the unloaded measurement (never during the flood)
#
# 1. starts SERVER_COMMAND pinned to core 0 (setsid taskset -c 0), waits for GET /login = 200;
# 2. measures GET /dashboard unloaded (get_bench.sh: 3 s warm-up, 15 s measured, 64 connections)
#    -> FIGURE <label>-off auth_GET_dashboard ...
# 3. starts the flood (wrk + flood.lua on core 1: N connections posting wrong passwords to
#    /login as fast as answers come) and, 2 s later, measures GET /dashboard again
#    -> FIGURE <label>-on auth_GET_dashboard ... and FIGURE <label>-on flood_POST_login ...
#    Both load generators share core 1 (the machine has two cores).
# 4. stops the server's process group. RSS is sampled every 0.5 s throughout.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
H="${1:?usage: flood.sh HARNESS_DIR [options] -- SERVER_COMMAND...}"; shift
H="$(cd "$H" && pwd)"
LABEL=portcullis-flood BASE=http://127.0.0.1:18080 USER_=user0001 PASS_=password-0001 CONNS_FLOOD=64 QUIETW=0
while [ $# -gt 0 ]; do
  case "$1" in
    --label) LABEL="$2"; shift 2 ;;
    --base) BASE="${2%/}"; shift 2 ;;
    --user) USER_="$2"; shift 2 ;;
    --pass) PASS_="$2"; shift 2 ;;
    --conns) CONNS_FLOOD="$2"; shift 2 ;;
    --wait-quiet) QUIETW=1; shift ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "missing server command after --" >&2; exit 2; }
PY="$H/.venv/bin/python"
WARMUP="${WARMUP:-3}"; DURATION="${DURATION:-15}"

if curl -s -o /dev/null --max-time 2 "$BASE/login"; then
  echo "something already answers at $BASE: stop it first" >&2; exit 1
fi
LOG=$(mktemp "${TMPDIR:-/tmp}/flood_server.XXXXXX.log")
setsid taskset -c 0 "$@" >"$LOG" 2>&1 &
SPID=$!
SAMPLER="" FLOODPID=""
cleanup() {
  [ -n "$FLOODPID" ] && kill "$FLOODPID" 2>/dev/null || true
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  if kill -0 "$SPID" 2>/dev/null; then
    kill -TERM -- "-$SPID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$SPID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
echo "# [$LABEL] server pid $SPID (taskset -c 0): $* ; log $LOG"
code=000
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/login" || true)
  [ "$code" = 200 ] && break
  kill -0 "$SPID" 2>/dev/null || { echo "server exited; log:" >&2; cat "$LOG" >&2; exit 1; }
  sleep 0.2
done
[ "$code" = 200 ] || { echo "server not ready (GET /login -> $code)" >&2; exit 1; }

rss_kib() { ps -o rss= -s "$SPID" 2>/dev/null | awk '{s+=$1} END{print s+0}'; }
IDLE_RSS=$(rss_kib)
PEAKF=$(mktemp "${TMPDIR:-/tmp}/flood_peak_rss.XXXXXX"); echo "$IDLE_RSS" > "$PEAKF"
( peak=$IDLE_RSS; while kill -0 "$SPID" 2>/dev/null; do r=$(rss_kib)
    if [ "$r" -gt "$peak" ]; then peak=$r; echo "$peak" > "$PEAKF"; fi; sleep 0.5; done ) &
SAMPLER=$!
taskset -cp 1 "$SAMPLER" >/dev/null 2>&1 || true

COOKIE=$(taskset -c 1 "$PY" "$H/login_cookie.py" "$BASE" "$USER_" "$PASS_")
ALL=()
out=$(QUIET=$QUIETW WRK_CPU=1 SERVER_CPU=0 SCENARIOS=dashboard "$H/get_bench.sh" "$BASE" "$COOKIE" "$LABEL-off") || true
echo "$out" | grep -v '^FIGURE' || true
while IFS= read -r l; do ALL+=("$l"); done < <(echo "$out" | grep '^FIGURE' || true)

# The anonymous CSRF cookie and a token for it, as a browser would get them.
read -r FLOOD_COOKIE FLOOD_TOKEN < <(cd "$H" && taskset -c 1 "$PY" - "$BASE" <<'PYEOF'
import sys, requests
from common import USER_AGENT, find_hidden_input
r = requests.get(sys.argv[1] + "/login", headers={"User-Agent": USER_AGENT}, timeout=30)
tok = find_hidden_input(r.text)
jar = "; ".join(f"{c.name}={c.value}" for c in r.cookies)
print(jar.replace(" ", ""), tok)
PYEOF
)
[ -n "$FLOOD_TOKEN" ] || { echo "no csrf token on /login" >&2; exit 1; }
FLOOD_SECS=$((WARMUP + DURATION + 6))
FLOODOUT=$(mktemp "${TMPDIR:-/tmp}/flood_wrk.XXXXXX")
( cd "$H" && FLOOD_COOKIE="$FLOOD_COOKIE" FLOOD_TOKEN="$FLOOD_TOKEN" taskset -c 1 wrk -t1 -c"$CONNS_FLOOD" \
    -d"${FLOOD_SECS}s" --timeout 10s -s "$HERE/flood.lua" "$BASE/login" > "$FLOODOUT" 2>&1 ) &
FLOODPID=$!
sleep 2
out=$(QUIET=0 WRK_CPU=1 SERVER_CPU=0 SCENARIOS=dashboard "$H/get_bench.sh" "$BASE" "$COOKIE" "$LABEL-on") || true
echo "$out" | grep -v '^FIGURE' || true
while IFS= read -r l; do ALL+=("$l"); done < <(echo "$out" | grep '^FIGURE' || true)
wait "$FLOODPID" || true; FLOODPID=""
sed 's/^/#   flood: /' "$FLOODOUT"
stat=$(grep '^FLOODSTAT' "$FLOODOUT" | tail -n1 || true)
for kv in $(echo "${stat#FLOODSTAT }"); do
  ALL+=("FIGURE $LABEL-on flood_POST_login ${kv%%=*} ${kv#*=}")
done
rm -f "$FLOODOUT"
# Server-side errors (5xx other than 503) seen by the flood, from the server's log too.
# The server logs every 5xx; count the lines that are not the hash pool's 503.
ALL+=("FIGURE $LABEL-on server log_5xx_other_lines $(grep -E 'ERROR|panicked' "$LOG" | grep -vc '503 Service Unavailable' || true)")
ALL+=("FIGURE $LABEL-on server idle_rss_mib $(awk -v k="$IDLE_RSS" 'BEGIN{printf "%.1f", k/1024}')"
      "FIGURE $LABEL-on server peak_rss_mib $(awk -v k="$(cat "$PEAKF")" 'BEGIN{printf "%.1f", k/1024}')")
rm -f "$PEAKF"
echo "# ---- figures ($LABEL) ----"
printf '%s\n' "${ALL[@]}"
