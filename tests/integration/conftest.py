"""Fixtures for integration tests (the helpers are in tbtest.py)."""

import os
import shutil
import subprocess

import pytest

import tbtest
from tbtest import Bank, Cluster, ledger_snapshot, make_tempdir


@pytest.fixture(scope="session")
def cluster():
    root = make_tempdir("tb-pg-")
    c = Cluster(root)
    c.start()
    yield c
    c.stop("immediate")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_daemon_left():
    """A test that fails half way leaves no timebankd running after it."""
    yield
    while tbtest.STARTED:
        proc = tbtest.STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def own_cluster():
    """A cluster for one test that stops and starts it."""
    root = make_tempdir("tb-pg1-")
    c = Cluster(root)
    c.start()
    yield c
    try:
        c.stop("immediate")
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def workdir():
    path = make_tempdir("tb-bank-")
    yield path
    if not os.environ.get("KEEP"):  # KEEP=1 leaves it, logs and all, to look at
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bank(cluster, workdir):
    db = cluster.new_database()
    b = Bank(workdir, cluster.conninfo(db))
    b.db = db
    b.cluster = cluster
    b.snapshot = lambda: ledger_snapshot(cluster, db)
    b.start()
    yield b
    if b.proc is not None:
        rc = b.stop()
        assert rc == 0, f"timebankd exited {rc}:\n{b.log_text()}"
