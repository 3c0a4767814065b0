#!/usr/bin/python3
"""Checks the shape of src/sql: every function, view and trigger is defined
exactly once, in the rules (the files named on the command line, which must
be every src/sql/*.sql), and migrations hold only tables, indexes,
constraints and data. Prints one line per problem and a closing count."""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "sql")


def statements(text):
    """The file's statements with their comments left out, on one line each;
    quoted strings and dollar-quoted bodies are taken whole."""
    out, cur, i, n = [], [], 0, len(text)
    while i < n:
        if text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            cur.append(" ")
            continue
        if text[i] == "'":
            j = i + 1
            while True:
                k = text.find("'", j)
                if k < 0:
                    raise ValueError("unterminated string")
                if text.startswith("''", k):
                    j = k + 2
                    continue
                break
            cur.append(text[i:k + 1])
            i = k + 1
            continue
        tag = re.match(r"\$[A-Za-z_]*\$", text[i:]) if text[i] == "$" else None
        if tag:
            k = text.find(tag.group(0), i + len(tag.group(0)))
            if k < 0:
                raise ValueError("unterminated " + tag.group(0))
            k += len(tag.group(0))
            cur.append(text[i:k])
            i = k
            continue
        if text[i] == ";":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    out.append("".join(cur))
    return [" ".join(s.split()) for s in out if s.strip()]


DEFINES = re.compile(r"(?i)^create (?:or replace )?(?:constraint )?(function|view|trigger) (\w+)"
                     r"(?:.*? on (\w+))?")
SCHEMA = re.compile(r"(?i)^(create (unique )?index|create table|create sequence|alter table|"
                    r"insert|update|delete|drop table|drop index|do )")


def main():
    global ROOT
    args = sys.argv[1:]
    if args[:1] == ["--root"]:
        ROOT, args = args[1], args[2:]
    problems, checked = [], 0
    defined = {}
    migrations = sorted(os.listdir(os.path.join(ROOT, "migrations")))
    for name in migrations:
        for s in statements(open(os.path.join(ROOT, "migrations", name)).read()):
            checked += 1
            m = DEFINES.match(s)
            if m:
                problems.append(f"migrations/{name}: defines {m.group(1).lower()} {m.group(2)}; "
                                "functions, views and triggers belong in the rules")
    listed = [os.path.basename(f) for f in args]
    present = sorted(f for f in os.listdir(ROOT) if f.endswith(".sql"))
    for name in sorted(set(present) - set(listed)):
        problems.append(f"{name}: not in the Makefile's SQL_SOURCES, so never applied")
    for name in present:
        for s in statements(open(os.path.join(ROOT, name)).read()):
            checked += 1
            m = DEFINES.match(s)
            if m is None:
                what = "holds a table's shape or data" if SCHEMA.match(s) else "holds"
                problems.append(f"{name}: {what} `{s[:60]}`; only functions, views and "
                                "triggers belong here")
                continue
            kind, obj = m.group(1).lower(), m.group(2).lower()
            key = (kind, obj if kind != "trigger" else f"{m.group(3).lower()}.{obj}")
            if key in defined:
                problems.append(f"{name}: {kind} {key[1]} is defined again (first in "
                                f"{defined[key]})")
            else:
                defined[key] = name
    for p in problems:
        print(p)
    print(f"sql shape: {checked} statements, {len(defined)} definitions; "
          f"{checked - len(problems)} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
