#!/usr/bin/env bash
# Property-based tests of the JSON API against its own OpenAPI 3.1 document,
# with Schemathesis (from PyPI, in a venv), over a real socket. Schemathesis
# 4 reads OpenAPI 3.1 as it is (3.x wanted --experimental=openapi-3.1).
#
#   bash tests/schemathesis.sh [path/to/portcullis]
#
# For each database (SQLite in a fresh data directory; PostgreSQL too, in a
# schema of its own, when PORTCULLIS_TEST_POSTGRES_URL is set): starts the
# binary (argument, else $PORTCULLIS_BIN, else target/debug/portcullis) on a
# free loopback port, creates an administrator with the CLI, signs in
# through the login form, makes an `admin` token on /account/tokens and
# reads it off the page, then lets Schemathesis generate requests for every
# operation of /api/openapi.json with that token. Every check runs
# (exceptions in tests/schemathesis.toml, each with its reason), with one
# worker: Hypothesis parsing lambdas from two threads trips "AST constructor
# recursion depth mismatch" on some CPython 3.11 releases. The JUnit reports
# go to $SCHEMATHESIS_REPORT_DIR/<database>/ (default target/schemathesis).
# Exits non-zero when a check fails. With PORTCULLIS_TEST_REQUIRE_SERVICES
# set (as CI sets it), a missing PostgreSQL URL fails the run.
#
# Knobs: SCHEMATHESIS_MAX_EXAMPLES (default 100 per operation and phase),
# SCHEMATHESIS_SEED (default fixed, for runs that repeat), SCHEMATHESIS_VENV,
# SCHEMATHESIS_TIMEOUT (seconds for one database's run, default 150).
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
START="$(pwd)"
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

SCHEMATHESIS_VERSION="4.32.5"
HYPOTHESIS_VERSION="6.170.27"
VENV="${SCHEMATHESIS_VENV:-/tmp/portcullis-st-venv}"
BIN="${1:-${PORTCULLIS_BIN:-target/debug/portcullis}}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
SEED="${SCHEMATHESIS_SEED:-20261206}"
REPORT_DIR="${SCHEMATHESIS_REPORT_DIR:-$ROOT/target/schemathesis}"
PASSWORD="schemathesis-pass-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

case "$BIN" in /*) ;; *) BIN="$START/$BIN" ;; esac
case "$REPORT_DIR" in /*) ;; *) REPORT_DIR="$START/$REPORT_DIR" ;; esac
[ -x "$BIN" ] || { echo "schemathesis: no portcullis binary at $BIN (build it with cargo build --bin portcullis)"; exit 1; }

echo "-- schemathesis $SCHEMATHESIS_VERSION in $VENV"
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION" \
    || ! "$VENV/bin/python" -c "import hypothesis, sys; sys.exit(hypothesis.__version__ != '$HYPOTHESIS_VERSION')" 2>/dev/null; then
    python3 -m venv "$VENV" 2>/dev/null || {
        apt-get update -qq && apt-get install -y -qq python3-venv
        python3 -m venv "$VENV"
    }
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" "hypothesis==$HYPOTHESIS_VERSION"
fi

umask 077
WORK="$(mktemp -d /tmp/portcullis-st.XXXXXX)"
SERVER_PID=""
PG_SCHEMA=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    stop_server
    if [ -n "$PG_SCHEMA" ]; then
        psql -q -X "$PORTCULLIS_TEST_POSTGRES_URL" -c "DROP SCHEMA IF EXISTS \"$PG_SCHEMA\" CASCADE" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

# Generous limits: a run is thousands of requests from one address and one token.
export PORTCULLIS_RATE_LIMIT_PER_MINUTE=100000
export PORTCULLIS_API_RATE_LIMIT_PER_MINUTE=10000000
export PORTCULLIS_MAIL_RATE_LIMIT_PER_HOUR=0
# A cheaper password hash: a run signs in once, and the CLI hashes twice.
export PORTCULLIS_ARGON2_MEMORY_KIB=8192 PORTCULLIS_ARGON2_ITERATIONS=1
export PORTCULLIS_LOG="${PORTCULLIS_LOG:-warn}"
unset PORTCULLIS_DATABASE_URL PORTCULLIS_REDIS_URL PORTCULLIS_CONFIG

# fuzz NAME [DATABASE_URL]: one server, one token, one Schemathesis run;
# sets FUZZ_STATUS and FUZZ_SUMMARY.
fuzz() {
    local name="$1" database="${2:-}" dir="$WORK/$1" report="$REPORT_DIR/$1"
    mkdir -p "$dir/data" "$report"
    local port base
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    base="http://127.0.0.1:$port"
    export PORTCULLIS_BIND="127.0.0.1:$port" PORTCULLIS_BASE_URL="$base" PORTCULLIS_DATA_DIR="$dir/data"
    if [ -n "$database" ]; then export PORTCULLIS_DATABASE_URL="$database"; else unset PORTCULLIS_DATABASE_URL; fi

    echo "-- [$name] administrator and server on $base"
    printf '%s\n' "$PASSWORD" | "$BIN" user create --username fuzzadmin --email fuzzadmin@example.com \
        --admin --verified --password-stdin
    "$BIN" user set-admin fuzzadmin
    (cd "$dir" && exec "$BIN" serve) >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$base/api/openapi.json" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "schemathesis: the server stopped"; cat "$dir/server.log"; exit 1; }
        sleep 0.2
    done
    curl -fsS -o /dev/null "$base/api/openapi.json" || { echo "schemathesis: no answer"; cat "$dir/server.log"; exit 1; }

    # A form's CSRF token, from its page fetched with the cookie jar.
    local jar="$dir/cookies.txt" csrf code token
    csrf_of() {
        curl -fsS -b "$jar" -c "$jar" "$base$1" | grep -o 'name="csrf_token" value="[^"]*"' | head -n1 \
            | sed 's/.*value="//; s/"$//'
    }
    post_form() {
        local path="$1"; shift
        curl -sS -o /dev/null -w '%{http_code}' -b "$jar" -c "$jar" -H "Origin: $base" "$@" "$base$path"
    }
    echo "-- [$name] signing in and making an admin token"
    csrf="$(csrf_of /login)"
    [ -n "$csrf" ] || { echo "schemathesis: no CSRF token on /login"; exit 1; }
    code="$(post_form /login --data-urlencode "csrf_token=$csrf" --data-urlencode "username=fuzzadmin" \
        --data-urlencode "password=$PASSWORD")"
    [ "$code" = 303 ] || { echo "schemathesis: login answered $code"; exit 1; }
    csrf="$(csrf_of /account/tokens)"
    [ -n "$csrf" ] || { echo "schemathesis: no CSRF token on /account/tokens (not signed in?)"; exit 1; }
    code="$(post_form /account/tokens --data-urlencode "csrf_token=$csrf" --data-urlencode "name=schemathesis" \
        --data-urlencode "scope=admin" --data-urlencode "expires_in_days=30")"
    [ "$code" = 303 ] || { echo "schemathesis: the token form answered $code"; exit 1; }
    token="$(curl -fsS -b "$jar" -c "$jar" "$base/account/tokens" | grep -oE 'pcat_[A-Za-z0-9_]+' | head -n1 || true)"
    [ -n "$token" ] || { echo "schemathesis: no token on /account/tokens"; exit 1; }
    code="$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$base/api/v1/me")"
    [ "$code" = 200 ] || { echo "schemathesis: the new token got $code from /api/v1/me"; exit 1; }
    # A few posts and a second user, so that lists have pages and ids exist.
    for i in 1 2 3; do
        curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            -d "{\"title\":\"Seed $i\",\"content\":\"Seed post $i\"}" "$base/api/v1/posts"
    done
    printf '%s\n' "$PASSWORD" | "$BIN" user create --username other --email other@example.com --password-stdin >/dev/null

    echo "-- [$name] schemathesis run: every operation, every check, $MAX_EXAMPLES examples, seed $SEED"
    FUZZ_STATUS=0
    timeout --signal=INT --kill-after=30 "${SCHEMATHESIS_TIMEOUT:-150}" \
        "$VENV/bin/schemathesis" --config-file "$ROOT/tests/schemathesis.toml" run "$base/api/openapi.json" \
        --header "Authorization: Bearer $token" \
        --checks all \
        --max-examples "$MAX_EXAMPLES" \
        --seed "$SEED" \
        --workers 1 \
        --request-timeout 10 \
        --generation-database none \
        --no-color \
        --report junit --report-junit-path "$report/junit.xml" \
        >"$report/output.txt" 2>&1 || FUZZ_STATUS=$?
    cat "$report/output.txt"
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "schemathesis: the server died during the run"
        FUZZ_STATUS=1
    fi
    stop_server
    if grep -qE 'panicked|ERROR' "$dir/server.log"; then
        echo "-- [$name] errors in the server's log:"
        grep -E 'panicked|ERROR' "$dir/server.log" | head -n 20
    fi
    FUZZ_SUMMARY="$name: $(summarize "$report/junit.xml" "$report/output.txt" "$FUZZ_STATUS")"
}

# One line for a run, from its JUnit report and its own count of test cases.
summarize() {
    python3 - "$@" <<'EOF'
import re, sys, xml.etree.ElementTree as ET
path, output, status = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    text = open(output, encoding="utf-8", errors="replace").read()
except OSError:
    text = ""
generated = re.search(r"(\d+) generated", text)
try:
    root = ET.parse(path).getroot()
except Exception as e:
    print(f"no report ({e}); exit {status}")
    sys.exit(0)
ops = passed = failed = errored = skipped = 0
stateful = "not run"
for c in root.iter("testcase"):
    outcome = "failed" if c.find("failure") is not None else "errored" if c.find("error") is not None \
        else "skipped" if c.find("skipped") is not None else "passed"
    if c.get("name") == "Stateful tests":
        stateful = outcome
        continue
    ops += 1
    passed += outcome == "passed"
    failed += outcome == "failed"
    errored += outcome == "errored"
    skipped += outcome == "skipped"
cases = generated.group(1) if generated else "?"
print(f"{ops} operations, {cases} test cases, all checks: {passed} passed, {failed} failed, "
      f"{errored} errored, {skipped} skipped; stateful {stateful}; exit {status}")
EOF
}

rm -rf "$REPORT_DIR/sqlite" "$REPORT_DIR/postgresql"
status=0
summaries=()
fuzz sqlite
summaries+=("$FUZZ_SUMMARY")
[ "$FUZZ_STATUS" = 0 ] || status=1

pg="${PORTCULLIS_TEST_POSTGRES_URL:-}"
if [ -n "$pg" ]; then
    command -v psql >/dev/null || { echo "schemathesis: psql is needed for the PostgreSQL run"; exit 1; }
    PG_SCHEMA="schemathesis_$$_$(date +%s)"
    psql -q -X "$pg" -c "CREATE SCHEMA \"$PG_SCHEMA\"" >/dev/null
    sep='?'; case "$pg" in *\?*) sep='&' ;; esac
    fuzz postgresql "$pg${sep}options=-c%20search_path%3D$PG_SCHEMA"
    summaries+=("$FUZZ_SUMMARY")
    [ "$FUZZ_STATUS" = 0 ] || status=1
elif [ -n "${PORTCULLIS_TEST_REQUIRE_SERVICES:-}" ] && [ "${PORTCULLIS_TEST_REQUIRE_SERVICES}" != 0 ]; then
    echo "schemathesis: PORTCULLIS_TEST_REQUIRE_SERVICES is set but PORTCULLIS_TEST_POSTGRES_URL is not"
    summaries+=("postgresql: not run")
    status=1
else
    summaries+=("postgresql: not run (set PORTCULLIS_TEST_POSTGRES_URL)")
fi

joined="$(printf '%s; ' "${summaries[@]}")"
echo "schemathesis: ${joined%; } (reports in $REPORT_DIR)"
exit "$status"
