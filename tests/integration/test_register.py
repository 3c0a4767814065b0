"""The network's register at the national body: banks added, removed and
their keys rotated with tbctl, each change kept; what the next publish
would change; and the register published, signed with the register key,
as the next serial. (Banks taking it in: the register's next part.)"""

import os
import subprocess

from tbtest import TBPKI, TIMEBANKD, Bank, federation_config, free_port, make_pki


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
