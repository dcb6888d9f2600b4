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
from .errors import ConnectionLost, CorralError, DaemonUnavailable, ValidationError
from .paths import Paths

TYPE_CHECKING = False  # `typing` costs the CLI start-up time; type checkers still see this
if TYPE_CHECKING:
    from typing import Any, Iterator, Mapping, Sequence

    from .api import models

#: The states a job ends in (a wait is over).
TERMINAL = ("Succeeded", "Failed", "Cancelled")

#: Say on stderr when a call starts a daemon (``corral: started a daemon for HOME (pid N)``);
#: the CLI turns it on, the SDK leaves it off.
ANNOUNCE_AUTOSTART = False


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


class WaitTimeout(CorralError, TimeoutError):
    """``Client.wait(..., timeout=...)``: not every job ended in time."""

    status = 408


class _Remote:
    """Where a remote daemon listens: ``http(s)://HOST:PORT``."""

    def __init__(self, text: str, scheme: str, host: str, port: int):
        self.text, self.scheme, self.host, self.port = text, scheme, host, port
        self.host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def connect(self, timeout: float) -> socket.socket:
        import socket as pysocket        # create_connection is in the Python module, not _socket

        try:
            sock = pysocket.create_connection((self.host, self.port), timeout=timeout)
        except OSError as exc:
            raise DaemonUnavailable(f"cannot reach the corral daemon at {self.text}: {exc.strerror or exc}") from None
        if self.scheme == "https":
            import ssl

            context = ssl.create_default_context(cafile=os.environ.get("CORRAL_CA") or None)
            try:
                sock = context.wrap_socket(sock, server_hostname=self.host)
            except (ssl.SSLError, OSError) as exc:
                sock.close()
                raise DaemonUnavailable(f"TLS with {self.text} failed: {getattr(exc, 'reason', None) or exc} "
                                        "(a self-signed certificate: point CORRAL_CA at it)") from None
        return sock


def _parse_url(text: str) -> "_Remote | None":
    """``http(s)://HOST[:PORT][/]`` -> :class:`_Remote` (None for an empty one)."""
    if not text:
        return None
    import re

    m = re.match(r"^(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?/?\Z", text)
    if m is None or (m.group(3) and not 0 < int(m.group(3)) < 65536):
        raise ValidationError("CORRAL_URL", text, "expected http(s)://HOST:PORT, e.g. https://gpu-box:8765")
    scheme, host = m.group(1), m.group(2).strip("[]")
    return _Remote(text, scheme, host, int(m.group(3) or (443 if scheme == "https" else 80)))


class Connection:
    """The daemon of one home, spoken to with plain dicts (the CLI's transport); or a
    remote daemon's TCP API when ``url`` (or ``CORRAL_URL``) is given, with ``token``
    (or ``CORRAL_TOKEN``)."""

    def __init__(self, home: str | None = None, *, autostart: bool = True,
                 start_options: list[str] | None = None, timeout: float = 330.0,
                 create_home: bool = False, announce: bool | None = None, url: str | None = None,
                 token: str | None = None):
        self.paths = Paths(home)
        #: A remote daemon's TCP API (``CORRAL_URL``, ``--url``), with a bearer token
        #: (``CORRAL_TOKEN``): then there is no socket to use and nothing to autostart.
        self.remote = _parse_url(url if url is not None else os.environ.get("CORRAL_URL", ""))
        self.token = token if token is not None else os.environ.get("CORRAL_TOKEN", "")
        if self.remote is not None and not self.token:
            raise DaemonUnavailable(f"CORRAL_URL is {self.remote.text}, but no token is given: set CORRAL_TOKEN "
                                    "(make one with `corral token create` where the daemon runs)")
        self.autostart = autostart and self.remote is None
        self.start_options = start_options or []
        self.timeout = timeout
        #: Starting a daemon may create a home that was named (--home, CORRAL_HOME) but
        #: does not exist: only ``corral up`` does. The default home is always created.
        self.create_home = create_home
        self.announce = ANNOUNCE_AUTOSTART if announce is None else announce

    # transport -------------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        if self.remote is not None:
            return self.remote.connect(self.timeout)
        problem = self.paths.problem()
        if problem:
            raise DaemonUnavailable(problem)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.paths.socket))
        except NotADirectoryError:
            sock.close()
            raise DaemonUnavailable(f"corral home {self.paths.home} is not a directory (a part of its path "
                                    "is a file); give --home or CORRAL_HOME a directory") from None
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
        auth = f"Authorization: Bearer {self.token}\r\n" if self.remote is not None else ""
        host = self.remote.host_header if self.remote is not None else "corral"
        head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}"
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

    def events(self, job: int | None = None, after: int | None = None) -> Iterator[dict]:
        """Jobs' state changes as they happen (``GET /v1/events``), as dicts: ``id``,
        ``job``, ``ts``, ``from``, ``to``, ``reason``, ``message``, ``name``, ``user``,
        ``queue``; from now, or after event id ``after`` (0: all the store has); ``job``:
        one job's. Endless (break out of it); a daemon that restarts is asked again from
        the last id seen."""
        last = after
        while True:
            query = {k: v for k, v in (("job", job), ("after", last)) if v is not None}
            buf = b""
            try:
                for chunk in self.stream("/v1/events" + ("?" + urlencode(query) if query else "")):
                    buf += chunk
                    while b"\n\n" in buf:
                        block, buf = buf.split(b"\n\n", 1)
                        fields = {}
                        for line in block.decode(errors="replace").splitlines():
                            key, sep, value = line.partition(": ")
                            if sep and not line.startswith(":"):
                                fields[key] = value
                        if fields.get("event") == "job":
                            data = json.loads(fields["data"])
                            last = data["id"]
                            yield data
            except (CorralError, OSError):
                if not self.autostart and self.remote is None:
                    raise
            time.sleep(0.5)                   # the daemon went away: ask the next one, from where we were

    # daemon lifecycle --------------------------------------------------------------------
    def is_running(self) -> bool:
        if self.remote is not None:
            try:
                self.request("GET", "/v1/health")
                return True
            except DaemonUnavailable:
                return False
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
        problem = self.paths.problem()
        if problem:
            raise DaemonUnavailable(problem)
        home = self.paths.home
        if self.paths.explicit and not self.create_home and not os.path.isdir(home):
            raise DaemonUnavailable(f"no corral home at {home}; create it with corral --home {home} up")
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
                if self.announce and proc.poll() is None and self._lock_pid() == proc.pid:
                    print(f"corral: started a daemon for {home} (pid {proc.pid})", file=sys.stderr)
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

    def _lock_pid(self) -> int | None:
        """The pid the running daemon wrote into the home's lock file."""
        try:
            with open(self.paths.lock, encoding="ascii", errors="replace") as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def lock_held(self) -> bool:
        """True while a daemon process holds this home's lock (running or stopping)."""
        import fcntl

        if self.remote is not None:
            return False                          # not ours to watch: it stops on its machine

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

    def submit_command(self, command: str | Sequence[str], *, workdir: str | None = None,
                       base_env: Mapping[str, str] | None = None, **flags: Any) -> models.JobView:
        """One job the way ``corral submit`` makes it: ``command`` (a list, or one string
        run by ``/bin/sh -c``) and the CLI's options as keywords -- ``cpus``, ``mem``,
        ``gpus``, ``time``, ``name``, ``env``, ``queue``, ``priority``, ``array``,
        ``after``, ``retries``, ``hold``, ``labels``, ``node_selector`` ... with the CLI's
        defaults (the current directory, this process's environment)."""
        requests = {k: str(flags.pop(name)) for name, k in (("cpus", "cpu"), ("mem", "memory")) if name in flags}
        limits = {k: str(flags.pop(name)) for name, k in (("limit_cpus", "cpu"), ("limit_mem", "memory"))
                  if name in flags}
        item: dict[str, Any] = {"command": command if isinstance(command, str) else list(command), **flags}
        if requests:
            item["requests"] = {**item.get("requests", {}), **requests}
        if limits:
            item["limits"] = {**item.get("limits", {}), **limits}
        jobs = self.submit([{"flags": item}], base_env, workdir=workdir)
        return jobs[0]

    def cancel(self, ids: Sequence[int], *, missing_ok: bool = False) -> list[models.CancelResult]:
        """Cancel jobs (each: what happened). An id the daemon does not know raises
        :class:`ApiError` (404, one line per id, as ``job()`` does) after the others were
        cancelled, unless ``missing_ok`` (then it is a result with ``ok`` false)."""
        m = _models()
        request = _build(m.IdsRequest, ids=list(ids))
        results = m.CancelResults.model_validate(self._call("POST", "/v1/jobs/cancel", request)).results
        missing = [r.result for r in results if not r.ok]
        if missing and not missing_ok:
            raise ApiError(404, missing)
        return results

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

    def wait(self, ids: Sequence[int], poll: float = 30.0, timeout: float | None = None) -> list[models.JobView]:
        """Block until every job is in a terminal state; returns their views. With
        ``timeout`` (seconds), :class:`WaitTimeout` when they have not all ended by then."""
        m = _models()
        if timeout is None:
            return [m.JobView.model_validate(self.wait_for(_job_id(i), poll)) for i in ids]
        deadline = time.monotonic() + timeout
        out = []
        for i in ids:
            while True:
                left = deadline - time.monotonic()
                view = self.request("GET", f"/v1/jobs/{_job_id(i)}/wait?timeout={max(min(left, poll), 0):.3f}")
                if view["state"] in TERMINAL:
                    out.append(m.JobView.model_validate(view))
                    break
                if time.monotonic() >= deadline:
                    raise WaitTimeout(f"job {i} is still {view['state']} after {timeout:g}s")
        return out


    def drain(self, node: str) -> models.DrainAnswer:
        """Start nothing new on ``node`` (admins); its running jobs run on."""
        m = _models()
        return m.DrainAnswer.model_validate(self.request("POST", f"/v1/nodes/{_quote(node)}/drain"))

    def undrain(self, node: str) -> models.DrainAnswer:
        m = _models()
        return m.DrainAnswer.model_validate(self.request("POST", f"/v1/nodes/{_quote(node)}/undrain"))

    def create_token(self, *, name: str | None = None, scope: str = "submit", expires: str | int | None = None) -> Any:
        """A bearer token for the TCP API (``.token`` is shown this once)."""
        from .api.tokens import TokenCreated, TokenRequest

        request = _build(TokenRequest, **{k: v for k, v in (("name", name), ("scope", scope), ("expires", expires))
                                          if v is not None})
        return TokenCreated.model_validate(self._call("POST", "/v1/tokens", request))

    def tokens(self) -> list[Any]:
        from .api.tokens import TokenList

        return TokenList.model_validate(self.request("GET", "/v1/tokens")).tokens

    def revoke_token(self, ident: str) -> Any:
        from .api.tokens import TokenView

        return TokenView.model_validate(self.request("DELETE", f"/v1/tokens/{_quote(ident)}"))

    def logs(self, job_id: int, *, stream: str = "stdout", follow: bool = False, offset: int = 0,
             attempt: int | None = None) -> Iterator[bytes]:
        """A job's stdout or stderr as it is read; ``follow``: until the job ends;
        ``attempt``: only what its N-th run wrote."""
        m = _models()
        query = _build(m.LogsQuery, stream=stream, follow=follow, offset=offset, attempt=attempt)
        fields = {"stream": query.stream, "follow": "true" if query.follow else "false", "offset": query.offset}
        if query.attempt is not None:
            fields["attempt"] = query.attempt
        text = urlencode(fields)
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


__all__ = ["ApiError", "Client", "Connection", "TERMINAL", "WaitTimeout", "urlencode"]
