"""``corral run``: submit, stream stdout/stderr apart, exit with the job's code; Ctrl-C
cancels; ``--pty`` gives the job a terminal inside its allocation."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios

import pytest

from corral_harness import CORRAL, TIMEOUT, gate_cmd, wait_until

pytestmark = pytest.mark.integration


def _popen(c, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([*CORRAL, *args], env=c.env, cwd=c.workdir, text=True, **kw)


def _last_job(c) -> dict:
    return c.ps("-a")[-1]


# streaming and exit codes ----------------------------------------------------------------
def test_run_streams_stdout_and_stderr_apart_and_exits_with_the_job_code(corral4):
    res = corral4.run("run", "--", "sh", "-c", "echo out; echo err >&2; exit 4")
    assert res.returncode == 4, res
    assert res.stdout == "out\n"
    assert res.stderr == "err\n"


def test_run_succeeds_with_the_allocation_environment(corral4):
    res = corral4.run("run", "--gpus", "2", "--", "sh -c 'echo gpus=$CUDA_VISIBLE_DEVICES'")
    assert res.returncode == 0, res
    job = _last_job(corral4)
    view = corral4.show(job["id"])
    assert res.stdout == f"gpus={','.join(map(str, view['gpus']))}\n"


def test_run_signal_is_128_plus_the_signal(corral4):
    res = corral4.run("run", "--", "sh", "-c", "kill -USR1 $$")
    assert res.returncode == 128 + signal.SIGUSR1, res


def test_run_launch_failure_is_one_line_and_exit_1(corral4):
    res = corral4.run("run", "--", "no-such-program-corral")
    assert res.returncode == 1, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "failed to launch" in lines[0] and "no-such-program-corral" in lines[0], lines


def test_run_refuses_an_array_in_one_line(corral4):
    res = corral4.run("run", "--array", "0-3", "--", "true")
    assert res.returncode == 1
    assert res.stderr.startswith("error: ") and "--array" in res.stderr and len(res.stderr.splitlines()) == 1
    assert corral4.ps() == []


def test_run_waits_says_why_once_then_streams(corral4, tmp_path):
    c = corral4
    gate = tmp_path / "gate"
    hog = c.submit("--gpus", "4", "--cpus", "100m", "--", gate_cmd(gate))
    c.wait_state(hog, "Running")
    proc = _popen(c, "run", "--gpus", "1", "--cpus", "100m", "--", "echo hi", stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    try:
        wait_until(lambda: select.select([proc.stderr], [], [], 0.2)[0], what="corral run to say why it waits")
        first = proc.stderr.readline()
        gate.touch()
        out, err = proc.communicate(timeout=TIMEOUT * 2)
        err = first + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (out, err)
    assert out == "hi\n"
    waits = [line for line in err.splitlines() if "waiting" in line]
    assert len(waits) == 1 and "insufficient nvidia.com/gpu" in waits[0], err
    assert waits[0].startswith("corral: job ")


# Ctrl-C ----------------------------------------------------------------------------------
def test_sigint_cancels_a_running_job_and_exits_130(corral4):
    c = corral4
    proc = _popen(c, "run", "--cpus", "100m", "--", "echo ready; exec sleep 1000", stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == "ready\n"
        job = _last_job(c)
        assert job["state"] == "Running"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT * 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert f"cancelling job {job['id']}" in err
    view = c.show(job["id"])
    assert view["state"] == "Cancelled", view


def test_a_second_sigint_exits_at_once(corral4):
    c = corral4
    proc = _popen(c, "run", "--cpus", "100m", "--grace", "20s", "--",
                  "trap '' TERM; echo ready; while :; do sleep 0.1; done", stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == "ready\n"
        job = _last_job(c)
        proc.send_signal(signal.SIGINT)
        assert f"cancelling job {job['id']}" in proc.stderr.readline()     # said once the cancel is sent
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert c.show(job["id"])["state"] == "Running"          # it ignores SIGTERM: its grace period runs on


def test_sigint_cancels_a_pending_job(corral4, tmp_path):
    c = corral4
    gate = tmp_path / "gate"
    hog = c.submit("--gpus", "4", "--cpus", "100m", "--", gate_cmd(gate))
    c.wait_state(hog, "Running")
    proc = _popen(c, "run", "--gpus", "1", "--cpus", "100m", "--", "echo never", stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    try:
        wait_until(lambda: any(j["id"] != hog for j in c.ps()), what="the run job to be submitted")
        job = next(j for j in c.ps() if j["id"] != hog)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT * 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        gate.touch()
    assert proc.returncode == 130, err
    assert out == ""
    assert c.show(job["id"])["state"] == "Cancelled"


# --pty -----------------------------------------------------------------------------------
class Terminal:
    """``corral ARGS`` on a real pseudo-terminal of this test (pty.fork): type, read, wait."""

    def __init__(self, c, *args: str, rows: int = 0, cols: int = 0, cli: list[str] | None = None,
                 cwd: str | None = None):
        """``cli``: how to run the CLI (default: this checkout's ``corral``)."""
        argv = [*(cli or CORRAL), *args]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the CLI's process
            try:
                os.chdir(cwd or c.workdir)
                os.execvpe(argv[0], argv, c.env)
            finally:
                os._exit(127)
        if rows:
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.output = b""

    def poke(self) -> bytes:
        """What the terminal shows so far (read without waiting)."""
        while select.select([self.fd], [], [], 0)[0]:
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                break
            if not data:
                break
            self.output += data
        return self.output

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def read_until(self, token: bytes, timeout: float = TIMEOUT) -> bytes:
        def more():
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                self.output += data
                if not data:
                    raise AssertionError(f"the terminal closed before {token!r}: {self.output!r}")
            return token in self.output

        wait_until(more, timeout, interval=0, what=f"{token!r} on the terminal (so far {self.output!r})")
        return self.output

    def wait(self, timeout: float = TIMEOUT * 2) -> int:
        code = self.wait_open(timeout)
        os.close(self.fd)
        return code

    def wait_open(self, timeout: float = TIMEOUT * 2) -> int:
        """Wait for the CLI's exit code, leaving the terminal open (to look at it after)."""
        def ended():
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if ready:
                    self.output += os.read(self.fd, 4096)
            except OSError:
                pass
            done, status = os.waitpid(self.pid, os.WNOHANG)
            return (os.waitstatus_to_exitcode(status),) if done else None

        (code,) = wait_until(ended, timeout, interval=0, what=f"the CLI to exit (terminal so far {self.output!r})")
        self.pid = 0
        return code

    def kill(self) -> None:
        if not self.pid:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_pty_shell_in_the_allocation_exit_code_and_window_size(corral4):
    c = corral4
    plain = c.run("run", "--", "cat", "/proc/self/cgroup")
    assert plain.returncode == 0, plain
    term = Terminal(c, "run", "--pty", "--gpus", "1", "--cpus", "100m", "--", "sh", rows=33, cols=101)
    try:
        job = wait_until(lambda: next((j for j in c.ps() if j["state"] == "Running"), None),
                         what="the interactive job to run")
        term.type("stty size; cat /proc/self/cgroup; tty; echo GPUS=$CUDA_VISIBLE_DEVICES; exit 3\n")
        term.read_until(b"GPUS=")
        code = term.wait()
    finally:
        term.kill()
    view = c.show(job["id"])
    out = term.output.decode(errors="replace")
    assert code == 3, out
    assert (view["state"], view["exit_code"]) == ("Failed", 3), view
    assert f"GPUS={view['gpus'][0]}" in out and len(view["gpus"]) == 1, out
    assert "33 101" in out, out                                    # the window size came through
    assert f"GPUS={view['gpus'][0]}" in c.logs(job["id"])          # the terminal's output is in its log
    assert "/dev/pts/" in out, out                                 # a real terminal
    if "job-" in plain.stdout:                                    # cgroups here: the shell is in its job's
        assert f"job-{job['id']}" in out, out
    # Released: the GPU is free again, the socket gone.
    assert all(holder is None for holder in c.gpu_holders().values())
    assert not os.path.exists(view["pty"])


def test_pty_client_gone_hangs_the_shell_up_and_releases(corral4):
    c = corral4
    term = Terminal(c, "run", "--pty", "--gpus", "1", "--cpus", "100m", "--", "sh")
    try:
        job = wait_until(lambda: next((j for j in c.ps() if j["state"] == "Running"), None),
                         what="the interactive job to run")
        term.type("echo here-$((40+2))\n")
        term.read_until(b"here-42")
    finally:
        term.kill()                                                # the CLI dies: the terminal hangs up
    view = c.wait_done(job["id"])[0]
    assert (view["state"], view["signal"]) == ("Failed", signal.SIGHUP), view
    assert all(holder is None for holder in c.gpu_holders().values())


def test_pty_sigint_to_the_cli_cancels(corral4):
    c = corral4
    term = Terminal(c, "run", "--pty", "--cpus", "100m", "--", "sh")
    try:
        job = wait_until(lambda: next((j for j in c.ps() if j["state"] == "Running"), None),
                         what="the interactive job to run")
        term.type("echo up-$((1+1))\n")
        term.read_until(b"up-2")
        os.kill(term.pid, signal.SIGINT)
        code = term.wait()
    finally:
        term.kill()
    assert code == 130
    assert c.wait_done(job["id"])[0]["state"] == "Cancelled"


def test_pty_with_an_array_is_refused_naming_the_field(corral4):
    res = corral4.run("submit", "-f", "-", input="spec: {command: [sh], pty: true, array: 0-1}\n")
    assert res.returncode == 1
    assert "pty" in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr


# --pty in system mode: the terminal is the job's user's --------------------------------------
@pytest.fixture(scope="module")
def system_home(tmp_path_factory):
    """A root daemon for the test users (chaos/users.py makes them); skipped where it cannot be."""
    import sys
    import tempfile
    from pathlib import Path

    from corral_harness import make_corral, teardown

    sys.path.append(str(Path(__file__).resolve().parents[2] / "chaos"))
    try:
        import users
        users.ensure_users()
        argv, extra = users.user_cli(CORRAL)
    except Exception as exc:  # noqa: BLE001 - users.Unavailable, or no chaos helpers
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"system mode needs root and the test users: {exc} (CI=true: this test must run)")
        pytest.skip(f"system mode needs root and the test users: {exc}")
    c = make_corral(str(tmp_path_factory.mktemp("sys")))
    workroot = tempfile.mkdtemp(prefix="crlrun", dir="/tmp")
    os.chmod(workroot, 0o755)
    try:
        c.write_config(f"socket_group: {users.GROUP}\n")
        c.up("--simulate-gpus", "2")
        yield c, users, argv, extra, workroot
    finally:
        left = [str(j["id"]) for j in c.ps()]
        if left:
            c.run("cancel", *left)
            c.run("wait", *left, timeout=60)
        teardown(c)
        import shutil

        shutil.rmtree(workroot, ignore_errors=True)


def test_pty_in_system_mode_runs_as_the_user_on_their_own_terminal(system_home):
    import pwd

    c, users, argv, extra, workroot = system_home
    assigns = [f"CORRAL_HOME={c.home}", "PYTHONDONTWRITEBYTECODE=1", *(f"{k}={v}" for k, v in extra.items())]
    cli = ["runuser", "-u", users.ALICE, "--", "env", *assigns, *argv]
    term = Terminal(c, "run", "--pty", "--gpus", "1", "--cpus", "100m", "--", "sh", cli=cli, cwd=workroot)
    try:
        job = wait_until(lambda: next((j for j in c.ps() if j["state"] == "Running"), None),
                         what="the interactive job to run")
        term.type("id -un; stat -c 'tty-owner=%U' $(tty); echo GPUS=$CUDA_VISIBLE_DEVICES; exit 5\n")
        term.read_until(b"GPUS=")
        code = term.wait()
    finally:
        term.kill()
    out = term.output.decode(errors="replace")
    assert code == 5, out
    view = c.show(job["id"])
    assert view["user"] == users.ALICE and view["exit_code"] == 5, view
    assert f"{users.ALICE}\r\n" in out and f"tty-owner={users.ALICE}" in out, out
    assert f"GPUS={view['gpus'][0]}" in out, out
    directory = os.path.dirname(view["pty"])
    assert oct(os.stat(directory).st_mode & 0o777) == oct(0o711)      # names reachable, none listed
    assert pwd.getpwnam(users.ALICE)                                  # (a real user, not root)
