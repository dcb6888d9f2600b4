"""What every chaos scenario needs: a corral home of its own with a real daemon, raw HTTP
over its socket, and a cleanup that stops exactly what the scenario started.

Every process started for a home (the daemon, supervisors, jobs) inherits the marker
variable ``CHAOS_HOME``, so :meth:`Home.close` finds them in ``/proc`` and kills them by
pid; nothing is killed by name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

MARKER = "CHAOS_HOME"


def corral_argv() -> list[str]:
    script = Path(sys.executable).with_name("corral")
    return [str(script)] if script.exists() else [sys.executable, "-m", "corral.cli.main"]


CORRAL = corral_argv()


def is_root() -> bool:
    return os.geteuid() == 0


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy; returns its value, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X")


@dataclass
class Answer:
    """One HTTP answer (``status`` 0: the daemon closed the connection without one)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def error_line(self) -> str | None:
        """The error's one line, when the body is corral's error form."""
        data = self.json()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return data["error"]
        return None


class Home:
    """A temporary CORRAL_HOME; the daemon is started by :meth:`up` (or by autostart)."""

    def __init__(self, root: str | None = None, prefix: str = "cx"):
        # Short paths: a Unix socket's path must stay under 108 bytes.
        self.home = tempfile.mkdtemp(prefix=prefix, dir=root or "/tmp")
        self.workdir = tempfile.mkdtemp(prefix="w", dir=self.home)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        self.env["CORRAL_HOME"] = self.home
        self.env[MARKER] = self.home

    @property
    def socket_path(self) -> str:
        return os.path.join(self.home, "corral.sock")

    def path(self, *parts: str) -> Path:
        return Path(self.home, *parts)

    def write_config(self, text: str) -> None:
        self.path("config.yaml").write_text(text)

    # the CLI -----------------------------------------------------------------------------
    def cli(self, *args: str, input: str | None = None, timeout: float = 120.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([*CORRAL, *args], input=input, capture_output=True, text=True,
                                  env=env or self.env, cwd=self.workdir, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 124, exc.stdout or "", f"timed out after {timeout}s")

    def cli_json(self, *args: str, **kw) -> Any:
        res = self.cli(args[0], "--json", *args[1:], **kw)
        if res.returncode != 0:
            raise RuntimeError(f"corral {' '.join(args)} exited {res.returncode}: {res.stderr.strip()}")
        return json.loads(res.stdout)

    def up(self, *args: str) -> dict:
        return self.cli_json("up", *args)

    def daemon_pid(self) -> int | None:
        try:
            return int(self.path("daemon.lock").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill_daemon(self) -> int | None:
        """SIGKILL the daemon (as a crash would) and wait until it is gone."""
        pid = self.daemon_pid()
        if pid is None or not alive(pid):
            return None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), timeout=10)
        return pid

    # raw HTTP ----------------------------------------------------------------------------
    def raw(self, data: bytes, timeout: float = 15.0) -> Answer:
        """Send bytes as they are; read the whole answer (the request asks to close)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.socket_path)
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass                           # the daemon may answer before reading it all
            chunks = []
            while True:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        except (socket.timeout, OSError):
            return Answer(0)
        finally:
            sock.close()
        return parse_answer(b"".join(chunks))

    def request(self, method: str, path: str, body: Any = None, *, raw_body: bytes | None = None,
                content_type: str = "application/json", headers: dict[str, str] | None = None,
                timeout: float = 15.0) -> Answer:
        payload = raw_body if raw_body is not None else (b"" if body is None else json.dumps(body).encode())
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"{method} {path} HTTP/1.1\r\nHost: corral\r\nConnection: close\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n{extra}\r\n")
        return self.raw(head.encode("latin-1") + payload, timeout=timeout)

    def serving(self) -> bool:
        return self.request("GET", "/v1/health").status == 200

    def jobs(self) -> list[dict]:
        answer = self.request("GET", "/v1/jobs?limit=1000000", timeout=60)
        if answer.status != 200:
            raise RuntimeError(f"listing jobs: HTTP {answer.status} {answer.body[:200]!r}")
        return answer.json()["jobs"]

    def daemon_log(self) -> str:
        try:
            return self.path("daemon.log").read_text(errors="replace")
        except OSError:
            return ""

    # cleanup -----------------------------------------------------------------------------
    def processes(self) -> list[int]:
        marker = f"{MARKER}={self.home}".encode()
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if marker in f.read().split(b"\0") and alive(int(name)):
                        found.append(int(name))
            except OSError:
                continue
        return found

    def job_pids(self) -> list[int]:
        """Jobs' main processes from their state files (a system-mode job starts from a
        clean environment, without the marker)."""
        found = []
        for state in self.path("jobs").glob("*/state"):
            try:
                line = next(ln for ln in state.read_text().splitlines() if ln.startswith("pids "))
                job = int(line.split()[2])
            except (OSError, ValueError, IndexError, StopIteration):
                continue
            if alive(job):
                found.append(job)
        return found

    def close(self, remove: bool = True) -> None:
        """``corral down``, then SIGKILL whatever of this home is left, its cgroups and files."""
        if self.path("corral.sock").exists():
            self.cli("down", timeout=60)
        for _ in range(50):
            pids = self.processes() + self.job_pids()
            if not pids:
                break
            for pid in pids:
                try:
                    if os.getpgid(pid) == pid:
                        os.killpg(pid, signal.SIGKILL)
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.05)
        remove_cgroups(self.home)
        if remove:
            shutil.rmtree(self.home, ignore_errors=True)


def job_cgroups(home: str) -> list[str]:
    """The job cgroup directories under this home's parent groups (root only)."""
    if not is_root():
        return []
    from corral.executors.local.cgroups import job_groups
    from corral.executors.local.enforcement import home_parents

    return sorted(d for support in home_parents(home) for dirs in job_groups(support).values() for d in dirs)


def remove_cgroups(home: str) -> None:
    """The cgroups a daemon of ``home`` made (its jobs are dead by now)."""
    if not is_root():
        return
    from corral.executors.local.cgroups import remove_parent
    from corral.executors.local.enforcement import home_parents

    for support in home_parents(home):
        remove_parent(support)


def parse_answer(data: bytes) -> Answer:
    if not data:
        return Answer(0)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return Answer(0, body=data)
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    return Answer(status, headers, body)


def dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return bytes(out)


@dataclass
class Result:
    """One scenario's figures: ``figures`` are printed; ``failures`` (each a line) say
    which of the scenario's guarantees did not hold (none: it passed)."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and self.skipped is None

    def check(self, condition: bool, line: str) -> None:
        if not condition:
            self.failures.append(line)
