#!/usr/bin/env bash
# The administrators' overview (/admin) at 1,000,000 users.
#
# Makes a fresh data dir, runs `portcullis migrate`, creates an administrator
# with `portcullis user create --admin`, then fills the database with SQL:
# 1,000,000 users (80 % verified, 10 administrators), 1,000,000 sessions
# (85 % live, the rest idle or expired), 2,000,000 audit events over the last
# 40 days (50 % login.success, 30 % login.failure, 2 % login.lockout, the
# rest other kinds), 50,000 two_factor rows (45,000 confirmed), 30,000
# passkeys of 20,000 users, and 20 outbox rows (5 waiting).
#
# Then (a) times each SQL statement of crates/store/src/overview.rs exactly
# as the store issues it (with its $1/$2 parameters; on PostgreSQL as a
# prepared statement, as sqlx does), after one warm-up run, and shows its
# plan (EXPLAIN QUERY PLAN / EXPLAIN ANALYZE); and (b) starts `portcullis
# serve` on the data, signs the administrator in with curl and times
# GET /admin end to end. One table of medians at the end.
#
# Usage: bench/overview_1m.sh [--bin PATH] [--postgres URL] [--runs N] [--http-runs N] [--port P]
#   --bin PATH       the binary (default target/release/portcullis)
#   --postgres URL   a server URL such as postgres://postgres@127.0.0.1:5432/ :
#                    the database portcullis_overview is created on it (dropped
#                    first if it exists) and dropped at the end
#   --runs N         timed runs of each statement (default 7)
#   --http-runs N    timed GET /admin requests (default 10)
#   --users N        users, and sessions; twice as many audit events (default 1000000)
#   --keep           keep the data dir (and the PostgreSQL database)
# Needs: python3, curl; psql for --postgres. On PostgreSQL the tables are
# VACUUM ANALYZEd after the fill (the state autovacuum keeps them in).
set -euo pipefail

bin=target/release/portcullis
pg=""
runs=7
http_runs=10
port=18089
keep=0
users=1000000
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --postgres) pg=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --http-runs) http_runs=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
bin=$(realpath "$bin")
here=$(cd "$(dirname "$0")" && pwd)

work=$(mktemp -d)
db_name=portcullis_overview
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ "$keep" = 1 ]; then
    echo "kept $work" >&2
  else
    rm -rf "$work"
    if [ -n "$pg" ]; then psql -X -q "${pg%/}/postgres" -c "DROP DATABASE IF EXISTS $db_name" >/dev/null 2>&1 || true; fi
  fi
}
trap cleanup EXIT

export PORTCULLIS_DATA_DIR="$work/data" PORTCULLIS_LOG=warn
export PORTCULLIS_BIND="127.0.0.1:$port" PORTCULLIS_BASE_URL="http://127.0.0.1:$port"
# One sign-in; a new device's mail goes to the data dir's outbox.
export PORTCULLIS_RATE_LIMIT_PER_MINUTE=0
if [ -n "$pg" ]; then
  url="${pg%/}/$db_name"
  psql -X -q "${pg%/}/postgres" -c "DROP DATABASE IF EXISTS $db_name" -c "CREATE DATABASE $db_name"
  export PORTCULLIS_DATABASE_URL="$url"
  backend=postgres
else
  url="$work/data/portcullis.db"
  backend=sqlite
fi

echo "# $backend, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $("$bin" --version)" >&2
"$bin" migrate
password='overview-bench-password'
printf '%s\n' "$password" | "$bin" user create --username overview_admin --email overview_admin@example.com \
  --admin --verified --password-stdin >/dev/null

# (a) fill, plans and statement times; the results go to $work/sql.tsv.
python3 - "$backend" "$url" "$runs" "$work/sql.tsv" "$users" <<'PY'
import os, re, sqlite3, statistics, subprocess, sys, time

backend, url, runs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
DAY = 86_400_000
now = int(time.time() * 1000)
first_day = now // DAY - 29          # the overview's 30 days, today included
since = first_day * DAY
idle_cutoff = now - 2 * 3_600_000    # PORTCULLIS_SESSION_IDLE_TIMEOUT's default
N = int(sys.argv[5])

def series(lo, hi):
    if backend == "sqlite":
        return f"(WITH RECURSIVE s(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM s WHERE i < {hi}) SELECT i FROM s) AS s"
    return f"generate_series({lo}::bigint, {hi}) AS s(i)"

# User 1 is the administrator made by `portcullis user create`.
fill = [
    ("users", f"""INSERT INTO users (id, username, username_normalized, email, email_normalized, password_hash,
        is_admin, email_verified, security_stamp, created_at, updated_at, last_login_at)
        SELECT i, 'user' || i, 'user' || i, 'user' || i || '@example.com', 'user' || i || '@example.com',
        '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g',
        CASE WHEN i % 100000 = 0 THEN 1 ELSE 0 END, CASE WHEN i % 10 < 8 THEN 1 ELSE 0 END,
        'stamp' || i, {now} - (i % 700) * {DAY}, {now} - (i % 700) * {DAY}, {now} - (i % 40) * {DAY}
        FROM {series(2, N)}"""),
    ("sessions", f"""INSERT INTO sessions (id, secret_hash, user_id, security_stamp, created_at, last_seen_at,
        expires_at, remember, ip, user_agent)
        SELECT 'sess' || i, 'hash' || i, 2 + (i * 7) % {N - 1}, 'stamp',
        {now} - {DAY},
        CASE WHEN i % 20 < 17 THEN {now} - i % 3600000
             WHEN i % 20 < 19 THEN {now} - 3 * 3600000 - i % {DAY}
             ELSE {now} - 2 * {DAY} END,
        CASE WHEN i % 20 < 19 THEN {now} + 20 * {DAY} - i % {DAY} ELSE {now} - {DAY} END,
        i % 2, '198.51.100.' || (i % 250), 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
        FROM {series(1, N)}"""),
    ("audit_events", f"""INSERT INTO audit_events (at, kind, user_id, ip, user_agent)
        SELECT {now - 40 * DAY} + i * {20 * DAY // N},
        CASE WHEN (i * 37) % 100 < 50 THEN 'login.success'
             WHEN (i * 37) % 100 < 80 THEN 'login.failure'
             WHEN (i * 37) % 100 < 82 THEN 'login.lockout'
             WHEN (i * 37) % 100 < 90 THEN 'session.revoked'
             WHEN (i * 37) % 100 < 95 THEN 'password.changed'
             ELSE 'email.verified' END,
        2 + (i * 13) % {N - 1}, '198.51.100.' || (i % 250), 'Mozilla/5.0'
        FROM {series(1, 2 * N)}"""),
    ("two_factor", f"""INSERT INTO two_factor (user_id, secret, enabled_at, last_step, pending_secret, pending_at)
        SELECT i * 20, CASE WHEN i % 10 = 0 THEN NULL ELSE 'sealed-secret-' || i END,
        CASE WHEN i % 10 = 0 THEN NULL ELSE {now} END, NULL,
        CASE WHEN i % 10 = 0 THEN 'sealed-pending-' || i ELSE NULL END,
        CASE WHEN i % 10 = 0 THEN {now} ELSE NULL END
        FROM {series(1, N // 20)}"""),
    ("passkeys", f"""INSERT INTO passkeys (user_id, credential_id, name, credential, created_at)
        SELECT 3 + (i % {N // 50}) * 37, 'credential-' || i, 'Key ' || i, '{{}}', {now}
        FROM {series(1, 3 * N // 100)}"""),
    ("outbox", f"""INSERT INTO outbox (recipient, subject, sealed_body, created_at, attempts, next_attempt_at, sent_at)
        SELECT 'user' || i || '@example.com', 'Subject', 'sealed', {now} - i * 60000, 0,
        {now} + 7 * {DAY}, CASE WHEN i <= 5 THEN NULL ELSE {now} END
        FROM {series(1, 20)}"""),
]

# Copied from crates/store/src/overview.rs (DAY_MS written out by format!).
daily = ("WITH RECURSIVE days(d) AS ( "
         "SELECT $2 / 86400000 "
         "UNION ALL SELECT d + 1 FROM days "
         "WHERE d < (SELECT MAX(at) FROM audit_events WHERE kind = $1) / 86400000 AND d < $2 / 86400000 + 366) "
         "SELECT d AS day, (SELECT COUNT(*) FROM audit_events "
         "WHERE kind = $1 AND at >= d * 86400000 AND at < (d + 1) * 86400000 AND at >= $2) AS n "
         "FROM days")
user_counts = ("SELECT (SELECT COUNT(*) FROM users) AS total, "
               "(SELECT COUNT(*) FROM users WHERE email_verified = 1) AS verified, "
               "(SELECT COUNT(*) FROM users WHERE is_admin = 1) AS admins, "
               "(SELECT COUNT(*) FROM two_factor WHERE secret IS NOT NULL) AS two_factor, "
               "(SELECT COUNT(*) FROM (SELECT DISTINCT user_id FROM passkeys) AS p) AS passkeys")
active = "SELECT COUNT(*) AS n FROM sessions WHERE last_seen_at > $1 AND expires_at > $2"
outbox = "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox WHERE sent_at IS NULL"
statements = [
    ("daily_events login.success", daily, ["login.success", since]),
    ("daily_events login.failure", daily, ["login.failure", since]),
    ("daily_events login.lockout", daily, ["login.lockout", since]),
    ("user_counts", user_counts, []),
    ("active_sessions", active, [idle_cutoff, now]),
    ("outbox_health", outbox, []),
]
# The parts of user_counts, to see where its time goes.
parts = [(f"  user_counts: {name}", sql, []) for name, sql in [
    ("total", "SELECT COUNT(*) FROM users"),
    ("verified", "SELECT COUNT(*) FROM users WHERE email_verified = 1"),
    ("admins", "SELECT COUNT(*) FROM users WHERE is_admin = 1"),
    ("two_factor", "SELECT COUNT(*) FROM two_factor WHERE secret IS NOT NULL"),
    ("passkeys", "SELECT COUNT(*) FROM (SELECT DISTINCT user_id FROM passkeys) AS p"),
]]
everything = statements + parts

rows = []
if backend == "sqlite":
    db = sqlite3.connect(url, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("PRAGMA cache_size = -262144")
    for table, sql in fill:
        t = time.perf_counter()
        db.execute("BEGIN")
        db.execute(sql)
        db.execute("COMMIT")
        print(f"filled {table} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    # A new connection as the store opens one (its pragmas, SQLite's default cache).
    db = sqlite3.connect(url, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    print(f"SQLite {sqlite3.sqlite_version} (Python's; the binary bundles its own)", file=sys.stderr)
    for name, sql, params in everything:
        binds = {str(k + 1): v for k, v in enumerate(params)}
        plan = db.execute("EXPLAIN QUERY PLAN " + sql, binds).fetchall()
        print(f"\n-- {name}\n{sql}", file=sys.stderr)
        for _, parent, _, detail in plan:
            print(f"   {parent:>3} {detail}", file=sys.stderr)
        result = db.execute(sql, binds).fetchall()     # warm-up
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            db.execute(sql, binds).fetchall()
            times.append((time.perf_counter() - t) * 1000)
        rows.append((name, statistics.median(times), min(times), max(times), result))
else:
    def psql(script):
        done = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-f", "-"], input=script,
                              text=True, capture_output=True)
        if done.returncode != 0:
            sys.exit(f"psql failed: {done.stderr}")
        return done.stdout
    for table, sql in fill:
        t = time.perf_counter()
        psql(sql + ";")
        print(f"filled {table} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    psql("SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT MAX(id) FROM users));"
         "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), (SELECT MAX(id) FROM audit_events));"
         "SELECT setval(pg_get_serial_sequence('passkeys', 'id'), (SELECT MAX(id) FROM passkeys));"
         "SELECT setval(pg_get_serial_sequence('outbox', 'id'), (SELECT MAX(id) FROM outbox));")
    t = time.perf_counter()
    psql("VACUUM ANALYZE;")
    print(f"VACUUM ANALYZE in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    print(psql("SELECT version();").strip(), file=sys.stderr)

    def lit(v):
        return str(v) if isinstance(v, int) else "'" + v + "'"

    def types(params):
        return "(" + ", ".join("bigint" if isinstance(v, int) else "text" for v in params) + ")" if params else ""

    def args(params):
        return "(" + ", ".join(lit(v) for v in params) + ")" if params else ""

    for name, sql, params in everything:
        # Prepared and executed as sqlx does; past five executions the server
        # may settle on a generic plan, so the plan shown is that of a later run.
        prepare = f"PREPARE s{types(params)} AS {sql};\n"
        run = f"EXECUTE s{args(params)};\n"
        text = psql(prepare + "\\o /dev/null\n" + run * 6 + "\\timing on\n" + run * runs)
        times = [float(x) for x in re.findall(r"^Time: ([0-9.]+) ms", text, re.M)]
        plan = psql(prepare + "\\o /dev/null\n" + run * 6 + "\\o\n" + "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + run)
        result = psql(prepare + "\\pset tuples_only on\n\\pset format unaligned\n\\pset fieldsep ' '\n" + run).split()
        print(f"\n-- {name}\n{sql}\n{plan}", file=sys.stderr)
        rows.append((name, statistics.median(times), min(times), max(times),
                     " ".join(result) if len(result) <= 5 else f"{len(result) // 2} rows"))

with open(out, "w") as f:
    for name, med, lo, hi, result in rows:
        if isinstance(result, list):
            result = result[0] if len(result) == 1 else f"{len(result)} rows"
        f.write(f"{name}\t{med:.2f}\t{lo:.2f}\t{hi:.2f}\t{result}\n")
PY

# (b) GET /admin over HTTP.
"$bin" serve >"$work/serve.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/login" || true)
  [ "$code" = 200 ] && break
  sleep 0.2
done
[ "$code" = 200 ] || { echo "server not ready (GET /login -> $code)" >&2; cat "$work/serve.log" >&2; exit 1; }
jar="$work/cookies"
token=$(curl -s -c "$jar" -b "$jar" "$base/login" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -1)
[ -n "$token" ] || { echo "no csrf token on /login" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -c "$jar" -b "$jar" --data-urlencode "csrf_token=$token" \
  --data-urlencode "username=overview_admin" --data-urlencode "password=$password" "$base/login")
[ "$code" = 303 ] || { echo "sign-in answered $code" >&2; exit 1; }
# The first request also waits for the start-up purge of dead sessions.
curl -s -b "$jar" -o "$work/admin.html" "$base/admin"
grep -q "id=\"count-users\">$users<" "$work/admin.html" \
  || { echo "GET /admin does not show $users users" >&2; grep -o 'id="count-[a-z-]*">[^<]*' "$work/admin.html" >&2 || true; exit 1; }
grep -o 'id="\(count\|outbox\)-[a-z-]*">[^<]*' "$work/admin.html" | sed 's/id="//; s/">/ = /' >&2
: >"$work/http"
for _ in $(seq 1 "$http_runs"); do
  curl -s -b "$jar" -o /dev/null -w '%{http_code} %{time_total}\n' "$base/admin" >>"$work/http"
done
if awk '$1 != 200 {bad = 1} END {exit !bad}' "$work/http"; then echo "GET /admin failed:" >&2; cat "$work/http" >&2; exit 1; fi

echo
echo "$backend, $users users; medians of $runs runs (statements) and $http_runs requests (HTTP), ms"
printf '%-34s %10s %10s %10s  %s\n' statement median min max result
while IFS=$'\t' read -r name med lo hi result; do
  printf '%-34s %10s %10s %10s  %s\n' "$name" "$med" "$lo" "$hi" "$result"
done <"$work/sql.tsv"
sort -n -k2 "$work/http" | awk -v n="$http_runs" '{t[NR] = $2 * 1000} END {
  m = (n % 2) ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2;
  printf "%-34s %10.2f %10.2f %10.2f  %s\n", "GET /admin (HTTP, end to end)", m, t[1], t[n], "200"}'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
