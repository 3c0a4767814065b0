"""The admin API's edges: tokens, roles, malformed requests, limits."""

import http.client
import json
import time

import pytest

# Every endpoint, the least role it needs, and a body when it takes one.
ENDPOINTS = [
    ("POST", "/v1/members", "coordinator", {"name": "X"}),
    ("GET", "/v1/members", "broker", None),
    ("GET", "/v1/members/1", "broker", None),
    ("PATCH", "/v1/members/1", "coordinator", {"phone": "1"}),
    ("POST", "/v1/members/1/suspend", "coordinator", None),
    ("POST", "/v1/members/1/activate", "coordinator", None),
    ("GET", "/v1/members/1/balance", "broker", None),
    ("GET", "/v1/members/1/history", "broker", None),
    ("POST", "/v1/exchanges", "broker", {"payer": 1, "earner": 2, "hours": 1, "category": "x"}),
    ("GET", "/v1/exchanges", "broker", None),
    ("GET", "/v1/exchanges/1", "broker", None),
    ("GET", "/v1/audit", "viewer", None),
    ("GET", "/v1/members/1/statement?from=2025-01-01&to=2025-12-31", "broker", None),
    ("GET", "/v1/members/1/export", "coordinator", None),
    ("POST", "/v1/members/1/erase", "coordinator", {}),
    ("POST", "/v1/exchanges/group", "broker",
     {"payer": 1, "earners": [2], "hours": 1, "category": "x"}),
    ("POST", "/v1/exchanges/1/reverse", "coordinator", {"reason": "test"}),
    ("POST", "/v1/grants", "coordinator", {"member": 1, "hours": 1}),
    ("GET", "/v1/reports/categories", "viewer", None),
    ("GET", "/v1/reports/active", "viewer", None),
    ("GET", "/v1/reports/new-members", "viewer", None),
    ("GET", "/v1/reports/referrals", "viewer", None),
    ("GET", "/v1/tokens", "coordinator", None),
    ("POST", "/v1/tokens", "coordinator", {"name": "made-in-test", "role": "viewer"}),
    ("POST", "/v1/tokens/nobody/revoke", "coordinator", None),
]
RANK = {"viewer": 1, "broker": 2, "coordinator": 3}


@pytest.mark.parametrize("method,path,role,body", ENDPOINTS)
def test_every_endpoint_needs_a_token_and_its_role(bank, method, path, role, body):
    bank.add_member("Ann")
    bank.add_member("Bob")
    bank.exchange(1, 2, "1")
    before = bank.snapshot()
    status, err = bank.api(method, path, body, token="")
    assert (status, err["error"]["code"]) == (401, "unauthorized")
    status, err = bank.api(method, path, body, token="tb_not_a_real_token")
    assert status == 401
    for r, rank in RANK.items():
        status, reply = bank.api(method, path, body, token=bank.tokens[r])
        if rank < RANK[role]:
            assert (status, reply["error"]["code"]) == (403, "forbidden"), r
            assert bank.snapshot() == before
        else:
            assert status < 300 or reply["error"]["code"] != "forbidden", (r, reply)


def test_writes_record_which_token_made_them(bank):
    bank.add_member("Ann")
    status, _ = bank.api("POST", "/v1/members", {"name": "Bob"}, token=bank.tokens["coordinator"])
    status, x = bank.api("POST", "/v1/exchanges",
                         {"payer": 1, "earner": 2, "hours": 1, "category": "lifts"},
                         token=bank.tokens["broker"])
    assert x["recorded_by"] == "test-broker"
    who = bank.cluster.psql("SELECT created_by FROM members WHERE number = 2", bank.db).stdout
    assert who.strip() == "test-coordinator"


def test_malformed_json_is_400_and_changes_nothing(bank):
    before = bank.snapshot()
    for raw in (b"{", b"[1,2", b"", b"not json", b'{"name": "A", "name": "B"}'):
        status, body = bank.api("POST", "/v1/members", raw=raw)
        assert (status, body["error"]["code"]) == (400, "invalid_json"), raw
    status, body = bank.api("POST", "/v1/members", body=["a list"])
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    status, body = bank.api("POST", "/v1/members", {"name": "A", "colour": "red"})
    assert (status, body["error"]["code"]) == (400, "unknown_field")
    assert bank.snapshot() == before


def test_oversized_body_is_413_json(bank):
    before = bank.snapshot()
    status, body = bank.api("POST", "/v1/members", {"name": "A" * 100000})
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    assert bank.snapshot() == before


def test_unknown_paths_and_methods(bank):
    assert bank.api("GET", "/v1/nothing")[1]["error"]["code"] == "not_found"
    assert bank.api("GET", "/v1/members/abc")[0] == 404
    status, body = bank.api("DELETE", "/v1/members/1")
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")


def test_bad_query_parameters_are_400(bank):
    for path in ("/v1/members?limit=0", "/v1/members?limit=501", "/v1/members?cursor=x",
                 "/v1/members?status=gone", "/v1/exchanges?member=-1"):
        status, body = bank.api("GET", path)
        assert status == 400, path
        assert body["error"]["code"] in ("invalid_request", "invalid_status")


def test_errors_are_json_with_code_and_message(bank):
    conn = http.client.HTTPConnection("127.0.0.1", bank.port, timeout=10)
    conn.request("GET", "/v1/members/5", headers={"Authorization": f"Bearer {bank.token}"})
    r = conn.getresponse()
    assert r.status == 404
    assert r.getheader("Content-Type") == "application/json"
    body = json.loads(r.read())
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["message"] == "there is no member 5"


def test_health_and_metrics_need_no_token(bank):
    status, body = bank.api("GET", "/v1/health", token="")
    assert status == 200 and body == {"status": "ok", "bank": "colchester", "database": "up"}
    deadline = time.time() + 10
    while True:  # the pool's other connections come up just after the first
        conn = http.client.HTTPConnection("127.0.0.1", bank.port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        if "timebankd_db_connections_up 4" in text or time.time() > deadline:
            break
        time.sleep(0.05)
    assert "timebankd_db_connections_up 4" in text
    assert 'timebankd_http_replies_total{class="2xx"}' in text


def test_tbctl_without_a_reachable_daemon_exits_3(bank):
    r = bank.tbctl("--url", "http://127.0.0.1:1", "balance", "1")
    assert r.returncode == 3 and "cannot reach timebankd" in r.stderr
    r = bank.tbctl("--url", "ftp://x", "balance", "1")
    assert r.returncode == 3 and "not http://" in r.stderr


def test_tbctl_wrong_token_exits_1_with_the_api_message(bank):
    r = bank.tbctl("member", "list", token="tb_wrong")
    assert r.returncode == 1 and "a valid bearer token is required (unauthorized)" in r.stderr
    r = bank.tbctl("member", "add", "--name", "X", token=bank.tokens["broker"])
    assert r.returncode == 1 and "forbidden" in r.stderr
