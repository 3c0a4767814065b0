"""A bank restored from its backups catches up with the federation: it
finds in its peers' hellos that it is behind, takes its own messages back
from their inboxes, holds them under their numbers again, re-applies what
they did (its proposals, its answers, its claims and its decisions on
claims), and proposes again only once each pair agrees. Every pair then
agrees, every exchange stands the same at both banks, and no hour is lost
or applied twice. Each bank here runs its own managed cluster, backed up as
a small bank's would be."""

import datetime
import json
import os
import subprocess
import time

import pytest

from tbtest import TIMEBANKD, peer_state, wait_for
from test_claims import arrived, claim
from test_directory import add_item, remote
from test_cross_bank import balance, linked_pair, settled_or_rejected, xb


@pytest.fixture
def managed_pair(workdir):
    yield from linked_pair(None, workdir)


def base_backups(bank):
    return sorted(n for n in os.listdir(os.path.join(bank.root, f"{bank_id(bank)}-data",
                                                     "backup", "base")) if len(n) == 16)


def bank_id(bank):
    return os.path.basename(bank.config)[:-5]


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def restore_point(bank):
    """Once the bank has a base backup: a time to restore it to, with
    nothing recorded in the same second."""
    wait_for(lambda: base_backups(bank), timeout=120, what=f"{bank_id(bank)}'s base backup")
    time.sleep(1.5)  # the restore target falls after the backup's end
    point = now_utc()
    time.sleep(1.5)
    return point


def archive_now(bank):
    """The WAL written so far, archived now rather than within archive_timeout."""
    seg = bank.cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())").stdout.strip()
    bank.cluster.psql("SELECT pg_switch_wal()")
    wal = os.path.join(bank.root, f"{bank_id(bank)}-data", "backup", "wal", seg)
    wait_for(lambda: os.path.exists(wal), timeout=60, what="the WAL archived")


def restore(bank, *args):
    assert bank.stop() == 0
    r = subprocess.run([TIMEBANKD, "--restore", *args, "-c", bank.config],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr


def exchange_since_backup(pair, hours, description):
    """Ann at Colchester, Wendy at Westminster, a point to restore
    Westminster to, and an exchange since it: Wendy paid Ann."""
    col, wes = pair.banks["colchester"], pair.banks["westminster"]
    ann, wendy = col.add_member("Ann"), wes.add_member("Wendy")
    point = restore_point(wes)
    xid = record(wes, wendy, col, ann, hours, description)
    wait_for(lambda: decided(wes, xid), what="the exchange")
    return col, wes, ann, wendy, point, xid


def record(payer_bank, payer, earner_bank, earner, hours, description):
    return payer_bank.tbctl_json("exchange", "record", "--payer", str(payer), "--earner",
                                 f"{bank_id(earner_bank)}:{earner}", "--hours", hours,
                                 "--category", "lifts", "--description", description)["id"]


def decided(bank, xid):
    """Settled or rejected here; False while the bank has not heard of it."""
    try:
        return settled_or_rejected(bank, xid)
    except AssertionError:
        return False


def recovered(bank, peer):
    return peer_state(bank, peer).get("recovering") is None


def federation_verdict(bank, peer):
    r = bank.tbctl("--json", "audit", "--federation")
    assert r.returncode == 0, r.stdout
    return [p["verdict"] for p in json.loads(r.stdout)["peers"] if p["peer"] == peer]


def agree(a, b):
    """Each bank's audit passes and its books with the other agree."""
    for x, y in ((a, b), (b, a)):
        assert x.tbctl_json("audit")["ok"] is True
        wait_for(lambda: federation_verdict(x, bank_id(y)) == ["agree"], timeout=40,
                 what=f"{bank_id(x)}'s books to agree with {bank_id(y)}'s")


def same_at_both(a, b, xids):
    for xid in xids:
        mine, theirs = xb(a, xid), xb(b, xid)
        assert (mine["state"], mine["minutes"]) == (theirs["state"], theirs["minutes"]), xid


def test_a_bank_restored_to_last_nights_backup_catches_up_with_its_peer(managed_pair):
    """The most common disaster: Westminster's disk dies and the backup is
    put back. Exchanges and claims settled both ways since are all taken
    back; its local exchange since is not invented."""
    col, wes = managed_pair.banks["colchester"], managed_pair.banks["westminster"]
    ann, alan = col.add_member("Ann"), col.add_member("Alan")
    wendy, will = wes.add_member("Wendy"), wes.add_member("Will")
    early = record(col, ann, wes, wendy, "1", "before the backup")
    wait_for(lambda: decided(col, early), what="the early exchange")
    lift = add_item(wes, "offer", wendy, "lifts", "Lifts to the surgery", area="SW1",
                    visibility="federation")
    wait_for(lambda: lift["handle"] in remote(col, "westminster"), what="the offer shared")
    backup_point = restore_point(wes)
    # Since the backup: both ways, and claims both ways.
    xids = [record(col, ann, wes, wendy, "2", "lift to the surgery"),
            record(wes, will, col, alan, "3", "phone calls")]
    c_wes = claim(wes, wendy, f"colchester:{ann}", "1", message="shopping")
    c_col = claim(col, alan, f"westminster:{will}", "1", message="gardening")
    declined = claim(col, alan, f"westminster:{will}", "4", message="not so")
    wait_for(lambda: arrived(col, c_wes["id"]) and arrived(wes, c_col["id"])
             and arrived(wes, declined["id"]), what="the claims")
    # A contact through the directory, accepted, and the exchange it became.
    contact = col.tbctl_json("contact", "request", lift["handle"], "--for", str(ann),
                             "--message", "a lift to the GP", token=col.tokens["broker"])
    wait_for(lambda: wes.api("GET", f"/v1/contacts/{contact['id']}")[0] == 200,
             what="the contact request")
    wes.tbctl_json("contact", "accept", contact["id"], "--message", "Wendy will ring")
    wait_for(lambda: col.tbctl_json("contact", "show", contact["id"])["state"] == "accepted",
             what="the contact accepted")
    xids.append(col.tbctl_json("exchange", "record", "--contact", contact["id"],
                               "--hours", "1")["id"])
    xids.append(col.tbctl_json("claim", "approve", c_wes["id"])["exchange"]["id"])
    xids.append(wes.tbctl_json("claim", "approve", c_col["id"])["exchange"]["id"])
    wes.tbctl_json("claim", "decline", declined["id"], "--reason", "no record of it")
    wait_for(lambda: all(decided(b, x) for x in xids for b in (col, wes)),
             what="every exchange settled")
    wait_for(lambda: col.tbctl_json("claim", "show", declined["id"])["state"] == "declined",
             what="the decline")
    assert wes.exchange(wendy, will, "1", description="local, after the backup")[0] == 201
    before = {n: balance(wes, n)["balance_minutes"] for n in (wendy, will)}
    col_before = {n: balance(col, n)["balance_minutes"] for n in (ann, alan)}
    agree(col, wes)
    archive_now(wes)

    # The disk is lost; last night's backup is put back.
    restore(wes, "--to", backup_point)
    wes.start()
    wait_for(lambda: "we ask it for them back" in wes.log_text(), what="westminster to see")
    wait_for(lambda: recovered(wes, "colchester"), timeout=90, what="the recovery")
    assert "recovered with colchester" in wes.log_text()
    assert "NOT RECOVERED" not in wes.tbctl("peers", check=True).stdout
    wait_for(lambda: all(decided(wes, x) for x in xids), what="all again")
    same_at_both(col, wes, [early] + xids)
    assert wes.tbctl_json("claim", "show", c_col["id"])["state"] == "approved"
    assert wes.tbctl_json("claim", "show", declined["id"])["state"] == "declined"
    assert wes.tbctl_json("claim", "show", c_wes["id"])["state"] == "approved"
    assert wes.tbctl_json("contact", "show", contact["id"])["state"] == "accepted"
    # The local exchange after the backup is not invented: Wendy paid Will
    # an hour that this bank no longer holds.
    assert balance(wes, wendy)["balance_minutes"] == before[wendy] + 60
    assert balance(wes, will)["balance_minutes"] == before[will] - 60
    assert {n: balance(col, n)["balance_minutes"] for n in (ann, alan)} == col_before
    agree(col, wes)
    # It proposes again, with numbers no one has seen.
    new = record(wes, will, col, alan, "1", "after the restore")
    assert int(new.split(":")[1]) > 1000000000
    wait_for(lambda: decided(wes, new), what="a new exchange")
    assert xb(col, new)["state"] == "settled"
    agree(col, wes)


def test_restored_to_just_before_and_just_after_a_cross_bank_exchange(managed_pair):
    col, wes, ann, wendy, just_before, xid = exchange_since_backup(managed_pair, "2",
                                                                  "the one exchange")
    time.sleep(1.5)
    just_after = now_utc()
    time.sleep(1.5)
    wes.add_member("Walter")  # a commit past the target, for the restore to stop at
    archive_now(wes)
    # Just after: nothing was lost, and the hello releases the stream.
    restore(wes, "--to", just_after)
    wes.start()
    wait_for(lambda: "is not behind it since the restore" in wes.log_text(),
             what="the stream released")
    assert xb(wes, xid)["state"] == "settled"
    assert balance(wes, wendy)["balance_minutes"] == -120
    # Just before: the exchange is taken back from colchester, its payer
    # read from the note westminster sealed to itself.
    restore(wes, "--to", just_before)
    wes.start()
    wait_for(lambda: recovered(wes, "colchester"), timeout=90, what="the recovery")
    wait_for(lambda: decided(wes, xid), what="the exchange again")
    assert xb(wes, xid)["state"] == "settled"
    assert xb(wes, xid)["description"] == "taken back from colchester after a restore"
    assert balance(wes, wendy)["balance_minutes"] == -120
    assert balance(wes, wendy)["pending_minutes"] == 0
    assert balance(col, ann)["balance_minutes"] == 120
    agree(col, wes)


def test_a_restore_while_its_peer_is_away_waits_for_it(managed_pair):
    col, wes, ann, wendy, point, lost = exchange_since_backup(managed_pair, "1",
                                                             "lost here, held there")
    archive_now(wes)
    assert col.stop() == 0
    restore(wes, "--to", point)
    wes.start()
    # Until colchester is heard, nothing goes to it: not even what is new.
    peers = wes.tbctl("peers", check=True).stdout
    assert "RECOVERING from colchester" in peers and "hello says" in peers
    new = record(wes, wendy, col, ann, "1", "while colchester is away")
    time.sleep(2)
    assert peer_state(wes, "colchester")["recovering"]["stage"] == "waiting"
    col.start()
    wait_for(lambda: recovered(wes, "colchester"), timeout=90, what="the recovery")
    wait_for(lambda: decided(wes, new), what="the new exchange")
    same_at_both(col, wes, [lost, new])
    assert balance(wes, wendy)["balance_minutes"] == -120
    assert balance(col, ann)["balance_minutes"] == 120
    agree(col, wes)


@pytest.mark.parametrize("step", ["recover_before", "recover_after"])
def test_a_crash_during_recovery_recovers_once(managed_pair, step):
    col, wes, ann, wendy, point, first = exchange_since_backup(managed_pair, "1", "exchange 0")
    xids = [first] + [record(wes, wendy, col, ann, "1", f"exchange {i}") for i in (1, 2)]
    xids.append(record(col, ann, wes, wendy, "2", "the other way"))
    wait_for(lambda: all(decided(b, x) for x in xids for b in (col, wes)),
             what="the exchanges")
    archive_now(wes)
    restore(wes, "--to", point)
    wes.start(wait=False, env={"TIMEBANKD_FAILPOINT": step})
    wait_for(lambda: wes.proc.poll() is not None, timeout=60, what="the crash")
    assert wes.proc.returncode == 86
    wes.proc = None
    wes.logf.close()
    wes.start()
    wait_for(lambda: recovered(wes, "colchester"), timeout=90, what="the recovery")
    wait_for(lambda: all(decided(wes, x) for x in xids), what="all again")
    same_at_both(col, wes, xids)
    assert balance(wes, wendy)["balance_minutes"] == -60
    assert balance(col, ann)["balance_minutes"] == 60
    agree(col, wes)
