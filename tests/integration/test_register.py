"""The network's register at the national body: banks added, removed and
their keys rotated with tbctl, each change kept; what the next publish
would change; and the register published, signed with the register key,
as the next serial. (Banks taking it in: the register's next part.)"""

import functools
import hashlib
import os
import subprocess
import time
import urllib.request

import wire
from tbtest import TBPKI, TIMEBANKD, Bank, federation_config, free_port, make_pki, wait_for


def varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def fields(buf):
    """{field number: [values]} of a protobuf message's length-delimited
    fields and varints, enough to read a SignedRegister and a Register."""
    out, i = {}, 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 2:
            n, i = varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 0:
            value, i = varint(buf, i)
        else:
            raise AssertionError(f"wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def test_the_national_body_keeps_its_register_and_signs_each_serial(cluster, workdir):
    pki = make_pki(os.path.join(workdir, "pki"), ["national", "colchester", "westminster"])
    subprocess.run([TBPKI, "signing-key", "register", f"{pki}/register"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([TBPKI, "signing-key", "colchester", f"{pki}/colchester-new"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = cluster.new_database()
    nat = Bank(workdir, cluster.conninfo(db), bank_id="national", extra=federation_config(
        pki, "national", free_port(), {},
        f"role = observer\nregister_signing_key = {pki}/register/register.sign.key\n"))
    nat.db, nat.cluster = db, cluster
    nat.start()
    try:
        assert "serial 1" in nat.tbctl("register", "init", check=True).stdout
        r = nat.tbctl("register", "init")
        assert r.returncode == 1 and "exists" in r.stderr
        for i, b in enumerate(("colchester", "westminster")):
            out = nat.tbctl_json("register", "add-bank", b, "--address", f"127.0.0.1:{9401 + i}",
                                 "--signing-pub", f"{pki}/{b}/{b}.sign.pub",
                                 "--cert", f"{pki}/{b}/{b}.crt", "--name", f"{b.title()} TB")
            assert out["id"] == b and len(out["keys"]) == 1
        fingerprint = subprocess.run(
            ["openssl", "x509", "-in", f"{pki}/colchester/colchester.crt", "-noout",
             "-fingerprint", "-sha256"], capture_output=True, text=True,
            check=True).stdout.split("=")[1].strip().replace(":", "").lower()
        shown = nat.tbctl_json("register", "show")
        assert [b["cert_sha256"] for b in shown["banks"]][0] == fingerprint

        # Refused, and nothing changes.
        for args, code in (
                (["add-bank", "colchester", "--address", "127.0.0.1:9409", "--signing-pub",
                  f"{pki}/colchester/colchester.sign.pub"], 1),     # already in
                (["add-bank", "dorset", "--address", "127.0.0.1:9409", "--signing-pub",
                  f"{pki}/colchester/colchester.sign.pub"], 1),     # another bank's key
                (["add-bank", "dorset", "--address", "no port", "--signing-pub",
                  f"{pki}/register/register.sign.pub"], 1),
                (["add-bank", "Dorset!", "--address", "127.0.0.1:1", "--signing-pub",
                  f"{pki}/register/register.sign.pub"], 1),
                (["add-bank", "dorset", "--address", "127.0.0.1:1"], 2),
                (["add-bank", "dorset", "--address", "127.0.0.1:1", "--signing-pub",
                  f"{pki}/nothing.pub"], 2),
                (["remove-bank", "nowhere"], 1)):
            r = nat.tbctl("register", *args)
            assert r.returncode == code, (args, r.stderr)
        assert nat.tbctl_json("register", "show")["banks"] == shown["banks"]

        diff = nat.tbctl_json("register", "diff")["changes"]
        assert [(c["id"], c["change"]) for c in diff] == [("colchester", "added"),
                                                           ("westminster", "added")]
        assert nat.tbctl_json("register", "publish")["published"]["serial"] == 2
        assert "nothing to publish" in nat.tbctl("register", "diff", check=True).stdout
        nat.tbctl("register", "rotate-key", "colchester", "--signing-pub",
                  f"{pki}/colchester-new/colchester.sign.pub", "--grace-days", "7", check=True)
        nat.tbctl("register", "remove-bank", "westminster", check=True)
        text = nat.tbctl("register", "diff", check=True).stdout
        assert "changed  colchester (keys)" in text and "removed  westminster" in text
        out = nat.tbctl_json("register", "publish", "--next-update-days", "60")
        assert out["published"]["serial"] == 3 and out["pending_changes"] == 0
        history = [h["action"] for h in nat.tbctl_json("register", "history")["items"]]
        assert history[:3] == ["publish", "remove-bank", "rotate-key"]

        # What goes out is the register's exact bytes, signed by the register key.
        signed = bytes.fromhex(cluster.psql(
            "SELECT encode(signed, 'hex') FROM register_published WHERE serial = 3",
            db).stdout.strip())
        sr = fields(signed)
        body, sig = sr[1][0], sr[3][0]
        open(f"{workdir}/register.bin", "wb").write(body)
        open(f"{workdir}/register.sig", "wb").write(sig)
        verify = subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
             f"{pki}/register/register.sign.pub", "-rawin", "-in", f"{workdir}/register.bin",
             "-sigfile", f"{workdir}/register.sig"], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        register = fields(body)
        assert register[1] == [3]
        banks = [fields(b) for b in register[4]]
        assert [b[1][0] for b in banks] == [b"colchester"]
        assert len(banks[0][5]) == 2, "the old key and the new, in its grace"
        assert register[5][0].startswith(b"-----BEGIN X509 CRL-----")
    finally:
        assert nat.stop() == 0, nat.log_text()

    # Only the national body signs the register; elsewhere the routes say so.
    other = os.path.join(workdir, "a-bank.conf")
    with open(nat.config) as f, open(other, "w") as out:
        out.write(f.read().replace("role = observer\n", ""))
    r = subprocess.run([TIMEBANKD, "-n", "-c", other], capture_output=True, text=True)
    assert r.returncode != 0 and "only the national body" in r.stderr


@functools.lru_cache(maxsize=None)
def raw_public(pub):
    """The 32 raw bytes of a PEM Ed25519 public key."""
    return subprocess.run(["openssl", "pkey", "-pubin", "-in", pub, "-outform", "DER"],
                          capture_output=True, check=True).stdout[-32:]


def register_bytes(serial, banks, crl, next_update=None):
    """A Register, banks given as (id, address, kind, public key path), with
    the CRL's PEM bytes."""
    now = int(time.time())
    out = wire.field(1, serial) + wire.field(2, now) + wire.field(3, next_update or now + 86400 * 60)
    for bid, address, kind, pub in banks:
        key = wire.field(1, raw_public(pub)) + wire.field(2, now - 60)
        out += wire.field(4, wire.field(1, bid) + wire.field(2, bid.title()) +
                          wire.field(3, address) + wire.field(4, kind) + wire.field(5, key))
    return out + wire.field(5, crl)


def offer(key, register, kid=None, cut=0):
    """A RegisterOffer body: register signed with the private key at key (its
    signed bytes less the last cut)."""
    signed = (wire.field(1, register) + wire.field(2, kid or wire.key_id(key)) +
              wire.field(3, wire.sign(key, register)))
    return wire.field(10, wire.field(1, signed[:len(signed) - cut]))


def held(bank):
    return bank.api("GET", "/v1/peers")[1]["register"]


def test_a_bank_takes_only_the_national_bodys_register_newer_than_its_own(cluster, workdir):
    pki = make_pki(os.path.join(workdir, "pki"), ["national", "colchester", "westminster"])
    for name in ("register", "other"):
        subprocess.run([TBPKI, "signing-key", name, f"{pki}/{name}"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ports = {b: free_port() for b in ("national", "colchester", "westminster")}
    db = cluster.new_database()
    col = Bank(workdir, cluster.conninfo(db), bank_id="colchester", extra=federation_config(
        pki, "colchester", ports["colchester"],
        {"national": ports["national"], "westminster": ports["westminster"]},
        f"register_key = {pki}/register/register.sign.pub\n", observers=("national",)))
    col.db, col.cluster = db, cluster
    col.start()
    key, pub = f"{pki}/register/register.sign.key", f"{pki}/register/register.sign.pub"
    banks = [("colchester", "127.0.0.1:9401", "bank", f"{pki}/colchester/colchester.sign.pub"),
             ("westminster", "127.0.0.1:9402", "bank", f"{pki}/westminster/westminster.sign.pub")]
    crl = open(f"{pki}/ca/crl.pem", "rb").read()
    subprocess.run([TBPKI, "ca", f"{workdir}/other-ca"], check=True, stdout=subprocess.DEVNULL)
    other_crl = open(f"{workdir}/other-ca/crl.pem", "rb").read()

    def register(serial, listed=banks, crl=crl):
        return register_bytes(serial, listed, crl)

    try:
        nat = wire.Impostor(ports["colchester"], pki, "national", "colchester")
        wait_for(lambda: col.api("GET", "/v1/peers")[1]["peers"][0]["state"] == "established",
                 what="the session with the national body")

        def send(body, who=nat):
            who.send_raw(wire.frame(wire.envelope(who.key, who.bank, "colchester", 0, b"",
                                                  body)))

        refused = 0
        for bad in (offer(f"{pki}/other/other.sign.key", register(3)),
                    offer(f"{pki}/other/other.sign.key", register(3),
                          kid=hashlib.sha256(raw_public(pub)).hexdigest()[:16]),
                    offer(key, register(3), cut=40),
                    offer(key, register(3, banks + banks[:1])),
                    offer(key, register(3, [("dorset", "no port", "bank", pub)])),
                    offer(key, register(3, [("Dorset!", "127.0.0.1:1", "bank", pub)])),
                    offer(key, register(3, crl=b"")),
                    offer(key, register(3, crl=other_crl))):
            send(bad)
            refused += 1
            wait_for(lambda n=refused: held(col)["refused"] == n, what=f"refusal {refused}")
        assert held(col)["serial"] == 0
        # The good one is taken; an older one after it is refused.
        send(offer(key, register(5)))
        wait_for(lambda: held(col)["serial"] == 5, what="the register taken")
        send(offer(key, register(4)))
        wait_for(lambda: held(col)["refused"] == refused + 1, what="the older one refused")
        # A bank may not serve the register.
        wes = wire.Impostor(ports["colchester"], pki, "westminster", "colchester")
        time.sleep(0.5)
        send(offer(key, register(6)), who=wes)
        wait_for(lambda: held(col)["refused"] == refused + 2, what="the bank's refused")
        assert held(col)["serial"] == 5
        log = col.log_text()
        for why in ("signed by another key", "signature does not verify",
                    "not a signed register", "listed twice", "bad address", "bad id",
                    "no CRL", "not signed by the network CA", "older serial",
                    "not the national body"):
            assert why in log, why
        kept = cluster.psql("SELECT serial, from_peer, register->'banks'->0->>'id' "
                            "FROM fed_register", db).stdout.strip()
        assert kept == "5|national|colchester"
        metrics = urllib.request.urlopen(col.url + "/metrics").read().decode()
        assert "timebankd_register_serial 5" in metrics
        assert f"timebankd_register_refused_total {refused + 2}" in metrics
        # Oversized: more banks than a register may hold (the log's ten
        # lines a minute for refusals are spent; it is counted).
        send(offer(key, register(7, [(f"bank-{i}", f"127.0.0.1:{10000 + i}", "bank", pub)
                                     for i in range(1001)])))
        wait_for(lambda: held(col)["refused"] == refused + 3, what="the oversized one refused")
        assert held(col)["serial"] == 5
        nat.close()
        wes.close()
    finally:
        assert col.stop() == 0, col.log_text()
    # Held across a restart.
    col.start()
    try:
        wait_for(lambda: held(col)["serial"] == 5, what="the register held after a restart")
    finally:
        assert col.stop() == 0, col.log_text()


def test_banks_hear_of_each_register_the_national_body_publishes(cluster, workdir):
    pki = make_pki(os.path.join(workdir, "pki"), ["national", "colchester"])
    subprocess.run([TBPKI, "signing-key", "register", f"{pki}/register"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ports = {b: free_port() for b in ("national", "colchester")}
    daemons = {}
    for b, other, settings in (
            ("national", "colchester",
             f"role = observer\nregister_signing_key = {pki}/register/register.sign.key\n"),
            ("colchester", "national", f"register_key = {pki}/register/register.sign.pub\n")):
        db = cluster.new_database()
        d = Bank(workdir, cluster.conninfo(db), bank_id=b, extra=federation_config(
            pki, b, ports[b], {other: ports[other]}, settings,
            observers=("national",) if b == "colchester" else ()))
        d.db, d.cluster = db, cluster
        daemons[b] = d.start()
    nat, col = daemons["national"], daemons["colchester"]
    try:
        nat.tbctl("register", "add-bank", "colchester", "--address",
                  f"127.0.0.1:{ports['colchester']}", "--signing-pub",
                  f"{pki}/colchester/colchester.sign.pub", check=True)
        nat.tbctl("register", "publish", check=True)
        wait_for(lambda: held(col)["serial"] == 1, what="serial 1 at the bank")
        nat.tbctl("register", "publish", check=True)
        wait_for(lambda: held(col)["serial"] == 2, timeout=10, what="serial 2, on its notice")
        assert held(col)["refused"] == 0
    finally:
        for d in daemons.values():
            assert d.stop() == 0, d.log_text()
