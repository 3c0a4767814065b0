"""The OpenAPI 3 document of the admin API (src/web/openapi.json, served at
/v1/openapi.json): every route of the router is in it, every operation in
it is answered by the router, and Redocly's validator (npm, pinned in
tests/browser) finds no problem in it."""

import json
import os
import re
import subprocess
import urllib.error
import urllib.request

import pytest

from tbtest import REPO

DOC = os.path.join(REPO, "src", "web", "openapi.json")
ROUTES = os.path.join(REPO, "src", "api", "routes.c")
BROWSER = os.path.join(REPO, "tests", "browser")
# Answered before the route table (src/api/api.c).
SPECIAL = {("get", "/v1/health"), ("get", "/metrics"), ("get", "/v1/openapi.json")}


def document():
    with open(DOC) as f:
        return json.load(f)


def template(path):
    """A route's path as the document writes it: '#' is {id}, '*' {name};
    an exchange's id is a number or a cross-bank id, one path for both."""
    p = path.replace("#", "{id}").replace("*", "{name}")
    return p.replace("/v1/exchanges/{name}", "/v1/exchanges/{id}")


def router():
    text = open(ROUTES).read()
    table = text[text.index("const struct api_route api_routes[] = {"):]
    return {(m.lower(), template(p)) for m, p in re.findall(r'\{"(\w+)", "([^"]+)"', table)}


def operations(doc):
    return {(m, p) for p, ops in doc["paths"].items() for m in ops
            if m in ("get", "post", "patch", "delete", "put")}


def test_every_route_is_in_the_document_and_every_operation_in_the_router():
    doc = document()
    routes = router() | SPECIAL
    ops = operations(doc)
    assert routes - ops == set(), "routes the document lacks"
    assert ops - routes == set(), "operations the router lacks"
    for p, items in doc["paths"].items():
        for m, op in items.items():
            assert op.get("summary") and op.get("operationId"), (m, p)
            assert "x-timebankd-role" in op, (m, p)


def test_the_daemon_serves_the_document_and_answers_each_operation(bank):
    with urllib.request.urlopen(bank.url + "/v1/openapi.json") as r:
        assert r.headers["Content-Type"].startswith("application/json")
        served = json.loads(r.read())
    assert served == document()
    # Each operation, asked with no token: the router knows it (never 404
    # no such endpoint, never 405), and it changes nothing.
    before = bank.snapshot()
    for m, p in sorted(operations(served)):
        url = bank.url + p.replace("{id}", "1").replace("{name}", "nobody")
        req = urllib.request.Request(url, method=m.upper(), data=b"" if m != "get" else None)
        try:
            with urllib.request.urlopen(req) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        assert status != 405, (m, p, body)
        if status == 404:
            assert b"no such endpoint" not in body, (m, p)
    assert bank.snapshot() == before


def test_redocly_lint_finds_no_problem():
    redocly = os.path.join(BROWSER, "node_modules", ".bin", "redocly")
    if not os.access(redocly, os.X_OK):
        pytest.skip("the npm packages are not installed: deploy/install-deps runs npm ci in "
                    "tests/browser")
    r = subprocess.run([redocly, "lint", "--config", os.path.join(BROWSER, "redocly.yaml"),
                        "--format", "stylish", DOC], cwd=BROWSER, capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, REDOCLY_TELEMETRY="off",
                                REDOCLY_SUPPRESS_UPDATE_NOTICE="true"))
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning" not in (r.stdout + r.stderr).lower().replace("deprecation warning", ""), \
        r.stdout + r.stderr
