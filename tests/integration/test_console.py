"""The console and the national body's dashboard, in Debian's chromium:
three banks and the national body, real daemons with real accounts, and
tests/browser/console.test.mjs driving the browser through every role's
day (Playwright). Skipped, saying why, only where chromium or the npm
packages are not installed (deploy/install-deps installs both)."""

import json
import os
import shutil
import subprocess
import urllib.request

import pytest

from tbtest import REPO, wait_for
from test_directory import add_item, remote
from test_national import network  # noqa: F401 (the fixture)
from test_sessions import bank_tbctl

BROWSER = os.path.join(REPO, "tests", "browser")
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "a long pass phrase"
SCREENS = os.path.join(REPO, "build", "console-screens")


def account(bank, name, role, *extra):
    code = bank.tbctl("user", "add", "--name", name, "--role", role, *extra,
                      check=True).stdout.strip()
    r = subprocess.run(["env", f"TBCTL_URL={bank.url}", bank_tbctl(), "user", "setup", name,
                        "--code", code], input=PASSWORD + "\n", capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_console_in_a_real_browser(network):  # noqa: F811
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (deploy/install-deps installs chromium)")
    if not os.path.isdir(os.path.join(BROWSER, "node_modules", "playwright-core")):
        pytest.skip("the npm packages are not installed: deploy/install-deps runs npm ci in "
                    "tests/browser")
    col, wes, nat = (network.banks[b] for b in ("colchester", "westminster", "national"))
    # Ann receives much help in the tests: her floor is far down.
    ann = col.add_member("Ann Smith", address="4 Lexden Road, Colchester CO3 3NA", floor="-200h")
    bob = col.add_member("Bob Jones")
    cyril = col.add_member("Cyril Moss")
    gp = col.add_member("Rushey Green GP practice", kind="organisation")
    col.exchange(ann, bob, "2h", description="lift to the surgery")
    wendy = wes.add_member("Wendy Clarke")
    add_item(wes, "offer", wendy, "gardening", "Hedge trimming and weeding", area="SW1",
             visibility="federation")
    wait_for(lambda: any("Hedge" in v[2] for v in remote(col, "westminster").values()),
             what="the directory")
    for name, role in (("carol", "coordinator"), ("bill", "broker"), ("vera", "viewer"),
                       ("lockme", "broker")):
        account(col, name, role)
    account(col, "rita", "referrer", "--org", str(gp))
    account(wes, "carol", "coordinator")
    account(nat, "nora", "viewer")
    for b in ("colchester", "westminster", "cheshire"):
        network.banks[b].tbctl("report", "network", "--send", check=True)
    wait_for(lambda: len(nat.api("GET", "/v1/network/banks")[1]) >= 3, what="the reports")
    if os.path.isdir(SCREENS):
        shutil.rmtree(SCREENS)
    config = os.path.join(col.root, "console-test.json")
    with open(config, "w") as f:
        json.dump({"colchester": col.url, "westminster": wes.url, "national": nat.url,
                   "password": PASSWORD, "chromium": CHROMIUM, "screens": SCREENS,
                   "members": {"ann": ann, "bob": bob, "cyril": cyril, "wendy": wendy}}, f)
    r = subprocess.run(["node", os.path.join(BROWSER, "console.test.mjs"), config],
                       cwd=BROWSER, capture_output=True, text=True, timeout=600)
    print(r.stdout)
    print(r.stderr)
    assert r.returncode == 0 and " 0 failed" in r.stdout, r.stdout[-4000:] + r.stderr[-2000:]
    # What the browser did is in the ledgers, by the people's names.
    assert col.tbctl_json("audit")["ok"] and wes.tbctl_json("audit")["ok"]
    recorded = {x["recorded_by"] for x in col.tbctl_json("exchange", "list", "--limit", "500")
                ["items"]}
    assert {"carol", "bill"} <= recorded, recorded
    # The console's files carry their protections.
    with urllib.request.urlopen(col.url + "/console/today") as res:
        csp = res.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert res.headers["X-Content-Type-Options"] == "nosniff"
