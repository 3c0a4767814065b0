"""Members referred between real banks over the federation link: a move
carries the balance exactly once and closes the old membership; an
introduction adds a visiting membership; a referral carries only what the
member consented to, and what a declined, withdrawn or expired referral
carried is erased at the bank that received it, whatever crashes."""

import json
import re
import subprocess
import time

from tbtest import PG_BIN, ledger_snapshot, wait_for
from test_cross_bank import pair  # noqa: F401 (fixture)
from test_federation import established, start_network

import pytest

ANN = {"name": "Ann Referee-Qx", "email": "ann.qx@example.org", "phone": "01206 555 0101",
       "address": "4 Quay Lane, Colchester CO1 2QX", "skills": "qx-driving",
       "needs": "qx-shopping", "availability": "qx-mornings", "notes": "qx-uses-a-wheelchair"}


def send(bank, member, to, kind="move", share="name,phone,skills,record", consent="in person",
         *more):
    return bank.tbctl("--json", "referral", "send", "--member", str(member), "--to", to,
                      "--kind", kind, "--reason", "moved to Pimlico", "--share", share,
                      "--consent", consent, *more)


def sent(bank, member, to, **kw):
    r = send(bank, member, to, **kw)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def referral(bank, rid):
    status, body = bank.api("GET", f"/v1/referrals/{rid}")
    return body if status == 200 else None


def state(bank, rid):
    r = referral(bank, rid)
    return r and r["state"]


def member(bank, n):
    return bank.tbctl_json("member", "show", str(n))


def verdict(bank, peer):
    r = bank.tbctl("--json", "audit", "--federation")
    assert r.returncode == 0, r.stdout
    return [p["verdict"] for p in json.loads(r.stdout)["peers"] if p["peer"] == peer]


def books_agree(a, b):
    """Both banks' audits pass, and each agrees with the other's checkpoint."""
    assert a.tbctl_json("audit")["ok"] and b.tbctl_json("audit")["ok"]
    wait_for(lambda: verdict(a, b.id) == ["agree"] and verdict(b, a.id) == ["agree"],
             timeout=40, what="the federation audit's agreement")


def moves(bank):
    return bank.cluster.psql("SELECT count(*) FROM transfers WHERE kind = 'move'",
                             bank.db).stdout.strip()


def with_hours(bank, n, hours):
    """n earns hours from a new member of the same bank."""
    other = bank.add_member("Helper")
    status, body = bank.exchange(other, n, hours) if hours > 0 else bank.exchange(n, other, -hours)
    assert status == 201, body


def accept(bank, rid, *more):
    return bank.tbctl("--json", "referral", "accept", rid, *more)


def test_a_move_carries_a_positive_balance_and_closes_the_old_membership(pair):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    col.id, wes.id = "colchester", "westminster"
    ann = col.add_member(**ANN)
    with_hours(col, ann, 3)
    r = sent(col, ann, "westminster")
    assert r["state"] == "open" and r["balance_minutes"] == 180
    assert r["shared"] == ["name", "phone", "skills", "record"]
    assert r["consent"]["how"] == "in person" and r["consent"]["recorded_by"] == "test-coordinator"
    assert member(col, ann)["status"] == "moving"
    # Held: no exchange moves the balance the other bank decides on.
    status, body = col.exchange(ann, col.add_member("Bob"), "1")
    assert status == 422 and body["error"]["code"] == "member_inactive"
    wait_for(lambda: referral(wes, r["id"]) is not None, what="the referral at westminster")
    theirs = referral(wes, r["id"])
    assert theirs["details"] == {"name": ANN["name"], "phone": ANN["phone"],
                                 "skills": ANN["skills"]}
    assert theirs["record"]["minutes_given"] == 180 and theirs["record"]["exchanges_given"] == 1
    assert theirs["remote_member"] == ann and theirs["reason"] == "moved to Pimlico"
    text = wes.tbctl("referral", "list", check=True).stdout
    assert r["id"] in text and f"colchester member {ann}" in text
    shown = wes.tbctl("referral", "show", r["id"], check=True).stdout
    assert "in person, recorded by test-coordinator" in shown and ANN["phone"] in shown
    # Westminster's coordinator accepts: the member is made there, the hours follow.
    out = accept(wes, r["id"], "--number", "31", "--message", "welcome to Westminster")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["member"] == 31
    w = member(wes, 31)
    assert (w["name"], w["phone"], w["skills"]) == (ANN["name"], ANN["phone"], ANN["skills"])
    assert w["email"] is None and w["notes"] is None and w["address"] is None
    assert w["balance_minutes"] == 180
    assert w["referrals"][0]["text"].startswith(f"moved from colchester, member {ann} there, on ")
    assert f"moved from colchester, member {ann} there" in \
        wes.tbctl("member", "show", "31", check=True).stdout
    wait_for(lambda: state(col, r["id"]) == "accepted", what="the answer at colchester")
    c = member(col, ann)
    assert c["status"] == "left" and c["balance_minutes"] == 0
    assert c["referrals"][0]["text"].startswith("moved to westminster, member 31 there, on ")
    # Each statement has the move: the last line at the old bank, the first at the new.
    old = col.tbctl_json("statement", str(ann), "--from", "2000-01-01", "--to", "2099-12-31")
    assert (old["lines"][-1]["kind"], old["lines"][-1]["other_party"],
            old["lines"][-1]["minutes"]) == ("move", "westminster member 31", -180)
    assert old["closing_minutes"] == 0
    new = wes.tbctl_json("statement", "31", "--from", "2000-01-01", "--to", "2099-12-31")
    assert (new["lines"][0]["kind"], new["lines"][0]["other_party"],
            new["lines"][0]["minutes"]) == ("move", f"colchester member {ann}", 180)
    assert moves(col) == "1" and moves(wes) == "1"
    books_agree(col, wes)
    # Accepting again changes nothing.
    before = ledger_snapshot(pair.cluster, wes.db)
    again = accept(wes, r["id"])
    assert again.returncode == 1 and "referral_already_decided" in again.stderr
    assert ledger_snapshot(pair.cluster, wes.db) == before


def test_a_move_owing_hours_is_refused_unless_the_new_bank_takes_it(pair):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    ann = col.add_member(**ANN)
    with_hours(col, ann, -2)
    r = sent(col, ann, "westminster", share="name")
    wait_for(lambda: referral(wes, r["id"]) is not None, what="the referral")
    before = ledger_snapshot(pair.cluster, wes.db)
    status, body = wes.api("POST", f"/v1/referrals/{r['id']}/accept", {})
    assert status == 422 and body["error"]["code"] == "balance_refused"
    assert "accept_negative" in body["error"]["message"]
    assert ledger_snapshot(pair.cluster, wes.db) == before
    out = wes.tbctl("referral", "decline", r["id"], "--reason", "we cannot take a debt")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: state(col, r["id"]) == "declined", what="the decline at colchester")
    c = member(col, ann)
    assert c["status"] == "active" and c["balance_minutes"] == -120
    assert referral(col, r["id"])["answer"] == "we cannot take a debt"


def test_a_move_owing_hours_travels_where_the_new_bank_takes_it(cluster, workdir):
    n = start_network(cluster, workdir, settings="\n[referrals]\naccept_negative = yes\n")
    col, wes = n.banks["colchester"], n.banks["westminster"]
    col.id, wes.id = "colchester", "westminster"
    try:
        wait_for(lambda: established(col, "westminster") and established(wes, "colchester"),
                 what="the link")
        ann = col.add_member(**ANN)
        with_hours(col, ann, -2)
        r = sent(col, ann, "westminster", share="name")
        wait_for(lambda: referral(wes, r["id"]) is not None, what="the referral")
        out = accept(wes, r["id"])
        assert out.returncode == 0, out.stderr
        new = json.loads(out.stdout)["member"]
        assert member(wes, new)["balance_minutes"] == -120
        wait_for(lambda: state(col, r["id"]) == "accepted", what="the answer")
        assert member(col, ann)["balance_minutes"] == 0 and member(col, ann)["status"] == "left"
        books_agree(col, wes)
    finally:
        for b in n.banks.values():
            assert b.stop() == 0, b.log_text()


def test_an_introduction_adds_a_visiting_membership(pair):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    col.id, wes.id = "colchester", "westminster"
    ann = col.add_member(**ANN)
    with_hours(col, ann, 1)
    r = sent(col, ann, "westminster", kind="introduce", share="name,contact")
    assert r["balance_minutes"] == 0 and member(col, ann)["status"] == "active"
    wait_for(lambda: referral(wes, r["id"]) is not None, what="the referral")
    assert set(referral(wes, r["id"])["details"]) == {"name", "email", "phone", "address"}
    new = json.loads(accept(wes, r["id"]).stdout)["member"]
    w = member(wes, new)
    assert w["balance_minutes"] == 0 and w["address"] == ANN["address"]
    assert w["referrals"][0]["text"].startswith(f"visiting from colchester, member {ann} there")
    wait_for(lambda: state(col, r["id"]) == "accepted", what="the answer")
    c = member(col, ann)
    assert c["status"] == "active" and c["balance_minutes"] == 60
    assert c["referrals"][0]["text"].startswith(f"also visiting westminster, member {new} there")
    assert moves(col) == "0" and moves(wes) == "0"
    books_agree(col, wes)


def database_text(bank):
    """The bank's whole database as pg_dump writes it, with every bytea
    (signed envelopes among them) decoded, so that nothing hides in hex."""
    dump = subprocess.run([f"{PG_BIN}/pg_dump", "--data-only", "-d", bank.cluster.conninfo(bank.db)],
                          capture_output=True, text=True, check=True).stdout
    blobs = b"".join(bytes.fromhex(h) for h in re.findall(r"\\\\x((?:[0-9a-f]{2})+)", dump))
    return dump + blobs.decode("utf-8", errors="replace")


def test_a_declined_referral_leaves_nothing_of_the_member_at_the_other_bank(pair):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    ann = col.add_member(**ANN)
    r = json.loads(col.tbctl("--json", "referral", "send", "--member", str(ann), "--to",
                             "westminster", "--kind", "introduce", "--reason", "qx-daughter",
                             "--share", "name,contact,skills,needs,availability,notes,record",
                             "--consent", "in writing", "--consent-notes", check=True).stdout)
    wait_for(lambda: referral(wes, r["id"]) is not None, what="the referral")
    assert referral(wes, r["id"])["details"]["notes"] == ANN["notes"]
    assert ANN["notes"] in database_text(wes)  # held, while a coordinator decides
    out = wes.tbctl("referral", "decline", r["id"], "--reason", "no one near her daughter")
    assert out.returncode == 0, out.stderr
    dump = database_text(wes)
    for value in list(ANN.values()) + ["qx-daughter", "Referee"]:
        assert value not in dump, value
    wait_for(lambda: state(col, r["id"]) == "declined", what="the answer")
    mine = referral(col, r["id"])
    assert mine["erased_at"] is not None and mine["erased_confirmed_in"] >= 1
    assert "erased at westminster: confirmed in its signed message" in \
        col.tbctl("referral", "show", r["id"], check=True).stdout
    # The confirmation is kept as signed.
    kept = col.cluster.psql(f"SELECT length(envelope) > 0 FROM fed_inbox WHERE peer = "
                            f"'westminster' AND seq = {mine['erased_confirmed_in']}",
                            col.db).stdout.strip()
    assert kept == "t"


def test_a_withdrawn_referral_is_erased_and_frees_the_member(pair):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    ann = col.add_member(**ANN)
    r = sent(col, ann, "westminster")
    wait_for(lambda: referral(wes, r["id"]) is not None, what="the referral")
    out = col.tbctl("referral", "withdraw", r["id"])
    assert out.returncode == 0 and "withdrawal sent to westminster" in out.stdout, out.stderr
    wait_for(lambda: state(col, r["id"]) == "withdrawn", what="the withdrawal's answer")
    assert member(col, ann)["status"] == "active"
    theirs = referral(wes, r["id"])
    assert theirs["state"] == "withdrawn" and theirs["details"] is None
    assert ANN["name"] not in database_text(wes)
    # Decided, it cannot be withdrawn or decided again.
    again = col.tbctl("referral", "withdraw", r["id"])
    assert again.returncode == 1 and "referral_already_decided" in again.stderr
    status, body = wes.api("POST", f"/v1/referrals/{r['id']}/accept", {})
    assert status == 409 and body["error"]["code"] == "referral_already_decided"


def test_an_undecided_referral_expires_and_is_erased(pair):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    ann = col.add_member(**ANN)
    r = sent(col, ann, "westminster")
    wait_for(lambda: referral(wes, r["id"]) is not None, what="the referral")
    assert referral(wes, r["id"])["expires_at"] is not None
    wes.cluster.psql(f"UPDATE referrals SET expires_at = now() - interval '1 day' "
                     f"WHERE referral_id = '{r['id']}'", wes.db)
    wait_for(lambda: state(col, r["id"]) == "expired", timeout=40, what="the expiry's answer")
    assert referral(wes, r["id"])["details"] is None
    assert ANN["phone"] not in database_text(wes)
    assert member(col, ann)["status"] == "active"
    assert "expired and were erased" in wes.log_text()


def test_bad_referrals_are_refused_and_change_nothing(pair):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    ann = col.add_member(**ANN)
    gone = col.add_member("Gone")
    col.tbctl("member", "update", str(gone), "--status", "left", check=True)
    before = ledger_snapshot(pair.cluster, col.db)
    for args, code in [
            ((gone, "westminster"), "member_inactive"),
            ((ann, "dorset"), "unknown_bank"),
            ((ann, "colchester"), "same_bank"),
            ((ann, "westminster", "move", "name,shoe-size"), "invalid_share"),
            ((ann, "westminster", "move", "name,notes"), "notes_not_consented"),
            ((ann, "westminster", "move", "phone"), "invalid_share"),
            ((ann, "westminster", "teleport"), "invalid_kind"),
            ((ann, "westminster", "move", "name", "by carrier pigeon"), "invalid_consent")]:
        r = send(col, *args)
        assert r.returncode == 1 and code in r.stderr, (args, r.stderr)
    assert ledger_snapshot(pair.cluster, col.db) == before
    status, body = col.api("POST", "/v1/referrals", {"member": ann, "bank": "westminster",
                                                     "kind": "move", "share": ["name"],
                                                     "consent": "in person", "extra": 1})
    assert status == 400 and body["error"]["code"] == "unknown_field"
    r = sent(col, ann, "westminster", kind="introduce", share="name")
    second = send(col, ann, "westminster", "introduce", "name")
    assert second.returncode == 1 and "referral_open" in second.stderr
    status, _ = col.api("POST", "/v1/referrals", {"member": ann, "bank": "westminster",
                                                  "kind": "introduce", "share": "name",
                                                  "consent": "in person"},
                        token=col.tokens["broker"])
    assert status == 403  # a coordinator's work
    status, body = wes.api("POST", "/v1/referrals/westminster:r99/accept", {})
    assert status == 404 and body["error"]["code"] == "referral_not_found"
    # A move waits while anything is open with other banks.
    wait_for(lambda: referral(wes, r["id"]) is not None, what="the referral")
    bob = col.add_member("Bob")
    status, body = col.api("POST", "/v1/claims", {"earner": bob, "payer": "westminster:1",
                                                  "hours": 1, "category": "lifts"})
    assert status == 201, body
    refused = send(col, bob, "westminster")
    assert refused.returncode == 1 and "member_has_open" in refused.stderr
    assert body["id"] in refused.stderr


def test_a_referral_with_fields_not_consented_is_refused_whole(pair):
    """A misbehaving bank sends a referral whose phone was not consented to:
    the receiving bank stores nothing of it, and says why."""
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    item = {"referral_id": "colchester:r900", "kind": "introduce", "member": 5,
            "reason": "", "shared": ["name"], "consent_how": "in person",
            "consent_notes": False, "consent_by": "mallory", "consent_at": "2026-12-01T10:00:00Z",
            "name": "Nadia Leak-Qx", "phone": "07700 900999", "balance_minutes": 0}
    body = json.dumps({"kind": "referral", "items": [item]}).replace("'", "''")
    col.cluster.psql(f"SELECT tb_fed_enqueue('westminster', '{body}'::json)", col.db)
    wait_for(lambda: col.cluster.psql("SELECT count(*) FROM fed_inbox WHERE peer = 'westminster' "
                                      "AND body->>'kind' = 'referral_answer'",
                                      col.db).stdout.strip() == "1", what="the refusal")
    answer = col.cluster.psql("SELECT body FROM fed_inbox WHERE peer = 'westminster' AND "
                              "body->>'kind' = 'referral_answer'", col.db).stdout
    assert '"reason": "not_consented"' in answer and '"state": "refused"' in answer
    dump = database_text(wes)
    assert "Nadia" not in dump and "900999" not in dump
    assert wes.cluster.psql("SELECT count(*) FROM referrals", wes.db).stdout.strip() == "0"
    assert established(col, "westminster") and established(wes, "colchester")


# Where each step of a move happens: colchester sends the referral;
# westminster applies it, its coordinator accepts, and it answers; then
# colchester applies the answer. Each failpoint is tried at the bank where
# its step happens.
FAILPOINTS = [
    ("colchester", "referral_sent"), ("colchester", "send_before"),
    ("colchester", "send_after"), ("westminster", "apply_before"),
    ("westminster", "apply_after"), ("westminster", "referral_accepted"),
    ("westminster", "send_before"), ("westminster", "send_after"),
    ("colchester", "apply_before"), ("colchester", "apply_after"),
]


@pytest.mark.parametrize("where,step", FAILPOINTS)
def test_a_move_happens_exactly_once_whatever_crashes(pair, where, step):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    col.id, wes.id = "colchester", "westminster"
    ann = col.add_member(**ANN)
    with_hours(col, ann, 2)
    crashing = pair.banks[where]
    assert crashing.stop() == 0
    crashing.start(env={"TIMEBANKD_FAILPOINT": step})
    wait_for(lambda: established(col, "westminster") and established(wes, "colchester"),
             what="the link")
    body = {"member": ann, "bank": "westminster", "kind": "move", "share": "name,phone",
            "consent": "by phone", "idempotency_key": f"fp-{step}"}
    try:
        col.api("POST", "/v1/referrals", body)
    except OSError:
        pass  # colchester died answering: the key makes the retry safe
    # Westminster's coordinator accepts as soon as the referral is there,
    # until the crash.
    deadline = time.time() + 30
    while crashing.proc.poll() is None and time.time() < deadline:
        try:
            status, out = wes.api("GET", "/v1/referrals?state=all")
            if status == 200 and out["items"] and out["items"][0]["state"] == "open":
                wes.api("POST", f"/v1/referrals/{out['items'][0]['id']}/accept", {"number": 31})
        except OSError:
            pass
        time.sleep(0.2)
    wait_for(lambda: crashing.proc.poll() is not None, timeout=30, what=f"the crash at {step}")
    assert crashing.proc.returncode == 86, crashing.log_text()[-2000:]
    crashing.proc = None
    crashing.start()
    for _ in range(50):
        try:
            status, r = col.api("POST", "/v1/referrals", body)
        except OSError:
            status = None
        if status == 201:
            break
        time.sleep(0.2)
    assert status == 201, r
    wait_for(lambda: referral(wes, r["id"]) is not None, what="the referral at westminster")
    if referral(wes, r["id"])["state"] == "open":
        status, out = wes.api("POST", f"/v1/referrals/{r['id']}/accept", {"number": 31})
        assert status == 200, out
    wait_for(lambda: state(col, r["id"]) == "accepted", what="the answer at colchester")
    assert member(col, ann)["status"] == "left" and member(col, ann)["balance_minutes"] == 0
    assert member(wes, 31)["balance_minutes"] == 120
    assert moves(col) == "1" and moves(wes) == "1"
    assert wes.cluster.psql("SELECT count(*) FROM members WHERE name = 'Ann Referee-Qx'",
                            wes.db).stdout.strip() == "1"
    books_agree(col, wes)


def test_privacy_across_three_banks(cluster, workdir):
    """After exchanges, claims, contacts and referrals among three banks,
    each bank holds another bank's member fields only for the members whose
    referral it accepted, and only the fields consented."""
    n = start_network(cluster, workdir, running=("colchester", "westminster", "cheshire"))
    banks = n.banks
    for b in banks:
        banks[b].id = b
    try:
        wait_for(lambda: all(established(banks[a], b) for a in banks for b in banks if a != b),
                 what="the mesh")
        people = {}
        for b in banks:
            for who in ("ann", "bob"):
                fields = {"name": f"Name-{b}-{who}", "email": f"{who}.{b}@example.org",
                          "phone": f"07700 9{len(people):05d}", "address": f"1 Street-{b}-{who}",
                          "skills": f"skills-{b}-{who}", "needs": f"needs-{b}-{who}",
                          "availability": f"avail-{b}-{who}", "notes": f"notes-{b}-{who}"}
                people[(b, who)] = (banks[b].add_member(**fields), fields)
        # Exchanges and claims between every pair.
        for a in banks:
            for b in banks:
                if a == b:
                    continue
                status, out = banks[a].exchange(people[(a, "ann")][0],
                                                f"{b}:{people[(b, 'bob')][0]}", "1")
                assert status == 201, out
                status, out = banks[a].api("POST", "/v1/claims", {
                    "earner": people[(a, "bob")][0], "payer": f"{b}:{people[(b, 'ann')][0]}",
                    "hours": 1, "category": "lifts", "message": "thanks for the lift"})
                assert status == 201, out
        # A shared offer and a contact for it.
        status, item = banks["cheshire"].api("POST", "/v1/offers", {
            "member": people[("cheshire", "bob")][0], "category": "gardening",
            "text": "Weeding and pruning", "area": "CW1", "visibility": "federation"})
        assert status == 201, item
        banks["cheshire"].api("POST", f"/v1/offers/{item['id']}/approve", {})
        wait_for(lambda: banks["colchester"].api("GET", "/v1/directory?q=Weeding")[1]["items"],
                 what="the offer in the directory")
        handle = banks["colchester"].api("GET", "/v1/directory?q=Weeding")[1]["items"][0]["handle"]
        status, out = banks["colchester"].api("POST", "/v1/contacts", {
            "handle": handle, "for": people[("colchester", "bob")][0],
            "message": "Could your member help on Tuesday?"})
        assert status == 201, out
        # Let everything settle, then refer: Cheshire's Bob moves to Westminster
        # sharing her name and phone (accepted); Colchester's Bob is introduced
        # to Cheshire with everything (declined).
        for a in banks:
            wait_for(lambda: banks[a].cluster.psql(
                "SELECT count(*) FROM xb_exchanges WHERE state = 'pending'",
                banks[a].db).stdout.strip() == "0", what="settling")
        for b in banks:
            for cid in [c["id"] for c in banks[b].api("GET", "/v1/claims")[1]["items"]]:
                banks[b].api("POST", f"/v1/claims/{cid}/decline", {"reason": "not this time"})
        for c in banks["cheshire"].api("GET", "/v1/contacts")[1]["items"]:
            banks["cheshire"].api("POST", f"/v1/contacts/{c['id']}/decline", {})
        wait_for(lambda: all(banks[b].cluster.psql(
            "SELECT (SELECT count(*) FROM xb_claims WHERE state = 'open') + "
            "(SELECT count(*) FROM dir_contacts WHERE state = 'open')",
            banks[b].db).stdout.strip() == "0" for b in banks), what="claims and contacts decided")
        mover = people[("cheshire", "bob")][0]
        moved = sent(banks["cheshire"], mover, "westminster", share="name,phone")
        wait_for(lambda: referral(banks["westminster"], moved["id"]) is not None, what="the move")
        assert accept(banks["westminster"], moved["id"]).returncode == 0
        intro = json.loads(banks["colchester"].tbctl(
            "--json", "referral", "send", "--member", str(people[("colchester", "bob")][0]),
            "--to", "cheshire", "--kind", "introduce", "--share",
            "name,contact,skills,needs,availability,notes,record", "--consent", "in writing",
            "--consent-notes", check=True).stdout)
        wait_for(lambda: referral(banks["cheshire"], intro["id"]) is not None, what="the intro")
        banks["cheshire"].tbctl("referral", "decline", intro["id"], "--reason", "full",
                                check=True)
        wait_for(lambda: state(banks["cheshire"], moved["id"]) == "accepted", what="the answer")
        allowed = {("westminster", "cheshire", "bob"): {"name", "phone"}}
        for here in banks:
            dump = database_text(banks[here])
            for (b, who), (_, fields) in people.items():
                if b == here:
                    continue
                for f, value in fields.items():
                    present = value in dump
                    assert present == (f in allowed.get((here, b, who), set())), \
                        (here, b, who, f)
    finally:
        for b in banks.values():
            assert b.stop() == 0, b.log_text()
