"""The console's accounts and sessions: a one-time setup code, signing in
with a password, the session cookie and its CSRF token, failed sign-ins
slowed and locked, signing out, every write recorded by the person's
name, and the console over the daemon's own TLS."""

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tbtest import TIMEBANKD, Bank, free_port, ledger_snapshot


def call(bank, method, path, body=None, cookie=None, csrf=None):
    """(status, JSON body, response headers), with no bearer token; a
    sign-in turned away as one of too many at once (503 busy) is retried."""
    for _ in range(50):
        status, reply, headers = call_once(bank, method, path, body, cookie, csrf)
        if status != 503:
            break
        time.sleep(0.2)
    return status, reply, headers


def call_once(bank, method, path, body=None, cookie=None, csrf=None):
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
    assert status == 200 and me == {"user": "brenda", "role": "broker", "bank": "colchester",
                                    "bank_name": me["bank_name"], "csrf_token": csrf}
    # A token's answer carries no CSRF token: it needs none.
    assert "csrf_token" not in bank.api("GET", "/v1/session")[1]
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
    # A second session cookie beside ours (one planted by another site of
    # the same host) is no session at all.
    status, body, _ = call(bank, "GET", "/v1/session",
                           cookie=f"{cookie}; tb_session_colchester={'a' * 64}")
    assert status == 401
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
    status, made = bank.api("POST", "/v1/users", {"name": "dee", "role": "coordinator"})
    assert status == 201 and made["setup_path"].startswith("/console/setup#")
    code = made["setup_code"]
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
    other_dir = os.path.join(workdir, "other")
    os.mkdir(other_dir)
    os.chmod(other_dir, 0o755)
    other = Bank(other_dir, cluster.conninfo(db), bank_id="westminster").start()
    try:
        make_user(other, "brenda", "broker")
        # The cookie is named for its bank: westminster does not read
        # colchester's, and the same value under its own name is no session.
        assert cookie.startswith("tb_session_colchester=")
        status, body, _ = call(other, "GET", "/v1/session", cookie=cookie)
        assert status == 401 and body["error"]["code"] == "unauthorized"
        renamed = cookie.replace("tb_session_colchester=", "tb_session_westminster=")
        status, body, _ = call(other, "GET", "/v1/session", cookie=renamed)
        assert status == 401 and body["error"]["code"] == "session_expired"
    finally:
        assert other.stop() == 0
    assert bank.stop() == 0
    bank.start()
    status, body, _ = call(bank, "GET", "/v1/session", cookie=cookie)
    assert status == 401 and body["error"]["code"] == "session_expired"
    # The account itself stays, and signs in again.
    sign_in(bank, "brenda")


def test_behind_a_tls_proxy_cookies_are_secure_and_the_proxys_address_counts(cluster, workdir):
    db = cluster.new_database()
    b = Bank(workdir, cluster.conninfo(db))
    with open(b.config) as f:
        text = f.read()
    with open(b.config, "w") as f:
        f.write(text.replace("[ledger]", "behind_proxy = yes\n\n[ledger]"))
    b.start()
    try:
        make_user(b, "brenda", "broker")
        _, _, header = sign_in(b, "brenda")
        assert "Secure" in header
        names = iter(range(100))

        def attempt(address):
            data = json.dumps({"name": f"guess{next(names)}", "password": "x"}).encode()
            req = urllib.request.Request(b.url + "/v1/session", data=data, method="POST")
            req.add_header("Content-Type", "application/json")
            req.add_header("X-Forwarded-For", f"198.51.100.1, {address}")
            try:
                urllib.request.urlopen(req, timeout=30)
            except urllib.error.HTTPError as e:
                if e.code == 503:
                    time.sleep(0.2)
                    return attempt(address)
                return e.code
        for _ in range(20):
            assert attempt("203.0.113.7") == 401
        assert attempt("203.0.113.7") == 429
        assert attempt("203.0.113.8") == 401  # another client behind the same proxy
        # An IPv6 client counts as its /64: a stranger cannot spread its
        # guesses over the 2^64 addresses it is given.
        for i in range(20):
            assert attempt(f"2001:db8:1:2::{i + 1:x}") == 401
        assert attempt("2001:db8:1:2:ffff::9") == 429
        assert attempt("2001:db8:1:3::1") == 401  # the next /64 is another household

        def sign_in_from(address, password):
            data = json.dumps({"name": "brenda", "password": password}).encode()
            req = urllib.request.Request(b.url + "/v1/session", data=data, method="POST")
            req.add_header("Content-Type", "application/json")
            req.add_header("X-Forwarded-For", address)
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                if e.code == 503:
                    time.sleep(0.2)
                    return sign_in_from(address, password)
                return e.code
        # A stranger's wrong guesses lock brenda's account against the
        # stranger, not against brenda.
        for _ in range(5):
            assert sign_in_from("203.0.113.9", "wrong guess") == 401
        assert sign_in_from("203.0.113.9", "a long pass phrase") == 429
        assert sign_in_from("203.0.113.10", "a long pass phrase") == 200
        assert "account brenda locked for 15 minutes against 203.0.113.9" in b.log_text()
    finally:
        assert b.stop() == 0


def self_signed(directory):
    """A certificate for 127.0.0.1 and its key, as an operator's own CA or
    ACME client would give them."""
    cert, key = os.path.join(directory, "admin.crt"), os.path.join(directory, "admin.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=timebank.example.org",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_the_console_served_over_tls_sets_a_secure_cookie(cluster, workdir):
    cert, key = self_signed(workdir)
    port = free_port()
    db = cluster.new_database()
    bank = Bank(workdir, cluster.conninfo(db), extra=(
        f"\n[admin]\ntls_listen = 127.0.0.1:{port}\ntls_cert = {cert}\ntls_key = {key}\n"))
    bank.db = db
    bank.start()
    try:
        make_user(bank, "brenda", "broker")
        tls = ssl.create_default_context(cafile=cert)
        base = f"https://127.0.0.1:{port}"

        def over_tls(method, path, body=None, cookie=None, csrf=None):
            data = json.dumps(body).encode() if body is not None else None
            req = urllib.request.Request(base + path, data=data, method=method)
            for name, value in (("Content-Type", "application/json" if data else None),
                                ("Cookie", cookie), ("X-CSRF-Token", csrf)):
                if value:
                    req.add_header(name, value)
            try:
                with urllib.request.urlopen(req, context=tls, timeout=30) as r:
                    return r.status, r.read(), r.headers
            except urllib.error.HTTPError as e:
                return e.code, e.read(), e.headers

        status, page, headers = over_tls("GET", "/console/sign-in")
        assert status == 200 and b"console.js" in page
        status, body, headers = over_tls("POST", "/v1/session",
                                         {"name": "brenda", "password": "a long pass phrase"})
        assert status == 200, body
        set_cookie = headers["Set-Cookie"]
        assert "Secure" in set_cookie and "HttpOnly" in set_cookie, set_cookie
        # __Host-: a cookie planted over plain HTTP, or by another host of
        # the domain, is not this one.
        assert set_cookie.startswith("__Host-tb_session_colchester="), set_cookie
        cookie, csrf = set_cookie.split(";")[0], json.loads(body)["csrf_token"]
        ann = bank.add_member("Ann")
        status, body, _ = over_tls("GET", f"/v1/members/{ann}", cookie=cookie)
        assert status == 200 and json.loads(body)["name"] == "Ann"
        planted = "tb_session_colchester=" + cookie.split("=", 1)[1]
        assert over_tls("GET", "/v1/session", cookie=planted)[0] == 401
        # Many requests on one kept-alive TLS connection, and a large answer.
        for i in range(20):
            assert over_tls("GET", "/console/assets/chart.min.js")[0] == 200
        # Over the plain loopback listener the same sign-in's cookie is not Secure.
        _, _, plain = call(bank, "POST", "/v1/session",
                           {"name": "brenda", "password": "a long pass phrase"})
        assert "Secure" not in plain["Set-Cookie"]
        # Plain HTTP spoken to the TLS port, and a stalled handshake, are
        # dropped; the daemon goes on.
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(10)
            try:
                answer = s.recv(4096)
            except ConnectionResetError:
                answer = b""
            assert b"200 OK" not in answer
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(b"\x16\x03\x01")
        assert over_tls("GET", "/v1/health")[0] == 200
        # A handshake never finished is closed (after 10 s), not left for
        # the minute an idle connection has.
        half.settimeout(40)
        try:
            assert half.recv(1) == b""
        except ConnectionResetError:
            pass
        half.close()
        # A client that will not trust the certificate cannot be served.
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(base + "/v1/health", context=ssl.create_default_context(),
                                   timeout=10)
    finally:
        assert bank.stop() == 0, bank.log_text()


def test_remote_access_without_tls_is_refused_by_the_config_check(bank, workdir):
    cert, key = self_signed(workdir)
    text = open(bank.config).read()

    def check(admin):
        path = os.path.join(workdir, "check.conf")
        with open(path, "w") as f:
            f.write(text + "\n[admin]\n" + admin)
        return subprocess.run([TIMEBANKD, "-n", "-c", path], capture_output=True, text=True)

    plain = check("").returncode
    assert plain == 0
    wide = open(bank.config).read().replace(f"listen = 127.0.0.1:{bank.port}",
                                            f"listen = 0.0.0.0:{bank.port}")
    path = os.path.join(workdir, "wide.conf")
    with open(path, "w") as f:
        f.write(wide)
    r = subprocess.run([TIMEBANKD, "-n", "-c", path], capture_output=True, text=True)
    assert r.returncode != 0 and "not a loopback address" in r.stderr and "tls_listen" in r.stderr
    r = check(f"tls_listen = 0.0.0.0:{free_port()}\ntls_cert = {cert}\ntls_key = {key}\n")
    assert r.returncode == 0, r.stderr
    r = check(f"tls_listen = 0.0.0.0:{free_port()}\ntls_cert = {cert}\n")
    assert r.returncode != 0 and "go together" in r.stderr
