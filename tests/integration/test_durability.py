"""What a client or a peer was told survives PostgreSQL stopping at once
(pg_ctl stop -m immediate), which loses everything not yet written out of
its WAL buffers. The clusters here write their WAL only every 10 s
(wal_writer_delay) unless a commit flushes it, so whatever the daemon
announced before its WAL was flushed is lost every time, not by chance."""

import os
import shutil
import subprocess
import threading
import time

import pytest

from tbtest import (Bank, Cluster, Managed, federation_config, free_port, make_pki,
                    make_tempdir, peer_state, wait_for)
from test_federation import BANKS, established, received

LAZY_WAL = {"wal_writer_delay": "10s"}


@pytest.fixture
def lazy_cluster():
    """A cluster that leaves asynchronous commits in its WAL buffers."""
    root = make_tempdir("tb-pgl-")
    c = Cluster(root, settings=LAZY_WAL)
    c.start()
    yield c
    try:
        c.stop("immediate")
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(root, ignore_errors=True)


def crash(cluster):
    """PostgreSQL stops at once, as on a crash, and starts again."""
    cluster.stop("immediate")
    cluster.start()


def test_answered_exchanges_survive_an_immediate_stop_of_postgres(lazy_cluster, workdir):
    db = lazy_cluster.new_database()
    bank = Bank(workdir, lazy_cluster.conninfo(db)).start()
    payer = bank.add_member("Ann", floor="-1000h")
    earners = [bank.add_member(f"Earner {i}") for i in range(8)]
    told = {}  # exchange id -> minutes
    for round_ in range(3):
        answers = {}

        def record(i):
            answers[i] = bank.exchange(payer, earners[i % 8], "30m",
                                       idempotency_key=f"r{round_}-{i}")

        threads = [threading.Thread(target=record, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for status, body in answers.values():
            assert status == 201, body
            told[body["id"]] = 30
        crash(lazy_cluster)  # right after the answers left
        bank.wait_healthy()
        for xid in told:
            status, body = bank.api("GET", f"/v1/exchanges/{xid}")
            assert status == 200, f"exchange {xid} was answered, then lost: {body}"
        balance = bank.api("GET", f"/v1/members/{payer}/balance")[1]["balance_minutes"]
        assert balance == -sum(told.values())
    assert bank.tbctl_json("audit")["ok"]
    assert bank.stop() == 0


def two_banks(cluster, receiver_cluster, workdir):
    """colchester on cluster, westminster on receiver_cluster, linked."""
    pki = make_pki(os.path.join(workdir, "pki"), BANKS)
    ports = {b: free_port() for b in BANKS}
    banks = {}
    for b, c in (("colchester", cluster), ("westminster", receiver_cluster)):
        db = c.new_database()
        peers = {p: ports[p] for p in BANKS if p != b}
        bank = Bank(workdir, c.conninfo(db), bank_id=b,
                    extra=federation_config(pki, b, ports[b], peers))
        bank.db, bank.cluster = db, c
        banks[b] = bank.start()
    col, wes = banks["colchester"], banks["westminster"]
    wait_for(lambda: established(col, "westminster") and established(wes, "colchester"),
             what="the link")
    return col, wes


def test_acknowledged_messages_survive_an_immediate_stop_of_postgres(cluster, lazy_cluster,
                                                                    workdir):
    col, wes = two_banks(cluster, lazy_cluster, workdir)
    sent = 0
    for _ in range(3):
        col.tbctl("federation", "test", "westminster", "--count", "150", check=True)
        sent += 150
        wait_for(lambda: peer_state(col, "westminster")["acked"] == sent, what="the acks")
        crash(lazy_cluster)
        # Before westminster's daemon is back at its database: every message
        # colchester heard acknowledged is there.
        count, seqs, ordered = received(wes, "colchester")
        assert count == sent and seqs == list(range(1, sent + 1)) and ordered
        wes.wait_healthy()
        wait_for(lambda: established(col, "westminster"), what="the link again")
    assert peer_state(wes, "colchester")["diverged"] is False
    for b in (col, wes):
        assert b.stop() == 0


def test_a_bank_whose_database_went_back_says_so_in_its_hello(cluster, own_cluster, workdir):
    """A database put back to an earlier copy under a running daemon (a
    fail-over to a replica that lagged, a restore): the daemon reads its
    channel's state again rather than telling its peers what it held in
    memory, and the peer sends again what the copy lacks."""
    col, wes = two_banks(cluster, own_cluster, workdir)
    col.tbctl("federation", "test", "westminster", "--count", "100", check=True)
    wait_for(lambda: peer_state(col, "westminster")["acked"] == 100, what="the acks")
    own_cluster.stop("fast")
    copy = own_cluster.data + ".copy"
    subprocess.run(["cp", "-a", own_cluster.data, copy], check=True)
    own_cluster.start()
    wes.wait_healthy()
    wait_for(lambda: established(col, "westminster"), what="the link again")
    col.tbctl("federation", "test", "westminster", "--count", "100", check=True)
    wait_for(lambda: peer_state(col, "westminster")["acked"] == 200, what="the acks")
    own_cluster.stop("immediate")
    shutil.rmtree(own_cluster.data)
    os.rename(copy, own_cluster.data)
    own_cluster.start()
    wes.wait_healthy()
    wait_for(lambda: received(wes, "colchester")[0] == 200, what="the messages sent again")
    count, seqs, ordered = received(wes, "colchester")
    assert seqs == list(range(1, 201)) and ordered
    assert "reading the channel's state again" in wes.log_text()
    # Checkpoints go on agreeing: none claimed what the copy lacked.
    wait_for(lambda: peer_state(wes, "colchester")["checkpoint"] == "agree", timeout=30,
             what="a checkpoint")
    assert peer_state(wes, "colchester")["diverged"] is False
    for b in (col, wes):
        assert b.stop() == 0


def test_a_managed_cluster_that_dies_is_started_again(workdir):
    bank = Bank(workdir, "managed").start()
    cluster = Managed(os.path.join(workdir, "colchester-data"))
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    assert bank.exchange(a, b, "2")[0] == 201
    for n, mode in enumerate(("immediate", "fast"), 1):
        cluster.stop(mode)
        wait_for(lambda: bank.log_text().count("PostgreSQL is running again") == n,
                 timeout=60, what="the cluster started again")
        wait_for(lambda: bank.api("GET", "/v1/health")[0] == 200, timeout=30,
                 what="the database back")
        assert bank.exchange(a, b, "1")[0] == 201
    assert bank.tbctl_json("balance", str(b))["balance_minutes"] == 240
    log = bank.log_text()
    assert log.count("database unavailable") == 2
    assert log.count("is not running; starting it again") == 2
    assert bank.proc.poll() is None
    assert bank.stop() == 0
    assert cluster.pg_ctl("status").returncode != 0  # stopped with the daemon
