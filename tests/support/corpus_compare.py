"""The independent side of the real-world corpus test (tests/realworld_corpus.rs).

calsync's own parser and recurrence code must not judge calsync's output, so this script reads
both the source feed and the target calsync wrote with Python's `icalendar` and expands them
with `recurring-ical-events` (both pinned in scripts/test.sh). recurring-ical-events is the
stronger independent choice for recurrence: it handles RDATE periods, EXRULE,
RANGE=THISANDFUTURE, X-WR-TIMEZONE and zones defined only by a feed's VTIMEZONE, each with its
own test suite (several of the corpus files come from it).

Where DESIGN.md decides what a source means and the library has no opinion (privacy, duplicate
copies of one event), this script applies DESIGN's rule to the source before expanding it, so
the expectation is "what DESIGN says the source means", computed without calsync's code.

Usage:
  corpus_compare.py plan FILE...      -> JSON {file: {"now": RFC 3339} | {"error": text}}
  corpus_compare.py compare MANIFEST  -> JSON {name: result}; MANIFEST is a JSON list of
                                         {name, source, target, now, past_days, future_days}
"""

import datetime as dt
import json
import sys
from collections import Counter

import icalendar
import recurring_ical_events

UTC = dt.timezone.utc
# Occurrences are compared when they start inside the window less this margin on each side,
# so that the window's own edge rules (an event that overlaps the edge) never decide a result.
MARGIN = dt.timedelta(days=2)
# How many differing occurrences a result names.
SHOWN = 8


def unfold(data):
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    return text.replace("\r\n ", "").replace("\r\n\t", "").replace("\n ", "").replace("\n\t", "")


def blocks(text):
    """The calendar properties and the top-level components (as text) of every VCALENDAR in
    the file, by a plain BEGIN/END scan: the library is strict about a whole file, and one
    unreadable event must cost only that event."""
    props, components, stack, current = [], [], [], None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        name, _, value = line.partition(":")
        word = name.strip().upper()
        if word == "BEGIN":
            kind = value.strip().upper()
            if not stack:
                if kind == "VCALENDAR":
                    stack.append(kind)
                continue
            if len(stack) == 1:
                current = [kind, []]
            stack.append(kind)
            current[1].append(line)
        elif word == "END" and stack:
            kind = value.strip().upper()
            if kind not in stack:
                continue
            while stack and stack[-1] != kind:
                stack.pop()
            stack.pop()
            if current is not None:
                current[1].append(line)
                if len(stack) == 1:
                    components.append((current[0], "\r\n".join(current[1]) + "\r\n"))
                    current = None
        elif len(stack) == 1:
            props.append(line)
        elif current is not None:
            current[1].append(line)
    if not props and not components and not stack:
        raise ValueError("no VCALENDAR")
    return props, components


def merged(calendars):
    if len(calendars) == 1:
        return calendars[0]
    cal = icalendar.Calendar()
    for one in calendars:
        for key, value in one.items():
            if key not in cal:
                cal[key] = value
        for sub in one.subcomponents:
            cal.add_component(sub)
    return cal


def parse(text):
    return icalendar.Calendar.from_ical(text)


DATE_PROPERTIES = ("DTSTART", "DTEND", "RDATE", "EXDATE", "RECURRENCE-ID")


IANA = None


def iana_spelling(tzid):
    """DESIGN maps a TZID that names an IANA zone in another letter case (Google writes
    `Europe/lisbon`, with a VTIMEZONE of other rules) to that zone; the library would use
    the feed's VTIMEZONE."""
    global IANA
    if IANA is None:
        import zoneinfo

        IANA = {name.lower(): name for name in zoneinfo.available_timezones()}
    if tzid in IANA.values():
        return tzid
    return IANA.get(tzid.lower(), tzid)


def normalized(data):
    """The file as the library should see it, for two spellings it reads differently from
    what they mean (and from DESIGN): blanks at the end of a content line are not meaning
    (the library refuses `RRULE:…;BYDAY=1MO ` and `DURATION:PT10M `, but not an EXDATE so
    written), and a TZID on a DATE value means nothing (a day has no zone; Google writes
    `DTSTART;TZID=America/Los_Angeles:20041225` for all-day events, which the library reads
    as midnight in Los Angeles)."""
    out, flagged, uid, date_period = [], set(), None, False
    for line in unfold(data).splitlines():
        line = line.rstrip(" \t")
        name = line.split(":", 1)[0].split(";", 1)[0].strip().upper()
        if ";TZID=" in line.upper():
            at = line.upper().index(";TZID=") + 6
            end = min([i for i in (line.find(";", at), line.find(":", at)) if i != -1] or [len(line)])
            line = line[:at] + iana_spelling(line[at:end]) + line[end:]
        # A PERIOD of dates is no PERIOD (the library reads it as midnight, floating): DESIGN
        # withholds what cannot be read exactly.
        if name == "UID":
            uid = line.split(":", 1)[-1].strip()
        elif name == "RDATE" and any(
            "/" in v and v.split("/")[0].strip().isdigit() for v in line.rsplit(":", 1)[-1].split(",")
        ):
            date_period = True
        elif name in DATE_PROPERTIES and ":" in line:
            # A value whose form contradicts its declared VALUE type (`VALUE=DATE-TIME` on
            # `20061007`): the library picks one reading; DESIGN withholds it.
            head, _, value = line.rpartition(":")
            declared = [p.split("=", 1)[1].strip().upper() for p in head.split(";")[1:]
                        if p.upper().startswith("VALUE=")]
            forms = {"DATE" if len(v.strip()) == 8 else "DATE-TIME" for v in value.split(",")
                     if "/" not in v}
            if declared and declared[0] in ("DATE", "DATE-TIME") and forms - {declared[0]}:
                date_period = True
        elif line.strip().upper() == "END:VEVENT":
            if date_period and uid:
                flagged.add(uid)
            uid, date_period = None, False
        if name in DATE_PROPERTIES and ";" in line.split(":", 1)[0]:
            head, _, value = line.rpartition(":")
            if value and all(len(v.strip()) == 8 and v.strip().isdigit() for v in value.split(",")):
                params = [p for p in head.split(";")[1:] if not p.upper().startswith("TZID=")]
                line = ";".join([head.split(";")[0]] + params) + ":" + value
        out.append(line)
    return ("\r\n".join(out) + "\r\n").encode("utf-8"), flagged


def read_calendar(data):
    """All VCALENDARs of a file as one calendar (calsync reads them all). A VTIMEZONE or
    VEVENT the library cannot read is left out; the UIDs of such VEVENTs are returned, since
    DESIGN withholds an event that cannot be read exactly (with its whole series)."""
    # The library caches every VTIMEZONE it meets by TZID for the whole process; one file's
    # definition must not decide another file's times.
    icalendar.use_zoneinfo()
    data, flagged = normalized(data)
    try:
        calendars = icalendar.Calendar.from_ical(data, multiple=True)
        if calendars:
            return merged(calendars), flagged
    except Exception:  # noqa: BLE001 - read it event by event below
        pass
    props, components = blocks(unfold(data))
    # Only the first X-WR-TIMEZONE counts; no other calendar property matters here.
    wr = [p for p in props if p.split(":")[0].split(";")[0].strip().upper() == "X-WR-TIMEZONE"]
    head = "BEGIN:VCALENDAR\r\n" + "".join(p + "\r\n" for p in wr[:1])
    cal = None
    try:
        cal = parse(head + "END:VCALENDAR\r\n")
    except Exception:  # noqa: BLE001
        cal = parse("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    zones = []
    for kind, body in components:
        if kind != "VTIMEZONE":
            continue
        try:
            zone = parse("BEGIN:VCALENDAR\r\n" + body + "END:VCALENDAR\r\n")
            zone.walk("VTIMEZONE")[0].to_tz()
            zones.append(body)
            cal.add_component(zone.walk("VTIMEZONE")[0])
        except Exception:  # noqa: BLE001
            continue
    unreadable = set(flagged)
    wrapper = "BEGIN:VCALENDAR\r\n" + "".join(zones)

    def readable(bodies):
        """The events of `bodies`, halving on failure to find the unreadable ones."""
        try:
            events = parse(wrapper + "".join(bodies) + "END:VCALENDAR\r\n").walk("VEVENT")
            for event in events:
                start = event.get("DTSTART")
                if start is not None and not isinstance(start, list):
                    start.dt  # noqa: B018 - reading it is the check
            return events
        except Exception:  # noqa: BLE001
            if len(bodies) > 1:
                half = len(bodies) // 2
                return readable(bodies[:half]) + readable(bodies[half:])
            for line in bodies[0].splitlines():
                if line.upper().startswith("UID:") or line.upper().startswith("UID;"):
                    unreadable.add(line.split(":", 1)[1].strip())
            return []

    for event in readable([body for kind, body in components if kind == "VEVENT"]):
        cal.add_component(event)
    return cal, unreadable


def naive_utc(value):
    """A DTSTART value as a naive UTC-ish date-time, for windows (days wide)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value
    return dt.datetime.combine(value, dt.time())


def plan(paths):
    """A `now` per file that puts most of its events in a 20-year window (3,650 days each way).
    DTSTART dates are read off the text: this only picks a window."""
    out = {}
    for path in paths:
        with open(path, "rb") as f:
            text = unfold(f.read())
        starts, in_event = [], False
        for line in text.splitlines():
            upper = line.strip().upper()
            if upper in ("BEGIN:VEVENT", "END:VEVENT"):
                in_event = upper == "BEGIN:VEVENT"
            if not in_event or not upper.startswith("DTSTART"):
                continue
            digits = line.rsplit(":", 1)[-1].strip()[:8]
            try:
                starts.append(dt.datetime.strptime(digits, "%Y%m%d"))
            except ValueError:
                continue
        starts.sort()
        if not starts:
            out[path] = {"now": "2026-01-01T00:00:00Z"}
            continue
        span = dt.timedelta(days=7000)
        best, best_count, j = starts[0], 0, 0
        for i, s in enumerate(starts):
            while j < len(starts) and starts[j] < s + span:
                j += 1
            if j - i > best_count:
                best, best_count = s, j - i
        # The window's start, now - 3650 days, lands on 3 or 4 January of year0.
        year0 = (best - dt.timedelta(days=7)).year
        out[path] = {"now": f"{year0 + 10:04d}-01-01T00:00:00Z"}
    return out


def is_public(component):
    """DESIGN rule 1 for iCalendar: CLASS absent or PUBLIC, and not STATUS:CANCELLED."""
    classes = component.get("CLASS")
    if classes is not None:
        values = classes if isinstance(classes, list) else [classes]
        if len(values) != 1 or str(values[0]).strip().upper() != "PUBLIC":
            return False
    status = component.get("STATUS")
    if status is not None and str(status).strip().upper() == "CANCELLED":
        return False
    return True


def rid_key(component):
    rid = component.get("RECURRENCE-ID")
    if rid is None:
        return None
    try:
        return naive_utc(rid.dt).isoformat()
    except Exception:  # noqa: BLE001
        return str(rid.to_ical())


def sequence(component):
    try:
        return int(str(component.get("SEQUENCE", 0)).strip())
    except ValueError:
        return 0


def dtstamp(component):
    stamp = component.get("DTSTAMP")
    try:
        return naive_utc(stamp.dt)
    except Exception:  # noqa: BLE001
        return dt.datetime.min


# Properties a VEVENT holds at most once. Two differing copies make the event unreadable
# (which one holds is unknowable): DESIGN withholds it. Equal copies are one.
SINGLE = ("UID", "DTSTART", "DTEND", "DURATION", "RECURRENCE-ID")


def sanitize(cal, withheld_uids):
    """What DESIGN says about VEVENTs the library would choke on: a property given twice
    with different values, or a master without DTSTART, withholds the item; an override
    without DTSTART starts at its RECURRENCE-ID."""
    events = []
    for event in [c for c in cal.subcomponents if c.name == "VEVENT"]:
        readable = True
        for name in SINGLE:
            value = event.get(name)
            if isinstance(value, list):
                spellings = {(p.to_ical(), tuple(sorted(p.params.items()))) for p in value}
                if len(spellings) > 1:
                    readable = False
                event[name] = value[0]
        sequence_value = event.get("SEQUENCE")
        if isinstance(sequence_value, list):
            event["SEQUENCE"] = max(sequence_value, key=lambda p: int(str(p).strip() or 0))
        for name in ("DTSTART", "DTEND", "RECURRENCE-ID", "RDATE", "EXDATE"):
            values = event.get(name)
            for prop in values if isinstance(values, list) else [values]:
                if prop is None:
                    continue
                # A TZID the library could not resolve reads as floating; DESIGN withholds
                # an event whose zone is neither mappable nor defined.
                if "TZID" in prop.params and not zone_resolved(prop):
                    readable = False
        if not rules_readable(event):
            readable = False
        end, duration, start = event.get("DTEND"), event.get("DURATION"), event.get("DTSTART")
        if end is not None and duration is not None and start is not None:
            # Both given: DESIGN reads them only when they agree.
            if not isinstance(start, list) and end.dt != start.dt + duration.dt:
                readable = False
        if "DTSTART" not in event:
            if "RECURRENCE-ID" in event:
                event["DTSTART"] = event["RECURRENCE-ID"]
            else:
                readable = False
        uid = str(event.get("UID", "")).strip()
        if not readable:
            if uid:
                withheld_uids.add(uid)
            continue
        events.append(event)
    events = [e for e in events if str(e.get("UID", "")).strip() not in withheld_uids]
    # Identical VEVENTs without a UID are one event (calsync keys them by their text; two
    # identical copies published would be a duplicate).
    seen, unique = set(), []
    for e in events:
        if not str(e.get("UID", "")).strip():
            text = e.to_ical()
            if text in seen:
                continue
            seen.add(text)
        unique.append(e)
    events = unique
    others = [c for c in cal.subcomponents if c.name != "VEVENT"]
    cal.subcomponents[:] = others + events


RULE_PARTS = {
    "FREQ", "UNTIL", "COUNT", "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY",
    "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS", "WKST",
}


def rules_readable(event):
    """DESIGN: an RRULE or EXRULE that cannot be read exactly (an unknown part, COUNT with
    UNTIL, a COUNT that is not positive) withholds its event; the library would repair it.
    An UNTIL of another type than DTSTART is read as calsync's recurrence module documents
    (RFC 5545: UNTIL bounds inclusively, so a DATE includes its day; a floating UNTIL is
    wall-clock time in DTSTART's zone), where the library would read it as UTC midnight."""
    start = event.get("DTSTART")
    for name in ("RRULE", "EXRULE"):
        rules = event.get(name)
        for rule in rules if isinstance(rules, list) else [rules]:
            if rule is None:
                continue
            if not isinstance(rule, icalendar.vRecur) or set(rule) - RULE_PARTS:
                return False
            if "COUNT" in rule and ("UNTIL" in rule or any(int(c) < 1 for c in rule["COUNT"])):
                return False
            if "UNTIL" in rule and start is not None and not isinstance(start, list):
                rule["UNTIL"] = [until_as_calsync_reads(rule["UNTIL"][0], start.dt)]
    return True


def until_as_calsync_reads(until, start):
    if not isinstance(start, dt.datetime):
        return until if not isinstance(until, dt.datetime) else until.date()
    if not isinstance(until, dt.datetime):
        until = dt.datetime.combine(until, dt.time(23, 59, 59))
        if start.tzinfo is not None:
            until = until.replace(tzinfo=start.tzinfo).astimezone(UTC)
        return until
    if until.tzinfo is None and start.tzinfo is not None:
        return until.replace(tzinfo=start.tzinfo).astimezone(UTC)
    if until.tzinfo is not None and start.tzinfo is None:
        return until.astimezone(UTC).replace(tzinfo=None)
    return until


def zone_resolved(prop):
    values = prop.dts if hasattr(prop, "dts") else [prop]
    for v in values:
        value = v.dt
        if isinstance(value, tuple):
            value = value[0]
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            return False
    return True


def apply_duplicate_rule(cal):
    """DESIGN "Trust nothing a remote says": one event held twice (one UID and no
    RECURRENCE-ID, or one RECURRENCE-ID twice) is published only when every copy is public,
    and then the copy with the highest SEQUENCE (then latest DTSTAMP, then last) wins. A
    duplicated master that is not all public withholds the whole item; a duplicated instance
    that is not all public withholds that instance (as a private instance would be)."""
    events = [c for c in cal.subcomponents if c.name == "VEVENT"]
    groups = {}
    for index, event in enumerate(events):
        uid = str(event.get("UID", "")).strip()
        if not uid:
            continue
        groups.setdefault((uid, rid_key(event)), []).append((index, event))
    drop_uids, drop = set(), set()
    for (uid, rid), copies in groups.items():
        if len(copies) < 2:
            continue
        everyone_public = all(is_public(e) for _, e in copies)
        winner = max(copies, key=lambda c: (sequence(c[1]), dtstamp(c[1]), c[0]))
        for index, _ in copies:
            if index != winner[0]:
                drop.add(index)
        if not everyone_public:
            if rid is None:
                drop_uids.add(uid)
            else:
                winner[1]["CLASS"] = "PRIVATE"
    keep = []
    for index, event in enumerate(events):
        uid = str(event.get("UID", "")).strip()
        if index in drop or (uid and uid in drop_uids):
            continue
        keep.append(event)
    others = [c for c in cal.subcomponents if c.name != "VEVENT"]
    cal.subcomponents[:] = others + keep
    # A master that is not public withholds the series with every instance (policy).
    return {
        str(e.get("UID", "")).strip()
        for e in keep
        if e.get("RECURRENCE-ID") is None and not is_public(e)
    }


def value_key(value):
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return "F " + value.isoformat()
        return "U " + value.astimezone(UTC).isoformat()
    return "D " + value.isoformat()


def occurrence(component):
    start = component.get("DTSTART").dt
    end_prop = component.get("DTEND")
    if end_prop is not None:
        end = end_prop.dt
    elif component.get("DURATION") is not None:
        end = start + component.get("DURATION").dt
    elif isinstance(start, dt.datetime):
        end = start
    else:
        end = start + dt.timedelta(days=1)
    title = str(component.get("SUMMARY", "")).strip() or "Busy"
    return (value_key(start), value_key(end), title), start


def apply_exrules(cal, until):
    """recurring-ical-events ignores EXRULE; DESIGN removes its occurrences (published as
    EXDATEs). dateutil computes them from the EXRULE and DTSTART, and they become EXDATEs."""
    from dateutil import rrule as du

    for event in cal.walk("VEVENT"):
        rules = event.get("EXRULE")
        if rules is None:
            continue
        start = event.get("DTSTART").dt
        for rule in rules if isinstance(rules, list) else [rules]:
            text = rule.to_ical().decode()
            if isinstance(start, dt.datetime):
                first = start
                stop = until if start.tzinfo is None else until.replace(tzinfo=UTC)
            else:
                first = dt.datetime.combine(start, dt.time())
                stop = until
            dates = []
            for d in du.rrulestr(text, dtstart=first, ignoretz=False):
                if d > stop:
                    break
                dates.append(d if isinstance(start, dt.datetime) else d.date())
            if dates:
                event.add("EXDATE", dates)
        del event["EXRULE"]


def occurrences(cal, window, withheld_uids=frozenset()):
    """Public occurrences starting inside `window` (naive UTC bounds)."""
    lo, hi = window
    found = Counter()
    # Expand a little wider than the window and cut by start, in one frame for all kinds.
    query = recurring_ical_events.of(cal, skip_bad_series=True)
    for component in query.between(lo - MARGIN, hi + MARGIN):
        if component.name != "VEVENT":
            continue
        if str(component.get("UID", "")).strip() in withheld_uids:
            continue
        if not is_public(component):
            continue
        key, start = occurrence(component)
        if lo <= naive_utc(start) < hi:
            found[key] += 1
    return found


def compare(manifest):
    """Each entry compared in one of two worker processes (CI has two cores), biggest first."""
    import concurrent.futures
    import os

    order = sorted(manifest, key=lambda e: -os.path.getsize(e["source"]))
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        return dict(zip((e["name"] for e in order), pool.map(compare_one, order)))


def compare_one(entry):
    """The comparison of one source with its target."""
    now = dt.datetime.strptime(entry["now"], "%Y-%m-%dT%H:%M:%SZ")
    lo = now - dt.timedelta(days=entry["past_days"]) + MARGIN
    hi = now + dt.timedelta(days=entry["future_days"]) - MARGIN
    try:
        with open(entry["source"], "rb") as f:
            source, unreadable = read_calendar(f.read())
        sanitize(source, unreadable)
        withheld = apply_duplicate_rule(source)
        apply_exrules(source, hi + MARGIN)
        expected = occurrences(source, (lo, hi), withheld)
    except Exception as e:  # noqa: BLE001
        return {"status": "source-unreadable", "error": f"{type(e).__name__}: {e}"}
    try:
        with open(entry["target"], "rb") as f:
            target, broken = read_calendar(f.read())
        if broken:
            raise ValueError(f"{len(broken)} unreadable events")
        published = occurrences(target, (lo, hi))
    except FileNotFoundError:
        published = Counter()
    except Exception as e:  # noqa: BLE001
        return {"status": "target-unreadable", "error": f"{type(e).__name__}: {e}"}
    missing = expected - published
    extra = published - expected
    return {
        "status": "ok" if not missing and not extra else "mismatch",
        "expected": sum(expected.values()),
        "published": sum(published.values()),
        "missing_count": sum(missing.values()),
        "extra_count": sum(extra.values()),
        "missing": [list(k) for k in sorted(missing)[:SHOWN]],
        "extra": [list(k) for k in sorted(extra)[:SHOWN]],
    }


def main(argv):
    if len(argv) >= 2 and argv[1] == "plan":
        json.dump(plan(argv[2:]), sys.stdout)
    elif len(argv) == 3 and argv[1] == "compare":
        with open(argv[2], encoding="utf-8") as f:
            manifest = json.load(f)
        json.dump(compare(manifest), sys.stdout)
    else:
        sys.stderr.write(__doc__)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
