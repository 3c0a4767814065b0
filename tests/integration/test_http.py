"""The admin API's HTTP/1.1 server, spoken to byte by byte: keep-alive,
pipelining, HTTP/1.0, Expect: 100-continue, HEAD, and heads or bodies it
refuses (a JSON error, the connection closed, the ledger unchanged)."""

import json
import socket
import time


def connect(bank):
    s = socket.create_connection(("127.0.0.1", bank.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_all(s):
    """Everything until the server closes the connection."""
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def responses(blob, head_only=()):
    """The responses in blob, in order: (status, headers, body). The
    responses numbered in head_only have no body whatever their length."""
    out = []
    while blob:
        head, _, rest = blob.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        n = 0 if len(out) in head_only else int(headers["content-length"])
        out.append((status, headers, rest[:n]))
        blob = rest[n:]
    return out


def get(path, bank, extra=""):
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {bank.token}\r\n{extra}\r\n").encode()


def test_pipelined_requests_are_answered_in_order_on_one_connection(bank):
    bank.add_member("Ann")
    s = connect(bank)
    s.sendall(get("/v1/members/1", bank) + get("/v1/members/9", bank) +
              get("/v1/health", bank, "Connection: close\r\n"))
    got = responses(read_all(s))
    assert [r[0] for r in got] == [200, 404, 200]
    assert json.loads(got[0][2])["name"] == "Ann"
    assert json.loads(got[1][2])["error"]["code"] == "member_not_found"
    assert got[2][1]["connection"] == "close"
    assert "connection" not in got[0][1]


def test_keep_alive_carries_many_requests_and_http_1_0_closes(bank):
    s = connect(bank)
    for _ in range(20):
        s.sendall(get("/v1/health", bank))
        blob = b""
        while b"}\n" not in blob:
            blob += s.recv(4096)
        assert responses(blob)[0][0] == 200
    s.close()
    # HTTP/1.0: closed after the answer, unless the client asks to keep it.
    s = connect(bank)
    s.sendall(b"GET /v1/health HTTP/1.0\r\n\r\n")
    assert responses(read_all(s))[0][1]["connection"] == "close"
    s = connect(bank)
    s.sendall(b"GET /v1/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
              b"GET /v1/health HTTP/1.0\r\n\r\n")
    got = responses(read_all(s))
    assert [r[1]["connection"] for r in got] == ["keep-alive", "close"]


def test_expect_100_continue_is_answered_before_the_body(bank):
    body = json.dumps({"name": "Bea"}).encode()
    s = connect(bank)
    s.sendall(f"POST /v1/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bank.token}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
              "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode())
    assert s.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(body)
    status, _, text = responses(read_all(s))[0]
    assert status == 201 and json.loads(text)["name"] == "Bea"


def test_head_is_answered_without_a_body(bank):
    s = connect(bank)
    s.sendall(b"HEAD /v1/health HTTP/1.1\r\nHost: x\r\n\r\n" +
              get("/v1/health", bank, "Connection: close\r\n"))
    got = responses(read_all(s), head_only=(0,))
    assert got[0][0] == 200 and int(got[0][1]["content-length"]) > 0 and got[0][2] == b""
    assert got[1][0] == 200 and json.loads(got[1][2])["status"] == "ok"


def test_malformed_heads_get_a_json_error_and_change_nothing(bank):
    bank.add_member("Ann")
    before = bank.snapshot()
    cases = [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET /v1/health HTTP/1.1\r\n\r\n", 400, "bad_request"),  # no Host
        (b"GET /v1/health HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431,
         "headers_too_large"),
        (b"POST /v1/members HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"5\r\n{\"a\":\r\n0\r\n\r\n", 411, "length_required"),
        (b"POST /v1/members HTTP/1.1\r\nHost: x\r\nExpect: later\r\nContent-Length: 2\r\n\r\n{}",
         417, "expectation_failed"),
        (b"POST /v1/members HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
         400, "bad_request"),
    ]
    for raw, status, code in cases:
        s = connect(bank)
        s.sendall(raw)
        got = responses(read_all(s))  # the server closes after it
        assert len(got) == 1, raw
        assert (got[0][0], json.loads(got[0][2])["error"]["code"]) == (status, code), raw
        assert got[0][1]["connection"] == "close"
    assert bank.snapshot() == before
    assert bank.api("GET", "/v1/health", token="")[0] == 200


def test_a_body_over_the_cap_is_refused_before_it_is_read(bank):
    before = bank.snapshot()
    s = connect(bank)
    s.sendall(f"POST /v1/members HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bank.token}\r\n"
              f"Content-Length: {100 * 1024 * 1024}\r\n\r\n".encode() + b"{" * 65536)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413 ")
    # The server drains what still comes, so the client hears the answer
    # whole, and then closes.
    for _ in range(20):
        s.sendall(b"{" * 65536)
    s.shutdown(socket.SHUT_WR)
    rest = read_all(s)
    status, _, body = responses(head + rest)[0]
    assert (status, json.loads(body)["error"]["code"]) == (413, "body_too_large")
    assert bank.snapshot() == before


def test_a_client_gone_mid_request_leaves_one_exchange(bank):
    bank.add_member("Ann")
    bank.add_member("Bob")
    body = json.dumps({"payer": 1, "earner": 2, "hours": 1, "category": "lifts",
                       "idempotency_key": "gone-1"}).encode()
    req = (f"POST /v1/exchanges HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bank.token}\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    for _ in range(5):
        s = connect(bank)
        s.sendall(req)
        s.close()  # before the answer
    time.sleep(0.5)
    status, x = bank.api("POST", "/v1/exchanges", json.loads(body))
    assert status in (200, 201), x
    n = bank.cluster.psql("SELECT count(*) FROM transfers", bank.db).stdout.strip()
    assert n == "1"
    assert bank.api("GET", "/v1/health", token="")[0] == 200
