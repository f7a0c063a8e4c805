#!/usr/bin/env python3
"""One .ics feed of N events in the peer benchmark's mix, for the scale benchmark.

Uses ../shared/peerbench/gen.py (the same generator, seed and mix as the CalDAV peer
benchmark: 70 % public, 10 % private, 10 % weekly series with an override, 5 % all-day, 5 %
confidential) and writes its events into one VCALENDAR with one VTIMEZONE.

  feed.py --n N [--seed S] [--anchor YYYY-MM-DD] [--update-percent P] OUT.ics

--update-percent P changes the SUMMARY of P % of the public single events (the same ones for
the same N and seed), for the "update 1 %" run.
"""
import argparse
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("PEERBENCH_DIR", os.path.join(HERE, "..", "..", "shared", "peerbench")))
import gen  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--seed", type=int, default=gen.DEFAULT_SEED)
    ap.add_argument("--anchor")
    ap.add_argument("--update-percent", type=float, default=0.0)
    ap.add_argument("out")
    a = ap.parse_args()
    anchor = gen.anchor_date(a.anchor)
    events = gen.generate(a.n, a.seed, anchor)
    if a.update_percent:
        singles = [e for e in events if e.kind == "public"]
        rng = random.Random(a.seed + a.n)
        k = max(1, int(len(events) * a.update_percent / 100))
        for e in rng.sample(singles, min(k, len(singles))):
            e.summary += " (updated)"
            e.seq = 1
    with open(a.out, "w", encoding="utf-8", newline="") as f:
        f.write("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync scale bench//EN\r\n")
        f.write("\r\n".join(gen.VTIMEZONE.split("\n")) + "\r\n")
        for e in events:
            text = e.ics(anchor)
            start = text.index("BEGIN:VEVENT")
            end = text.rindex("END:VEVENT") + len("END:VEVENT\r\n")
            f.write(text[start:end])
        f.write("END:VCALENDAR\r\n")


if __name__ == "__main__":
    main()
