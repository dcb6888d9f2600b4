"""Passing store faults (disk full, read-only, the database locked by another process)
cost neither an exit code nor a stalled daemon, and they are one line in the log."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3

import pytest

from corral.daemon.faults import log_failure
from corral.executors.local import supervisor
from corral.store import SqliteStore


def _state(tmp_path):
    fd = supervisor.open_state(str(tmp_path / "job"))
    supervisor.append_line(fd, b"pids 1 2 3\n")
    return fd


def test_the_exit_status_is_written_again_until_the_disk_takes_it(tmp_path, monkeypatch):
    fd = _state(tmp_path)
    real = supervisor.os.write
    failures = [errno.ENOSPC, errno.EROFS]
    naps = []

    def flaky(fd, data):
        if failures:
            real(fd, bytes(data[:5]))          # part of the line reached the disk first
            raise OSError(failures.pop(0), "no")
        return real(fd, data)

    monkeypatch.setattr(supervisor.os, "write", flaky)
    monkeypatch.setattr(supervisor.time, "sleep", naps.append)
    assert supervisor.write_status(fd, b'{"exit_code": 7}', retry=0.5)
    assert (tmp_path / "job" / "state").read_bytes() == b'pids 1 2 3\nstatus {"exit_code": 7}\n'
    assert naps == [0.5, 0.5]
    state = supervisor.read_state(str(tmp_path / "job"))
    assert (state.supervisor, state.job, state.start, state.status) == (1, 2, 3, {"exit_code": 7})


def test_writing_the_status_gives_up_on_an_error_that_does_not_pass(tmp_path):
    fd = _state(tmp_path)
    os.close(fd)
    assert not supervisor.write_status(fd, b"{}")


def test_a_partial_write_is_finished(tmp_path, monkeypatch):
    fd = _state(tmp_path)
    real = supervisor.os.write
    monkeypatch.setattr(supervisor.os, "write", lambda fd, data: real(fd, bytes(data[:3])))
    supervisor.append_line(fd, b"status {}\n")
    assert (tmp_path / "job" / "state").read_bytes() == b"pids 1 2 3\nstatus {}\n"


def test_an_unfinished_or_foreign_line_is_not_taken_for_a_status(tmp_path):
    assert supervisor.parse_state(b'pids 1 2 3\nstatus {"exit_code": 0').status is None
    damaged = supervisor.parse_state(b"pids 1 2 3\nstatus [1]\n")
    assert damaged.status is None and damaged.damaged
    assert supervisor.parse_state(b"garbage\n").damaged
    assert supervisor.read_state(str(tmp_path / "none")) is None


def test_a_second_launch_clears_the_first_attempts_state_and_a_live_lock_refuses(tmp_path):
    fd = _state(tmp_path)
    (tmp_path / "job" / "stop").write_text("user\n")
    with pytest.raises(BlockingIOError):
        supervisor.open_state(str(tmp_path / "job"))
    os.close(fd)
    fd = supervisor.open_state(str(tmp_path / "job"))
    assert (tmp_path / "job" / "state").read_bytes() == b"" and not (tmp_path / "job" / "stop").exists()
    os.close(fd)


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
