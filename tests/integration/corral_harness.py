"""Helpers for the integration suite: a real ``corral`` daemon driven through the real CLI.

Every test talks to the daemon only the way a user does: by running the ``corral``
console script (``subprocess``) with ``CORRAL_HOME`` pointing at a short temporary
directory, and by looking at what the job processes themselves wrote. Teardown always
runs ``corral down`` and then SIGKILLs whatever is left: job process groups,
supervisors and the daemon itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

TERMINAL = ("Succeeded", "Failed", "Cancelled")
#: Generous: the machine is small and noisy; tests never assert on durations.
TIMEOUT = 30.0
NCPU = len(os.sched_getaffinity(0))
#: Put into the CLI's environment; the daemon, supervisors and jobs all inherit it, so
#: teardown can find (and kill) every process a test left behind.
MARKER = "CRLTEST_HOME"


def _corral_argv() -> list[str]:
    script = Path(sys.executable).with_name("corral")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "corral.cli.main"]


CORRAL = _corral_argv()


# -- processes ------------------------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].decode().split()


def proc_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie (a zombie has already ended)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def proc_start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def pgroup_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat(int(name))
        if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            out.append(int(name))
    return out


def connected_unix_sockets(pid: int) -> int:
    """How many connected Unix sockets process ``pid`` has open (e.g. a CLI talking to
    the daemon); from /proc/PID/fd and /proc/net/unix (state 03 = connected)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        with open("/proc/net/unix") as f:
            rows = [line.split() for line in f.readlines()[1:]]
    except OSError:
        return 0
    return sum(1 for row in rows if len(row) >= 7 and row[6] in inodes and row[5] == "03")


def wait_until(predicate: Callable[[], Any], timeout: float = TIMEOUT, interval: float = 0.1,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")
        time.sleep(interval)


# -- the CLI --------------------------------------------------------------------------------

class Corral:
    """One CORRAL_HOME plus helpers that run the real ``corral`` CLI against it."""

    def __init__(self, home: str, workdir: str):
        self.home = home
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        self.env["CORRAL_HOME"] = home
        self.env[MARKER] = home

    # raw ------------------------------------------------------------------------------
    def run(self, *args: str, input: str | None = None, timeout: float = 60.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([*CORRAL, *args], input=input, capture_output=True, text=True,
                                  env=env or self.env, cwd=self.workdir, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"`corral {' '.join(args)}` did not finish within {timeout}s "
                        f"(stdout {exc.stdout!r}, stderr {exc.stderr!r})")

    def ok(self, *args: str, **kw) -> str:
        """Run and require exit status 0; returns stdout."""
        res = self.run(*args, **kw)
        assert res.returncode == 0, (f"`corral {' '.join(args)}` exited {res.returncode}\n"
                                     f"stdout: {res.stdout}\nstderr: {res.stderr}")
        return res.stdout

    def json(self, command: str, *args: str, **kw) -> Any:
        """``corral COMMAND --json ARGS...`` (must succeed), parsed."""
        return json.loads(self.ok(command, "--json", *args, **kw))

    # commands ---------------------------------------------------------------------------
    def up(self, *args: str) -> dict:
        return self.json("up", *args)

    def down(self) -> subprocess.CompletedProcess:
        return self.run("down", timeout=60)

    def submit(self, *args: str) -> int:
        """``corral submit --json ARGS`` -> the new job's id."""
        out = self.json("submit", *args)
        assert isinstance(out["id"], int), out
        return out["id"]

    def show(self, job_id: int) -> dict:
        return self.json("show", str(job_id))

    def ps(self, *args: str) -> list[dict]:
        return self.json("ps", *args)["jobs"]

    def node(self) -> dict:
        nodes = self.json("nodes")["nodes"]
        assert len(nodes) == 1, nodes
        return nodes[0]

    def gpu_holders(self) -> dict[int, int | None]:
        return {g["index"]: g["job"] for g in self.node()["gpus"]}

    def logs(self, job_id: int, *flags: str) -> str:
        return self.ok("logs", *flags, str(job_id))

    def wait(self, *ids: int) -> subprocess.CompletedProcess:
        return self.run("wait", *map(str, ids), timeout=90)

    def wait_state(self, job_id: int, states: Iterable[str] | str, timeout: float = TIMEOUT) -> dict:
        states = (states,) if isinstance(states, str) else tuple(states)
        box: dict = {}

        def check():
            box["job"] = self.show(job_id)
            return box["job"]["state"] in states

        wait_until(check, timeout, what=f"job {job_id} to be {'/'.join(states)} (last: {box.get('job')})")
        return box["job"]

    def show_when(self, job_id: int, predicate: Callable[[dict], Any], what: str,
                  timeout: float = TIMEOUT) -> dict:
        """Poll ``corral show`` until ``predicate(view)`` holds; returns that view."""
        def check():
            view = self.show(job_id)
            return view if predicate(view) else None

        return wait_until(check, timeout, what=what)

    def wait_done(self, *ids: int) -> list[dict]:
        """``corral wait`` (any exit status), then each job's ``show --json``."""
        res = self.wait(*ids)
        assert res.returncode in (0, 1), res.stderr
        return [self.show(i) for i in ids]

    # files and processes ----------------------------------------------------------------
    def daemon_pid_from_lock(self) -> int | None:
        """The pid the daemon wrote into ``$CORRAL_HOME/daemon.lock``."""
        try:
            return int(Path(self.home, "daemon.lock").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def socket_exists(self) -> bool:
        return Path(self.home, "corral.sock").exists()

    def write_config(self, text: str) -> None:
        Path(self.home, "config.yaml").write_text(text)

    def job_main_pid(self, job_id: int) -> int:
        """The pid a job printed as ``pid=$$`` (its main process, a session leader)."""
        def find():
            for line in self.logs(job_id).splitlines():
                if line.startswith("pid="):
                    return int(line[4:])
            return None

        return wait_until(find, what=f"job {job_id} to print its pid")

    def processes(self) -> list[int]:
        """Every live process started on behalf of this home: the daemon, its helpers,
        supervisors and jobs all inherit the marker variable from the CLI's environment."""
        marker = f"{MARKER}={self.home}".encode()
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
            except OSError:
                continue
            if marker in environ and proc_alive(int(name)):
                out.append(int(name))
        return out

    # teardown -----------------------------------------------------------------------------
    def kill_everything(self) -> None:
        for _ in range(20):
            pids = self.processes()
            if not pids:
                return
            for pid in pids:
                try:
                    if os.getpgid(pid) == pid:
                        os.killpg(pid, signal.SIGKILL)  # the whole group: a job and its children
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.05)


def make_corral(workroot: str) -> Corral:
    home = tempfile.mkdtemp(prefix="ch", dir="/tmp")
    work = tempfile.mkdtemp(prefix="cw", dir=workroot)
    c = Corral(home, work)
    assert len(os.path.join(home, "corral.sock")) < 107
    return c


def teardown(c: Corral) -> None:
    try:
        c.run("down", timeout=60)
    except BaseException:  # noqa: BLE001 - cleanup must go on
        pass
    c.kill_everything()
    remove_cgroups(c.home)
    shutil.rmtree(c.home, ignore_errors=True)


def remove_cgroups(home: str) -> None:
    """Remove the cgroups a daemon of ``home`` made (its jobs are dead by now)."""
    from corral.executors.local.cgroups import remove_parent
    from corral.executors.local.enforcement import home_parents

    if os.geteuid() != 0:
        return
    for support in home_parents(home):
        remove_parent(support)


def gate_cmd(gate: Path | str, before: str = "", after: str = "exit 0") -> str:
    """A shell command: run ``before``, wait until file ``gate`` exists, run ``after``."""
    pre = f"{before}; " if before else ""
    return f"{pre}while [ ! -e {gate} ]; do sleep 0.1; done; {after}"
