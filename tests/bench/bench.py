#!/usr/bin/python3
"""make bench: the federation's throughput and latency against PostgreSQL's
own commit rate, measured in one run. Two banks, colchester and
westminster, each with a PostgreSQL cluster of its own (fsync and
synchronous_commit on, as PostgreSQL ships), linked over mutual TLS:

1. the baseline: pgbench's TPC-B-like rate, 8 clients, on colchester's cluster,
   the mean of a run before the daemons' loads and one after;
2. local exchanges per second through colchester's admin API, from many
   keep-alive connections (tbload, the project's load generator), p50/p99;
3. cross-bank exchanges per second from submission at colchester until
   settled at both banks, p50/p99;
4. the shared directory (bench_directory.py): sync and search;
5. each daemon's peak resident memory;
6. for each load, the CPU each part of the machine spent per exchange (each
   daemon, each PostgreSQL cluster, tbload) and how busy the cores were: a
   load that keeps the cores busy is limited by CPU, so its rate moves with
   the machine's speed while the disk-bound baseline need not.

Rates are also given as ratios to the baseline. Everything goes to
build/bench/results.json too."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tbtest import (BUILD, PG_BIN, Bank, Cluster, federation_config, free_port,  # noqa: E402
                    make_pki, make_tempdir)
import bench_directory  # noqa: E402
from bench_directory import machine  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
MEMBERS = 100
TBLOAD = os.path.join(BUILD, "tbload")
CLUSTERS = []


def tpcb(cluster, db=None):
    if db is None:
        db = cluster.new_database()
        subprocess.run([f"{PG_BIN}/pgbench", "-i", "-q", "-s", "8", cluster.conninfo(db)],
                       check=True, capture_output=True)
    # Each run starts with nothing left for the checkpointer to write: not
    # pgbench's load, nor the daemons'.
    cluster.psql("CHECKPOINT", db)
    r = subprocess.run([f"{PG_BIN}/pgbench", "-n", "-c", "8", "-j", "2", "-T",
                        str(int(SECONDS)), cluster.conninfo(db)],
                       capture_output=True, text=True, check=True)
    return float(re.search(r"tps = ([\d.]+) \(without initial", r.stdout).group(1)), db


def checkpoint(banks):
    """Each load starts, as each pgbench run does, with nothing left for
    the checkpointer to write from the load before it. Without this, the
    WAL of pgbench's run and the local load (about 250 MB each) asked for a
    checkpoint that fell in the cross-bank load."""
    for bank in banks.values():
        bank.cluster.psql("CHECKPOINT", bank.db)


def tbload(bank, *args):
    """tbload's summary, with the CPU seconds it used itself (cpu_s)."""
    p = subprocess.Popen([TBLOAD, "--url", bank.url, "--token", bank.token, "--connections",
                          str(CONNECTIONS), "--seconds", str(SECONDS),
                          "--payers", f"1-{MEMBERS}", "--earners", f"1-{MEMBERS}", *args],
                         stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stdout.close()
    if p.returncode != 0:
        sys.exit(f"bench: tbload failed ({p.returncode})")
    return dict(json.loads(out), cpu_s=usage.ru_utime + usage.ru_stime)


TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """(parent pid, CPU seconds of pid, CPU seconds of its children it reaped)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK,
            (int(fields[13]) + int(fields[14])) / TICK)


def cpu_snapshot(banks):
    """CPU seconds so far of each daemon and each cluster (its postmaster,
    every process it started, and those it has reaped), and the machine's
    (busy, all) CPU seconds from /proc/stat."""
    postmasters = {}
    snap = {}
    for b, bank in banks.items():
        snap[f"{b} daemon"] = proc_cpu(bank.proc.pid)[1]
        with open(os.path.join(bank.cluster.data, "postmaster.pid")) as f:
            pm = int(f.readline())
        _, own, reaped = proc_cpu(pm)
        postmasters[pm] = f"{b} PostgreSQL"
        snap[postmasters[pm]] = own + reaped
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid, own, _ = proc_cpu(int(d))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid in postmasters:
            snap[postmasters[ppid]] += own
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    snap["machine"] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))  # less idle and iowait
    return snap


def cpu_per_exchange(before, loaded, after, tbload_s, n):
    """Microseconds of CPU per exchange for each part from before to after,
    and in all; and the share of the machine's cores that were busy from
    before until the load generator stopped (loaded)."""
    us = {k: round((after[k] - before[k]) / n * 1e6, 1) for k in before if k != "machine"}
    us["tbload"] = round(tbload_s / n * 1e6, 1)
    us["in all"] = round(sum(us.values()), 1)
    busy, ticks = (loaded["machine"][i] - before["machine"][i] for i in (0, 1))
    return us, round(busy / ticks, 3)


def cpu_line(us, busy):
    return (f"               CPU per exchange, us: " +
            ", ".join(f"{k} {v:.0f}" for k, v in us.items()) +
            f"; cores busy {busy * 100:.0f}%")


def peak_rss_mib(bank):
    with open(f"/proc/{bank.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def network(root):
    pki = make_pki(os.path.join(root, "pki"), ["colchester", "westminster"])
    ports = {"colchester": free_port(), "westminster": free_port()}
    banks = {}
    for b, other in (("colchester", "westminster"), ("westminster", "colchester")):
        cluster = Cluster(make_tempdir(f"tb-bench-{b}-"), durable=True)
        cluster.start()
        CLUSTERS.append(cluster)
        db = cluster.new_database()
        bank = Bank(root, cluster.conninfo(db), bank_id=b)
        extra = federation_config(pki, b, ports[b], {other: ports[other]})
        # Enough room for every exchange of the run, one way.
        extra = extra.replace(f"[peer {other}]\n", f"[peer {other}]\nexposure_limit = 100000h\n")
        bank.write_config(b, cluster.conninfo(db), extra=extra, floor="-1000000h", pool=8)
        bank.cluster, bank.db = cluster, db
        banks[b] = bank.start()
        cluster.psql("SELECT tb_member_add(jsonb_build_object('name', 'Member ' || g), 'bench') "
                     f"FROM generate_series(1, {MEMBERS}) g", db)
    return banks


def decided(col, xids_file):
    """Once every exchange the payer's bank col holds is decided: (ms from
    submission to settled at both banks, sorted; when each settled, in us;
    when each was sent, in us; how many were rejected). The payer's bank
    settles when the earner's answer is applied."""
    sent = {}
    with open(xids_file) as f:
        for line in f:
            xid, us = line.split()
            sent[xid] = int(us)
    deadline = time.time() + 300
    while time.time() < deadline:
        pending = int(col.cluster.psql("SELECT count(*) FROM xb_exchanges WHERE state = "
                                       "'pending'", col.db).stdout)
        if pending == 0:
            break
        time.sleep(0.2)
    else:
        sys.exit("bench: cross-bank exchanges still pending after 5 minutes")
    rows = col.cluster.psql("SELECT xid, state, (extract(epoch FROM decided_at) * 1e6)::bigint "
                            "FROM xb_exchanges WHERE side = 'payer'", col.db).stdout.split()
    lat, done, rejected = [], [], 0
    for row in rows:
        xid, state, at = row.split("|")
        if xid not in sent:
            continue
        if state != "settled":
            rejected += 1
            continue
        lat.append((int(at) - sent[xid]) / 1000)
        done.append(int(at))
    lat.sort()
    return lat, done, sent, rejected


def settled(col, xids_file):
    """(settled per second, p50 ms, p99 ms, rejected), from submission to
    settled at both banks."""
    lat, done, sent, rejected = decided(col, xids_file)
    span = (max(done) - min(sent.values())) / 1e6
    return (len(done) / span, lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            rejected)


def main():
    if not os.path.exists(TBLOAD):
        sys.exit("bench: build/tbload is missing; run make bench")
    root = make_tempdir("tb-bench-")
    banks = {}
    try:
        banks = network(root)
        col, wes = banks["colchester"], banks["westminster"]
        # The baseline before and after the daemons' loads: the machine's
        # disk speed drifts over minutes, and the mean of the two brackets
        # the loads.
        before, tpcb_db = tpcb(col.cluster)
        checkpoint(banks)
        cpu0 = cpu_snapshot(banks)
        local = tbload(col)
        cpu1 = cpu_snapshot(banks)
        local_cpu = cpu_per_exchange(cpu0, cpu1, cpu1, local["cpu_s"], local["recorded"])
        xids = os.path.join(root, "xids")
        checkpoint(banks)
        cpu0 = cpu_snapshot(banks)
        cross = tbload(col, "--earner-bank", "westminster", "--xids", xids)
        cpu1 = cpu_snapshot(banks)
        x_rate, x50, x99, rejected = settled(col, xids)
        # CPU until the last is settled: the settling is the load's work too.
        cross_cpu = cpu_per_exchange(cpu0, cpu1, cpu_snapshot(banks), cross["cpu_s"],
                                     cross["recorded"])
        after, _ = tpcb(col.cluster, tpcb_db)
        base = (before + after) / 2
        rss = {b: peak_rss_mib(bank) for b, bank in banks.items()}
        if os.environ.get("BENCH_PROFILE"):
            time.sleep(1)  # function statistics are flushed once a second
            for b, bank in banks.items():
                print(f"-- {b}: the ledger's functions by their own time (ms)")
                print(bank.cluster.psql(
                    "SELECT funcname, calls, round(self_time) FROM pg_stat_user_functions "
                    "ORDER BY self_time DESC LIMIT 12", bank.db).stdout)
        audits = {b: bank.tbctl_json("audit")["ok"] for b, bank in banks.items()}
        for bank in banks.values():
            assert bank.stop() == 0
        banks = {}
        results = {
            "machine": machine(), "seconds": SECONDS, "connections": CONNECTIONS,
            "baseline_tpcb_tps": base, "baseline_before_after": [before, after],
            "local": dict(local, ratio=local["rate"] / base,
                          cpu_us_per_exchange=local_cpu[0], cores_busy=local_cpu[1]),
            "cross_bank": {"submitted": cross["recorded"], "submit": cross,
                           "settled_rate": x_rate, "ratio": x_rate / base,
                           "p50_ms": x50, "p99_ms": x99, "rejected": rejected,
                           "cpu_us_per_exchange": cross_cpu[0], "cores_busy": cross_cpu[1]},
            "peak_rss_mib": rss, "audits_ok": audits,
        }
        print(f"bench: {machine()}; {CONNECTIONS} connections, {SECONDS:g} s per load")
        print(f"  baseline   pgbench TPC-B-like, 8 clients        {base:8.0f} tps"
              f"   (before the loads {before:.0f}, after {after:.0f})")
        print(f"  local      POST /v1/exchanges                   {local['rate']:8.0f} /s"
              f"   {local['rate'] / base:5.2f}x   p50 {local['p50_ms']:6.1f} ms"
              f"   p99 {local['p99_ms']:6.1f} ms   refused {local['errors'] or 'none'}")
        print(cpu_line(*local_cpu))
        print(f"  cross-bank submitted to settled at both banks  {x_rate:8.0f} /s"
              f"   {x_rate / base:5.2f}x   p50 {x50:6.1f} ms   p99 {x99:6.1f} ms"
              f"   ({cross['recorded']} exchanges, {rejected} rejected)")
        print(cpu_line(*cross_cpu))
        print("  peak resident memory: " +
              ", ".join(f"{b} {m:.1f} MiB" for b, m in rss.items()))
        print(f"  audits after the run: {audits}")
        if os.environ.get("BENCH_DIRECTORY", "1") != "0":
            results["directory"] = bench_directory.run()
        out = os.path.join(BUILD, "bench")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        if not all(audits.values()) or local["errors"] or cross["errors"] or rejected:
            sys.exit("bench: refusals or books that do not add up (see above)")
    finally:
        for bank in banks.values():
            if bank.proc is not None:
                bank.proc.kill()
        for cluster in CLUSTERS:
            try:
                cluster.stop("immediate")
            except subprocess.CalledProcessError:
                pass
            if not os.environ.get("KEEP"):  # KEEP=1 leaves logs and clusters to look at
                shutil.rmtree(cluster.root, ignore_errors=True)
        if not os.environ.get("KEEP"):
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
