"""Erasure that erases: a member who shared claims, contacts, exchanges and
a directory item with other banks is erased, and no bank in the
federation keeps their name, contact details, address or notes, in any
table or in any signed envelope kept as proof."""

from tbtest import peer_state, wait_for
from test_claims import arrived, claim, claim_state
from test_coordinator import database_dump
from test_cross_bank import settled_or_rejected
from test_directory import add_item, remote, trio  # noqa: F401 (fixture)

ANN = {"name": "Annabel Smithers", "email": "annabel.smithers@example.org",
       "phone": "07700 900461", "address": "9 Quay Street, Wivenhoe",
       "notes": "uses-a-wheelchair-zq"}


def traces(dump):
    """Which of Ann's details a database dump holds, as text or inside
    bytea (hex)."""
    hexed = dump.lower()
    words = list(ANN.values()) + ["Smithers", "Quay Street"]
    return [w for w in words
            if w.lower() in dump.lower() or w.encode().hex() in hexed]


def test_erasure_reaches_every_bank_and_every_envelope(trio):
    col, wes, che = (trio.banks[b] for b in ("colchester", "westminster", "cheshire"))
    ann = col.add_member(**ANN)
    wendy = wes.add_member("Wendy")
    # Ann's offer, seen at both peers.
    item = add_item(col, "offer", ann, "gardening", "Annabel Smithers cuts hedges",
                    area="CO7", visibility="federation")
    wait_for(lambda: item["handle"] in remote(wes, "colchester")
             and item["handle"] in remote(che, "colchester"), what="the item at the peers")
    # Wendy gave Ann a lift; Ann dug Wendy's garden (Westminster's own words).
    x1 = col.tbctl_json("exchange", "record", "--payer", str(ann), "--earner",
                        f"westminster:{wendy}", "--hours", "1", "--category", "lifts",
                        "--description", "Lift for Annabel Smithers")
    x2 = wes.tbctl_json("exchange", "record", "--payer", str(wendy), "--earner",
                        f"colchester:{ann}", "--hours", "2", "--category", "gardening",
                        "--description", "Annabel Smithers dug the garden")
    for bank, x in ((col, x1), (wes, x2)):
        wait_for(lambda b=bank, i=x["id"]: settled_or_rejected(b, i), what="the exchanges")
    # A claim each way, both declined with words that name her.
    c1 = claim(col, ann, f"westminster:{wendy}", "1",
               message="Annabel Smithers helped Wendy move house",
               description="Annabel Smithers' own note")
    wait_for(lambda: arrived(wes, c1["id"]), what="Colchester's claim")
    wes.tbctl_json("claim", "decline", c1["id"], "--reason", "Tell Annabel Smithers no")
    wait_for(lambda: claim_state(col, c1["id"])["state"] == "declined", what="its answer")
    c2 = claim(wes, wendy, f"colchester:{ann}", "1", message="Wendy drove Annabel Smithers")
    wait_for(lambda: arrived(col, c2["id"]), what="Westminster's claim")
    col.tbctl_json("claim", "decline", c2["id"], "--reason", "Annabel Smithers says no")
    wait_for(lambda: claim_state(wes, c2["id"])["state"] == "declined", what="our answer")
    # A contact for her, with Wendy's offer.
    lift = add_item(wes, "offer", wendy, "lifts", "Lifts to the surgery", area="SW1",
                    visibility="federation")
    wait_for(lambda: lift["handle"] in remote(col, "westminster"), what="Wendy's offer")
    k = col.tbctl_json("contact", "request", lift["handle"], "--for", str(ann), "--message",
                       "For Annabel Smithers, who needs a lift")
    wait_for(lambda: wes.api("GET", f"/v1/contacts/{k['id']}")[0] == 200, what="the contact")
    wes.tbctl_json("contact", "accept", k["id"], "--message",
                   "Wendy will ring Annabel Smithers")
    wait_for(lambda: col.tbctl_json("contact", "show", k["id"])["state"] == "accepted",
             what="the acceptance")
    assert traces(database_dump(wes)), "the test would prove nothing"

    col.tbctl("member", "update", str(ann), "--status", "left", check=True)
    out = col.tbctl("member", "erase", str(ann), "--force", "--reason",
                    "Annabel Smithers asked by phone, 07700900461", check=True).stdout
    assert "westminster" in out and "cheshire" not in out
    wait_for(lambda: col.api("GET", f"/v1/claims/{c1['id']}")[1].get("message") is None
             and wes.api("GET", f"/v1/claims/{c1['id']}")[1].get("message") is None
             and wes.api("GET", f"/v1/claims/{c2['id']}")[1].get("answer") is None
             and item["handle"] not in remote(wes, "colchester")
             and item["handle"] not in remote(che, "colchester"),
             what="the erasure at the peers")

    def clean():
        return all(traces(database_dump(b)) == [] for b in (col, wes, che))
    try:
        wait_for(clean, timeout=30, what="no trace of her in any bank's dump")
    except AssertionError:
        for b in (col, wes, che):
            dump = database_dump(b)
            found = traces(dump)
            lines = [ln[:300] for ln in dump.splitlines()
                     if any(w.lower() in ln.lower() or w.encode().hex() in ln.lower()
                            for w in found)]
            assert found == [], (b.config, lines)
    # The books and the channel are whole.
    for bank in (col, wes):
        assert bank.tbctl_json("audit")["ok"] is True
    assert peer_state(col, "westminster")["diverged"] is False
    assert peer_state(wes, "colchester")["diverged"] is False
    exported = col.tbctl_json("member", "export", str(ann))["member"]
    assert exported["erase_reason"] == "[erased] asked by phone, [erased]"
    # The channel goes on: a later exchange settles at both banks.
    bob = col.add_member("Bob")
    x3 = col.tbctl_json("exchange", "record", "--payer", str(bob), "--earner",
                        f"westminster:{wendy}", "--hours", "1", "--category", "lifts")
    wait_for(lambda: settled_or_rejected(col, x3["id"]), what="a later exchange")
    assert col.tbctl_json("exchange", "show", x3["id"])["state"] == "settled"
    # What was redacted is said in the log at neither bank as an error.
    assert "cannot be sent again" not in col.log_text() + wes.log_text()
