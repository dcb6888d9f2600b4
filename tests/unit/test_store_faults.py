"""Passing store faults (disk full, read-only, the database locked by another process)
cost neither an exit code nor a stalled daemon, and they are one line in the log."""

from __future__ import annotations

import errno
import logging
import sqlite3

import pytest

from corral.daemon.faults import log_failure
from corral.executors.local import supervisor
from corral.store import SqliteStore


def test_the_exit_status_is_written_again_until_the_disk_takes_it(tmp_path, monkeypatch):
    real = supervisor.write_atomic
    failures = [errno.ENOSPC, errno.EROFS]
    naps = []

    def flaky(path, data):
        if failures:
            raise OSError(failures.pop(0), "no")
        real(path, data)

    monkeypatch.setattr(supervisor, "write_atomic", flaky)
    monkeypatch.setattr(supervisor.time, "sleep", naps.append)
    path = tmp_path / "status.json"
    assert supervisor.write_status(str(path), b'{"exit_code": 7}', retry=0.5)
    assert path.read_bytes() == b'{"exit_code": 7}' and naps == [0.5, 0.5]


def test_writing_the_status_gives_up_when_the_job_directory_is_gone(tmp_path):
    assert not supervisor.write_status(str(tmp_path / "gone" / "status.json"), b"{}")


def test_a_partial_write_is_finished(tmp_path, monkeypatch):
    real = supervisor.os.write
    monkeypatch.setattr(supervisor.os, "write", lambda fd, data: real(fd, bytes(data[:3])))
    supervisor.write_atomic(str(tmp_path / "s"), b"0123456789")
    assert (tmp_path / "s").read_bytes() == b"0123456789"


def _busy(store: SqliteStore) -> int:
    return store._conn.execute("PRAGMA busy_timeout").fetchone()[0]


def test_while_another_process_holds_the_lock_writes_fail_at_once_until_one_succeeds(tmp_path):
    store = SqliteStore(tmp_path / "s.db", busy_timeout=0.05)
    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    for _ in range(2):
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.set_meta("k", "v")
        assert _busy(store) == 0                 # the second attempt did not wait the timeout
    holder.execute("ROLLBACK")
    store.set_meta("k", "v")
    assert store.get_meta("k") == "v" and _busy(store) == 50
    holder.close()
    store.close()


def test_a_store_fault_is_one_line_and_a_bug_keeps_its_traceback(caplog):
    log = logging.getLogger("corral.test")
    with caplog.at_level(logging.WARNING, logger="corral.test"):
        try:
            raise sqlite3.OperationalError("database or disk is full\nmore")
        except sqlite3.OperationalError:
            log_failure(log, "saving usage")
        try:
            raise KeyError("bug")
        except KeyError:
            log_failure(log, "saving usage")
    fault, bug = caplog.records
    assert (fault.levelno, fault.getMessage(), fault.exc_info) == (
        logging.WARNING, "saving usage failed (database or disk is full); trying again later", None)
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
