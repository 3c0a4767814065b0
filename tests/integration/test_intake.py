"""People referred in by GP practices and services, through tbctl and the API,
with a referrer's own token; safeguarding checks and their refusals; and the
coordinator's to-do."""

import datetime

import pytest

from tbtest import Bank, ledger_snapshot

SAFEGUARDING = "\n[safeguarding]\ncheck_required = personal-care, childcare\n"


@pytest.fixture
def gp_bank(cluster, workdir):
    """A bank with a GP practice (1), a housing team (2), a member (3), and
    personal care and childcare needing a check."""
    db = cluster.new_database()
    b = Bank(workdir, cluster.conninfo(db))
    b.write_config("colchester", cluster.conninfo(db), extra=SAFEGUARDING)
    b.db, b.cluster = db, cluster
    b.snapshot = lambda: ledger_snapshot(cluster, db)
    b.start()
    b.tbctl("org", "add", "--name", "Castle Surgery", "--org-kind", "gp_practice", check=True)
    b.tbctl("org", "add", "--name", "Housing Options", "--org-kind", "housing", check=True)
    b.add_member("Ann Smith")
    yield b
    if b.proc is not None:
        assert b.stop() == 0, b.log_text()


def refer(bank, *extra, name="Edna Clarke"):
    return bank.tbctl_json("intake", "add", "--org", "1", "--name", name, "--phone",
                           "01206 500200", "--reason", "isolation,bereavement", "--referrer",
                           "Dr Byng", "--referrer-role", "GP", "--notes",
                           "lost her husband in March", "--consent-contact", *extra)


def test_a_referral_goes_from_received_to_joined_with_who_did_each(gp_bank):
    b = gp_bank
    r = refer(b, "--consent-outcomes")
    assert r["state"] == "received" and r["org_name"] == "Castle Surgery"
    assert r["snomed"]["code"] == "871731000000106"
    text = b.tbctl("intake", "show", str(r["id"]), check=True).stdout
    assert "Edna Clarke" in text and "lost her husband in March" in text
    assert "Dr Byng, GP" in text and "isolation, bereavement" in text
    b.tbctl("intake", "contacted", str(r["id"]), check=True, token=b.tokens["broker"])
    joined = b.tbctl_json("intake", "joined", str(r["id"]))
    assert joined["state"] == "joined" and joined["member"] == 4
    member = b.tbctl_json("member", "show", "4")
    assert member["name"] == "Edna Clarke" and member["referred_by"] == 1
    assert member["notes"] == "lost her husband in March"
    assert [(h["state"], h["by"]) for h in joined["history"]] == [
        ("received", "test-coordinator"), ("contacted", "test-broker"),
        ("joined", "test-coordinator")]
    listed = b.tbctl_json("intake", "list", "--state", "joined")
    assert [i["id"] for i in listed["items"]] == [r["id"]]


def test_state_changes_that_skip_or_go_back_are_refused_and_change_nothing(gp_bank):
    b = gp_bank
    r = refer(b)
    before = b.snapshot()
    for args, code in [(["joined", str(r["id"])], "invalid_transition"),
                       (["declined", str(r["id"]), "--reason", "busy"], "invalid_transition"),
                       (["contacted", "99"], "intake_not_found")]:
        out = b.tbctl("intake", *args)
        assert out.returncode == 1 and code in out.stderr, (args, out.stderr)
    assert b.snapshot() == before
    b.tbctl("intake", "contacted", str(r["id"]), check=True)
    out = b.tbctl("intake", "contacted", str(r["id"]))
    assert out.returncode == 1 and "invalid_transition" in out.stderr
    # Declining needs the person's reason; then it carries its SNOMED code.
    out = b.tbctl("intake", "declined", str(r["id"]))
    assert out.returncode == 2 and "--reason" in out.stderr
    d = b.tbctl_json("intake", "declined", str(r["id"]), "--reason", "caring for her mother")
    assert d["snomed"]["code"] == "871711000000103"
    out = b.tbctl("intake", "contacted", str(r["id"]))
    assert out.returncode == 1 and "invalid_transition" in out.stderr


def test_bad_referrals_are_refused_with_a_clear_error_and_nothing_kept(gp_bank):
    b = gp_bank
    before = b.snapshot()
    cases = [
        (["--org", "3", "--name", "Fay", "--reason", "carer"], "not_an_organisation"),
        (["--org", "9", "--name", "Fay", "--reason", "carer"], "not_an_organisation"),
        (["--org", "1", "--name", "Fay", "--reason", "loneliness"], "invalid_reason"),
        (["--org", "1", "--name", "Fay", "--reason", "carer,carer"], "invalid_reason"),
        (["--org", "1", "--name", "Fay"], "invalid_reason"),
        (["--org", "1", "--reason", "carer"], "invalid_field"),
    ]
    for args, code in cases:
        out = b.tbctl("intake", "add", *args)
        assert out.returncode == 1 and code in out.stderr, (args, out.stderr)
    status, body = b.api("POST", "/v1/intake", {"org": 1, "name": "Fay", "reasons": ["carer"],
                                                "nhs_number": "485 777 3456"})
    assert status == 400 and body["error"]["code"] == "unknown_field"
    assert b.snapshot() == before
    # Joining a referral to a member already linked to another is refused.
    first, second = refer(b), refer(b, name="Frank")
    for r in (first, second):
        b.tbctl("intake", "contacted", str(r["id"]), check=True)
    b.tbctl("intake", "joined", str(first["id"]), "--member", "3", check=True)
    out = b.tbctl("intake", "joined", str(second["id"]), "--member", "3")
    assert out.returncode == 1 and "member_already_referred" in out.stderr
    # No contact without consent to it.
    status, body = b.api("POST", "/v1/intake", {"org": 2, "name": "Gwen", "reasons": ["other"]})
    assert status == 201
    out = b.tbctl("intake", "contacted", str(body["id"]))
    assert out.returncode == 1 and "no_consent" in out.stderr


def test_a_referrer_token_refers_once_and_reads_only_its_own_organisation(gp_bank):
    b = gp_bank
    out = b.tbctl("token", "create", "--name", "castle-emis", "--role", "referrer")
    assert out.returncode == 1 and "invalid_org" in out.stderr
    out = b.tbctl("token", "create", "--name", "castle-emis", "--role", "referrer", "--org", "3")
    assert out.returncode == 1 and "not_an_organisation" in out.stderr
    token = b.tbctl("token", "create", "--name", "castle-emis", "--role", "referrer", "--org",
                    "1", check=True).stdout.strip()
    listed = b.tbctl_json("token", "list")["items"]
    assert {"name": "castle-emis", "org": 1, "role": "referrer"}.items() <= \
        [t for t in listed if t["name"] == "castle-emis"][0].items()
    body = {"name": "Harry Gold", "phone": "01206 500300", "reasons": ["recently-discharged"],
            "referrer_name": "Dr Byng", "consent_contact": True, "consent_outcomes": True,
            "idempotency_key": "emis-2026-0042"}
    status, first = b.api("POST", "/v1/intake", body, token=token)
    assert status == 201 and first["org"] == 1 and first["state"] == "received"
    # What a referrer reads is the status: never the person's details.
    assert "name" not in first and "phone" not in first and "notes" not in first
    status, again = b.api("POST", "/v1/intake", body, token=token)
    assert status == 201 and again["id"] == first["id"]
    status, body2 = b.api("POST", "/v1/intake", dict(body, name="Someone else"), token=token)
    assert status == 409 and body2["error"]["code"] == "idempotency_conflict"
    status, other = b.api("POST", "/v1/intake", {"org": 2, "name": "Ivy", "reasons": ["other"]})
    assert status == 201
    before = b.snapshot()
    for method, path, payload, code in [
            ("GET", f"/v1/intake/{other['id']}", None, "intake_not_found"),
            ("GET", "/v1/intake?org=2", None, "other_organisation"),
            ("POST", "/v1/intake", {"org": 2, "name": "Kim", "reasons": ["carer"]},
             "other_organisation"),
            ("POST", f"/v1/intake/{first['id']}/contacted", None, "forbidden"),
            ("GET", "/v1/members/3", None, "forbidden"),
            ("POST", "/v1/exchanges", {"payer": 3, "earner": 1, "hours": 1,
                                       "category": "lifts"}, "forbidden"),
            ("GET", "/v1/reports/intake", None, "forbidden"),
            ("GET", "/v1/todo", None, "forbidden")]:
        status, reply = b.api(method, path, payload, token=token)
        assert status in (403, 404) and reply["error"]["code"] == code, (path, reply)
    assert b.snapshot() == before
    status, mine = b.api("GET", "/v1/intake", token=token)
    assert status == 200 and [i["id"] for i in mine["items"]] == [first["id"]]
    # The token survives a restart (its line names its organisation).
    assert b.stop() == 0
    b.start()
    status, one = b.api("GET", f"/v1/intake/{first['id']}", token=token)
    assert status == 200 and one["state"] == "received"
    # It may withdraw its own referral, and nothing else.
    status, w = b.api("POST", f"/v1/intake/{first['id']}/withdrawn", token=token)
    assert status == 200 and w["state"] == "withdrawn"
    assert all("by" not in h for h in w["history"])  # who at the bank did what stays here
    staff = b.tbctl_json("intake", "show", str(first["id"]))
    assert staff["history"][-1]["by"] == "castle-emis"


def test_the_letter_goes_back_only_with_consent_and_names_nobody_else(gp_bank):
    b = gp_bank
    yes, no = refer(b, "--consent-outcomes"), refer(b, name="Frank Hill")
    for r in (yes, no):
        b.tbctl("intake", "contacted", str(r["id"]), check=True)
        b.tbctl("intake", "joined", str(r["id"]), check=True)
    edna = b.tbctl_json("intake", "show", str(yes["id"]))["member"]
    assert b.exchange(3, edna, 1.5, "befriending")[0] == 201
    letter = b.tbctl("intake", "letter", str(yes["id"]), check=True).stdout
    assert letter.startswith("Dear Dr Byng,")
    assert "Edna Clarke" in letter and "joined the time bank" in letter
    assert "Their first exchange of time was on" in letter
    assert "Active at 3 months: not yet known." in letter
    assert "Ann Smith" not in letter
    as_json = b.tbctl_json("intake", "letter", str(yes["id"]))
    assert as_json["state"] == "joined" and as_json["first_exchange"] is not None
    out = b.tbctl("intake", "letter", str(no["id"]))
    assert out.returncode == 1 and "no_consent" in out.stderr
    status, body = b.api("GET", f"/v1/intake/{no['id']}/letter")
    assert status == 422 and body["error"]["code"] == "no_consent"


def test_overdue_referrals_are_listed_and_in_the_todo(gp_bank):
    b = gp_bank
    late, fresh = refer(b), refer(b, name="Frank")
    b.cluster.psql(f"UPDATE intake SET received_at = now() - interval '15 days' "
                   f"WHERE id = {late['id']}", b.db)
    overdue = b.tbctl_json("intake", "list", "--overdue")
    assert [i["id"] for i in overdue["items"]] == [late["id"]]
    assert "received!" in b.tbctl("intake", "list", check=True).stdout
    todo = b.tbctl_json("todo")
    assert [i["id"] for i in todo["intake_overdue"]] == [late["id"]]
    assert [i["id"] for i in todo["intake_waiting"]] == [fresh["id"]]
    text = b.tbctl("todo", check=True, token=b.tokens["broker"]).stdout
    assert "referrals overdue for contact: 1" in text and "referrals waiting: 1" in text
    # A viewer reads reports, not the to-do, which names people's business.
    out = b.tbctl("todo", token=b.tokens["viewer"])
    assert out.returncode == 1 and "forbidden" in out.stderr


def test_the_commissioners_report_suppresses_small_counts_unless_internal(gp_bank):
    b = gp_bank
    for i in range(8):
        refer(b, name=f"Patient {i}")
    status, body = b.api("POST", "/v1/intake", {"org": 2, "name": "Ivy", "reasons": ["other"]})
    assert status == 201
    report = b.tbctl_json("report", "intake")
    orgs = {o["name"]: o for o in report["organisations"]}
    assert report["disclosed"] is True
    assert orgs["Castle Surgery"]["received"] == 10  # 8, rounded to 5
    assert orgs["Housing Options"]["received"] is None  # 1 is suppressed
    inside = b.tbctl_json("report", "intake", "--internal")
    assert {o["name"]: o["received"] for o in inside["organisations"]} == {
        "Castle Surgery": 8, "Housing Options": 1}
    assert inside["total"]["received"] == 9
    csv = b.tbctl("report", "intake", "--internal", "--format", "csv", check=True).stdout
    lines = csv.splitlines()
    assert lines[0].startswith("by,name,received,contacted_in_time,joined")
    assert lines[1].startswith("organisation,Castle Surgery,8,")
    assert any(line.startswith("reason,bereavement,8,") for line in lines)
    text = b.tbctl("report", "intake", "--org", "2", check=True).stdout
    assert "suppressed" in text and "Castle Surgery" not in text
    out = b.tbctl("report", "intake", "--from", "2026-13-01")
    assert out.returncode == 1


def test_help_that_needs_a_check_is_refused_without_one_and_overridden_on_record(gp_bank):
    b = gp_bank
    helper = b.add_member("Bob Jones")
    before = b.snapshot()
    status, body = b.exchange(3, helper, 1, "personal-care")
    assert status == 422 and body["error"]["code"] == "safeguarding_check_required"
    # An override is a coordinator's, not a broker's.
    status, body = b.api("POST", "/v1/exchanges", {"payer": 3, "earner": helper, "hours": 1,
                                                   "category": "personal-care",
                                                   "safeguarding_override": "known"},
                         token=b.tokens["broker"])
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert "coordinator" in body["error"]["message"]
    status, body = b.exchange(3, helper, 1, "personal-care", safeguarding_override="")
    assert status == 400 and body["error"]["code"] == "invalid_field"
    assert b.snapshot() == before
    out = b.tbctl("exchange", "record", "--payer", "3", "--earner", str(helper), "--hours",
                  "1", "--category", "childcare", "--override", "her DBS is being renewed")
    assert out.returncode == 0, out.stderr
    checks = b.tbctl_json("member", "checks", str(helper))
    assert checks["valid"] is False
    assert checks["overrides"][0]["reason"] == "her DBS is being renewed"
    assert checks["overrides"][0]["by"] == "test-coordinator"
    added = b.tbctl_json("member", "check-add", str(helper), "--kind", "dbs-enhanced",
                         "--reference", "001234567890", "--checked", "2026-01-10",
                         "--expires", "2029-01-10")
    assert added["valid"] is True
    status, body = b.exchange(3, helper, 1, "personal-care")
    assert status == 201, body
    out = b.tbctl("member", "check-add", str(helper), "--kind", "dbs-super", "--checked",
                  "2026-01-10")
    assert out.returncode == 1 and "invalid_kind" in out.stderr


def test_expiring_checks_care_flags_and_the_todo(gp_bank):
    b = gp_bank
    carer = b.add_member("Carol Carer")
    status, body = b.api("POST", f"/v1/members/{carer}/checks",
                         {"kind": "dbs-basic", "checked_on": "2024-01-01"})
    assert status == 400 and body["error"]["code"] == "invalid_field"  # a check has a reference
    status, body = b.api("POST", f"/v1/members/{carer}/checks",
                         {"kind": "dbs-basic", "reference": "0042", "checked_on": "2024-01-01"})
    assert status == 400 and body["error"]["code"] == "invalid_date"  # and the day it runs out
    runs_out = (datetime.date.today() + datetime.timedelta(days=20)).isoformat()
    status, body = b.api("POST", f"/v1/members/{carer}/checks",
                         {"kind": "dbs-basic", "reference": "0042", "checked_on": "2024-01-01",
                          "expires_on": runs_out})
    assert status == 201, body
    soon = b.tbctl_json("member", "checks", "--expiring", "30d")
    assert [(c["member"], c["days_left"]) for c in soon["items"]] == [(carer, 20)]
    assert b.tbctl_json("member", "checks", "--expiring", "10d")["items"] == []
    flagged = b.tbctl_json("member", "update", "3", "--needs-care", "yes")
    assert flagged["needs_care"] is True
    assert "needs care" in b.tbctl("member", "show", "3", check=True).stdout
    assert b.exchange(carer, 3, 1, "shopping")[0] == 201
    review = b.tbctl_json("care", "review")
    assert [x["care_member"] for x in review["items"]] == [3]
    seen = review["items"][-1]["id"]
    # One posted after the broker read the list is not marked reviewed with it.
    assert b.exchange(carer, 3, 1, "shopping")[0] == 201
    b.tbctl("care", "reviewed", "3", "--up-to", str(seen), check=True, token=b.tokens["broker"])
    assert [x["id"] > seen for x in b.tbctl_json("care", "review")["items"]] == [True]
    b.tbctl("care", "reviewed", "3", check=True, token=b.tokens["broker"])
    assert b.tbctl_json("care", "review")["items"] == []
    todo = b.tbctl_json("todo")
    assert [c["member"] for c in todo["checks_expiring"]] == [carer]
    assert todo["care_quiet"] == []
    text = b.tbctl("todo", check=True).stdout
    for line in ["safeguarding checks running out: 1", "claims to approve: 0",
                 "peers down or diverged: 0"]:
        assert line in text, text
    # The flag is confidential: lists do not carry it.
    listed = b.tbctl_json("member", "list")
    assert all("needs_care" not in m for m in listed["items"])


def test_erasing_a_member_erases_their_referral_and_check_references(gp_bank):
    b = gp_bank
    r = refer(b)
    b.tbctl("intake", "contacted", str(r["id"]), check=True)
    n = b.tbctl_json("intake", "joined", str(r["id"]))["member"]
    status, _ = b.api("POST", f"/v1/members/{n}/checks",
                      {"kind": "dbs-basic", "reference": "SECRET-REF-991",
                       "checked_on": "2026-01-01", "expires_on": "2029-01-01"})
    assert status == 201
    b.tbctl("member", "update", str(n), "--status", "left", check=True)
    b.tbctl("member", "erase", str(n), check=True)
    shown = b.tbctl_json("intake", "show", str(r["id"]))
    assert shown["name"] is None and shown["notes"] is None and shown["erased"] is True
    dump = b.cluster.psql("SELECT i::text FROM intake i UNION ALL "
                          "SELECT c::text FROM safeguarding_checks c", b.db).stdout
    assert "Edna" not in dump and "husband" not in dump and "SECRET-REF-991" not in dump
