#!/usr/bin/env python3
"""The server half of the scale table: calsync against a real CalDAV server (Xandikos).

For each scenario (caldav→caldav, ics→caldav), size N and round trip: a fresh Xandikos on a free
127.0.0.1 port with its own folder, peerbench's counting proxy (proxy.py, optional simulated
round trip) in front of it, and three runs of the release calsync on one state file:
  first   the first sync into an empty target calendar
  noop    nothing changed
  update  1 % of the events changed at the source (the SUMMARY of N/100 public single events,
          the same ones bench/feed.py --update-percent 1 changes)
Each run: wall, CPU (user+system) and peak RSS (/usr/bin/time), requests by method and bytes
both ways (the proxy), the server's busy time (the union of the intervals with a request at the
server), and the lower bounds: server-bound = that busy time, latency-bound =
ceil(requests / 4) × RTT; ratio = wall / the larger. After each run the target calendar is read
back (bypassing the proxy) and checked: as many resources as public events, the changed
summaries there.

The events: ../shared/peerbench/gen.py (the peer benchmark's mix and seed; 85 % public). The
caldav source is written straight into Xandikos' storage as one git commit (a bare repository
collection, which Xandikos serves as it is), so a 10,000-event source costs seconds to set up
instead of 10,000 PUTs; the target is made by MKCALENDAR, Xandikos' own default storage. The
update's changes go to the source directly (not through the proxy, so not counted).

  server_scale.py --calsync BIN --xandikos BIN --sizes "1000 10000" [--rtt-ms 0]
                  [--scenarios "caldav ics"] --json OUT.json --work DIR

Run by bench/scale.sh with the Python of the Xandikos venv (it needs dulwich); prints Markdown
rows on stdout. Everything binds and talks to 127.0.0.1 only; every process started here is
stopped by its PID.
"""
import argparse
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
PEERBENCH = os.environ.get("PEERBENCH_DIR", os.path.join(HERE, "..", "..", "shared", "peerbench"))
sys.path.insert(0, PEERBENCH)
import gen  # noqa: E402
from bench import read_collection_http  # noqa: E402  (one calendar-query REPORT, straight to the server)

STARTED = []  # processes started here, stopped by PID


def log(msg):
    print(f"# {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def stop_all():
    for p in STARTED:
        if p.poll() is None:
            p.terminate()
    for p in STARTED:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    STARTED.clear()


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(port, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def proxy_call(port, path, post=False):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if post else "GET",
                                 data=b"" if post else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def seed_bare_calendar(path, events, anchor):
    """A Xandikos calendar collection as a bare git repository holding `events`, one commit."""
    from dulwich.objects import Blob, Commit, Tree
    from dulwich.repo import Repo
    from xandikos.store.git import BareGitStore

    os.makedirs(path)
    repo = Repo.init_bare(path)
    BareGitStore(repo).set_type("calendar")
    tree = Tree()
    objects = []
    for e in events:
        blob = Blob.from_string(e.ics(anchor).encode("utf-8"))
        tree.add(e.href.encode(), 0o100644, blob.id)
        objects.append((blob, None))
    objects.append((tree, None))
    repo.object_store.add_objects(objects)
    c = Commit()
    c.tree = tree.id
    c.author = c.committer = b"scale bench <bench@localhost>"
    c.author_time = c.commit_time = int(time.time())
    c.author_timezone = c.commit_timezone = 0
    c.message = b"seed"
    repo.object_store.add_object(c)
    repo.refs[b"HEAD"] = c.id


def write_feed(path, events, anchor):
    """The same VCALENDAR as bench/feed.py writes."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync scale bench//EN\r\n")
        f.write("\r\n".join(gen.VTIMEZONE.split("\n")) + "\r\n")
        for e in events:
            text = e.ics(anchor)
            start = text.index("BEGIN:VEVENT")
            end = text.rindex("END:VEVENT") + len("END:VEVENT\r\n")
            f.write(text[start:end])
        f.write("END:VCALENDAR\r\n")


def changed_events(events, n, seed):
    """The 1 % bench/feed.py --update-percent 1 changes (same rng, same sample)."""
    singles = [e for e in events if e.kind == "public"]
    rng = random.Random(seed + n)
    k = max(1, int(len(events) * 1 / 100))
    picked = rng.sample(singles, min(k, len(singles)))
    for e in picked:
        e.summary += " (updated)"
        e.seq = 1
    return picked


def run_calsync(calsync, cfg, d, label, timeout_s):
    tfile = os.path.join(d, f"{label}.time")
    with open(os.path.join(d, f"{label}.log"), "wb") as out, open(os.path.join(d, f"{label}.err"), "wb") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tfile, calsync, "--config", cfg, "sync"],
                             cwd=d, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        STARTED.append(p)
        try:
            rc = p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the group of the process started just above
            p.wait()
            rc = "timeout"
        STARTED.remove(p)
        wall = time.monotonic() - t0
    try:
        _e, user, system, rss = open(tfile).read().split()[-4:]
        cpu, rss_mib = float(user) + float(system), int(rss) / 1024
    except (OSError, ValueError):
        cpu, rss_mib = None, None
    return rc, wall, cpu, rss_mib


def bench_one(a, scenario, n, rtt_ms, out_rows):
    d = os.path.join(a.work, f"{scenario}-{n}-rtt{rtt_ms:g}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    anchor = gen.anchor_date(None)
    events = gen.generate(n, a.seed, anchor)
    man = gen.manifest(events)
    public = sum(1 for s in man.values() if s["public"])

    port = free_port()
    xlog = open(os.path.join(d, "xandikos.log"), "wb")
    x = subprocess.Popen([a.xandikos, "serve", "--defaults", "-d", os.path.join(d, "xandikos"), "-l", "127.0.0.1",
                          "-p", str(port)], stdout=xlog, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    STARTED.append(x)
    if not wait_http(port, 30):
        raise SystemExit("Xandikos did not start")
    pport_file = os.path.join(d, "proxy.port")
    proxy = subprocess.Popen([sys.executable, os.path.join(PEERBENCH, "proxy.py"), "--backend-port", str(port),
                              "--port-file", pport_file, "--rtt-ms", str(rtt_ms)],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "proxy.log"), "wb"),
                             stdin=subprocess.DEVNULL)
    STARTED.append(proxy)
    for _ in range(100):
        if os.path.exists(pport_file):
            break
        time.sleep(0.1)
    pport = int(open(pport_file).read())
    direct, via = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{pport}"
    src_path, tgt_path = "/user/calendars/src/", "/user/calendars/tgt/"
    gen.Dav(direct + tgt_path, "bench", "bench").mkcalendar()
    t0 = time.monotonic()
    if scenario == "caldav":
        seed_bare_calendar(os.path.join(d, "xandikos", "user", "calendars", "src"), events, anchor)
        source = (f'kind = "caldav"\nurl = "{via}{src_path}"\nusername = "bench"\n'
                  f'password_env = "CALSYNC_BENCH_PASSWORD"\n')
    else:
        write_feed(os.path.join(d, "feed.ics"), events, anchor)
        source = 'kind = "ics"\npath = "feed.ics"\n'
    log(f"{scenario}→caldav N={n} rtt={rtt_ms:g} ms: source ready in {time.monotonic() - t0:.1f} s")
    cfg = os.path.join(d, "calsync.toml")
    with open(cfg, "w") as f:
        f.write(f'state = "calsync.db"\n\n[[pair]]\nname = "scale"\n\n[pair.source]\n{source}\n[pair.target]\n'
                f'kind = "caldav"\nurl = "{via}{tgt_path}"\nusername = "bench"\n'
                f'password_env = "CALSYNC_BENCH_PASSWORD"\n')
    os.environ.setdefault("CALSYNC_BENCH_PASSWORD", "bench")
    try:
        for label in ("first", "noop", "update"):
            changes = {"first": public, "noop": 0}.get(label)
            if label == "update":
                picked = changed_events(events, n, a.seed)
                changes = len(picked)
                if scenario == "caldav":
                    src = gen.Dav(direct + src_path, "bench", "bench")
                    for e in picked:
                        src.put(e, anchor, create=False)
                else:
                    write_feed(os.path.join(d, "feed.ics"), events, anchor)
            proxy_call(pport, "/__bench/reset", post=True)
            rc, wall, cpu, rss = run_calsync(a.calsync, cfg, d, label, a.timeout_s)
            h = proxy_call(pport, "/__bench/stats")
            t = h["total"]
            target = read_collection_http(port, tgt_path, "bench", "bench")
            updated = sum(1 for text in target.values() if "(updated)" in text)
            ok = rc == 0 and len(target) == public and updated == (changes if label == "update" else 0)
            overlapped = (t.get("max_upstream_in_flight") or 0) > 1
            server_s = t["busy_s"] if overlapped else t["upstream_s"]
            latency_s = math.ceil(t["requests"] / 4) * rtt_ms / 1000.0
            larger = max(server_s, latency_s)
            row = {
                "scenario": f"{scenario}→caldav", "n": n, "rtt_ms": rtt_ms, "run": label, "exit": rc,
                "target_ok": ok, "target_resources": len(target), "public": public,
                "wall_s": round(wall, 2), "cpu_s": cpu, "peak_rss_mib": rss,
                "requests": t["requests"], "changes": changes,
                "by_method": {m: v["requests"] for m, v in h["by_method"].items()},
                "not_2xx": {f"{m} {st}": c for m, v in h["by_method"].items()
                            for st, c in v["status"].items() if not st.startswith("2")},
                "sent_kib": round(t["req_bytes"] / 1024, 1), "received_kib": round(t["resp_bytes"] / 1024, 1),
                "server_busy_s": round(server_s, 2), "latency_bound_s": round(latency_s, 2),
                "ratio": round(wall / larger, 2) if larger > 0 else None,
                "max_in_flight": t.get("max_in_flight"),
            }
            out_rows.append(row)
            log(f"{scenario}→caldav N={n} rtt={rtt_ms:g} {label}: exit {rc}, {wall:.2f} s, "
                f"{t['requests']} requests, server {server_s:.2f} s, target {len(target)}/{public}"
                f"{'' if ok else ' NOT AS EXPECTED'}")
            print(markdown_row(row), flush=True)
            if rc != 0:
                break
    finally:
        stop_all()
        xlog.close()
        if not a.keep:
            shutil.rmtree(os.path.join(d, "xandikos"), ignore_errors=True)  # the git stores: up to GBs


HEADER = ("| path | events | RTT ms | run | wall s | CPU s | peak RSS MiB | requests | by method | changes "
          "| requests per change | sent KiB | received KiB | server busy s | latency bound s (4 in flight) "
          "| wall / larger bound | answers not 2xx | target right |\n"
          "|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|")


def markdown_row(r):
    per = f"{r['requests'] / r['changes']:.2f}" if r["changes"] else "—"
    methods = ", ".join(f"{m} {c}" for m, c in sorted(r["by_method"].items(), key=lambda kv: -kv[1]))
    ratio = f"{r['ratio']:.2f}×" if r["ratio"] is not None else "—"
    cpu = f"{r['cpu_s']:.2f}" if r["cpu_s"] is not None else "—"
    rss = f"{r['peak_rss_mib']:.0f}" if r["peak_rss_mib"] is not None else "—"
    return (f"| {r['scenario']} | {r['n']} | {r['rtt_ms']:g} | {r['run']} | {r['wall_s']:.2f} | {cpu} | {rss} "
            f"| {r['requests']} | {methods} | {r['changes']} | {per} | {r['sent_kib']:.1f} | {r['received_kib']:.1f} "
            f"| {r['server_busy_s']:.2f} | {r['latency_bound_s']:.2f} | {ratio} "
            f"| {', '.join(f'{k} ×{c}' for k, c in sorted(r.get('not_2xx', {}).items())) or '—'} "
            f"| {'yes' if r['target_ok'] else 'NO (exit ' + str(r['exit']) + ')'} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calsync", required=True)
    ap.add_argument("--xandikos", required=True)
    ap.add_argument("--sizes", default="1000 10000")
    ap.add_argument("--rtt-ms", type=float, default=0.0)
    ap.add_argument("--scenarios", default="caldav ics")
    ap.add_argument("--seed", type=int, default=gen.DEFAULT_SEED)
    ap.add_argument("--timeout-s", type=float, default=3600)
    ap.add_argument("--json", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the servers' storage folders")
    ap.add_argument("--header", action="store_true", help="print the table header first")
    a = ap.parse_args()
    a.calsync, a.xandikos, a.work = map(os.path.abspath, (a.calsync, a.xandikos, a.work))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rows = []
    if os.path.exists(a.json):
        rows = json.load(open(a.json))
    if a.header:
        print(HEADER, flush=True)
    try:
        for n in [int(s) for s in a.sizes.split()]:
            for scenario in a.scenarios.split():
                bench_one(a, scenario, n, a.rtt_ms, rows)
                with open(a.json + ".tmp", "w") as f:
                    json.dump(rows, f, indent=1)
                os.replace(a.json + ".tmp", a.json)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
