"""A small process that forks job supervisors on the daemon's behalf.

Forking costs in proportion to the forking process's memory: the daemon (web stack
loaded) forks in about 0.6 ms, a process that has imported almost nothing in about
0.2 ms, and the supervisor it makes is as small. So the daemon forks this launcher
first thing, before it imports anything heavy, and sends it launch requests over a
``SOCK_SEQPACKET`` socket pair. The launcher:

* prepares the job's directory, takes its ``flock`` and forks the supervisor (which
  inherits the lock), then answers with the supervisor's pid. Requests are pipelined:
  the daemon does not wait for the answer, it reads answers when the socket is readable
  and then watches each supervisor with a pidfd;
* ignores SIGCHLD, so the kernel reaps supervisors as they exit (their exit status is
  not needed: each supervisor writes ``status.json`` itself);
* exits when the daemon's end of the socket closes (the daemon stopped or died).
  Supervisors already started are not affected: each runs in its own session.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket

from ... import fastjson as json
from ...errors import CorralError
from . import supervisor as sup

_MAX_MESSAGE = 4 << 20


class Launcher:
    def __init__(self, sock: socket.socket, pid: int):
        self._sock = sock
        self.pid = pid

    @classmethod
    def start(cls) -> "Launcher":
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for s in (parent, child):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _MAX_MESSAGE)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _MAX_MESSAGE)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the launcher process
            parent.close()
            _serve(child)
        child.close()
        return cls(parent, pid)

    def fileno(self) -> int:
        return self._sock.fileno()

    def request(self, job_id: int, jobdir: str, argv: list[str], env: dict[str, str], workdir: str,
                cores: tuple[int, ...] | None, grace: float, stop_signal: int = signal.SIGTERM,
                cgroup: dict | None = None, uid: int | None = None, gid: int | None = None,
                user: str = "", pty: str | None = None) -> None:
        """Ask for a supervisor for one job; the answer comes through :meth:`replies`."""
        message = json.dumps({"job": job_id, "jobdir": jobdir, "argv": argv, "env": env, "workdir": workdir,
                              "cores": list(cores) if cores else None, "grace": grace,
                              "stop_signal": int(stop_signal), "cgroup": cgroup,
                              "uid": uid, "gid": gid, "user": user, "pty": pty})
        try:
            self._sock.send(message.encode())
        except OSError as exc:
            raise CorralError(f"job launcher is gone ({exc.strerror})") from None

    def replies(self) -> list[dict]:
        """Answers ready now: ``{"job": id, "pid": n}`` or ``{"job": id, "error": "..."}``.
        Raises CorralError when the launcher is gone."""
        out = []
        while True:
            try:
                data = self._sock.recv(_MAX_MESSAGE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return out
            except OSError as exc:
                raise CorralError(f"job launcher is gone ({exc.strerror})") from None
            if not data:
                raise CorralError("job launcher is gone (it exited)")
            out.append(json.loads(data))

    def close(self) -> None:
        self._sock.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _serve(sock: socket.socket) -> None:  # pragma: no cover - runs in the launcher
    try:
        sup.null_stdio()
        # Supervisors start with the stop signals blocked (the mask survives fork), so a
        # cancel that arrives before a supervisor is ready is held, not fatal.
        signal.pthread_sigmask(signal.SIG_BLOCK, sup.HELD_SIGNALS)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Imported once here, not in every supervisor: loading the cgroup module (and
        # dataclasses with it) costs ~20 ms, which each job's start would otherwise pay.
        from . import cgroups  # noqa: F401
        sup.load_prctl()                 # likewise ctypes, for the supervisors without a cgroup
        parent = os.getppid()
        while True:
            data = sock.recv(_MAX_MESSAGE)
            if not data or os.getppid() != parent:
                break
            req = json.loads(data)
            reply = _fork_supervisor(req)
            sock.send(json.dumps(reply).encode())
    finally:
        os._exit(0)


def _fork_supervisor(req: dict) -> dict:  # pragma: no cover - runs in the launcher
    jobdir, job = req["jobdir"], req["job"]
    try:
        sup.prepare_jobdir(jobdir)
        lock_fd = os.open(os.path.join(jobdir, sup.LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        return {"job": job, "error": f"cannot prepare {jobdir}: {exc.strerror}"}
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        return {"job": job, "error": f"{jobdir} already has a live supervisor"}
    cores = tuple(req["cores"]) if req["cores"] else None
    pid = os.fork()
    if pid == 0:
        sup.supervise(jobdir, req["argv"], req["env"], req["workdir"], cores, float(req["grace"]), lock_fd,
                      int(req.get("stop_signal") or signal.SIGTERM), req.get("cgroup"),
                      uid=req.get("uid"), gid=req.get("gid"), user=req.get("user") or "", pty=req.get("pty"))
    os.close(lock_fd)
    return {"job": job, "pid": pid}
