"""The shared directory: members' offers and requests, their anonymised
copies at every peer, federated search and matching, and contact between
members of two banks through their brokers."""

import datetime
import signal

import pytest

from tbtest import ledger_snapshot, peer_state, wait_for
from test_coordinator import database_dump
from test_federation import established, start_network


@pytest.fixture
def trio(cluster, workdir):
    n = start_network(cluster, workdir, running=("colchester", "westminster", "cheshire"))
    names = list(n.banks)
    for a in names:
        wait_for(lambda a=a: all(established(n.banks[a], b) for b in names if b != a),
                 what="the links")
    yield n
    for b in n.banks.values():
        if b.proc is not None:
            assert b.stop() == 0, b.log_text()


def add_item(bank, kind, member, category, text, **extra):
    """A new item; one shared with the federation is approved by a broker, as
    review (the default) asks."""
    status, out = bank.api("POST", f"/v1/{kind}s", dict(member=member, category=category,
                                                        text=text, **extra))
    assert status == 201, out
    if out["review"] == "waiting":
        out = approve(bank, kind, out["id"])
    return out


def approve(bank, kind, item_id):
    status, out = bank.api("POST", f"/v1/{kind}s/{item_id}/approve",
                           token=bank.tokens["broker"])
    assert status == 200 and out["review"] == "approved", out
    return out


def remote(bank, peer):
    """{handle: item} of peer's items as bank holds them."""
    rows = bank.cluster.psql(f"SELECT handle, kind, category, text, coalesce(area, '') "
                             f"FROM dir_remote WHERE peer = '{peer}'", bank.db).stdout
    return {r.split("|")[0]: r.split("|")[1:] for r in rows.splitlines() if r}


def search(bank, *args):
    return bank.tbctl_json("directory", "search", *args)["items"]


def test_offers_and_requests_are_kept_checked_and_normalised(trio):
    col = trio.banks["colchester"]
    ann = col.add_member("Ann")
    o = add_item(col, "offer", ann, "lifts", "Lifts to the surgery", area="co1",
                 availability="Tue am, thursdays pm", visibility="federation")
    assert (o["area"], o["availability"]) == ("CO1", "tuesday morning, thursday afternoon")
    assert o["shared"] and o["state"] == "active" and len(o["handle"]) == 12
    assert o["expires_on"] == str(datetime.date.today() + datetime.timedelta(days=180))
    r = col.tbctl_json("request", "add", "--member", str(ann), "--category", "paperwork",
                       "--text", "Help with a benefits form")
    assert r["visibility"] == "bank" and not r["shared"]
    text = col.tbctl("offer", "list", check=True).stdout
    assert "Lifts to the surgery" in text and "federation" in text
    up = col.tbctl_json("offer", "update", str(o["id"]), "--text", "Lifts to the hospital")
    assert up["text"] == "Lifts to the hospital" and up["handle"] == o["handle"]
    assert "Lifts to the hospital" in col.tbctl("offer", "show", str(o["id"]), check=True).stdout
    cats = col.tbctl_json("directory", "categories")["items"]
    assert {"code": "lifts", "label": "Lifts and transport"} in cats
    before = ledger_snapshot(col.cluster, col.db)
    count = col.cluster.psql("SELECT count(*) FROM dir_items", col.db).stdout
    # Each kind of personal detail is refused, saying what to remove.
    for words, what in [("email me at ann@example.org", "an e-mail address (ann@example.org)"),
                        ("ring 07700 900123", "a phone number (07700 900123)"),
                        ("I am at CO1 1AB", "a full postcode (CO1 1AB)")]:
        status, out = col.api("POST", "/v1/offers", dict(member=ann, category="lifts",
                                                          text=words, visibility="federation"))
        assert status == 422 and out["error"]["code"] == "personal_details", out
        assert what in out["error"]["message"]
        r = col.tbctl("offer", "update", str(o["id"]), "--text", words)
        assert r.returncode == 1 and "personal_details" in r.stderr
    for body, status, code in [
        (dict(member=ann, category="juggling", text="x"), 422, "invalid_category"),
        (dict(member=ann, category="lifts", text="x", area="CO1 1AB"), 400, "invalid_area"),
        (dict(member=ann, category="lifts", text="x", availability="soonish"), 400,
         "invalid_availability"),
        (dict(member=ann, category="lifts", text="x", visibility="world"), 400,
         "invalid_visibility"),
        (dict(member=ann, category="lifts", text="x", expires_on="2001-01-01"), 422,
         "invalid_date"),
        (dict(member=999, category="lifts", text="x"), 404, "member_not_found"),
        (dict(member=ann, category="lifts", text="x" * 281), 400, "invalid_field"),
    ]:
        got, out = col.api("POST", "/v1/offers", body)
        assert (got, out["error"]["code"]) == (status, code), (body, out)
    assert col.cluster.psql("SELECT count(*) FROM dir_items", col.db).stdout == count
    assert ledger_snapshot(col.cluster, col.db) == before
    w = col.tbctl_json("offer", "withdraw", str(o["id"]))
    assert w["state"] == "withdrawn"
    status, out = col.api("PATCH", f"/v1/offers/{o['id']}", {"text": "again"})
    assert status == 409 and out["error"]["code"] == "item_withdrawn"
    assert col.tbctl_json("offer", "list")["items"] == []
    assert len(col.tbctl_json("offer", "list", "--state", "all")["items"]) == 1


def test_a_shared_item_waits_for_a_brokers_approval_before_it_leaves(trio):
    col, wes, che = (trio.banks[b] for b in ("colchester", "westminster", "cheshire"))
    ann = col.add_member("Ann")
    status, o = col.api("POST", "/v1/offers", dict(member=ann, category="gardening",
                                                   text="Hedges cut, ask for Ann Smith",
                                                   visibility="federation"))
    assert status == 201 and o["review"] == "waiting" and not o["shared"]
    assert "waiting for a broker's approval" in col.tbctl("offer", "show", str(o["id"]),
                                                          check=True).stdout
    waiting = col.tbctl_json("offer", "list", "--state", "waiting")["items"]
    assert [w["id"] for w in waiting] == [o["id"]]
    assert "waiting" in col.tbctl("offer", "list", "--state", "waiting", check=True).stdout
    # Something shared after it reaches the peers; it does not.
    later = add_item(col, "offer", ann, "lifts", "Lifts to the surgery", visibility="federation")
    wait_for(lambda: later["handle"] in remote(wes, "colchester"), what="the later item")
    assert o["handle"] not in remote(wes, "colchester")
    # A viewer cannot let it out; a broker reads it, finds a name, and has it changed.
    status, out = col.api("POST", f"/v1/offers/{o['id']}/approve", token=col.tokens["viewer"])
    assert status == 403, out
    read = col.tbctl_json("offer", "show", str(o["id"]))["version"]
    col.tbctl("offer", "update", str(o["id"]), "--text", "Hedges cut and shaped", check=True)
    # The version the broker read is gone: the new words are not approved unseen.
    r = col.tbctl("offer", "approve", str(o["id"]), "--version", str(read),
                  token=col.tokens["broker"])
    assert r.returncode == 1 and "item_changed" in r.stderr, r.stderr
    status, out = col.api("POST", f"/v1/offers/{o['id']}/approve", {"version": "soon"},
                          token=col.tokens["broker"])
    assert status == 400 and out["error"]["code"] == "invalid_field", out
    shown = col.tbctl("offer", "show", str(o["id"]), check=True).stdout
    now = col.tbctl_json("offer", "show", str(o["id"]))["version"]
    assert f"--version {now}" in shown
    out = col.tbctl("offer", "approve", str(o["id"]), "--version", str(now),
                    token=col.tokens["broker"], check=True).stdout
    assert "approved by" in out
    wait_for(lambda: remote(wes, "colchester").get(o["handle"], [None] * 3)[2]
             == "Hedges cut and shaped", what="the approved item at the peer")
    r = col.tbctl("offer", "approve", str(o["id"]))
    assert r.returncode == 1 and "item_not_waiting" in r.stderr
    r = col.tbctl("offer", "approve", "99999")
    assert r.returncode == 1 and "item_not_found" in r.stderr
    # New words go back to the broker: the peers lose the old ones meanwhile.
    col.tbctl("offer", "update", str(o["id"]), "--text", "Hedges and lawns", check=True)
    wait_for(lambda: o["handle"] not in remote(wes, "colchester"), what="the item held back")
    approve(col, "offer", o["id"])
    wait_for(lambda: remote(wes, "colchester").get(o["handle"], [None] * 3)[2]
             == "Hedges and lawns", what="the new words at the peer")
    # A new date changes nothing peers see, and keeps the approval.
    moved = col.tbctl_json("offer", "update", str(o["id"]), "--expires",
                           str(datetime.date.today() + datetime.timedelta(days=30)))
    assert moved["review"] == "approved"
    # A bank that turns review off shares at once, approved by whoever wrote it.
    with open(che.config, "a") as f:
        f.write("\n[directory]\nreview = no\n")
    che.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "directory review off" in che.log_text(), what="the reload")
    carys = che.add_member("Carys")
    status, c = che.api("POST", "/v1/offers", dict(member=carys, category="lifts",
                                                   text="Lifts", visibility="federation"))
    assert status == 201 and c["review"] == "approved" and c["shared"]
    wait_for(lambda: c["handle"] in remote(col, "cheshire"), what="cheshire's item")


def test_three_banks_sync_changes_withdrawals_and_a_bank_that_was_away(trio):
    col, wes, che = (trio.banks[b] for b in ("colchester", "westminster", "cheshire"))
    wendy, walter = wes.add_member("Wendy"), wes.add_member("Walter")
    lift = add_item(wes, "offer", wendy, "lifts", "Lifts to the surgery", area="SW1",
                    availability="tue am", visibility="federation")
    garden = add_item(wes, "offer", walter, "gardening", "Weeding and mowing", area="SW3",
                      visibility="federation")
    add_item(wes, "offer", walter, "diy", "Shelves put up", visibility="bank")  # stays home
    form = add_item(wes, "request", wendy, "paperwork", "Help with a council tax form",
                    visibility="federation")
    shared = {lift["handle"], garden["handle"], form["handle"]}
    for b in (col, che):
        wait_for(lambda b=b: set(remote(b, "westminster")) == shared, what="the first sync")
    # Nothing that names the member travels.
    assert remote(col, "westminster")[lift["handle"]] == ["offer", "lifts",
                                                          "Lifts to the surgery", "SW1"]
    peers = col.tbctl_json("peers")["peers"]
    d = next(p for p in peers if p["peer"] == "westminster")["directory"]
    assert d["items"] == 3 and d["version"] > 0
    assert "DIRECTORY" in col.tbctl("peers", check=True).stdout

    # Cheshire goes away; westminster changes, withdraws, and suspends a member.
    assert che.stop() == 0
    wes.tbctl("offer", "update", str(lift["id"]), "--text", "Lifts to the hospital", check=True)
    approve(wes, "offer", lift["id"])
    wes.tbctl("request", "withdraw", str(form["id"]), check=True)
    wes.tbctl("member", "suspend", str(walter), check=True)
    cake = add_item(wes, "offer", wendy, "cooking", "Birthday cakes", visibility="federation")
    want = {lift["handle"], cake["handle"]}
    wait_for(lambda: set(remote(col, "westminster")) == want, what="colchester's sync")
    assert remote(col, "westminster")[lift["handle"]][2] == "Lifts to the hospital"
    # Back after its absence, cheshire catches up in one exchange of pages.
    che.start()
    wait_for(lambda: established(che, "westminster"), what="the link")
    wait_for(lambda: set(remote(che, "westminster")) == want, what="cheshire's catch-up")
    assert remote(che, "westminster")[lift["handle"]][2] == "Lifts to the hospital"
    # Reactivated, the member's items come back; a member who leaves takes them away.
    wes.tbctl("member", "activate", str(walter), check=True)
    wait_for(lambda: garden["handle"] in remote(che, "westminster"), what="the return")
    wes.tbctl("member", "update", str(wendy), "--status", "left", check=True)
    wait_for(lambda: set(remote(col, "westminster")) == {garden["handle"]}, what="leaving")
    # A peer's items survive a restart of the bank holding them.
    assert col.stop() == 0
    col.start()
    assert set(remote(col, "westminster")) == {garden["handle"]}
    assert search(col, "weeding")[0]["handle"] == garden["handle"]


def test_search_and_match_find_the_right_items_in_a_sensible_order(trio):
    col, wes, che = (trio.banks[b] for b in ("colchester", "westminster", "cheshire"))
    ann, bob = col.add_member("Ann"), col.add_member("Bob")
    wendy, will = wes.add_member("Wendy"), wes.add_member("Will")
    carys = che.add_member("Carys")
    fed = dict(visibility="federation")
    w_lift = add_item(wes, "offer", wendy, "lifts", "Lifts to the surgery and the hospital",
                      area="SW1", availability="tue am", **fed)
    add_item(wes, "offer", will, "lifts", "Lifts to the shops", area="SW3",
             availability="sat", **fed)
    add_item(wes, "offer", will, "gardening", "Mowing lawns", area="SW1", **fed)
    c_lift = add_item(che, "offer", carys, "lifts", "Hospital lifts", area="CW1", **fed)
    b_lift = add_item(col, "offer", bob, "lifts", "Lifts to the surgery", area="CO2", **fed)
    add_item(wes, "request", will, "it-help", "Help setting up a tablet", area="SW1", **fed)
    wait_for(lambda: len(remote(col, "westminster")) == 4 and len(remote(col, "cheshire")) == 1,
             what="sync")
    # The Done scenario: lifts in SW1 on Tuesdays, from another bank's broker.
    hits = search(che, "lifts", "tuesday", "--area", "SW1")
    assert [h["handle"] for h in hits] == [w_lift["handle"]]
    assert hits[0]["bank"] == "westminster" and hits[0]["member"] is None
    text = che.tbctl("directory", "search", "lifts", "--area", "SW", check=True).stdout
    assert "westminster" in text and "Lifts to the shops" in text
    # Ranking: the item saying "hospital" and "lifts" twice comes before others.
    hits = search(col, "hospital lifts")
    assert {h["handle"] for h in hits[:2]} == {w_lift["handle"], c_lift["handle"]}
    assert [h["bank"] for h in search(col, "lifts", "--bank", "cheshire")] == ["cheshire"]
    assert [h["kind"] for h in search(col, "--kind", "request")] == ["request"]
    own = search(col, "surgery", "--bank", "colchester")
    assert [h["handle"] for h in own] == [b_lift["handle"]] and own[0]["member"] == bob
    assert len(search(col, "lifts", "--category", "lifts")) == 4
    page = col.tbctl_json("directory", "search", "lifts", "--limit", "2")
    assert len(page["items"]) == 2 and page["next_cursor"] == "2"
    assert len(col.tbctl_json("directory", "search", "lifts", "--all")["items"]) == 4
    # A common word: more matches than are ranked, and the broker is told.
    col.cluster.psql("INSERT INTO dir_remote (peer, handle, kind, category, text, area, "
                     "expires_on, version, tsv) SELECT 'westminster', 'weed' || g, 'offer', "
                     "'gardening', 'Weeding', 'SW2', current_date + 30, 1000 + g, "
                     "tb_dir_tsv('offer', 'gardening', 'Gardening', 'Weeding', NULL, 'SW2') "
                     "FROM generate_series(1, 2001) g", col.db)
    assert col.tbctl_json("directory", "search", "weeding")["broad"] is True
    assert "add a word, --category or --area" in col.tbctl(
        "directory", "search", "weeding", check=True).stdout
    assert col.tbctl_json("directory", "search", "lifts")["broad"] is False
    status, out = col.api("GET", "/v1/directory?kind=both")
    assert status == 400 and out["error"]["code"] == "invalid_kind"

    # Ann needs a lift to the hospital: own bank's offers first, then others,
    # same category before other words, the same district first.
    need = col.tbctl_json("request", "add", "--member", str(ann), "--category", "lifts",
                          "--text", "A lift to the hospital", "--area", "SW1")
    found = col.tbctl_json("match", str(need["id"]))["items"]
    assert found[0]["handle"] == b_lift["handle"]  # own bank first
    assert found[1]["handle"] == w_lift["handle"]  # lifts, SW1, "hospital"
    assert all(f["category"] == "lifts" for f in found)
    assert "Lifts to the surgery" in col.tbctl("match", str(need["id"]), check=True).stdout
    r = col.tbctl("match", "99999")
    assert r.returncode == 1 and "item_not_found" in r.stderr


def test_contact_through_brokers_then_an_exchange_without_retyping(trio):
    col, wes, che = (trio.banks[b] for b in ("colchester", "westminster", "cheshire"))
    carys = che.add_member("Carys")
    wendy = wes.add_member("Wendy")
    lift = add_item(wes, "offer", wendy, "lifts", "Lifts to the surgery", area="SW1",
                    availability="tue am", visibility="federation")
    wait_for(lambda: lift["handle"] in remote(che, "westminster"), what="sync")
    # Cheshire's broker asks for Carys.
    c = che.tbctl_json("contact", "request", lift["handle"], "--for", str(carys), "--message",
                       "A member here needs a lift to the GP in SW1 next Tuesday morning",
                       token=che.tokens["broker"])
    assert c["state"] == "open" and c["id"].startswith("cheshire:k")
    wait_for(lambda: wes.api("GET", f"/v1/contacts/{c['id']}")[0] == 200, what="the request")
    queue = wes.tbctl_json("contact", "list")["items"]
    assert [q["id"] for q in queue] == [c["id"]] and queue[0]["member"] == wendy
    assert "Carys" not in str(queue)
    assert c["id"] in wes.tbctl("contact", "list", check=True).stdout
    r = wes.tbctl("contact", "accept", c["id"])
    assert r.returncode == 2 and "--message" in r.stderr
    ok = wes.tbctl_json("contact", "accept", c["id"], "--message",
                        "Wendy will ring Carys's broker to arrange the time")
    assert ok["state"] == "accepted"
    wait_for(lambda: che.tbctl_json("contact", "show", c["id"])["state"] == "accepted",
             what="the answer")
    mine = che.tbctl_json("contact", "show", c["id"])
    assert mine["answer"] == "Wendy will ring Carys's broker to arrange the time"
    status, out = wes.api("POST", f"/v1/contacts/{c['id']}/decline", {})
    assert status == 409 and out["error"]["code"] == "contact_already_decided"
    # The lift happened: Cheshire (Carys was helped) records it from the contact.
    x = che.tbctl_json("exchange", "record", "--contact", c["id"], "--hours", "1.5")
    assert x["state"] == "pending" and x["category"] == "lifts"
    wait_for(lambda: che.tbctl_json("exchange", "show", x["id"])["state"] != "pending",
             what="the exchange")
    assert che.tbctl_json("exchange", "show", x["id"])["state"] == "settled"
    assert wes.tbctl_json("balance", str(wendy))["balance_minutes"] == 90
    assert che.tbctl_json("balance", str(carys))["balance_minutes"] == -90
    assert x["id"] in che.tbctl("contact", "show", c["id"], check=True).stdout
    # Westminster cannot record it: its member gave the help.
    status, out = wes.api("POST", "/v1/exchanges", {"contact": c["id"], "hours": 1})
    assert status == 422 and out["error"]["code"] == "wrong_bank"

    # Declined, and refusals that change nothing.
    c2 = che.tbctl_json("contact", "request", lift["handle"], "--for", str(carys), "--message",
                        "The same member, on Friday?")
    wait_for(lambda: wes.api("GET", f"/v1/contacts/{c2['id']}")[0] == 200, what="request 2")
    wes.tbctl("contact", "decline", c2["id"], "--message", "Wendy is away", check=True)
    wait_for(lambda: che.tbctl_json("contact", "show", c2["id"])["state"] == "declined",
             what="the decline")
    assert che.tbctl_json("contact", "show", c2["id"])["answer"] == "Wendy is away"
    status, out = che.api("POST", "/v1/exchanges", {"contact": c2["id"], "hours": 1})
    assert status == 409 and out["error"]["code"] == "contact_not_accepted"
    before = ledger_snapshot(che.cluster, che.db)
    for body, status, code in [
        ({"handle": "nosuchhandle", "for": carys, "message": "hi"}, 404, "item_not_found"),
        ({"handle": lift["handle"], "for": 999, "message": "hi"}, 404, "member_not_found"),
        ({"handle": lift["handle"], "for": carys}, 400, "invalid_field"),
        ({"handle": "a b", "for": carys, "message": "hi"}, 400, "invalid_handle"),
    ]:
        got, out = che.api("POST", "/v1/contacts", body)
        assert (got, out["error"]["code"]) == (status, code), (body, out)
    assert ledger_snapshot(che.cluster, che.db) == before
    # An item withdrawn before the request arrives: declined at once. (The
    # request waits while westminster is away, and the item is withdrawn
    # there meanwhile.)
    assert wes.stop() == 0
    c3 = che.tbctl_json("contact", "request", lift["handle"], "--for", str(carys),
                        "--message", "one more")
    wes.cluster.psql(f"UPDATE dir_items SET state = 'withdrawn', updated_by = 'test' "
                     f"WHERE id = {lift['id']}", wes.db)
    wes.start()
    wait_for(lambda: che.tbctl_json("contact", "show", c3["id"])["state"] == "declined",
             what="the refusal")
    assert che.tbctl_json("contact", "show", c3["id"])["reason"] == "item_not_found"


def test_nothing_that_names_a_member_reaches_another_bank(trio):
    banks = trio.banks
    people = {
        "colchester": [("Philippa Quenby", "pq.quenby@example.org", "07700 900451", 704152361,
                        "uses a zq-walking-frame")],
        "westminster": [("Rupert Ashgrove", "r.ashgrove@example.net", "020 7946 0831", 704152472,
                         "zq-diabetic, needs breaks")],
        "cheshire": [("Morwenna Tregothnan", "morwenna.t@example.com", "01244 960112", 704152583,
                      "zq-partially-sighted")],
    }
    numbers = {}
    for b, rows in people.items():
        for name, email, phone, number, notes in rows:
            status, out = banks[b].api("POST", "/v1/members", dict(
                name=name, email=email, phone=phone, number=number, notes=notes,
                address=f"{name.split()[1]} House, Zq Lane"))
            assert status == 201, out
            numbers[b] = number
    fed = dict(visibility="federation")
    items = {}
    for b in banks:
        items[b] = [add_item(banks[b], "offer", numbers[b], "befriending",
                             f"A weekly chat over tea ({b})", area="CO1", **fed),
                    add_item(banks[b], "request", numbers[b], "it-help",
                             f"Help with video calls ({b})", **fed)]
    for a in banks:
        for b in banks:
            if a != b:
                wait_for(lambda a=a, b=b: len(remote(banks[a], b)) == 2, what="sync")
    for b in banks:
        assert len(search(banks[b], "chat")) == 3
    # Contacts every way, accepted, and an exchange from each.
    for a in banks:
        for b in banks:
            if a == b:
                continue
            handle = items[b][0]["handle"]
            c = banks[a].tbctl_json("contact", "request", handle, "--for", str(numbers[a]),
                                    "--message", "a member here would like a weekly chat")
            wait_for(lambda b=b, c=c: banks[b].api("GET", f"/v1/contacts/{c['id']}")[0] == 200,
                     what="the request")
            banks[b].tbctl("contact", "accept", c["id"], "--message",
                           "they will meet at the library", check=True)
            wait_for(lambda a=a, c=c: banks[a].tbctl_json("contact", "show", c["id"])["state"]
                     == "accepted", what="the answer")
            x = banks[a].tbctl_json("exchange", "record", "--contact", c["id"], "--hours", "1")
            wait_for(lambda a=a, x=x: banks[a].tbctl_json("exchange", "show", x["id"])["state"]
                     != "pending", what="the exchange")
            assert banks[a].tbctl_json("exchange", "show", x["id"])["state"] == "settled"
    for b in banks:
        dump = database_dump(banks[b])
        for other, rows in people.items():
            if other == b:
                continue
            for name, email, phone, number, notes in rows:
                for secret in (name, name.split()[1], email, phone, str(number), notes):
                    assert secret not in dump, (b, secret)
