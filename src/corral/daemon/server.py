"""The daemon process: one per ``$CORRAL_HOME``, serving HTTP on a Unix socket.

Start-up order: take the home's exclusive lock (a second daemon exits at once), open the
store, detect the node, recover (re-adopt running jobs, requeue pending ones), then
serve. ``corral down`` (or SIGTERM) stops the daemon; running jobs keep running under
their supervisors and are re-adopted by the next daemon.

Who may connect: in user mode (the default when not root) the socket is 0600, the
daemon's user's alone. In system mode (root; config ``mode``) the socket is
``root:socket_group 0660`` and the home ``0711``, each job runs as its submitter, and
:mod:`corral.daemon.auth` says who may act on which job.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
import sys
from typing import TYPE_CHECKING, Any

from ..config import Config, load_config
from ..errors import CorralError
from ..priorities import Priorities
from .faults import log_failure
from .identity import Watch
from ..paths import MAX_SOCKET_PATH, Paths
from ..store import open_store
from .api import create_app
from .auth import Access, access_from_config
from .manager import Manager
from .monitor import Monitor

if TYPE_CHECKING:
    from ..executors.local.launcher import Launcher
    from ..store.base import Store

log = logging.getLogger("corral.daemon")

#: `corral up` options that later automatic starts must keep (e.g. simulated GPUs).
UP_OPTIONS = "up_options"
#: Store meta key: the decayed per-user usage fair share reads (kept across restarts).
FAIR_USAGE = "fair_usage"


def _take_lock(paths: Paths) -> int | None:
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def run(home: str | None = None, *, simulate_gpus: int | None = None, launcher: "Launcher | None" = None,
        new_store: bool = False) -> int:
    paths = Paths(home)
    paths.ensure()
    if len(str(paths.socket)) > MAX_SOCKET_PATH:
        print(f"error: socket path too long for a Unix socket ({len(str(paths.socket))} > {MAX_SOCKET_PATH} "
              f"bytes): {paths.socket}; set CORRAL_HOME to a shorter path", file=sys.stderr)
        return 2
    lock_fd = _take_lock(paths)
    if lock_fd is None:
        print(f"corral daemon already running for {paths.home}", file=sys.stderr)
        if launcher is not None:
            launcher.close()
        return 0
    if launcher is None:
        from ..executors.local.launcher import Launcher

        launcher = Launcher.start()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return _serve(paths, simulate_gpus, launcher, new_store)
    except CorralError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        os.close(lock_fd)


def _raise_fd_limit() -> None:
    """Each running job costs the daemon one descriptor (its pidfd): lift the soft limit
    on open files to the hard one so thousands of jobs can run."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def _serve(paths: Paths, simulate_gpus: int | None, launcher: "Launcher", new_store: bool = False) -> int:
    from .identity import check as check_identity

    _raise_fd_limit()
    _private_files(paths)
    store = open_store(paths)
    try:
        check_identity(paths, store, new_store=new_store)     # never silently on a store not this home's
        saved = json.loads(store.get_meta(UP_OPTIONS) or "{}")
        if simulate_gpus is not None:
            saved["simulate_gpus"] = simulate_gpus
            store.set_meta(UP_OPTIONS, json.dumps(saved))
        config = load_config(paths.config).merged(**saved)
        access = access_from_config(config, source=paths.config)   # unknown groups: a one-line error
        return asyncio.run(_main(paths, config, store, access, launcher))
    finally:
        store.close()


async def _main(paths: Paths, config: Config, store: "Store", access: Access, launcher: "Launcher") -> int:
    import uvicorn

    from .. import executors

    loop = asyncio.get_running_loop()
    manager: Manager | None = None

    def on_exit(job_id: int, status: Any) -> None:
        assert manager is not None
        manager.on_exit(job_id, status)

    executor, info = executors.create(config, paths, on_exit, loop, launcher=launcher)
    try:
        nodes = executor.nodes()
        info["home"] = str(paths.home)
        info["access"] = access.to_dict()
        info["engine"] = executor.describe()
        store.set_meta("node", json.dumps(nodes[0].to_dict()) if len(nodes) == 1 else
                       json.dumps([n.to_dict() for n in nodes]))
        manager = Manager(store, executor, config.scheduling, default_requests=config.default_requests,
                          kill_grace=float(config.kill_grace), loop=loop)
        fair = manager.driver.fair
        if fair is not None:
            saved_usage = json.loads(store.get_meta(FAIR_USAGE) or "{}")
            fair.usage, fair.at = dict(saved_usage.get("usage", {})), float(saved_usage.get("at", 0.0))
        manager.monitor = Monitor(store, executor, stop_job=manager.stop_job, note=manager.note,
                                  sample_interval=config.sample_interval, series_interval=config.series_interval,
                                  idle_policy=config.idle_gpu, log_limit=config.log_limit)
        manager.cost = dict(config.cost)
        manager.priorities = Priorities(config.priority_classes,
                                        {q.name: q.priority_class for q in config.queues if q.priority_class})
        manager.store_watch = watch = Watch(paths.db)

        def watch_store() -> None:
            why = watch.fault()
            if why is not None and not watch.reported:
                watch.reported = True
                log.error("the store %s %s while the daemon ran: submits are refused (503) until it is restarted",
                          paths.db, why)
            loop.call_later(STORE_CHECK, watch_store)

        loop.call_later(STORE_CHECK, watch_store)
        manager.retention = config.retention
        info["sample_interval"] = config.sample_interval
        info["idle_gpu"] = config.idle_gpu.describe()
        counts = manager.recover()
        manager.monitor.start(loop)
        retention = _Retention(manager, config.retention, loop)
        enforcement = info.get("enforcement") or {}
        # What start-up made lives as long as the daemon: out of the collector's way, so its
        # collections walk only what the daemon makes from now on (a full collection over
        # the web stack's objects costs ~10 ms, and the young generations fill with every job).
        import gc

        gc.collect()
        gc.freeze()
        log.info("started pid %d on %s (%s engine): %s; limits %s; %s; recovered %s", os.getpid(),
                 ", ".join(n.name for n in nodes), executor.name, info.get("gpu_source"),
                 enforcement.get("description", "-"), access.describe(), counts)
        server: uvicorn.Server | None = None
        remote: Any = None

        def shutdown() -> None:
            for s in (server, remote[0] if remote is not None else None):
                if s is not None:
                    s.should_exit = True
            manager.release_waiters()   # long polls return now, not after the grace period

        from .listen import tcp_server
        from .tokens import Tokens

        tokens = Tokens(os.path.join(paths.home, "tokens.json"))
        app = create_app(manager, info, shutdown, access=access, max_body=config.max_request, tokens=tokens)
        remote = tcp_server(config, app, tokens, max_connections=MAX_CONNECTIONS, max_head=MAX_HEAD)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths.socket)  # we hold the lock, so any socket file is stale
        sock = bind_socket(paths.socket, access)
        if access.system and access.socket_gid is not None:
            os.chmod(paths.home, 0o711)   # members reach the socket; the rest of the home stays closed
        # The caller's identity comes from the socket (SO_PEERCRED), never from a header:
        # uvicorn's proxy-header handling (X-Forwarded-For and FORWARDED_ALLOW_IPS) is off.
        uconfig = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", http=peer_protocol(),
                                 timeout_graceful_shutdown=2, proxy_headers=False, forwarded_allow_ips="",
                                 timeout_keep_alive=5, limit_concurrency=MAX_CONNECTIONS,
                                 h11_max_incomplete_event_size=MAX_HEAD)
    except BaseException:
        # A start that fails after the executor made its cgroup parents removes them
        # again (jobs already running keep theirs, and run on).
        executor.close()
        raise
    server = uvicorn.Server(uconfig)
    try:
        if remote is None:
            await server.serve(sockets=[sock])
        else:
            serving = asyncio.ensure_future(remote[0].serve(sockets=[remote[1]]))
            try:
                await server.serve(sockets=[sock])
            finally:
                remote[0].should_exit = True
                await serving
    finally:
        retention.stop()
        if fair is not None:
            store.set_meta(FAIR_USAGE, json.dumps(fair.to_dict()))
        manager.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths.socket)
    return 0


class _Retention:
    """Housekeeping: deletes finished jobs older than the retention period and submit
    idempotency keys older than a day (at start, then hourly), and saves fair share's decayed usage every minute (a crash loses at
    most a minute of it)."""

    EVERY = 3600.0
    SAVE_EVERY = 60.0

    def __init__(self, manager: Manager, retention: int, loop: asyncio.AbstractEventLoop):
        self.manager, self.retention, self.loop = manager, retention, loop
        self.timer: asyncio.TimerHandle | None = None
        self.saver: asyncio.TimerHandle | None = None
        self.timer = loop.call_later(1.0, self.run)
        if manager.driver.fair is not None:
            self.saver = loop.call_later(self.SAVE_EVERY, self.save)

    def save(self) -> None:
        fair = self.manager.driver.fair
        assert fair is not None
        try:
            self.manager.store.set_meta(FAIR_USAGE, json.dumps(fair.to_dict()))
        except Exception:  # noqa: BLE001 - next minute
            log_failure(log, "saving fair-share usage")
        self.saver = self.loop.call_later(self.SAVE_EVERY, self.save)

    def run(self) -> None:
        try:
            if self.retention > 0:
                ids = self.manager.prune(self.retention)
                if ids:
                    log.info("retention: deleted %d finished jobs older than %ds", len(ids), self.retention)
            self.manager.store.forget_keys(time.time() - KEY_TTL)
        except Exception:  # noqa: BLE001 - retry at the next round
            log_failure(log, "the retention pass")
        self.timer = self.loop.call_later(self.EVERY, self.run)

    def stop(self) -> None:
        for timer in (self.timer, self.saver):
            if timer is not None:
                timer.cancel()


def bind_socket(path: str, access: Access):
    """The daemon's Unix socket, bound (asyncio listens on it once the app is ready:
    until then connecting is refused, as before). It is born 0600 (umask), so nobody
    else can connect before its permissions are set: user mode and a system daemon
    without ``socket_group`` keep 0600; with it, ``root:GROUP 0660``."""
    import socket

    mode, gid = access.socket_permissions()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, mode)
    return sock


#: Files in the home that hold other people's data (jobs' environments, the log).
_PRIVATE = ("corral.db", "corral.db-wal", "corral.db-shm", "daemon.log", "config.yaml", "store.id")


def _private_files(paths: Paths) -> None:
    """The store, the log and the config are the daemon's alone (0600), also where the home is made
    traversable for the socket (system mode). SQLite gives its -wal and -shm files the
    database's mode, so the database is created 0600 before the store opens it."""
    os.close(os.open(paths.db, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    for name in _PRIVATE:
        path = os.path.join(paths.home, name)
        try:
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
        except FileNotFoundError:
            pass


#: Seconds a submit's idempotency key is kept (a retry comes within seconds).
KEY_TTL = 86400.0
#: Seconds between checks that the store's file is still the one opened.
STORE_CHECK = 2.0
#: Connections the daemon serves at once (more get 503 at once, not a hang).
MAX_CONNECTIONS = 4096
#: Connections one user (other than root and the daemon's own) may hold open at once.
MAX_CONNECTIONS_PER_USER = 256
#: Seconds a new connection may wait before sending its request.
REQUEST_TIMEOUT = 30.0
#: Bytes of request line and headers a request may have (h11 holds this for a head that
#: arrives in pieces; :func:`peer_protocol` also for one that arrives at once).
MAX_HEAD = 64 * 1024


def _head_refusal() -> bytes:
    """431 in corral's error form, for a request head over :data:`MAX_HEAD`."""
    line = (f"request head too large: more than {MAX_HEAD:,} bytes of request line and headers "
            f"(expected at most {MAX_HEAD:,})")
    body = json.dumps({"error": line, "lines": [line]}).encode()
    return (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body)) + body


def peer_protocol():
    """uvicorn's h11 protocol, plus the caller's credentials (SO_PEERCRED) on the Unix
    socket: the kernel says which pid/uid/gid is on the other end, no password needed.
    Each connection serves the app wrapped by :func:`corral.daemon.api.principal.with_peer`,
    so every request on it carries those credentials in its ASGI scope, where no header
    can reach; the ASGI ``client`` stays what uvicorn says (none on a Unix socket)."""
    import re
    import socket
    import struct

    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from .api.principal import with_peer

    open_by_uid: dict[int, int] = {}
    refused = {"count": 0, "logged": 0.0}
    blank_line = re.compile(rb"\n\r?\n")     # where h11 finds a head's end

    class PeerCredProtocol(H11Protocol):
        _uid: int | None = None
        _idle = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            try:
                raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                pid, uid, gid = struct.unpack("3i", raw)
            except (OSError, AttributeError):
                return   # no credentials: the caller stays unknown
            if uid < 0:
                return   # not a Unix socket peer (the kernel answers uid -1)
            if uid != 0 and uid != os.geteuid() and open_by_uid.get(uid, 0) >= MAX_CONNECTIONS_PER_USER:
                # One user cannot hold every descriptor: the others keep being served.
                refused["count"] += 1
                now = time.monotonic()
                if now - refused["logged"] > 60:
                    refused["logged"] = now
                    log.warning("uid %d holds %d connections: refusing more (%d refused so far)", uid,
                                MAX_CONNECTIONS_PER_USER, refused["count"])
                transport.close()
                return
            self._uid = uid
            open_by_uid[uid] = open_by_uid.get(uid, 0) + 1
            self.app = with_peer(self.app, pid, uid, gid)
            # A connection that sends no request is closed after a while (keep-alive
            # covers the time between requests once one came).
            self._idle = self.loop.call_later(REQUEST_TIMEOUT, self._close_if_silent)

        def data_received(self, data: bytes) -> None:
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            if self.conn.their_state is h11.IDLE and self._head_too_large(data):
                self.transport.write(_head_refusal())
                self.transport.close()
                return
            super().data_received(data)

        def _head_too_large(self, data: bytes) -> bool:
            """Whether the head now arriving is over :data:`MAX_HEAD`. h11 refuses a head
            that long only while it is incomplete: one read can bring a whole head of
            hundreds of KiB, which it would take."""
            pending = self.conn.trailing_data[0]
            if len(pending) + len(data) <= MAX_HEAD:
                return False
            pending += data
            end = blank_line.search(pending)
            return (end.end() if end is not None else len(pending)) > MAX_HEAD

        def _close_if_silent(self) -> None:
            self._idle = None
            if self.cycle is None and self.transport is not None and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc) -> None:  # type: ignore[override]
            if self._idle is not None:
                self._idle.cancel()
            if self._uid is not None:
                left = open_by_uid.get(self._uid, 1) - 1
                if left > 0:
                    open_by_uid[self._uid] = left
                else:
                    open_by_uid.pop(self._uid, None)
                self._uid = None
            super().connection_lost(exc)

    return PeerCredProtocol


def main(argv: list[str] | None = None, *, launcher: "Launcher | None" = None) -> int:
    parser = argparse.ArgumentParser(prog="corral-daemon", description="Run the corral daemon in the foreground.")
    parser.add_argument("--home", default=None, help="state directory (default $CORRAL_HOME)")
    parser.add_argument("--simulate-gpus", type=int, default=None)
    parser.add_argument("--new-store", action="store_true",
                        help="start on an empty store when the home's was lost (see corral.daemon.identity)")
    args = parser.parse_args(argv)
    return run(args.home, simulate_gpus=args.simulate_gpus, launcher=launcher, new_store=args.new_store)
