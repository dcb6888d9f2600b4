"""A small process that forks job supervisors on the daemon's behalf.

Forking costs in proportion to the forking process's memory (its page tables are
copied, then its pages on first write): measured here, a bare interpreter (8.6 MB
resident) forks, exits and is reaped in 0.55 ms, one that has imported corral's
executor package (asyncio, typing: 22 MB) in 1.9 ms, and the supervisor it makes is as
big. So the launcher is a fresh interpreter of its own (``python -I -S``: no site
packages, no environment variables read) that loads only the modules a supervisor
runs -- this one, :mod:`.supervisor`, :mod:`.cgroups` and the JSON accelerator -- without
running the package ``__init__`` modules above them (12.7 MB: 0.8 ms a fork). Where no
interpreter can be started (no ``sys.executable``), the daemon forks itself instead.
The daemon sends it launch requests over a ``SOCK_SEQPACKET`` socket pair. The launcher:

* prepares the job's directory, takes the ``flock`` of its state file and forks the
  supervisor (which inherits the lock), then answers with the supervisor's pid. Requests are pipelined:
  the daemon does not wait for the answer, it reads answers when the socket is readable
  and then watches each supervisor with a pidfd;
* ignores SIGCHLD, so the kernel reaps supervisors as they exit (their exit status is
  not needed: each supervisor records the job's end in its state file itself);
* exits when the daemon's end of the socket closes (the daemon stopped or died).
  Supervisors already started are not affected: each runs in its own session.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from ... import fastjson as json
from ...errors import CorralError
from . import supervisor as sup

_MAX_MESSAGE = 4 << 20


class Launcher:
    def __init__(self, sock: socket.socket, pid: int):
        self._sock = sock
        self.pid = pid

    @classmethod
    def start(cls, *, fresh: bool = True) -> "Launcher":
        """Start the launcher: a fresh small interpreter (``fresh``), or a fork of this
        process (where no interpreter can be started, and for tests)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for s in (parent, child):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _MAX_MESSAGE)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _MAX_MESSAGE)
        pid = _spawn(child) if fresh else None
        if pid is None:
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
        """Answers ready now: ``{"job": id, "pid": n}``, ``{"job": id, "error": "..."}``, or
        ``{"ended": id}`` from a supervisor the launcher keeps (it lives on for the next job).
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


#: Run by the fresh interpreter: the packages above this module are made empty
#: placeholders, so their ``__init__`` modules (which import asyncio and typing for
#: the daemon) never run here; only the modules a supervisor needs are loaded.
_BOOT = """
import os, sys, types
src = sys.argv[1]
for name in ("corral", "corral.executors", "corral.executors.local"):
    package = types.ModuleType(name)
    package.__path__ = [os.path.join(src, *name.split("."))]
    sys.modules[name] = package
from corral.executors.local import launcher
launcher.serve_fd(int(sys.argv[2]))
"""


def _spawn(child: socket.socket) -> int | None:
    """Start the launcher as a fresh interpreter holding ``child``; None if it cannot be."""
    if not sys.executable:
        return None
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    fd = child.fileno()
    os.set_inheritable(fd, True)
    try:
        return os.posix_spawn(sys.executable, [sys.executable, "-I", "-S", "-c", _BOOT, src, str(fd)],
                              os.environ)
    except OSError:
        return None
    finally:
        os.set_inheritable(fd, False)


def serve_fd(fd: int) -> None:  # pragma: no cover - runs in the launcher
    """The fresh launcher's entry point: serve the socket pair end on ``fd``."""
    _serve(socket.socket(fileno=fd))


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
        # Every object so far is shared with the supervisors forked from here: frozen, the
        # collector never walks them (its walk writes to each object, and each write
        # copies a page into the child).
        import gc

        gc.collect()
        gc.freeze()
        parent = os.getppid()
        spares = Spares()
        pool = Pool(sock)
        import select

        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        while True:
            ready = poller.poll(None if spares.full() else 0)
            if not ready:                # nothing asked: make a job directory ready meanwhile
                spares.make()
                continue
            for fd, _ in ready:
                if fd != sock.fileno():
                    pool.heard(fd, poller)
                    continue
                data = sock.recv(_MAX_MESSAGE)
                if not data or os.getppid() != parent:
                    spares.clear()
                    return
                req = json.loads(data)
                spares.use(req["jobdir"])
                sock.send(json.dumps(pool.launch(req, poller)).encode())
    finally:
        os._exit(0)


class Pool:  # pragma: no cover - runs in the launcher
    """The supervisors this launcher keeps: each runs one job at a time and, when it ends,
    says so here (forwarded to the daemon as ``{"ended": id}``) and waits for the next.
    A new job goes to an idle one (its request and the state file's locked descriptor),
    else to a new fork. Jobs with a terminal get a supervisor of their own, which exits
    after them. The daemon still watches each supervisor's pid: one that dies takes only
    its own job with it."""

    KEEP_IDLE = 8

    def __init__(self, daemon: socket.socket) -> None:
        self.daemon = daemon
        self.sockets: dict[int, tuple[socket.socket, int]] = {}    # fd -> (socket, supervisor pid)
        self.idle: list[int] = []                                   # fds of idle supervisors

    def launch(self, req: dict, poller) -> dict:
        jobdir, job = req["jobdir"], req["job"]
        try:
            lock_fd = sup.open_state(jobdir)
        except BlockingIOError:
            return {"job": job, "error": f"{jobdir} already has a live supervisor"}
        except OSError as exc:
            return {"job": job, "error": f"cannot prepare {jobdir}: {exc.strerror}"}
        try:
            while self.idle and req.get("pty") is None:
                fd = self.idle.pop()
                conn, pid = self.sockets[fd]
                try:
                    socket.send_fds(conn, [json.dumps(req).encode()], [lock_fd])
                    return {"job": job, "pid": pid}
                except OSError:
                    self._drop(fd, poller)        # it died meanwhile: the next one
            return {"job": job, "pid": self._fork(req, lock_fd, poller)}
        finally:
            os.close(lock_fd)                     # the supervisor holds its own copy

    def _fork(self, req: dict, lock_fd: int, poller) -> int:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                mine.close()
                sup.serve(theirs, req, lock_fd)
            finally:
                os._exit(70)                     # never back into the launcher's loop
        theirs.close()
        self.sockets[mine.fileno()] = (mine, pid)
        poller.register(mine.fileno(), select_flags())
        return pid

    def heard(self, fd: int, poller) -> None:
        """A supervisor spoke (its job ended: forward it, keep it) or went away."""
        conn, _ = self.sockets[fd]
        try:
            data = conn.recv(_MAX_MESSAGE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(fd, poller)
            return
        self.daemon.send(data)                    # {"ended": id}
        if len(self.idle) < self.KEEP_IDLE:
            self.idle.append(fd)
        else:
            self._drop(fd, poller)                # enough kept: this one exits (EOF)

    def _drop(self, fd: int, poller) -> None:
        conn, _ = self.sockets.pop(fd)
        if fd in self.idle:
            self.idle.remove(fd)
        try:
            poller.unregister(fd)
        except (KeyError, ValueError):
            pass
        conn.close()


def select_flags() -> int:
    import select

    return select.POLLIN | select.POLLHUP


class Spares:  # pragma: no cover - runs in the launcher
    """Job directories made ready while no launch waits: the directory, its state file
    and both logs, renamed into place when a new job starts. Creating those four inodes
    is most of a job directory's cost (0.3-1 ms each on an ext4 without a journal,
    measured here); a rename allocates none. Kept in the jobs directory (the same file
    system) as ``.spare-N``; a launcher that died leaves them to the next one."""

    KEEP = 4

    def __init__(self) -> None:
        self.root: str | None = None          # the jobs directory, from the first request
        self.ready: list[str] = []
        self.made = 0

    def full(self) -> bool:
        return self.root is None or len(self.ready) >= self.KEEP

    def make(self) -> None:
        assert self.root is not None
        self.made += 1
        path = os.path.join(self.root, f".spare-{os.getpid()}-{self.made}")
        try:
            os.mkdir(path, 0o700)
            for name in (sup.STATE, sup.STDOUT, sup.STDERR):
                os.close(os.open(os.path.join(path, name), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError:
            self.root = None                  # cannot make them here: launch without
            return
        self.ready.append(path)

    def use(self, jobdir: str) -> None:
        """Put a ready directory in place for a job that has none yet."""
        if self.root is None and self.made == 0:
            self.root = os.path.dirname(jobdir)
            self.ready = [os.path.join(self.root, name) for name in _listdir(self.root) if name.startswith(".spare-")]
        while self.ready and not os.path.exists(jobdir):
            try:
                os.rename(self.ready.pop(), jobdir)
            except OSError:
                continue

    def clear(self) -> None:
        import shutil

        for path in self.ready:
            shutil.rmtree(path, ignore_errors=True)
        self.ready = []


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
