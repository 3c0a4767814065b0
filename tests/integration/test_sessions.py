"""The console's accounts and sessions: a one-time setup code, signing in
with a password, the session cookie and its CSRF token, failed sign-ins
slowed and locked, signing out, and every write recorded by the person's
name."""

import json
import subprocess
import urllib.error
import urllib.request

import pytest

from tbtest import Bank, ledger_snapshot


def call(bank, method, path, body=None, cookie=None, csrf=None):
    """(status, JSON body, response headers), with no bearer token."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(bank.url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if cookie:
        req.add_header("Cookie", cookie)
    if csrf:
        req.add_header("X-CSRF-Token", csrf)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null"), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), e.headers


def make_user(bank, name, role, password="a long pass phrase"):
    code = bank.tbctl("user", "add", "--name", name, "--role", role, check=True).stdout.strip()
    r = subprocess.run(["env", f"TBCTL_URL={bank.url}", bank_tbctl(), "user", "setup", name,
                        "--code", code], input=password + "\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return code


def bank_tbctl():
    from tbtest import TBCTL
    return TBCTL


def sign_in(bank, name, password="a long pass phrase"):
    status, body, headers = call(bank, "POST", "/v1/session",
                                 {"name": name, "password": password})
    assert status == 200, body
    cookie = headers["Set-Cookie"]
    return cookie.split(";")[0], body["csrf_token"], cookie


def test_an_account_signs_in_and_its_writes_carry_its_name(bank):
    make_user(bank, "brenda", "broker")
    listed = bank.tbctl_json("user", "list")["items"]
    assert [(u["name"], u["role"], u["has_password"]) for u in listed] == [
        ("brenda", "broker", True)]
    cookie, csrf, header = sign_in(bank, "brenda")
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    status, me, _ = call(bank, "GET", "/v1/session", cookie=cookie)
    assert status == 200 and me == {"user": "brenda", "role": "broker"}
    ann, bob = bank.add_member("Ann"), bank.add_member("Bob")
    status, m, _ = call(bank, "GET", f"/v1/members/{ann}", cookie=cookie)
    assert status == 200 and m["name"] == "Ann"
    # A write with the cookie alone (what another site's page could send) is refused.
    before = bank.snapshot()
    status, body, _ = call(bank, "POST", "/v1/exchanges", {"payer": ann, "earner": bob,
                                                            "hours": 1, "category": "lifts"},
                           cookie=cookie)
    assert status == 403 and body["error"]["code"] == "csrf_failed"
    status, body, _ = call(bank, "POST", "/v1/exchanges", {"payer": ann, "earner": bob,
                                                            "hours": 1, "category": "lifts"},
                           cookie=cookie, csrf="0" * 64)
    assert status == 403 and body["error"]["code"] == "csrf_failed"
    assert bank.snapshot() == before
    status, x, _ = call(bank, "POST", "/v1/exchanges", {"payer": ann, "earner": bob, "hours": 1,
                                                         "category": "lifts"},
                        cookie=cookie, csrf=csrf)
    assert status == 201 and x["recorded_by"] == "brenda", x
    # A broker's account is a broker: no grants, no tokens.
    status, body, _ = call(bank, "POST", "/v1/grants", {"member": ann, "hours": 1},
                           cookie=cookie, csrf=csrf)
    assert status == 403 and body["error"]["code"] == "forbidden"
    # Signing out ends the session, whatever the cookie says after.
    status, body, headers = call(bank, "DELETE", "/v1/session", cookie=cookie)
    assert status == 200 and "Max-Age=0" in headers["Set-Cookie"]
    status, body, _ = call(bank, "GET", f"/v1/members/{ann}", cookie=cookie)
    assert status == 401 and body["error"]["code"] == "session_expired"
    assert "signed in" in bank.log_text() and "a long pass phrase" not in bank.log_text()


def test_a_viewer_account_cannot_reach_a_members_page(bank):
    make_user(bank, "vic", "viewer")
    cookie, _, _ = sign_in(bank, "vic")
    n = bank.add_member("Ann", notes="uses a wheelchair")
    status, body, _ = call(bank, "GET", f"/v1/members/{n}", cookie=cookie)
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert call(bank, "GET", "/v1/audit", cookie=cookie)[0] == 200


def test_wrong_passwords_are_refused_alike_and_an_account_is_locked_after_five(bank):
    make_user(bank, "brenda", "broker")
    for name in ("brenda", "nobody"):
        status, body, _ = call(bank, "POST", "/v1/session", {"name": name, "password": "wrong"})
        assert status == 401 and body["error"]["code"] == "invalid_credentials"
    for _ in range(4):
        assert call(bank, "POST", "/v1/session", {"name": "brenda", "password": "nope"})[0] == 401
    status, body, _ = call(bank, "POST", "/v1/session",
                           {"name": "brenda", "password": "a long pass phrase"})
    assert status == 429 and body["error"]["code"] == "account_locked"
    assert "account brenda locked" in bank.log_text()
    # A coordinator's reset gives the person a new code and unlocks nothing
    # by itself; the account waits for its new password.
    code = bank.tbctl("user", "reset", "brenda", check=True).stdout.strip()
    assert len(code) == 32


def test_an_address_that_keeps_failing_is_slowed(bank):
    for i in range(20):
        call(bank, "POST", "/v1/session", {"name": f"guess{i}", "password": "x"})
    status, body, headers = call(bank, "POST", "/v1/session", {"name": "anyone", "password": "y"})
    assert status == 429 and body["error"]["code"] == "too_many_attempts"


def test_setup_codes_are_one_time_and_passwords_long_enough(bank):
    code = bank.tbctl("user", "add", "--name", "dee", "--role", "coordinator",
                      check=True).stdout.strip()
    for body, status, err in [
            ({"name": "dee", "code": "0" * 32, "password": "a long pass phrase"}, 403,
             "invalid_setup_code"),
            ({"name": "dee", "code": code, "password": "short"}, 400, "weak_password"),
            ({"name": "dee", "code": code}, 400, "invalid_request")]:
        got, reply, _ = call(bank, "POST", "/v1/users/setup", body)
        assert got == status and reply["error"]["code"] == err, reply
    assert call(bank, "POST", "/v1/users/setup", {"name": "dee", "code": code,
                                                  "password": "a long pass phrase"})[0] == 200
    got, reply, _ = call(bank, "POST", "/v1/users/setup", {"name": "dee", "code": code,
                                                           "password": "another one here"})
    assert got == 403 and reply["error"]["code"] == "invalid_setup_code"
    # Names are shared with tokens: one each.
    out = bank.tbctl("token", "create", "--name", "dee", "--role", "viewer")
    assert out.returncode == 1 and "duplicate_token_name" in out.stderr
    out = bank.tbctl("user", "add", "--name", "test-broker", "--role", "broker")
    assert out.returncode == 1 and "duplicate_user_name" in out.stderr
    # Only a coordinator manages accounts; the file holds no password.
    status, body = bank.api("POST", "/v1/users", {"name": "eve", "role": "broker"},
                            token=bank.tokens["broker"])
    assert status == 403
    with open(bank.tokens_file + ".users") as f:
        text = f.read()
    assert "a long pass phrase" not in text and "scrypt:" in text
    # A removed account's sessions end with it.
    cookie, _, _ = sign_in(bank, "dee")
    bank.tbctl("user", "remove", "dee", check=True)
    assert call(bank, "GET", "/v1/session", cookie=cookie)[0] == 401


def test_a_session_of_another_bank_or_from_before_a_restart_is_refused(cluster, workdir, bank):
    make_user(bank, "brenda", "broker")
    cookie, _, _ = sign_in(bank, "brenda")
    db = cluster.new_database()
    import os
    other_dir = os.path.join(workdir, "other")
    os.mkdir(other_dir)
    os.chmod(other_dir, 0o755)
    other = Bank(other_dir, cluster.conninfo(db), bank_id="westminster").start()
    try:
        make_user(other, "brenda", "broker")
        status, body, _ = call(other, "GET", "/v1/session", cookie=cookie)
        assert status == 401 and body["error"]["code"] == "session_expired"
    finally:
        assert other.stop() == 0
    assert bank.stop() == 0
    bank.start()
    status, body, _ = call(bank, "GET", "/v1/session", cookie=cookie)
    assert status == 401 and body["error"]["code"] == "session_expired"
    # The account itself stays, and signs in again.
    sign_in(bank, "brenda")
