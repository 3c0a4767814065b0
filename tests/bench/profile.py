#!/usr/bin/python3
"""make profile: how many instructions PostgreSQL spends on one exchange, on
each of the ledger's busy paths, counted with valgrind's callgrind. Counts
of instructions are repeatable where timings on a shared machine are not,
so this is how a change to the ledger's SQL is judged before make bench.

Two banks are made as make bench makes them (colchester and westminster,
100 members each, linked), then stopped. Each path runs in a single-user
PostgreSQL backend on a copy of its bank's database, once with 10 messages
of 32 exchanges and once with 40; the difference, divided by 960, is the
cost of one exchange with the start-up and the first plans left out. The
same with messages of one exchange, less that, is what each message (a
batch, at the payer's bank) costs beyond its exchanges: the part that
larger batches share out.

  local   batches of exchanges between members (tb_exchange_batch)
  payer   at colchester: batches of cross-bank exchanges recorded and
          proposed, each message sealed, then the other bank's answers
          applied (tb_exchange_batch, tb_fed_to_seal, tb_fed_seal,
          tb_fed_outbox, tb_fed_acked, tb_fed_apply)
  earner  at westminster: messages of proposals applied, the answers sealed

The daemon's own work (signing, TLS, HTTP) is not in these counts: the
envelopes sealed here are the bodies' text with a made-up hash, built in
SQL, which the figures include. PROFILE_ITEMS changes the 32."""

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from bench import network  # noqa: E402
from tbtest import AS_ROOT, PG_BIN, PG_USER, as_pg_user, make_tempdir  # noqa: E402

ITEMS = int(os.environ.get("PROFILE_ITEMS", "32"))
FEW, MANY = 10, 40
BANK_OF = {"local": "colchester", "payer": "colchester", "earner": "westminster"}


def seal(peer):
    """What the daemon's sealing asks of the database, with the signing
    left out: what to seal, the envelopes stored, the sealed ones read
    back, the peer's acknowledgement."""
    return [
        "SELECT length(tb_fed_to_seal(1000)::text);",
        "SELECT length(tb_fed_seal((SELECT jsonb_agg(jsonb_build_object("
        "'peer', o.peer, 'seq', o.seq, 'envelope', encode(convert_to(o.body::text, 'UTF8'), "
        "'hex'), 'hash', md5(o.seq::text) || md5(o.peer)) ORDER BY o.seq) "
        "FROM fed_outbox o WHERE envelope IS NULL))::text);",
        f"SELECT length(tb_fed_outbox('{peer}', (SELECT max(seq) - 1 FROM fed_outbox), 500)::text);",
        f"SELECT tb_fed_acked('{peer}', (SELECT max(seq) FROM fed_outbox));",
    ]


def workload(path, messages, items_per_message):
    """One statement a line, as postgres --single reads them."""
    rnd = random.Random(7)
    out = []
    envelope = lambda i: hashlib.sha256(b"env%d" % i).hexdigest() * 47  # noqa: E731
    chain = lambda i: hashlib.sha256(b"h%d" % i).hexdigest()  # noqa: E731
    for i in range(1, messages + 1):
        prev = chain(i - 1) if i > 1 else ""
        if path == "local":
            items = []
            for j in range(items_per_message):
                payer, earner = rnd.randint(1, 100), rnd.randint(1, 99)
                earner += earner >= payer
                items.append({"xb": False, "actor": "profile", "p": {
                    "payer": payer, "earner": earner, "minutes": 15 * rnd.randint(1, 4),
                    "category": "bench", "idempotency_key": f"k-{i}-{j}"}})
            out.append("SELECT count(*) FROM tb_exchange_batch('%s'::jsonb, -60000000, "
                       "'colchester');" % json.dumps(items))
        elif path == "payer":
            items = [{"xb": True, "actor": "profile", "p": {
                "payer": rnd.randint(1, 100), "bank": "westminster",
                "earner": rnd.randint(1, 100), "minutes": 15 * rnd.randint(1, 4),
                "category": "bench", "idempotency_key": f"k-{i}-{j}"}}
                for j in range(items_per_message)]
            out.append("SELECT count(*) FROM tb_exchange_batch('%s'::jsonb, -60000000, "
                       "'colchester');" % json.dumps(items))
            out += seal("westminster")
            out.append(
                "SELECT length(tb_fed_apply('westminster', jsonb_build_array(jsonb_build_object("
                f"'seq', {i}, 'prev', '{prev}', 'hash', '{chain(i)}', "
                f"'envelope', '{envelope(i)}', 'body', jsonb_build_object('kind', 'xb_answer', "
                "'items', (SELECT jsonb_agg(jsonb_build_object('xid', xid, 'accepted', true, "
                "'reason', '') ORDER BY id) FROM xb_exchanges "
                # The batch just recorded, found by key: reading the table for
                # its pending rows counted a scan that grows with every batch.
                f"WHERE id > (SELECT max(id) FROM xb_exchanges) - {items_per_message} "
                "AND state = 'pending' AND side = 'payer')))))::text);")
        else:
            items = [{"xid": f"colchester:{(i - 1) * items_per_message + j + 1}",
                      "earner": rnd.randint(1, 100), "minutes": 15 * rnd.randint(1, 4),
                      "category": "bench", "performed_on": time.strftime("%Y-%m-%d"),
                      "reverses": "", "claim": "", "contact": ""}
                     for j in range(items_per_message)]
            message = [{"seq": i, "prev": prev, "hash": chain(i), "envelope": envelope(i),
                        "body": {"kind": "xb_propose", "items": items}}]
            out.append("SELECT length(tb_fed_apply('colchester', '%s'::jsonb)::text);"
                       % json.dumps(message))
            out += seal("colchester")
    return "\n".join(out) + "\n"


def templates(net):
    """Both banks' data directories, made and stopped, to copy from."""
    banks = network(net)
    made = {}
    try:
        for bank in banks.values():
            assert bank.stop() == 0
        for name, bank in banks.items():
            bank.cluster.stop("fast")
            made[name] = (bank.cluster.data, bank.db)
    finally:
        for bank in banks.values():
            if bank.proc is not None and bank.proc.poll() is None:
                bank.proc.kill()
    return made


def instructions(template, db, path, messages, items_per_message, root):
    """callgrind's count for one single-user backend running the workload."""
    run = os.path.join(root, f"{path}-{messages}x{items_per_message}")
    subprocess.run(["cp", "-a", template, run], check=True)
    script = run + ".sql"
    with open(script, "w") as f:
        f.write(workload(path, messages, items_per_message))
    os.chmod(script, 0o644)
    out = run + ".callgrind"
    with open(script) as stdin:
        r = subprocess.run(as_pg_user(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                       f"{PG_BIN}/postgres", "--single", "-D", run, db]),
                           stdin=stdin, capture_output=True, text=True, cwd="/")
    if r.returncode != 0 or "ERROR:" in r.stdout + r.stderr:
        sys.exit(f"profile: the {path} workload failed:\n{(r.stdout + r.stderr)[-2000:]}")
    total = subprocess.run(["callgrind_annotate", out], capture_output=True, text=True,
                           check=True).stdout
    return int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", total).group(1).replace(",", ""))


def main():
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        sys.exit("profile: valgrind is missing; as root: apt-get install valgrind "
                 "(or deploy/install-deps)")
    root, net = make_tempdir("tb-profile-"), make_tempdir("tb-profile-net-")
    if AS_ROOT:
        import pwd
        pw = pwd.getpwnam(PG_USER)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    try:
        made = templates(net)
        results, fixed = {}, {}
        for path in ("local", "payer", "earner"):
            data, db = made[BANK_OF[path]]
            few = instructions(data, db, path, FEW, ITEMS, root)
            many = instructions(data, db, path, MANY, ITEMS, root)
            results[path] = (many - few) // ((MANY - FEW) * ITEMS)
            # Messages of one exchange: what a message costs beyond its
            # exchanges, the part larger batches share out.
            few = instructions(data, db, path, FEW, 1, root)
            many = instructions(data, db, path, MANY, 1, root)
            fixed[path] = (many - few) // (MANY - FEW) - results[path]
            print(f"profile: {path:7s} {results[path]:>10,} instructions per exchange "
                  f"(messages of {ITEMS}), {fixed[path]:>10,} per message", flush=True)
        out = os.path.join(bench.BUILD, "bench")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "profile.json"), "w") as f:
            json.dump({"items_per_message": ITEMS, "instructions_per_exchange": results,
                       "instructions_per_message": fixed}, f, indent=2)
    finally:
        for cluster in bench.CLUSTERS:
            shutil.rmtree(cluster.root, ignore_errors=True)
        shutil.rmtree(net, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
