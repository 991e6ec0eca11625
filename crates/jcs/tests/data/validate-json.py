#!/usr/bin/python3
"""Validates jcs --json output (stdin) against a schema of docs/schema/.

    validate-json.py SCHEMA.json          one JSON document
    validate-json.py SCHEMA.json --lines  JSON lines, each a document

Exits 1 with every violation on stderr. Needs Debian's python3-jsonschema (Draft 2020-12);
date-time is checked as jcs writes it (RFC 3339, UTC, nanoseconds).
"""
import json
import re
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
lines = "--lines" in sys.argv[2:]
fc = jsonschema.FormatChecker()


@fc.checks("date-time")
def date_time(s):
    return not isinstance(s, str) or re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", s) is not None


v = jsonschema.Draft202012Validator(schema, format_checker=fc)
text = sys.stdin.read()
docs = [l for l in text.splitlines() if l.strip()] if lines else [text]
bad = 0
for i, d in enumerate(docs):
    for e in v.iter_errors(json.loads(d)):
        bad += 1
        where = "/".join(str(p) for p in e.absolute_path)
        print(f"document {i + 1}: at /{where}: {e.message}", file=sys.stderr)
if bad:
    sys.exit(1)
print(f"{len(docs)} document(s) valid")
