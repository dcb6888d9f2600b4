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
from typing import TYPE_CHECKING

from ..errors import CorralError
from . import supervisor as sup
from .base import ExitCallback, Executor, ExitStatus, LaunchRequest, Running, StopReason

if TYPE_CHECKING:
    from .launcher import Launcher

_POLL_SECONDS = 0.25


@dataclass
class _Watch:
    pid: int
    child: bool
    pidfd: int | None = None
    timer: asyncio.TimerHandle | None = None


class LocalExecutor(Executor):
    def __init__(self, jobs_dir: Path | str, on_exit: ExitCallback, loop: asyncio.AbstractEventLoop,
                 launcher: "Launcher | None" = None):
        self.jobs_dir = Path(jobs_dir)
        self.jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._root = str(self.jobs_dir)
        self._on_exit = on_exit
        self._loop = loop
        self._watches: dict[int, _Watch] = {}
        #: Forks supervisors from a small process (cheaper); None: fork them here.
        self._launcher = launcher
        #: Jobs asked of the launcher and not yet answered -> a stop requested meanwhile.
        self._starting: dict[int, tuple[StopReason, str] | None] = {}
        if launcher is not None:
            loop.add_reader(launcher.fileno(), self._on_launcher)

    # paths -----------------------------------------------------------------------
    def jobdir(self, job_id: int) -> Path:
        return self.jobs_dir / str(job_id)

    def log_path(self, job_id: int, stream: str = "stdout") -> Path:
        return self.jobdir(job_id) / (sup.STDOUT if stream == "stdout" else sup.STDERR)

    # launch ----------------------------------------------------------------------
    def launch(self, request: LaunchRequest) -> Running:
        d = os.path.join(self._root, str(request.job_id))
        if self._launcher is not None:
            try:
                self._launcher.request(request.job_id, d, list(request.argv), request.env, request.workdir,
                                       request.cores, request.kill_grace, request.stop_signal, request.cgroup,
                                       uid=request.uid, gid=request.gid, user=request.user)
                self._starting[request.job_id] = None
                return Running(request.job_id, 0)
            except CorralError:
                self._launcher_gone()
        sup.prepare_jobdir(d)
        lock_fd = os.open(os.path.join(d, sup.LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise CorralError(f"job {request.job_id} already has a live supervisor") from None
        argv, env = list(request.argv), request.env
        jobdir, workdir, cores, grace = d, request.workdir, request.cores, request.kill_grace
        stop_signal, cgroup = request.stop_signal, request.cgroup
        uid, gid, user = request.uid, request.gid, request.user
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, sup.HELD_SIGNALS)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked supervisor
            sup.supervise(jobdir, argv, env, workdir, cores, grace, lock_fd, stop_signal, cgroup,
                          uid=uid, gid=gid, user=user)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(lock_fd)  # the supervisor's inherited copy keeps the lock held
        self._watch(request.job_id, pid, child=True)
        return Running(request.job_id, pid)

    def _on_launcher(self) -> None:
        assert self._launcher is not None
        try:
            replies = self._launcher.replies()
        except CorralError:
            self._launcher_gone()
            return
        for reply in replies:
            job_id = int(reply["job"])
            stop = self._starting.pop(job_id, None)
            if "error" in reply:
                import time

                self._on_exit(job_id, ExitStatus(ended_at=time.time(), launch_error=f"launch failed: {reply['error']}"))
                continue
            self._watch(job_id, int(reply["pid"]), child=False)
            if stop is not None:
                self.stop(job_id, *stop)

    def _launcher_gone(self) -> None:
        """The launcher died: fork supervisors here from now on; jobs it was starting
        are re-checked like after a restart."""
        launcher, self._launcher = self._launcher, None
        if launcher is None:
            return
        try:
            self._loop.remove_reader(launcher.fileno())
        except (ValueError, OSError):
            pass
        starting, self._starting = self._starting, {}
        for job_id in starting:
            self._retry_adopt(job_id)

    # stop ------------------------------------------------------------------------
    def stop(self, job_id: int, why: StopReason, message: str = "") -> bool:
        if job_id in self._starting:
            self._starting[job_id] = (why, message)   # delivered as soon as the supervisor exists
            return True
        watch = self._watches.get(job_id)
        if watch is None:
            return False
        # The reason goes to disk before the signal, so a daemon that dies right after
        # still knows, when it adopts the end, that corral stopped the job and why.
        sup.write_atomic(str(self.jobdir(job_id) / sup.STOP), f"{why.value}\n{message}".encode())
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
            pid = self._read_pid(d / sup.PIDS)
            if pid is not None:
                self._watch(job_id, pid, child=False)
                stop = self._stop_request(job_id)
                if stop is not None:
                    # A stop was requested before the restart: make sure it was delivered.
                    self.stop(job_id, *stop)
                return Running(job_id, pid, sup.proc_start_time(pid))
            # Locked but no pid yet: the supervisor is a few microseconds old. Watch by
            # polling the lock until the pid file appears.
            self._loop.call_later(0.05, self._retry_adopt, job_id)
            return Running(job_id, 0)
        status = self.read_status(job_id)
        if status is not None:
            return status
        if (d / sup.PIDS).exists():
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
        d = os.path.join(self._root, str(job_id))
        try:
            with open(os.path.join(d, sup.STATUS), "rb") as f:
                data = json.loads(f.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return self._lost(job_id)
        # The job was stopped by corral only if its supervisor received the stop signal;
        # a job that ended on its own just before is classified by its own exit.
        stop = self._stop_request(job_id) if "stop_signal" in data else None
        return ExitStatus(
            ended_at=float(data.get("ended_at", 0.0)),
            exit_code=data.get("exit_code"),
            signal=data.get("signal"),
            launch_error=data.get("launch_error"),
            stopped_for=stop[0] if stop else None,
            stop_message=stop[1] if stop else "",
            oom_kills=int(data.get("oom_kills") or 0),
            memory_peak=data.get("memory_peak"),
            memory_limit=data.get("memory_limit"),
            cpu_seconds=data.get("cpu_seconds"),
        )

    def _stop_request(self, job_id: int) -> tuple[StopReason, str] | None:
        """What the ``stop`` file asks: the reason and the message (second line on)."""
        try:
            with open(os.path.join(self._root, str(job_id), sup.STOP)) as f:
                why, _, message = f.read().partition("\n")
            return StopReason(why.strip()), message.strip()
        except (FileNotFoundError, ValueError):
            return None

    def remove_jobdir(self, job_id: int) -> None:
        """Delete a finished job's directory (logs, status) for retention."""
        import shutil

        if job_id in self._watches or job_id in self._starting:
            return
        shutil.rmtree(self.jobdir(job_id), ignore_errors=True)

    # signals -------------------------------------------------------------------------
    def signal(self, job_id: int, sig: int) -> bool:
        """Send ``sig`` to the job's process group (it keeps running)."""
        if job_id not in self._watches:
            return False
        try:
            with open(os.path.join(self._root, str(job_id), sup.PIDS)) as f:
                _, pid_s, start_s = f.read().split()
            pid = int(pid_s)
        except (OSError, ValueError):
            return False
        if start_s != "None" and str(sup.proc_start_time(pid)) != start_s:
            return False                     # that pid is another process now
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _lost(self, job_id: int) -> ExitStatus:
        import time

        return ExitStatus(ended_at=time.time(), lost=True)

    def _kill_orphan(self, job_id: int) -> None:
        """The supervisor is gone without a status: kill what is left of the job."""
        path = self.jobdir(job_id) / sup.PIDS
        try:
            _, pid_s, start_s = path.read_text().split()
            pid, start = int(pid_s), int(start_s) if start_s != "None" else None
        except (OSError, ValueError):
            return
        if start is not None and sup.proc_start_time(pid) == start:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def pids(self, job_id: int) -> dict[str, int] | None:
        """The supervisor's and the job's pid while it runs (from the ``pids`` file)."""
        try:
            with open(os.path.join(self._root, str(job_id), sup.PIDS)) as f:
                supervisor, job, _ = f.read().split()
            return {"supervisor": int(supervisor), "job": int(job)}
        except (OSError, ValueError):
            return None

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
        return set(self._watches) | set(self._starting)

    def close(self) -> None:
        if self._launcher is not None:
            try:
                self._loop.remove_reader(self._launcher.fileno())
            except (ValueError, OSError):
                pass
            self._launcher.close()
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
