#!/usr/bin/env bash
# The metrics listener against Prometheus' own checker: starts the binary
# with PORTCULLIS_METRICS_BIND on a fresh data directory, signs in once
# right and once wrong over HTTP, scrapes /metrics, checks that the
# counters moved, and runs `promtool check metrics` on the scrape and
# `promtool check rules` / `promtool test rules` on docs/alerts.yml.
#
#   bash tests/promtool.sh [path/to/portcullis]
#
# The binary is $1, else $PORTCULLIS_BIN, else target/debug/portcullis.
# promtool comes from Debian's `prometheus` package, installed when missing.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true

bin="${1:-${PORTCULLIS_BIN:-target/debug/portcullis}}"
[[ "$bin" == */* ]] || bin="./$bin"
[ -x "$bin" ] || { echo "promtool.sh: no executable at $bin" >&2; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
cd "$(dirname "$0")/.."
root="$PWD"
# Only the settings below: none inherited, and no ./portcullis.toml read.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^PORTCULLIS_' || true)

fail() { echo "promtool.sh: $*" >&2; exit 1; }

if ! command -v promtool >/dev/null; then
    echo "installing promtool (Debian package prometheus)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >/dev/null \
        || fail "cannot install promtool"
fi
command -v curl >/dev/null || fail "curl is needed"

umask 077
work="$(mktemp -d)"
pid=""
stop() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap stop EXIT

# A port nothing listens on (the server's start is retried if another
# process takes it first).
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

password="correct horse battery staple"
export PORTCULLIS_DATA_DIR="$work/data"
export PORTCULLIS_LOG=warn
export PORTCULLIS_NEW_DEVICE_MAIL=false
mkdir "$PORTCULLIS_DATA_DIR"
cd "$work"

started=""
for attempt in 1 2 3; do
    port="$(free_port)" || fail "no free port"
    mport="$(free_port)" || fail "no free port"
    [ "$port" != "$mport" ] || continue
    export PORTCULLIS_BIND="127.0.0.1:$port"
    export PORTCULLIS_METRICS_BIND="127.0.0.1:$mport"
    export PORTCULLIS_BASE_URL="http://127.0.0.1:$port"
    if [ "$attempt" = 1 ]; then
        # The user exists before the server starts (the command applies the
        # migrations itself).
        printf '%s\n' "$password" | "$bin" user create --username alice --email alice@example.com --password-stdin \
            || fail "user create failed"
    fi
    "$bin" serve >"$work/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null \
            && curl -fsS -o /dev/null "http://127.0.0.1:$mport/metrics" 2>/dev/null; then
            started=1
            break
        fi
        sleep 0.1
    done
    [ -n "$started" ] && break
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
    echo "the server did not start (attempt $attempt):" >&2
    cat "$work/server.log" >&2
done
[ -n "$started" ] || fail "the server did not start"
base="$PORTCULLIS_BASE_URL"
echo "serving $base, metrics on 127.0.0.1:$mport"

# One login attempt: the form's CSRF token and cookies, then the POST; the
# status of the answer.
login() {
    local jar="$1" user="$2" pass="$3" page token
    page="$(curl -fsS -c "$jar" -b "$jar" "$base/login")"
    token="$(printf '%s' "$page" | grep -o 'name="csrf_token" value="[^"]*"' | head -n1 | sed 's/.*value="//; s/"$//')"
    [ -n "$token" ] || fail "no CSRF token on /login"
    curl -sS -o /dev/null -w '%{http_code}' -c "$jar" -b "$jar" -H "Origin: $base" \
        --data-urlencode "csrf_token=$token" --data-urlencode "username=$user" --data-urlencode "password=$pass" \
        "$base/login"
}

# The value of the sample whose line starts with $2 (name and labels as
# rendered) in the scrape $1.
value() {
    awk -v s="$2" 'index($0, s) == 1 { v = $NF } END { if (v == "") exit 1; print v }' "$1"
}

curl -fsS "http://127.0.0.1:$mport/metrics" >"$work/before.txt" || fail "the first scrape failed"
for outcome in success failure; do
    got="$(value "$work/before.txt" "portcullis_logins_total{outcome=\"$outcome\"}")" || fail "no $outcome count before"
    [ "$got" = 0 ] || fail "$outcome is $got before any sign-in"
done

status="$(login "$work/right.jar" alice "$password")"
[ "$status" = 303 ] || fail "the right password answered $status, not 303"
status="$(login "$work/wrong.jar" alice "not the password")"
[ "$status" = 200 ] || fail "a wrong password answered $status, not 200 (the form again)"
curl -sS -o /dev/null "$base/no/such/page"

curl -fsS "http://127.0.0.1:$mport/metrics" >"$work/metrics.txt" || fail "the scrape failed"
scrape="$work/metrics.txt"

# At least $2 in the second scrape.
expect() {
    local series="$1" want="$2" got
    got="$(value "$scrape" "$series")" || fail "no sample $series in the scrape:
$(cat "$scrape")"
    awk -v g="$got" -v w="$want" 'BEGIN { exit !(g + 0 >= w + 0) }' || fail "$series is $got, expected at least $want"
    echo "ok  $series $got"
}

for family in portcullis_http_requests_total portcullis_http_request_duration_seconds portcullis_logins_total \
    portcullis_lockouts_total portcullis_rate_limited_total portcullis_hash_pool_in_use \
    portcullis_hash_pool_waiting portcullis_hash_pool_refused_total portcullis_outbox_pending \
    portcullis_outbox_oldest_age_seconds portcullis_sessions_active portcullis_db_pool_connections; do
    grep -q "^# HELP $family " "$scrape" || fail "no HELP for $family"
    grep -q "^# TYPE $family " "$scrape" || fail "no TYPE for $family"
done
expect 'portcullis_logins_total{outcome="success"}' 1
expect 'portcullis_logins_total{outcome="failure"}' 1
expect 'portcullis_sessions_active ' 1
expect 'portcullis_http_requests_total{route="/login",method="GET",status="200"}' 2
expect 'portcullis_http_requests_total{route="/login",method="POST",status="303"}' 1
expect 'portcullis_http_requests_total{route="/login",method="POST",status="200"}' 1
expect 'portcullis_http_requests_total{route="unmatched",method="GET",status="404"}' 1
expect 'portcullis_http_request_duration_seconds_bucket{route="/login",method="POST",le="+Inf"}' 2
expect 'portcullis_http_request_duration_seconds_count{route="/login",method="POST"}' 2
! grep -q '/no/such/page' "$scrape" || fail "a raw path in a label"

echo "== promtool check metrics"
# promtool reads the exposition on standard input; any lint it prints is a failure.
if ! lint="$(promtool check metrics <"$scrape" 2>&1)"; then
    printf '%s\n' "$lint" >&2
    fail "promtool check metrics failed"
fi
[ -z "$lint" ] || { printf '%s\n' "$lint" >&2; fail "promtool check metrics reported problems"; }
echo "ok  $(grep -c '^# TYPE ' "$scrape") families, $(grep -vc '^#\|^$' "$scrape") samples, no problems"

echo "== metric names in the docs"
# Every portcullis_* name the alerts, the dashboard and the operations page
# use is a family the scrape has (histogram series by their family's name).
for name in $(grep -ohP 'portcullis_[a-z_]+(?![a-z_:])' "$root/docs/alerts.yml" "$root/docs/grafana-dashboard.json" \
    "$root/docs/operations.md" | sed -E 's/_(bucket|sum|count)$//' | sort -u); do
    grep -q "^# TYPE $name " "$scrape" || fail "$name is used in docs/ but is not in the scrape"
done
echo "ok  every name used in docs/ is exported"

echo "== promtool check rules"
promtool check rules "$root/docs/alerts.yml"
if [ -f "$root/tests/alerts.test.yml" ]; then
    echo "== promtool test rules"
    promtool test rules "$root/tests/alerts.test.yml"
fi
echo "promtool: all checks passed"
