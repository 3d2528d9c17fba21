#!/usr/bin/env python3
"""One table of a bench/run.sh run, with the ratios the targets are stated in.

Usage: summarize.py FIGURES_FILE [--hash-mib N]
  FIGURES_FILE  the FIGURE lines of one run (all servers measured in that run)
  --hash-mib N  Argon2 memory of the server's hash pool (workers x m_cost), MiB,
                added to the 100 MB peak-RSS allowance
"""
import argparse
import re
import statistics
from collections import defaultdict

ap = argparse.ArgumentParser()
ap.add_argument("figures")
ap.add_argument("--hash-mib", type=float, default=19.0)
args = ap.parse_args()

F = defaultdict(dict)
for line in open(args.figures):
    p = line.split()
    if len(p) == 5 and p[0] == "FIGURE":
        F[(p[1], p[2])][p[3]] = p[4]


def num(label, scen, metric):
    v = F.get((label, scen), {}).get(metric)
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v, d=0):
    if v is None:
        return "n/m"
    return f"{v:,.{d}f}"


# run.sh measures the 1k server's logins on a server start of their own,
# between the two raw Argon2id measurements (label portcullis-logins); runs
# of an older run.sh have them with its pages.
def flow_label(label):
    return "portcullis-logins" if label == "portcullis" and ("portcullis-logins", "flow_login") in F else label


def flags(label, scen):
    f = F.get((label, scen), {})
    out = []
    if f.get("quiet_wait") == "timeout":
        out.append("not quiet")
    for k in ("non_2xx_3xx", "socket_errors", "failures"):
        if k in f and f[k] not in ("0", "0.0"):
            out.append(f"{k}={f[k]}")
    if "wrk_cpu1_busy_pct" in f and float(f["wrk_cpu1_busy_pct"]) >= 95:
        out.append(f"wrk core {f['wrk_cpu1_busy_pct']}% busy")
    return ", ".join(out)


ROWS = [("axum-ceiling", "axum ceiling"), ("portcullis", "Portcullis, 1k users"),
        ("portcullis-1m", "Portcullis, 1M users/sessions"), ("portcullis-pg", "Portcullis, 1k users, PostgreSQL"),
        ("portcullis-pg-redis", "Portcullis, 1k users, PostgreSQL + Redis sessions"),
        ("flask-sync", "Flask peer (gunicorn sync x5)"),
        ("portcullis-flood-off", "Portcullis, before the flood"), ("portcullis-flood-on", "Portcullis, under login flood")]
hdr = ["server", "GET /login req/s", "p50 ms", "p99 ms", "GET /dashboard req/s", "p50 ms", "p99 ms",
       "logins/s", "POST /login p99 ms", "idle RSS MiB", "peak RSS MiB"]
table = [hdr]
notes = []
for label, name in ROWS:
    if not any(k[0] == label for k in F):
        continue
    srv = label if label != "portcullis-flood-off" else "portcullis-flood-on"
    table.append([name,
                  fmt(num(label, "anon_GET_login", "req_per_s")), fmt(num(label, "anon_GET_login", "p50_ms"), 2),
                  fmt(num(label, "anon_GET_login", "p99_ms"), 2),
                  fmt(num(label, "auth_GET_dashboard", "req_per_s")), fmt(num(label, "auth_GET_dashboard", "p50_ms"), 2),
                  fmt(num(label, "auth_GET_dashboard", "p99_ms"), 2),
                  fmt(num(flow_label(label), "flow_login", "logins_per_s"), 1),
                  fmt(num(flow_label(label), "flow_login", "post_login_p99_ms"), 0),
                  fmt(num(srv, "server", "idle_rss_mib"), 1) if label != "portcullis-flood-off" else "",
                  fmt(num(srv, "server", "peak_rss_mib"), 1) if label != "portcullis-flood-off" else ""])
    for scen in ("anon_GET_login", "auth_GET_dashboard", "flow_login"):
        fl = flags(flow_label(label) if scen == "flow_login" else label, scen)
        if fl:
            notes.append(f"{name} {scen}: {fl}")
# The raw rate is measured just before and just after the Portcullis logins
# (argon2id-raw-before/-after); the logins/s ratio uses their mean. Runs of
# an older run.sh have one measurement, argon2id-raw.
raws = [(lab, num(lab, "hash_verify", "verif_per_s"))
        for lab in ("argon2id-raw-before", "argon2id-raw-after", "argon2id-raw")]
raws = [(lab, v) for lab, v in raws if v is not None]
raw = sum(v for _, v in raws) / len(raws) if raws else None
for lab, v in raws:
    when = {"argon2id-raw-before": " (before)", "argon2id-raw-after": " (after)"}.get(lab, "")
    table.append([f"raw Argon2id verify, core 0{when}", "", "", "", "", "", "", fmt(v, 1), "", "", ""])
w = [max(len(r[i]) for r in table) for i in range(len(hdr))]
for i, r in enumerate(table):
    print("| " + " | ".join(c.ljust(w[j]) for j, c in enumerate(r)) + " |")
    if i == 0:
        print("|" + "|".join("-" * (w[j] + 2) for j in range(len(hdr))) + "|")
fs = F.get(("portcullis-flood-on", "flood_POST_login"), {})
if fs:
    print(f"\nFlood: {fs.get('rps', '?')} POST /login per s over {fs.get('requests', '?')} requests: "
          f"2xx {fs.get('s2xx')}, 3xx {fs.get('s3xx')}, 4xx {fs.get('s4xx')}, 503 {fs.get('s503')} "
          f"(with Retry-After {fs.get('s503_retry_after')}), other 5xx {fs.get('s5xx_other')}, "
          f"socket errors {fs.get('sock_err')}")
if notes:
    print("\nConditions: " + "; ".join(notes))


# The same ratios from the alternating rounds (run.sh --rounds): all servers
# up at once, measured one after another, the order rotated each round; the
# median of the rounds' ratios. Runs of an older run.sh label them pairN-.
def numbered(pattern):
    """{(n, server): label} for the labels `pattern` matches (number, server)."""
    out = {}
    for lab, _ in F:
        if m := re.fullmatch(pattern, lab):
            out[(int(m.group(1)), m.group(2))] = lab
    return out


ROUND = numbered(r"(?:round|pair)(\d+)-(.+)")
# run.sh's one-second dashboard windows, the 1k and 1M servers in turn.
WINDOW = numbered(r"window(\d+)-(.+)")


# The alternating rounds' medians, server by server (the JSON API is
# measured there only).
rounds_rows = []
API = "token_GET_api_me"
for label, name in ROWS:
    figs = {}
    for scen in ("anon_GET_login", "auth_GET_dashboard", API):
        for metric in ("req_per_s", "p99_ms"):
            vs = [v for (r, w), lab in ROUND.items() if w == label and (v := num(lab, scen, metric)) is not None]
            figs[(scen, metric)] = statistics.median(vs) if vs else None
    if any(v is not None for v in figs.values()):
        rounds_rows.append([name] + [fmt(figs[(sc, m)], 0 if m == "req_per_s" else 2)
                                     for sc in ("anon_GET_login", "auth_GET_dashboard", API)
                                     for m in ("req_per_s", "p99_ms")])
if rounds_rows:
    n = len({r for r, _ in ROUND})
    print(f"\nMedians of the {n} alternating rounds:")
    rh = ["server", "GET /login req/s", "p99 ms", "GET /dashboard req/s", "p99 ms", "GET /api/v1/me req/s (token)",
          "p99 ms"]
    rt = [rh] + rounds_rows
    rw = [max(len(r[i]) for r in rt) for i in range(len(rh))]
    for i, r in enumerate(rt):
        print("| " + " | ".join(c.ljust(rw[j]) for j, c in enumerate(r)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (rw[j] + 2) for j in range(len(rh))) + "|")
    for (r, w), lab in sorted(ROUND.items()):
        fl = flags(lab, API)
        if fl:
            print(f"  round {r} {w} {API}: {fl}")

print("\nTargets (ratios within this run):")


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def verdict(name, value, target, kind, unit=""):
    if value is None:
        print(f"  {name}: not measured")
        return
    # A figure that rounds to its target is shown with one more digit, so
    # that the verdict can be read off it.
    close = f"{value:.2f}" == f"{target:.2f}"
    dp, xdp = (3, 3) if close else (2, 1)
    if kind == ">=":
        ok = value >= target
        miss = "" if ok else f"; missed by {target - value:.{dp}f}{unit} (needs {target / value:.{xdp}f}x)" if value > 0 else ""
    elif kind == ">":
        ok = value > target
        miss = "" if ok else f"; missed: needs {target / value:.2f}x" if value > 0 else ""
    else:  # "<"
        ok = value < target
        miss = "" if ok else f"; over by {value - target:.2f}{unit} ({value / target:.1f}x the limit)"
    shown = f"{value:.{dp}f}{unit}" if abs(value) < 1000 else f"{value:,.0f}{unit}"
    print(f"  {name}: {shown} (target {kind} {target:g}{unit}) -> {'MET' if ok else 'MISSED'}{miss}")


P, C, FL = "portcullis", "axum-ceiling", "flask-sync"
d = lambda lab, m="req_per_s": num(lab, "auth_GET_dashboard", m)  # noqa: E731
lg = lambda lab, m="req_per_s": num(lab, "anon_GET_login", m)  # noqa: E731
verdict("dashboard req/s, Portcullis / axum ceiling", ratio(d(P), d(C)), 0.5, ">=")
verdict("dashboard req/s, Portcullis / Flask peer", ratio(d(P), d(FL)), 100, ">", "x")
verdict("dashboard p99 at 64 connections", d(P, "p99_ms"), 10, "<", " ms")
verdict("anonymous GET /login req/s, Portcullis / axum ceiling", ratio(lg(P), lg(C)), 0.6, ">=")


def rounds_median(name, a, b, check, scen, metric, scen_b=None, metric_b=None, by=ROUND, what="alternating rounds"):
    """The median over the rounds (or `by`'s windows) of server a's figure /
    server b's figure (the same scenario and metric, unless b's are given);
    check(name, median) prints the verdict."""
    rs = [ratio(num(by.get((r, a)), scen, metric), num(by.get((r, b)), scen_b or scen, metric_b or metric))
          for r in sorted({r for r, _ in by})]
    rs = [x for x in rs if x is not None]
    if rs:
        check(f"{name}, median of {len(rs)} {what} ({', '.join(f'{x:.2f}' for x in rs)})", statistics.median(rs))


for scen, name, target in [("auth_GET_dashboard", "dashboard", 0.5), ("anon_GET_login", "anonymous GET /login", 0.6)]:
    rounds_median(f"{name} req/s, Portcullis / axum ceiling", P, C,
                  lambda n, v, t=target: verdict(n, v, t, ">="), scen, "req_per_s")
PG, PR = "portcullis-pg", "portcullis-pg-redis"
if any(w in (PG, PR) for w in [lab for lab, _ in F] + [w for _, w in ROUND]):
    verdict("dashboard req/s, Portcullis on PostgreSQL / axum ceiling", ratio(d(PG), d(C)), 0.12, ">=")
    rounds_median("dashboard req/s, Portcullis on PostgreSQL / axum ceiling", PG, C,
                  lambda n, v: verdict(n, v, 0.12, ">="), "auth_GET_dashboard", "req_per_s")
    verdict("dashboard req/s, PostgreSQL + Redis sessions / PostgreSQL", ratio(d(PR), d(PG)), 1.0, ">=")
    rounds_median("dashboard req/s, PostgreSQL + Redis sessions / PostgreSQL", PR, PG,
                  lambda n, v: verdict(n, v, 1.0, ">="), "auth_GET_dashboard", "req_per_s")
for who, name in [(P, "SQLite"), (PG, "PostgreSQL"), (PR, "PostgreSQL + Redis sessions")]:
    rounds_median(f"GET /api/v1/me req/s with a token, {name} / axum ceiling's dashboard", who, C,
                  lambda n, v: verdict(n, v, 0.5, ">="), API, "req_per_s", "auth_GET_dashboard", "req_per_s")
verdict("logins/s / raw Argon2id verify/s (same cost, core 0" + (", mean of before and after" if len(raws) > 1 else "") + ")",
        ratio(num(flow_label(P), "flow_login", "logins_per_s"), raw), 0.9, ">=")
rounds_median("logins/s / raw Argon2id verify/s", P, "argon2id-raw", lambda n, v: verdict(n, v, 0.9, ">="),
              "flow_login", "logins_per_s", "hash_verify", "verif_per_s")
verdict("dashboard req/s under login flood / unloaded",
        ratio(d("portcullis-flood-on"), d("portcullis-flood-off")), 0.5, ">=")
verdict("dashboard p99 under login flood", d("portcullis-flood-on", "p99_ms"), 50, "<", " ms")
s5 = fs.get("s5xx_other")
if s5 is not None:
    print(f"  non-503 5xx during the flood: {s5} (target 0) -> {'MET' if s5 == '0' else 'MISSED'}")
else:
    print("  non-503 5xx during the flood: not measured")
L = "portcullis-1m"


def band(name, r):
    if r is None:
        print(f"  {name}: not measured")
        return
    dev = abs(r - 1)
    print(f"  {name}: {r:.2f}x (target within 15%) -> "
          f"{'MET' if dev <= 0.15 else f'MISSED by {100 * (dev - 0.15):.0f} points'}")


for name, scen, metric in [("dashboard req/s", "auth_GET_dashboard", "req_per_s"),
                           ("GET /login req/s", "anon_GET_login", "req_per_s"),
                           ("logins/s", "flow_login", "logins_per_s"),
                           ("dashboard p99", "auth_GET_dashboard", "p99_ms")]:
    p = flow_label(P) if scen == "flow_login" else P
    band(f"1M users/sessions vs 1k, {name}", ratio(num(L, scen, metric), num(p, scen, metric)))
    rounds_median(f"1M users/sessions vs 1k, {name}", L, P, band, scen, metric)
for name, metric in [("dashboard p99", "p99_ms"), ("dashboard req/s", "req_per_s")]:
    typical = [statistics.median(vs) for who in (P, L)
               if (vs := [v for (_, w), lab in WINDOW.items() if w == who
                          and (v := num(lab, "auth_GET_dashboard", metric)) is not None])]
    shown = f" [1k {typical[0]:,.2f}, 1M {typical[1]:,.2f}]" if len(typical) == 2 else ""
    rounds_median(f"1M users/sessions vs 1k, {name}{shown}", L, P, band, "auth_GET_dashboard", metric,
                  by=WINDOW, what="one-second windows in turn")
MB = 1e6 / 2**20  # the targets are in MB, the harness reports MiB
verdict("idle RSS (30 MB = 28.6 MiB)", num(P, "server", "idle_rss_mib"), 30 * MB, "<", " MiB")
verdict(f"peak RSS under 64 connections (100 MB + {args.hash_mib:g} MiB of hash pool = "
        f"{100 * MB + args.hash_mib:.1f} MiB)", num(P, "server", "peak_rss_mib"), 100 * MB + args.hash_mib, "<", " MiB")
