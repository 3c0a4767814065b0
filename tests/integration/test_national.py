"""The national body's window on the network: three banks send the observer
signed, disclosure-controlled activity reports over the channel; the
observer stores every revision with its proof, refuses what it should not
hold, and keeps the network's books. Nothing member-level reaches it."""

import datetime
import os
import re
import subprocess
import urllib.request

import pytest

from tbtest import Bank, federation_config, free_port, make_pki, wait_for
from test_coordinator import database_dump
from test_cross_bank import settled_or_rejected
from test_directory import add_item, remote
from test_federation import established

BANKS = ["colchester", "westminster", "cheshire"]
ALL = BANKS + ["national"]
MONTH = datetime.date.today().strftime("%Y-%m")
LAST = (datetime.date.today().replace(day=1) - datetime.timedelta(days=1))


def start(n, name):
    bank = n.banks[name]
    bank.start()
    return bank


@pytest.fixture
def network(cluster, workdir):
    pki = make_pki(os.path.join(workdir, "pki"), ALL)
    ports = {b: free_port() for b in ALL}
    banks = {}
    for b in ALL:
        peers = {p: ports[p] for p in (BANKS if b == "national" else ALL) if p != b}
        db = cluster.new_database()
        bank = Bank(workdir, cluster.conninfo(db), bank_id=b, extra=federation_config(
            pki, b, ports[b], peers, "role = observer\n" if b == "national" else "",
            observers=() if b == "national" else ("national",)))
        bank.db, bank.cluster = db, cluster
        banks[b] = bank.start()
    for a in ALL:
        wait_for(lambda a=a: all(established(banks[a], b) for b in banks if b != a),
                 what="the links")
    yield type("Network", (), {"banks": banks, "cluster": cluster})
    for b in banks.values():
        if b.proc is not None:
            assert b.stop() == 0, b.log_text()


def people(bank, base, n):
    """n members of bank with every personal detail a report must not hold,
    numbered from base (so that their numbers can be looked for too)."""
    out = []
    for i in range(n):
        num = base + i
        details = dict(number=num, email=f"zq{num}@example.org", phone=f"07700 9{num:05d}",
                       address=f"{num} Zebra Lane, Wivenhoe CO7 9{chr(65 + i % 26)}Q",
                       notes=f"note-zq-{num}", joined_on=f"{LAST:%Y-%m}-02")
        bank.add_member(f"Zedname{num} Quillfeather", **details)
        out.append((num, details))
    return out


def metrics_of(bank):
    with urllib.request.urlopen(bank.url + "/metrics") as r:
        return r.read().decode()


def reports_at(national, bank, month=MONTH):
    rows = national.cluster.psql(
        f"SELECT revision, final FROM network_reports WHERE bank = '{bank}' "
        f"AND month = '{month}-01' ORDER BY revision", national.db).stdout.split()
    return [tuple(r.split("|")) for r in rows]


def answered(bank, month=MONTH):
    sent = bank.tbctl_json("report", "network", "--month", month)["sent"]
    return bool(sent) and all(s["answer"] == "accepted" for s in sent)


def test_reports_reach_the_national_body_and_hold_no_one(network):
    col, wes, che, nat = (network.banks[b] for b in ALL)
    members = {b: people(network.banks[b], base, 13)
               for b, base in (("colchester", 70001), ("westminster", 80001),
                               ("cheshire", 90001))}
    # A month of activity: exchanges within each bank, a grant, and hours
    # between Colchester and Westminster.
    for b, ms in members.items():
        bank = network.banks[b]
        for i in range(12):
            status, x = bank.exchange(ms[i][0], ms[i + 1][0], "1", "Lifts",
                                      description=f"lift for Zedname{ms[i][0]}")
            assert status == 201, x
    # Eight Westminster members each dig a Colchester member's garden: eight
    # people, so their hours are not suppressed (they would be for fewer).
    xs = [col.tbctl_json("exchange", "record", "--payer", "70001", "--earner",
                         f"westminster:{80001 + i}", "--hours", "1", "--category",
                         "gardening")["id"] for i in range(8)]
    for x in xs:
        wait_for(lambda x=x: settled_or_rejected(col, x), what="the cross-bank exchanges")
    # An offer shared with the federation reaches the banks, never the
    # national body.
    item = add_item(col, "offer", 70002, "lifts", "Quokkaride lifts to the surgery",
                    area="CO7", visibility="federation")
    wait_for(lambda: item["handle"] in remote(wes, "colchester"), what="the offer at a peer")
    # Each bank sent its month at start; now the coordinators send it again.
    for b in BANKS:
        network.banks[b].tbctl("report", "network", "--send", check=True)
    for b in BANKS:
        wait_for(lambda b=b: answered(network.banks[b]), what=f"{b}'s reports answered")
    assert all(reports_at(nat, b) for b in BANKS)

    # A coordinator sees what left, as it left.
    shown = col.tbctl_json("report", "network")
    assert shown["sent"][-1]["answer"] == "accepted"
    assert shown["report"]["members"]["person"]["total"] == 15  # 13 joined, rounded
    text = col.tbctl("report", "network", check=True).stdout
    assert "as it was sent" in text and "accepted" in text

    # The national body's view.
    summary = nat.tbctl_json("network", "summary", "--month", MONTH)
    month = summary["months"][0]
    assert month["banks"] == 3 and month["members"] == 45
    assert month["between_minutes"] == 480
    assert {b["bank"] for b in summary["banks"]} == set(BANKS)
    books = nat.tbctl_json("network", "books")
    pairs = {(p["a"], p["b"]): p for p in books["pairs"]}
    assert pairs[("colchester", "westminster")]["state"] == "agree", books
    assert pairs[("colchester", "westminster")]["a_position_minutes"] == 480
    assert books["network_minutes"] == 0 and books["diverged"] == 0
    banks = nat.tbctl_json("network", "banks")
    assert {b["bank"]: b["state"] for b in banks} == {b: "established" for b in BANKS}
    one = nat.tbctl_json("network", "report", "colchester")
    sent = {k: v for k, v in shown["report"].items() if k != "kind"}
    assert one["revisions"] and one["report"] == sent, "what arrived is what was sent"
    assert "revision" in nat.tbctl("network", "report", "colchester", check=True).stdout
    r = nat.tbctl("network", "report", "nowhere")
    assert r.returncode == 1 and "peer_not_found" in r.stderr
    r = nat.tbctl("network", "report", "Bad Bank")
    assert r.returncode == 2
    cats = nat.tbctl_json("network", "categories")["rows"]
    assert {c["category"] for c in cats} == {"lifts", "gardening"}
    for view in ("summary", "banks", "categories", "areas", "books"):
        out = nat.tbctl("network", view, check=True).stdout
        assert out.strip(), view
        csv = nat.tbctl("network", view, "--format", "csv", check=True).stdout.splitlines()
        assert len(csv) > 1 and all(line.count(",") == csv[0].count(",") for line in csv), view
    metrics = metrics_of(nat)
    assert re.search(r'timebankd_network_report_age_seconds\{bank="colchester"\} \d+', metrics)
    assert 'timebankd_network_pairs_diverged 0' in metrics
    promtool = subprocess.run(["promtool", "check", "metrics"], input=metrics,
                              capture_output=True, text=True)
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr

    # Nothing member-level is anywhere in the national body's database.
    dump = database_dump(nat)
    # Numbers are looked for as numbers in the text, outside the envelopes'
    # bytes (whose hex holds every run of digits sooner or later).
    text_only = re.sub(r"\\x[0-9a-f]+", "", dump)
    for b, ms in members.items():
        for num, d in ms:
            for secret in (f"Zedname{num}", "Quillfeather", d["email"], d["phone"],
                           d["address"], d["address"].split(", ")[1][-8:], d["notes"],
                           "Zebra Lane", "Quokkaride", item["handle"]):
                assert secret not in dump and secret.encode().hex() not in dump, secret
            assert not re.search(rf"(?<![0-9]){num}(?![0-9])", text_only), num
    counts = nat.cluster.psql("""
        WITH RECURSIVE walk(k, v) AS (
            SELECT key, value FROM network_reports, jsonb_each(report)
            UNION ALL
            SELECT coalesce(e.key, walk.k), coalesce(e.value, a.value)
              FROM walk
              LEFT JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(v) = 'object' THEN v END) e
                   ON true
              LEFT JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(v) = 'array'
                                                          THEN v END) a ON true
             WHERE jsonb_typeof(v) IN ('object', 'array'))
        SELECT k, v FROM walk
         WHERE k IN ('total', 'active', 'new', 'left', 'members', 'received')
           AND jsonb_typeof(v) = 'number'""", nat.db).stdout.split()
    assert counts
    for row in counts:
        k, v = row.split("|")
        assert int(v) == 0 or int(v) % 5 == 0 and int(v) >= 8, row


def test_a_bank_away_reports_every_month_it_missed_and_revises_a_month_changed(network):
    col, nat = network.banks["colchester"], network.banks["national"]
    ms = people(col, 70001, 9)
    nat.stop()
    # Last month's exchanges, recorded while the national body is away.
    for i in range(8):
        status, x = col.exchange(ms[i][0], ms[i + 1][0], "1", "befriending",
                                 performed_on=f"{LAST:%Y-%m-%d}")
        assert status == 201, x
    col.tbctl("report", "network", "--send", check=True)
    nat.start()
    wait_for(lambda: reports_at(nat, "colchester", f"{LAST:%Y-%m}")
             and reports_at(nat, "colchester"), what="both months' reports")
    first = reports_at(nat, "colchester", f"{LAST:%Y-%m}")
    assert first[-1][1] == "t", "the closed month's report is final"
    # One more exchange, backdated: last month is revised.
    status, x = col.exchange(ms[0][0], ms[2][0], "3", "befriending",
                             performed_on=f"{LAST:%Y-%m-%d}")
    assert status == 201, x
    col.tbctl("report", "network", "--send", check=True)
    wait_for(lambda: len(reports_at(nat, "colchester", f"{LAST:%Y-%m}")) > len(first),
             what="the revision")
    revised = nat.tbctl_json("network", "summary", "--month", f"{LAST:%Y-%m}")["banks"]
    row = [b for b in revised if b["bank"] == "colchester"][0]
    assert row["revision"] == int(first[-1][0]) + 1 and row["within_minutes"] == 11 * 60
    # Colchester was away when a month closed, having sent the month to date
    # only: back, it sends the final report at once.
    col.cluster.psql("UPDATE fed_reports_sent SET final = false "
                     f"WHERE month = '{LAST:%Y-%m}-01'", col.db)
    before = len(reports_at(nat, "colchester", f"{LAST:%Y-%m}"))
    assert col.stop() == 0
    col.start()
    wait_for(lambda: len(reports_at(nat, "colchester", f"{LAST:%Y-%m}")) > before,
             what="the final report once it is back")
    assert reports_at(nat, "colchester", f"{LAST:%Y-%m}")[-1][1] == "t"
    status, body = nat.api("GET", "/v1/register")
    assert status == 409 and body["error"]["code"] == "no_register_key"
    status, body = nat.api("GET", "/v1/network/summary?month=13")
    assert status == 400 and body["error"]["code"] == "invalid_period"


def test_books_that_disagree_show_diverged_in_the_matrix_and_the_metric(network):
    col, wes, nat = (network.banks[b] for b in ("colchester", "westminster", "national"))
    a, b = col.add_member("Ann"), wes.add_member("Wendy")
    x = col.tbctl_json("exchange", "record", "--payer", str(a), "--earner",
                       f"westminster:{b}", "--hours", "1", "--category", "lifts")
    wait_for(lambda: settled_or_rejected(col, x["id"]), what="the exchange")
    # Behind the API's back, Westminster's books gain an hour from Colchester.
    wes.cluster.psql(
        "SET session_replication_role = replica; "
        "INSERT INTO transfers (kind, payer_account, earner_account, minutes, category, "
        "performed_on, recorded_by, idempotency_key, fingerprint) "
        "SELECT 'exchange', clearing_account, (SELECT account_id FROM members LIMIT 1), 60, "
        "'lifts', current_date, 'intruder', 'tampered', 'x' FROM fed_peers "
        "WHERE peer = 'colchester'", wes.db)
    for bank in (col, wes):
        bank.tbctl("report", "network", "--send", check=True)
    for bank in (col, wes):
        wait_for(lambda bank=bank: answered(bank), what="the reports answered")

    def state():
        books = nat.tbctl_json("network", "books")
        return {(p["a"], p["b"]): p["state"] for p in books["pairs"]}[("colchester",
                                                                       "westminster")]
    wait_for(lambda: state() == "diverged", what="the pair diverged")
    text = nat.tbctl("network", "books", check=True).stdout
    assert "diverged" in text and "1 pairs diverged" in text
    metrics = metrics_of(nat)
    assert "timebankd_network_pairs_diverged 1" in metrics
    assert ('timebankd_network_pair_diverged{bank="colchester",with="westminster",'
            f'month="{MONTH}"}} 1') in metrics
