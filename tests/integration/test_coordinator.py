"""A coordinator's week: organisations, grants, reversals, group exchanges,
statements, reports for funders, tokens, and members' data rights."""

import csv
import io
import json
import os
import random
import subprocess

from tbtest import PG_BIN, TIMEBANKD


def balance(bank, n):
    return bank.tbctl_json("balance", str(n))["balance_minutes"]


def test_organisation_earns_and_spends_with_its_own_floor(bank):
    museum = bank.tbctl_json("org", "add", "--name", "Town Museum", "--floor", "-2h")
    assert museum["kind"] == "organisation" and museum["floor_minutes"] == -120
    ann = bank.add_member("Ann")
    # The museum takes time credits for entry: Ann pays it.
    assert bank.exchange(ann, museum["number"], "1", "museum visit")[0] == 201
    # The museum pays volunteers, down to its own floor.
    assert bank.exchange(museum["number"], ann, "3", "volunteering")[0] == 201
    status, body = bank.exchange(museum["number"], ann, "1", "volunteering")
    assert (status, body["error"]["code"]) == (422, "below_floor")
    assert "organisation" in body["error"]["message"]
    orgs = bank.tbctl_json("org", "list")["items"]
    assert [o["name"] for o in orgs] == ["Town Museum"]
    text = bank.tbctl("member", "list", check=True).stdout
    assert "organisation" in text


def test_referral_source_must_be_an_organisation(bank):
    gp = bank.tbctl_json("org", "add", "--name", "Rushey Green GP")["number"]
    ann = bank.add_member("Ann")
    before = bank.snapshot()
    r = bank.tbctl("member", "add", "--name", "Bob", "--referred-by", str(ann))
    assert r.returncode == 1 and "invalid_referrer" in r.stderr
    r = bank.tbctl("member", "add", "--name", "Bob", "--referred-by", "99")
    assert r.returncode == 1 and "member_not_found" in r.stderr
    assert bank.snapshot() == before
    bob = bank.tbctl_json("member", "add", "--name", "Bob", "--referred-by", str(gp))
    assert bob["referred_by"] == gp


def test_grant_moves_hours_from_the_community_account(cluster, workdir):
    from tbtest import Bank
    db = cluster.new_database()
    b = Bank(workdir, cluster.conninfo(db))
    b.write_config("colchester", cluster.conninfo(db), extra="community_floor = -5h\n")
    b.start()
    try:
        ann = b.add_member("Ann")
        g = b.tbctl_json("grant", "--member", str(ann), "--hours", "3", "--reason", "welcome")
        assert g["kind"] == "grant" and g["payer_label"] == "community account"
        assert g["recorded_by"] == "test-coordinator" and g["reason"] == "welcome"
        assert balance(b, ann) == 180
        # The community account may go down to its floor and no further.
        before = ledger_of(cluster, db)
        r = b.tbctl("grant", "--member", str(ann), "--hours", "2h30m")
        assert r.returncode == 1 and "below_floor" in r.stderr and "community account" in r.stderr
        assert ledger_of(cluster, db) == before
        assert b.tbctl("grant", "--member", str(ann), "--hours", "2", check=True).returncode == 0
        audit = b.tbctl_json("audit")
        assert audit["ok"] is True and "community -5h" in audit["checks"][2]["detail"]
        # Grants need a coordinator.
        status, body = b.api("POST", "/v1/grants", {"member": ann, "hours": 1},
                             token=b.tokens["broker"])
        assert (status, body["error"]["code"]) == (403, "forbidden")
    finally:
        assert b.stop() == 0


def ledger_of(cluster, db):
    from tbtest import ledger_snapshot
    return ledger_snapshot(cluster, db)


def test_reversal_is_a_new_transfer_and_happens_once(bank):
    ann, bob = bank.add_member("Ann"), bank.add_member("Bob")
    status, x = bank.exchange(ann, bob, "2", "lifts", description="to the surgery")
    original = bank.cluster.psql(f"SELECT t::text FROM transfers t WHERE id = {x['id']}",
                                 bank.db).stdout
    rev = bank.tbctl_json("exchange", "reverse", str(x["id"]), "--reason", "recorded twice")
    assert rev["kind"] == "reversal" and rev["reverses"] == x["id"]
    assert (rev["payer"], rev["earner"], rev["minutes"]) == (bob, ann, 120)
    assert balance(bank, ann) == 0 and balance(bank, bob) == 0
    # The original is never changed; it now says what reversed it.
    assert bank.cluster.psql(f"SELECT t::text FROM transfers t WHERE id = {x['id']}",
                             bank.db).stdout == original
    assert bank.tbctl_json("exchange", "show", str(x["id"]))["reversed_by"] == rev["id"]
    before = bank.snapshot()
    r = bank.tbctl("exchange", "reverse", str(x["id"]), "--reason", "again")
    assert r.returncode == 1 and "already_reversed" in r.stderr
    r = bank.tbctl("exchange", "reverse", str(rev["id"]), "--reason", "undo")
    assert r.returncode == 1 and "not_reversible" in r.stderr
    r = bank.tbctl("exchange", "reverse", "999", "--reason", "x")
    assert r.returncode == 1 and "exchange_not_found" in r.stderr
    r = bank.tbctl("exchange", "reverse", str(x["id"]))
    assert r.returncode == 1 and "invalid_reason" in r.stderr
    assert bank.snapshot() == before


def test_reversal_respects_the_floor_and_retries_safely(bank):
    ann, bob, cat = bank.add_member("Ann"), bank.add_member("Bob", floor="0"), bank.add_member("Cat")
    status, x = bank.exchange(ann, bob, "2")
    assert bank.exchange(bob, cat, "2")[0] == 201  # Bob spent what he earned
    before = bank.snapshot()
    status, body = bank.api("POST", f"/v1/exchanges/{x['id']}/reverse", {"reason": "mistake"})
    assert (status, body["error"]["code"]) == (422, "below_floor")
    assert bank.snapshot() == before
    bank.tbctl("member", "update", str(bob), "--floor", "default", check=True)
    s1, r1 = bank.api("POST", f"/v1/exchanges/{x['id']}/reverse",
                      {"reason": "mistake", "idempotency_key": "rev-1"})
    s2, r2 = bank.api("POST", f"/v1/exchanges/{x['id']}/reverse",
                      {"reason": "mistake", "idempotency_key": "rev-1"})
    assert s1 == s2 == 201 and r1 == r2


def test_reversal_of_a_grant_takes_the_hours_back(bank):
    ann = bank.add_member("Ann")
    g = bank.tbctl_json("grant", "--member", str(ann), "--hours", "4")
    bank.tbctl_json("exchange", "reverse", str(g["id"]), "--reason", "granted to the wrong member")
    assert balance(bank, ann) == 0
    assert bank.tbctl_json("audit")["ok"] is True


def test_group_exchange_posts_every_earner_or_none(bank):
    payer = bank.add_member("Garden owner")
    helpers = [bank.add_member(f"Helper {i}") for i in range(4)]
    suspended = bank.add_member("Away")
    bank.tbctl("member", "suspend", str(suspended), check=True)
    before = bank.snapshot()
    for earners, code in [
        ([helpers[0], helpers[1], 999], "member_not_found"),
        ([helpers[0], suspended], "member_inactive"),
        ([helpers[0], helpers[0]], "duplicate_earner"),
        ([helpers[0], payer], "same_member"),
        (helpers + [bank.add_member("Fifth")], "below_floor"),  # 5 x 3h > the 10h floor
    ]:
        before = bank.snapshot()
        status, body = bank.api("POST", "/v1/exchanges/group", {
            "payer": payer, "earners": earners, "hours": "3", "category": "gardening"})
        assert body["error"]["code"] == code, (earners, body)
        assert bank.snapshot() == before
    out = bank.tbctl_json("exchange", "record", "--payer", str(payer),
                          *sum([["--earner", str(h)] for h in helpers[:3]], []),
                          "--earner", f"{helpers[3]}:1h", "--hours", "2",
                          "--category", "gardening", "--key", "garden-session-1")
    assert out["minutes"] == 7 * 60 and len(out["items"]) == 4
    assert [i["minutes"] for i in out["items"]] == [120, 120, 120, 60]
    assert balance(bank, payer) == -420 and balance(bank, helpers[3]) == 60
    again = bank.tbctl_json("exchange", "record", "--payer", str(payer),
                            *sum([["--earner", str(h)] for h in helpers[:3]], []),
                            "--earner", f"{helpers[3]}:1h", "--hours", "2",
                            "--category", "gardening", "--key", "garden-session-1")
    assert again == out and balance(bank, payer) == -420


def check_statement(st):
    total = st["opening_minutes"]
    for line in st["lines"]:
        total += line["minutes"]
        assert line["balance_minutes"] == total
    assert total == st["closing_minutes"]
    assert st["opening_minutes"] + st["in_minutes"] - st["out_minutes"] == st["closing_minutes"]


def test_statements_add_up_for_random_workloads(bank):
    rng = random.Random(7)
    members = [bank.add_member(f"M{i}", floor="-50h") for i in range(8)]
    journal = []  # (date, member, minutes)
    days = [f"2025-{m:02d}-{d:02d}" for m in range(1, 13) for d in (3, 14, 27)]
    ids = []
    for i in range(300):
        a, b = rng.sample(members, 2)
        date, minutes = rng.choice(days), rng.choice([30, 60, 90, 120])
        kind = rng.random()
        if kind < 0.1:
            status, x = bank.api("POST", "/v1/grants", {"member": b, "minutes": minutes,
                                                        "performed_on": date})
        else:
            status, x = bank.exchange(a, b, None, minutes=minutes, performed_on=date) \
                if False else bank.api("POST", "/v1/exchanges", {
                    "payer": a, "earner": b, "minutes": minutes, "category": "c",
                    "performed_on": date})
        assert status == 201, x
        ids.append(x["id"])
        if x["payer"] is not None:
            journal.append((date, x["payer"], -minutes))
        journal.append((date, b, minutes))
    for tid in rng.sample(ids, 20):
        status, r = bank.api("POST", f"/v1/exchanges/{tid}/reverse", {"reason": "test"})
        if status == 201:
            today = r["performed_on"]
            if r["payer"] is not None:
                journal.append((today, r["payer"], -r["minutes"]))
            if r["earner"] is not None:
                journal.append((today, r["earner"], r["minutes"]))
    for _ in range(40):
        m = rng.choice(members)
        start, end = sorted(rng.sample(days, 2))
        st = bank.tbctl_json("statement", str(m), "--from", start, "--to", end)
        check_statement(st)
        assert st["opening_minutes"] == sum(x for d, n, x in journal if n == m and d < start)
        assert st["closing_minutes"] == sum(x for d, n, x in journal if n == m and d <= end)
    for m in members:  # all time: the statement closes on the balance
        st = bank.tbctl_json("statement", str(m), "--from", "2000-01-01", "--to", "2099-12-31")
        check_statement(st)
        assert st["closing_minutes"] == balance(bank, m)
    assert bank.tbctl_json("audit")["ok"] is True


def test_statement_prints_for_posting_and_opens_in_a_spreadsheet(bank):
    ann = bank.add_member("Ann Baker", address="1 High St, Colchester CO1 1AA")
    bob = bank.add_member("Bob")
    bank.exchange(bob, ann, "1h30m", "lifts", description="=HYPERLINK(\"x\") to the surgery",
                  performed_on="2025-03-04")
    bank.exchange(ann, bob, "45m", "phone support", performed_on="2025-03-20")
    text = bank.tbctl("statement", str(ann), "--month", "2025-03", check=True).stdout
    for part in ("Colchester Time Bank", "Time statement for Ann Baker (member 1)",
                 "1 High St, Colchester CO1 1AA", "Period: 2025-03-01 to 2025-03-31",
                 "Opening balance", "Closing balance", "Bob (member 2)", "1h30m", "45m"):
        assert part in text, part
    rows = list(csv.reader(io.StringIO(
        bank.tbctl("statement", str(ann), "--month", "2025-03", "--format", "csv",
                   check=True).stdout)))
    assert rows[0] == ["date", "other_party", "category", "description", "hours_in",
                       "hours_out", "balance_hours"]
    assert rows[1][3] == "Opening balance" and rows[-1][3] == "Closing balance"
    assert rows[2][:2] == ["2025-03-04", "Bob (member 2)"]
    assert rows[2][3].startswith("'=")  # shown as text, never run as a formula
    assert (rows[2][4], rows[3][5], rows[-1][6]) == ("1.50", "0.75", "0.75")
    as_json = bank.tbctl_json("statement", str(ann), "--month", "2025-03")
    assert as_json["closing_minutes"] == 45 and len(as_json["lines"]) == 2
    for args, text in [(["statement", "1"], "--from and --to"),
                       (["statement", "1", "--month", "2025-13"], "--month"),
                       (["statement", "1", "--month", "2025-03", "--format", "pdf"], "--format")]:
        r = bank.tbctl(*args)
        assert r.returncode == 2 and text in r.stderr


def test_statements_for_a_month_write_one_per_active_member(bank, workdir):
    members = [bank.add_member(f"M{i}") for i in range(5)]
    bank.tbctl("member", "suspend", str(members[4]), check=True)
    bank.exchange(members[0], members[1], "2", performed_on="2025-06-10")
    out = os.path.join(workdir, "june")
    r = bank.tbctl("statements", "--month", "2025-06", "--out", out, check=True)
    assert "wrote 4 statements" in r.stdout
    files = sorted(os.listdir(out))
    assert files == [f"statement-2025-06-{n}.txt" for n in members[:4]]
    with open(os.path.join(out, f"statement-2025-06-{members[1]}.txt")) as f:
        assert "Closing balance" in f.read()
    bank.tbctl("statements", "--month", "2025-06", "--out", out, "--format", "csv", check=True)
    assert f"statement-2025-06-{members[0]}.csv" in os.listdir(out)


def test_reports_for_funders(bank):
    gp = bank.tbctl_json("org", "add", "--name", "Rushey Green GP")["number"]
    social = bank.tbctl_json("org", "add", "--name", "Social services")["number"]
    a = bank.add_member("A", referred_by=gp, joined_on="2025-01-10")
    b = bank.add_member("B", referred_by=gp, joined_on="2025-02-11")
    c = bank.add_member("C", referred_by=social, joined_on="2025-02-12")
    d = bank.add_member("D", joined_on="2025-02-13", notes="SECRET-NOTE-42")
    bank.exchange(a, b, "2", "lifts", performed_on="2025-01-20")
    bank.exchange(b, c, "1", "lifts", performed_on="2025-02-05")
    bank.exchange(c, a, "30m", "befriending", performed_on="2025-02-06")
    status, x = bank.exchange(d, a, "3", "gardening", performed_on="2025-02-07")
    bank.api("POST", f"/v1/exchanges/{x['id']}/reverse", {"reason": "did not happen"})
    cats = bank.tbctl_json("report", "categories", "--from", "2025-01-01", "--to", "2025-12-31")
    assert [(r["month"], r["category"], r["exchanges"], r["minutes"]) for r in cats["rows"]] == [
        ("2025-01", "lifts", 1, 120), ("2025-02", "befriending", 1, 30),
        ("2025-02", "lifts", 1, 60)]
    new = bank.tbctl_json("report", "new-members", "--from", "2025-01-01", "--to", "2025-12-31")
    assert [(r["month"], r["new_members"]) for r in new["rows"]] == [("2025-01", 1), ("2025-02", 3)]
    active = bank.tbctl_json("report", "active", "--as-of", "2025-02-28", "--days", "30")
    assert active["rows"][0]["active_members"] == 3  # a, b, c; d's exchange was reversed
    active = bank.tbctl_json("report", "active", "--as-of", "2025-02-28", "--days", "60")
    assert active["rows"][0]["active_members"] == 3
    refs = bank.tbctl_json("report", "referrals", "--from", "2025-01-01", "--to", "2025-12-31")
    by = {r["source"]: r for r in refs["rows"]}
    assert by["Rushey Green GP"]["members"] == 2
    # Given: b earned 2h from a, a earned 30m from c; c earned 1h from b.
    assert by["Rushey Green GP"]["minutes_given"] == 120 + 30
    assert by["Rushey Green GP"]["minutes_received"] == 120 + 60
    assert by["Social services"]["minutes_given"] == 60
    assert by["not referred"]["members"] == 1
    rows = list(csv.reader(io.StringIO(bank.tbctl(
        "report", "referrals", "--month", "2025-02", "--format", "csv", check=True).stdout)))
    assert rows[0] == ["referral_source", "members", "new_members", "hours_given",
                       "hours_received"]
    text = bank.tbctl("report", "categories", check=True).stdout
    assert "lifts" in text and "2h" in text
    # Reports carry no one's details, and a viewer may read them.
    for name in ("categories", "active", "new-members", "referrals"):
        out = bank.tbctl("--json", "report", name, token=bank.tokens["viewer"], check=True).stdout
        assert "SECRET-NOTE-42" not in out and '"A"' not in out


def test_tokens_are_made_listed_and_revoked_from_tbctl(bank):
    r = bank.tbctl("token", "create", "--name", "brenda", "--role", "broker", check=True)
    token = r.stdout.strip()
    assert token.startswith("tb_") and "shown once" in r.stderr
    assert bank.tbctl("member", "list", token=token).returncode == 0
    r = bank.tbctl("member", "add", "--name", "X", token=token)
    assert r.returncode == 1 and "forbidden" in r.stderr
    listed = bank.tbctl_json("token", "list")["items"]
    assert {"name": "brenda", "role": "broker"}.items() <= listed[-1].items()
    assert all("token" not in t and "hash" not in t for t in listed)
    with open(bank.tokens_file) as f:
        assert token not in f.read()
    assert token not in bank.log_text()
    r = bank.tbctl("token", "create", "--name", "brenda", "--role", "viewer")
    assert r.returncode == 1 and "duplicate_token_name" in r.stderr
    r = bank.tbctl("token", "create", "--name", "x", "--role", "admin")
    assert r.returncode == 1 and "invalid_role" in r.stderr
    r = bank.tbctl("token", "create", "--name", "bad name!", "--role", "viewer")
    assert r.returncode == 1 and "invalid_token_name" in r.stderr
    bank.tbctl("token", "revoke", "brenda", check=True)
    assert bank.tbctl("member", "list", token=token).returncode == 1
    r = bank.tbctl("token", "revoke", "brenda")
    assert r.returncode == 1 and "token_not_found" in r.stderr
    r = bank.tbctl("token", "revoke", "test-coordinator")
    assert r.returncode == 1 and "last_coordinator" in r.stderr
    assert bank.api("GET", "/v1/tokens", token=bank.tokens["broker"])[0] == 403
    # Tokens made with tbctl and with timebankd -T share the file and its rules.
    r = subprocess.run([TIMEBANKD, "-c", bank.config, "-T", "brenda"], capture_output=True,
                       text=True)
    assert r.returncode == 0  # the name is free again after the revoke
    r = subprocess.run([TIMEBANKD, "-c", bank.config, "-T", "brenda"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "already a token named brenda" in r.stderr


def test_member_export_holds_everything_about_the_member(bank):
    ann = bank.add_member("Ann", email="ann@example.org", notes="uses a wheelchair")
    bob = bank.add_member("Bob")
    bank.exchange(ann, bob, "1", description="lift")
    exported = bank.tbctl_json("member", "export", str(ann))
    assert exported["member"]["notes"] == "uses a wheelchair"
    assert exported["member"]["email"] == "ann@example.org"
    assert exported["member"]["created_by"] == "test-coordinator"
    assert [t["description"] for t in exported["transfers"]] == ["lift"]
    # Plain text would lose detail: export is always JSON.
    again = json.loads(bank.tbctl("member", "export", str(ann), check=True).stdout)
    assert {**again, "exported_at": None} == {**exported, "exported_at": None}
    assert bank.api("GET", f"/v1/members/{ann}/export", token=bank.tokens["broker"])[0] == 403


def database_dump(bank):
    return subprocess.run([f"{PG_BIN}/pg_dump", "--data-only", "-d",
                           bank.cluster.conninfo(bank.db)],
                          capture_output=True, text=True, check=True).stdout


def test_erase_anonymises_and_keeps_the_books(bank):
    personal = {"name": "Zelda Quartermaine", "email": "zelda.q@example.org",
                "phone": "07700 900461", "address": "9 Quay Street, CO1 2XY",
                "skills": "origami-zq", "needs": "help-with-zq-forms",
                "availability": "zq-tuesdays", "notes": "zq-hearing-aid"}
    z = bank.add_member(**personal)
    bob = bank.add_member("Bob")
    bank.exchange(z, bob, "2", description="lift for Zelda Quartermaine")
    bank.exchange(bob, z, "2", description="Zelda's garden")
    before = bank.snapshot()
    r = bank.tbctl("member", "erase", str(z))
    assert r.returncode == 1 and "member_not_left" in r.stderr
    assert bank.snapshot() == before
    bank.tbctl("member", "update", str(z), "--status", "left", check=True)
    bank.tbctl("member", "erase", str(z), check=True)
    dump = database_dump(bank)
    for value in personal.values():
        assert value not in dump, value
    assert "Zelda" not in dump
    assert bank.tbctl_json("audit")["ok"] is True
    shown = bank.tbctl_json("member", "show", str(z))
    assert shown["erased"] is True and shown["name"] is None
    st = bank.tbctl_json("statement", str(bob), "--from", "2000-01-01", "--to", "2099-12-31")
    assert [l["other_party"] for l in st["lines"]] == ["former member", "former member"]
    check_statement(st)
    assert balance(bank, bob) == 0
    r = bank.tbctl("member", "erase", str(z))
    assert r.returncode == 1 and "already_erased" in r.stderr
    r = bank.tbctl("member", "update", str(z), "--name", "Back")
    assert r.returncode == 1 and "member_erased" in r.stderr


def test_erase_with_a_balance_needs_force_and_a_reason(bank):
    a, b = bank.add_member("Yusuf Tinker"), bank.add_member("Bob")
    bank.exchange(b, a, "3")
    bank.tbctl("member", "update", str(a), "--status", "left", check=True)
    before = bank.snapshot()
    r = bank.tbctl("member", "erase", str(a))
    assert r.returncode == 1 and "balance_not_zero" in r.stderr
    r = bank.tbctl("member", "erase", str(a), "--force")
    assert r.returncode == 2 and "--reason" in r.stderr
    status, body = bank.api("POST", f"/v1/members/{a}/erase", {"force": True})
    assert (status, body["error"]["code"]) == (400, "invalid_reason")
    assert bank.snapshot() == before
    bank.tbctl("member", "erase", str(a), "--force", "--reason", "moved abroad", check=True)
    assert balance(bank, a) == 180  # the hours stay on the anonymised account
    assert "Yusuf" not in database_dump(bank)
    assert bank.tbctl_json("audit")["ok"] is True
    exported = bank.tbctl_json("member", "export", str(a))["member"]
    assert exported["erase_reason"] == "moved abroad"
    assert exported["erased_by"] == "test-coordinator"


def test_confidential_notes_reach_only_coordinators_and_brokers(bank):
    n = bank.add_member("Ann", notes="NOTE-uses-a-wheelchair")
    assert bank.api("GET", f"/v1/members/{n}", token=bank.tokens["broker"])[1]["notes"] \
        == "NOTE-uses-a-wheelchair"
    assert bank.api("GET", f"/v1/members/{n}", token=bank.tokens["viewer"])[0] == 403
    listed = bank.api("GET", "/v1/members")[1]
    assert "NOTE-uses" not in json.dumps(listed)
    st = bank.tbctl("--json", "statement", str(n), "--month", "2025-01", check=True).stdout
    assert "NOTE-uses" not in st
    bank.tbctl("member", "update", str(n), "--notes", "NOTE-second", check=True)
    assert "NOTE-" not in bank.log_text()


def test_the_network_report_is_what_leaves_the_bank_and_holds_no_one(bank):
    gp = bank.tbctl_json("org", "add", "--name", "Rushey Green GP", "--org-kind", "gp_practice",
                         "--joined", "2025-01-02")["number"]
    r = bank.tbctl("org", "add", "--name", "X", "--org-kind", "surgery")
    assert r.returncode != 0 and "org_kind" in r.stderr
    r = bank.tbctl("member", "add", "--name", "Y", "--district", "CO2 7AB")
    assert r.returncode != 0 and "district" in r.stderr
    people = [bank.add_member(f"Person{i:02d} Surname", joined_on="2025-01-10",
                              address=f"{i} Mill Lane, Colchester CO2 7AB",
                              phone="07700 900461", referred_by=gp if i < 9 else None)
              for i in range(12)]
    for i in range(11):
        status, x = bank.exchange(people[i], people[i + 1], "1", "lifts",
                                  performed_on="2025-03-0%d" % (1 + i % 9))
        assert status == 201, x
    whole = bank.tbctl_json("report", "network", "--month", "2025-03",
                            token=bank.tokens["viewer"])
    # A bank with no national body sends nothing: the report as it would be.
    assert whole["sent"] == [] and whole["report"] is None
    out = whole["changed_since"]
    assert out["month"] == "2025-03" and out["final"] is True
    assert out["members"]["person"] == {"total": 10, "active": 10, "new": 0, "left": 0}
    assert out["hours"]["within"] == {"members": 10, "minutes": 660}
    assert out["hours"]["areas"] == [{"district": "CO2", "members": 10, "minutes": 660}]
    gp_row = out["referrals"][0]
    assert gp_row["kind"] == "gp_practice" and gp_row["members"] == 10
    text = bank.tbctl("report", "network", "--month", "2025-03", check=True).stdout
    assert "no national body is linked" in text and "activity report of" in text
    assert "CO2" in text and "11h" in text
    raw = bank.tbctl("--json", "report", "network", "--month", "2025-03", check=True).stdout
    for secret in ("Person", "Surname", "Mill Lane", "7AB", "07700", "Rushey"):
        assert secret not in raw and secret not in text
    r = bank.tbctl("report", "network", "--month", "2025-13")
    assert r.returncode != 0 and "invalid_period" in r.stderr
    status, body = bank.api("GET", "/v1/reports/network?month=March")
    assert status == 400 and body["error"]["code"] == "invalid_period"
