"""The Slurm engine: corral places, Slurm runs.

``engine: {type: slurm, partition: NAME}`` (``conf:`` a ``slurm.conf`` other than
``SLURM_CONF``'s or the default): the daemon keeps queues, quotas, fair share, backfill,
preemption and the reasons; it submits to Slurm only what it has placed, pinned to the
nodes it chose. Like Kueue in front of kube-scheduler: corral decides *whether*, *when*
and *where*.

* **Nodes** come from ``sinfo --json`` (:mod:`.inventory`), read every second: a node
  Slurm marks not responding or down is *lost* (its jobs end NodeLost -- cancelled in
  Slurm -- and are requeued by corral at once, not after Slurm's own delay), a drained
  one takes no new jobs, one that returns is scheduled again.
* **A launch** is one ``sbatch`` (:mod:`.batch`): ``--nodelist`` and ``--nodes`` as
  placed, one task per node with its CPUs, memory and ``--gres=gpu[:TYPE]:N``,
  ``--no-requeue``, the job named ``corral-<home>-<id>-<attempt>``. The batch script sets
  corral's environment (``CUDA_VISIBLE_DEVICES`` empty without GPUs) and, over several
  nodes, starts one replica per node with ``srun`` and the rank variables.
* **Slurm is shared**, so corral's view can be stale: a job Slurm holds pending shows
  Slurm's reason (``EnginePending: slurm: Resources``), and one not started within
  ``start_timeout`` is cancelled in Slurm and requeued by corral with backoff.
* **Observation** is batched: one ``squeue`` per poll for all of this user's jobs
  in the partition; exits decoded from the raw wait status; a job gone from slurmctld's
  memory is looked up in the job-completion file (``sacct -c``).
* **Stop**: ``scancel --signal=SIG --full`` (the job's stop signal, to every step), then
  ``scancel --signal=KILL`` after the grace period. Why corral stopped it is kept in a
  file beside the job's logs, so a restarted daemon still knows.
* **Crash safety**: a restarted daemon finds each launch by its name in ``squeue``
  (or the completion file) and adopts it with its exit; nothing is submitted twice.

One thread (``corral-slurm``) runs every Slurm command (they block), and hands what it
learns to the daemon's event loop with ``call_soon_threadsafe``. Jobs run as the user the
daemon runs as; their logs are files Slurm writes, so the corral home must be on a file
system the nodes share (on one host it is).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import signal as _signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ...job import Reason
from ..base import Capabilities, Executor, ExitCallback, ExitStatus, Reading, Running, StopReason
from ..environment import job_environment
from ..logheaders import attempt_header
from .batch import Seen, ended_name, job_name, observe, parse_name, sbatch_args, sbatch_env, script
from .client import SlurmClient, SlurmError
from .inventory import SlurmNode, partitions, read_nodes

if TYPE_CHECKING:
    import asyncio

    from ...capacity.node import Node
    from ...job import Allocation, Job

log = logging.getLogger("corral.slurm")

#: How often the jobs (``squeue``) and the nodes (``sinfo``) are read, seconds.
JOB_POLL = 0.25
#: How often the folder the batch scripts write their exit codes to is read, seconds.
END_POLL = 0.02
#: The longest corral makes an ended job's batch script wait for the hand-off (the
#: script itself gives up after a second).
HANDOFF_WAIT = 0.5
#: How often running jobs' usage is read (``sstat``), seconds.
USAGE_POLL = 5.0
#: sbatch calls at once.
SUBMITTERS = 8
NODE_POLL = 1.0
#: How often the FIFOs of launches no longer live are removed, seconds.
FIFO_SWEEP = 60.0

NoteCallback = Callable[[int, Reason, str], None]


def namespace_for(home: str) -> str:
    """The prefix of every Slurm job name one corral home gives."""
    return "corral-" + hashlib.sha256(os.path.realpath(home).encode()).hexdigest()[:10]


@dataclass
class _Launch:
    job: "Job"
    allocation: "Allocation"
    attempt: int
    name: str
    submitted: float = 0.0                 # monotonic
    slurm_id: int = 0
    seen: Seen | None = None
    #: The end the batch script wrote (read by another thread than ``seen``).
    ended: Seen | None = None
    noted: str = ""
    stopped_for: StopReason | None = None
    stop_message: str = ""
    kill_at: float = 0.0
    node_lost: str = ""
    launch_error: str = ""
    start_timeout: bool = False
    reported: bool = False
    #: Polls in a row the job was missing from squeue (it may have aged out).
    missing: int = 0


class SlurmExecutor(Executor):
    name = "slurm"
    capabilities = Capabilities(logs=True, usage=True, cgroups=False, stop_signals=True, device_pinning=False,
                                gangs=True, inventory=True)

    def __init__(self, partition: str, on_exit: ExitCallback, loop: "asyncio.AbstractEventLoop", *, home: str,
                 conf: str = "", kill_grace: float = 10.0, start_timeout: float = 60.0,
                 job_poll: float = JOB_POLL, node_poll: float = NODE_POLL, client: SlurmClient | None = None):
        self.partition = partition
        self.conf = conf or os.environ.get("SLURM_CONF", "")
        self.client = client or SlurmClient(self.conf, partition)
        self.namespace = namespace_for(home)
        self.root = Path(home) / "slurm"
        self.root.mkdir(parents=True, exist_ok=True)
        self.ended = self.root / "ended"
        self.ended.mkdir(exist_ok=True)
        self.wake = self.root / "wake"              # the hand-off's FIFOs, one per live launch
        self.wake.mkdir(exist_ok=True)
        self._on_exit = on_exit
        self._on_nodes: Callable[[], None] | None = None
        self._on_note: NoteCallback | None = None
        self._loop = loop
        self.kill_grace = kill_grace
        self.start_timeout = start_timeout
        self.job_poll = job_poll
        self.node_poll = node_poll
        self._lock = threading.RLock()
        self._nodes: dict[str, SlurmNode] = {}
        self._lost: set[str] = set()
        self._launches: dict[int, _Launch] = {}
        self._commands: "queue.Queue[Callable[[], None]]" = queue.Queue()
        # sbatch calls run side by side (each one is a process and a round trip to slurmctld).
        from concurrent.futures import ThreadPoolExecutor

        self._submits = ThreadPoolExecutor(max_workers=SUBMITTERS, thread_name_prefix="corral-sbatch")
        self._closed = False
        self._adopting = True
        self._seen: dict[str, Seen] = {}              # name -> latest squeue entry
        # The hand-off: an ended job's batch script waits (a moment) for its ``.go`` file,
        # written once the launches the daemon decided on its end have been submitted.
        self._handoff: dict[str, float] = {}          # ended name -> latest moment for its .go
        self._delivered: list[str] = []             # ... the loop has seen
        self._inflight: set[Any] = set()            # sbatch calls not yet answered
        self._usage: dict[int, Reading] = {}          # job id -> its latest sstat reading
        data = self.client.sinfo()
        self._read_nodes(data, initial=True)
        if not self._nodes:
            known = ", ".join(partitions(data)) or "none"
            raise SlurmError(f"partition {partition!r} has no nodes (partitions: {known})")
        self._read_jobs()
        self._thread = threading.Thread(target=self._run, name="corral-slurm", daemon=True)
        self._thread.start()
        # The exit codes the batch scripts write are read apart from the Slurm commands,
        # which take a while under load (a file's end is seen within END_POLL).
        self._ends_thread = threading.Thread(target=self._watch_ends, name="corral-slurm-ends", daemon=True)
        self._ends_thread.start()
        self._usage_thread = threading.Thread(target=self._watch_usage, name="corral-slurm-usage", daemon=True)
        self._usage_thread.start()

    # -- nodes ----------------------------------------------------------------------------------
    def nodes(self) -> list["Node"]:
        with self._lock:
            return [n.node for name, n in sorted(self._nodes.items()) if name not in self._lost]

    def known_nodes(self) -> list["Node"]:
        with self._lock:
            return [n.node for _, n in sorted(self._nodes.items())]

    def node_states(self) -> dict[str, str]:
        with self._lock:
            return {name: ("Lost" if name in self._lost else n.state) for name, n in sorted(self._nodes.items())}

    def watch_nodes(self, callback: Callable[[], None]) -> None:
        self._on_nodes = callback

    def watch_notes(self, callback: NoteCallback) -> None:
        self._on_note = callback

    def _read_nodes(self, data: dict[str, Any], initial: bool = False) -> None:
        read = {n.name: n for n in read_nodes(data, self.partition)}
        changed, lost_now = False, []
        with self._lock:
            for name, sn in read.items():
                before = self._nodes.get(name)
                if before is None or before.state != sn.state or before.node != sn.node:
                    changed = True
                if sn.state == "Lost" and name not in self._lost:
                    lost_now.append((name, sn.slurm_state))
                elif sn.state != "Lost" and name in self._lost:
                    self._lost.discard(name)                 # back
                self._nodes[name] = sn
            for name in [n for n in self._nodes if n not in read]:
                del self._nodes[name]
                changed = True
                if name not in self._lost:
                    lost_now.append((name, "removed from the partition"))
        for name, why in lost_now:
            self._node_lost(name, why)
        if changed and not initial:
            self._notify(self._on_nodes)

    def _node_lost(self, name: str, why: str) -> None:
        """Every job with a piece on ``name`` ends NodeLost now; it is cancelled in Slurm
        so that nothing of it runs on when the node returns."""
        with self._lock:
            self._lost.add(name)
            hit = [ln for ln in self._launches.values() if name in ln.allocation.nodes and not ln.reported]
        log.warning("node %s lost (slurm: %s): %d job(s) on it", name, why, len(hit))
        for ln in hit:
            ln.node_lost = name
            self._report(ln)
        self._notify(self._on_nodes)
        for ln in hit:              # after the ends: scancel may wait on the lost node's slurmd
            self._cancel(ln)

    def _notify(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is not None and not self._closed:
            self._loop.call_soon_threadsafe(callback, *args)

    # -- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        next_jobs = next_nodes = 0.0
        next_sweep = time.monotonic() + FIFO_SWEEP
        while not self._closed:
            now = time.monotonic()
            if now >= next_sweep and not self._adopting:
                next_sweep = now + FIFO_SWEEP
                self._guard(self._sweep_fifos, "removing the hand-off's stale FIFOs")
            if now >= next_nodes:
                next_nodes = now + self.node_poll
                self._guard(lambda: self._read_nodes(self.client.sinfo()), "reading Slurm's nodes")
            if now >= next_jobs:
                next_jobs = now + self.job_poll
                self._guard(self._read_jobs, "reading Slurm's jobs")
                self._guard(self._deadlines, "checking deadlines")
            try:
                command = self._commands.get(timeout=max(0.0, min(next_jobs, next_nodes) - time.monotonic()))
            except queue.Empty:
                continue
            self._guard(command, "a Slurm command")

    def _watch_usage(self) -> None:
        """``sstat`` asks the nodes' slurmd, so a dead node holds it until Slurm's message
        timeout: apart from the thread that reads the nodes, or a lost node would be
        noticed that much later."""
        while not self._closed:
            self._guard(self._read_usage, "reading usage (sstat)")
            deadline = time.monotonic() + USAGE_POLL
            while not self._closed and time.monotonic() < deadline:
                time.sleep(0.1)

    def _watch_ends(self) -> None:
        while not self._closed:
            self._guard(self._read_ends, "reading the ended jobs' exit codes")
            time.sleep(END_POLL)

    @staticmethod
    def _guard(fn: Callable[[], None], what: str) -> None:
        try:
            fn()
        except SlurmError as exc:
            log.warning("%s failed: %s", what, exc)
        except Exception:  # noqa: BLE001 - keep watching
            log.exception("%s failed", what)

    def _ours(self, entries: list[dict[str, Any]], into: dict[str, Seen]) -> dict[str, Seen]:
        for entry in entries:
            s = observe(entry)
            if parse_name(self.namespace, s.name) is None:
                continue
            old = into.get(s.name)
            if old is None or s.slurm_id > old.slurm_id:
                into[s.name] = s
        return into

    def _read_jobs(self) -> None:
        """One squeue of the live jobs; the tracked ones it no longer lists (they ended)
        are asked for by id."""
        seen = self._ours(self.client.squeue(), {})
        with self._lock:
            launches = [ln for ln in self._launches.values() if not ln.reported and ln.slurm_id]
        gone = [ln.slurm_id for ln in launches if ln.name not in seen]
        if gone:
            self._ours(self.client.squeue(gone), seen)
        with self._lock:
            self._seen = seen
        for ln in launches:
            s = seen.get(ln.name)
            if s is None or s.slurm_id != ln.slurm_id:
                ln.missing += 1
                if ln.missing >= 3:                 # aged out of slurmctld: the completion file
                    self._finish_from_completions(ln)
                continue
            ln.missing = 0
            ln.seen = s
            if s.terminal:
                self._report(ln)
            elif s.pending:
                why = s.reason if s.reason not in ("", "None") else "Pending, not yet scheduled"
                self._note(ln, Reason.ENGINE_PENDING, f"slurm: {why} (Slurm job {s.slurm_id})")
            else:
                self._note(ln, Reason.LAUNCHED, f"running in Slurm as job {s.slurm_id} on {s.nodes}")

    def _read_ends(self) -> None:
        """The exit codes the batch scripts wrote as their commands ended: such a job ends
        now, before Slurm has finished it (its next ``squeue`` would say so a poll later).
        A code above 128 (the command was killed by a signal, or Slurm ran out of memory
        for it) waits for Slurm's own record, which says which."""
        try:
            names = [e.name for e in os.scandir(self.ended) if not e.name.startswith(".")]
        except OSError:
            return
        self._handoff_overdue(names)
        for name in names:
            job_s, _, attempt_s = name.partition(".")
            if not (job_s.isdigit() and attempt_s.isdigit()):
                continue
            with self._lock:
                ln = self._launches.get(int(job_s))
            if ln is None or ln.attempt != int(attempt_s):
                if not self._adopting:               # a launch that ended and was counted before
                    self._unlink_end(name)
                continue
            if ln.reported or not ln.slurm_id:
                continue
            code, ended_at = self._end_code(name)
            if code is None or code > 128:
                continue
            ln.ended = self._ended_seen(ln, code, ended_at)
            with self._lock:
                self._handoff[name] = time.monotonic() + HANDOFF_WAIT
            self._report(ln)
            # Runs on the loop after the end is handed over there.
            self._notify(self._delivered.append, name)

    @staticmethod
    def _ended_seen(ln: _Launch, code: int, ended_at: float) -> Seen:
        return Seen(slurm_id=ln.slurm_id, name=ln.name, state="COMPLETED" if code == 0 else "FAILED", reason="",
                    nodes=",".join(ln.allocation.nodes), exit_code=code, signal=None, start_time=0.0,
                    end_time=ended_at)

    # -- the hand-off ------------------------------------------------------------------------------
    # Slurm schedules a submitted job on its background pass, about once a second, but a
    # job whose resources free up at the end of another job right away: so an ended job's
    # batch script waits until corral has submitted what it placed on the freed resources,
    # and Slurm starts those on the ended job's completion.
    def after_cycle(self) -> None:
        """The daemon's pass after some ends is over: once the sbatch calls in flight have
        been answered (what it placed on the freed resources among them; a follower may
        land on another node than the ended job's, when it took another job's place),
        the ended jobs' scripts may exit."""
        if not self._delivered:
            return
        names, self._delivered = self._delivered, []
        with self._lock:
            waiting = [f for f in self._inflight if not f.done()]
        if not waiting:
            self._release(names)
            return
        left = [len(waiting)]
        lock = threading.Lock()

        def one_done(_f: Any) -> None:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                self._release(names)

        for f in waiting:
            f.add_done_callback(one_done)

    def _release(self, names: list[str]) -> None:
        for name in names:
            with self._lock:
                if self._handoff.pop(name, None) is None:
                    continue                      # released already (overdue)
            if self._wake(name):
                continue                          # woken through its FIFO: no .go needed
            try:
                (self.ended / f"{name}.go").touch()
            except OSError:
                pass                              # the script stops waiting by itself

    def _make_fifo(self, name: str) -> None:
        """The FIFO an ended job's script waits on (see :func:`.batch.script`)."""
        try:
            os.mkfifo(self.wake / name, 0o600)
        except FileExistsError:
            pass                                  # made for this attempt before a restart
        except OSError as exc:                    # a file system without FIFOs: the .go file does
            log.debug("no FIFO for %s: %s", name, exc)

    def _wake(self, name: str) -> bool:
        """Wake the script waiting on its FIFO; False when none holds it open on this host
        (a FIFO opened for writing without a reader fails: the script is elsewhere)."""
        path = self.wake / name
        woken = False
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            try:
                woken = os.write(fd, b"go\n") > 0
            finally:
                os.close(fd)
        except OSError:
            pass                                  # no FIFO, or no script on it here
        self._unlink(path)
        return woken

    @staticmethod
    def _unlink(path: Path) -> None:
        try:
            path.unlink()
        except OSError:
            pass                                  # already gone

    def _handoff_overdue(self, names: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            overdue = [n for n, at in self._handoff.items() if now >= at]
        self._release(overdue)
        for name in names:                        # .go files a script stopped waiting for
            if name.endswith(".go") and name[:-3] not in self._handoff:
                try:
                    path = self.ended / name
                    if time.time() - path.stat().st_mtime > 5:
                        path.unlink()
                except OSError:
                    pass

    def _sweep_fifos(self) -> None:
        """The FIFOs of launches no longer live (ended without the hand-off, or before a
        restart): looked at once a minute, apart from the exit codes' folder, which is
        read every END_POLL and holds only what just ended."""
        try:
            names = [e.name for e in os.scandir(self.wake)]
        except OSError:
            return
        with self._lock:
            live = {ended_name(ln.job.id, ln.attempt) for ln in self._launches.values() if not ln.reported}
            live |= set(self._handoff)
        for name in names:
            if name not in live:
                self._unlink(self.wake / name)

    def _end_code(self, name: str) -> tuple[int | None, float]:
        try:
            path = self.ended / name
            text = path.read_text()
            if not text.endswith("\n"):                 # not written yet
                return None, 0.0
            text = text.strip()
            return (int(text) if text.isdigit() else None), path.stat().st_mtime
        except OSError:
            return None, 0.0

    def _unlink_end(self, name: str) -> None:
        self._unlink(self.ended / name)

    def _note(self, ln: _Launch, reason: Reason, message: str) -> None:
        if ln.noted != message:
            ln.noted = message
            self._notify(self._on_note, ln.job.id, reason, message)

    def _deadlines(self) -> None:
        now = time.monotonic()
        with self._lock:
            live = [ln for ln in self._launches.values() if not ln.reported]
        for ln in live:
            if ln.kill_at and now >= ln.kill_at:
                ln.kill_at = 0.0
                self._scancel(ln, "KILL")
            started = ln.seen is not None and not ln.seen.pending
            if (not started and not ln.stopped_for and ln.slurm_id and self.start_timeout
                    and now - ln.submitted > self.start_timeout):
                ln.start_timeout = True
                log.warning("job %d: Slurm did not start it within %.0f s: cancelled there", ln.job.id,
                            self.start_timeout)
                self._cancel(ln)
                self._report(ln)

    def _finish_from_completions(self, ln: _Launch) -> None:
        rows = [r for r in self.client.completed(ln.name) if int(r["jobid"]) == ln.slurm_id]
        if rows:
            ln.seen = _from_completion(ln.name, rows[-1])
            self._report(ln)
        elif ln.missing >= 20:
            ln.launch_error = f"Slurm job {ln.slurm_id} vanished without a recorded end"
            self._report(ln)

    # -- launching --------------------------------------------------------------------------------
    def launch(self, job: "Job", allocation: "Allocation") -> None:
        attempt = max(1, job.attempts)
        ln = _Launch(job=job, allocation=allocation, attempt=attempt, name=job_name(self.namespace, job.id, attempt))
        with self._lock:
            self._launches[job.id] = ln
            missing = [n for n in allocation.nodes if n not in self._nodes or n in self._lost]
        if missing:
            ln.launch_error = f"launch failed: node {', '.join(missing)} is not available in Slurm"
            self._report(ln)
            return
        future = self._submits.submit(self._submit_or_fail, ln)
        with self._lock:
            self._inflight.add(future)
        future.add_done_callback(self._submitted)

    def _submitted(self, future: Any) -> None:
        with self._lock:
            self._inflight.discard(future)

    def _submit_or_fail(self, ln: _Launch) -> None:
        try:
            self._submit(ln)
        except Exception as exc:  # noqa: BLE001 - an unwritable home, a bad script: the launch fails
            log.exception("job %d: launch failed", ln.job.id)
            ln.launch_error = f"launch failed: {type(exc).__name__}: {exc}"
            self._report(ln)

    def _dir(self, job_id: int) -> Path:
        return self.root / "jobs" / str(job_id)

    def _submit(self, ln: _Launch) -> None:
        if ln.reported:
            return
        job = ln.job
        d = self._dir(job.id)
        d.mkdir(parents=True, exist_ok=True)
        with self._lock:
            nodes = {name: sn.node for name, sn in self._nodes.items()}
        piece = ln.allocation.pieces[0]
        env = job_environment(job, piece, ())
        env["CORRAL_ATTEMPT"] = str(ln.attempt)
        if ln.attempt > 1:
            header = attempt_header(ln.attempt, time.time(), ",".join(ln.allocation.nodes))
            for stream in ("stdout", "stderr"):
                with open(d / stream, "ab") as f:
                    f.write(header)
        self._unlink_end(ended_name(job.id, ln.attempt))      # from a launch before a lost store
        self._make_fifo(ended_name(job.id, ln.attempt))
        body = script(job, ln.allocation, nodes, ln.attempt, ended=str(self.ended / ended_name(job.id, ln.attempt)),
                      wake=str(self.wake / ended_name(job.id, ln.attempt)))
        args = sbatch_args(job, ln.allocation, nodes, name=ln.name, partition=self.partition,
                           stdout=str(d / "stdout"), stderr=str(d / "stderr"),
                           comment=f"corral job {job.id} attempt {ln.attempt}", kill_grace=self.kill_grace)
        ln.submitted = time.monotonic()
        try:
            slurm_id = self.client.sbatch(args, body, sbatch_env(ln.allocation, env))
        except SlurmError as exc:
            ln.launch_error = f"launch failed: sbatch: {exc}"
            self._report(ln)
            return
        with self._lock:
            ln.slurm_id = slurm_id
            stopped = ln.stopped_for is not None
        if stopped:                             # stopped while sbatch ran
            self._cancel(ln)

    # -- stop, signal -----------------------------------------------------------------------------
    def stop(self, job_id: int, why: StopReason, message: str = "") -> bool:
        with self._lock:
            ln = self._launches.get(job_id)
            if ln is None or ln.reported:
                return False
            if ln.stopped_for is None:
                ln.stopped_for, ln.stop_message = why, message
        self._stop_file(ln).write_text(json.dumps({"why": why.value, "message": message}))
        spec = ln.job.spec
        sig = (spec.stop_signal or "TERM").removeprefix("SIG")
        grace = float(spec.kill_grace if spec.kill_grace is not None else self.kill_grace)

        def send() -> None:
            with self._lock:
                if not ln.slurm_id:
                    return                   # not submitted yet: _submit cancels it
            # The last poll may be a moment old: ask Slurm whether it runs now.
            try:
                fresh = self._ours(self.client.squeue([ln.slurm_id]), {}).get(ln.name)
            except SlurmError:
                fresh = None                 # Slurm slow to answer: go by the last poll
            if fresh is not None and fresh.slurm_id == ln.slurm_id:
                ln.seen = fresh
            if ln.seen is None or ln.seen.pending:
                self._cancel(ln)             # nothing runs yet: cancelled in Slurm, ends at once
                return
            self._scancel(ln, sig)
            ln.kill_at = time.monotonic() + grace

        self._commands.put(send)
        return True

    def _stop_file(self, ln: _Launch) -> Path:
        d = self._dir(ln.job.id)
        d.mkdir(parents=True, exist_ok=True)
        return d / f"stop.{ln.attempt}"

    def signal(self, job_id: int, sig: int) -> bool:
        with self._lock:
            ln = self._launches.get(job_id)
        if ln is None or ln.reported or not ln.slurm_id:
            return False
        name = _signal.Signals(sig).name.removeprefix("SIG")
        self._commands.put(lambda: self._scancel(ln, name))
        return True

    def _scancel(self, ln: _Launch, sig: str | None) -> None:
        try:
            self.client.scancel(ln.slurm_id, sig)
        except SlurmError as exc:
            log.warning("scancel of Slurm job %d failed: %s", ln.slurm_id, exc)

    def _cancel(self, ln: _Launch) -> None:
        if ln.slurm_id:
            self._scancel(ln, None)

    # -- ends -------------------------------------------------------------------------------------
    def _report(self, ln: _Launch) -> None:
        with self._lock:
            if ln.reported:
                return
            ln.reported = True
            self._launches.pop(ln.job.id, None)
            name = ended_name(ln.job.id, ln.attempt)
            handing_off = name in self._handoff
        self._unlink_end(name)
        if not handing_off:                       # else the hand-off writes to it, then removes it
            self._unlink(self.wake / name)
        status = self._status_of(ln)
        self._notify(self._on_exit, ln.job.id, status)

    def _status_of(self, ln: _Launch) -> ExitStatus:
        now = time.time()
        if ln.node_lost:
            return ExitStatus(ended_at=now, node_lost=ln.node_lost,
                              stop_message=f"node {ln.node_lost} was lost (Slurm: "
                                           f"{self._nodes[ln.node_lost].slurm_state if ln.node_lost in self._nodes else 'gone'})")
        if ln.start_timeout:
            why = ln.seen.reason if ln.seen is not None and ln.seen.reason not in ("", "None") else "not started"
            return ExitStatus(ended_at=now, start_timeout=True,
                              stop_message=f"Slurm did not start it within {self.start_timeout:g} s (slurm: {why})")
        if ln.launch_error:
            return ExitStatus(ended_at=now, launch_error=ln.launch_error)
        s = ln.ended or ln.seen
        ended = (s.end_time if s is not None and s.end_time else now)
        if ln.stopped_for is not None:
            return ExitStatus(ended_at=ended, exit_code=s.exit_code if s else None, signal=s.signal if s else None,
                              stopped_for=ln.stopped_for, stop_message=ln.stop_message)
        if s is None:
            return ExitStatus(ended_at=ended, lost=True, stop_message="no end recorded by Slurm")
        if s.state == "NODE_FAIL":
            return ExitStatus(ended_at=ended, node_lost=s.nodes or "?", stop_message=f"slurm: NODE_FAIL on {s.nodes}")
        if s.state == "OUT_OF_MEMORY":
            return ExitStatus(ended_at=ended, exit_code=s.exit_code, signal=s.signal or 9, oom_kills=1)
        if s.state in ("CANCELLED", "TIMEOUT", "PREEMPTED", "DEADLINE") and s.exit_code == 0 and s.signal is None:
            return ExitStatus(ended_at=ended, signal=int(_signal.SIGKILL),
                              stop_message=f"slurm: {s.state.lower()} outside corral")
        return ExitStatus(ended_at=ended, exit_code=s.exit_code, signal=s.signal)

    # -- after a restart ---------------------------------------------------------------------------
    def adopt(self, job: "Job") -> Running | ExitStatus | None:
        alloc = job.allocation
        if alloc is None:
            return None
        attempt = max(1, job.attempts)
        ln = _Launch(job=job, allocation=alloc, attempt=attempt, name=job_name(self.namespace, job.id, attempt),
                     submitted=time.monotonic())
        stop = self._stop_file(ln)
        if stop.exists():
            try:
                data = json.loads(stop.read_text())
                ln.stopped_for, ln.stop_message = StopReason(data["why"]), str(data.get("message", ""))
            except (OSError, ValueError, KeyError):
                ln.stopped_for = StopReason.CANCEL
        with self._lock:
            s = self._seen.get(ln.name)
        if s is None:                            # ended meanwhile, or never submitted
            s = self._ours(self.client.squeue_named(ln.name), {}).get(ln.name)
        if s is None:
            rows = self.client.completed(ln.name)
            if not rows:
                return None                      # never reached Slurm: the daemon launches it
            s = _from_completion(ln.name, rows[-1])
        ln.slurm_id, ln.seen = s.slurm_id, s
        lost = [n for n in alloc.nodes if n in self._lost or n not in self._nodes]
        name = ended_name(job.id, attempt)
        code, ended_at = self._end_code(name)
        if not s.terminal and code is not None and code <= 128:
            # Its command ended while the daemon was down; its script waits out the hand-off.
            ln.ended = self._ended_seen(ln, code, ended_at)
            ln.reported = True
            (self.ended / f"{name}.go").touch()
            self._unlink_end(name)
            return self._status_of(ln)
        if s.terminal:
            ln.reported = True
            self._unlink_end(name)
            return self._status_of(ln)
        with self._lock:
            self._launches[job.id] = ln
        if lost:
            ln.node_lost = lost[0]
            self._commands.put(lambda: self._cancel(ln))
            with self._lock:
                ln.reported = True
                self._launches.pop(job.id, None)
            return ExitStatus(ended_at=time.time(), node_lost=lost[0],
                              stop_message=f"node {lost[0]} was lost while the daemon was down")
        if ln.stopped_for is not None:           # it was being stopped: finish that
            self._commands.put(lambda: (self._scancel(ln, "KILL"), self._cancel(ln)))
        return Running(job.id, f"slurm:{s.slurm_id}")

    def recovered(self) -> None:
        """Adoption is over: a Slurm job of this home that corral does not count (its
        record ended, a launch from before a lost store) is cancelled."""
        with self._lock:
            self._adopting = False
            counted = {ln.slurm_id for ln in self._launches.values()}
            stray = [s for s in self._seen.values() if not s.terminal and s.slurm_id not in counted]
        for s in stray:
            log.warning("cancelling Slurm job %d (%s): no running corral job owns it", s.slurm_id, s.name)
            self._commands.put(lambda sid=s.slurm_id: self._guard(lambda: self.client.scancel(sid), "scancel"))

    # -- logs ---------------------------------------------------------------------------------------
    def read_log(self, job_id: int, stream: str, offset: int = 0, size: int = 1 << 20) -> bytes | None:
        try:
            with open(self._dir(job_id) / stream, "rb") as f:
                f.seek(offset)
                return f.read(size)
        except OSError:
            return None

    def log_location(self, job_id: int, stream: str) -> str | None:
        path = self._dir(job_id) / stream
        return str(path) if path.exists() else None

    def remove(self, job_id: int) -> None:
        import shutil

        shutil.rmtree(self._dir(job_id), ignore_errors=True)

    def processes(self, job_id: int) -> dict[str, int]:
        with self._lock:
            ln = self._launches.get(job_id)
        return {"slurm_job": ln.slurm_id} if ln is not None and ln.slurm_id else {}

    def describe(self) -> dict:
        return {"engine": self.name, "partition": self.partition, "conf": self.conf or "(Slurm's default)",
                "namespace": self.namespace, "capabilities": self.capabilities.to_dict(),
                "nodes": {name: sn.slurm_state for name, sn in sorted(self._nodes.items())}}

    def close(self) -> None:
        """Stop watching; running jobs keep running in Slurm (a restarted daemon adopts them)."""
        self._closed = True
        self._commands.put(lambda: None)
        self._thread.join(timeout=10)
        self._ends_thread.join(timeout=5)
        self._usage_thread.join(timeout=1)          # an sstat may wait on a dead node: it is a daemon thread
        self._submits.shutdown(wait=True)

    def sample(self, job_ids: Iterable[int]) -> dict[int, Reading]:
        """The latest usage of these running jobs, as the watcher last read it from
        ``sstat`` (never a Slurm call on the daemon's loop)."""
        with self._lock:
            return {j: self._usage[j] for j in job_ids if j in self._usage}

    def _read_usage(self) -> None:
        from .usage import parse_sstat

        with self._lock:
            ids = {ln.slurm_id: ln.job.id for ln in self._launches.values()
                   if ln.slurm_id and not ln.reported and ln.seen is not None and ln.seen.state == "RUNNING"
                   and not ln.node_lost and not self._lost.intersection(ln.allocation.nodes)}
        got = parse_sstat(self.client.sstat(sorted(ids))) if ids else {}
        usage = {ids[sid]: Reading(ids[sid], cpu_seconds=float(u["cpu_seconds"]), memory=int(u["memory"]),
                                   processes=int(u["processes"]) or None, source="slurm")
                 for sid, u in got.items() if sid in ids}
        with self._lock:
            self._usage = usage


def _from_completion(name: str, row: dict[str, str]) -> Seen:
    """A job-completion row (``sacct -c``) as a finished :class:`Seen`."""
    code_s, _, sig_s = row.get("exitcode", "").partition(":")
    code = int(code_s) if code_s.isdigit() else None
    sig = int(sig_s) if sig_s.isdigit() and int(sig_s) else None
    return Seen(slurm_id=int(row["jobid"]), name=name, state=row.get("state", "COMPLETED"), reason="",
                nodes=row.get("nodes", ""), exit_code=None if sig else code, signal=sig, start_time=0.0,
                end_time=time.time())


__all__ = ["SlurmExecutor", "namespace_for"]
