"""Joining, leaving and rotating a key through the network's register
alone: a fourth bank that no other bank's config names is added to the
register at the national body, and within 30 s every bank links to it,
settles hours with it and holds its shared offers; removed, every bank
disconnects it and refuses it; a key rotated in the register is used by
every bank, the old one within its window and not after; every daemon
restarted in the middle of a change comes back to the register in force."""

import os
import subprocess
import time

import pytest

import wire
from tbtest import TBPKI, Bank, federation_config, free_port, make_pki, peer_state, wait_for

BANKS = ["colchester", "westminster", "cheshire"]
ALL = BANKS + ["dorset"]


def state(bank, peer):
    try:
        return peer_state(bank, peer)["state"]
    except AssertionError:
        return None


class Network:
    """The national body and three banks that name each other in their
    configs, as the demo's do; dorset is made but named by none."""

    def __init__(self, cluster, workdir):
        self.cluster, self.workdir = cluster, workdir
        self.pki = make_pki(os.path.join(workdir, "pki"), ["national"] + ALL)
        for name in ("register", "cheshire-new", "cheshire-third"):
            subprocess.run([TBPKI, "signing-key", name if name == "register" else "cheshire",
                            f"{self.pki}/{name}"], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        self.ports = {b: free_port() for b in ["national"] + ALL}
        self.banks = {}
        reg = f"register_key = {self.pki}/register/register.sign.pub\n"
        self.make("national", {b: self.ports[b] for b in BANKS},
                  "role = observer\n"
                  f"register_signing_key = {self.pki}/register/register.sign.key\n")
        for b in BANKS:
            peers = {p: self.ports[p] for p in ["national"] + BANKS if p != b}
            self.make(b, peers, reg, observers=("national",))
        # Dorset's config is what the national body's kit gives it: it names
        # the national body only.
        kit = f"{self.pki}/dorset"
        subprocess.run([TBPKI, "join-kit", f"{self.pki}/ca", "dorset", kit, "--national",
                        f"national=127.0.0.1:{self.ports['national']}", "--national-pub",
                        f"{self.pki}/national/national.sign.pub", "--register-pub",
                        f"{self.pki}/register/register.sign.pub", "--listen",
                        f"127.0.0.1:{self.ports['dorset']}", "--install-dir", kit],
                       check=True, stdout=subprocess.DEVNULL)
        self.make("dorset", extra="\n" + open(f"{kit}/dorset.federation.conf").read())

    def make(self, b, peers=None, settings="", observers=(), extra=None):
        db = self.cluster.new_database()
        bank = Bank(self.workdir, self.cluster.conninfo(db), bank_id=b, extra=extra or
                    federation_config(self.pki, b, self.ports[b], peers, settings,
                                      observers=observers))
        bank.db, bank.cluster = db, self.cluster
        self.banks[b] = bank

    def nat(self):
        return self.banks["national"]

    def register(self, *args):
        return self.nat().tbctl_json("register", *args)

    def add(self, b):
        self.register("add-bank", b, "--address", f"127.0.0.1:{self.ports[b]}", "--name",
                      f"{b.title()} Time Bank", "--signing-pub",
                      f"{self.pki}/{b}/{b}.sign.pub", "--cert", f"{self.pki}/{b}/{b}.crt")

    def serial(self, b):
        return self.banks[b].api("GET", "/v1/peers")[1]["register"]["serial"]

    def join_dorset(self):
        """Dorset started, added to the register and linked to every bank."""
        dor = self.banks["dorset"]
        dor.start()
        self.add("dorset")
        self.register("publish")
        wait_for(lambda: all(self.linked("dorset", b) for b in BANKS), timeout=30,
                 what="dorset linked")
        return dor

    def linked(self, a, b):
        return (state(self.banks[a], b) == "established" and
                state(self.banks[b], a) == "established")

    def stop_all(self):
        for b in self.banks.values():
            if b.proc is not None:
                assert b.stop() == 0, b.log_text()


@pytest.fixture
def network(cluster, workdir):
    n = Network(cluster, workdir)
    for b in ["national"] + BANKS:
        n.banks[b].start()
    n.nat().tbctl("register", "init", check=True)
    for b in BANKS:
        n.add(b)
    n.register("add-bank", "national", "--address", f"127.0.0.1:{n.ports['national']}",
               "--kind", "observer", "--signing-pub", f"{n.pki}/national/national.sign.pub")
    serial = n.register("publish")["published"]["serial"]
    wait_for(lambda: all(n.serial(b) == serial for b in BANKS), what="the first register")
    yield n
    n.stop_all()


def exchange_with(payer_bank, payer, earner_bank, earner, hours=1):
    out = payer_bank.tbctl_json("exchange", "record", "--payer", str(payer), "--earner",
                                f"{earner_bank}:{earner}", "--hours", str(hours),
                                "--category", "lifts")
    assert out["state"] == "pending", out
    return out["id"]


def xb_state(bank, xid):
    return bank.tbctl_json("exchange", "show", xid)["state"]


def share(bank, member, text):
    status, out = bank.api("POST", "/v1/offers", dict(member=member, category="gardening",
                                                      text=text, visibility="federation"))
    assert status == 201, out
    if out["review"] == "waiting":
        status, out = bank.api("POST", f"/v1/offers/{out['id']}/approve",
                               token=bank.tokens["broker"])
        assert status == 200, out
    return out["handle"]


def holds(bank, peer, handle):
    return bank.cluster.psql(f"SELECT count(*) FROM dir_remote WHERE peer = '{peer}' AND "
                             f"handle = '{handle}'", bank.db).stdout.strip() == "1"


def test_a_bank_joins_through_the_register_alone_and_leaves_the_same_way(network):
    n = network
    dor = n.banks["dorset"]
    configs = {b: open(n.banks[b].config).read() for b in ["national"] + BANKS}
    dor.start()
    dee = dor.add_member("Dee")
    handle = share(dor, dee, "Help with an allotment in Dorchester")

    # Joining: added to the register and published; nobody's files change.
    n.add("dorset")
    joined = time.time()
    n.register("publish")
    wait_for(lambda: all(n.linked("dorset", b) for b in BANKS), timeout=30,
             what="dorset linked to every bank")
    took = time.time() - joined
    assert took < 30, took
    for b in BANKS:
        assert peer_state(n.banks[b], "dorset")["source"] == "register"
        assert peer_state(dor, b)["source"] == "register"
        assert "register" in n.banks[b].tbctl("peers", check=True).stdout
    assert peer_state(dor, "national")["source"] == "config"
    assert peer_state(n.nat(), "dorset")["source"] == "register"
    # Hours both ways with each bank, and Dorset's offer in each directory.
    for b in BANKS:
        bank = n.banks[b]
        member = bank.add_member(f"{b.title()} member")
        there = exchange_with(dor, dee, b, member)
        back = exchange_with(bank, member, "dorset", dee)
        wait_for(lambda: xb_state(dor, there) == "settled" and
                 xb_state(bank, back) == "settled", timeout=30, what=f"hours with {b}")
        wait_for(lambda: holds(bank, "dorset", handle), timeout=30,
                 what=f"dorset's offer at {b}")
    assert dor.tbctl_json("balance", str(dee))["balance_minutes"] == 0
    for b in ["national"] + BANKS:
        assert open(n.banks[b].config).read() == configs[b]

    # Leaving: an exchange waits for Dorset while it is away; Dorset is
    # removed; every bank disconnects it and refuses it from then on.
    col = n.banks["colchester"]
    ann = col.add_member("Ann")
    assert dor.stop() == 0, dor.log_text()
    waiting = exchange_with(col, ann, "dorset", dee, hours=2)
    n.register("remove-bank", "dorset")
    n.register("publish")
    dor.start()
    left = time.time()
    wait_for(lambda: all(state(n.banks[b], "dorset") == "removed" for b in BANKS),
             timeout=30, what="dorset removed everywhere")
    time.sleep(2)
    assert time.time() - left < 30
    for b in BANKS:
        assert state(dor, b) != "established"
        assert "no longer in the network's register" in n.banks[b].log_text()
    assert xb_state(col, waiting) == "pending"
    assert col.tbctl_json("balance", str(ann))["pending_minutes"] == 120
    status, out = col.api("POST", "/v1/exchanges", dict(payer=ann, earner="dorset:1",
                                                        minutes=60, category="lifts"))
    assert status == 422 and out["error"]["code"] == "not_exchanging", out
    assert "no longer in the network's register" in out["error"]["message"]
    wait_for(lambda: not holds(col, "dorset", handle), what="dorset's offer gone")
    # Its certificate is refused by a bank it dials.
    imp = wire.Impostor(n.ports["westminster"], n.pki, "dorset", "westminster")
    time.sleep(1)
    imp.close()
    assert state(n.banks["westminster"], "dorset") == "removed"


def test_a_key_rotated_in_the_register_is_used_by_every_bank(network):
    n = network
    dor = n.join_dorset()
    old_key = f"{n.pki}/cheshire/cheshire.sign.key"
    new_key = f"{n.pki}/cheshire-new/cheshire.sign.key"

    def accepts(bank, key, bank_id="dorset"):
        """Whether bank takes a session from cheshire signed by key."""
        ches = n.banks["cheshire"]
        if ches.proc is not None:
            assert ches.stop() == 0, ches.log_text()
        wait_for(lambda: state(bank, "cheshire") != "established", what="cheshire away")
        imp = wire.Impostor(n.ports[bank_id], n.pki, "cheshire", bank_id, sign_key=key)
        try:
            ok = False
            deadline = time.time() + 3
            while time.time() < deadline and not ok:
                ok = state(bank, "cheshire") == "established"
                time.sleep(0.1)
            return ok
        finally:
            imp.close()

    # Rotated with a week's grace: Dorset, a peer of the register, takes both.
    n.register("rotate-key", "cheshire", "--signing-pub",
               f"{n.pki}/cheshire-new/cheshire.sign.pub", "--grace-days", "7")
    serial = n.register("publish")["published"]["serial"]
    wait_for(lambda: n.serial("dorset") == serial, what="the rotation taken")
    keys = peer_state(dor, "cheshire")["keys"]
    assert len(keys) == 2 and all(k["source"] == "register" and k["good"] for k in keys)
    assert accepts(dor, old_key), "the old key within its window"
    assert accepts(dor, new_key), "the new key"
    # Cheshire signs with its new key: every bank goes on with it (the banks
    # that pin it in their configs hear it announced by the old one).
    ches = n.banks["cheshire"]
    text = open(ches.config).read().replace(
        f"signing_key = {old_key}\n",
        f"signing_key = {new_key}\nprevious_signing_key = {old_key}\n", 1)
    open(ches.config, "w").write(text)
    ches.start()
    wait_for(lambda: all(n.linked("cheshire", b) for b in ["dorset", "colchester", "westminster"]),
             timeout=30, what="cheshire linked with its new key")
    # The old key's window ends: refused from then on, with no new register.
    n.cluster.psql("UPDATE register_keys SET not_after = now() + interval '3 seconds' "
                   "WHERE bank = 'cheshire' AND not_after IS NOT NULL", n.nat().db)
    serial = n.register("publish")["published"]["serial"]
    wait_for(lambda: n.serial("dorset") == serial, what="the window taken")
    time.sleep(4)
    assert not accepts(dor, old_key), "the old key after its window"
    assert accepts(dor, new_key)


def test_every_daemon_restarted_in_the_middle_of_a_change_follows_the_register(network):
    n = network
    dor = n.join_dorset()
    # Removed and published, then every daemon stopped at once and started.
    n.register("remove-bank", "dorset")
    serial = n.register("publish")["published"]["serial"]
    for b in n.banks.values():
        b.stop()
    for b in n.banks.values():
        b.start()
    wait_for(lambda: all(n.serial(b) == serial for b in BANKS), timeout=30,
             what="the register after the restart")
    wait_for(lambda: all(state(n.banks[b], "dorset") == "removed" for b in BANKS),
             timeout=30, what="dorset removed after the restart")
    assert state(n.nat(), "dorset") == "removed"
    # Back in the register, and the restart in its middle again.
    n.add("dorset")
    serial = n.register("publish")["published"]["serial"]
    for b in n.banks.values():
        b.stop()
    for b in n.banks.values():
        b.start()
    wait_for(lambda: all(n.linked("dorset", b) for b in BANKS), timeout=30,
             what="dorset linked again after the restart")
    wait_for(lambda: all(n.serial(b) == serial for b in BANKS + ["dorset"]), timeout=30,
             what="the register everywhere")


def test_the_register_is_refreshed_before_the_banks_hold_a_stale_one(network):
    n = network
    last = n.register("show")
    served = n.serial("colchester")
    # The register published nears its next update (as if weeks had passed).
    n.cluster.psql("UPDATE register_published SET register = jsonb_set(register, "
                   "'{next_update_unix}', to_jsonb(floor(extract(epoch FROM now() "
                   "+ interval '10 days')))) WHERE serial = (SELECT max(serial) "
                   "FROM register_published)", n.nat().db)
    nat = n.nat()
    assert nat.stop() == 0, nat.log_text()
    nat.start()
    wait_for(lambda: all(n.serial(b) == served + 1 for b in BANKS), timeout=30,
             what="the refreshed register at every bank")
    assert "register: refreshed as serial" in nat.log_text()
    history = n.register("history")["items"]
    assert history[0]["action"] == "publish" and history[0]["actor"] == "timebankd (refresh)"
    shown = n.register("show")
    assert [b["id"] for b in shown["banks"]] == [b["id"] for b in last["banks"]]
    for b in BANKS:
        assert "due for its next update" not in n.banks[b].log_text()
