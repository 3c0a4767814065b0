#!/usr/bin/python3
"""make bench, the directory: how long one bank takes to pull 100,000
shared offers from a peer over the link, and how fast a broker's search is
over 1,000,000 items cached from 50 banks, through timebankd's API against
the same search function called directly by pgbench in the same run."""

import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tbtest import (PG_BIN, Bank, Cluster, federation_config, free_port,  # noqa: E402
                    make_pki, make_tempdir)

def machine():
    model = "unknown cpu"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


SYNC_ITEMS = int(os.environ.get("BENCH_DIR_SYNC", "100000"))
CACHED_ITEMS = int(os.environ.get("BENCH_DIR_CACHED", "1000000"))
CACHED_BANKS = 50
SEARCHES = int(os.environ.get("BENCH_DIR_SEARCHES", "400"))

WORDS = ("lifts surgery hospital shopping garden weeding mowing hedges shelves painting "
         "curtains cooking meals baking cakes soup phone calls company chats tea walks dog "
         "cat feeding forms letters benefits council computer tablet email video music "
         "piano guitar singing knitting sewing mending french spanish polish maths reading "
         "homework ironing cleaning windows bins prescriptions library church market "
         "allotment bicycle repairs fence gutter leaves snow").split()
CATEGORIES = ("befriending lifts shopping gardening diy housework cooking phone-support "
              "paperwork it-help tutoring languages arts-crafts music pet-care childcare "
              "health-wellbeing events other").split()
DAYS = ["monday morning", "tuesday morning", "wednesday afternoon", "thursday afternoon",
        "friday morning", "weekends", "any day evening"]


def sql_array(items):
    return "ARRAY[" + ", ".join(f"'{x}'" for x in items) + "]"


ITEM_SQL = f"""
    {sql_array(WORDS)} AS w, {sql_array(CATEGORIES)} AS c, {sql_array(DAYS)} AS d
"""


def item_columns(g):
    """SQL expressions for generated item number g (an integer column)."""
    n, nc, nd = len(WORDS), len(CATEGORIES), len(DAYS)
    return (f"CASE WHEN {g} % 4 = 0 THEN 'request' ELSE 'offer' END",
            f"c[1 + {g} % {nc}]",
            f"initcap(w[1 + {g} % {n}]) || ' and ' || w[1 + ({g} * 7) % {n}] || ', ' || "
            f"w[1 + ({g} * 13) % {n}] || ' near the ' || w[1 + ({g} * 31) % {n}]",
            f"'SW' || (1 + {g} % 20)",
            f"d[1 + {g} % {nd}]")


def sync(cluster, root, pki):
    """Seconds for colchester to pull SYNC_ITEMS from westminster."""
    ports = {"colchester": free_port(), "westminster": free_port()}
    banks = {}
    for b, other in (("westminster", "colchester"), ("colchester", "westminster")):
        db = cluster.new_database()
        banks[b] = Bank(root, cluster.conninfo(db), bank_id=b,
                        extra=federation_config(pki, b, ports[b], {other: ports[other]},
                                                # room for every item the run shares
                                                f"max_directory_items = {SYNC_ITEMS}\n"))
        banks[b].db = db
    wes, col = banks["westminster"], banks["colchester"]
    wes.start()
    kind, cat, text, area, avail = item_columns("g")
    cluster.psql("SELECT tb_member_add(jsonb_build_object('name', 'Member ' || g), 'bench') "
                 "FROM generate_series(1, 1000) g", wes.db)
    cluster.psql(f"""
        INSERT INTO dir_items (handle, member_account, kind, category, text, area,
                               availability, visibility, expires_on, created_by, updated_by,
                               approved_by, approved_at)
        SELECT left(md5('w' || g), 12), (SELECT account_id FROM members WHERE number = 1 + g % 1000),
               {kind}, {cat}, {text}, {area}, {avail}, 'federation', current_date + 100,
               'bench', 'bench', 'bench', now()
          FROM generate_series(1, {SYNC_ITEMS}) g, (SELECT {ITEM_SQL}) v""", wes.db)
    top = int(cluster.psql("SELECT max(version) FROM dir_items", wes.db).stdout)
    start = time.perf_counter()
    col.start()
    while True:
        got = cluster.psql("SELECT dir_cursor FROM fed_peers WHERE peer = 'westminster'",
                           col.db).stdout.strip()
        if got and int(got) >= top:
            break
        if time.perf_counter() - start > float(os.environ.get("BENCH_DIR_PATIENCE", "600")):
            sys.exit("bench: the directory did not sync in 10 minutes")
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    held = int(cluster.psql("SELECT count(*) FROM dir_remote", col.db).stdout)
    for b in banks.values():
        assert b.stop() == 0
    if held != SYNC_ITEMS:
        sys.exit(f"bench: colchester holds {held} items, not {SYNC_ITEMS}")
    return seconds, col


def queries(rng):
    out = []
    for _ in range(SEARCHES):
        q = {"q": " ".join(rng.sample(WORDS, rng.choice([1, 1, 2])))}
        if rng.random() < 0.3:
            q["area"] = f"SW{rng.randint(1, 20)}"
        if rng.random() < 0.2:
            q["category"] = rng.choice(CATEGORIES)
        out.append(q)
    return out


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def cached_banks():
    return [f"bank{b:02d}" for b in range(1, CACHED_BANKS + 1)]


def search(cluster, col, root, pki):
    """(API p50, p99, direct p50, p99) in ms over CACHED_ITEMS from 50 banks."""
    # Peers of colchester's config, offline: a peer the config no longer
    # names loses its items at the daemon's start.
    with open(col.config, "a") as f:
        for b in cached_banks():
            f.write(f"\n[peer {b}]\naddress = 127.0.0.1:{free_port()}\n"
                    f"signing_key = {pki}/{b}/{b}.sign.pub\n")
    cluster.psql("INSERT INTO fed_peers (peer, kind) SELECT 'bank' || lpad(b::text, 2, '0'), "
                 f"'bank' FROM generate_series(1, {CACHED_BANKS}) b ON CONFLICT DO NOTHING",
                 col.db)
    kind, cat, text, area, avail = item_columns("g")
    cluster.psql(f"""
        INSERT INTO dir_remote (peer, handle, kind, category, text, area, availability,
                                expires_on, version, tsv)
        SELECT 'bank' || lpad((1 + g % {CACHED_BANKS})::text, 2, '0'), left(md5('r' || g), 12),
               {kind}, {cat}, {text}, {area}, {avail}, current_date + 100, g,
               tb_dir_tsv({kind}, {cat}, (SELECT label FROM dir_categories WHERE code = {cat}),
                          {text}, {avail}, {area})
          FROM generate_series(1, {CACHED_ITEMS}) g, (SELECT {ITEM_SQL}) v""", col.db)
    # As autovacuum leaves a table of this size soon after it grows so
    # (its pages all-visible, its GIN index's pending list merged), and
    # the items read once, as a bank's are that has held them a while.
    cluster.psql("VACUUM ANALYZE dir_remote", col.db)
    cluster.psql("SELECT count(*) FROM dir_remote", col.db)
    col.start()
    held = int(cluster.psql("SELECT count(*) FROM dir_remote", col.db).stdout)
    if held < CACHED_ITEMS:
        sys.exit(f"bench: colchester holds {held} items, not {CACHED_ITEMS} and more")
    rng = random.Random(6)
    qs = queries(rng)
    api = []
    for q in qs:
        t = time.perf_counter()
        status, out = col.api("GET", "/v1/directory?" + urllib.parse.urlencode(q))
        api.append((time.perf_counter() - t) * 1000)
        assert status == 200, out
    # The baseline: the same function, the same queries, straight to PostgreSQL.
    script = os.path.join(root, "search.sql")
    with open(script, "w") as f:
        f.write(f"\\set i random(1, {len(qs)})\n"
                "SELECT tb_dir_search(q, category, area, NULL, NULL, 'colchester', 0, 50) "
                "FROM bench_queries WHERE id = :i;\n")
    cluster.psql("CREATE TABLE bench_queries (id int, q text, category text, area text); " +
                 "INSERT INTO bench_queries VALUES " + ", ".join(
                     "({}, '{}', {}, {})".format(
                         i + 1, q["q"],
                         f"'{q['category']}'" if "category" in q else "NULL",
                         f"'{q['area']}'" if "area" in q else "NULL")
                     for i, q in enumerate(qs)), col.db)
    logdir = os.path.join(root, "pgbench-log")
    os.mkdir(logdir)
    subprocess.run([f"{PG_BIN}/pgbench", "-n", "-c", "1", "-t", str(len(qs)), "-f", script,
                    "-l", "--log-prefix", os.path.join(logdir, "search"),
                    cluster.conninfo(col.db)], check=True, capture_output=True, text=True)
    direct = []
    for name in os.listdir(logdir):
        with open(os.path.join(logdir, name)) as f:
            direct += [int(line.split()[2]) / 1000 for line in f if line.strip()]
    assert col.stop() == 0
    return (statistics.median(api), percentile(api, 99), statistics.median(direct),
            percentile(direct, 99))


def run():
    """The directory's figures, printed and as a dict."""
    root = make_tempdir("tb-bench-dir-")
    cluster = Cluster(root, durable=True)
    cluster.start()
    try:
        pki = make_pki(os.path.join(root, "pki"), ["colchester", "westminster"] + cached_banks())
        seconds, col = sync(cluster, root, pki)
        api50, api99, sql50, sql99 = search(cluster, col, root, pki)
        print(f"  directory  sync {SYNC_ITEMS} offers from one peer   {seconds:7.1f} s"
              f"   {SYNC_ITEMS / seconds:8.0f} items/s")
        print(f"  directory  search over {CACHED_ITEMS} items from {CACHED_BANKS} banks, "
              f"{SEARCHES} queries one at a time:")
        print(f"               baseline tb_dir_search direct (pgbench)  p50 {sql50:6.1f} ms"
              f"   p99 {sql99:6.1f} ms")
        print(f"               GET /v1/directory                        p50 {api50:6.1f} ms"
              f"   p99 {api99:6.1f} ms   {api50 / sql50:.2f}x the baseline's time (p50)")
        return {"sync_items": SYNC_ITEMS, "sync_seconds": seconds,
                "sync_items_per_second": SYNC_ITEMS / seconds, "cached_items": CACHED_ITEMS,
                "cached_banks": CACHED_BANKS, "searches": SEARCHES,
                "search_api_p50_ms": api50, "search_api_p99_ms": api99,
                "search_direct_p50_ms": sql50, "search_direct_p99_ms": sql99}
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    print(f"bench: the shared directory; {machine()}")
    run()
