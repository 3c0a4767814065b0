"""Runs the SQL-level tests: each tests/sql/test_*.sql in a database of its
own, made from the migrations and the rules (the files given, in the order
the daemon applies them) with pgTAP, in a throwaway cluster. Each file
holds its tests in one transaction that it rolls back. Prints each failing
test with pgTAP's diagnostics, and closes with "N passed, N failed".

    run.py --migrations M.sql ... --sources S.sql ... [--test TEST.sql ...]"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tbtest import Cluster, make_tempdir  # noqa: E402


def psql(cluster, db, script):
    return subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                           "-d", cluster.conninfo(db), "-f", "-"],
                          input=script, capture_output=True, text=True)


def template(cluster, migrations, sources):
    """A database as a daemon leaves it at its first start, with pgTAP."""
    cluster.psql("CREATE DATABASE rules")
    script = ["SET client_min_messages = warning;", "BEGIN;", "CREATE EXTENSION pgtap;"]
    for path in migrations:
        script.append(open(path).read())
    script.append("SET LOCAL check_function_bodies = off;")
    for path in sources:
        script.append(open(path).read())
    script.append("COMMIT;")
    r = psql(cluster, "rules", "\n".join(script))
    if r.returncode != 0:
        sys.exit(f"sql tests: the rules did not apply:\n{r.stderr}")


def run_file(cluster, path, n):
    """(passed, failed lines) of one file, in a copy of the template."""
    db = f"t{n}"
    cluster.psql(f"CREATE DATABASE {db} TEMPLATE rules")
    r = psql(cluster, db, open(path).read())
    name = os.path.basename(path)
    passed, failed, planned = 0, [], None
    lines = r.stdout.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^1\.\.(\d+)$", line)
        if m:
            planned = int(m.group(1))
        elif re.match(r"^ok \d+", line):
            passed += 1
        elif re.match(r"^not ok \d+", line):
            notes = [x for x in lines[i + 1:i + 12] if x.startswith("#")]
            notes = notes[:next((k for k, x in enumerate(notes) if x.startswith("# Looks")),
                                len(notes))]
            failed.append(f"{name}: {line}\n" + "\n".join("    " + x for x in notes))
    if r.returncode != 0:
        failed.append(f"{name}: stopped: {r.stderr.strip()}")
    elif planned is not None and passed + len(failed) != planned:
        failed.append(f"{name}: planned {planned} tests, ran {passed + len(failed)}")
    return name, passed, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--migrations", nargs="+", required=True)
    ap.add_argument("--sources", nargs="+", required=True)
    ap.add_argument("--test", action="append", dest="tests", default=[])
    args = ap.parse_args()
    tests = args.tests or sorted(glob.glob(os.path.join(os.path.dirname(__file__), "test_*.sql")))
    root = make_tempdir("tb-sqltest-")
    cluster = Cluster(root)
    cluster.start()
    try:
        template(cluster, args.migrations, args.sources)
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda t: run_file(cluster, t[1], t[0]), enumerate(tests)))
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
    passed = sum(p for _, p, _ in results)
    failed = [f for _, _, fs in results for f in fs]
    for name, p, fs in results:
        print(f"{name}: {p} passed, {len(fs)} failed")
    for f in failed:
        print(f)
    print(f"sql tests: {passed} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
