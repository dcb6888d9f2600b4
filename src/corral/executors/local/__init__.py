"""The local executor: jobs as process sessions on this machine, each under its own supervisor.

Everything that is particular to running on the local machine lives in this folder: the
per-job supervisor (:mod:`.supervisor`, why one and what it records), the small process
that forks supervisors (:mod:`.launcher`), running a job as its submitter (:mod:`.users`),
cgroups and the choice between them and the watchdog (:mod:`.cgroups`,
:mod:`.enforcement`), reading usage from cgroups or ``/proc`` (:mod:`.procfs`), the job
directories with their logs, which cores fractional jobs share, and which GPU device
files a job may open.

This module turns a job and its allocation into a supervisor's launch request, starts
supervisors, watches them with pidfds on the daemon's event loop (no polling where the
kernel has ``pidfd_open``), stops jobs on request and re-adopts supervisors after a
daemon restart.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ...errors import CorralError
from ...resources import CPU, MEMORY
from ..base import Capabilities, ExitCallback, Executor, ExitStatus, Reading, Running, StopReason
from ..environment import job_environment
from ..gpu_share import mps_running
from . import supervisor as sup
from .users import run_as, user_environment

if TYPE_CHECKING:
    from ...capacity.gpu import GpuProbe, GpuSample
    from ...capacity.node import Node
    from ...job import Allocation, Job, Piece
    from .enforcement import Enforcement
    from .launcher import Launcher

log = logging.getLogger("corral.executor")

_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class LaunchRequest:
    """What a supervisor needs to start one job (built by :meth:`LocalExecutor.launch`)."""

    job_id: int
    argv: tuple[str, ...]
    env: dict[str, str]
    workdir: str
    #: CPU ids the job may run on (None: leave affinity alone).
    cores: tuple[int, ...] | None
    kill_grace: float = 10.0
    #: Sent to the job's process group when corral stops it (then SIGKILL after the grace).
    stop_signal: int = signal.SIGTERM
    #: The job's cgroup: ``{"support": CgroupSupport.to_dict(), "key": "job-42",
    #: "limits": Limits.to_dict()}``; None: no cgroup (the watchdog measures the job).
    cgroup: dict | None = None
    #: Run the job as this user (a root daemon in system mode: the job's submitter);
    #: None: as the daemon's own user. ``user`` names it (for supplementary groups).
    uid: int | None = None
    gid: int | None = None
    user: str = ""
    #: An interactive job: the socket its terminal listens on (:mod:`.ptyrelay`); None: none.
    pty: str | None = None


def cgroup_key(job_id: int) -> str:
    return f"job-{job_id}"


def _job_of_key(key: str) -> int | None:
    head, _, digits = key.partition("-")
    return int(digits) if head == "job" and digits.isdigit() else None


@dataclass
class _Watch:
    pid: int
    child: bool
    pidfd: int | None = None
    timer: asyncio.TimerHandle | None = None


class LocalExecutor(Executor):
    """Runs jobs on ``node`` (this machine). ``enforcement``: cgroups or the watchdog (None:
    neither, for tests); ``pids_limit``: tasks per job under a cgroup; ``gpu_minors``: GPU
    index -> ``/dev/nvidiaN`` minor, to deny a job the other GPUs' device files;
    ``kill_grace``: stop signal -> SIGKILL, for jobs that do not set their own; ``probe``:
    reads the node's GPUs (NVML or simulated)."""

    name = "local"

    def __init__(self, jobs_dir: Path | str, on_exit: ExitCallback, loop: asyncio.AbstractEventLoop,
                 launcher: "Launcher | None" = None, *, node: "Node", enforcement: "Enforcement | None" = None,
                 pids_limit: int = 0, gpu_minors: dict[int, int] | None = None, kill_grace: float = 10.0,
                 probe: "GpuProbe | None" = None, proc: str = "/proc"):
        self.jobs_dir = Path(jobs_dir)
        self.jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._cut_logs: set[tuple[int, str]] = set()
        self._root = str(self.jobs_dir)
        self._on_exit = on_exit
        self._loop = loop
        self.node = node
        self.enforcement = enforcement
        self.pids_limit = pids_limit
        self.gpu_minors = dict(gpu_minors or {})
        self.kill_grace = kill_grace
        self.probe = probe
        self.proc = proc
        from .enforcement import group_name

        #: Marks every process of a job (``CORRAL_JOB_TAG=<this>.<id>``), so that those a dead
        #: supervisor left behind can be found where no cgroup holds them.
        self.tag = group_name(str(self.jobs_dir.parent))
        #: Jobs whose supervisor lives but has not written its pids yet (after a restart).
        self._adopting: set[int] = set()
        support = enforcement.support if enforcement is not None else None
        self.capabilities = Capabilities(logs=True, usage=True, cgroups=support is not None, stop_signals=True,
                                         device_pinning=True, gangs=False, inventory=True,
                                         interactive=True)
        #: What each job launched or adopted here holds (for the cores fractional jobs share).
        self._allocs: dict[int, "Allocation"] = {}
        #: Jobs' main pids once known (for usage from /proc and GPU memory by process).
        self._roots: dict[int, int] = {}
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

    def pty_location(self, job_id: int) -> str:
        """Where an interactive job's terminal listens: ``<home>/pty/<id>.sock``. Not in the
        job's directory, which is root's alone (0700) under a root daemon: this directory
        is 0711 there (a name can be reached, none listed) and each socket 0600, the job's
        user's."""
        return str(self.jobs_dir.parent / "pty" / f"{job_id}.sock")

    def _pty_dir(self, job_id: int) -> str:
        path = self.pty_location(job_id)
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o711 if os.geteuid() == 0 else 0o700)
        return path

    # launch ----------------------------------------------------------------------
    def nodes(self) -> list["Node"]:
        return [self.node]

    def launch(self, job: "Job", allocation: "Allocation") -> None:
        """Start ``job`` on its allocation here; a launch that fails is reported through
        ``on_exit`` on the next turn of the loop."""
        try:
            if not allocation.single or allocation.node != self.node.name:
                raise CorralError(f"the local executor runs jobs on {self.node.name} only, not on "
                                  f"{', '.join(allocation.nodes)}")
            self._allocs[job.id] = allocation
            self._start(self.request_for(job, allocation.pieces[0]))
        except Exception as exc:  # noqa: BLE001 - whatever failed, the job ends LaunchFailed
            self._allocs.pop(job.id, None)
            if not isinstance(exc, (OSError, CorralError)):
                log.exception("launching job %d failed", job.id)
            status = ExitStatus(ended_at=time.time(), launch_error=f"launch failed: {exc}")
            self._loop.call_soon(self._report, job.id, status)

    def request_for(self, job: "Job", piece: "Piece") -> LaunchRequest:
        """The supervisor's request for ``job`` on ``piece``: its user, environment, cores,
        working directory, stop signal and grace, and cgroup."""
        spec = job.spec
        # A root daemon runs each job as its submitter, in a clean environment (system mode).
        who = run_as(job.uid, job.gid, job.user)
        base_env = user_environment(who, job.base_env) if who is not None else job.base_env
        cores = piece.cores or self.shared_cores(job.id)
        env = job_environment(job, piece, cores, base_env, node=self.node, mps=mps_running())
        env["CORRAL_JOB_TAG"] = f"{self.tag}.{job.id}"
        return LaunchRequest(
            job_id=job.id,
            argv=spec.command,
            env=env,
            workdir=spec.workdir or (who.home if who else os.path.expanduser("~")),
            cores=cores or None,
            kill_grace=float(spec.kill_grace if spec.kill_grace is not None else self.kill_grace),
            stop_signal=int(getattr(signal, spec.stop_signal)) if spec.stop_signal else signal.SIGTERM,
            cgroup=self.cgroup_for(job, piece),
            uid=who.uid if who else None, gid=who.gid if who else None, user=who.user if who else "",
            pty=self._pty_dir(job.id) if spec.pty else None,
        )

    def cgroup_for(self, job: "Job", piece: "Piece") -> dict | None:
        """The cgroup a job runs in: with its hard limits; in watchdog mode a cgroup v2 group
        that only holds its processes where one can be made; else None."""
        holder = self.enforcement.holder if self.enforcement is not None else None
        if holder is None:
            return None
        from .cgroups import Limits

        if self.enforcement.support is None:
            return {"support": holder.to_dict(), "key": cgroup_key(job.id), "limits": Limits().to_dict()}
        limits = Limits(
            memory=job.spec.limits.get(MEMORY) or None,
            cpu=job.spec.limits.get(CPU) or None,
            pids=self.pids_limit or None,
            # Other jobs' GPUs (and free ones) cannot be opened by this job.
            deny_devices=tuple(f"c 195:{minor}" for index, minor in sorted(self.gpu_minors.items())
                               if index not in piece.gpus),
        )
        return {"support": self.enforcement.support.to_dict(), "key": cgroup_key(job.id),
                "limits": limits.to_dict()}

    def shared_cores(self, job_id: int | None = None) -> tuple[int, ...]:
        """Cores not held exclusively by any (other) job here: where fractional jobs run."""
        taken = {c for j, a in self._allocs.items() if j != job_id for p in a.pieces for c in p.cores}
        return tuple(c for c in self.node.cores if c not in taken)

    def _start(self, request: LaunchRequest) -> None:
        d = os.path.join(self._root, str(request.job_id))
        if self._launcher is not None:
            try:
                self._launcher.request(request.job_id, d, list(request.argv), request.env, request.workdir,
                                       request.cores, request.kill_grace, request.stop_signal, request.cgroup,
                                       uid=request.uid, gid=request.gid, user=request.user, pty=request.pty)
                self._starting[request.job_id] = None
                return
            except CorralError:
                self._launcher_gone()
        try:
            lock_fd = sup.open_state(d)
        except BlockingIOError:
            raise CorralError(f"job {request.job_id} already has a live supervisor") from None
        argv, env = list(request.argv), request.env
        jobdir, workdir, cores, grace = d, request.workdir, request.cores, request.kill_grace
        stop_signal, cgroup = request.stop_signal, request.cgroup
        uid, gid, user, pty = request.uid, request.gid, request.user, request.pty
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, sup.HELD_SIGNALS)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked supervisor
            sup.supervise(jobdir, argv, env, workdir, cores, grace, lock_fd, stop_signal, cgroup,
                          uid=uid, gid=gid, user=user, pty=pty)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(lock_fd)  # the supervisor's inherited copy keeps the lock held
        self._watch(request.job_id, pid, child=True)

    def _on_launcher(self) -> None:
        assert self._launcher is not None
        try:
            replies = self._launcher.replies()
        except CorralError:
            self._launcher_gone()
            return
        for reply in replies:
            if "ended" in reply:
                # A supervisor the launcher keeps ended this job and lives on for the next:
                # its pid says nothing, its state file does.
                if int(reply["ended"]) in self._watches:
                    self._ended(int(reply["ended"]))
                continue
            job_id = int(reply["job"])
            stop = self._starting.pop(job_id, None)
            if "error" in reply:
                self._report(job_id, ExitStatus(ended_at=time.time(), launch_error=f"launch failed: {reply['error']}"))
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
    def adopt(self, job: "Job") -> Running | ExitStatus | None:
        if job.allocation is not None:
            self._allocs[job.id] = job.allocation
        result = self._adopt(job.id)
        if not isinstance(result, Running):
            self._allocs.pop(job.id, None)
        return result

    def _adopt(self, job_id: int) -> Running | ExitStatus | None:
        d = self.jobdir(job_id)
        try:
            alive = _held(d / sup.STATE)
        except FileNotFoundError:
            if (d / "lock").exists():       # started by a corral of the earlier layout
                return self._adopt_earlier(job_id)
            return None                     # never got as far as a supervisor
        try:
            state = sup.read_state(str(d))
        except OSError:
            state = None if alive else sup.parse_state(b"unreadable\n")   # damaged: lost below
        if alive:
            if state is not None and state.supervisor is not None:
                self._adopting.discard(job_id)
                self._watch(job_id, state.supervisor, child=False)
                stop = self._stop_request(job_id)
                if stop is not None:
                    # A stop was requested before the restart: make sure it was delivered.
                    self.stop(job_id, *stop)
                return Running(job_id, str(state.supervisor))
            # Locked but no pid yet: the supervisor is a few microseconds old. Watch by
            # polling the lock until its pids are written.
            self._adopting.add(job_id)
            self._loop.call_later(0.05, self._retry_adopt, job_id)
            return Running(job_id)
        self._adopting.discard(job_id)
        status = self._status_of(job_id, state)
        if status is not None:
            return status
        if state is not None and state.job is not None:
            return self._lost(job_id, state)
        self._reclaim(job_id, state)         # a group made before the supervisor died, if any
        return None

    def _adopt_earlier(self, job_id: int) -> Running | ExitStatus | None:
        """A job whose supervisor was started before the state file (an upgrade while
        jobs ran): ``lock`` held by a living supervisor, ``pids`` ("SUP JOB TICKS"),
        ``status.json`` once it ended. Its supervisor lives on as it was; only reading
        differs, so it is never taken for a job that was not launched."""
        d = self.jobdir(job_id)
        alive = _held(d / "lock")
        state = _earlier_state(str(d), with_status=not alive)
        if alive:
            if state.supervisor is None:
                self._adopting.add(job_id)
                self._loop.call_later(0.05, self._retry_adopt, job_id)
                return Running(job_id)
            self._adopting.discard(job_id)
            self._watch(job_id, state.supervisor, child=False)
            return Running(job_id, str(state.supervisor))
        self._adopting.discard(job_id)
        status = self._status_of(job_id, state)
        if status is not None:
            return status
        return self._lost(job_id, state) if state.job is not None else None

    def _retry_adopt(self, job_id: int) -> None:
        result = self._adopt(job_id)
        if isinstance(result, ExitStatus):
            self._report(job_id, result)
        elif result is None:
            self._report(job_id, self._lost(job_id))

    # status ----------------------------------------------------------------------
    def read_status(self, job_id: int) -> ExitStatus | None:
        try:
            state = _any_state(os.path.join(self._root, str(job_id)))
        except OSError:                      # unreadable: as good as damaged
            return self._lost(job_id)
        return self._status_of(job_id, state)

    def _status_of(self, job_id: int, state: "sup.State | None") -> ExitStatus | None:
        """The job's end from its state file; None while it has none (a supervisor that
        left a line no supervisor writes: lost)."""
        if state is None:
            return None
        data = state.status
        if data is None:
            return self._lost(job_id, state) if state.damaged else None
        # The job was stopped by corral only if its supervisor received the stop signal;
        # a job that ended on its own just before is classified by its own exit.
        stop = self._stop_request(job_id) if "stop_signal" in data else None
        try:
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
        except (TypeError, ValueError):
            return self._lost(job_id, state)

    def _stop_request(self, job_id: int) -> tuple[StopReason, str] | None:
        """What the ``stop`` file asks: the reason and the message (second line on)."""
        try:
            with open(os.path.join(self._root, str(job_id), sup.STOP)) as f:
                why, _, message = f.read().partition("\n")
            return StopReason(why.strip()), message.strip()
        except (FileNotFoundError, ValueError):
            return None

    def remove(self, job_id: int) -> None:
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
        state = _any_state(os.path.join(self._root, str(job_id)))
        if state is None or state.job is None:
            return False
        pid = state.job
        if state.start is not None and sup.proc_start_time(pid) != state.start:
            return False                     # that pid is another process now
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _lost(self, job_id: int, state: "sup.State | None" = None) -> ExitStatus:
        """Its supervisor died without recording the end: nobody else kills what the job
        left running, so it is done here."""
        self._reclaim(job_id, state)
        return ExitStatus(ended_at=time.time(), lost=True)

    def _report(self, job_id: int, status: ExitStatus) -> None:
        """The one way an end leaves the executor."""
        self._allocs.pop(job_id, None)
        self._roots.pop(job_id, None)
        self._on_exit(job_id, status)

    def _reclaim(self, job_id: int, state: "sup.State | None" = None) -> None:
        """Kill everything a job whose supervisor is gone left running, and remove its
        cgroup: its process group, its cgroup (limits or the group that holds it) or,
        where it has none, every process whose environment carries the job's tag."""
        if state is None:
            try:
                state = _any_state(str(self.jobdir(job_id)))
            except OSError:
                state = None
        if state is not None and state.job is not None and \
                (state.start is None or sup.proc_start_time(state.job) == state.start):
            try:
                os.killpg(state.job, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        holder = self.enforcement.holder if self.enforcement is not None else None
        if holder is not None:
            from .cgroups import JobCgroup

            try:
                JobCgroup(holder, cgroup_key(job_id)).remove()
            except Exception:  # noqa: BLE001 - best effort; a stale group is swept later
                log.warning("could not remove the cgroup of job %d", job_id)
        else:
            from . import procfs

            killed = procfs.kill_tagged("CORRAL_JOB_TAG", f"{self.tag}.{job_id}", self.proc)
            if killed:
                log.warning("job %d: killed %d process(es) its supervisor left behind", job_id, killed)

    def recovered(self) -> None:
        """After a restart: kill and remove the cgroups of jobs that no longer run here (a
        supervisor that died with the daemon, a launch cut short)."""
        self.sweep()

    def sweep(self) -> int:
        """Kill what is in, and remove, every job group of this home whose job is not
        running here; the number of groups removed."""
        holder = self.enforcement.holder if self.enforcement is not None else None
        if holder is None:
            return 0
        from .cgroups import JobCgroup, job_groups

        live = {cgroup_key(j) for j in self.watching()}
        removed = 0
        for key in job_groups(holder):
            if key in live or _job_of_key(key) is None:
                continue
            try:
                JobCgroup(holder, key).remove()
                removed += 1
            except Exception as exc:  # noqa: BLE001 - report, keep sweeping
                log.warning("could not remove the stale cgroup %s: %s", key, exc)
        if removed:
            log.warning("removed %d stale job cgroup(s)", removed)
        return removed

    # usage, logs, GPUs -------------------------------------------------------------------
    def sample(self, job_ids: Iterable[int]) -> dict[int, Reading]:
        """Each job's usage: from its cgroup when it has one (a handful of small files), else
        from one scan of ``/proc`` for everyone (its process tree). GPU jobs' process ids
        come from ``/proc`` either way (GPU memory is attributed by process)."""
        from . import procfs

        ids = [j for j in job_ids if j in self._watches or j in self._allocs]
        support = self.enforcement.support if self.enforcement is not None else None
        trees: dict[int, procfs.TreeUsage] = {}
        need = [j for j in ids if support is None or self._holds_gpus(j)]
        if need:
            roots = {}
            for j in need:
                root = self._roots.get(j)
                if root is None:
                    pids = self.pids(j)
                    if pids is not None:
                        root = self._roots[j] = pids["job"]
                if root is not None:
                    roots[j] = root
            if roots:
                trees = procfs.job_trees(roots, procfs.scan(self.proc))
        out: dict[int, Reading] = {}
        for j in ids:
            tree = trees.get(j)
            pids = tree.pids if tree is not None else ()
            if support is not None:
                from .cgroups import JobCgroup

                stats = JobCgroup(support, cgroup_key(j)).stats()
                out[j] = Reading(j, cpu_seconds=None if stats.cpu_usage_ns is None else stats.cpu_usage_ns / 1e9,
                                 memory=stats.memory, memory_peak=stats.memory_peak, processes=stats.pids,
                                 pids=pids, source="cgroup")
            elif tree is not None:
                out[j] = Reading(j, cpu_seconds=tree.cpu_seconds, memory=tree.rss, memory_peak=tree.rss,
                                 processes=len(tree.pids), pids=pids, source="procfs")
        return out

    def _holds_gpus(self, job_id: int) -> bool:
        alloc = self._allocs.get(job_id)
        return alloc is not None and alloc.gpu_count > 0

    def sample_gpus(self, node: str, indices: Iterable[int]) -> dict[int, "GpuSample"]:
        """This node's GPUs' utilization, memory and power (NVML, or the simulated probe)."""
        if self.probe is None or node != self.node.name:
            return {}
        return self.probe.sample(list(indices))

    def read_log(self, job_id: int, stream: str, offset: int = 0, size: int = 1 << 20) -> bytes | None:
        try:
            with open(self.log_path(job_id, stream), "rb") as f:
                f.seek(max(offset, 0))
                return f.read(size)
        except FileNotFoundError:
            return None

    def log_location(self, job_id: int, stream: str) -> str | None:
        return str(self.log_path(job_id, stream))

    def cap_logs(self, job_ids: list[int], limit: int) -> list[tuple[int, str, int]]:
        """The job writes its logs with O_APPEND, so after a truncation its next writes
        land at the new end: each check cuts what came beyond the limit and the marker.
        The disk holds at most the limit plus what a job writes between two checks."""
        cut = []
        marker = (f"\n[corral: log cut at {limit:,} bytes; what the job writes beyond that is "
                  f"dropped]\n").encode()
        for job_id in job_ids:
            for stream in ("stdout", "stderr"):
                path = self.log_path(job_id, stream)
                try:
                    size = os.stat(path).st_size
                    if size <= limit + len(marker):
                        continue
                    with open(path, "r+b") as f:
                        f.truncate(limit)
                        f.seek(limit)
                        f.write(marker)
                except OSError:
                    continue
                key = (job_id, stream)
                if key not in self._cut_logs:
                    self._cut_logs.add(key)
                    cut.append((job_id, stream, size))
        return cut

    def describe(self) -> dict:
        out = super().describe()
        e = self.enforcement
        out["enforcement"] = e.to_dict() if e is not None else {"mode": "none", "hard": False,
                                                                 "description": "limits not enforced"}
        out["pids_limit"] = self.pids_limit
        return out

    def processes(self, job_id: int) -> dict[str, int]:
        if job_id not in self._watches:
            return {}
        return self.pids(job_id) or {}

    def pids(self, job_id: int) -> dict[str, int] | None:
        """The supervisor's and the job's pid while it runs (from the state file)."""
        try:
            state = _any_state(os.path.join(self._root, str(job_id)))
        except OSError:
            return None
        if state is None or state.job is None or state.supervisor is None:
            return None
        return {"supervisor": state.supervisor, "job": state.job}

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
            status = self._lost(job_id)
        self._report(job_id, status)

    def watching(self) -> set[int]:
        return set(self._watches) | set(self._starting) | self._adopting

    def close(self) -> None:
        if self.probe is not None:
            self.probe.close()
            self.probe = None
        if self.enforcement is not None and self.enforcement.holder is not None:
            from .cgroups import remove_parent

            self.sweep()                               # groups no running job owns
            remove_parent(self.enforcement.holder)     # leaves the groups of jobs still running
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


def _held(path: Path) -> bool:
    """Whether a living supervisor holds the ``flock`` on ``path`` (FileNotFoundError
    when there is no such file). Closing our descriptor drops our lock if we took it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _earlier_state(jobdir: str, *, with_status: bool = True) -> "sup.State":
    """A job directory of the earlier layout (``pids``, ``status.json``) as a State."""
    state = sup.State()
    try:
        with open(os.path.join(jobdir, "pids")) as f:
            fields = f.read().split()
        state.supervisor, state.job = int(fields[0]), int(fields[1])
        state.start = None if fields[2] == "None" else int(fields[2])
    except (OSError, ValueError, IndexError):
        pass
    if with_status:
        try:
            with open(os.path.join(jobdir, "status.json"), "rb") as f:
                data = json.loads(f.read())
            if isinstance(data, dict):
                state.status = data
            else:
                state.damaged = True
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            state.damaged = True
    return state


def _any_state(jobdir: str) -> "sup.State | None":
    """The job's state file, or what a directory of the earlier layout holds."""
    state = sup.read_state(jobdir)
    if state is None and os.path.exists(os.path.join(jobdir, "lock")):
        return _earlier_state(jobdir)
    return state


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2:data.rindex(b")") + 3] == b"Z"
    except (OSError, ValueError):
        return False
