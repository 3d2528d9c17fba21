#!/usr/bin/env bash
# The hash pool's fairness: another client's logins with and without signed-in
# users flooding an account page with wrong current passwords, on one server.
#
# Usage: fairness.sh HARNESS_DIR [options] -- SERVER_COMMAND [ARGS...]
#   HARNESS_DIR     the writable copy of the shared bench harness (login_flow.py, common.py, .venv)
#   --label NAME    label prefix of the FIGURE lines          (default: portcullis-fair)
#   --base URL      where the server listens                  (default: http://127.0.0.1:18080)
#   --conns N       flood connections, over 4 flooding users  (default: 64)
#   --seconds S     each measurement's length                 (default: 12)
#
# 1. starts SERVER_COMMAND pinned to core 0, waits for GET /login = 200;
# 2. runs the login flow (login_flow.py, users user0000…user0049) unloaded
#    -> FIGURE <label>-off flow_login logins_per_s …
# 3. starts account_flood.py (users user0990…user0993 posting /account/delete with a
#    wrong current password) and, 2 s later, the login flow again
#    -> FIGURE <label>-on flow_login logins_per_s … and FIGURE <label>-on account_flood …
#    Both load generators share core 1.
# 4. prints the ratio of the two login rates (the target: >= 0.8) and stops the server.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
H="${1:?usage: fairness.sh HARNESS_DIR [options] -- SERVER_COMMAND...}"; shift
H="$(cd "$H" && pwd)"
LABEL=portcullis-fair BASE=http://127.0.0.1:18080 CONNS=64 SECS=12
while [ $# -gt 0 ]; do
  case "$1" in
    --label) LABEL="$2"; shift 2 ;;
    --base) BASE="${2%/}"; shift 2 ;;
    --conns) CONNS="$2"; shift 2 ;;
    --seconds) SECS="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "missing server command after --" >&2; exit 2; }
PY="$H/.venv/bin/python"
if curl -s -o /dev/null --max-time 2 "$BASE/login"; then
  echo "something already answers at $BASE: stop it first" >&2; exit 1
fi
LOG=$(mktemp "${TMPDIR:-/tmp}/fair_server.XXXXXX.log")
setsid taskset -c 0 "$@" >"$LOG" 2>&1 &
SPID=$!
FLOODPID=""
cleanup() {
  [ -n "$FLOODPID" ] && kill "$FLOODPID" 2>/dev/null || true
  if kill -0 "$SPID" 2>/dev/null; then
    kill -TERM -- "-$SPID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$SPID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
code=000
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/login" || true)
  [ "$code" = 200 ] && break
  kill -0 "$SPID" 2>/dev/null || { echo "server exited; log:" >&2; cat "$LOG" >&2; exit 1; }
  sleep 0.2
done
[ "$code" = 200 ] || { echo "server not ready (GET /login -> $code)" >&2; exit 1; }

flow() { (cd "$H" && taskset -c 1 "$PY" login_flow.py "$BASE" --users 50 --concurrency 16 \
  --seconds "$SECS" --warmup 3 --label "$1" || true) | grep '^FIGURE' || true; }
OFF=$(flow "$LABEL-off")
echo "$OFF"
FLOODOUT=$(mktemp "${TMPDIR:-/tmp}/fair_flood.XXXXXX")
( cd "$H" && PYTHONPATH="$H" taskset -c 1 "$PY" "$HERE/account_flood.py" "$BASE" --conns "$CONNS" \
    --seconds $((SECS + 8)) > "$FLOODOUT" 2>&1 ) &
FLOODPID=$!
sleep 2
ON=$(flow "$LABEL-on")
echo "$ON"
wait "$FLOODPID" || true; FLOODPID=""
stat=$(grep '^ACCOUNTFLOOD' "$FLOODOUT" | tail -n1 || true)
[ -n "$stat" ] || { echo "the flood said nothing:" >&2; cat "$FLOODOUT" >&2; }
for kv in ${stat#ACCOUNTFLOOD }; do echo "FIGURE $LABEL-on account_flood ${kv%%=*} ${kv#*=}"; done
rm -f "$FLOODOUT"
off=$(echo "$OFF" | awk '$4 == "logins_per_s" {print $5}')
on=$(echo "$ON" | awk '$4 == "logins_per_s" {print $5}')
ratio=$(awk -v a="$on" -v b="$off" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
echo "FIGURE $LABEL ratio logins_on_over_off $ratio"
echo "# another client's logins under the account-page flood: $on/s against $off/s unloaded: $ratio (target >= 0.8)"
