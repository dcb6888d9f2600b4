"""Talk to the local daemon over HTTP on its Unix socket: the transport and the SDK.

:class:`Connection` is the transport, deliberately small and stdlib-only (``socket`` +
``json``): the CLI imports it on every call, and a command's start-up time is what
people feel. It sends and returns plain dicts. Any call starts the daemon if it is not
running (like ``tsp``), unless ``autostart=False``.

:class:`Client` is the Python SDK on top of it: its requests are built from, and its
answers are, the API's models (:mod:`corral.api.models`, pydantic), imported on the
first call that needs them, so ``import corral.client`` stays cheap.

    from corral.client import Client
    c = Client()
    [job] = c.submit([{"spec": {"command": ["python", "train.py"],
                                "resources": {"requests": {"nvidia.com/gpu": 1}}}}])
    c.wait([job.id])
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket.py` drags in selectors, enum and more
import os
import sys
import time

from . import fastjson as json
from .errors import ConnectionLost, CorralError, DaemonUnavailable
from .paths import Paths

TYPE_CHECKING = False  # `typing` costs the CLI start-up time; type checkers still see this
if TYPE_CHECKING:
    from typing import Any, Iterator, Mapping, Sequence

    from .api import models

#: The states a job ends in (a wait is over).
TERMINAL = ("Succeeded", "Failed", "Cancelled")


def urlencode(pairs) -> str:
    """Query string for ``[(key, value), ...]`` or a dict (urllib.parse costs start-up time)."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return "&".join(f"{_quote(str(k))}={_quote(str(v))}" for k, v in items)


def _quote(text: str) -> str:
    safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~"
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


class ApiError(CorralError):
    """An error answer from the daemon: its status and one line per problem."""

    def __init__(self, status: int, lines: list[str]):
        self.status = status
        self.lines = lines
        super().__init__("; ".join(lines))


class Connection:
    """The daemon of one home, spoken to with plain dicts (the CLI's transport)."""

    def __init__(self, home: str | None = None, *, autostart: bool = True,
                 start_options: list[str] | None = None, timeout: float = 330.0):
        self.paths = Paths(home)
        self.autostart = autostart
        self.start_options = start_options or []
        self.timeout = timeout

    # transport -------------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.paths.socket))
        except PermissionError:
            # A system daemon whose socket is not open to us: starting our own would not help.
            sock.close()
            raise DaemonUnavailable(self._refused()) from None
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if not self.autostart:
                raise DaemonUnavailable(f"corral daemon is not running (no socket at {self.paths.socket}); "
                                        "start it with `corral up`") from None
            self.start_daemon()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(str(self.paths.socket))
        return sock

    def _send(self, method: str, path: str, body: Any = None) -> socket.socket:
        payload = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: corral\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
        sock = self._connect()
        try:
            sock.sendall(head + payload)
        except (BrokenPipeError, ConnectionResetError):
            # The daemon may have answered before reading it all (413: too large); the
            # answer is read next. If there is none, reading says so in one line.
            pass
        return sock

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return self._request(method, path, body)
        except ConnectionLost:
            if method != "GET" or not self.autostart:
                raise
            time.sleep(0.2)                    # a read is safe to ask again, of the daemon autostart brings up
            return self._request(method, path, body)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        sock = self._send(method, path, body)
        try:
            status, headers, rest = _read_head(sock)
            data = b"".join(_read_body(sock, headers, rest))
        except ConnectionResetError:
            raise ConnectionLost("corral daemon closed the connection mid-request (it may have been "
                                    "stopped or crashed); check `corral ps` before retrying a submit") from None
        finally:
            sock.close()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        if status >= 400:
            if isinstance(parsed, dict) and "lines" in parsed:
                raise ApiError(status, list(parsed["lines"]))
            raise ApiError(status, [f"daemon answered HTTP {status}: {data[:200].decode(errors='replace')}"])
        return parsed

    def submit_request(self, body: dict) -> Any:
        """``POST /v1/jobs`` with an idempotency key (made here unless the body has one):
        when the daemon goes away mid-request (a crash, a restart), the request is sent
        once more -- to the daemon autostart brings up -- and the key makes sure the
        batch is stored once."""
        import uuid

        body = {**body, "idempotency_key": body.get("idempotency_key") or uuid.uuid4().hex}
        try:
            return self.request("POST", "/v1/jobs", body)
        except ConnectionLost:
            if not self.autostart:
                raise
            time.sleep(0.2)
            return self.request("POST", "/v1/jobs", body)

    def stream(self, path: str) -> Iterator[bytes]:
        sock = self._send("GET", path)
        try:
            status, headers, rest = _read_head(sock)
            if status >= 400:
                data = b"".join(_read_body(sock, headers, rest))
                try:
                    lines = json.loads(data).get("lines") or [data.decode()]
                except ValueError:
                    lines = [data.decode(errors="replace")]
                raise ApiError(status, lines)
            yield from _read_body(sock, headers, rest)
        finally:
            sock.close()

    # daemon lifecycle --------------------------------------------------------------------
    def is_running(self) -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.paths.socket))
            return True
        except OSError:
            return False
        finally:
            sock.close()

    def start_daemon(self, wait: float = 30.0) -> None:
        """Start the daemon in the background and wait until it answers.

        If another daemon holds the home's lock (one still shutting down, or one started
        at the same moment by another command), wait for it: answer from it, or start
        again once its lock is released.
        """
        if self._someone_elses():
            return
        try:
            self.paths.ensure()
            proc = self._spawn()
        except OSError as exc:        # a read-only or full file system, a home that is a file ...
            where = exc.filename or self.paths.home
            raise DaemonUnavailable(f"cannot start the corral daemon: cannot write {where}: "
                                    f"{exc.strerror or exc}") from None
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.is_running():
                return
            code = proc.poll()
            if code is not None and code != 0:
                raise DaemonUnavailable(f"corral daemon failed to start (exit {code}): {self._log_tail()}")
            if code == 0 and not self.lock_held():
                proc = self._spawn()   # it lost the lock to a daemon that has since gone
            time.sleep(0.01)
        raise DaemonUnavailable(f"corral daemon did not answer within {wait:.0f}s: {self._log_tail()}")

    def _refused(self) -> str:
        """Why connecting was refused (EACCES), with what to ask for."""
        head = f"cannot connect to the corral daemon at {self.paths.socket}: permission denied"
        try:
            st = os.stat(self.paths.socket)
        except OSError:
            return f"{head} (cannot enter {self.paths.home})"
        if st.st_mode & 0o060 == 0o060:
            import grp

            try:
                group = grp.getgrgid(st.st_gid).gr_name
            except KeyError:
                group = str(st.st_gid)
            return f"{head} (ask an admin to add you to group {group})"
        return f"{head} (the daemon accepts its own user only; an admin can set socket_group)"

    def _someone_elses(self) -> bool:
        """Before starting a daemon: a home that belongs to another user (a system daemon's,
        e.g. /var/lib/corral) is never ours to start. True: its daemon answers after all;
        raises when it does not or refuses us."""
        try:
            owner = os.stat(self.paths.home).st_uid
        except OSError:
            return False
        if owner == os.geteuid() or os.geteuid() == 0:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.paths.socket))
            return True
        except PermissionError:
            raise DaemonUnavailable(self._refused()) from None
        except OSError:
            pass
        finally:
            sock.close()
        import pwd

        try:
            name = pwd.getpwuid(owner).pw_name
        except KeyError:
            name = f"uid {owner}"
        raise DaemonUnavailable(f"the corral daemon at {self.paths.home} is not running and only {name} can "
                                "start it; ask an admin to start it")

    def _spawn(self):
        import subprocess

        with open(self.paths.log, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "corral.daemon", "--home", self.paths.home, *self.start_options],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True,
            )

    def lock_held(self) -> bool:
        """True while a daemon process holds this home's lock (running or stopping)."""
        import fcntl

        try:
            fd = os.open(self.paths.lock, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def _log_tail(self) -> str:
        try:
            with open(self.paths.log, encoding="utf-8", errors="replace") as f:
                lines = f.read().strip().splitlines()
        except OSError:
            return "no daemon log"
        last = lines[-1] if lines else "daemon log is empty"
        return last[len("error: "):] if last.startswith("error: ") else last

    # long polls --------------------------------------------------------------------------
    def wait_for(self, job_id: int, poll: float = 30.0) -> dict:
        """Block until the job is in a terminal state; its view. Long polls of ``poll``
        seconds; a daemon that restarts meanwhile (503, or gone for a moment) is asked
        again when ``autostart`` is on."""
        while True:
            try:
                view = self.request("GET", f"/v1/jobs/{int(job_id)}/wait?timeout={poll}")
            except (DaemonUnavailable, ConnectionError, ApiError) as exc:
                if not self.autostart or (isinstance(exc, ApiError) and exc.status != 503):
                    raise
                time.sleep(0.2)    # the daemon restarted under us: ask the next one
                continue
            if view["state"] in TERMINAL:
                return view


class Client(Connection):
    """The Python SDK: the daemon's API with typed requests and answers
    (:mod:`corral.api.models`). A request the models reject raises
    :class:`~corral.errors.ValidationError` before anything is sent; an error answer
    raises :class:`ApiError` with the daemon's lines."""

    def _call(self, method: str, path: str, request: Any = None) -> Any:
        body = None if request is None else request.model_dump(mode="json", exclude_unset=True)
        return self.request(method, path, body)

    def health(self) -> models.Health:
        m = _models()
        return m.Health.model_validate(self.request("GET", "/v1/health"))

    def submit(self, jobs: Sequence[Mapping[str, Any] | models.FlagsItem], base_env: Mapping[str, str] | None = None,
               *, workdir: str | None = None) -> list[models.JobView]:
        """Submit job documents (the ``job.yaml`` form, or :class:`~corral.api.models.FlagsItem`)
        as one all-or-nothing batch. Jobs start from ``base_env`` (default: this process's
        environment) and run in ``workdir`` unless they name one (default: the current
        directory, as for ``corral submit``)."""
        m = _models()
        request = _build(m.SubmitRequest, jobs=list(jobs), base_env=_env(base_env),
                         default_workdir=os.getcwd() if workdir is None else workdir)
        return m.JobList.model_validate(self.submit_request(request.model_dump(mode="json", exclude_unset=True))).jobs

    def submit_yaml(self, text: str, *, source: str = "<input>", base_env: Mapping[str, str] | None = None,
                    workdir: str | None = None) -> list[models.JobView]:
        """Submit YAML text with one or more job documents (``corral submit -f``)."""
        m = _models()
        request = _build(m.SubmitRequest, yaml=text, source=source, base_env=_env(base_env),
                         default_workdir=os.getcwd() if workdir is None else workdir)
        return m.JobList.model_validate(self.submit_request(request.model_dump(mode="json", exclude_unset=True))).jobs

    def jobs(self, states: Sequence[str] | None = None, limit: int | None = None) -> list[models.JobView]:
        """Jobs in ``states`` (default all), at most ``limit``, by id."""
        m = _models()
        query = _build(m.JobsQuery, state=list(states or []), limit=limit)
        pairs = [("state", s) for s in query.state] + ([("limit", query.limit)] if query.limit is not None else [])
        suffix = "?" + urlencode(pairs) if pairs else ""
        return m.JobList.model_validate(self.request("GET", "/v1/jobs" + suffix)).jobs

    def job(self, job_id: int) -> models.JobView:
        """Everything about one job (the detail view: usage, events, logs' paths ...)."""
        m = _models()
        return m.JobView.model_validate(self.request("GET", f"/v1/jobs/{_job_id(job_id)}"))

    def cancel(self, ids: Sequence[int]) -> list[models.CancelResult]:
        m = _models()
        request = _build(m.IdsRequest, ids=list(ids))
        return m.CancelResults.model_validate(self._call("POST", "/v1/jobs/cancel", request)).results

    def update(self, ids: Sequence[int], *, priority: int | str | None = None, time: int | float | str | None = None,
               queue: str | None = None) -> list[models.UpdateResult]:
        """New priority, time limit or queue for pending jobs (running ones: time limit)."""
        m = _models()
        fields = {k: v for k, v in (("priority", priority), ("time", time), ("queue", queue)) if v is not None}
        request = _build(m.UpdateRequest, ids=list(ids), **fields)
        return m.UpdateResults.model_validate(self._call("POST", "/v1/jobs/update", request)).results

    def hold(self, ids: Sequence[int]) -> list[int]:
        """Hold pending jobs (all or none); the ids that were not held before."""
        m = _models()
        request = _build(m.IdsRequest, ids=list(ids))
        return m.Changed.model_validate(self._call("POST", "/v1/jobs/hold", request)).changed

    def release(self, ids: Sequence[int]) -> list[int]:
        """Release held jobs (all or none); the ids that were held."""
        m = _models()
        request = _build(m.IdsRequest, ids=list(ids))
        return m.Changed.model_validate(self._call("POST", "/v1/jobs/release", request)).changed

    def wait(self, ids: Sequence[int], poll: float = 30.0) -> list[models.JobView]:
        """Block until every job is in a terminal state; returns their views."""
        m = _models()
        return [m.JobView.model_validate(self.wait_for(_job_id(i), poll)) for i in ids]

    def logs(self, job_id: int, *, stream: str = "stdout", follow: bool = False, offset: int = 0) -> Iterator[bytes]:
        """A job's stdout or stderr as it is read; ``follow``: until the job ends."""
        m = _models()
        query = _build(m.LogsQuery, stream=stream, follow=follow, offset=offset)
        text = urlencode({"stream": query.stream, "follow": "true" if query.follow else "false",
                          "offset": query.offset})
        return self.stream(f"/v1/jobs/{_job_id(job_id)}/logs?{text}")

    def nodes(self) -> list[models.NodeView]:
        m = _models()
        return m.NodeList.model_validate(self.request("GET", "/v1/nodes")).nodes

    def queues(self) -> models.Queues:
        m = _models()
        return m.Queues.model_validate(self.request("GET", "/v1/queues"))

    def top(self) -> models.Top:
        m = _models()
        return m.Top.model_validate(self.request("GET", "/v1/top"))

    def usage(self, since: str = "7d", by: str = "user") -> models.UsageReport:
        m = _models()
        query = _build(m.UsageQuery, since=since, by=by)
        text = urlencode({"since": query.since, "by": query.by})
        return m.UsageReport.model_validate(self.request("GET", f"/v1/usage?{text}"))

    def prune(self, older_than: str | int | None = None) -> models.Pruned:
        """Delete finished jobs older than ``older_than`` (default: the daemon's retention)."""
        m = _models()
        request = _build(m.PruneRequest, **({} if older_than is None else {"older_than": older_than}))
        return m.Pruned.model_validate(self._call("POST", "/v1/prune", request))

    def shutdown(self) -> models.ShutdownAnswer:
        m = _models()
        return m.ShutdownAnswer.model_validate(self.request("POST", "/v1/shutdown"))


def _models():
    """:mod:`corral.api.models`, imported when the SDK first needs it (pydantic is heavy)."""
    from .api import models

    return models


def _build(model: Any, **fields: Any) -> Any:
    """``model(**fields)``, or the first problem as a one-line ValidationError."""
    from pydantic import ValidationError as Invalid

    from .api.problems import as_validation_error

    try:
        return model.model_validate(fields)
    except Invalid as exc:
        raise as_validation_error(exc.errors()) from None


def _job_id(job_id: Any) -> int:
    """A job id for a path, checked like a request's ``ids`` (the error names ``job_id``)."""
    from pydantic import TypeAdapter, ValidationError as Invalid

    from .api.problems import as_validation_error

    try:
        return TypeAdapter(_models().JobId).validate_python(job_id)
    except Invalid as exc:
        raise as_validation_error([{**e, "loc": ("job_id", *e["loc"])} for e in exc.errors()]) from None


def _env(base_env: Mapping[str, str] | None) -> dict[str, str]:
    return dict(os.environ if base_env is None else base_env)


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionLost("corral daemon closed the connection without answering")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def _read_body(sock: socket.socket, headers: dict[str, str], rest: bytes) -> Iterator[bytes]:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        yield from _read_chunked(sock, rest)
        return
    length = headers.get("content-length")
    if length is not None:
        need = int(length) - len(rest)
        if rest:
            yield rest
        while need > 0:
            chunk = sock.recv(min(need, 1 << 20))
            if not chunk:
                raise ConnectionLost(f"corral daemon's answer was cut short: {int(length) - need} of "
                                        f"{int(length)} bytes")
            need -= len(chunk)
            yield chunk
        return
    if rest:
        yield rest
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return
        yield chunk


def _read_chunked(sock: socket.socket, buf: bytes) -> Iterator[bytes]:
    def fill(n: int) -> None:
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionLost("corral daemon closed the connection mid-answer")
            buf += chunk

    while True:
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buf += chunk
        size_line, buf = buf.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return
        fill(size + 2)
        yield buf[:size]
        buf = buf[size + 2:]


__all__ = ["ApiError", "Client", "Connection", "TERMINAL", "urlencode"]
