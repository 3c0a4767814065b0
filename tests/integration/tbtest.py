"""Helpers for tests and benchmarks: a real PostgreSQL cluster made with
initdb in a temporary directory (as the unprivileged 'postgres' user when run
as root), and real timebankd daemons on 127.0.0.1 driven over HTTP and through
tbctl."""

import itertools
import json
import os
import pwd
import random
import re
import resource
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The test build (make FAILPOINTS=1), unless TB_BUILD names another.
BUILD = os.environ.get("TB_BUILD", os.path.join(REPO, "build", "test"))
TIMEBANKD = os.path.join(BUILD, "timebankd")
TBCTL = os.path.join(BUILD, "tbctl")
PG_BIN = subprocess.check_output(["pg_config", "--bindir"], text=True).strip()
AS_ROOT = os.geteuid() == 0
PG_USER = "postgres"


_ports_given = set()
# This process's place among pytest-xdist's workers (gw0, gw1, ...), if any.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def free_port():
    """A port nothing listens on, below the kernel's range for outgoing
    connections. A port from that range can be taken between this pick and
    the daemon's listen by any connection, even a daemon's own dial of a
    peer not yet up (which then connects to itself)."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        first_ephemeral = int(f.read().split()[0])
    if first_ephemeral - 1024 < 2000:  # no room below: the kernel's pick
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    # Parallel workers (pytest -n) each pick from their own share of it.
    low = max(1024, first_ephemeral - 20000)
    share = (first_ephemeral - low) // WORKERS
    low += WORKER * share
    while True:
        port = random.randrange(low, low + share)
        if port in _ports_given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port


def make_tempdir(prefix):
    """A temporary directory the cluster's user can reach."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, 0o755)
    return path


def as_pg_user(cmd):
    return ["runuser", "-u", PG_USER, "--"] + cmd if AS_ROOT else cmd


class Cluster:
    """A PostgreSQL cluster of the tests' own, on a unix socket only. Tests
    run it with fsync off; benchmarks (durable) with PostgreSQL's defaults."""

    def __init__(self, root, durable=False, settings=None):
        self.root = root
        self.durable = durable
        self.settings = settings or {}
        self.data = os.path.join(root, "pgdata")
        self.sock = os.path.join(root, "sock")
        self.log = os.path.join(root, "postgres.log")
        for d in (self.data, self.sock):
            os.mkdir(d, 0o700)
        if AS_ROOT:
            pw = pwd.getpwnam(PG_USER)
            for p in (self.data, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            open(self.log, "w").close()
            os.chown(self.log, pw.pw_uid, pw.pw_gid)
            os.chmod(self.sock, 0o755)
        subprocess.run(as_pg_user([f"{PG_BIN}/initdb", "-D", self.data, "-U", "tb", "-A", "trust",
                                   "-E", "UTF8", "--no-locale", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL, cwd="/")
        self.names = itertools.count(1)

    def start(self):
        opts = f"-k {self.sock} -c listen_addresses='' -c max_connections=200"
        if not self.durable:
            opts += " -c fsync=off"
        if os.environ.get("BENCH_PROFILE"):
            opts += " -c track_functions=all"
        for name, value in self.settings.items():
            opts += f" -c {name}={value}"
        subprocess.run(as_pg_user([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.log, "-w",
                                   "-o", opts, "start"]), check=True, stdout=subprocess.DEVNULL,
                       cwd="/")

    def stop(self, mode="fast"):
        subprocess.run(as_pg_user([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w",
                                   "stop"]), check=True, stdout=subprocess.DEVNULL, cwd="/")

    def conninfo(self, db):
        return f"host={self.sock} dbname={db} user=tb"

    def psql(self, sql, db="postgres", check=True):
        r = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d",
                            self.conninfo(db), "-c", sql], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"psql failed: {r.stderr}")
        return r

    def new_database(self):
        name = f"bank{next(self.names)}"
        self.psql(f"CREATE DATABASE {name}")
        return name


class Managed:
    """A bank's managed cluster (conninfo = managed), under its data_dir,
    reached as its daemon reaches it."""

    def __init__(self, data_dir):
        self.pgdata = os.path.join(data_dir, "postgres")
        self.sock = os.path.join(data_dir, "run")

    def conninfo(self, db="timebank"):
        return f"host={self.sock} dbname={db} user=timebankd"

    def psql(self, sql, db="timebank", check=True):
        return Cluster.psql(self, sql, db, check)

    def pg_ctl(self, *args):
        return subprocess.run(as_pg_user([f"{PG_BIN}/pg_ctl", "-D", self.pgdata, *args]),
                              capture_output=True, text=True, cwd="/")

    def stop(self, mode="immediate"):
        """Stops the postmaster running now. pg_ctl's own wait is not used:
        it waits for the pid file to go, and the daemon may already have
        started the cluster again."""
        with open(os.path.join(self.pgdata, "postmaster.pid")) as f:
            pid = int(f.readline())
        r = self.pg_ctl("-m", mode, "-W", "stop")
        assert r.returncode == 0, r.stderr

        def gone():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False
        wait_for(gone, timeout=60, what=f"postmaster {pid} to stop")


# Every daemon started, so none outlives the tests however they end.
STARTED = []


class Bank:
    """One timebankd, its config, tokens of each role, and ways to drive it."""

    def __init__(self, root, database, bank_id="colchester", extra=""):
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = os.path.join(root, f"{bank_id}.conf")
        self.tokens_file = os.path.join(root, f"{bank_id}.tokens")
        self.log = os.path.join(root, f"{bank_id}.log")
        self.write_config(bank_id, database, extra)
        self.tokens = {}
        for role in ("coordinator", "broker", "viewer"):
            out = subprocess.run([TIMEBANKD, "-c", self.config, "-T", f"test-{role}", "-R", role],
                                 check=True, capture_output=True, text=True)
            self.tokens[role] = out.stdout.strip()
        self.token = self.tokens["coordinator"]
        self.proc = None

    def write_config(self, bank_id, database, extra="", max_exchange="24h", floor="-10h",
                     pool=4):
        with open(self.config, "w") as f:
            f.write(f"[bank]\nid = {bank_id}\nname = {bank_id.title()} Time Bank\n"
                    f"data_dir = {self.root}/{bank_id}-data\n\n"
                    f"[database]\nconninfo = {database}\npool = {pool}\n\n"
                    f"[admin]\nlisten = 127.0.0.1:{self.port}\ntokens = {self.tokens_file}\n\n"
                    f"[ledger]\ndefault_floor = {floor}\nmax_exchange = {max_exchange}\n{extra}")

    def start(self, wait=True, env=None, nofile=None):
        """nofile: the daemon's descriptor limit, as an operator's ulimit -n."""
        self.logf = open(self.log, "a")
        limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) \
            if nofile else None
        self.proc = subprocess.Popen([TIMEBANKD, "-c", self.config], stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})),
                                     preexec_fn=limit)
        STARTED.append(self.proc)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"timebankd exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                status, _ = self.api("GET", "/v1/health")
                # A federated daemon takes peers once it has read its
                # channel's state; a test's stand-in peer dials only once.
                if status == 200 and self.api("GET", "/v1/peers")[1].get("ready", True):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"timebankd did not become healthy:\n{self.log_text()}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"timebankd did not stop on {sig}:\n{self.log_text()}")
        self.proc = None
        self.logf.close()
        return rc

    def log_text(self):
        with open(self.log) as f:
            return f.read()

    def api(self, method, path, body=None, token=None, raw=None, headers=None):
        """Returns (status, parsed JSON body)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token != "":
            req.add_header("Authorization", f"Bearer {token or self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"raw": text.decode(errors="replace")}

    def tbctl(self, *args, token=None, check=False):
        env = dict(os.environ, TBCTL_URL=self.url, TBCTL_TOKEN=token or self.token)
        r = subprocess.run([TBCTL, *args], capture_output=True, text=True, env=env, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"tbctl {args} exited {r.returncode}: {r.stderr}")
        return r

    def tbctl_json(self, *args, token=None):
        r = self.tbctl("--json", *args, token=token, check=True)
        return json.loads(r.stdout)

    def add_member(self, name, **fields):
        status, body = self.api("POST", "/v1/members", dict(name=name, **fields))
        assert status == 201, body
        return body["number"]

    def exchange(self, payer, earner, hours, category="lifts", **fields):
        return self.api("POST", "/v1/exchanges",
                        dict(payer=payer, earner=earner, hours=hours, category=category, **fields))


# Every table an API write may touch (the channel's own tables change
# under a running link whatever is asked, so their writes are checked by
# what a peer receives).
WRITTEN = ("members", "accounts", "transfers", "xb_exchanges", "xb_claims", "dir_items",
           "dir_contacts", "referrals", "intake", "intake_events", "safeguarding_checks",
           "safeguarding_overrides")


def ledger_snapshot(cluster, db):
    """Everything the ledger holds, as one comparable string."""
    return cluster.psql(
        "SELECT " + " || ".join(f"(SELECT coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)),"
                                f" '') FROM {t} r)" for t in WRITTEN), db).stdout


TBPKI = os.path.join(REPO, "deploy", "pki", "tbpki")


def make_pki(root, banks):
    """A network CA under root/ca and, for each bank, root/BANK/ keys."""
    subprocess.run([TBPKI, "ca", f"{root}/ca"], check=True, stdout=subprocess.DEVNULL)
    for b in banks:
        subprocess.run([TBPKI, "issue", f"{root}/ca", b, f"{root}/{b}"], check=True,
                       stdout=subprocess.DEVNULL)
    return root


def federation_config(pki, bank, port, peers, settings="", observers=()):
    """The [federation] and [peer] sections for bank; peers maps id to port;
    settings are more lines for [federation]; the peers in observers are the
    national body's."""
    text = (f"\n[federation]\nlisten = 127.0.0.1:{port}\nca = {pki}/ca/ca.crt\n"
            f"crl = {pki}/ca/crl.pem\ncert = {pki}/{bank}/{bank}.crt\n"
            f"key = {pki}/{bank}/{bank}.key\nsigning_key = {pki}/{bank}/{bank}.sign.key\n"
            f"{settings}")
    for peer, peer_port in peers.items():
        text += (f"\n[peer {peer}]\naddress = 127.0.0.1:{peer_port}\n"
                 f"signing_key = {pki}/{peer}/{peer}.sign.pub\n"
                 + ("kind = observer\n" if peer in observers else ""))
    return text


def wait_for(check, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def peer_state(bank, peer):
    for p in bank.api("GET", "/v1/peers")[1]["peers"]:
        if p["peer"] == peer:
            return p
    raise AssertionError(f"{bank.url} has no peer {peer}")


def batch_metrics(bank):
    """(batches, batches posted set-wise) from the daemon's metrics."""
    with urllib.request.urlopen(bank.url + "/metrics") as r:
        metrics = r.read().decode()
    return tuple(int(re.search(rf"timebankd_exchange_batches{name}_total (\d+)", metrics).group(1))
                 for name in ("", "_set_wise"))
