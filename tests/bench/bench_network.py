#!/usr/bin/python3
"""make bench-network: a federation of N banks on this machine, N = 5, 10,
20 and 30 (BENCH_NETWORK_SIZES), every bank linked to every other and to
the national body, as in a full mesh. They share one PostgreSQL cluster, a
database each (an external conninfo), to keep the machine's memory for the
daemons; the cluster is durable, as PostgreSQL ships. Each bank has 200
members and shares 1,000 directory items. For each N:

1. the time from start to a full mesh, and until every bank holds every
   other bank's directory;
2. a quiet network: each daemon's CPU, in % of one core, and the messages
   it sends and receives a second, over 60 s with nothing happening (and,
   at the largest N, over a whole heartbeat, 310 s, so that the pings and
   checkpoints every quiet link still makes are counted);
3. each daemon's memory and each database's size;
4. cross-bank exchanges between random pairs, offered at 200 a second
   across the network: p50 and p99 from submission until settled at both
   banks;
5. the national body: from every bank sending its month's report until the
   observer holds them all, and the time of its summary of the month.

Printed, and written to build/bench/network.json."""

import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tbtest import (BUILD, Bank, Cluster, federation_config, free_port,  # noqa: E402
                    make_pki, make_tempdir)
from bench import TBLOAD, decided, proc_cpu  # noqa: E402
from bench_directory import ITEM_SQL, item_columns, machine, percentile  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_NETWORK_SIZES", "5,10,20,30").split(",")]
MEMBERS = 200
ITEMS = 1000
IDLE_SECONDS = float(os.environ.get("BENCH_NETWORK_IDLE", "60"))
# A whole heartbeat (FED_HEARTBEAT_SECONDS) and a round: 0 leaves it out.
STEADY_SECONDS = float(os.environ.get("BENCH_NETWORK_STEADY", "310"))
RATE = float(os.environ.get("BENCH_NETWORK_RATE", "200"))
LOAD_SECONDS = float(os.environ.get("BENCH_NETWORK_LOAD", "20"))
POOL = 2
NATIONAL = "national"
MONTH = datetime.date.today().strftime("%Y-%m")


def names(n):
    return [f"bank{i:02d}" for i in range(1, n + 1)]


def metrics(bank):
    """The daemon's /metrics as {name with labels: value}."""
    with urllib.request.urlopen(bank.url + "/metrics", timeout=30) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out


def metric_sum(m, prefix):
    return sum(v for k, v in m.items() if k.startswith(prefix))


def template(cluster, root):
    """A database with the schema made, to copy for each bank: a daemon
    made it once, with no federation."""
    db = "tmpl"
    cluster.psql(f"CREATE DATABASE {db}")
    bank = Bank(os.path.join(root), cluster.conninfo(db), bank_id="template")
    bank.start()
    assert bank.stop() == 0
    return db


def populate(cluster, db, b):
    kind, cat, text, area, avail = item_columns("g")
    cluster.psql("SELECT tb_member_add(jsonb_build_object('name', 'Member ' || g), 'bench') "
                 f"FROM generate_series(1, {MEMBERS}) g", db)
    cluster.psql(f"""
        INSERT INTO dir_items (handle, member_account, kind, category, text, area,
                               availability, visibility, expires_on, created_by, updated_by,
                               approved_by, approved_at)
        SELECT left(md5('{b}' || g), 12),
               (SELECT account_id FROM members WHERE number = 1 + g % {MEMBERS}),
               {kind}, {cat}, {text}, {area}, {avail}, 'federation', current_date + 100,
               'bench', 'bench', 'bench', now()
          FROM generate_series(1, {ITEMS}) g, (SELECT {ITEM_SQL}) v""", db)


def network(n, root, pki):
    """N banks and the national body, configured and their databases
    filled, not started."""
    cluster = Cluster(make_tempdir("tb-bench-net-pg-"), durable=True,
                      settings={"max_connections": (n + 1) * (POOL + 3) + 20,
                                "shared_buffers": "256MB"})
    cluster.start()
    tmpl = template(cluster, root)
    banks = names(n)
    ports = {b: free_port() for b in banks + [NATIONAL]}
    out = {}
    for b in banks + [NATIONAL]:
        db = f"db_{b}"
        cluster.psql(f"CREATE DATABASE {db} TEMPLATE {tmpl}")
        if b != NATIONAL:
            populate(cluster, db, b)
        peers = {p: ports[p] for p in banks + [NATIONAL] if p != b and
                 (b != NATIONAL or p != NATIONAL)}
        extra = federation_config(pki, b, ports[b], peers,
                                  "role = observer\n" if b == NATIONAL else "",
                                  observers=() if b == NATIONAL else (NATIONAL,))
        # Room for every exchange of the run, each way.
        for p in peers:
            extra = extra.replace(f"[peer {p}]\n", f"[peer {p}]\nexposure_limit = 100000h\n")
        bank = Bank(root, cluster.conninfo(db), bank_id=b)
        bank.write_config(b, cluster.conninfo(db), extra=extra, floor="-1000000h", pool=POOL)
        bank.cluster, bank.db = cluster, db
        out[b] = bank
    return cluster, out


def wait(check, timeout, what):
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            sys.exit(f"bench: {what} not reached in {timeout} s")
        time.sleep(0.1)
    return time.perf_counter()


def meshed(banks):
    for bank in banks.values():
        peers = bank.api("GET", "/v1/peers")[1]["peers"]
        if len(peers) != len(banks) - 1 or any(p["state"] != "established" for p in peers):
            return False
    return True


def directories_held(banks, n):
    for b, bank in banks.items():
        if b != NATIONAL and metric_sum(
                metrics(bank), "timebankd_peer_directory_items_applied_total") < ITEMS * (n - 1):
            return False
    return True


def cluster_cpu(cluster):
    """CPU seconds of the cluster's postmaster and every process under it."""
    with open(os.path.join(cluster.data, "postmaster.pid")) as f:
        pm = int(f.readline())
    _, own, reaped = proc_cpu(pm)
    total = own + reaped
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid, cpu, _ = proc_cpu(int(d))
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pm:
                total += cpu
    return total


def quiet(banks, cluster, seconds):
    """Per daemon over seconds with nothing asked of it: % of one core and
    messages sent and received a second; and the cluster's % of a core."""
    def snap():
        out = {}
        for b, bank in banks.items():
            m = metrics(bank)
            out[b] = (proc_cpu(bank.proc.pid)[1], m["timebankd_fed_frames_sent_total"],
                      m["timebankd_fed_frames_received_total"])
        return out, cluster_cpu(cluster), time.perf_counter()
    before, pg0, t0 = snap()
    time.sleep(seconds)
    after, pg1, t1 = snap()
    span = t1 - t0
    per = {b: {"cpu_pct": round((after[b][0] - before[b][0]) / span * 100, 3),
               "sent_per_s": round((after[b][1] - before[b][1]) / span, 3),
               "received_per_s": round((after[b][2] - before[b][2]) / span, 3)}
           for b in banks}
    return per, round((pg1 - pg0) / span * 100, 2), span


def exchanges(banks, root):
    """Offered at RATE a second across the network, each bank's members
    paying members of random other banks: (p50 ms, p99 ms, settled,
    rejected, missed)."""
    bank_ids = [b for b in banks if b != NATIONAL]
    loads = []
    for b in bank_ids:
        others = ",".join(x for x in bank_ids if x != b)
        xids = os.path.join(root, f"xids-{b}")
        p = subprocess.Popen([TBLOAD, "--url", banks[b].url, "--token", banks[b].token,
                              "--connections", "4", "--seconds", str(LOAD_SECONDS),
                              "--rate", str(RATE / len(bank_ids)), "--payers", f"1-{MEMBERS}",
                              "--earners", f"1-{MEMBERS}", "--earner-bank", others,
                              "--xids", xids], stdout=subprocess.PIPE, text=True)
        loads.append((b, p, xids))
    missed = 0
    for b, p, _ in loads:
        out = json.loads(p.stdout.read())
        if p.wait() != 0 or out["errors"]:
            sys.exit(f"bench: tbload at {b} failed: {out}")
        missed += out["missed"]
    lat, rejected = [], 0
    for b, _, xids in loads:
        bank_lat, _, _, bank_rejected = decided(banks[b], xids)
        lat += bank_lat
        rejected += bank_rejected
    lat.sort()
    return percentile(lat, 50), percentile(lat, 99), len(lat), rejected, missed


def reports(banks):
    """(s until the observer holds this month's report, as sent now, from
    every bank; ms for its summary of the month)."""
    national = banks[NATIONAL]
    bank_ids = [b for b in banks if b != NATIONAL]

    def revisions():
        rows = national.cluster.psql(
            f"SELECT bank, max(revision) FROM network_reports WHERE month = '{MONTH}-01' "
            "GROUP BY bank", national.db).stdout.split()
        return dict((r.split("|")[0], int(r.split("|")[1])) for r in rows)
    before = revisions()
    start = time.perf_counter()
    for b in bank_ids:
        status, out = banks[b].api("POST", f"/v1/reports/network/send?month={MONTH}")
        assert status // 100 == 2 and out["queued"], out
    end = wait(lambda: all(revisions().get(b, 0) > before.get(b, 0) for b in bank_ids), 300,
               "every bank's report at the national body")
    t = time.perf_counter()
    status, out = national.api("GET", f"/v1/network/summary?month={MONTH}")
    summary_ms = (time.perf_counter() - t) * 1000
    assert status == 200, out
    assert out["months"][0]["banks"] == len(bank_ids), out["months"]
    return end - start, summary_ms


def rss_mib(bank):
    with open(f"/proc/{bank.proc.pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def phase(n, what):
    print(f"  [N = {n}] {time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def run_size(n, root, pki, steady):
    phase(n, "making the network")
    root = os.path.join(root, f"n{n}")
    os.mkdir(root)
    cluster, banks = network(n, root, pki)
    try:
        phase(n, "starting")
        start = time.perf_counter()
        for bank in banks.values():
            bank.start(wait=False)
        for bank in banks.values():
            bank.wait_healthy(timeout=120)
        mesh_s = wait(lambda: meshed(banks), 300, "a full mesh") - start
        dir_s = wait(lambda: directories_held(banks, n), 600, "every directory held") - start
        phase(n, "meshed and every directory held; quiet")
        time.sleep(2 * 10)  # two rounds: the last checkpoints of the start go
        idle, idle_pg, idle_span = quiet(banks, cluster, IDLE_SECONDS)
        rss = {b: rss_mib(bank) for b, bank in banks.items()}
        sizes = {b: int(cluster.psql(f"SELECT pg_database_size('{bank.db}')").stdout)
                 for b, bank in banks.items()}
        phase(n, "exchanges")
        x50, x99, settled, rejected, missed = exchanges(banks, root)
        phase(n, "reports")
        report_s, summary_ms = reports(banks)
        audits = {b: bank.tbctl_json("audit", "--federation")["ok"]
                  for b, bank in banks.items() if b != NATIONAL}
        long_idle = None
        if steady:
            time.sleep(2 * 10)
            per, pg, span = quiet(banks, cluster, STEADY_SECONDS)
            long_idle = {"seconds": round(span, 1), "per_daemon": per, "postgres_cpu_pct": pg}
        for bank in banks.values():
            assert bank.stop() == 0, bank.log_text()
        bank_ids = [b for b in banks if b != NATIONAL]
        return {
            "banks": n, "mesh_links": n * (n - 1) // 2 + n,
            "mesh_seconds": round(mesh_s, 2), "directories_seconds": round(dir_s, 2),
            "idle": {"seconds": round(idle_span, 1), "per_daemon": idle,
                     "postgres_cpu_pct": idle_pg},
            "steady_idle": long_idle,
            "rss_mib": {b: round(v[0], 1) for b, v in rss.items()},
            "peak_rss_mib": {b: round(v[1], 1) for b, v in rss.items()},
            "database_bytes": sizes,
            "exchanges": {"offered_per_s": RATE, "seconds": LOAD_SECONDS, "settled": settled,
                          "rejected": rejected, "missed": missed,
                          "p50_ms": round(x50, 1), "p99_ms": round(x99, 1)},
            "reports": {"banks": len(bank_ids), "ingest_seconds": round(report_s, 2),
                        "summary_ms": round(summary_ms, 1)},
            "audits_ok": all(audits.values()),
        }
    finally:
        for bank in banks.values():
            if bank.proc is not None:
                bank.proc.kill()
                bank.proc.wait()
        cluster.stop("immediate")
        if not os.environ.get("KEEP"):
            shutil.rmtree(cluster.root, ignore_errors=True)


def worst(per, key):
    return max(v[key] for v in per.values())


def mean(values):
    values = list(values)
    return sum(values) / len(values)


def show(r):
    banks = {b: v for b, v in r["idle"]["per_daemon"].items() if b != NATIONAL}
    rss = [v for b, v in r["rss_mib"].items() if b != NATIONAL]
    db = [v for b, v in r["database_bytes"].items() if b != NATIONAL]
    print(f"  N = {r['banks']:2d}: mesh {r['mesh_seconds']:5.1f} s, every directory "
          f"{r['directories_seconds']:5.1f} s; {r['mesh_links']} links")
    print(f"          idle {r['idle']['seconds']:.0f} s: CPU per bank mean "
          f"{mean(v['cpu_pct'] for v in banks.values()):.3f}% max "
          f"{worst(banks, 'cpu_pct'):.3f}% (national "
          f"{r['idle']['per_daemon'][NATIONAL]['cpu_pct']:.3f}%), PostgreSQL "
          f"{r['idle']['postgres_cpu_pct']:.2f}%; messages/s per bank sent max "
          f"{worst(banks, 'sent_per_s'):.2f}, received max {worst(banks, 'received_per_s'):.2f}")
    if r["steady_idle"]:
        s = {b: v for b, v in r["steady_idle"]["per_daemon"].items() if b != NATIONAL}
        print(f"          a whole heartbeat, {r['steady_idle']['seconds']:.0f} s: CPU per bank "
              f"max {worst(s, 'cpu_pct'):.3f}%, messages/s sent max {worst(s, 'sent_per_s'):.2f}"
              f", received max {worst(s, 'received_per_s'):.2f}; PostgreSQL "
              f"{r['steady_idle']['postgres_cpu_pct']:.2f}%")
    print(f"          memory per bank {mean(rss):.1f} MiB mean, {max(rss):.1f} max (national "
          f"{r['rss_mib'][NATIONAL]:.1f}); database {mean(db) / 2**20:.1f} MiB mean")
    x = r["exchanges"]
    print(f"          cross-bank at {x['offered_per_s']:.0f}/s offered: {x['settled']} settled, "
          f"p50 {x['p50_ms']:.1f} ms p99 {x['p99_ms']:.1f} ms ({x['rejected']} rejected, "
          f"{x['missed']} missed)")
    print(f"          national body: {r['reports']['banks']} reports in "
          f"{r['reports']['ingest_seconds']:.2f} s, summary {r['reports']['summary_ms']:.0f} ms;"
          f" audits {'ok' if r['audits_ok'] else 'NOT OK'}")


def main():
    if not os.path.exists(TBLOAD):
        sys.exit("bench: build/tbload is missing; run make bench-network")
    root = make_tempdir("tb-bench-net-")
    try:
        pki = make_pki(os.path.join(root, "pki"), names(max(SIZES)) + [NATIONAL])
        print(f"bench-network: {machine()}; one PostgreSQL cluster, a database per bank; "
              f"{MEMBERS} members and {ITEMS} directory items per bank")
        results = []
        for n in SIZES:
            r = run_size(n, root, pki, steady=STEADY_SECONDS > 0 and n == max(SIZES))
            show(r)
            sys.stdout.flush()
            results.append(r)
        out = os.path.join(BUILD, "bench")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "network.json"), "w") as f:
            json.dump({"machine": machine(), "members": MEMBERS, "items": ITEMS,
                       "sizes": results}, f, indent=2)
        if not all(r["audits_ok"] for r in results) or any(
                r["exchanges"]["rejected"] for r in results):
            sys.exit("bench: books that do not add up, or exchanges rejected (see above)")
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
