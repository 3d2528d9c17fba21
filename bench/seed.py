#!/usr/bin/env python3
"""Seed data for the Portcullis load runs, written straight into the SQLite file.

  seed.py posts DB [--users 1000] [--per-user 3]
      3 posts for each of user0000 .. user0999 (the users themselves are made with
      `portcullis user create`, so that they pass the password policy and carry
      real per-user Argon2id hashes).

  seed.py users-csv DB > users.csv
      The users of DB as the CSV `portcullis import csv` takes (the same names,
      addresses, flags and Argon2id hashes), to seed a PostgreSQL database with.

  seed.py posts-sql [--users 1000] [--per-user 3] [--user-fmt user{:04d}] | psql URL
      The same posts as `posts`, as SQL for PostgreSQL: loaded into a
      temporary table by name, then written for every user found there.

  seed.py large DB [--users 1000000] [--sessions 1000000]
      Adds users user1000 .. user999999 with the password hash of user0000 (one
      precomputed Argon2id hash at the configured cost, so the login of any of
      them costs what a real one costs) and 1,000,000 live "remember me" sessions
      (random ids and secrets, 30 days left) spread over all users. Run it on a
      copy of the 1,000-user database after `portcullis migrate`.

Only the standard library; the schema is the one of migrations/sqlite
(migrations/postgres for posts-sql).
"""
import argparse
import csv
import hashlib
import random
import secrets
import sqlite3
import sys
import time

LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua. ")


def now_ms():
    return int(time.time() * 1000)


def connect(path):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA foreign_keys = ON")
    return db


def finish(db):
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("ANALYZE")
    db.commit()
    db.close()


def post_rows(users, per_user, t):
    """(author, title, content, created_at, updated_at) for each of `users`
    ((author, name) pairs): `per_user` posts a minute apart, the last one a
    minute before t."""
    rows = []
    for author, name in users:
        for k in range(per_user):
            ts = t - (per_user - k) * 60_000
            rows.append((author, f"Post {k + 1} by {name}", LOREM * (2 + k), ts, ts))
    return rows


def seed_posts(args):
    db = connect(args.db)
    users = db.execute("SELECT id, username FROM users ORDER BY id").fetchall()
    if len(users) < args.users:
        sys.exit(f"expected {args.users} users, found {len(users)}")
    rows = post_rows(users, args.per_user, now_ms())
    db.executemany("INSERT INTO posts (author_id, title, content, created_at, updated_at) "
                   "VALUES (?, ?, ?, ?, ?)", rows)
    finish(db)
    print(f"seeded {len(rows)} posts for {len(users)} users")


def users_csv(args):
    db = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["username", "email", "password_hash", "is_admin", "email_verified", "created_at"])
    for name, email, hashed, admin, verified, created in db.execute(
            "SELECT username, email, password_hash, is_admin, email_verified, created_at FROM users ORDER BY id"):
        out.writerow([name, email, hashed, admin, verified, created // 1000])


def posts_sql(args):
    """SQL for psql: the posts of `post_rows` for every user, by username."""
    names = [args.user_fmt.format(i) for i in range(args.users)]
    w = sys.stdout.write
    w("\\set ON_ERROR_STOP on\nBEGIN;\n"
      "CREATE TEMPORARY TABLE seed_posts (username TEXT, title TEXT, content TEXT,"
      " created_at BIGINT, updated_at BIGINT) ON COMMIT DROP;\n"
      "COPY seed_posts FROM STDIN (FORMAT csv);\n")
    out = csv.writer(sys.stdout, lineterminator="\n")
    for row in post_rows(zip(names, names), args.per_user, now_ms()):
        out.writerow(row)
    w("\\.\n"
      "INSERT INTO posts (author_id, title, content, created_at, updated_at)"
      " SELECT u.id, s.title, s.content, s.created_at, s.updated_at"
      " FROM seed_posts s JOIN users u ON u.username = s.username ORDER BY u.id, s.created_at;\n"
      "COMMIT;\nANALYZE;\n")


def seed_large(args):
    t0 = time.time()
    db = connect(args.db)
    row = db.execute("SELECT password_hash FROM users WHERE username = 'user0000'").fetchone()
    if not row or not row[0].startswith("$argon2id$"):
        sys.exit("user0000 with an Argon2id hash is needed (seed the 1,000 users first)")
    shared_hash = row[0]
    have = db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
    first = have
    t = now_ms()
    batch = 50_000

    def users():
        for i in range(first, args.users):
            name = f"user{i:04d}"
            email = f"{name}@example.com"
            yield (name, name, email, email, shared_hash, 0, 1, f"stamp{i:07d}", t, t)

    it = users()
    while True:
        chunk = [r for _, r in zip(range(batch), it)]
        if not chunk:
            break
        db.executemany(
            "INSERT INTO users (username, username_normalized, email, email_normalized, password_hash,"
            " is_admin, email_verified, security_stamp, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", chunk)
    db.commit()
    print(f"users: {db.execute('SELECT COUNT(*) FROM users').fetchone()[0]} ({time.time() - t0:.0f}s)")

    ids = [r for r in db.execute("SELECT id, security_stamp FROM users")]
    rng = random.Random(42)
    expires = t + 30 * 86_400_000
    have_s = db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
    secret_hash = hashlib.sha256(secrets.token_urlsafe(32).encode()).hexdigest()

    def sessions():
        for _ in range(have_s, args.sessions):
            uid, stamp = ids[rng.randrange(len(ids))]
            sid = secrets.token_urlsafe(16)  # 22 base64url characters, like the server's ids
            yield (sid, secret_hash, uid, stamp, t, t, expires, 1, "127.0.0.1", "seed")

    it = sessions()
    while True:
        chunk = [r for _, r in zip(range(batch), it)]
        if not chunk:
            break
        db.executemany(
            "INSERT INTO sessions (id, secret_hash, user_id, security_stamp, created_at, last_seen_at,"
            " expires_at, remember, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", chunk)
    db.commit()
    print(f"sessions: {db.execute('SELECT COUNT(*) FROM sessions').fetchone()[0]} ({time.time() - t0:.0f}s)")
    finish(db)
    print(f"large seed done in {time.time() - t0:.0f}s")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("posts")
    p.add_argument("db")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--per-user", type=int, default=3)
    p = sub.add_parser("users-csv")
    p.add_argument("db")
    p = sub.add_parser("posts-sql")
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--user-fmt", default="user{:04d}")
    p.add_argument("--per-user", type=int, default=3)
    p = sub.add_parser("large")
    p.add_argument("db")
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--sessions", type=int, default=1_000_000)
    args = ap.parse_args()
    {"posts": seed_posts, "users-csv": users_csv, "posts-sql": posts_sql, "large": seed_large}[args.cmd](args)


if __name__ == "__main__":
    main()
