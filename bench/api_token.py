#!/usr/bin/env python3
"""A personal access token for the JSON API load (bench/run.sh), made the way
a user makes one: sign in, then the form on /account/tokens.

Usage: api_token.py BASE USER PASS [--name bench] [--scope read]

Signs in (GET /login, POST /login), reads the CSRF token of /account/tokens,
posts the new-token form (scope read, never expiring), reads the token from
the page it is shown on once, checks that GET /api/v1/me with it answers 200
with the user's name, and prints the token on stdout.

Runs with the harness's venv (requests) and its common.py on PYTHONPATH.
"""
import argparse
import re
import sys

import requests

from common import USER_AGENT, find_hidden_input


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("user")
    ap.add_argument("password")
    ap.add_argument("--name", default="bench")
    ap.add_argument("--scope", default="read")
    a = ap.parse_args()
    base = a.base.rstrip("/")
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    r = s.get(f"{base}/login", timeout=30)
    form = {"username": a.user, "password": a.password, "csrf_token": find_hidden_input(r.text)}
    r = s.post(f"{base}/login", data=form, allow_redirects=False, timeout=60)
    if r.status_code // 100 != 3:
        sys.exit(f"{a.user} did not sign in: HTTP {r.status_code}")
    r = s.get(f"{base}/account/tokens", timeout=30)
    if r.status_code != 200:
        sys.exit(f"GET /account/tokens: HTTP {r.status_code}")
    form = {"name": a.name, "scope": a.scope, "expires_in_days": "0", "csrf_token": find_hidden_input(r.text)}
    r = s.post(f"{base}/account/tokens", data=form, allow_redirects=False, timeout=30)
    if r.status_code // 100 != 3:
        sys.exit(f"POST /account/tokens: HTTP {r.status_code}")
    r = s.get(f"{base}/account/tokens", timeout=30)
    m = re.search(r'id="new-token"[^>]*>\s*(pcat_[0-9A-Za-z]+)\s*<', r.text)
    if not m:
        sys.exit("the new token is not on /account/tokens")
    token = m.group(1)
    r = requests.get(f"{base}/api/v1/me", headers={"User-Agent": USER_AGENT, "Authorization": f"Bearer {token}"},
                     timeout=30)
    if r.status_code != 200 or a.user not in r.text:
        sys.exit(f"GET /api/v1/me with the new token: HTTP {r.status_code}")
    print(token)


if __name__ == "__main__":
    main()
