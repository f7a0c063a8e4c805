#!/usr/bin/env python3
"""Growth per event from the scale table's Markdown rows: for every path and run, from each
size to the next, how many times the wall time grew against how many times the events did.

  growth.py TABLE.md...      (prints a Markdown list)

Reads every Markdown table whose header has the columns `events`, `run` and `wall s` (and
`path` and `RTT ms` where there are; the ics→ics table has neither).
"""
import os
import sys
from collections import OrderedDict


def rows(path):
    header = None
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set(line) <= set("|-: "):
            continue
        if not {"events", "run", "wall s"} <= set(header) or len(cells) != len(header):
            continue
        yield dict(zip(header, cells))


def main():
    series = OrderedDict()
    for path in sys.argv[1:]:
        if not os.path.exists(path):
            continue
        for r in rows(path):
            try:
                n, wall = int(r["events"]), float(r["wall s"])
            except ValueError:
                continue
            key = (r.get("path", "ics→ics"), r.get("RTT ms", "0"), r["run"])
            series.setdefault(key, []).append((n, wall))
    for (path, rtt, run), points in series.items():
        points.sort()
        steps = []
        for (n0, w0), (n1, w1) in zip(points, points[1:]):
            if w0 <= 0:
                continue
            steps.append(f"{n0:,} → {n1:,}: {w1 / w0:.1f}× the time for {n1 / n0:.0f}× the events "
                         f"({w0 * 1e6 / n0:,.0f} → {w1 * 1e6 / n1:,.0f} µs per event)")
        if steps:
            where = f"{path}" + (f", {rtt} ms RTT" if rtt not in ("0", "") else "")
            print(f"- {where}, {run}: " + "; ".join(steps))


if __name__ == "__main__":
    main()
