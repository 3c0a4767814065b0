"""Exchanges, balances, history and the audit."""

import concurrent.futures
import json
import random
import re
import urllib.request

from tbtest import batch_metrics


def test_exchange_record_moves_hours_and_answers_settled(bank):
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    out = bank.tbctl_json("exchange", "record", "--payer", str(a), "--earner", str(b),
                          "--hours", "1h30m", "--category", "Lifts",
                          "--description", "to the surgery", "--date", "2026-11-01")
    assert out["state"] == "settled" and isinstance(out["id"], int)
    assert out["minutes"] == 90 and out["category"] == "lifts"
    assert out["recorded_by"] == "test-coordinator"
    assert bank.tbctl_json("balance", str(a))["balance_minutes"] == -90
    bal = bank.tbctl_json("balance", str(b))
    assert bal["balance_minutes"] == 90 and bal["pending_minutes"] == 0
    text = bank.tbctl("balance", str(a), check=True).stdout
    assert "balance -1h30m" in text and "floor -10h" in text and "available 8h30m" in text
    shown = bank.tbctl_json("exchange", "show", str(out["id"]))
    assert shown == out


def test_exchange_accepts_every_way_of_writing_hours(bank):
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    for hours, minutes in [("2", 120), ("1.5", 90), ("1h30m", 90), ("90m", 90)]:
        out = bank.tbctl_json("exchange", "record", "--payer", str(a), "--earner", str(b),
                              "--hours", hours, "--category", "lifts")
        assert out["minutes"] == minutes
    assert bank.tbctl_json("balance", str(b))["balance_minutes"] == 390


def test_exchange_list_and_history_show_lines_with_running_balance(bank):
    a, b, c = (bank.add_member(n) for n in ("Ann", "Bob", "Cat"))
    bank.exchange(a, b, "2", "gardening")
    bank.exchange(b, c, "1", "befriending")
    bank.exchange(c, a, "30m", "phone support")
    listed = bank.tbctl_json("exchange", "list")
    assert [x["minutes"] for x in listed["items"]] == [30, 60, 120]
    mine = bank.tbctl_json("exchange", "list", "--member", str(b))
    assert len(mine["items"]) == 2
    hist = bank.tbctl_json("history", str(b))
    assert [(l["minutes"], l["balance_after"], l["other_party"]) for l in hist["items"]] == [
        (-60, 60, f"member {c}"), (120, 120, f"member {a}")]
    assert [l["other_name"] for l in hist["items"]] == ["Cat", "Ann"]
    text = bank.tbctl("history", str(b), check=True).stdout
    assert "befriending" in text and "gardening" in text and f"member {c} (Cat)" in text
    page = bank.tbctl_json("history", str(b), "--limit", "1")
    assert len(page["items"]) == 1 and page["next_cursor"] is not None
    everything = bank.tbctl_json("history", str(b), "--all", "--limit", "1")
    assert len(everything["items"]) == 2


def test_exchange_same_key_twice_applies_once_and_answers_the_same(bank):
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    s1, first = bank.exchange(a, b, "2", idempotency_key="visit-2026-11-20")
    s2, second = bank.exchange(a, b, "2", idempotency_key="visit-2026-11-20")
    assert s1 == s2 == 201 and first == second
    r = bank.tbctl("--json", "exchange", "record", "--payer", str(a), "--earner", str(b),
                   "--hours", "2", "--category", "lifts", "--key", "visit-2026-11-20", check=True)
    assert '"id": %d' % first["id"] in r.stdout
    assert bank.tbctl_json("balance", str(a))["balance_minutes"] == -120
    assert bank.cluster.psql("SELECT count(*) FROM transfers", bank.db).stdout.strip() == "1"


def test_exchange_same_key_for_a_different_exchange_is_refused(bank):
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    assert bank.exchange(a, b, "2", idempotency_key="k1")[0] == 201
    before = bank.snapshot()
    status, body = bank.exchange(a, b, "3", idempotency_key="k1")
    assert status == 409 and body["error"]["code"] == "idempotency_conflict"
    assert bank.snapshot() == before


def test_exchange_refusals_have_stable_codes_and_change_nothing(bank):
    a, b, s = bank.add_member("Ann"), bank.add_member("Bob"), bank.add_member("Sue")
    bank.tbctl("member", "suspend", str(s), check=True)
    before = bank.snapshot()
    cases = [
        (dict(payer=a, earner=99, hours="1"), 404, "member_not_found"),
        (dict(payer=99, earner=a, hours="1"), 404, "member_not_found"),
        (dict(payer=a, earner=a, hours="1"), 422, "same_member"),
        (dict(payer=a, earner=s, hours="1"), 422, "member_inactive"),
        (dict(payer=s, earner=a, hours="1"), 422, "member_inactive"),
        (dict(payer=a, earner=b, hours="11"), 422, "below_floor"),
        (dict(payer=a, earner=b, hours="0"), 400, "invalid_hours"),
        (dict(payer=a, earner=b, hours="-2"), 400, "invalid_hours"),
        (dict(payer=a, earner=b, hours="25"), 400, "invalid_hours"),
        (dict(payer=a, earner=b, hours="two"), 400, "invalid_hours"),
        (dict(payer=a, earner=b, hours="1", performed_on="2999-01-01"), 422, "invalid_date"),
        (dict(payer=a, earner=b, hours="1", performed_on="2026-02-30"), 400, "invalid_date"),
        (dict(payer=a, earner=b, hours="1", category=""), 400, "invalid_category"),
    ]
    for fields, status, code in cases:
        fields.setdefault("category", "lifts")
        got, body = bank.api("POST", "/v1/exchanges", fields)
        assert (got, body["error"]["code"]) == (status, code), fields
    r = bank.tbctl("exchange", "record", "--payer", str(a), "--earner", str(b), "--hours", "11",
                   "--category", "lifts")
    assert r.returncode == 1 and "below_floor" in r.stderr and "10h" in r.stderr
    assert bank.snapshot() == before


def test_exchange_maximum_follows_the_config(cluster, workdir):
    from tbtest import Bank
    db = cluster.new_database()
    b = Bank(workdir, cluster.conninfo(db))
    b.write_config("colchester", cluster.conninfo(db), max_exchange="3h", floor="-20h")
    b.start()
    try:
        x, y = b.add_member("Ann"), b.add_member("Bob")
        status, body = b.exchange(x, y, "3h30m")
        assert status == 400 and "3h" in body["error"]["message"]
        assert b.exchange(x, y, "3")[0] == 201
    finally:
        assert b.stop() == 0


def test_member_floor_override_allows_more_or_less(bank):
    a, b = bank.add_member("Ann", floor="-1h"), bank.add_member("Bob", floor="-20h")
    assert bank.exchange(a, b, "1h30m")[1]["error"]["code"] == "below_floor"
    assert bank.exchange(a, b, "1")[0] == 201
    assert bank.exchange(b, a, "15h")[0] == 201
    assert bank.tbctl_json("balance", str(b))["available_minutes"] == 20 * 60 - 15 * 60 + 60


def test_random_workload_of_1000_exchanges_keeps_the_books(bank):
    rng = random.Random(20261123)
    members = [bank.add_member(f"Member {i}") for i in range(25)]
    bank.tbctl("member", "update", str(members[0]), "--floor", "-2h", check=True)
    model = {m: 0 for m in members}
    floors = {m: -600 for m in members}
    floors[members[0]] = -120
    applied = refused = 0
    for i in range(1000):
        payer, earner = rng.sample(members, 2)
        minutes = rng.choice([15, 30, 45, 60, 90, 120, 180, 240])
        status, body = bank.api("POST", "/v1/exchanges", dict(
            payer=payer, earner=earner, minutes=minutes, category=rng.choice(["lifts", "gardening"]),
            idempotency_key=f"w{i}"))
        if model[payer] - minutes < floors[payer]:
            assert (status, body["error"]["code"]) == (422, "below_floor")
            refused += 1
        else:
            assert status == 201, body
            model[payer] -= minutes
            model[earner] += minutes
            applied += 1
    assert applied > 500 and refused > 0
    for m in members:
        assert bank.tbctl_json("balance", str(m))["balance_minutes"] == model[m]
    audit = bank.tbctl_json("audit")
    assert audit["ok"] is True
    assert [c["invariant"] for c in audit["checks"]] == [1, 2, 3]
    r = bank.tbctl("audit", check=True)
    assert "audit: ok" in r.stdout and "sum to 0 minutes" in r.stdout
    assert f"replayed from {2 * applied} entries" in r.stdout


def test_audit_names_the_accounts_that_fail(bank):
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    bank.exchange(a, b, "2")
    # Corrupt the cached balance behind the daemon's back, as a faulty
    # tool with direct database access might.
    bank.cluster.psql(f"UPDATE accounts SET balance_minutes = 999 WHERE id = "
                      f"(SELECT account_id FROM members WHERE number = {b})", bank.db)
    r = bank.tbctl("audit")
    assert r.returncode == 1
    assert "invariant 1 FAILED" in r.stdout and "invariant 2 FAILED" in r.stdout
    assert f"failing: member {b}: balance 999, journal 120" in r.stdout
    assert "audit: FAILED" in r.stdout


def test_journal_entries_are_their_transfers_own(bank):
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    status, t = bank.exchange(a, b, "2")
    assert status == 201
    # Each transfer's entries: its payer's debit and its earner's credit.
    rows = bank.cluster.psql("SELECT e.minutes, m.number FROM entries e JOIN members m "
                             f"ON m.account_id = e.account_id WHERE e.transfer_id = {t['id']} "
                             "ORDER BY e.id", bank.db).stdout.split()
    assert rows == [f"-120|{a}", f"120|{b}"]
    # Entries that balance but record no transfer cannot be written at all.
    before = bank.snapshot()
    r = bank.cluster.psql("INSERT INTO entries (transfer_id, account_id, minutes) "
                          f"SELECT 999999, account_id, m FROM members, (VALUES ({a}, -60), "
                          f"({b}, 60)) v(n, m) WHERE number = v.n", bank.db, check=False)
    assert r.returncode != 0 and "append-only" in r.stderr
    assert bank.snapshot() == before
    r = bank.tbctl("audit")
    assert r.returncode == 0 and "audit: ok" in r.stdout


def test_audit_reports_a_balance_below_its_floor(bank):
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    bank.exchange(a, b, "8")
    bank.cluster.psql(f"UPDATE accounts SET floor_minutes = -60 WHERE id = "
                      f"(SELECT account_id FROM members WHERE number = {a})", bank.db)
    out = bank.tbctl("--json", "audit")
    assert out.returncode == 1
    assert '"ok": false' in out.stdout and f"member {a}: balance -8h" in out.stdout


def test_journal_is_append_only_in_the_database_itself(bank):
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    bank.exchange(a, b, "2")
    before = bank.snapshot()
    for sql in ("UPDATE entries SET minutes = 1", "DELETE FROM entries",
                "TRUNCATE transfers CASCADE", "UPDATE transfers SET minutes = 1",
                "DELETE FROM transfers"):
        r = bank.cluster.psql(sql, bank.db, check=False)
        assert r.returncode != 0 and "append-only" in r.stderr, sql
    assert bank.snapshot() == before


def test_concurrent_exchanges_share_batches_and_keep_their_own_answers(bank):
    payers = [bank.add_member(f"Payer {i}", floor="-100h") for i in range(6)]
    earner = bank.add_member("Earner")
    away = bank.add_member("Away")
    poor = bank.add_member("Poor", floor="-1h")
    bank.tbctl("member", "suspend", str(away), check=True)
    before = int(bank.cluster.psql("SELECT count(*) FROM transfers", bank.db).stdout)
    reqs = []
    for i in range(120):
        kind = i % 6
        if kind == 0:
            reqs.append((dict(payer=away, earner=earner, hours=1, category="x",
                              idempotency_key=f"c{i}"), 422, "member_inactive"))
        elif kind == 1:
            reqs.append((dict(payer=poor, earner=earner, hours=2, category="x",
                              idempotency_key=f"c{i}"), 422, "below_floor"))
        elif kind == 2:
            reqs.append((dict(payer=999, earner=earner, hours=1, category="x",
                              idempotency_key=f"c{i}"), 404, "member_not_found"))
        else:
            reqs.append((dict(payer=payers[i % 6], earner=earner, minutes=30, category="x",
                              idempotency_key=f"c{i}"), 201, None))
    # The same key twice: the same request is answered alike, a different one refused.
    reqs.append((dict(payer=payers[3], earner=earner, minutes=30, category="x",
                      idempotency_key="c3"), 201, None))
    reqs.append((dict(payer=payers[1], earner=earner, minutes=45, category="x",
                      idempotency_key="c4"), 409, "idempotency_conflict"))
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda r: bank.api("POST", "/v1/exchanges", r[0]), reqs))
    ids, earned = {}, 0
    c4 = []
    for (body, status, code), (got, out) in zip(reqs, answers):
        if body["idempotency_key"] == "c4":
            c4.append((got, out))  # whichever came first was recorded
        elif status == 201:
            assert got == 201 and out["state"] == "settled", (out, bank.log_text()[-1500:])
            ids.setdefault(body["idempotency_key"], set()).add(out["id"])
        else:
            assert (got, out["error"]["code"]) == (status, code), (body, out)
    assert sorted(g for g, _ in c4) == [201, 409]
    assert [o["error"]["code"] for g, o in c4 if g == 409] == ["idempotency_conflict"]
    earned = sum(o["minutes"] for g, o in c4 if g == 201) + 30 * (len(ids))
    assert all(len(v) == 1 for v in ids.values()), bank.log_text()[-2000:]
    after = int(bank.cluster.psql("SELECT count(*) FROM transfers", bank.db).stdout)
    assert after - before == 60
    assert bank.tbctl_json("balance", str(earner))["balance_minutes"] == earned
    assert bank.tbctl_json("audit")["ok"]
    with urllib.request.urlopen(bank.url + "/metrics") as r:
        metrics = r.read().decode()
    batches = int(re.search(r"timebankd_exchange_batches_total (\d+)", metrics).group(1))
    batched = int(re.search(r"timebankd_exchanges_batched_total (\d+)", metrics).group(1))
    assert batched >= 122 and batches < batched  # some batches carried several


def test_set_wise_answers_are_the_exchanges_as_read_back(bank):
    """Batches with nothing to refuse are posted set-wise, every one of
    them, and each answer is the exchange as read back."""
    org = bank.add_member("Village Hall", kind="organisation", floor="-100h")
    people = [bank.add_member(f"Neighbour {i}", floor="-100h") for i in range(4)]
    reqs = [dict(payer=(org if i % 3 == 0 else people[i % 4]), earner=people[(i + 1) % 4],
                 minutes=15 + i, category="gardening",
                 description=None if i % 2 else f'weeding "bed" {i}\\ \u00e9',
                 idempotency_key=f"sw-{i}") for i in range(40)]
    before = batch_metrics(bank)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda r: bank.api("POST", "/v1/exchanges", r), reqs))
    batches, set_wise = (a - b for a, b in zip(batch_metrics(bank), before))
    assert batches > 0 and set_wise == batches
    for body, (status, out) in zip(reqs, answers):
        assert status == 201, out
        got, stored = bank.api("GET", f"/v1/exchanges/{out['id']}")
        assert got == 200 and out == stored
        assert (out["minutes"], out["description"]) == (body["minutes"], body["description"])
    assert bank.tbctl_json("audit")["ok"]
