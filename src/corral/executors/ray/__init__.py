"""The Ray engine: corral places, Ray runs.

``engine: {type: ray, address: HOST:PORT}``: the daemon connects to a running Ray
cluster as a driver and keeps queues, quotas, fair share, backfill, preemption and the
reasons; Ray runs the processes where corral put them. Like Kueue in front of
kube-scheduler, corral decides *whether*, *when* and *where*; it never lets Ray choose.

* **Nodes** come from Ray's node table (:mod:`.inventory`), polled every second: nodes
  that join are added, a node Ray declares dead -- or whose launcher's open call fails,
  which is faster -- is *lost*: its jobs end ``NodeLost`` and are requeued when they
  allow it, the node leaves the schedule, and whatever still runs there is killed if the
  node comes back.
* **A job's resources are held in Ray** by a detached placement group with one bundle
  per piece, each pinned to its node by Ray's node-id label: Ray's view of what is used
  is corral's, and nothing else Ray runs can take those resources.
* **The processes** are started by a per-node launcher (:mod:`.launcher`), a detached
  actor pinned to its node with hard affinity that forks the job's command with the
  environment corral gives every job (``CUDA_VISIBLE_DEVICES`` exactly the GPUs corral
  chose, empty without GPUs) and, for a job over several nodes, each replica's rank
  variables (``CORRAL_NODE_RANK``, ``CORRAL_NUM_NODES``, ``MASTER_ADDR``, ``MASTER_PORT``
  free on rank 0's node, ``WORLD_SIZE``, ``RANK``).
* **A job over several nodes** succeeds when every replica does; the first replica to
  fail ends it with its exit code and the others are stopped. A placement group that is
  not ready within ``start_timeout`` is removed and the job requeued with backoff, so
  no half-started gang holds GPUs.
* **Crash safety.** Placement groups and launchers are detached, named after the
  corral home and the launch (job id, attempt, rank): a daemon killed while jobs run
  finds them again when it restarts (:meth:`RayExecutor.adopt`), with the exits that
  happened meanwhile, and starts nothing twice.

One thread (``corral-ray``) does the waiting: it holds one open ``events`` call per
launcher, the placement groups being readied, and polls the node table; what it learns
goes to the daemon's event loop with ``call_soon_threadsafe``. Jobs run as the user Ray
runs as (the cluster's, as with Ray's own Jobs API).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal as _signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..base import Capabilities, Executor, ExitCallback, ExitStatus, Reading, Running, StopReason
from ..environment import job_environment
from .inventory import RayNode, bundle, read_nodes

if TYPE_CHECKING:
    import asyncio

    from ...capacity.node import Node
    from ...job import Allocation, Job

log = logging.getLogger("corral.ray")

#: How long the launcher's ``events`` call waits for an exit before returning.
EVENTS_WAIT = 5.0
#: How long the watcher waits on Ray before it looks for new calls to watch: what a
#: launch waits, at most, before its placement group's readiness is noticed.
WAIT_SLICE = 0.02


def namespace_for(home: str) -> str:
    """Ray namespace of one corral home: its actors and placement groups, nobody else's."""
    return "corral-" + hashlib.sha256(os.path.realpath(home).encode()).hexdigest()[:12]


#: Where each node's launcher keeps its jobs' logs and exits, by namespace (a path on the nodes).
ROOT_BASE = "/tmp/corral-ray"


def launch_root(home: str) -> str:
    """The launchers' root on every node for one corral home."""
    return f"{ROOT_BASE}/{namespace_for(home)}"


def tag_of(job_id: int, attempt: int, rank: int) -> str:
    return f"{job_id}-{attempt}-{rank}"


@dataclass
class _Launch:
    """One launch of a job: its pieces, placement group and replicas' state."""

    job: "Job"
    allocation: "Allocation"
    attempt: int
    pg: Any = None
    pg_name: str = ""
    #: rank -> how it ended (the launcher's status dict); running ranks are absent.
    ended: dict[int, dict] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)
    stopped_for: StopReason | None = None
    stop_message: str = ""
    #: The first replica that failed (its status), which the job's end reports.
    failed: dict | None = None
    node_lost: str = ""
    launch_error: str = ""
    start_timeout: bool = False
    reported: bool = False
    deadline: float = 0.0
    master_port: int | None = None

    @property
    def ranks(self) -> int:
        return len(self.allocation.pieces)

    def tag(self, rank: int) -> str:
        return tag_of(self.job.id, self.attempt, rank)


class RayExecutor(Executor):
    name = "ray"
    capabilities = Capabilities(logs=True, usage=True, cgroups=False, stop_signals=True, device_pinning=True,
                                gangs=True, inventory=True)

    def __init__(self, address: str, on_exit: ExitCallback, loop: "asyncio.AbstractEventLoop", *, home: str,
                 kill_grace: float = 10.0, start_timeout: float = 60.0, node_poll: float = 1.0,
                 root: str | None = None, ship_code: bool = False, connect_timeout: float = 60.0,
                 on_nodes: Callable[[], None] | None = None):
        import ray

        self._ray = ray
        self.address = address
        self.namespace = namespace_for(home)
        self._on_exit = on_exit
        self._loop = loop
        self._on_nodes = on_nodes
        self.kill_grace = kill_grace
        self.start_timeout = start_timeout
        self.node_poll = node_poll
        # Where each node's launcher keeps its jobs' logs and exits (a path on the nodes).
        self.root = root or launch_root(home)
        self._runtime_env = None
        if ship_code:
            import corral

            self._runtime_env = {"py_modules": [str(Path(corral.__file__).parent)]}
        if not ray.is_initialized():
            ray.init(address=address, namespace=self.namespace, logging_level="ERROR", log_to_driver=False,
                     include_dashboard=False, _skip_env_hook=True)
        self._lock = threading.RLock()
        self._nodes: dict[str, RayNode] = {}
        self._names: dict[str, str] = {}               # ray node id -> corral name
        self._lost: set[str] = set()                   # names Ray or a failed launcher call said are gone
        self._launchers: dict[str, Any] = {}           # name -> actor handle
        self._launcher_node: dict[str, str] = {}       # name -> ray id the launcher was made for
        self._cursors: dict[str, int] = {}
        self._launches: dict[int, _Launch] = {}
        self._by_tag: dict[str, tuple[int, int]] = {}  # tag -> (job id, rank)
        self._waits: dict[Any, tuple[Callable[[Any], None], Callable[[BaseException], None]]] = {}
        #: job id -> (node, tag) of rank 0's log, for jobs that ended while watched here.
        self._logs: dict[int, tuple[str, str]] = {}
        self._closed = False
        #: node -> tags an earlier launcher left running there, until adoption is over
        #: (:meth:`recovered`): then what corral does not count is killed.
        self._found: dict[str, list[str]] = {}
        self._adopting = True
        self._refresh_nodes(initial=True)
        self._bootstrap(connect_timeout)
        self._thread = threading.Thread(target=self._run, name="corral-ray", daemon=True)
        self._thread.start()

    def _bootstrap(self, timeout: float) -> None:
        """A launcher on every node, and where each one's exit log stands -- before any
        job is adopted, so that no exit between a job's status and its stream is missed."""
        names = [n.name for n in self.nodes()]
        handles = {}
        for name in names:
            try:
                handles[name] = self._launcher(name)
            except LookupError:
                continue
        infos = {name: (h.info.remote(), h.events.remote(None, 0.0)) for name, h in handles.items()}
        for name, (info_ref, events_ref) in infos.items():
            try:
                info = self._get(info_ref, timeout=timeout)
                cursor, _ = self._get(events_ref, timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - that node's launcher cannot start
                log.warning("launcher on %s did not start: %s", name, exc)
                with self._lock:
                    self._launchers.pop(name, None)
                continue
            with self._lock:
                self._cursors[name] = cursor
                if info.get("found"):
                    self._found[name] = list(info["found"])
            handle = handles[name]
            self._watch(handle.events.remote(cursor, EVENTS_WAIT), lambda res, n=name, h=handle: self._stream_next(n, h, res),
                        lambda exc, n=name: self._stream_failed(n, exc))

    # -- nodes ----------------------------------------------------------------------------------
    def nodes(self) -> list["Node"]:
        with self._lock:
            return [n.node for name, n in sorted(self._nodes.items()) if n.alive and name not in self._lost]

    def known_nodes(self) -> list["Node"]:
        with self._lock:
            return [n.node for _, n in sorted(self._nodes.items())]

    def watch_nodes(self, callback: Callable[[], None]) -> None:
        self._on_nodes = callback

    def recovered(self) -> None:
        """Adoption is over: on each node, kill what runs there that corral does not count
        (a lost node's jobs, launches never recorded)."""
        with self._lock:
            self._adopting = False
            found = dict(self._found)
            self._found.clear()
        for name, tags in found.items():
            keep = self._live_tags_on(name)
            if set(tags) - keep:
                log.warning("killing job processes left on %s: %s", name, ", ".join(sorted(set(tags) - keep)))
                self._call_launcher(name, "reconcile", sorted(keep))

    def node_states(self) -> dict[str, str]:
        """Ready or Lost, by node name (corral adds Draining)."""
        with self._lock:
            return {name: ("Ready" if n.alive and name not in self._lost else "Lost")
                    for name, n in sorted(self._nodes.items())}

    def _refresh_nodes(self, initial: bool = False) -> None:
        entries = self._ray.nodes()
        with self._lock:
            read = read_nodes(entries, self._names)
            # A node that restarts comes back with a new Ray id and the same name: the
            # alive entry wins.
            by_name: dict[str, RayNode] = {}
            for rn in read:
                old = by_name.get(rn.name)
                if old is None or (rn.alive and not old.alive):
                    by_name[rn.name] = rn
            changed = False
            for name, rn in by_name.items():
                self._names[rn.ray_id] = name
                before = self._nodes.get(name)
                if before is None or before.ray_id != rn.ray_id or before.alive != rn.alive:
                    changed = True
                    if rn.alive and name in self._lost and (before is None or before.ray_id != rn.ray_id):
                        self._lost.discard(name)        # back, as a new raylet
                        self._launchers.pop(name, None)
                self._nodes[name] = rn
            dead = [name for name, rn in self._nodes.items() if not rn.alive and name not in self._lost]
        for name in dead:
            self._node_lost(name, "Ray marked it dead")
        if changed and not initial:
            self._notify_nodes()

    def _notify_nodes(self) -> None:
        if self._on_nodes is not None and not self._closed:
            self._loop.call_soon_threadsafe(self._on_nodes)

    def _node_lost(self, name: str, why: str) -> None:
        """Every job with a piece on ``name`` ends NodeLost; replicas elsewhere are killed
        first, so nothing runs on resources corral hands out again."""
        with self._lock:
            if name in self._lost:
                return
            self._lost.add(name)
            self._launchers.pop(name, None)
            self._cursors.pop(name, None)
            hit = [ln for ln in self._launches.values() if name in ln.allocation.nodes and not ln.reported]
        log.warning("node %s lost (%s): %d job(s) on it", name, why, len(hit))
        for ln in hit:
            with self._lock:
                ln.node_lost = ln.node_lost or name
                for rank, piece in enumerate(ln.allocation.pieces):
                    if piece.node == name and rank not in ln.ended:
                        ln.ended[rank] = {"exit_code": None, "signal": None, "lost": True, "ended_at": time.time()}
            for rank, piece in enumerate(ln.allocation.pieces):
                if piece.node != name and rank in ln.started and rank not in ln.ended:
                    self._call_launcher(piece.node, "stop", ln.tag(rank), "node-lost",
                                        f"node {name} was lost", int(_signal.SIGKILL), 0.0)
            self._maybe_report(ln)
        self._notify_nodes()

    # -- launchers --------------------------------------------------------------------------------
    def _launcher(self, name: str) -> Any:
        """The launcher actor on node ``name`` (made, or found after a restart)."""
        with self._lock:
            handle = self._launchers.get(name)
            if handle is not None:
                return handle
            node = self._nodes.get(name)
            if node is None or not node.alive or name in self._lost:
                raise LookupError(f"node {name} is not available")
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from .launcher import NodeLauncher

        actor_name = f"launcher-{name}"
        cls = self._ray.remote(NodeLauncher)
        options: dict[str, Any] = dict(name=actor_name, namespace=self.namespace, lifetime="detached",
                                       get_if_exists=True, num_cpus=0, max_concurrency=1000,
                                       scheduling_strategy=NodeAffinitySchedulingStrategy(node.ray_id, soft=False))
        if self._runtime_env is not None:
            options["runtime_env"] = self._runtime_env
        handle = cls.options(**options).remote(f"{self.root}/{name}", name)
        with self._lock:
            self._launchers[name] = handle
            self._launcher_node[name] = node.ray_id
        return handle

    def _call_launcher(self, name: str, method: str, *args: Any) -> Any:
        """Fire ``method`` on node ``name``'s launcher; the ref, or None when unreachable."""
        try:
            return getattr(self._launcher(name), method).remote(*args)
        except LookupError:
            return None

    def _get(self, ref: Any, timeout: float = 10.0) -> Any:
        return self._ray.get(ref, timeout=timeout)

    # -- the watcher thread ----------------------------------------------------------------------
    def _watch(self, ref: Any, done: Callable[[Any], None], failed: Callable[[BaseException], None]) -> None:
        with self._lock:
            self._waits[ref] = (done, failed)

    def _ensure_event_streams(self) -> None:
        with self._lock:
            names = [n for n, rn in self._nodes.items() if rn.alive and n not in self._lost]
            streaming = {n for n in names if n in self._cursors}
        for name in names:
            if name in streaming:
                continue
            try:
                handle = self._launcher(name)
            except LookupError:
                continue
            with self._lock:
                self._cursors[name] = -1       # a stream is starting: its first answer sets the cursor
            self._start_stream(name, handle)

    def _start_stream(self, name: str, handle: Any) -> None:
        def first(info: Any) -> None:
            # The launcher is up: what it found left on the node from before (a node that
            # comes back) decides what to keep -- launches corral counts there -- and what
            # to kill; while adoption is under way that waits for :meth:`recovered`.
            found = list(info.get("found", []))
            with self._lock:
                adopting = self._adopting
                if adopting and found:
                    self._found[name] = found
            keep = self._live_tags_on(name)
            leftovers = [t for t in found if t not in keep]
            if leftovers and not adopting:
                handle.reconcile.remote(sorted(keep))
                log.warning("killing %d job process(es) left on %s: %s", len(leftovers), name, ", ".join(leftovers))
            self._watch(handle.events.remote(None, 0.0), lambda res: self._stream_next(name, handle, res),
                        lambda exc: self._stream_failed(name, exc))

        self._watch(handle.info.remote(), first, lambda exc: self._stream_failed(name, exc))

    def _stream_next(self, name: str, handle: Any, result: tuple[int, list[dict]]) -> None:
        cursor, events = result
        with self._lock:
            if name in self._lost or self._launchers.get(name) is not handle:
                return
            self._cursors[name] = cursor
        for event in events:
            self._replica_ended(event)
        if not self._closed:
            self._watch(handle.events.remote(cursor, EVENTS_WAIT), lambda res: self._stream_next(name, handle, res),
                        lambda exc: self._stream_failed(name, exc))

    def _stream_failed(self, name: str, exc: BaseException) -> None:
        if self._closed:
            return
        log.warning("launcher on %s failed: %s", name, exc)
        with self._lock:
            self._cursors.pop(name, None)
            self._launchers.pop(name, None)
        # The actor is gone: its node died, or the actor alone (then Ray restarts it on a
        # new call). The node table says which.
        try:
            self._refresh_nodes()
        except Exception:  # noqa: BLE001
            log.exception("reading Ray's node table failed")
        with self._lock:
            node = self._nodes.get(name)
            gone = node is None or not node.alive
        if gone or self._launcher_unreachable(name):
            self._node_lost(name, f"its launcher failed: {type(exc).__name__}")

    def _launcher_unreachable(self, name: str) -> bool:
        try:
            return not self._get(self._launcher(name).ping.remote(), timeout=3.0)
        except Exception:  # noqa: BLE001
            return True

    def _live_tags_on(self, name: str) -> set[str]:
        with self._lock:
            return {ln.tag(rank) for ln in self._launches.values() if not ln.reported
                    for rank, piece in enumerate(ln.allocation.pieces) if piece.node == name}

    def _run(self) -> None:
        next_poll = 0.0
        while not self._closed:
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + self.node_poll
                try:
                    self._refresh_nodes()
                    self._ensure_event_streams()
                    self._check_start_deadlines()
                except Exception:  # noqa: BLE001 - keep watching
                    log.exception("ray watcher: node refresh failed")
            with self._lock:
                refs = list(self._waits)
            if not refs:
                time.sleep(0.05)
                continue
            try:
                # Back as soon as one is ready (waiting for all would sit out the timeout
                # behind the long-polled event streams), then whatever else is ready now.
                ready, rest = self._ray.wait(refs, num_returns=1, timeout=WAIT_SLICE, fetch_local=True)
                if ready and rest:
                    more, _ = self._ray.wait(rest, num_returns=len(rest), timeout=0, fetch_local=True)
                    ready += more
            except Exception:  # noqa: BLE001
                log.exception("ray.wait failed")
                time.sleep(0.1)
                continue
            for ref in ready:
                with self._lock:
                    callbacks = self._waits.pop(ref, None)
                if callbacks is None:
                    continue
                done, failed = callbacks
                try:
                    value = self._ray.get(ref, timeout=5)
                except Exception as exc:  # noqa: BLE001 - a task or actor error
                    try:
                        failed(exc)
                    except Exception:  # noqa: BLE001
                        log.exception("ray watcher: failure handler raised")
                    continue
                try:
                    done(value)
                except Exception:  # noqa: BLE001
                    log.exception("ray watcher: handler raised")

    # -- launching --------------------------------------------------------------------------------
    def launch(self, job: "Job", allocation: "Allocation") -> None:
        attempt = max(1, job.attempts)
        ln = _Launch(job=job, allocation=allocation, attempt=attempt)
        missing = [n for n in allocation.nodes if n not in self._nodes or n in self._lost
                   or not self._nodes[n].alive]
        if missing:
            ln.launch_error = f"launch failed: node {', '.join(missing)} is not available in Ray"
            with self._lock:
                self._launches[job.id] = ln
            self._maybe_report(ln)
            return
        from ray.util import placement_group

        bundles, selectors = [], []
        for piece in allocation.pieces:
            b, sel = bundle(piece.requests, self._nodes[piece.node])
            bundles.append(b)
            selectors.append(sel)
        ln.pg_name = f"{job.id}-{attempt}"
        ln.deadline = time.monotonic() + self.start_timeout
        with self._lock:
            self._launches[job.id] = ln
            for rank in range(ln.ranks):
                self._by_tag[ln.tag(rank)] = (job.id, rank)
        try:
            ln.pg = placement_group(bundles, strategy="STRICT_SPREAD" if len(bundles) > 1 else "PACK",
                                    name=ln.pg_name, lifetime="detached", bundle_label_selector=selectors)
        except Exception as exc:  # noqa: BLE001 - bad bundle: a launch failure
            ln.launch_error = f"launch failed: Ray refused the placement group: {exc}"
            self._maybe_report(ln)
            return
        self._watch(ln.pg.ready(), lambda _: self._pg_ready(ln),
                    lambda exc: self._launch_failed(ln, f"placement group failed: {exc}"))

    def _pg_ready(self, ln: _Launch) -> None:
        if ln.reported or ln.stopped_for is not None:
            self._maybe_report(ln)
            return
        if ln.ranks > 1:
            ref = self._call_launcher(ln.allocation.pieces[0].node, "free_port")
            if ref is None:
                self._launch_failed(ln, f"node {ln.allocation.pieces[0].node} is not available")
                return

            def port(p: int) -> None:
                ln.master_port = int(p)
                self._start_replicas(ln)

            self._watch(ref, port, lambda exc: self._launch_failed(ln, f"no port on rank 0's node: {exc}"))
        else:
            self._start_replicas(ln)

    def _start_replicas(self, ln: _Launch) -> None:
        job = ln.job
        spec = job.spec
        stop_signal = int(getattr(_signal, spec.stop_signal)) if spec.stop_signal else int(_signal.SIGTERM)
        grace = float(spec.kill_grace if spec.kill_grace is not None else self.kill_grace)
        rank0 = self._nodes[ln.allocation.pieces[0].node].node
        for rank, piece in enumerate(ln.allocation.pieces):
            env = job_environment(job, piece, ())
            if ln.ranks > 1:
                env.update({"CORRAL_NODE_RANK": str(rank), "CORRAL_NUM_NODES": str(ln.ranks),
                            "MASTER_ADDR": rank0.address or "127.0.0.1", "MASTER_PORT": str(ln.master_port),
                            "WORLD_SIZE": str(ln.ranks), "RANK": str(rank), "NODE_RANK": str(rank)})
            ref = self._call_launcher(piece.node, "launch", ln.tag(rank), list(spec.command), env,
                                      spec.workdir or job.base_env.get("PWD") or None, stop_signal, grace)
            if ref is None:
                self._launch_failed(ln, f"node {piece.node} is not available")
                return
            self._watch(ref, lambda res, r=rank: self._replica_started(ln, r, res),
                        lambda exc, r=rank: self._launch_failed(ln, f"replica {r} could not start: {exc}"))

    def _replica_started(self, ln: _Launch, rank: int, result: dict) -> None:
        if "error" in result:
            self._launch_failed(ln, f"launch failed: {result['error']}")
            return
        with self._lock:
            ln.started.add(rank)
            stop = ln.stopped_for is not None or ln.failed is not None or ln.node_lost or ln.launch_error
        if stop:        # stopped, or another replica failed, while this one was starting
            self._stop_replica(ln, rank, ln.stopped_for.value if ln.stopped_for else "replica-failed",
                               ln.stop_message, int(_signal.SIGKILL), 0.0)

    def _launch_failed(self, ln: _Launch, why: str) -> None:
        with self._lock:
            if not ln.launch_error:
                ln.launch_error = why if why.startswith("launch failed") else f"launch failed: {why}"
            started = [r for r in ln.started if r not in ln.ended]
        for rank in started:
            self._stop_replica(ln, rank, "launch-failed", why, int(_signal.SIGKILL), 0.0)
        self._maybe_report(ln)

    def _check_start_deadlines(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [ln for ln in self._launches.values()
                    if not ln.reported and not ln.started and not ln.launch_error and ln.deadline and now > ln.deadline]
        for ln in late:
            ln.start_timeout = True
            log.warning("job %d: placement group not ready after %.0f s: released", ln.job.id, self.start_timeout)
            self._maybe_report(ln)

    # -- ends -------------------------------------------------------------------------------------
    def _replica_ended(self, event: dict) -> None:
        tag = event.get("tag", "")
        with self._lock:
            where = self._by_tag.get(tag)
            ln = self._launches.get(where[0]) if where else None
            if ln is None or ln.tag(where[1]) != tag:
                return
            rank = where[1]
            if rank in ln.ended:
                return
            first_failure = self._note_end(ln, rank, event)
            others = [r for r in ln.started if r not in ln.ended]
        if first_failure and others:
            for r in others:
                self._stop_replica(ln, r, "replica-failed", f"replica {rank} failed", None, None)
        self._maybe_report(ln)

    @staticmethod
    def _note_end(ln: _Launch, rank: int, event: dict) -> bool:
        """Record replica ``rank``'s end (lock held); True when it is the job's first failure."""
        ln.ended[rank] = event
        bad = event.get("lost") or event.get("signal") is not None or (event.get("exit_code") or 0) != 0
        first_failure = bool(bad) and ln.failed is None and ln.stopped_for is None and not ln.node_lost
        if first_failure:
            ln.failed = {**event, "rank": rank}
        return first_failure

    def _stop_replica(self, ln: _Launch, rank: int, why: str, message: str, sig: int | None,
                      grace: float | None) -> None:
        node = ln.allocation.pieces[rank].node
        self._call_launcher(node, "stop", ln.tag(rank), why, message, sig, grace)

    def _maybe_report(self, ln: _Launch) -> None:
        """Report the job's end once every replica that started has ended."""
        with self._lock:
            if ln.reported:
                return
            if ln.launch_error or ln.start_timeout:
                waiting = [r for r in ln.started if r not in ln.ended]
            else:
                if len(ln.ended) < ln.ranks and not ln.node_lost:
                    return
                waiting = [r for r in ln.started if r not in ln.ended]
            if waiting:
                return
            ln.reported = True
            status = self._status_of(ln)
            self._launches.pop(ln.job.id, None)
            if 0 in ln.started:
                self._logs[ln.job.id] = (ln.allocation.pieces[0].node, ln.tag(0))
            tags = [ln.tag(r) for r in range(ln.ranks)]
            for t in tags:
                self._by_tag.pop(t, None)
        self._release(ln, tags)
        if not self._closed:
            self._loop.call_soon_threadsafe(self._on_exit, ln.job.id, status)

    def _status_of(self, ln: _Launch) -> ExitStatus:
        ended_at = max((float(e.get("ended_at") or 0) for e in ln.ended.values()), default=0.0) or time.time()
        if ln.node_lost:
            return ExitStatus(ended_at=time.time(), node_lost=ln.node_lost,
                              stop_message=f"node {ln.node_lost} was lost")
        if ln.start_timeout:
            return ExitStatus(ended_at=time.time(), start_timeout=True,
                              stop_message=(f"its placement group on {', '.join(ln.allocation.nodes)} was not "
                                            f"ready within {self.start_timeout:g} s"))
        if ln.launch_error:
            return ExitStatus(ended_at=ended_at, launch_error=ln.launch_error)
        if ln.stopped_for is not None:
            first = ln.ended.get(0, {})
            return ExitStatus(ended_at=ended_at, exit_code=first.get("exit_code"), signal=first.get("signal"),
                              stopped_for=ln.stopped_for, stop_message=ln.stop_message)
        if ln.failed is not None:
            f = ln.failed
            if f.get("lost"):
                return ExitStatus(ended_at=ended_at, lost=True, stop_message=f.get("message", ""))
            return ExitStatus(ended_at=ended_at, exit_code=f.get("exit_code"), signal=f.get("signal"),
                              stop_message=f"replica {f['rank']} on {ln.allocation.pieces[f['rank']].node}"
                              if ln.ranks > 1 else "")
        return ExitStatus(ended_at=ended_at, exit_code=0)

    def _release(self, ln: _Launch, tags: list[str]) -> None:
        """The job's end is known: drop its placement group and its files on the nodes."""
        if ln.pg is not None:
            try:
                from ray.util import remove_placement_group

                remove_placement_group(ln.pg)
            except Exception:  # noqa: BLE001
                log.warning("removing placement group %s failed", ln.pg_name, exc_info=True)

    def remove(self, job_id: int) -> None:
        """A finished job is deleted: drop its logs on the nodes."""
        with self._lock:
            self._logs.pop(job_id, None)
        for name in [n.name for n in self.nodes()]:
            self._call_launcher(name, "forget_job", job_id)

    # -- stop, signal -----------------------------------------------------------------------------
    def stop(self, job_id: int, why: StopReason, message: str = "") -> bool:
        with self._lock:
            ln = self._launches.get(job_id)
            if ln is None or ln.reported:
                return False
            if ln.stopped_for is None:
                ln.stopped_for, ln.stop_message = why, message
            started = [r for r in ln.started if r not in ln.ended]
            nothing_yet = not ln.started
        for rank in started:
            self._stop_replica(ln, rank, why.value, message, None, None)
        if nothing_yet:           # not started yet: it ends as soon as its start is undone
            with self._lock:
                ln.launch_error = ""
                ln.ended = {r: {"exit_code": None, "signal": int(_signal.SIGTERM), "ended_at": time.time()}
                            for r in range(ln.ranks)}
            self._maybe_report(ln)
        return True

    def signal(self, job_id: int, sig: int) -> bool:
        with self._lock:
            ln = self._launches.get(job_id)
            if ln is None or ln.reported:
                return False
            ranks = [r for r in ln.started if r not in ln.ended]
        for rank in ranks:
            self._call_launcher(ln.allocation.pieces[rank].node, "signal", ln.tag(rank), int(sig))
        return bool(ranks)

    # -- after a restart ---------------------------------------------------------------------------
    def adopt(self, job: "Job") -> Running | ExitStatus | None:
        alloc = job.allocation
        if alloc is None:
            return None
        attempt = max(1, job.attempts)
        ln = _Launch(job=job, allocation=alloc, attempt=attempt)
        ln.pg_name = f"{job.id}-{attempt}"
        try:
            from ray.util import get_placement_group

            ln.pg = get_placement_group(ln.pg_name)
        except Exception:  # noqa: BLE001 - no such group
            ln.pg = None
        statuses: dict[int, dict | None] = {}
        for rank, piece in enumerate(alloc.pieces):
            node = self._nodes.get(piece.node)
            if node is None or not node.alive or piece.node in self._lost:
                ln.node_lost = piece.node
                continue
            try:
                statuses[rank] = self._get(self._launcher(piece.node).status.remote(ln.tag(rank)))
            except Exception as exc:  # noqa: BLE001
                log.warning("job %d: cannot ask %s: %s", job.id, piece.node, exc)
                ln.node_lost = piece.node
        if not ln.node_lost and all(s is None for s in statuses.values()):
            if ln.pg is not None:
                self._release(ln, [])
            return None                                  # never launched: the daemon launches it
        with self._lock:
            for rank, st in statuses.items():
                if st is None:
                    continue
                self._by_tag[ln.tag(rank)] = (job.id, rank)
                ln.started.add(rank)
                if st.get("state") == "exited":
                    why = st.get("stopped_for")
                    if why and ln.stopped_for is None:
                        try:
                            ln.stopped_for, ln.stop_message = StopReason(why), st.get("stop_message", "")
                        except ValueError:
                            pass
                    self._note_end(ln, rank, st)
            self._launches[job.id] = ln
        if ln.node_lost:
            for rank in ln.started:
                if rank not in ln.ended:
                    self._stop_replica(ln, rank, "node-lost", f"node {ln.node_lost} was lost", int(_signal.SIGKILL), 0.0)
            with self._lock:
                ln.reported = True
                self._launches.pop(job.id, None)
            self._release(ln, [])
            return ExitStatus(ended_at=time.time(), node_lost=ln.node_lost,
                              stop_message=f"node {ln.node_lost} was lost while the daemon was down")
        if len(ln.ended) == ln.ranks:
            with self._lock:
                ln.reported = True
                status = self._status_of(ln)
                self._launches.pop(job.id, None)
            self._release(ln, [])
            return status
        for rank in range(ln.ranks):       # replicas that never started: cannot be started now
            if rank not in ln.started:
                self._launch_failed(ln, f"replica {rank} was never started")
        return Running(job.id, f"ray:{ln.pg_name}")

    # -- logs and usage ----------------------------------------------------------------------------
    def read_log(self, job_id: int, stream: str, offset: int = 0, size: int = 1 << 20) -> bytes | None:
        """Rank 0's log of the job's latest launch, read from its node (logs stay on the
        nodes until the job is deleted)."""
        with self._lock:
            ln = self._launches.get(job_id)
            where = (ln.allocation.pieces[0].node, ln.tag(0)) if ln is not None else self._logs.get(job_id)
        try:
            if where is not None:
                return self._get(self._launcher(where[0]).read_log.remote(where[1], stream, offset, size), timeout=5)
            # Not known here (ended before a restart): ask every node.
            names = [n.name for n in self.nodes()]
            refs = {name: self._launcher(name).find_log.remote(job_id, stream, offset, size) for name in names}
            best: tuple[int, str, bytes] | None = None
            for name, ref in refs.items():
                got = self._get(ref, timeout=5)
                if got is not None and (best is None or got[0] > best[0]):
                    best = (got[0], name, got[1])
            if best is None:
                return None
            with self._lock:
                self._logs[job_id] = (best[1], tag_of(job_id, best[0], 0))
            return best[2]
        except Exception:  # noqa: BLE001 - a node gone, a timeout: no log to show now
            return None

    def log_location(self, job_id: int, stream: str) -> str | None:
        with self._lock:
            ln = self._launches.get(job_id)
            where = (ln.allocation.pieces[0].node, ln.tag(0)) if ln is not None else self._logs.get(job_id)
        return None if where is None else f"{where[0]}:{self.root}/{where[0]}/{where[1]}/{stream}"

    def sample(self, job_ids: Iterable[int]) -> dict[int, Reading]:
        wanted: dict[str, list[tuple[int, str]]] = {}
        with self._lock:
            for job_id in job_ids:
                ln = self._launches.get(job_id)
                if ln is None:
                    continue
                for rank in ln.started:
                    if rank not in ln.ended:
                        wanted.setdefault(ln.allocation.pieces[rank].node, []).append((job_id, ln.tag(rank)))
        refs = {}
        for node, items in wanted.items():
            ref = self._call_launcher(node, "sample", [t for _, t in items])
            if ref is not None:
                refs[node] = ref
        out: dict[int, dict] = {}
        for node, ref in refs.items():
            try:
                got = self._get(ref, timeout=3)
            except Exception:  # noqa: BLE001
                continue
            for job_id, tag in wanted[node]:
                r = got.get(tag)
                if r is None:
                    continue
                acc = out.setdefault(job_id, {"cpu_seconds": 0.0, "memory": 0, "processes": 0, "pids": []})
                acc["cpu_seconds"] += r["cpu_seconds"]
                acc["memory"] += r["memory"]
                acc["processes"] += r["processes"]
                acc["pids"].extend(r["pids"])
        return {j: Reading(j, cpu_seconds=v["cpu_seconds"], memory=v["memory"], processes=v["processes"],
                           pids=tuple(v["pids"]), source="ray") for j, v in out.items()}

    def describe(self) -> dict:
        return {"engine": self.name, "address": self.address, "namespace": self.namespace,
                "capabilities": self.capabilities.to_dict(), "nodes": self.node_states()}

    def close(self) -> None:
        """Stop watching; running jobs keep running (a restarted daemon adopts them)."""
        self._closed = True
        self._thread.join(timeout=5)
        try:
            self._ray.shutdown()
        except Exception:  # noqa: BLE001
            pass
