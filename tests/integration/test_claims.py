"""Claims from the earner's side: a member of westminster helped a member of
colchester, westminster claims the hours, colchester's broker approves (and
the usual cross-bank flow runs) or declines; westminster sees the outcome."""

from tbtest import ledger_snapshot, wait_for
from test_cross_bank import balance, pair, settled_or_rejected, xb  # noqa: F401 (fixture)


def claim(bank, earner, payer, hours="2", **extra):
    args = ["exchange", "claim", "--earner", str(earner), "--payer", payer, "--hours", hours,
            "--category", extra.pop("category", "gardening")]
    for k, v in extra.items():
        args += [f"--{k}", v]
    return bank.tbctl_json(*args)


def claim_state(bank, cid):
    return bank.tbctl_json("claim", "show", cid)


def arrived(bank, cid):
    status, _ = bank.api("GET", f"/v1/claims/{cid}")
    return status == 200


def test_an_approved_claim_settles_once_at_both_banks(pair):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    ann = col.add_member("Ann Payer")
    wendy = wes.add_member("Wendy Earner")
    c = claim(wes, wendy, f"colchester:{ann}", "2", message="hedge trimming at the allotment",
              description="Wendy's note: 3 bags of cuttings")
    assert c["state"] == "open" and c["id"].startswith("westminster:c")
    assert c["payer_label"] == f"colchester member {ann}"
    wait_for(lambda: arrived(col, c["id"]), what="the claim at colchester")
    # Colchester's broker sees it, with the claimant's number as in any exchange,
    # but not their name or westminster's own notes.
    listed = col.tbctl_json("claim", "list", token=col.tokens["broker"])["items"]
    assert [x["id"] for x in listed] == [c["id"]]
    seen = listed[0]
    assert seen["earner_label"] == f"westminster member {wendy}" and seen["payer"] == ann
    assert seen["message"] == "hedge trimming at the allotment"
    assert "Wendy" not in str(seen) and seen["description"] is None
    text = col.tbctl("claim", "list", check=True).stdout
    assert c["id"] in text and f"westminster member {wendy}" in text
    # Nothing moves until a broker approves.
    assert balance(col, ann)["pending_minutes"] == 0
    approved = col.tbctl_json("claim", "approve", c["id"], token=col.tokens["broker"])
    assert approved["state"] == "approved"
    xid = approved["exchange"]["id"]
    assert xid.startswith("colchester:")
    wait_for(lambda: settled_or_rejected(col, xid), what="the exchange")
    assert xb(col, xid)["state"] == "settled" and xb(wes, xid)["state"] == "settled"
    assert balance(col, ann)["balance_minutes"] == -120
    assert balance(wes, wendy)["balance_minutes"] == 120
    # The claimant's bank sees the outcome.
    wait_for(lambda: claim_state(wes, c["id"])["state"] == "approved", what="the outcome")
    mine = claim_state(wes, c["id"])
    assert mine["exchange"] == {"id": xid, "state": "settled", "reason": None}
    assert "exchange " + xid + " settled" in wes.tbctl("claim", "show", c["id"],
                                                        check=True).stdout
    outgoing = wes.tbctl_json("claim", "list", "--outgoing", "--state", "all")["items"]
    assert [x["id"] for x in outgoing] == [c["id"]]
    # Approving again changes nothing, at either bank.
    before = (ledger_snapshot(pair.cluster, col.db), ledger_snapshot(pair.cluster, wes.db))
    again = col.tbctl("claim", "approve", c["id"])
    assert again.returncode == 1 and "claim_already_decided" in again.stderr
    status, body = col.api("POST", f"/v1/claims/{c['id']}/approve")
    assert status == 409 and body["error"]["code"] == "claim_already_decided"
    status, body = col.api("POST", f"/v1/claims/{c['id']}/decline", {"reason": "oops"})
    assert status == 409 and body["error"]["code"] == "claim_already_decided"
    assert (ledger_snapshot(pair.cluster, col.db), ledger_snapshot(pair.cluster, wes.db)) == before
    assert col.tbctl_json("audit")["ok"] and wes.tbctl_json("audit")["ok"]
    hist = wes.tbctl_json("history", str(wendy))["items"]
    assert hist[0]["other_party"] == "a colchester member"
    st = col.tbctl_json("statement", str(ann), "--from", "2000-01-01", "--to", "2099-12-31")
    assert st["lines"][0]["other_party"] == f"westminster member {wendy}"
    assert st["lines"][0]["description"] == "hedge trimming at the allotment"


def test_a_declined_claim_tells_the_claimant_why(pair):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    ann = col.add_member("Ann")
    wendy = wes.add_member("Wendy")
    c = claim(wes, wendy, f"colchester:{ann}", "1")
    wait_for(lambda: arrived(col, c["id"]), what="the claim")
    r = col.tbctl("claim", "decline", c["id"])
    assert r.returncode == 2 and "--reason" in r.stderr
    out = col.tbctl_json("claim", "decline", c["id"], "--reason", "Ann says the visit was cancelled")
    assert out["state"] == "declined"
    wait_for(lambda: claim_state(wes, c["id"])["state"] == "declined", what="the decline")
    mine = claim_state(wes, c["id"])
    assert mine["reason"] == "declined" and mine["answer"] == "Ann says the visit was cancelled"
    assert "visit was cancelled" in wes.tbctl("claim", "show", c["id"], check=True).stdout
    status, body = col.api("POST", f"/v1/claims/{c['id']}/approve")
    assert status == 409 and body["error"]["code"] == "claim_already_decided"
    assert balance(col, ann)["balance_minutes"] == 0 and balance(wes, wendy)["balance_minutes"] == 0
    assert col.tbctl_json("claim", "list")["items"] == []  # open ones only
    assert len(col.tbctl_json("claim", "list", "--state", "all")["items"]) == 1


def test_claims_refused_with_a_clear_error_change_nothing(pair):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    ann = col.add_member("Ann")
    poor = col.add_member("Poor", floor="-1h")
    away = col.add_member("Away")
    wendy = wes.add_member("Wendy")
    gone = wes.add_member("Gone")
    wes.tbctl("member", "suspend", str(gone), check=True)
    before = ledger_snapshot(pair.cluster, wes.db)
    body = {"earner": wendy, "payer": f"colchester:{ann}", "hours": 1, "category": "diy"}
    cases = [
        (dict(body, payer="narnia:1"), 422, "unknown_bank"),
        (dict(body, payer=str(ann)), 400, "invalid_member_number"),
        (dict(body, payer=f"westminster:{gone}"), 422, "same_bank"),
        (dict(body, earner=gone), 422, "member_inactive"),
        (dict(body, earner=999), 404, "member_not_found"),
        (dict(body, hours=100), 400, "invalid_hours"),
        (dict(body, performed_on="2999-01-01"), 422, "invalid_date"),
        (dict(body, message="x" * 501), 400, "invalid_field"),
        (dict(body, colour="red"), 400, "unknown_field"),
    ]
    for req, status, code in cases:
        got, out = wes.api("POST", "/v1/claims", req)
        assert (got, out["error"]["code"]) == (status, code), (req, out)
    got, _ = wes.api("POST", "/v1/claims", body, token=wes.tokens["viewer"])
    assert got == 403
    r = wes.tbctl("exchange", "claim", "--earner", str(wendy), "--payer", "narnia:1",
                  "--hours", "1", "--category", "diy")
    assert r.returncode == 1 and "unknown_bank" in r.stderr
    assert wes.tbctl_json("claim", "list", "--outgoing", "--state", "all")["items"] == []
    assert ledger_snapshot(pair.cluster, wes.db) == before
    status, out = col.api("GET", "/v1/claims/westminster:c999")
    assert status == 404 and out["error"]["code"] == "claim_not_found"
    status, out = col.api("GET", "/v1/claims?direction=sideways")
    assert status == 400

    # A claim on a member colchester does not have is declined by colchester at once.
    nobody = claim(wes, wendy, "colchester:999", "1")
    wait_for(lambda: claim_state(wes, nobody["id"])["state"] == "declined", what="the refusal")
    assert claim_state(wes, nobody["id"])["reason"] == "member_not_found"

    # Approval is refused while the payer cannot pay: the claim stays open.
    col.tbctl("member", "suspend", str(away), check=True)
    c_away = claim(wes, wendy, f"colchester:{away}", "1")
    c_poor = claim(wes, wendy, f"colchester:{poor}", "2")
    wait_for(lambda: arrived(col, c_away["id"]) and arrived(col, c_poor["id"]), what="claims")
    before_col = ledger_snapshot(pair.cluster, col.db)
    for cid, status, code in [(c_away["id"], 422, "member_inactive"),
                              (c_poor["id"], 422, "below_floor"),
                              ("colchester:c1", 404, "claim_not_found")]:
        got, out = col.api("POST", f"/v1/claims/{cid}/approve")
        assert (got, out["error"]["code"]) == (status, code), out
    assert ledger_snapshot(pair.cluster, col.db) == before_col
    assert claim_state(col, c_away["id"])["state"] == "open"
    assert claim_state(col, c_poor["id"])["state"] == "open"
    # A claimant suspended before the approval arrives: the exchange is refused
    # by westminster, and both banks say so.
    c_ok = claim(wes, wendy, f"colchester:{ann}", "1")
    wait_for(lambda: arrived(col, c_ok["id"]), what="the claim")
    wes.tbctl("member", "suspend", str(wendy), check=True)
    xid = col.tbctl_json("claim", "approve", c_ok["id"])["exchange"]["id"]
    wait_for(lambda: settled_or_rejected(col, xid), what="the answer")
    assert xb(col, xid)["reason"] == "member_inactive"
    wait_for(lambda: claim_state(wes, c_ok["id"])["state"] == "approved", what="the outcome")
    assert claim_state(wes, c_ok["id"])["exchange"]["state"] == "rejected"
    assert balance(col, ann)["balance_minutes"] == 0 and balance(col, ann)["pending_minutes"] == 0
    assert col.tbctl_json("audit")["ok"] and wes.tbctl_json("audit")["ok"]


def test_a_claim_waits_for_a_bank_that_is_away(pair):
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    ann = col.add_member("Ann")
    wendy = wes.add_member("Wendy")
    assert col.stop() == 0
    c = claim(wes, wendy, f"colchester:{ann}", "1.5")
    assert "open" in wes.tbctl("claim", "show", c["id"], check=True).stdout
    col.start()
    wait_for(lambda: arrived(col, c["id"]), timeout=60, what="the claim after the restart")
    assert claim_state(wes, c["id"])["sent"]
    xid = col.tbctl_json("claim", "approve", c["id"])["exchange"]["id"]
    wait_for(lambda: claim_state(wes, c["id"])["state"] == "approved", what="the outcome")
    wait_for(lambda: settled_or_rejected(col, xid), what="the exchange")
    assert balance(wes, wendy)["balance_minutes"] == 90
    assert balance(col, ann)["balance_minutes"] == -90
