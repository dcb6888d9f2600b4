"""Run jobs as local process sessions, each under its own supervisor.

See :mod:`corral.executors.supervisor` for why a supervisor and what it records. This
module starts supervisors, watches them with pidfds on the daemon's event loop (no
polling where the kernel has ``pidfd_open``), stops jobs on request and re-adopts
supervisors after a daemon restart.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from ..errors import CorralError
from . import supervisor as sup
from .base import ExitCallback, Executor, ExitStatus, LaunchRequest, Running, StopReason

_POLL_SECONDS = 0.25


@dataclass
class _Watch:
    pid: int
    child: bool
    pidfd: int | None = None
    timer: asyncio.TimerHandle | None = None


class LocalExecutor(Executor):
    def __init__(self, jobs_dir: Path, on_exit: ExitCallback, loop: asyncio.AbstractEventLoop):
        self.jobs_dir = Path(jobs_dir)
        self.jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._on_exit = on_exit
        self._loop = loop
        self._watches: dict[int, _Watch] = {}

    # paths -----------------------------------------------------------------------
    def jobdir(self, job_id: int) -> Path:
        return self.jobs_dir / str(job_id)

    def log_path(self, job_id: int, stream: str = "stdout") -> Path:
        return self.jobdir(job_id) / (sup.STDOUT if stream == "stdout" else sup.STDERR)

    # launch ----------------------------------------------------------------------
    def launch(self, request: LaunchRequest) -> Running:
        d = self.jobdir(request.job_id)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in (sup.STATUS, sup.STOP, sup.JOB_PID, sup.SUPERVISOR_PID):
            try:
                (d / stale).unlink()
            except FileNotFoundError:
                pass
        lock_fd = os.open(d / sup.LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise CorralError(f"job {request.job_id} already has a live supervisor") from None
        argv, env = list(request.argv), dict(request.env)
        jobdir, workdir, cores, grace = str(d), request.workdir, request.cores, request.kill_grace
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked supervisor
            sup.supervise(jobdir, argv, env, workdir, cores, grace, lock_fd)
        os.close(lock_fd)  # the supervisor's inherited copy keeps the lock held
        self._watch(request.job_id, pid, child=True)
        return Running(request.job_id, pid, sup.proc_start_time(pid))

    # stop ------------------------------------------------------------------------
    def stop(self, job_id: int, why: StopReason) -> bool:
        watch = self._watches.get(job_id)
        if watch is None:
            return False
        sup.write_atomic(str(self.jobdir(job_id) / sup.STOP), why.value.encode())
        try:
            if watch.pidfd is not None:
                signal.pidfd_send_signal(watch.pidfd, signal.SIGTERM)
            else:
                os.kill(watch.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        return True

    # adopt -----------------------------------------------------------------------
    def adopt(self, job_id: int) -> Running | ExitStatus | None:
        d = self.jobdir(job_id)
        if not d.exists():
            return None
        lock_fd = os.open(d / sup.LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alive = False
        except BlockingIOError:
            alive = True
        finally:
            os.close(lock_fd)  # closing drops our lock if we took it
        if alive:
            pid = self._read_pid(d / sup.SUPERVISOR_PID)
            if pid is not None:
                self._watch(job_id, pid, child=False)
                return Running(job_id, pid, sup.proc_start_time(pid))
            # Locked but no pid yet: the supervisor is a few microseconds old. Watch by
            # polling the lock until the pid file appears.
            self._loop.call_later(0.05, self._retry_adopt, job_id)
            return Running(job_id, 0)
        status = self.read_status(job_id)
        if status is not None:
            return status
        if (d / sup.JOB_PID).exists() or (d / sup.SUPERVISOR_PID).exists():
            self._kill_orphan(job_id)
            return self._lost(job_id)
        return None

    def _retry_adopt(self, job_id: int) -> None:
        result = self.adopt(job_id)
        if isinstance(result, ExitStatus):
            self._on_exit(job_id, result)
        elif result is None:
            self._on_exit(job_id, self._lost(job_id))

    # status ----------------------------------------------------------------------
    def read_status(self, job_id: int) -> ExitStatus | None:
        d = self.jobdir(job_id)
        try:
            data = json.loads((d / sup.STATUS).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return self._lost(job_id)
        stopped = None
        try:
            stopped = StopReason((d / sup.STOP).read_text().strip())
        except (FileNotFoundError, ValueError):
            pass
        if stopped is not None and "stop_signal" not in data:
            # A stop was requested but the job ended on its own before it was signalled.
            stopped = None if data.get("exit_code") == 0 else stopped
        return ExitStatus(
            ended_at=float(data.get("ended_at", 0.0)),
            exit_code=data.get("exit_code"),
            signal=data.get("signal"),
            launch_error=data.get("launch_error"),
            stopped_for=stopped,
        )

    def _lost(self, job_id: int) -> ExitStatus:
        import time

        return ExitStatus(ended_at=time.time(), lost=True)

    def _kill_orphan(self, job_id: int) -> None:
        """The supervisor is gone without a status: kill what is left of the job."""
        path = self.jobdir(job_id) / sup.JOB_PID
        try:
            pid_s, start_s = path.read_text().split()
            pid, start = int(pid_s), int(start_s) if start_s != "None" else None
        except (OSError, ValueError):
            return
        if start is not None and sup.proc_start_time(pid) == start:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    @staticmethod
    def _read_pid(path: Path) -> int | None:
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # watching ----------------------------------------------------------------------
    def _watch(self, job_id: int, pid: int, *, child: bool) -> None:
        watch = _Watch(pid=pid, child=child)
        self._watches[job_id] = watch
        try:
            watch.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._loop.call_soon(self._ended, job_id)
            return
        except (AttributeError, OSError):
            watch.timer = self._loop.call_later(_POLL_SECONDS, self._poll, job_id)
            return
        self._loop.add_reader(watch.pidfd, self._ended, job_id)

    def _poll(self, job_id: int) -> None:
        watch = self._watches.get(job_id)
        if watch is None:
            return
        if watch.child:
            try:
                done, _ = os.waitpid(watch.pid, os.WNOHANG)
            except ChildProcessError:
                done = watch.pid
            alive = not done
        else:
            alive = sup.proc_start_time(watch.pid) is not None and not _zombie(watch.pid)
        if alive:
            watch.timer = self._loop.call_later(_POLL_SECONDS, self._poll, job_id)
        else:
            self._ended(job_id)

    def _ended(self, job_id: int) -> None:
        watch = self._watches.pop(job_id, None)
        if watch is None:
            return
        if watch.pidfd is not None:
            self._loop.remove_reader(watch.pidfd)
            os.close(watch.pidfd)
        if watch.timer is not None:
            watch.timer.cancel()
        if watch.child:
            try:
                os.waitpid(watch.pid, 0)
            except ChildProcessError:
                pass
        status = self.read_status(job_id)
        if status is None:
            self._kill_orphan(job_id)
            status = self._lost(job_id)
        self._on_exit(job_id, status)

    def watching(self) -> set[int]:
        return set(self._watches)

    def close(self) -> None:
        for job_id, watch in list(self._watches.items()):
            if watch.pidfd is not None:
                try:
                    self._loop.remove_reader(watch.pidfd)
                except Exception:  # noqa: BLE001 - loop may be closing
                    pass
                os.close(watch.pidfd)
            if watch.timer is not None:
                watch.timer.cancel()
        self._watches.clear()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2:data.rindex(b")") + 3] == b"Z"
    except (OSError, ValueError):
        return False
