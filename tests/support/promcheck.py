"""Checks a Prometheus text-format file strictly and prints what it holds as JSON.

Usage: python promcheck.py FILE

The parsing is done by the Prometheus project's own Python client
(prometheus_client.parser), not by calsync; on top of it this script holds the file to what
node_exporter's textfile collector and `promtool check metrics` expect, rules the client's
parser is lenient about:
  - UTF-8, ends with a newline, no blank lines, no comments but HELP and TYPE;
  - every family has exactly one HELP and one TYPE line, both before its first sample;
  - a family's samples are contiguous and it is declared once;
  - sample lines follow the grammar (escapes in label values are \\, \" and \n only);
  - no sample carries a timestamp (the textfile collector refuses them);
  - no two samples have the same name and labels; every value is a number.
Exit 0 and JSON {"families": {name: {"type", "help", "samples": [{"labels", "value"}]}}} on
stdout, or exit 1 with the problems on stderr. Exit 2 when prometheus_client is missing.
"""

import json
import math
import re
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - reported to the Rust test
    sys.stderr.write("prometheus_client is not installed; run scripts/test.sh\n")
    sys.exit(2)

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*=" + LABEL_VALUE
VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?Inf|NaN)"
SAMPLE = re.compile(
    r"^(?P<name>" + NAME + r")(?:\{(?:" + LABEL + r"(?:," + LABEL + r")*,?)?\})? (?P<value>" + VALUE + r")$"
)
HELP = re.compile(r"^# HELP (?P<name>" + NAME + r") (?P<text>\S.*)$")
TYPE = re.compile(r"^# TYPE (?P<name>" + NAME + r") (?P<type>counter|gauge|histogram|summary|untyped)$")
SUFFIXES = ("_bucket", "_count", "_sum")


def family_of(sample_name, types):
    if sample_name in types:
        return sample_name
    for suffix in SUFFIXES:
        base = sample_name[: -len(suffix)]
        if sample_name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    return sample_name


def check(raw):
    problems = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, ["not UTF-8: %s" % e]
    if not text:
        return None, ["the file is empty"]
    if not text.endswith("\n"):
        problems.append("the last line has no newline")
    helps, types = {}, {}
    done = set()  # families whose lines are over
    sampled = set()  # families with at least one sample so far
    current = None
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        where = "line %d: %r" % (number, line)
        if line == "":
            problems.append(where + ": blank line")
            continue
        if line.startswith("#"):
            m = HELP.match(line) or TYPE.match(line)
            if not m:
                problems.append(where + ": a comment that is neither HELP nor TYPE")
                continue
            name = m.group("name")
            is_help = line.startswith("# HELP")
            table = helps if is_help else types
            if name in table:
                problems.append(where + ": second %s line for %s" % ("HELP" if is_help else "TYPE", name))
            if name in done or name in sampled:
                problems.append(where + ": %s is declared after its samples" % name)
            if current is not None and current != name:
                done.add(current)
            current = name
            table[name] = m.group("text") if is_help else m.group("type")
            continue
        m = SAMPLE.match(line)
        if not m:
            problems.append(where + ": not a sample line (or it has a timestamp)")
            continue
        family = family_of(m.group("name"), types)
        if family not in helps or family not in types:
            problems.append(where + ": sample of %s before its HELP and TYPE" % family)
        if family != current:
            if family in done:
                problems.append(where + ": samples of %s are not contiguous" % family)
            if current is not None:
                done.add(current)
            current = family
        sampled.add(family)
    for name in helps.keys() ^ types.keys():
        problems.append("%s has a HELP or a TYPE but not both" % name)

    families = {}
    try:
        parsed = list(text_string_to_metric_families(text))
    except Exception as e:  # the client's parser raises ValueError and others
        return None, problems + ["prometheus_client cannot parse it: %r" % e]
    seen = set()
    for fam in parsed:
        out = families.setdefault(
            fam.name, {"type": fam.type, "help": fam.documentation, "samples": []}
        )
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in seen:
                problems.append("duplicate sample %s%s" % (s.name, dict(s.labels)))
            seen.add(key)
            if s.timestamp is not None:
                problems.append("sample %s carries a timestamp" % s.name)
            value = s.value
            if isinstance(value, float) and not math.isfinite(value):
                value = str(value)
            out["samples"].append({"name": s.name, "labels": dict(s.labels), "value": value})
    return families, problems


def main():
    with open(sys.argv[1], "rb") as f:
        raw = f.read()
    families, problems = check(raw)
    if problems:
        sys.stderr.write("\n".join(problems) + "\n")
        sys.exit(1)
    json.dump({"families": families}, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
