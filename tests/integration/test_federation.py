"""The federation link: real daemons, real TLS with certificates made by
deploy/pki/tbpki, real PostgreSQL. Strangers and misbehaving peers are
refused and change nothing; the channel delivers exactly once, in order,
through kills and database restarts."""

import http.client
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

import wire
from tbtest import (TBPKI, TIMEBANKD, Bank, Managed, federation_config, free_port, make_pki, peer_state,
                    wait_for)

BANKS = ["colchester", "westminster", "cheshire"]


def start_network(cluster, workdir, running=("colchester", "westminster"), settings="",
                  nofile=None):
    """colchester, westminster and cheshire peer with each other; only the
    running ones are real daemons (a test may speak for the others). Each
    has a database on cluster, or with cluster None its own managed one.
    settings go into each [federation]; nofile is colchester's descriptor
    limit."""
    pki = os.path.join(workdir, "pki")
    if not os.path.exists(pki):
        make_pki(pki, BANKS + ["mallory"])
    ports = {b: free_port() for b in BANKS}
    banks = {}
    for b in running:
        peers = {p: ports[p] for p in BANKS if p != b}
        db = cluster.new_database() if cluster is not None else "timebank"
        bank = Bank(workdir, cluster.conninfo(db) if cluster is not None else "managed",
                    bank_id=b, extra=federation_config(pki, b, ports[b], peers, settings))
        bank.db = db
        bank.cluster = cluster or Managed(os.path.join(workdir, f"{b}-data"))
        banks[b] = bank.start(nofile=nofile if b == "colchester" else None)
    return SimpleNamespace(pki=pki, ports=ports, banks=banks, workdir=workdir, cluster=cluster)


@pytest.fixture
def net(cluster, workdir):
    n = start_network(cluster, workdir)
    yield n
    for b in n.banks.values():
        if b.proc is not None:
            assert b.stop() == 0, b.log_text()


def received(bank, peer):
    """(count, seqs in order, all n == seq) of test messages from peer."""
    rows = bank.cluster.psql(f"SELECT seq, n FROM fed_test_received WHERE peer = '{peer}' "
                             "ORDER BY seq", bank.db).stdout.split()
    pairs = [tuple(map(int, r.split("|"))) for r in rows]
    return len(pairs), [s for s, _ in pairs], all(s == n for s, n in pairs)


def established(bank, peer):
    return peer_state(bank, peer)["state"] == "established"


def test_peers_link_up_and_show_established(net):
    col, wes = net.banks["colchester"], net.banks["westminster"]
    wait_for(lambda: established(col, "westminster") and established(wes, "colchester"),
             what="the link")
    text = col.tbctl("peers", check=True).stdout
    assert "westminster" in text and "established" in text
    peers = col.tbctl_json("peers")
    assert peers["bank"] == "colchester" and peers["role"] == "bank"
    states = {p["peer"]: p["state"] for p in peers["peers"]}
    assert states["westminster"] == "established"
    assert states["cheshire"] in ("connecting", "backing_off")  # not running
    # Exactly one session per pair survives, though both dialed.
    time.sleep(1)
    assert established(col, "westminster") and established(wes, "colchester")


def test_channel_delivers_both_ways_in_order_exactly_once(net):
    col, wes = net.banks["colchester"], net.banks["westminster"]
    wait_for(lambda: established(col, "westminster"), what="the link")
    col.tbctl("federation", "test", "westminster", "--count", "300", check=True)
    wes.tbctl("federation", "test", "colchester", "--count", "200", check=True)
    wait_for(lambda: received(wes, "colchester")[0] == 300 and
             received(col, "westminster")[0] == 200, what="delivery")
    count, seqs, ordered = received(wes, "colchester")
    assert seqs == list(range(1, 301)) and ordered
    wait_for(lambda: peer_state(col, "westminster")["acked"] == 300, what="acks")
    assert peer_state(col, "westminster")["outbox_depth"] == 0
    # Checkpoints are exchanged every 10 s and agree.
    wait_for(lambda: peer_state(wes, "colchester")["checkpoint"] == "agree", timeout=30,
             what="a checkpoint")
    def metrics():
        conn = http.client.HTTPConnection("127.0.0.1", wes.port, timeout=10)
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    wait_for(lambda: 'timebankd_peer_established{peer="colchester"} 1' in metrics(),
             what="the established gauge")
    metrics = metrics()
    assert 'timebankd_peer_diverged{peer="colchester"} 0' in metrics
    assert 'timebankd_peer_messages_received_total{peer="colchester"} 300' in metrics
    # Both ledgers are untouched by test messages.
    assert col.tbctl_json("audit")["ok"] and wes.tbctl_json("audit")["ok"]


def frames(bank):
    """(frames sent, frames received) over the link, from /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", bank.port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    got = dict(re.findall(r"^timebankd_fed_frames_(sent|received)_total (\d+)$", text, re.M))
    return int(got["sent"]), int(got["received"])


def test_an_idle_link_is_quiet_until_something_moves(net):
    col, wes = net.banks["colchester"], net.banks["westminster"]
    wait_for(lambda: established(col, "westminster") and established(wes, "colchester"),
             what="the link")
    wait_for(lambda: peer_state(wes, "colchester")["checkpoint"] == "agree", timeout=30,
             what="a checkpoint")
    time.sleep(11)  # a round: the start's last checkpoints go
    before = frames(col), frames(wes)
    time.sleep(25)  # two and a half rounds, short of a ping or a heartbeat
    after = frames(col), frames(wes)
    assert after == before, f"an idle link sent frames: {before} then {after}"
    # Something moves: its message, the ack and the checkpoints that follow go.
    col.tbctl("federation", "test", "westminster", "--count", "1", check=True)
    wait_for(lambda: received(wes, "colchester")[0] == 1, what="delivery")
    wait_for(lambda: frames(wes)[0] > after[1][0] and frames(col)[0] > after[0][0] + 1,
             timeout=30, what="the ack and a checkpoint")
    wait_for(lambda: peer_state(wes, "colchester")["checkpoint"] == "agree", timeout=30,
             what="a checkpoint after the message")


def refused_tls(port, cert_dir, bank, ca, **kw):
    """True when the daemon refuses a TLS client showing cert_dir/bank.crt."""
    try:
        sock = wire.tls_connect(port, f"{cert_dir}/{bank}.crt", f"{cert_dir}/{bank}.key", ca,
                                **kw)
    except (ssl.SSLError, ConnectionError):
        return True
    # TLS 1.3 reports a refused client certificate after the handshake.
    return wire.closed_by_peer(sock)


def test_strangers_are_refused_and_the_daemon_serves_others(cluster, workdir):
    pki = make_pki(os.path.join(workdir, "pki"), BANKS + ["mallory"])
    # A certificate for cheshire from another CA, an expired one, a revoked one.
    make_pki(os.path.join(workdir, "other"), ["cheshire"])
    subprocess.run([TBPKI, "issue", f"{pki}/ca", "cheshire", f"{workdir}/revoked"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([TBPKI, "revoke", f"{pki}/ca", "cheshire"], check=True,
                   stdout=subprocess.DEVNULL)
    # Issued after the revocation, which takes every certificate cheshire held.
    subprocess.run([TBPKI, "issue", f"{pki}/ca", "cheshire", f"{workdir}/expired",
                    "--startdate", "20200101000000Z", "--enddate", "20200102000000Z"],
                   check=True, stdout=subprocess.DEVNULL)
    n = start_network(cluster, workdir)
    col, wes = n.banks["colchester"], n.banks["westminster"]
    port, ca = n.ports["colchester"], f"{pki}/ca/ca.crt"
    try:
        wait_for(lambda: established(col, "westminster"), what="the link")
        # Each client trusts the real CA for colchester, and shows a bad certificate.
        cases = [
            (f"{workdir}/other/cheshire", "cheshire", "certificate refused"),  # another CA
            (f"{workdir}/expired", "cheshire", "certificate has expired"),
            (f"{workdir}/revoked", "cheshire", "certificate revoked"),
            (f"{pki}/mallory", "mallory", "names mallory, which is not a peer"),
        ]
        for cert_dir, bank, reason in cases:
            assert refused_tls(port, cert_dir, bank, ca), cert_dir
            wait_for(lambda: reason in col.log_text(), timeout=10, what=reason)
        # A client that will not speak TLS 1.3.
        assert refused_tls(port, f"{pki}/cheshire", "cheshire", ca,
                           max_version=ssl.TLSVersion.TLSv1_2)
        # Plain TCP garbage.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n" + os.urandom(4096))
            assert wire.closed_by_peer(s)
        # Nothing reached the ledger or the channel, and the daemon goes on.
        assert received(col, "cheshire")[0] == 0
        assert col.api("GET", "/v1/health")[0] == 200
        assert established(col, "westminster")
        wes.tbctl("federation", "test", "colchester", "--count", "5", check=True)
        wait_for(lambda: received(col, "westminster")[0] == 5, what="delivery after refusals")
    finally:
        for b in n.banks.values():
            assert b.stop() == 0


def test_misbehaving_messages_are_refused_and_apply_nothing(net):
    col = net.banks["colchester"]
    port, pki = net.ports["colchester"], net.pki
    imp = wire.Impostor(port, pki, "cheshire", "colchester")
    wait_for(lambda: established(col, "cheshire"), what="the impostor's session")
    first, h1 = imp.message(1, b"", 1)
    imp.send_raw(wire.frame(first))
    wait_for(lambda: received(col, "cheshire")[0] == 1, what="a good message")
    imp.send_raw(wire.frame(first))  # replayed
    wait_for(lambda: peer_state(col, "cheshire")["duplicates"] == 1, what="the replay")
    # A frame over the cap: closed before anything is read or allocated.
    imp.send_raw(b"\x7f\xff\xff\xff" + b"x" * 100)
    assert wire.closed_by_peer(imp.sock)
    wait_for(lambda: "over the 1 MiB cap" in col.log_text(), timeout=10, what="the cap")

    imp = wire.Impostor(port, pki, "cheshire", "colchester")
    wait_for(lambda: established(col, "cheshire"), what="the second session")
    stranger = wire.new_signing_key(net.workdir)
    bad = []
    env, _ = imp.message(2, h1, 2)
    bad.append(env[:-3] + bytes([env[-3] ^ 1]) + env[-2:])          # tampered signature
    bad.append(imp.message(2, h1, 2, receiver="westminster")[0])      # addressed elsewhere
    bad.append(imp.message(2, h1, 2, key=stranger,
                           kid=wire.key_id(stranger))[0])            # unknown key
    bad.append(imp.message(5, h1, 5)[0])                              # a gap
    bad.append(imp.message(2, b"\x00" * 32, 2)[0])                    # a broken chain
    # (behind the gap, the broken chain is refused as a message after a
    # refused one; test_broken_chain_is_refused sends one alone)
    refused_before = peer_state(col, "cheshire")["refused"]
    for env in bad:
        imp.send_raw(wire.frame(env))
    # Five refusals on one session: it is dropped.
    assert wire.closed_by_peer(imp.sock)
    state = peer_state(col, "cheshire")
    assert state["refused"] >= refused_before + 5, col.log_text()[-3000:]
    assert received(col, "cheshire") == (1, [1], True)
    log = col.log_text()
    for reason in ("bad_signature", "wrong_receiver", "unknown_key", "gap at sequence 5",
                   "too many refused messages"):
        assert reason in log, reason
    # The misbehaving peer is refused for a while; others are served.
    assert col.api("GET", "/v1/health")[0] == 200
    assert established(col, "westminster")


def test_channel_survives_kills_and_database_restarts(own_cluster, workdir):
    n = start_network(own_cluster, workdir)
    col, wes = n.banks["colchester"], n.banks["westminster"]
    wait_for(lambda: established(col, "westminster"), what="the link")
    rng = random.Random(4)
    stop = threading.Event()
    faults = {"kills": 0, "pg_restarts": 0}
    errors = []

    def chaos():
        while not stop.is_set():
            time.sleep(rng.uniform(0.5, 1.5))
            if stop.is_set():
                break
            try:
                if faults["kills"] == 3 and faults["pg_restarts"] == 0:
                    own_cluster.stop("fast")
                    time.sleep(1)
                    own_cluster.start()
                    faults["pg_restarts"] += 1
                    continue
                victim = rng.choice([col, wes])
                victim.stop(signal.SIGKILL)
                faults["kills"] += 1
                time.sleep(rng.uniform(0.1, 0.8))
                victim.start(wait=False)
            except Exception as e:  # noqa: BLE001 - reported after the run
                errors.append(repr(e))

    def enqueue(bank, peer, total):
        sent = 0
        while sent < total:
            try:
                status, _ = bank.api("POST", "/v1/federation/test-messages",
                                     {"peer": peer, "count": 250})
            except OSError:
                status = None
            if status == 201:
                sent += 250
            time.sleep(0.25)

    def queued(bank, peer):
        return int(own_cluster.psql(f"SELECT out_next_seq - 1 FROM fed_peers WHERE peer = "
                                    f"'{peer}'", bank.db).stdout)

    def delivered():
        try:
            return (received(wes, "colchester")[0] == queued(col, "westminster") and
                    received(col, "westminster")[0] == queued(wes, "colchester"))
        except AssertionError:  # the database is being restarted
            return False

    t = threading.Thread(target=chaos)
    t.start()
    senders = [threading.Thread(target=enqueue, args=(col, "westminster", 5000)),
               threading.Thread(target=enqueue, args=(wes, "colchester", 5000))]
    for s_ in senders:
        s_.start()
    for s_ in senders:
        s_.join(timeout=300)
    # Faults go on while the last messages are delivered, then stop.
    wait_for(lambda: faults["kills"] >= 6, timeout=60, what="faults")
    stop.set()
    t.join()
    assert not errors, errors
    for bank in (col, wes):
        if bank.proc is None or bank.proc.poll() is not None:
            bank.proc = None
            bank.start(wait=False)
    col.wait_healthy()
    wes.wait_healthy()
    wait_for(delivered, timeout=180, what="every message delivered")
    assert faults["kills"] >= 6 and faults["pg_restarts"] == 1
    for receiver, sender, from_peer, to_peer in ((wes, col, "colchester", "westminster"),
                                                 (col, wes, "westminster", "colchester")):
        total = queued(sender, to_peer)
        count, seqs, ordered = received(receiver, from_peer)
        assert total >= 5000
        assert seqs == list(range(1, total + 1)) and ordered  # exactly once, in order
    assert col.tbctl_json("audit")["ok"] and wes.tbctl_json("audit")["ok"]
    for bank in (col, wes):
        assert bank.stop() == 0


def test_broken_chain_is_refused(net):
    col = net.banks["colchester"]
    imp = wire.Impostor(net.ports["colchester"], net.pki, "cheshire", "colchester")
    wait_for(lambda: established(col, "cheshire"), what="the session")
    first, h1 = imp.message(1, b"", 1)
    imp.send_raw(wire.frame(first))
    wait_for(lambda: received(col, "cheshire")[0] == 1, what="a good message")
    imp.send_raw(wire.frame(imp.message(2, b"\x11" * 32, 2)[0]))
    wait_for(lambda: "broken_chain at sequence 2" in col.log_text(), timeout=10,
             what="the refusal")
    assert received(col, "cheshire") == (1, [1], True)
    imp.close()


def test_signing_key_rotation_is_announced_and_accepted(net):
    col, wes = net.banks["colchester"], net.banks["westminster"]
    wait_for(lambda: established(wes, "colchester"), what="the link")
    col.tbctl("federation", "test", "westminster", "--count", "5", check=True)
    wait_for(lambda: received(wes, "colchester")[0] == 5, what="delivery")
    assert col.stop() == 0
    # A new signing key; westminster's config still pins the old one.
    new = os.path.join(net.workdir, "newkey")
    subprocess.run([TBPKI, "signing-key", "colchester", new], check=True)
    old = f"{net.pki}/colchester/colchester.sign.key"
    with open(col.config) as f:
        text = f.read()
    with open(col.config, "w") as f:
        f.write(text.replace(f"signing_key = {old}", f"signing_key = {new}/colchester.sign.key"
                             f"\nprevious_signing_key = {old}"))
    col.start()
    wait_for(lambda: established(wes, "colchester"), what="the link after the rotation")
    col.tbctl("federation", "test", "westminster", "--count", "5", check=True)
    wait_for(lambda: received(wes, "colchester")[0] == 10, what="delivery with the new key")
    assert received(wes, "colchester") == (10, list(range(1, 11)), True)
    assert "announced a new signing key" in wes.log_text()
    # Westminster keeps the key it learned across a restart.
    assert wes.stop() == 0
    wes.start()
    wait_for(lambda: established(wes, "colchester"), what="the link after a restart")
    col.tbctl("federation", "test", "westminster", "--count", "5", check=True)
    wait_for(lambda: received(wes, "colchester")[0] == 15, what="delivery after the restart")
    keys = wes.cluster.psql("SELECT count(*) FROM fed_peer_keys WHERE peer = 'colchester'",
                            wes.db).stdout.strip()
    assert keys == "1"


def connections(bank, peer):
    """Connections open with peer, from the daemon's metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", bank.port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    return int(re.search(rf'timebankd_peer_connections{{peer="{peer}"}} (\d+)', text).group(1))


def test_both_dialing_leaves_one_session_shown_established(net):
    """A second session with a peer that has one: the one dialed by the bank
    whose id sorts first is kept at both ends, the other closed."""
    col, wes = net.banks["colchester"], net.banks["westminster"]
    wait_for(lambda: established(col, "westminster") and established(wes, "colchester"),
             what="the link")
    wait_for(lambda: connections(col, "westminster") == 1, what="one connection")
    # westminster dials colchester while colchester's own session is up:
    # colchester sorts first, so its session stays and this one goes.
    second = wire.Impostor(net.ports["colchester"], net.pki, "westminster", "colchester")
    assert wire.closed_by_peer(second.sock)
    wait_for(lambda: connections(col, "westminster") == 1, what="the second session closed")
    assert established(col, "westminster") and established(wes, "colchester")
    # And when both restart and dial at once, one session is left at each end.
    for _ in range(3):
        assert col.stop() == 0
        col.start()
        wait_for(lambda: established(col, "westminster") and established(wes, "colchester"),
                 what="the link")
        wait_for(lambda: connections(col, "westminster") == 1 and
                 connections(wes, "colchester") == 1, what="one session at each end")
        assert established(col, "westminster") and established(wes, "colchester")


def test_a_different_message_under_an_applied_sequence_is_refused(net):
    """A peer put back to an earlier point that numbered anew: the same
    sequence for a different message is refused, logged, and the pair
    marked diverged, where the same message again is a duplicate."""
    col = net.banks["colchester"]
    port, pki = net.ports["colchester"], net.pki
    imp = wire.Impostor(port, pki, "cheshire", "colchester")
    wait_for(lambda: established(col, "cheshire"), what="the impostor's session")
    first, h1 = imp.message(1, b"", 1)
    second, _ = imp.message(2, h1, 2)
    imp.send_raw(wire.frame(first) + wire.frame(second))
    wait_for(lambda: received(col, "cheshire")[0] == 2, what="two good messages")
    imp.send_raw(wire.frame(second))  # the same again: a duplicate
    wait_for(lambda: peer_state(col, "cheshire")["duplicates"] == 1, what="the duplicate")
    assert not peer_state(col, "cheshire")["diverged"]
    forged, _ = imp.message(2, h1, 99)  # sequence 2 again, another message
    imp.send_raw(wire.frame(forged))
    wait_for(lambda: peer_state(col, "cheshire")["diverged"], what="the pair diverged")
    state = peer_state(col, "cheshire")
    assert "under sequence 2" in state["diverged_reason"]
    assert "sequence_reused" in col.log_text() and "DIVERGED" in col.log_text()
    assert received(col, "cheshire") == (2, [1, 2], True)  # nothing of it applied
    assert col.api("GET", "/v1/health")[0] == 200


def test_a_bank_put_back_to_an_earlier_point_takes_its_messages_back(net):
    """Westminster loses the end of its stream to Colchester (as a restore
    from a backup would): Colchester's hello says it applied more than
    Westminster holds. Westminster seals nothing new for it, takes 4 to 6
    back from Colchester's inbox, holds them under their numbers, and
    sends what waited after them once Colchester's checkpoint agrees."""
    col, wes = net.banks["colchester"], net.banks["westminster"]
    wait_for(lambda: established(col, "westminster") and established(wes, "colchester"),
             what="the link")
    wes.tbctl("federation", "test", "colchester", "--count", "6", check=True)
    wait_for(lambda: received(col, "westminster")[0] == 6, what="six messages")
    wait_for(lambda: peer_state(wes, "colchester")["acked"] == 6, what="their acknowledgement")
    kept = wes.cluster.psql("SELECT encode(hash, 'hex') FROM fed_outbox WHERE "
                            "peer = 'colchester' AND seq > 3 ORDER BY seq", wes.db).stdout.split()
    assert wes.stop() == 0
    # The last three, lost here as a restore would lose them.
    wes.cluster.psql("DELETE FROM fed_outbox WHERE peer = 'colchester' AND seq > 3; "
                     "UPDATE fed_sealed SET out_sealed = 3, out_head = (SELECT hash FROM "
                     "fed_outbox WHERE peer = 'colchester' AND seq = 3) "
                     "WHERE peer = 'colchester'; "
                     "UPDATE fed_acked SET out_acked = 3 WHERE peer = 'colchester'; "
                     "UPDATE fed_peers SET out_next_seq = 4 WHERE peer = 'colchester'; "
                     "SELECT tb_restored('test', NULL)", wes.db)
    # Queued while it cannot know: under 4 and 5, which name other messages.
    wes.cluster.psql("SELECT tb_fed_test_enqueue('colchester', 2, 'after')", wes.db)
    wes.start()
    wait_for(lambda: "we ask it for them back" in wes.log_text(),
             what="westminster to see it is behind")
    wait_for(lambda: peer_state(wes, "colchester").get("recovering") is None, timeout=40,
             what="the recovery to end")
    assert "are held again" in wes.log_text() and "recovered with colchester" in wes.log_text()
    assert wes.cluster.psql("SELECT encode(hash, 'hex') FROM fed_outbox WHERE "
                            "peer = 'colchester' AND seq BETWEEN 4 AND 6 ORDER BY seq",
                            wes.db).stdout.split() == kept
    # What waited went after them, as 7 and 8, and nothing was refused.
    wait_for(lambda: received(col, "westminster")[0] == 8, what="the two that waited")
    assert received(col, "westminster")[1] == list(range(1, 9))
    assert peer_state(wes, "colchester")["sealed"] == 8
    assert not peer_state(col, "westminster")["diverged"]
    assert not peer_state(wes, "colchester")["diverged"]
    assert peer_state(col, "westminster")["refused"] == 0


def test_a_peer_without_recovery_is_named_and_a_page_not_asked_for_is_refused(net):
    """Cheshire's hello says it applied five of Westminster's messages, which
    Westminster never sent. Westminster was not restored: the pair is
    diverged, and nothing is taken back. Once it says it was restored
    (timebankd --restored), the same hello starts a recovery; but Cheshire
    does not offer recovery, as an older timebankd would not, and
    Westminster says so and holds its stream to it. A page of messages it
    did not ask for is refused. Its link with Colchester goes on."""
    col, wes = net.banks["colchester"], net.banks["westminster"]
    imp = wire.Impostor(net.ports["westminster"], net.pki, "cheshire", "westminster",
                        last_applied=5)
    wait_for(lambda: peer_state(wes, "cheshire")["diverged"], what="the pair diverged")
    assert "was not put back to an earlier point" in peer_state(wes, "cheshire")["diverged_reason"]
    assert peer_state(wes, "cheshire").get("recovering") is None
    imp.close()
    assert wes.stop() == 0
    r = subprocess.run([TIMEBANKD, "--restored", "-c", wes.config], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    wes.start()
    assert "restore" in wes.log_text() and not peer_state(wes, "cheshire")["diverged"]
    imp = wire.Impostor(net.ports["westminster"], net.pki, "cheshire", "westminster",
                        last_applied=5)
    wait_for(lambda: "cannot give our messages back" in wes.log_text(),
             what="westminster to name it")
    rec = peer_state(wes, "cheshire")["recovering"]
    assert rec["stage"] == "fetching" and (rec["from"], rec["to"]) == (1, 5)
    assert "older timebankd" in wes.tbctl("peers", check=True).stdout
    imp.session_message(wire.field(30, wire.field(1, 0) + wire.field(2, 5)))
    wait_for(lambda: "a recovery page not asked for" in wes.log_text(), what="the refusal")
    assert peer_state(wes, "cheshire")["refused"] >= 1
    wait_for(lambda: established(col, "westminster"), what="the other link")
    wes.tbctl("federation", "test", "colchester", "--count", "1", check=True)
    wait_for(lambda: received(col, "westminster")[0] == 1, what="a message to colchester")
    imp.close()
