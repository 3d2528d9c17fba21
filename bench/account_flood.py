#!/usr/bin/env python3
"""Signed-in users posting wrong current passwords to an account page, as fast
as answers come: the flood of the fairness scenario (bench/fairness.sh).

Usage: account_flood.py BASE --seconds S [--users user0990,user0991] [--pass-fmt password-{:04d}]
                        [--conns 64] [--path /account/delete]

Each user signs in once (GET /login, POST /login), reads a CSRF token from /account,
then --conns connections in all, spread over the users, post --path with a wrong
`current_password` until --seconds have passed. Prints one line:
ACCOUNTFLOOD requests=N rps=R s2xx=… s3xx=… s429=… s503=… s5xx_other=… errors=…
"""
import argparse
import asyncio
import collections
import re
import sys
import time

import aiohttp

from common import USER_AGENT, find_hidden_input


async def sign_in(session, base, user, password):
    async with session.get(f"{base}/login") as r:
        token = find_hidden_input(await r.text())
    form = {"username": user, "password": password, "csrf_token": token}
    async with session.post(f"{base}/login", data=form, allow_redirects=False) as r:
        if r.status // 100 != 3:
            raise SystemExit(f"{user} did not sign in: {r.status}")
    async with session.get(f"{base}/account") as r:
        return find_hidden_input(await r.text())


async def flood(session, base, path, token, until, counts):
    form = {"current_password": "not the password", "csrf_token": token}
    while time.monotonic() < until:
        try:
            async with session.post(f"{base}{path}", data=form, allow_redirects=False) as r:
                await r.read()
                s = r.status
                key = {2: "s2xx", 3: "s3xx"}.get(s // 100) or (f"s{s}" if s in (429, 503) else
                                                             "s5xx_other" if s >= 500 else f"s{s}")
                counts[key] += 1
        except (aiohttp.ClientError, asyncio.TimeoutError):
            counts["errors"] += 1


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--users", default="user0990,user0991,user0992,user0993")
    ap.add_argument("--pass-fmt", default="password-{:04d}")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--path", default="/account/delete")
    a = ap.parse_args()
    base = a.base.rstrip("/")
    users = a.users.split(",")
    counts = collections.Counter()
    sessions = []
    tasks = []
    try:
        for i, user in enumerate(users):
            n = int(re.search(r"(\d+)$", user).group(1))
            conns = a.conns // len(users) + (1 if i < a.conns % len(users) else 0)
            s = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT},
                                      connector=aiohttp.TCPConnector(limit=conns),
                                      cookie_jar=aiohttp.CookieJar(unsafe=True),
                                      timeout=aiohttp.ClientTimeout(total=30))
            sessions.append(s)
            token = await sign_in(s, base, user, a.pass_fmt.format(n))
            tasks.append((s, token, conns))
        start = time.monotonic()
        until = start + a.seconds
        await asyncio.gather(*(flood(s, base, a.path, t, until, counts) for s, t, c in tasks for _ in range(c)))
        took = time.monotonic() - start
    finally:
        for s in sessions:
            await s.close()
    total = sum(counts.values())
    fields = " ".join(f"{k}={counts.get(k, 0)}" for k in ("s2xx", "s3xx", "s429", "s503", "s5xx_other", "errors"))
    print(f"ACCOUNTFLOOD requests={total} rps={total / took:.1f} {fields}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
