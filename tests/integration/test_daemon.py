"""The daemon as an operator sees it: config checks, schema versions,
reloads, shutdown under load, database restarts, a managed cluster."""

import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error

from tbtest import REPO, TIMEBANKD, Bank


def test_config_check_accepts_a_good_config(bank):
    r = subprocess.run([TIMEBANKD, "-n", "-c", bank.config], capture_output=True, text=True)
    assert r.returncode == 0 and "ok (bank colchester, external database)" in r.stdout


def test_config_check_prints_each_problem_with_its_line(workdir):
    path = os.path.join(workdir, "bad.conf")
    with open(path, "w") as f:
        f.write("[bank]\nid = Bad Id\nname = X\n[database]\nconninfo = managed\n"
                "[admin]\nlisten = 127.0.0.1:99999\n[ledger]\ndefault_floor = lots\n")
    r = subprocess.run([TIMEBANKD, "-n", "-c", path], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{path}:2: bank id 'Bad Id'" in r.stderr
    assert f"{path}:7: listen must be host:port" in r.stderr
    assert f"{path}:9: default_floor must be hours" in r.stderr
    assert f"{path}: missing 'tokens' in [admin]" in r.stderr
    assert "problems in" in r.stderr
    # Running (not just checking) a bad config refuses the same way.
    r = subprocess.run([TIMEBANKD, "-c", path], capture_output=True, text=True)
    assert r.returncode == 1 and "not starting" in r.stderr


def test_config_check_reports_a_missing_file_and_bad_tokens(workdir):
    r = subprocess.run([TIMEBANKD, "-n", "-c", "/nonexistent.conf"], capture_output=True, text=True)
    assert r.returncode == 1 and "cannot open" in r.stderr
    conf = os.path.join(workdir, "b.conf")
    tokens = os.path.join(workdir, "tokens")
    with open(tokens, "w") as f:
        f.write("admin coordinator sha256:nothex\n")
    with open(conf, "w") as f:
        f.write(f"[bank]\nid = ab\nname = AB\n[database]\nconninfo = host=/tmp\n"
                f"[admin]\nlisten = 127.0.0.1:1\ntokens = {tokens}\n")
    r = subprocess.run([TIMEBANKD, "-n", "-c", conf], capture_output=True, text=True)
    assert r.returncode == 1 and f"{tokens}:1: expected NAME ROLE sha256:HEX" in r.stderr


def test_token_file_holds_only_hashes(bank):
    with open(bank.tokens_file) as f:
        text = f.read()
    for token in bank.tokens.values():
        assert token not in text
    assert oct(os.stat(bank.tokens_file).st_mode & 0o777) == "0o600"
    assert bank.token not in bank.log_text()


def test_daemon_refuses_a_database_newer_than_itself(bank):
    assert bank.stop() == 0
    bank.cluster.psql("INSERT INTO schema_version (version, name, sha256) "
                      "VALUES (999, 'future', '')", bank.db)
    proc = subprocess.run([TIMEBANKD, "-c", bank.config], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert "schema version 999" in proc.stderr and "knows only up to" in proc.stderr
    assert "NOTICE" not in proc.stderr


def test_restart_keeps_the_ledger_and_applies_no_migration_twice(bank):
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    bank.exchange(a, b, "2")
    before = bank.snapshot()
    assert bank.stop() == 0
    bank.start()
    assert bank.snapshot() == before
    recorded = bank.cluster.psql("SELECT version, name, sha256 FROM schema_version "
                                 "ORDER BY version", bank.db).stdout.split()
    assert recorded == ["|".join(str(x) for x in m) for m in shipped_migrations()]


def test_sighup_reloads_tokens_and_limits(bank):
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    new = subprocess.run([TIMEBANKD, "-c", bank.config, "-T", "late", "-R", "broker"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert bank.api("GET", "/v1/members", token=new)[0] == 401
    bank.write_config("colchester", bank.cluster.conninfo(bank.db), max_exchange="1h")
    bank.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while bank.api("GET", "/v1/members", token=new)[0] != 200:
        assert time.time() < deadline, bank.log_text()
        time.sleep(0.05)
    status, body = bank.exchange(a, b, "2")
    assert status == 400 and body["error"]["code"] == "invalid_hours"
    assert "reload: 4 tokens" in bank.log_text()


def test_sighup_with_a_broken_config_keeps_running_as_before(bank):
    with open(bank.config, "a") as f:
        f.write("nonsense here\n")
    bank.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert bank.api("GET", "/v1/health")[0] == 200
    assert bank.api("GET", "/v1/members")[0] == 200
    assert "keeping the running config" in bank.log_text()


def post_until_stopped(bank, results, tag, stop):
    """Records exchanges until told to stop; notes each key's outcome."""
    i = 0
    while not stop.is_set():
        key = f"{tag}-{i}"
        i += 1
        try:
            status, body = bank.exchange(1, 2, "15m", idempotency_key=key)
            results.append((key, status, body))
        except (OSError, urllib.error.URLError) as e:
            results.append((key, None, str(e)))
            time.sleep(0.01)


def test_sigterm_under_load_answers_what_it_took_and_stops(bank):
    bank.add_member("Ann", floor="-100000h")  # never the reason for a refusal here
    bank.add_member("Bob")
    results, stop = [], threading.Event()
    threads = [threading.Thread(target=post_until_stopped, args=(bank, results, f"t{n}", stop))
               for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    rc = bank.stop(signal.SIGTERM, timeout=15)
    stop.set()
    for t in threads:
        t.join()
    assert rc == 0, bank.log_text()
    assert "finishing those in flight" in bank.log_text()
    ok = {k for k, s, _ in results if s == 201}
    assert len(ok) > 20
    assert all(s in (201, 503, None) for _, s, _ in results)
    stored = set(bank.cluster.psql("SELECT idempotency_key FROM transfers", bank.db).stdout.split())
    attempted = {k for k, _, _ in results}
    assert ok <= stored <= attempted
    audit = bank.cluster.psql("SELECT tb_audit(-600, -60000)->>'ok'", bank.db).stdout.strip()
    assert audit == "true"


def test_postgres_restart_under_load_gives_503_then_recovers(own_cluster, workdir):
    db = own_cluster.new_database()
    bank = Bank(workdir, own_cluster.conninfo(db))
    bank.start()
    # Room for every exchange the workers can record in the test's four
    # seconds: a fast machine records over 4,000 (1,000h).
    bank.add_member("Ann", floor="-100000h")
    bank.add_member("Bob")
    outcomes, stop = {}, threading.Event()

    def worker(tag):
        i = 0
        while not stop.is_set():
            key = f"{tag}-{i}"
            # Retry with the same key until the ledger answers, as tbctl does.
            while True:
                try:
                    status, body = bank.exchange(1, 2, "15m", idempotency_key=key)
                except OSError:
                    status, body = None, None
                outcomes.setdefault(key, []).append(status)
                if status == 201:
                    break
                assert status in (503, None), body
                time.sleep(0.05)
            i += 1

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    own_cluster.stop("fast")
    time.sleep(1.5)
    status, body = bank.api("GET", "/v1/members")
    assert (status, body["error"]["code"]) == (503, "database_unavailable")
    assert bank.api("GET", "/v1/health")[0] == 503
    own_cluster.start()
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert bank.api("GET", "/v1/health")[0] == 200
    assert any(503 in s for s in outcomes.values())
    stored = own_cluster.psql(
        "SELECT idempotency_key FROM transfers", db).stdout.split()
    assert sorted(stored) == sorted(outcomes)  # every key applied, exactly once
    balance = bank.api("GET", "/v1/members/2/balance")[1]["balance_minutes"]
    assert balance == 15 * len(outcomes)
    assert own_cluster.psql("SELECT tb_audit(-600, -60000)->>'ok'", db).stdout.strip() == "true"
    assert "database unavailable" in bank.log_text()
    assert bank.stop() == 0


def test_managed_database_is_made_started_and_stopped_by_the_daemon(workdir):
    bank = Bank(workdir, "managed")
    bank.start()
    pgdata = os.path.join(workdir, "colchester-data", "postgres")
    assert os.path.exists(os.path.join(pgdata, "postmaster.pid"))
    if os.geteuid() == 0:
        assert os.stat(pgdata).st_uid != 0  # the cluster does not run as root
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    assert bank.exchange(a, b, "2")[0] == 201
    assert bank.stop() == 0
    assert not os.path.exists(os.path.join(pgdata, "postmaster.pid"))
    assert "PostgreSQL stopped" in bank.log_text()

    # A daemon killed outright leaves its cluster running; the next adopts it.
    bank.start()
    assert bank.tbctl_json("balance", str(b))["balance_minutes"] == 120
    bank.stop(signal.SIGKILL)
    bank.start()
    assert "adopting the cluster" in bank.log_text()
    assert bank.tbctl_json("audit")["ok"] is True
    assert bank.stop() == 0


def shipped_migrations():
    """(version, name, sha256) of each migration this tree ships."""
    root = os.path.join(REPO, "src", "sql", "migrations")
    out = []
    for f in sorted(os.listdir(root)):
        with open(os.path.join(root, f), "rb") as sql:
            out.append((int(f.split("_")[0]), f[:-4], hashlib.sha256(sql.read()).hexdigest()))
    return out


def start_fails(bank):
    proc = subprocess.run([TIMEBANKD, "-c", bank.config], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    return proc.stderr


def test_daemon_refuses_a_migration_that_changed_since_it_was_applied(bank):
    bank.add_member("Ann")
    assert bank.stop() == 0
    bank.cluster.psql("UPDATE schema_version SET sha256 = repeat('0', 64) WHERE version = 1",
                      bank.db)
    before = bank.cluster.psql("SELECT count(*) FROM pg_proc", bank.db).stdout
    err = start_fails(bank)
    assert "a released migration must never change" in err and "001_baseline" in err
    assert bank.cluster.psql("SELECT count(*) FROM pg_proc", bank.db).stdout == before


def test_daemon_refuses_a_database_made_before_the_baseline(cluster, workdir):
    db = cluster.new_database()
    cluster.psql("CREATE TABLE schema_version (version int PRIMARY KEY, name text NOT NULL, "
                 "applied_at timestamptz NOT NULL DEFAULT now()); "
                 "INSERT INTO schema_version VALUES (1, '001_ledger'), (8, '008_journal')", db)
    err = start_fails(Bank(workdir, cluster.conninfo(db)))
    assert "before its baseline migration" in err
    assert cluster.psql("SELECT count(*) FROM schema_version", db).stdout.strip() == "2"


def test_rules_are_made_again_from_the_shipped_sources_at_every_start(bank):
    a, b = bank.add_member("Ann"), bank.add_member("Bob")
    assert bank.exchange(a, b, "1")[0] == 201
    assert bank.stop() == 0
    # Behind the daemon's back: a stray function, a rule changed, a guard gone.
    bank.cluster.psql("CREATE FUNCTION tb_stray() RETURNS int LANGUAGE sql AS 'SELECT 1'; "
                      "CREATE OR REPLACE FUNCTION tb_hours(m bigint) RETURNS text "
                      "LANGUAGE sql IMMUTABLE AS $$ SELECT 'changed' $$; "
                      "DROP TRIGGER transfers_append_only ON transfers", bank.db)
    bank.start()
    assert "files of rules applied" in bank.log_text()
    assert bank.cluster.psql("SELECT count(*) FROM pg_proc WHERE proname = 'tb_stray'",
                             bank.db).stdout.strip() == "0"
    assert bank.cluster.psql("SELECT tb_hours(90)", bank.db).stdout.strip() == "1h30m"
    r = bank.cluster.psql("UPDATE transfers SET minutes = 1", bank.db, check=False)
    assert r.returncode != 0 and "journal_append_only" in r.stderr
    assert bank.tbctl_json("audit")["ok"] is True


def test_sql_shape_finds_a_rule_defined_twice(tmp_path):
    root = tmp_path / "sql"
    shutil.copytree(os.path.join(REPO, "src", "sql"), root)
    sources = sorted(str(f) for f in root.glob("*.sql"))
    shape = ["/usr/bin/python3", os.path.join(REPO, "tests", "sql", "shape.py"), "--root", str(root)]
    ok = subprocess.run(shape + sources, capture_output=True, text=True)
    assert ok.returncode == 0 and " 0 failed" in ok.stdout
    with open(root / "reports.sql", "a") as f:
        f.write("\nCREATE FUNCTION tb_hours(m bigint) RETURNS text LANGUAGE sql AS $$ SELECT '' $$;\n")
    with open(root / "migrations" / "001_baseline.sql", "a") as f:
        f.write("\nCREATE FUNCTION tb_late() RETURNS int LANGUAGE sql AS 'SELECT 1';\n")
    bad = subprocess.run(shape + sources, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "function tb_hours is defined again (first in ledger.sql)" in bad.stdout
    assert "defines function tb_late" in bad.stdout
    assert " 2 failed" in bad.stdout
