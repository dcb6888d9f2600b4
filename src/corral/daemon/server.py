"""The daemon process: one per ``$CORRAL_HOME``, serving HTTP on a Unix socket.

Start-up order: take the home's exclusive lock (a second daemon exits at once), open the
store, detect the node, recover (re-adopt running jobs, requeue pending ones), then
serve. ``corral down`` (or SIGTERM) stops the daemon; running jobs keep running under
their supervisors and are re-adopted by the next daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sys

from ..capacity.detect import detect_node
from ..config import load_config
from ..errors import CorralError
from ..executors.launcher import Launcher
from ..executors.local import LocalExecutor
from ..paths import MAX_SOCKET_PATH, Paths
from ..store.sqlite import SqliteStore
from .api import create_app
from .manager import Manager

log = logging.getLogger("corral.daemon")

#: `corral up` options that later automatic starts must keep (e.g. simulated GPUs).
UP_OPTIONS = "up_options"


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


def run(home: str | None = None, *, simulate_gpus: int | None = None, launcher: Launcher | None = None) -> int:
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
        launcher = Launcher.start()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return _serve(paths, simulate_gpus, launcher)
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


def _serve(paths: Paths, simulate_gpus: int | None, launcher: Launcher) -> int:
    import uvicorn

    _raise_fd_limit()
    store = SqliteStore(paths.db)
    saved = json.loads(store.get_meta(UP_OPTIONS) or "{}")
    if simulate_gpus is not None:
        saved["simulate_gpus"] = simulate_gpus
        store.set_meta(UP_OPTIONS, json.dumps(saved))
    config = load_config(paths.config).merged(**saved)
    node, info = detect_node(name=config.node_name, simulate_gpus=config.simulate_gpus,
                             reserve_cpu=config.reserve_cpu, reserve_memory=config.reserve_memory)
    info["home"] = str(paths.home)
    store.set_meta("node", json.dumps(node.to_dict()))
    manager = Manager(store, [node], policy=config.policy, default_requests=config.default_requests,
                      kill_grace=float(config.kill_grace))
    server: uvicorn.Server | None = None

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        executor = LocalExecutor(paths.jobs, manager.on_exit, loop, launcher=launcher)
        manager.attach(executor, loop)
        counts = manager.recover()
        log.info("started pid %d on %s: %s; recovered %s", os.getpid(), node.name, info.get("gpu_source"), counts)
        yield
        manager.close()

    def shutdown() -> None:
        if server is not None:
            server.should_exit = True
        manager.release_waiters()   # long polls return now, not after the grace period

    app = create_app(manager, info, shutdown, lifespan=lifespan)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths.socket)  # we hold the lock, so any socket file is stale
    uconfig = uvicorn.Config(app, uds=str(paths.socket), log_level="warning", access_log=False,
                             lifespan="on", loop="asyncio", http="h11", timeout_graceful_shutdown=2)
    server = uvicorn.Server(uconfig)
    try:
        server.run()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths.socket)
        store.close()
    return 0


def main(argv: list[str] | None = None, *, launcher: Launcher | None = None) -> int:
    parser = argparse.ArgumentParser(prog="corral-daemon", description="Run the corral daemon in the foreground.")
    parser.add_argument("--home", default=None, help="state directory (default $CORRAL_HOME)")
    parser.add_argument("--simulate-gpus", type=int, default=None)
    args = parser.parse_args(argv)
    return run(args.home, simulate_gpus=args.simulate_gpus, launcher=launcher)
