"""An interactive job's terminal (supervisor side) against the CLI's client, without a
daemon: the relay both ways, the window size, the log copy, who may connect, hangup."""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import stat
import tempfile
import time

import pytest

from corral.cli import ptyclient
from corral.executors.local import ptyrelay

ROOT = os.geteuid() == 0
NOBODY, OTHER = 65534, 65533


def _job(term: ptyrelay.Terminal, script: str) -> int:
    """A job on the terminal's slave, as the supervisor starts one (setsid, attach, exec)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the job
        try:
            os.close(r)
            os.setsid()
            ptyrelay.attach(term.slave)
            os.execv("/bin/sh", ["/bin/sh", "-c", script])
        finally:
            os._exit(127)
    os.close(w)
    assert os.read(r, 1) == b""                             # exec'd (the pipe closed on exec), as the supervisor waits
    os.close(r)
    return pid


def _read_all(sock, until: bytes = b"") -> bytes:
    out = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.5)
        if not ready:
            continue
        data = sock.recv(ptyclient.CHUNK + 1)
        if not data:
            return out
        out += data
        if until and until in out:
            return out
    raise AssertionError(f"no end of stream; so far {out!r}")


def test_relay_both_ways_window_size_and_log(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_bytes(b"")
    term = ptyrelay.Terminal(str(tmp_path / "7.sock"))
    assert stat.S_IMODE(os.stat(tmp_path / "7.sock").st_mode) == 0o600
    pid = _job(term, "read line; stty size; echo got-$line; exit 7")
    term.started(pid, str(log))
    sock = ptyclient.connect(str(tmp_path / "7.sock"))
    try:
        sock.send(ptyclient.winsize_message(12, 34))
        sock.send(ptyclient.DATA + b"hello\n")
        _, status = os.waitpid(pid, 0)
        term.finish()
        out = _read_all(sock)
    finally:
        sock.close()
    assert os.waitstatus_to_exitcode(status) == 7
    assert not (tmp_path / "7.sock").exists()                # one client: its name is gone
    assert b"12 34" in out and b"got-hello" in out, out
    assert b"got-hello" in log.read_bytes()


def test_client_gone_hangs_the_job_up(tmp_path):
    term = ptyrelay.Terminal(str(tmp_path / "8.sock"))
    pid = _job(term, "echo ready; exec sleep 1000")
    term.started(pid, str(tmp_path / "stdout.log"))
    sock = ptyclient.connect(str(tmp_path / "8.sock"))
    assert b"ready" in _read_all(sock, b"ready")
    sock.close()
    _, status = os.waitpid(pid, 0)
    term.finish()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGHUP


@pytest.mark.skipif(not ROOT, reason="needs root (another user's terminal)")
def test_only_the_jobs_user_may_connect(tmp_path):
    where = tempfile.mkdtemp(prefix="crlpty", dir="/tmp")      # reachable by others (pytest's is not)
    os.chmod(where, 0o711)
    try:
        _only_the_jobs_user(where, tmp_path)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _only_the_jobs_user(where: str, tmp_path) -> None:
    path = os.path.join(where, "9.sock")
    term = ptyrelay.Terminal(path, uid=NOBODY, gid=NOBODY)
    st = os.stat(path)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY, 0o600)
    assert os.stat(os.ttyname(term.slave)).st_uid == NOBODY     # the job may reopen its terminal

    def connect_as(uid: int, chmod: bool = False) -> str:
        """Connect from a child running as ``uid``: 'refused', 'closed' (the relay hung up on
        it) or 'open' (it gets the job's output)."""
        r, w = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - the other user
            try:
                os.setgid(uid)
                os.setuid(uid)
                try:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                    s.connect(path)
                except PermissionError:
                    os.write(w, b"refused")
                    os._exit(0)
                ready, _, _ = select.select([s], [], [], 30)
                os.write(w, b"open" if ready and s.recv(10) else b"closed")
            finally:
                os._exit(0)
        os.close(w)
        os.waitpid(child, 0)
        answer = os.read(r, 16).decode()
        os.close(r)
        return answer

    pid = _job(term, "echo hi; exec sleep 1000")          # the job's client reads "hi"
    term.started(pid, str(tmp_path / "stdout.log"))
    try:
        assert connect_as(OTHER) == "refused"                 # the socket is 0600, the job user's
        os.chmod(path, 0o666)                                 # even if it were open to all:
        assert connect_as(OTHER) == "closed"                  # the peer's uid is checked
        assert connect_as(NOBODY) == "open"                   # the job's user gets the terminal
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        term.finish()


def test_a_client_that_never_comes_hangs_the_job_up(tmp_path):
    term = ptyrelay.Terminal(str(tmp_path / "10.sock"), attach_timeout=0.0)
    pid = _job(term, "exec sleep 1000")
    term.started(pid, str(tmp_path / "stdout.log"))
    _, status = os.waitpid(pid, 0)
    term.finish()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGHUP
    assert not (tmp_path / "10.sock").exists()
