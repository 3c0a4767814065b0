#!/usr/bin/python3
"""make bench: how many exchanges a second one bank records through
timebankd's HTTP API, against the same ledger function called directly by
pgbench on the same cluster in the same run (the baseline), with the same
number of clients. The ratio is what the daemon, HTTP and JSON cost."""

import os
import platform
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tbtest import PG_BIN, Bank, Cluster, make_tempdir  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))


def machine():
    model = "unknown cpu"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


def pgbench(cluster, db):
    r = subprocess.run([f"{PG_BIN}/pgbench", "-n", "-c", str(CLIENTS), "-j", "2", "-T",
                        str(SECONDS), "-f", os.path.join(HERE, "exchange.sql"),
                        cluster.conninfo(db)], capture_output=True, text=True, check=True)
    tps = float(re.search(r"tps = ([\d.]+) \(without initial", r.stdout).group(1))
    done = int(re.search(r"number of transactions actually processed: (\d+)", r.stdout).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    return tps, done, int(failed.group(1)) if failed else 0


def wrk(bank, path, script=None):
    cmd = ["wrk", "-t", "2", "-c", str(CLIENTS), "-d", f"{SECONDS}s", "--latency"]
    if script:
        cmd += ["-s", os.path.join(HERE, script)]
    r = subprocess.run(cmd + [bank.url + path], capture_output=True, text=True, check=True,
                       env=dict(os.environ, TB_TOKEN=bank.token))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
    total = int(re.search(r"(\d+) requests in", r.stdout).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    p99 = re.search(r"99%\s+(\S+)", r.stdout).group(1)
    return rps, total, int(bad.group(1)) if bad else 0, p99


def main():
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is missing; run deploy/install-deps as root")
    root = make_tempdir("tb-bench-")
    cluster = Cluster(root, durable=True)
    cluster.start()
    try:
        db = cluster.new_database()
        bank = Bank(root, cluster.conninfo(db))
        bank.write_config("colchester", cluster.conninfo(db), floor="-100000h", pool=CLIENTS)
        bank.start()
        for i in range(100):
            bank.add_member(f"Member {i + 1}")

        base_tps, base_n, base_failed = pgbench(cluster, db)
        api_rps, api_n, api_bad, api_p99 = wrk(bank, "/v1/exchanges", "exchange.lua")
        health_rps, _, _, health_p99 = wrk(bank, "/v1/health")

        audit = bank.tbctl_json("audit")
        stored = int(cluster.psql("SELECT count(*) FROM transfers", db).stdout)
        assert bank.stop() == 0
        ratio = api_rps / base_tps
        print(f"bench: exchanges, one bank, {CLIENTS} clients, {SECONDS} s each")
        print(f"bench: machine: {machine()}")
        print(f"  baseline  ledger function direct (pgbench)   {base_tps:9.0f} exchanges/s")
        print(f"  timebankd POST /v1/exchanges (wrk)           {api_rps:9.0f} exchanges/s"
              f"   p99 {api_p99}   ratio {ratio:.2f} of baseline")
        print(f"  timebankd GET /v1/health, no database        {health_rps:9.0f} requests/s"
              f"   p99 {health_p99}")
        print(f"  books after the run: {stored} transfers ({base_n} by pgbench, {api_n} answered "
              f"to wrk, {stored - base_n - api_n} in flight when it stopped, "
              f"{api_bad + base_failed} refused); audit {'ok' if audit['ok'] else 'FAILED'}")
        # wrk stops counting with up to one request per client still in
        # flight; those are recorded too.
        if (not audit["ok"] or api_bad or base_failed
                or not base_n + api_n <= stored <= base_n + api_n + CLIENTS):
            sys.exit("bench: the books do not add up after the run")
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
