"""Python functions as corral jobs, in the style of :mod:`concurrent.futures` and submitit::

    import corral

    with corral.Executor(gpus=1, mem="16Gi", time="2h") as ex:
        fut = ex.submit(train, lr=0.1)               # one job running train(lr=0.1)
        futs = ex.map(train, [0.1, 0.01, 0.001])     # one array job, a task per item
        print(fut.result(), fut.job_id, [f.result() for f in futs])

The function and its arguments are pickled with cloudpickle (so functions defined in a
notebook or in ``__main__`` travel by value) into a task directory, and the job runs
them with the caller's interpreter (``sys.executable``), ``sys.path`` and environment,
in the caller's working directory, with exactly the resources asked for. What the
function returns -- or raises, with the remote traceback -- comes back through the
future. A job that ends without an answer (cancelled, killed at its memory or time
limit, its node lost) makes the future raise :class:`JobError` with corral's reason.

Each :class:`JobFuture` is a :class:`concurrent.futures.Future`, so
``concurrent.futures.wait`` and ``as_completed`` work on them; ``cancel()`` cancels the
job; ``job_id`` and ``logs()`` say where it is.

Task directories live under ``folder`` (default ``$XDG_CACHE_HOME/corral/futures``, a
directory of the submitting user's, which their jobs can read and write) and are
removed once their answer is read, unless ``keep=True``.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .errors import CorralError

TERMINAL = ("Succeeded", "Failed", "Cancelled")
RUNNER = "corral.futures_runner"


class JobError(CorralError):
    """The job ended without an answer from the function (cancelled, killed, lost)."""

    def __init__(self, job_id: int, state: str, reason: str, message: str):
        self.job_id, self.state, self.reason = job_id, state, reason
        text = f"job {job_id} ended {state} ({reason})"
        super().__init__(f"{text}: {message}" if message else text)


class RemoteTraceback(Exception):
    """The traceback of an exception the function raised in its job (the ``__cause__``
    of the exception :meth:`JobFuture.result` re-raises, as ``ProcessPoolExecutor`` does)."""

    def __init__(self, text: str):
        self.text = text
        super().__init__(text)

    def __str__(self) -> str:
        return self.text


def default_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "corral", "futures")


class JobFuture(cf.Future):
    """The future of one function call run as a corral job (or one task of an array)."""

    def __init__(self, executor: "Executor", taskdir: Path, index: int | None = None):
        super().__init__()
        self._executor = executor
        self.taskdir = taskdir
        self.index = index
        self.job_id: int | None = None

    @property
    def answer_path(self) -> Path:
        return self.taskdir / ("answer.pkl" if self.index is None else f"answer-{self.index}.pkl")

    def cancel(self) -> bool:
        """Cancel the job (and this future) unless it has already ended."""
        if self.done():
            return False
        if self.job_id is not None:
            self._executor.client.cancel([self.job_id], missing_ok=True)
        return super().cancel()

    def logs(self, stream: str = "stdout") -> str:
        """What the job wrote to ``stream`` so far."""
        if self.job_id is None:
            return ""
        return b"".join(self._executor.client.logs(self.job_id, stream=stream)).decode(errors="replace")

    def __repr__(self) -> str:
        return f"<JobFuture job {self.job_id} {self._state.lower()}>"


class Executor:
    """Runs functions as corral jobs; every job gets the resources given here.

    ``cpus``, ``mem``, ``gpus`` (a count or ``MODEL:N``), ``time``, ``queue``,
    ``priority``, ``name``, ``env``, ``retries`` and any other field of a submit's flags
    (:class:`corral.api.models.JobFlags`, e.g. ``node_selector``) are passed on;
    ``array_limit`` caps how many tasks of a :meth:`map` run at once (Slurm's ``%N``).
    ``home``: the corral home to talk to (default as for the CLI)."""

    def __init__(self, *, cpus: str | int | float | None = None, mem: str | None = None,
                 gpus: int | str | None = None, time: str | int | None = None, name: str = "",
                 queue: str | None = None, priority: int | str | None = None, env: Mapping[str, str] | None = None,
                 folder: str | os.PathLike[str] | None = None, keep: bool = False, array_limit: int | None = None,
                 home: str | None = None, poll: float = 5.0, **flags: Any):
        from .client import Client

        self.client = Client(home)
        requests = {k: v for k, v in (("cpu", cpus), ("memory", mem)) if v is not None}
        self.flags: dict[str, Any] = {**flags}
        if requests:
            self.flags["requests"] = {k: str(v) for k, v in requests.items()}
        for key, value in (("gpus", gpus), ("time", time), ("queue", queue), ("priority", priority)):
            if value is not None:
                self.flags[key] = value
        self.name = name
        self.env = dict(env or {})
        self.folder = Path(folder) if folder is not None else default_folder()
        self.keep = keep
        self.array_limit = array_limit
        self.poll = poll
        self._outstanding: dict[int, list[JobFuture]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._watcher: threading.Thread | None = None

    # submitting --------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> JobFuture:
        """Run ``fn(*args, **kwargs)`` as one job."""
        taskdir = self._taskdir()
        _dump(taskdir / "task.pkl", (fn, args, kwargs))
        future = JobFuture(self, taskdir)
        self._launch(fn, taskdir, [future], array=None)
        return future

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> list[JobFuture]:
        """``fn`` over the items (``zip`` of several iterables, as :func:`map`) as ONE array
        job, a task per item; the futures in order. (Unlike
        ``concurrent.futures.Executor.map`` this returns the futures, not an iterator of
        results: ``[f.result() for f in ex.map(...)]``.)"""
        calls = list(zip(*iterables))
        if not calls:
            return []
        taskdir = self._taskdir()
        futures = []
        for i, call in enumerate(calls):
            _dump(taskdir / f"task-{i}.pkl", (fn, call, {}))
            futures.append(JobFuture(self, taskdir, i))
        spec = f"0-{len(calls) - 1}" + (f"%{self.array_limit}" if self.array_limit else "")
        self._launch(fn, taskdir, futures, array=spec)
        return futures

    def _taskdir(self) -> Path:
        if self._closed:
            raise RuntimeError("cannot submit to an Executor that was shut down")
        path = self.folder / uuid.uuid4().hex
        path.mkdir(parents=True, mode=0o700)
        return path

    def _launch(self, fn: Callable[..., Any], taskdir: Path, futures: list[JobFuture], array: str | None) -> None:
        flags = {**self.flags, "command": [sys.executable, "-m", RUNNER, str(taskdir)],
                 "name": self.name or _name_of(fn), "workdir": os.getcwd(),
                 "env": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p), **self.env}}
        if array is not None:
            flags["array"] = array
        try:
            jobs = self.client.submit([{"flags": flags}])
        except BaseException:
            shutil.rmtree(taskdir, ignore_errors=True)
            raise
        by_index = {j.array_index: j.id for j in jobs}
        with self._lock:
            for future in futures:
                future.job_id = by_index.get(future.index, jobs[0].id) if future.index is not None else jobs[0].id
                self._outstanding.setdefault(future.job_id, []).append(future)
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="corral-futures", daemon=True)
                self._watcher.start()
        self._wake.set()

    # answers -----------------------------------------------------------------------------
    def _watch(self) -> None:
        """One thread per executor: a long poll on the oldest outstanding job, then a
        quick look at the others, until none is left."""
        from .client import ApiError, Connection

        conn = Connection(self.client.paths.home)
        while True:
            with self._lock:
                ids = sorted(self._outstanding)
            if not ids:
                if self._closed:
                    return
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            for i, job_id in enumerate(ids):
                try:
                    view = conn.request("GET", f"/v1/jobs/{job_id}/wait?timeout={self.poll if i == 0 else 0}")
                except ApiError as exc:
                    view = {"state": "Failed", "reason": "NotFound", "message": str(exc)} if exc.status == 404 else None
                except (CorralError, OSError):
                    view = None             # the daemon restarts: ask again next round
                if view is not None and view["state"] in TERMINAL:
                    self._finish(job_id, view)

    def _finish(self, job_id: int, view: Mapping[str, Any]) -> None:
        with self._lock:
            futures = self._outstanding.pop(job_id, [])
        for future in futures:
            if future.done():                 # cancelled by the caller
                continue
            answer = _load(future.answer_path)
            if answer is None:
                future.set_exception(JobError(job_id, view["state"], view.get("reason", ""), view.get("message", "")))
            elif answer[0] == "ok":
                future.set_result(answer[1])
            else:
                exc, text = answer[1], answer[2]
                exc.__cause__ = RemoteTraceback(text)
                future.set_exception(exc)
        if futures and not self.keep and not self._pending_in(futures[0].taskdir):
            shutil.rmtree(futures[0].taskdir, ignore_errors=True)

    def _pending_in(self, taskdir: Path) -> bool:
        with self._lock:
            return any(f.taskdir == taskdir for fs in self._outstanding.values() for f in fs)

    # lifetime ----------------------------------------------------------------------------
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more submits; with ``cancel_futures`` the jobs not ended are cancelled;
        with ``wait`` return once every future is done."""
        self._closed = True
        with self._lock:
            futures = [f for fs in self._outstanding.values() for f in fs]
        if cancel_futures:
            for f in futures:
                f.cancel()
        if wait:
            cf.wait(futures)
        self._wake.set()

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)


def _name_of(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", "") or "task"
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:60]
    return cleaned or "task"


def _dump(path: Path, value: Any) -> None:
    import cloudpickle

    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        cloudpickle.dump(value, f)
    os.replace(tmp, path)


def _load(path: Path) -> Any:
    import pickle

    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - an answer that cannot be read back
        return ("err", RuntimeError(f"the answer in {path} cannot be read: {exc!r}"), "")


__all__ = ["Executor", "JobError", "JobFuture", "RemoteTraceback"]
