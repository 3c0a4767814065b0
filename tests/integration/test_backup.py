"""A managed bank backs itself up: PostgreSQL's continuous archiving into
[backup] dir, base backups by pg_basebackup, what they stand at in tbctl
backup status and /metrics, a failing archive logged while the bank goes
on; and every run restores one, to the newest point and to a time between
two exchanges."""

import datetime
import os
import subprocess
import time
import urllib.request

from tbtest import TIMEBANKD, Bank, Managed, wait_for


def archived(backup, segment):
    return os.path.exists(os.path.join(backup, "wal", segment))


def switch_wal(managed):
    """Closes the WAL segment being written, so that it is archived now
    rather than within archive_timeout; its name."""
    name = managed.psql("SELECT pg_walfile_name(pg_current_wal_lsn())").stdout.strip()
    managed.psql("SELECT pg_switch_wal()")
    return name


def restore(bank, *args):
    r = subprocess.run([TIMEBANKD, "--restore", *args, "-c", bank.config],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r.stderr


def test_a_managed_bank_is_backed_up_and_restored_to_a_point_in_time(workdir):
    bank = Bank(workdir, "managed").start()
    data = os.path.join(workdir, "colchester-data")
    backup = os.path.join(data, "backup")
    managed = Managed(data)
    ann, bob = bank.add_member("Ann"), bank.add_member("Bob")
    # The first base backup is made soon after start.
    wait_for(lambda: any(len(n) == 16 for n in os.listdir(os.path.join(backup, "base"))),
             timeout=120, what="the first base backup")
    status = bank.tbctl_json("backup", "status")
    assert status["enabled"] and status["dir"] == backup and status["keep_days"] == 28
    assert bank.tbctl("backup", "status", check=True).stdout.startswith(
        f"backups in {backup}, kept 28 days")
    assert bank.exchange(ann, bob, "1", description="before")[0] == 201
    time.sleep(1.5)
    between = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    time.sleep(1.5)
    assert bank.exchange(ann, bob, "2", description="after")[0] == 201
    segment = switch_wal(managed)
    wait_for(lambda: archived(backup, segment), timeout=60, what="the WAL archived")
    with urllib.request.urlopen(bank.url + "/metrics") as r:
        metrics = r.read().decode()
    assert "timebankd_backup_restorable_age_seconds" in metrics
    assert "timebankd_backup_archive_failures_total 0" in metrics
    assert bank.stop() == 0
    r = subprocess.run([TIMEBANKD, "--check-backup", backup], capture_output=True, text=True)
    assert r.returncode == 0 and "restorable" in r.stdout, r.stdout + r.stderr
    # The disk is lost: the cluster is put back from the backups alone.
    log = restore(bank)
    assert "restoring" in log and "to the newest point archived" in log
    assert any(n.startswith("postgres.before-restore-") for n in os.listdir(data))
    bank.start()
    lines = bank.tbctl_json("history", str(ann))["items"]
    assert [line["description"] for line in lines] == ["after", "before"]
    assert bank.tbctl_json("balance", str(bob))["balance_minutes"] == 180
    assert bank.tbctl_json("audit")["ok"] is True
    assert bank.stop() == 0
    # To a time between the two exchanges: the first stands, the second
    # was never made.
    restore(bank, "--to", between)
    bank.start()
    assert [x["description"] for x in bank.tbctl_json("history", str(ann))["items"]] == \
        ["before"]
    assert bank.tbctl_json("audit")["ok"] is True
    assert bank.stop() == 0


def test_restore_refuses_what_it_cannot_do(workdir, bank):
    # An external database is the operator's to restore.
    r = subprocess.run([TIMEBANKD, "--restore", "-c", bank.config], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "external database" in r.stderr
    managed = Bank(os.path.join(workdir), "managed", bank_id="cheshire")
    r = subprocess.run([TIMEBANKD, "--restore", "--to", "yesterday", "-c", managed.config],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "give a UTC time" in r.stderr
    r = subprocess.run([TIMEBANKD, "--restore", "-c", managed.config], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "no base backup" in r.stderr
    r = subprocess.run([TIMEBANKD, "--check-backup", os.path.join(workdir, "nothing")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no base backup" in r.stdout


def test_a_failing_archive_is_logged_and_the_bank_goes_on(workdir):
    bank = Bank(workdir, "managed").start()
    data = os.path.join(workdir, "colchester-data")
    wal = os.path.join(data, "backup", "wal")
    managed = Managed(data)
    ann, bob = bank.add_member("Ann"), bank.add_member("Bob")
    os.chmod(wal, 0o500)  # the archive's disk turns read-only
    try:
        switch_wal(managed)
        wait_for(lambda: "archiving WAL to" in bank.log_text(), timeout=150,
                 what="the archive failure logged")
        assert bank.exchange(ann, bob, "1")[0] == 201
        status = bank.tbctl_json("backup", "status")
        assert status["archive_failures"] > 0 and status["last_failed_wal"]
        assert "WARNING: archiving failed" in bank.tbctl("backup", "status", check=True).stdout
    finally:
        os.chmod(wal, 0o700)
    assert bank.stop() == 0
