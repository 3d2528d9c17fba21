#!/usr/bin/env bash
# Portcullis load run: Portcullis (on SQLite, on PostgreSQL, on PostgreSQL with sessions in
# Redis), the Flask peer and the bare-axum ceiling measured in one run with the shared harness,
# the JSON API with a personal access token, a login-flood run, the raw Argon2id rate, and one table.
#
# Usage (from anywhere): bench/run.sh [options]
#   --large            also seed and measure 1,000,000 users and 1,000,000 sessions
#   --no-build         use the release binary as it is (default: cargo build --release first)
#   --bin PATH         the portcullis binary to measure (implies --no-build)
#   --work DIR         persistent work dir: harness copy, seeded databases   (default /tmp/portcullis-bench)
#   --out DIR          where this run's outputs go                 (default WORK/results/<UTC stamp>)
#   --quiet-budget S   total seconds all wait_quiet.sh calls together may wait (default 900);
#                      a scenario measured without quiet says `quiet_wait timeout` in the table
#   --no-flask / --no-ceiling / --no-flood / --no-flow   leave a part out (--no-flood also leaves out
#                      the account-page flood of bench/fairness.sh)
#   --rounds N         rounds of the servers measured alternately, all up at once: the ceiling,
#                      Portcullis (and with --large the 1M Portcullis) 8 s per page, Portcullis'
#                      logins 12 s against the raw Argon2id rate 10 s (default 5; 0 leaves them out)
#   --windows N        with --large, after the rounds: N one-second dashboard windows on each of the
#                      1k and 1M servers, taken in turn, for their typical p99 (default 20; 0: none)
#   --user-fmt F --pass-fmt F   account pattern (default user{:04d} / password-{:04d})
#   --argon2-bin PATH  a prebuilt benches/argon2_rate binary (default: cargo bench --no-run builds it,
#                      before anything is measured; not needed with --no-flow)
#   --postgres URL     the PostgreSQL database the same 1,000 users and posts are seeded into, once
#                      (created if missing, through the server's `postgres` database; an existing one
#                      that holds anything else is refused); every server start serves a fresh copy,
#                      NAME_run_PART, made with CREATE DATABASE … TEMPLATE and dropped at the end
#                      (default postgres://postgres@127.0.0.1:5432/portcullis_bench)
#   --redis URL        Redis for the PostgreSQL + Redis server; a /N path picks the database number.
#                      Its keys start with portcullis-bench: and only those are deleted, before every
#                      server start and at the end                      (default redis://127.0.0.1:6379)
#   --no-postgres / --no-redis   leave out both PostgreSQL servers / the one with Redis
#   --no-api           leave out GET /api/v1/me with a personal access token (measured in the rounds)
#   --prepare          only build, set up the harness and seed the databases, then stop
#
# The server runs on core 0 and the load generators on core 1 (the harness's rule).
# Ports: Portcullis 127.0.0.1:18080 (1M users: 18081, PostgreSQL: 18082, PostgreSQL + Redis: 18083),
# Flask 127.0.0.1:18001, ceiling 127.0.0.1:18002. PostgreSQL and Redis are the machine's own
# services, not pinned. Every Portcullis runs with PORTCULLIS_RATE_LIMIT_PER_MINUTE=0 and
# PORTCULLIS_API_RATE_LIMIT_PER_MINUTE=0 (all load comes from one address and one token).
# Needs: curl, python3, taskset, and what the harness's setup.sh installs (wrk, a venv);
# for the PostgreSQL parts psql, for the Redis part redis-cli.
set -euo pipefail
# Data directories private, as Portcullis expects of its own (it warns otherwise).
umask 077
ORIG_ARGS="$*"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HERE="$ROOT/bench"
SHARED="${BENCH_SHARED:-$ROOT/../shared/bench}"
WORK=/tmp/portcullis-bench OUT="" BUILD=1 BIN="" LARGE=0 QBUDGET=900
DO_FLASK=1 DO_CEIL=1 DO_FLOOD=1 DO_FLOW=1 PREPARE=0 ARGON="" ROUNDS=5 WINDOWS=20
USER_FMT='user{:04d}' PASS_FMT='password-{:04d}'
PG_URL=postgres://postgres@127.0.0.1:5432/portcullis_bench REDIS_URL=redis://127.0.0.1:6379
DO_PG=1 DO_REDIS=1 DO_API=1 REDIS_PREFIX=portcullis-bench:
while [ $# -gt 0 ]; do
  case "$1" in
    --large) LARGE=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --bin) BIN="$(realpath "$2")"; BUILD=0; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --quiet-budget) QBUDGET="$2"; shift 2 ;;
    --no-flask) DO_FLASK=0; shift ;;
    --no-ceiling) DO_CEIL=0; shift ;;
    --no-flood) DO_FLOOD=0; shift ;;
    --no-flow) DO_FLOW=0; shift ;;
    --user-fmt) USER_FMT="$2"; shift 2 ;;
    --pass-fmt) PASS_FMT="$2"; shift 2 ;;
    --prepare) PREPARE=1; shift ;;
    --argon2-bin) ARGON="$(realpath "$2")"; shift 2 ;;
    --rounds | --pairs) ROUNDS="$2"; shift 2 ;;
    --windows) WINDOWS="$2"; shift 2 ;;
    --postgres) PG_URL="$2"; shift 2 ;;
    --redis) REDIS_URL="$2"; shift 2 ;;
    --no-postgres) DO_PG=0; shift ;;
    --no-redis) DO_REDIS=0; shift ;;
    --no-api) DO_API=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$WORK"; WORK="$(cd "$WORK" && pwd)"
OUT="${OUT:-$WORK/results/$(date -u +%Y%m%dT%H%M%SZ)}"; mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
H="$WORK/bench"                      # writable copy of the shared harness
PORT_P=18080 PORT_F=18001 PORT_C=18002 PORT_L=18081 PORT_PG=18082 PORT_PR=18083
[ "$DO_PG" = 1 ] || DO_REDIS=0
FLOW="--users 50 --concurrency 16 --seconds 20 --user-fmt $USER_FMT --pass-fmt $PASS_FMT"
RFLOW="--users 50 --concurrency 16 --seconds 12 --warmup 3 --user-fmt $USER_FMT --pass-fmt $PASS_FMT"
user_n() { python3 -c "import sys; print(sys.argv[1].format(int(sys.argv[2])))" "$1" "$2"; }
U1=$(user_n "$USER_FMT" 1) P1=$(user_n "$PASS_FMT" 1)
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/run.log" >&2; }

# ---- the binary ----------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
  log "cargo build --release (log: $OUT/build.log)"
  (cd "$ROOT" && cargo build --release --bin portcullis) > "$OUT/build.log" 2>&1
fi
if [ -z "$BIN" ]; then
  TDIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  BIN="$TDIR/release/portcullis"
fi
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }
REV="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ', with uncommitted changes' || true)"
if [ "$BUILD" = 1 ]; then log "binary $BIN, built from the work tree at $REV"; else log "binary $BIN, prebuilt (work tree at $REV)"; fi

# ---- the harness, copied (the shared folder may be read-only) --------------------------------
if [ ! -x "$H/get_bench.sh" ]; then
  log "copying the harness from $SHARED to $H"
  rm -rf "$H"; cp -r "$SHARED" "$H"; chmod -R u+w "$H"
fi
if [ ! -x "$H/.venv/bin/python" ] || ! command -v wrk >/dev/null; then log "harness setup"; "$H/setup.sh"; fi
if [ "$DO_FLASK" = 1 ] && [ ! -f "$H/peers/flask_seed/instance/app.db" ]; then
  log "Flask peer setup (seeds 1,000 scrypt users: several minutes, once)"
  "$H/peers/flask_seed/setup.sh"
fi
CEIL="$H/peers/axum_ceiling/target/release/axum_ceiling"
if [ "$DO_CEIL" = 1 ] && [ ! -x "$CEIL" ]; then
  log "building the axum ceiling"
  cargo build --release --manifest-path "$H/peers/axum_ceiling/Cargo.toml" > "$OUT/ceiling-build.log" 2>&1
fi

# ---- seeded databases (kept in WORK; each run serves a fresh copy) ---------------------------
pc() { PORTCULLIS_LOG=warn PORTCULLIS_DATA_DIR="$1" "$BIN" "${@:2}"; }
SEED1K="$WORK/seed-1k"
if [ ! -f "$SEED1K/done" ]; then
  log "seeding 1,000 users with 3 posts each into $SEED1K"
  rm -rf "$SEED1K"; mkdir -p "$SEED1K"
  pc "$SEED1K" migrate
  # The password pattern must pass the policy (length, not a common password): try one first.
  if ! user_n "$PASS_FMT" 0 | pc "$SEED1K" user create --username "$(user_n "$USER_FMT" 0)" \
        --email "$(user_n "$USER_FMT" 0)@example.com" --verified --password-stdin; then
    echo "the password pattern $PASS_FMT is refused by the policy: pass another with --pass-fmt" >&2; exit 1
  fi
  export BIN SEED1K USER_FMT PASS_FMT
  seq 1 999 | xargs -P 2 -I{} bash -c '
    u=$(python3 -c "import sys; print(sys.argv[1].format({}))" "$USER_FMT")
    python3 -c "import sys; sys.stdout.write(sys.argv[1].format({}))" "$PASS_FMT" |
      PORTCULLIS_LOG=warn PORTCULLIS_DATA_DIR="$SEED1K" "$BIN" user create --username "$u" \
        --email "$u@example.com" --verified --password-stdin >/dev/null' \
    || { echo "creating users failed" >&2; exit 1; }
  python3 "$HERE/seed.py" posts "$SEED1K/portcullis.db" --users 1000
  touch "$SEED1K/done"
fi
SEED1M="$WORK/seed-1m"
if [ "$LARGE" = 1 ] && [ ! -f "$SEED1M/done" ]; then
  log "seeding 1,000,000 users and 1,000,000 sessions into $SEED1M"
  rm -rf "$SEED1M"; cp -r "$SEED1K" "$SEED1M"; rm -f "$SEED1M/done"
  pc "$SEED1M" migrate
  python3 "$HERE/seed.py" large "$SEED1M/portcullis.db" --users 1000000 --sessions 1000000
  touch "$SEED1M/done"
fi
# PostgreSQL: the same 1,000 users (their Argon2id hashes taken over through
# `portcullis import csv`) and posts, in a database seeded once; every server
# start serves a copy made from it as a template.
pg_url() { # URL NAME -> URL with the database NAME
  python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$1" "$2"
}
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
pg_admin() { psql_ "$(pg_url "$PG_URL" postgres)" "$@"; }
if [ "$DO_PG" = 1 ]; then
  command -v psql >/dev/null || { echo "psql not found (the PostgreSQL parts need it; or --no-postgres)" >&2; exit 1; }
  PG_DB=$(python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).path.lstrip("/"))' "$PG_URL")
  [[ "$PG_DB" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "--postgres: the database name must be [a-z_][a-z0-9_]*, not '$PG_DB'" >&2; exit 1; }
  PG_SEEDED="$(user_n "$USER_FMT" 999) 3000"
  pg_seeded() { psql -X -tA "$PG_URL" -c "SELECT (SELECT max(username) FROM users) || ' ' || (SELECT count(*) FROM posts)" 2>/dev/null || true; }
  have=$(psql -X -tA "$(pg_url "$PG_URL" postgres)" -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")
  if [ "$have" != 1 ] || [ "$(pg_seeded)" != "$PG_SEEDED" ]; then
    if [ "$have" = 1 ] && [ -n "$(psql -X -tA "$PG_URL" -c "SELECT 1 FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') LIMIT 1")" ]; then
      echo "$PG_URL holds tables but not the seeded accounts: drop it, or pass another --postgres" >&2; exit 1
    fi
    log "seeding the same 1,000 users and their posts into PostgreSQL database $PG_DB"
    [ "$have" = 1 ] || pg_admin -c "CREATE DATABASE \"$PG_DB\""
    SEEDPG="$WORK/seed-pg"; rm -rf "$SEEDPG"; mkdir -p "$SEEDPG"; cp "$SEED1K/secret.key" "$SEEDPG/"
    PORTCULLIS_DATABASE_URL="$PG_URL" pc "$SEEDPG" migrate
    python3 "$HERE/seed.py" users-csv "$SEED1K/portcullis.db" > "$SEEDPG/users.csv"
    PORTCULLIS_DATABASE_URL="$PG_URL" pc "$SEEDPG" import csv "$SEEDPG/users.csv" 2>"$SEEDPG/import.log" | tail -n1
    python3 "$HERE/seed.py" posts-sql --users 1000 --user-fmt "$USER_FMT" | psql_ "$PG_URL"
    [ "$(pg_seeded)" = "$PG_SEEDED" ] \
      || { echo "seeding PostgreSQL failed (see $SEEDPG/import.log)" >&2; exit 1; }
  fi
fi
fresh_pg() { # part -> URL of a fresh copy of the seeded PostgreSQL database
  local db="${PG_DB}_run_$1"
  pg_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\" TEMPLATE \"$PG_DB\"" >&2
  pg_url "$PG_URL" "$db"
}
drop_pg_copies() {
  [ "$DO_PG" = 1 ] || return 0
  for db in $(psql -X -tA "$(pg_url "$PG_URL" postgres)" -c "SELECT datname FROM pg_database WHERE datname LIKE '${PG_DB}\_run\_%'"); do
    pg_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true
  done
}
if [ "$DO_REDIS" = 1 ]; then
  command -v redis-cli >/dev/null || { echo "redis-cli not found (the Redis part needs it; or --no-redis)" >&2; exit 1; }
  redis-cli -u "$REDIS_URL" ping >/dev/null || { echo "no Redis at $REDIS_URL (or pass --no-redis)" >&2; exit 1; }
fi
flush_redis() { # deletes this script's keys, and only those
  [ "$DO_REDIS" = 1 ] || return 0
  redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
}
if [ -z "$ARGON" ] && [ "$DO_FLOW" = 1 ]; then
  log "building benches/argon2_rate (the raw Argon2id rate)"
  ARGON=$(cd "$ROOT" && cargo bench --bench argon2_rate --no-run --message-format=json 2>>"$OUT/build.log" \
    | python3 -c 'import json,sys
for l in sys.stdin:
    try: m = json.loads(l)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "argon2_rate" and m.get("executable"): print(m["executable"])' | tail -n1)
  [ -n "$ARGON" ] || log "could not build benches/argon2_rate.rs (see build.log)"
fi
fresh() { # seed-dir -> a fresh data dir for one server run
  local d="$OUT/data-$(basename "$1")-$2"; rm -rf "$d"; mkdir -p "$d"
  cp "$1"/portcullis.db* "$1/secret.key" "$d/"; chmod 600 "$d/secret.key"
  # Written out now, not by the kernel's flusher in the middle of a measurement
  # (the 1M database is half a gigabyte).
  sync; echo "$d"
}

[ "$PREPARE" = 1 ] && { log "prepared"; exit 0; }
trap 'drop_pg_copies; flush_redis' EXIT

# ---- measurements ----------------------------------------------------------------------------
export QUIET_DEADLINE=$(( $(date +%s) + QBUDGET ))
{ echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "# machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -r)"
  echo "# binary: $BIN ($([ "$BUILD" = 1 ] && echo "built from the work tree at $REV" || echo "prebuilt; work tree at $REV"))"
  echo "# $(wrk --version 2>&1 | head -n1)"
} > "$OUT/env.txt"
cat "$OUT/env.txt" >&2
PFLOW=(); [ "$DO_FLOW" = 1 ] && PFLOW=(--flow "$FLOW")
serve_portcullis() { # data dir [port] [PostgreSQL URL] [Redis URL] -> command line (env + binary)
  local port=${2:-$PORT_P} more=()
  [ -n "${3:-}" ] && more+=("PORTCULLIS_DATABASE_URL=$3")
  [ -n "${4:-}" ] && more+=("PORTCULLIS_REDIS_URL=$4" "PORTCULLIS_REDIS_PREFIX=$REDIS_PREFIX")
  echo env PORTCULLIS_BIND=127.0.0.1:$port PORTCULLIS_BASE_URL=http://127.0.0.1:$port \
    PORTCULLIS_DATA_DIR="$1" PORTCULLIS_RATE_LIMIT_PER_MINUTE=0 PORTCULLIS_API_RATE_LIMIT_PER_MINUTE=0 \
    "${more[@]}" "$BIN" serve
}
# The raw Argon2id verify rate on core 0, at the server's cost, for the
# logins/s ratio. `now` skips the wait for quiet: the measurement taken just
# after the logins follows them at once.
raw_rate() { # label [now]
  [ -n "$ARGON" ] || return 0
  log "raw Argon2id verify rate on core 0 ($1)"
  { if [ "${2:-}" != now ]; then
      q=$("$H/wait_quiet.sh" 25 0.6 30 | tail -n1) || true; echo "# $q"
      echo "FIGURE $1 hash_verify quiet_wait $(echo "$q" | awk '{print $2}')"
    fi
    echo "FIGURE $1 hash_verify load1_before $(cut -d' ' -f1 /proc/loadavg)"
    taskset -c 0 "$ARGON" --seconds 10 --label "$1"; } > "$OUT/$1.txt" 2>&1 || log "argon2 rate failed"
}
log "Portcullis, 1,000 users"
D=$(fresh "$SEED1K" main)
# shellcheck disable=SC2046
"$H/bench_server.sh" --label portcullis --wait-quiet --base "http://127.0.0.1:$PORT_P" \
    --user "$U1" --pass "$P1" -- $(serve_portcullis "$D") > "$OUT/portcullis.txt" 2>&1 \
  || log "portcullis run reported a failure (see portcullis.txt)"
# Its logins on a server of their own, between two measurements of the raw
# rate with no wait between the three: the machine's speed drifts over
# minutes, and the ratio then compares figures of the same minute or two
# (the page runs used to sit between them).
if [ "$DO_FLOW" = 1 ]; then
  D=$(fresh "$SEED1K" logins)
  raw_rate argon2id-raw-before
  log "Portcullis, 1,000 users: logins"
  # shellcheck disable=SC2046
  "$H/bench_server.sh" --label portcullis-logins --no-get --base "http://127.0.0.1:$PORT_P" \
      --flow "$FLOW" -- $(serve_portcullis "$D") > "$OUT/portcullis-logins.txt" 2>&1 \
    || log "portcullis logins run reported a failure (see portcullis-logins.txt)"
  raw_rate argon2id-raw-after now
fi
# The 1M single pass next, in the same quiet as the 1k one it is compared
# with (after the Flask peer and the flood the machine takes minutes to calm).
if [ "$LARGE" = 1 ]; then
  log "Portcullis, 1,000,000 users and 1,000,000 sessions"
  D=$(fresh "$SEED1M" large)
  # shellcheck disable=SC2046
  "$H/bench_server.sh" --label portcullis-1m --wait-quiet --base "http://127.0.0.1:$PORT_P" --ready-timeout 300 \
      --user "$U1" --pass "$P1" "${PFLOW[@]}" -- $(serve_portcullis "$D") > "$OUT/portcullis-1m.txt" 2>&1 \
    || log "1M run reported a failure"
fi

# The same pages on PostgreSQL, and on PostgreSQL with the sessions in Redis.
if [ "$DO_PG" = 1 ]; then
  for part in pg pg-redis; do
    port=$PORT_PG rurl=""
    if [ "$part" = pg-redis ]; then
      [ "$DO_REDIS" = 1 ] || continue
      port=$PORT_PR rurl=$REDIS_URL; flush_redis
    fi
    log "Portcullis, 1,000 users, on PostgreSQL${rurl:+ with the sessions in Redis}"
    D=$(fresh "$SEED1K" "$part"); U=$(fresh_pg "${part//-/_}")
    # shellcheck disable=SC2046
    "$H/bench_server.sh" --label "portcullis-$part" --wait-quiet --base "http://127.0.0.1:$port" \
        --user "$U1" --pass "$P1" -- $(serve_portcullis "$D" "$port" "$U" "$rurl") > "$OUT/portcullis-$part.txt" 2>&1 \
      || log "portcullis-$part run reported a failure (see portcullis-$part.txt)"
  done
fi

if [ "$DO_CEIL" = 1 ]; then
  log "axum ceiling"
  "$H/bench_server.sh" --label axum-ceiling --wait-quiet --base "http://127.0.0.1:$PORT_C" \
      --cookie "sid=ceiling-session-0123456789abcdef" -- "$CEIL" "127.0.0.1:$PORT_C" > "$OUT/axum-ceiling.txt" 2>&1 \
    || log "ceiling run reported a failure"
fi
# GET /api/v1/me with a personal access token, wrk on core 1: 2 s warm-up,
# 8 s measured, 2 threads, 64 connections, as get_bench.sh measures pages
# (and with its figures, under the scenario token_GET_api_me).
api_bench() { # base token label
  local url="$1/api/v1/me" label="$3" code out stat s0 s1 c0 c1
  local hdr=(-H "User-Agent: portcullis-bench/1.0" -H "Authorization: Bearer $2")
  code=$(curl -s -o /dev/null -w '%{http_code}' "${hdr[@]}" "$url")
  if [ "$code" != 200 ]; then echo "FIGURE $label token_GET_api_me precheck_http $code"; return 1; fi
  echo "FIGURE $label token_GET_api_me load1_before $(cut -d' ' -f1 /proc/loadavg)"
  taskset -c 1 wrk -t2 -c64 -d2s --timeout 10s "${hdr[@]}" "$url" > /dev/null
  cpu() { awk -v c="cpu$1" '$1==c {t=0; for(i=2;i<=9;i++) t+=$i; print t-$5-$6, t}' /proc/stat; }
  pct() { echo "$1 $2" | awk '{d=$4-$2; printf "%.0f", (d>0 ? 100*($3-$1)/d : 0)}'; }
  s0=$(cpu 0); c0=$(cpu 1)
  out=$(taskset -c 1 wrk -t2 -c64 -d8s --timeout 10s -s "$H/report.lua" "${hdr[@]}" "$url")
  s1=$(cpu 0); c1=$(cpu 1)
  echo "$out" | sed 's/^/#   /'
  stat=$(echo "$out" | grep '^WRKSTAT' | tail -n1)
  val() { echo "$stat" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
  for m in rps:req_per_s p50_ms:p50_ms p99_ms:p99_ms err_status:non_2xx_3xx; do
    echo "FIGURE $label token_GET_api_me ${m#*:} $(val "${m%%:*}")"
  done
  echo "FIGURE $label token_GET_api_me socket_errors $(( $(val err_connect) + $(val err_read) + $(val err_write) + $(val err_timeout) ))"
  echo "FIGURE $label token_GET_api_me server_cpu0_busy_pct $(pct "$s0" "$s1")"
  echo "FIGURE $label token_GET_api_me wrk_cpu1_busy_pct $(pct "$c0" "$c1")"
  code=$(curl -s -o /dev/null -w '%{http_code}' "${hdr[@]}" "$url")
  [ "$code" = 200 ] || echo "FIGURE $label token_GET_api_me postcheck_http $code"
}
# Alternating rounds: every server up at once on core 0 (an idle one costs next
# to nothing), each scenario measured on one contestant after another, the
# order rotated every round, so that the minutes-long drift of a shared
# machine falls on all alike. The contestants: the ceiling (pages), Portcullis
# with 1,000 users (pages, the API and logins), with --large Portcullis with
# 1,000,000 (pages, the API and logins), Portcullis on PostgreSQL and on
# PostgreSQL with Redis sessions (pages and the API), and the raw Argon2id
# rate (against the logins).
# summarize.py reports the median of the rounds' ratios beside the single
# passes above.
rounds() ( # 1k data dir [1M data dir]; a subshell, whose exit stops the servers
  declare -A BASE COOKIE
  PIDS=() WHO=(portcullis)
  if [ "$DO_CEIL" = 1 ]; then
    setsid taskset -c 0 "$CEIL" "127.0.0.1:$PORT_C" > "$OUT/rounds-axum-ceiling.log" 2>&1 & PIDS+=($!)
    BASE[axum-ceiling]="http://127.0.0.1:$PORT_C" COOKIE[axum-ceiling]="sid=ceiling-session-0123456789abcdef"
    WHO=(axum-ceiling portcullis)
  fi
  # shellcheck disable=SC2046
  setsid taskset -c 0 $(serve_portcullis "$1") > "$OUT/rounds-portcullis.log" 2>&1 & PIDS+=($!)
  BASE[portcullis]="http://127.0.0.1:$PORT_P"
  if [ -n "${2:-}" ]; then
    # shellcheck disable=SC2046
    setsid taskset -c 0 $(serve_portcullis "$2" "$PORT_L") > "$OUT/rounds-portcullis-1m.log" 2>&1 & PIDS+=($!)
    BASE[portcullis-1m]="http://127.0.0.1:$PORT_L"; WHO+=(portcullis-1m)
  fi
  if [ -n "$RPG_URL" ]; then
    # shellcheck disable=SC2046
    setsid taskset -c 0 $(serve_portcullis "$RPG_DIR" "$PORT_PG" "$RPG_URL") > "$OUT/rounds-portcullis-pg.log" 2>&1 & PIDS+=($!)
    BASE[portcullis-pg]="http://127.0.0.1:$PORT_PG"; WHO+=(portcullis-pg)
  fi
  if [ -n "$RPR_URL" ]; then
    # shellcheck disable=SC2046
    setsid taskset -c 0 $(serve_portcullis "$RPR_DIR" "$PORT_PR" "$RPR_URL" "$REDIS_URL") > "$OUT/rounds-portcullis-pg-redis.log" 2>&1 & PIDS+=($!)
    BASE[portcullis-pg-redis]="http://127.0.0.1:$PORT_PR"; WHO+=(portcullis-pg-redis)
  fi
  if [ "$DO_FLOW" = 1 ] && [ -n "$ARGON" ]; then WHO+=(argon2id-raw); fi
  trap 'for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null; done; wait' EXIT
  for w in "${!BASE[@]}"; do
    for _ in $(seq 1 1500); do
      [ "$(curl -s -o /dev/null -w '%{http_code}' "${BASE[$w]}/login")" = 200 ] && break; sleep 0.2
    done
    if [ -z "${COOKIE[$w]:-}" ]; then
      COOKIE[$w]=$(taskset -c 1 "$H/.venv/bin/python" "$H/login_cookie.py" "${BASE[$w]}" "$U1" "$P1") || exit 1
    fi
  done
  declare -A TOKEN
  if [ "$DO_API" = 1 ]; then
    for w in "${!BASE[@]}"; do
      [ "$w" = axum-ceiling ] && continue
      TOKEN[$w]=$(PYTHONPATH="$H" taskset -c 1 "$H/.venv/bin/python" "$HERE/api_token.py" "${BASE[$w]}" "$U1" "$P1") || exit 1
    done
  fi
  for r in $(seq 1 "$ROUNDS"); do
    n=${#WHO[@]}; k=$(( (r - 1) % n )); order=("${WHO[@]:k}" "${WHO[@]:0:k}")
    for scen in login dashboard api flow; do
      for w in "${order[@]}"; do
        label="round$r-$w"
        case "$scen:$w" in
          flow:axum-ceiling | login:argon2id-raw | dashboard:argon2id-raw | api:axum-ceiling | api:argon2id-raw \
            | flow:portcullis-pg*) ;;
          api:*) [ "$DO_API" = 1 ] || continue
            api_bench "${BASE[$w]}" "${TOKEN[$w]}" "$label" || exit 1 ;;
          flow:argon2id-raw) taskset -c 0 "$ARGON" --seconds 10 --label "$label" || exit 1 ;;
          flow:*) [ "$DO_FLOW" = 1 ] || continue
            # shellcheck disable=SC2086
            taskset -c 1 "$H/.venv/bin/python" "$H/login_flow.py" "${BASE[$w]}" $RFLOW --label "$label" || exit 1 ;;
          *) SCENARIOS=$scen DURATION=8 WARMUP=2 WRK_CPU=1 SERVER_CPU=0 \
               "$H/get_bench.sh" "${BASE[$w]}" "${COOKIE[$w]}" "$label" || exit 1 ;;
        esac
      done
    done
  done
  # One-second dashboard windows, the 1k and the 1M server in turn: a p99
  # over seconds or minutes is set by the few moments the machine stalls
  # (a pause of tens of ms lands in one second of twenty, on either server
  # alike), the median of twenty one-second p99s by the server.
  [ -n "${2:-}" ] || return 0
  for i in $(seq 1 "$WINDOWS"); do
    pair=(portcullis portcullis-1m); [ $((i % 2)) = 0 ] && pair=(portcullis-1m portcullis)
    for w in "${pair[@]}"; do
      stat=$(taskset -c 1 wrk -t2 -c64 -d1s --timeout 10s -s "$H/report.lua" -H "User-Agent: portcullis-bench/1.0" \
               -H "Cookie: ${COOKIE[$w]}" "${BASE[$w]}/dashboard" | grep '^WRKSTAT' | tail -n1) || exit 1
      echo "# window $i $w: $stat"
      for m in rps:req_per_s p99_ms:p99_ms err_status:non_2xx_3xx; do
        echo "FIGURE window$i-$w auth_GET_dashboard ${m#*:} $(echo "$stat" | tr ' ' '\n' | sed -n "s/^${m%%:*}=//p")"
      done
    done
  done
)
if [ "$ROUNDS" -gt 0 ]; then
  log "alternating rounds: $ROUNDS (then, with --large, $WINDOWS one-second windows)"
  LD=""; [ "$LARGE" = 1 ] && LD=$(fresh "$SEED1M" rounds)
  RPG_DIR="" RPG_URL="" RPR_DIR="" RPR_URL=""
  if [ "$DO_PG" = 1 ]; then RPG_DIR=$(fresh "$SEED1K" rounds-pg); RPG_URL=$(fresh_pg rounds_pg); fi
  if [ "$DO_REDIS" = 1 ]; then RPR_DIR=$(fresh "$SEED1K" rounds-pg-redis); RPR_URL=$(fresh_pg rounds_pg_redis); flush_redis; fi
  rounds "$(fresh "$SEED1K" rounds)" $LD > "$OUT/rounds.txt" 2>&1 || log "alternating rounds reported a failure (see rounds.txt)"
fi
if [ "$DO_FLASK" = 1 ]; then
  log "Flask peer (gunicorn, 5 sync workers)"
  FFLOW=(); [ "$DO_FLOW" = 1 ] && FFLOW=(--flow "--users 50 --concurrency 16 --seconds 20")
  BIND="127.0.0.1:$PORT_F" "$H/bench_server.sh" --label flask-sync --wait-quiet --base "http://127.0.0.1:$PORT_F" \
      "${FFLOW[@]}" -- "$H/peers/flask_seed/run.sh" > "$OUT/flask-sync.txt" 2>&1 \
    || log "flask run reported a failure"
fi

if [ "$DO_FLOOD" = 1 ]; then
  log "login flood (64 connections of wrong passwords) while measuring /dashboard"
  D=$(fresh "$SEED1K" flood)
  FQ=(); [ "$QBUDGET" -gt 0 ] && FQ=(--wait-quiet)
  # shellcheck disable=SC2046
  "$HERE/flood.sh" "$H" --label portcullis-flood --base "http://127.0.0.1:$PORT_P" --user "$U1" --pass "$P1" \
      "${FQ[@]}" -- $(serve_portcullis "$D") > "$OUT/flood.txt" 2>&1 || log "flood run reported a failure"
  log "account-page flood (signed-in users, wrong current passwords) while another client logs in"
  D=$(fresh "$SEED1K" fair)
  # shellcheck disable=SC2046
  "$HERE/fairness.sh" "$H" --label portcullis-fair --base "http://127.0.0.1:$PORT_P" \
      -- $(serve_portcullis "$D") > "$OUT/fairness.txt" 2>&1 || log "fairness run reported a failure"
  grep '^# another client' "$OUT/fairness.txt" >&2 || true
fi

# ---- the table -------------------------------------------------------------------------------
cat "$OUT"/*.txt | grep '^FIGURE' > "$OUT/figures.txt" || true
WORKERS=${PORTCULLIS_HASH_WORKERS:-$(taskset -c 0 nproc)}
MKIB=${PORTCULLIS_ARGON2_MEMORY_KIB:-19456}
HASH_MIB=$(awk -v w="$WORKERS" -v m="$MKIB" 'BEGIN{printf "%.1f", w*m/1024}')
{ cat "$OUT/env.txt"
  echo "# command: bench/run.sh $ORIG_ARGS"
  echo
  python3 "$HERE/summarize.py" "$OUT/figures.txt" --hash-mib "$HASH_MIB"
  echo; echo "All figures:"; "$H/table.py" "$OUT/figures.txt"
} > "$OUT/table.txt"
rm -rf "$OUT"/data-*
cat "$OUT/table.txt"
echo "outputs in $OUT" >&2
