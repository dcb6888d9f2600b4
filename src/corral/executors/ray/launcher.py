"""What runs corral's jobs on one node of a Ray cluster: the node launcher.

One :class:`NodeLauncher` per node lives in a detached Ray actor pinned to that node
(hard node affinity, no CPU of its own): the daemon asks it to start a job's process
there, to stop or signal it, for its logs and usage, and for the exits. Forking from a
resident process is what makes launches fast (a Ray task or a Jobs-API job per launch
costs a worker process each); the job's resources are held in Ray by its placement
group, so Ray's view of what is used agrees with corral's.

Nothing here imports Ray: the class is plain Python (tested as such) that the Ray
executor wraps in an actor. Each launch has a *tag* -- job id, attempt and replica rank
-- and a directory ``ROOT/TAG/`` on the node with its ``stdout``/``stderr``, ``meta.json``
(pid, start) and, once it ended, ``status.json``. So:

* every exit is kept until the daemon says it recorded it (:meth:`forget`), and a daemon
  that restarts asks for each job it believes running (:meth:`status`): running, ended
  (how), or unknown (never started here);
* exits are handed out as an ordered event log (:meth:`events`, a long poll with a
  cursor): the daemon holds one call open per node, which also tells it at once when
  the node (and with it the actor) dies;
* a launcher that starts on a node (again) finds what earlier ones left there: jobs
  still running are watched again (their exit code is then unknown), and the daemon
  decides with :meth:`reconcile` which to keep -- the rest is killed, as processes left
  on a node that corral counted as lost must not run on.

A job runs in its own session (process group), as the node's Ray user; its stop signal
goes to the group, SIGKILL after the grace period, and what is left of the group when
its main process ends is killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal as _signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

#: Tags are the launch's directory name: job id, attempt and rank, e.g. ``12-1-0``.
_TAG_CHARS = set("0123456789-")
_MAX_EVENTS = 100_000


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int, started: float | None) -> bool:
    """The process ``pid`` exists and is the one started at ``started`` (not a reuse)."""
    try:
        import psutil

        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 2.0:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - gone, or no psutil
        return False


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _Proc:
    __slots__ = ("tag", "pid", "popen", "created", "stop_signal", "grace", "why", "message", "kill_timer",
                 "ended")

    def __init__(self, tag: str, pid: int, popen: subprocess.Popen | None, created: float | None,
                 stop_signal: int, grace: float):
        self.tag, self.pid, self.popen, self.created = tag, pid, popen, created
        self.stop_signal, self.grace = stop_signal, grace
        self.why: str | None = None
        self.message = ""
        self.kill_timer: threading.Timer | None = None
        self.ended = False


class NodeLauncher:
    """Starts and watches corral jobs on this node (see the module docstring)."""

    def __init__(self, root: str, node: str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.node = node
        self._lock = threading.Condition()
        self._procs: dict[str, _Proc] = {}
        self._events: list[dict] = []
        self._first = 0                   # cursor of _events[0]
        self._found = self._load()

    # -- what an earlier launcher left ----------------------------------------------------------
    def _load(self) -> list[str]:
        """Watch again the jobs of an earlier launcher on this node that still run; their
        exits become known (without an exit code) when they end."""
        found = []
        for d in sorted(self.root.iterdir()) if self.root.exists() else ():
            if not d.is_dir() or not set(d.name) <= _TAG_CHARS:
                continue
            if (d / "status.json").exists():
                continue
            meta = _read_json(d / "meta.json")
            if meta is None:
                continue
            pid, created = int(meta["pid"]), meta.get("created")
            if _alive(pid, created):
                proc = _Proc(d.name, pid, None, created, int(meta.get("stop_signal", _signal.SIGTERM)),
                             float(meta.get("grace", 10.0)))
                self._procs[d.name] = proc
                threading.Thread(target=self._poll_orphan, args=(proc,), daemon=True).start()
                found.append(d.name)
            else:
                self._record(d.name, {"exit_code": None, "signal": None, "lost": True,
                                      "message": f"its process ended while no launcher watched it on {self.node}"})
        return found

    def _poll_orphan(self, proc: _Proc) -> None:
        while _alive(proc.pid, proc.created):
            time.sleep(0.5)
        _killpg(proc.pid, _signal.SIGKILL)
        self._ended(proc, {"exit_code": None, "signal": None, "lost": True,
                           "message": f"exit code unknown: its launcher on {self.node} was restarted while it ran"})

    # -- questions -------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"node": self.node, "pid": os.getpid(), "root": str(self.root), "address": _address(),
                "found": list(self._found)}

    def status(self, tag: str) -> dict | None:
        """``{"state": "running", "pid": ...}``, ``{"state": "exited", ...how}``, or None
        when this node never started ``tag``."""
        with self._lock:
            proc = self._procs.get(tag)
            if proc is not None and not proc.ended:
                return {"state": "running", "pid": proc.pid}
        status = _read_json(self.root / tag / "status.json")
        if status is not None:
            return {"state": "exited", **status}
        return None

    def events(self, cursor: int | None = None, timeout: float = 5.0) -> tuple[int, list[dict]]:
        """Exits after ``cursor`` (None: from now), waiting up to ``timeout`` s for one."""
        deadline = time.monotonic() + timeout
        with self._lock:
            end = self._first + len(self._events)
            if cursor is None:
                return end, []
            while end <= cursor:
                left = deadline - time.monotonic()
                if left <= 0:
                    return cursor, []
                self._lock.wait(left)
                end = self._first + len(self._events)
            start = max(cursor, self._first)
            return end, self._events[start - self._first:]

    def sample(self, tags: list[str]) -> dict[str, dict]:
        """CPU seconds, resident memory and processes of each running tag's session."""
        import psutil

        out: dict[str, dict] = {}
        with self._lock:
            procs = [self._procs[t] for t in tags if t in self._procs and not self._procs[t].ended]
        for proc in procs:
            try:
                root = psutil.Process(proc.pid)
                members = [root] + root.children(recursive=True)
            except psutil.Error:
                continue
            cpu, rss, pids = 0.0, 0, []
            for p in members:
                try:
                    t = p.cpu_times()
                    cpu += t.user + t.system
                    rss += p.memory_info().rss
                    pids.append(p.pid)
                except psutil.Error:
                    continue
            out[proc.tag] = {"cpu_seconds": cpu, "memory": rss, "processes": len(pids), "pids": pids}
        return out

    def read_log(self, tag: str, stream: str, offset: int = 0, size: int = 1 << 20) -> bytes | None:
        if stream not in ("stdout", "stderr"):
            return None
        path = self.root / tag / stream
        try:
            with open(path, "rb") as f:
                f.seek(max(0, offset))
                return f.read(size)
        except OSError:
            return None

    def find_log(self, job_id: int, stream: str, offset: int = 0, size: int = 1 << 20) -> tuple[int, bytes] | None:
        """The latest attempt of ``job_id`` whose rank 0 ran here: (attempt, bytes of its
        ``stream`` from ``offset``); None when none did."""
        attempts = []
        prefix = f"{int(job_id)}-"
        for d in self.root.iterdir() if self.root.exists() else ():
            parts = d.name.split("-")
            if d.name.startswith(prefix) and len(parts) == 3 and parts[2] == "0" and parts[1].isdigit():
                attempts.append(int(parts[1]))
        if not attempts:
            return None
        attempt = max(attempts)
        data = self.read_log(f"{int(job_id)}-{attempt}-0", stream, offset, size)
        return None if data is None else (attempt, data)

    def forget_job(self, job_id: int) -> int:
        """The job is deleted: drop the files of all its launches here; how many."""
        n = 0
        prefix = f"{int(job_id)}-"
        for d in list(self.root.iterdir()) if self.root.exists() else ():
            if d.name.startswith(prefix) and d.name.count("-") == 2:
                self.forget(d.name)
                n += 1
        return n

    def free_port(self) -> int:
        """A TCP port free on this node now (a gang's ``MASTER_PORT``)."""
        with socket.socket() as s:
            s.bind(("", 0))
            return s.getsockname()[1]

    def ping(self) -> bool:
        return True

    # -- actions -----------------------------------------------------------------------------------
    def launch(self, tag: str, argv: list[str], env: dict[str, str], cwd: str | None,
               stop_signal: int = int(_signal.SIGTERM), grace: float = 10.0) -> dict:
        """Start ``argv`` for ``tag``: ``{"pid": ..., "started": ...}``, or ``{"error":
        ...}`` when it cannot start (the daemon records that as a launch failure)."""
        if not tag or not set(tag) <= _TAG_CHARS:
            return {"error": f"bad launch tag {tag!r}"}
        d = self.root / tag
        with self._lock:
            if tag in self._procs or (d / "status.json").exists():
                return {"error": f"launch {tag} was already started on {self.node}"}
            d.mkdir(parents=True, exist_ok=True)
            try:
                with open(d / "stdout", "ab") as out, open(d / "stderr", "ab") as err:
                    popen = subprocess.Popen(argv, env=env, cwd=cwd or None, stdout=out, stderr=err,
                                             stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)
            except (OSError, ValueError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                where = f" (working directory {cwd})" if cwd and not os.path.isdir(cwd) else ""
                return {"error": f"cannot start {argv[0] if argv else '?'} on {self.node}: {why}{where}"}
            created = None
            try:
                import psutil

                created = psutil.Process(popen.pid).create_time()
            except Exception:  # noqa: BLE001
                pass
            started = time.time()
            _write_json(d / "meta.json", {"pid": popen.pid, "created": created, "started": started,
                                          "stop_signal": int(stop_signal), "grace": float(grace)})
            proc = _Proc(tag, popen.pid, popen, created, int(stop_signal), float(grace))
            self._procs[tag] = proc
        threading.Thread(target=self._wait, args=(proc,), daemon=True).start()
        return {"pid": popen.pid, "started": started}

    def _wait(self, proc: _Proc) -> None:
        assert proc.popen is not None
        code = proc.popen.wait()
        _killpg(proc.pid, _signal.SIGKILL)           # what is left of its session
        how = {"exit_code": code, "signal": None} if code >= 0 else {"exit_code": None, "signal": -code}
        self._ended(proc, how)

    def _ended(self, proc: _Proc, how: dict) -> None:
        with self._lock:
            if proc.ended:
                return
            proc.ended = True
            if proc.kill_timer is not None:
                proc.kill_timer.cancel()
            status = {**how, "ended_at": time.time(), "stopped_for": proc.why, "stop_message": proc.message}
            self._record(proc.tag, status)
            self._procs.pop(proc.tag, None)

    def _record(self, tag: str, status: dict) -> None:
        d = self.root / tag
        d.mkdir(parents=True, exist_ok=True)
        status.setdefault("ended_at", time.time())
        _write_json(d / "status.json", status)
        with self._lock:
            self._events.append({"tag": tag, **status})
            if len(self._events) > _MAX_EVENTS:
                drop = len(self._events) - _MAX_EVENTS
                del self._events[:drop]
                self._first += drop
            self._lock.notify_all()

    def stop(self, tag: str, why: str | None = None, message: str = "", sig: int | None = None,
             grace: float | None = None) -> bool:
        """Send the stop signal to ``tag``'s session, SIGKILL after the grace period."""
        with self._lock:
            proc = self._procs.get(tag)
            if proc is None or proc.ended:
                return False
            if proc.why is None:
                proc.why, proc.message = why, message
            sig = proc.stop_signal if sig is None else int(sig)
            grace = proc.grace if grace is None else float(grace)
            if proc.kill_timer is None:
                timer = threading.Timer(max(0.0, grace), _killpg, args=(proc.pid, int(_signal.SIGKILL)))
                timer.daemon = True
                proc.kill_timer = timer
                timer.start()
        _killpg(proc.pid, sig)
        return True

    def signal(self, tag: str, sig: int) -> bool:
        with self._lock:
            proc = self._procs.get(tag)
            if proc is None or proc.ended:
                return False
        _killpg(proc.pid, int(sig))
        return True

    def reconcile(self, keep: list[str]) -> list[str]:
        """Kill every job on this node whose tag is not in ``keep`` (left from a node corral
        counted as lost, or from a launch the daemon never recorded); returns them."""
        keep_set = set(keep)
        with self._lock:
            doomed = [p for t, p in self._procs.items() if t not in keep_set and not p.ended]
            for proc in doomed:
                proc.why, proc.message = "cancel", "not corral's any more (its node was counted as lost)"
        for proc in doomed:
            _killpg(proc.pid, _signal.SIGKILL)
        return [p.tag for p in doomed]

    def forget(self, tag: str) -> None:
        """The daemon recorded ``tag``'s end: drop its files."""
        with self._lock:
            if tag in self._procs and not self._procs[tag].ended:
                return
        shutil.rmtree(self.root / tag, ignore_errors=True)


def _address() -> str:
    """This node's address as other nodes reach it (best effort)."""
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - not in Ray (tests)
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
