#!/usr/bin/env bash
# Times `portcullis import flask-sqlite` of a Flask tutorial app database with
# N users (default 100000) and P posts each (default 3), into a fresh data dir.
# The database has the app's schema (as tests/fixtures/flask/app.db) and one
# real Werkzeug scrypt hash copied to every user: an import copies hashes, it
# computes none. Usage: bench/import_100k.sh [path/to/portcullis] [N] [P]
set -euo pipefail
bin=${1:-target/release/portcullis}
n=${2:-100000}
p=${3:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fixture="$(dirname "$0")/../tests/fixtures/flask/app.db"
python3 - "$fixture" "$work/app.db" "$n" "$p" <<'PY'
import sqlite3, sys
fixture, out, n, p = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
src = sqlite3.connect(fixture)
schema = [r[0] for r in src.execute("SELECT sql FROM sqlite_master WHERE type = 'table'")]
hash_ = src.execute("SELECT password_hash FROM user WHERE username = 'alice'").fetchone()[0]
db = sqlite3.connect(out)
for s in schema:
    db.execute(s)
db.executemany(
    "INSERT INTO user (id, username, email, password_hash, created_at, is_admin, email_verified, failed_login_attempts)"
    " VALUES (?, ?, ?, ?, '2024-01-02 03:04:05.000000', 0, 1, 0)",
    ((i + 1, f"user{i:06d}", f"user{i:06d}@example.com", hash_) for i in range(n)),
)
db.executemany(
    "INSERT INTO post (title, content, author_id, created_at) VALUES (?, ?, ?, '2024-01-03 00:00:00.000000')",
    ((f"Post {j} by user{i:06d}", f"Post number {j} written by user{i:06d}. " * 4, i + 1) for i in range(n) for j in range(p)),
)
db.commit()
PY
export PORTCULLIS_DATA_DIR="$work/data" PORTCULLIS_LOG=warn
"$bin" migrate
/usr/bin/time -f "%e s wall, %U s user, %S s system, %M KiB peak" -o "$work/time" \
  "$bin" import flask-sqlite "$work/app.db" </dev/null 2>"$work/stderr"
echo "$n users, $((n * p)) posts: $(cat "$work/time")"
echo "load average before and after: $(cut -d' ' -f1-3 /proc/loadavg)"
tail -2 "$work/stderr"
