"""Members through tbctl and the API: add, show, list, update, suspend."""

import json


def test_member_add_returns_number_and_show_has_every_detail(bank):
    out = bank.tbctl_json("member", "add", "--name", "Ann Smith", "--email", "ann@example.org",
                          "--phone", "01206 555 123", "--address", "1 High St, CO1",
                          "--skills", "lifts, gardening", "--needs", "shopping",
                          "--availability", "Tue mornings", "--notes", "uses a wheelchair")
    assert out["number"] == 1
    shown = bank.tbctl_json("member", "show", "1")
    for key, value in [("name", "Ann Smith"), ("email", "ann@example.org"),
                       ("phone", "01206 555 123"), ("skills", "lifts, gardening"),
                       ("notes", "uses a wheelchair"), ("status", "active")]:
        assert shown[key] == value
    text = bank.tbctl("member", "show", "1", check=True).stdout
    assert "Ann Smith (active)" in text and "uses a wheelchair" in text


def test_member_add_with_chosen_number_and_duplicate_refused(bank):
    assert bank.tbctl_json("member", "add", "--name", "Bob", "--number", "17")["number"] == 17
    before = bank.snapshot()
    r = bank.tbctl("member", "add", "--name", "Another", "--number", "17")
    assert r.returncode == 1
    assert "duplicate_member_number" in r.stderr
    assert bank.snapshot() == before
    # Numbers handed out afterwards continue from the highest.
    assert bank.tbctl_json("member", "add", "--name", "Cat")["number"] == 18


def test_member_list_is_paged_and_filtered(bank):
    for i in range(7):
        bank.add_member(f"Member {i}")
    bank.tbctl("member", "suspend", "3", check=True)
    page = bank.tbctl_json("member", "list", "--limit", "3")
    assert [m["number"] for m in page["items"]] == [1, 2, 3]
    assert page["next_cursor"] == "3"
    page2 = bank.tbctl_json("member", "list", "--limit", "3", "--cursor", page["next_cursor"])
    assert [m["number"] for m in page2["items"]] == [4, 5, 6]
    every = bank.tbctl_json("member", "list", "--all", "--limit", "2")
    assert [m["number"] for m in every["items"]] == list(range(1, 8))
    suspended = bank.tbctl_json("member", "list", "--status", "suspended")
    assert [m["number"] for m in suspended["items"]] == [3]
    found = bank.tbctl_json("member", "list", "--search", "member 5")
    assert [m["number"] for m in found["items"]] == [6]
    # Lists never carry confidential notes.
    assert all("notes" not in m for m in every["items"])
    text = bank.tbctl("member", "list", "--limit", "3", check=True).stdout
    assert "more: --cursor 3" in text


def test_member_update_changes_only_given_fields(bank):
    n = bank.add_member("Dee", email="dee@example.org", skills="IT help")
    updated = bank.tbctl_json("member", "update", str(n), "--phone", "07700 900123",
                              "--floor", "-2h")
    assert updated["phone"] == "07700 900123"
    assert updated["email"] == "dee@example.org"
    assert updated["skills"] == "IT help"
    assert updated["floor_minutes"] == -120
    back = bank.tbctl_json("member", "update", "--floor", "default", str(n))
    assert back["floor_minutes"] is None


def test_member_suspend_and_activate(bank):
    n = bank.add_member("Eve")
    assert bank.tbctl_json("member", "suspend", str(n))["status"] == "suspended"
    assert bank.tbctl_json("member", "activate", str(n))["status"] == "active"
    assert bank.tbctl_json("member", "update", str(n), "--status", "left")["status"] == "left"


def test_member_errors_exit_non_zero_and_change_nothing(bank):
    bank.add_member("Fay")
    before = bank.snapshot()
    cases = [
        (["member", "show", "99"], 1, "member_not_found"),
        (["member", "update", "99", "--name", "X"], 1, "member_not_found"),
        (["member", "suspend", "99"], 1, "member_not_found"),
        (["member", "add"], 1, "name is required"),
        (["member", "add", "--name", "G", "--floor", "5h"], 1, "invalid_hours"),
        (["member", "add", "--name", "G", "--joined", "soon"], 1, "invalid_date"),
        (["member", "update", "1", "--status", "gone"], 1, "invalid_status"),
        (["member", "update", "1"], 1, "nothing to update"),
        (["member", "add", "--colour", "red"], 2, "unknown option"),
        (["member", "show"], 2, "member NUMBER"),
        (["member", "fly"], 2, "member needs"),
    ]
    for args, rc, text in cases:
        r = bank.tbctl(*args)
        assert r.returncode == rc, (args, r.stderr)
        assert text in r.stderr, (args, r.stderr)
    assert bank.snapshot() == before


def test_member_floor_cannot_be_raised_above_balance(bank):
    a, b = bank.add_member("Gil"), bank.add_member("Hal")
    assert bank.exchange(a, b, "3")[0] == 201
    before = bank.snapshot()
    r = bank.tbctl("member", "update", str(a), "--floor", "-2h")
    assert r.returncode == 1 and "below_floor" in r.stderr
    assert bank.snapshot() == before


def test_member_json_fields_are_stable(bank):
    out = json.loads(bank.tbctl("--json", "member", "add", "--name", "Ivy", check=True).stdout)
    assert set(out) >= {"number", "name", "status", "joined_on", "balance_minutes",
                        "pending_minutes", "floor_minutes"}
