"""A shared machine (system mode): a root daemon, real users on its socket.

The test setup creates (idempotently, and leaves in place) the groups ``corraltest``
(may use the socket), ``corraltestadm`` (admins) and ``corraltestout``, and the users
``crlalice`` and ``crlbob`` (socket group), ``crladmin`` (socket group + admins) and
``crlout`` (neither). Each user runs the real CLI through ``runuser``, so the daemon
sees their real uid on the socket (SO_PEERCRED). Needs root: skipped otherwise, but a
failure under ``CI=true`` (where the suite runs as root and must cover this).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from corral_harness import CORRAL, Corral, make_corral, teardown, wait_until

# The users are made by the chaos suite's helper (chaos/users.py), shared with its attacks.
sys.path.append(str(Path(__file__).resolve().parents[2] / "chaos"))
import users as test_users  # noqa: E402
from users import ADMIN, ADMIN_GROUP, ALICE, BOB, GROUP, OUTSIDER  # noqa: E402,F401

#: In the environment of every CLI the test runs; a job must never see it.
SECRET = "CRLTEST_SECRET"
CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str):
    if CI:
        pytest.fail(f"{reason} (CI=true: this test must run in CI)")
    pytest.skip(reason)


def ensure_users() -> None:
    """Create the test's groups and users unless they exist (left in place afterwards)."""
    try:
        test_users.ensure_users()
    except test_users.Unavailable as exc:
        unavailable(str(exc))


def user_cli() -> tuple[list[str], dict[str, str]]:
    """How the test users can run this checkout's CLI (skipped, failed under CI, when they cannot)."""
    try:
        return test_users.user_cli(CORRAL)
    except test_users.Unavailable as exc:
        unavailable(str(exc))
        raise


class System:
    """The system daemon plus a way to run the CLI as each test user."""

    def __init__(self, c: Corral, argv: list[str], extra: dict[str, str], workdir: str, private: str):
        self.c, self.argv, self.extra, self.workdir, self.private = c, argv, extra, workdir, private

    def run(self, user: str, *args: str) -> subprocess.CompletedProcess:
        env = dict(self.c.env)
        env[SECRET] = "root-only"
        assigns = [f"CORRAL_HOME={self.c.home}", "PYTHONDONTWRITEBYTECODE=1",
                   *(f"{k}={v}" for k, v in self.extra.items())]
        return subprocess.run(["runuser", "-u", user, "--", "env", *assigns, *self.argv, *args],
                              capture_output=True, text=True, env=env, cwd=self.workdir, timeout=60)

    def ok(self, user: str, *args: str) -> str:
        res = self.run(user, *args)
        assert res.returncode == 0, f"`corral {' '.join(args)}` as {user}: {res.returncode}\n{res.stdout}\n{res.stderr}"
        return res.stdout

    def json(self, user: str, command: str, *args: str):
        import json

        return json.loads(self.ok(user, command, "--json", *args))

    def submit(self, user: str, *args: str) -> int:
        return self.json(user, "submit", "--cpus", "100m", *args)["id"]


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    ensure_users()
    argv, extra = user_cli()
    c = make_corral(str(tmp_path_factory.mktemp("users")))
    workroot = tempfile.mkdtemp(prefix="crlusers", dir="/tmp")
    os.chmod(workroot, 0o755)                       # every test user may enter it
    private = os.path.join(workroot, "private")
    os.mkdir(private, 0o700)                        # root's alone
    try:
        c.write_config(f"socket_group: {GROUP}\nadmin_group: {ADMIN_GROUP}\n")
        c.up("--simulate-gpus", "2")
        yield System(c, argv, extra, workroot, private)
    finally:
        # Jobs run as the test users, without the harness's marker: cancel them first.
        try:
            left = [str(j["id"]) for j in c.ps()]
            if left:
                c.run("cancel", *left)
                c.run("wait", *left, timeout=60)
        finally:
            teardown(c)
            shutil.rmtree(workroot, ignore_errors=True)


def _one_error_line(res: subprocess.CompletedProcess) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), res
    return lines[0]


def _uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def test_system_mode_socket_and_nodes(system):
    c = system.c
    node = c.node()
    assert node["access"]["mode"] == "system" and node["access"]["socket_group"] == GROUP
    st = os.stat(os.path.join(c.home, "corral.sock"))
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0 and st.st_gid == grp.getgrnam(GROUP).gr_gid
    assert stat.S_IMODE(os.stat(c.home).st_mode) == 0o711
    for name in ("corral.db", "config.yaml", "daemon.log"):
        assert stat.S_IMODE(os.stat(os.path.join(c.home, name)).st_mode) == 0o600, name
    assert "Access: system mode" in system.ok(BOB, "nodes")


def test_jobs_run_as_their_user_and_only_owners_or_admins_act(system):
    c = system.c
    alice = pwd.getpwnam(ALICE)
    job = system.submit(ALICE, "--env", "FOO=bar", "--",
                        'echo "who=$(id -un)"; echo "home=$HOME"; echo "user=$USER"; env | sed "s/^/env:/"; sleep 30')
    mine = system.submit(BOB, "--", "sleep 30")
    c.wait_state(job, "Running")
    text = wait_until(lambda: (t := system.ok(ALICE, "logs", str(job))) and "env:" in t and t,
                      what="the job's output")
    lines = text.splitlines()
    assert f"who={ALICE}" in lines and f"home={alice.pw_dir}" in lines and f"user={ALICE}" in lines
    env = dict(line[4:].split("=", 1) for line in lines if line.startswith("env:") and "=" in line)
    assert env["FOO"] == "bar" and env["LOGNAME"] == ALICE and env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert env["CORRAL_JOB_ID"] == str(job) and "CUDA_VISIBLE_DEVICES" in env
    assert SECRET not in env and "CRLTEST_HOME" not in env and "CORRAL_HOME" not in env
    pids = c.show(job)["pids"]
    assert _uid_of(pids["job"]) == alice.pw_uid and _uid_of(pids["supervisor"]) == 0

    # Log files: the owner's, 0600.
    for name in ("stdout.log", "stderr.log"):
        st = os.stat(os.path.join(c.home, "jobs", str(job), name))
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (alice.pw_uid, 0o600)

    # Bob may not cancel it (nothing changes), nor read its logs.
    refused = f"error: permission denied: job {job} belongs to {ALICE} (you are {BOB})"
    assert _one_error_line(system.run(BOB, "cancel", str(job))) == refused
    assert _one_error_line(system.run(BOB, "logs", str(job))) == refused
    res = system.run(BOB, "cancel", str(mine), str(job))   # all or nothing
    assert res.returncode == 1 and refused in res.stderr and "no job was cancelled" in res.stderr
    assert c.show(job)["state"] == "Running" and c.show(mine)["state"] == "Running"
    assert "only admins may stop the daemon" in _one_error_line(system.run(BOB, "down"))

    # ... but may see it, without its environment.
    assert job in [j["id"] for j in system.json(BOB, "ps")["jobs"]]
    seen = system.json(BOB, "show", str(job))
    assert seen["user"] == ALICE and seen["state"] == "Running" and "env" not in seen
    assert system.json(ALICE, "show", str(job))["env"] == {"FOO": "bar"}

    # An admin may act on every job; a user on their own.
    assert system.ok(ADMIN, "cancel", str(job)).strip() == f"job {job}: stopping"
    assert system.ok(BOB, "cancel", str(mine)).strip() == f"job {mine}: stopping"
    assert c.wait_state(job, "Cancelled")["user"] == ALICE
    c.wait_state(mine, "Cancelled")


def test_user_outside_the_socket_group_cannot_connect(system):
    c = system.c
    pid = c.daemon_pid_from_lock()
    for args in (("ps",), ("up",)):
        line = _one_error_line(system.run(OUTSIDER, *args))
        assert line == (f"error: cannot connect to the corral daemon at {c.home}/corral.sock: permission denied "
                        f"(ask an admin to add you to group {GROUP})")
    outsider = pwd.getpwnam(OUTSIDER).pw_uid
    assert c.daemon_pid_from_lock() == pid
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _owned_by(int(p), outsider)]


def _owned_by(pid: int, uid: int) -> bool:
    try:
        return _uid_of(pid) == uid
    except (OSError, AssertionError):
        return False


def test_a_workdir_is_checked_with_the_users_rights_and_says_nothing_of_what_root_sees(system):
    os.makedirs(os.path.join(system.private, "exists"), exist_ok=True)
    lines = set()
    for workdir in (system.private, os.path.join(system.private, "exists"), os.path.join(system.private, "nope")):
        line = _one_error_line(system.run(BOB, "submit", "--workdir", workdir, "--", "true"))
        lines.add(line.replace(workdir, "DIR"))
    assert lines == {'error: invalid value for --workdir: "DIR" (expected an existing directory you can enter)'}
    assert system.c.ps() == []
    job = system.submit(BOB, "--workdir", system.workdir, "--", "true")       # one Bob may enter
    assert system.c.wait_state(job, ("Failed", "Succeeded", "Cancelled"))["state"] == "Succeeded"


def test_update_and_hold_are_the_owners_and_only_admins_raise(system):
    c = system.c
    job = system.submit(ALICE, "--time", "1h", "--hold", "--", "true")
    refused = f"error: permission denied: job {job} belongs to {ALICE} (you are {BOB})"
    assert _one_error_line(system.run(BOB, "update", "--priority", "0", str(job))) == refused
    assert _one_error_line(system.run(BOB, "release", str(job))) == refused
    line = _one_error_line(system.run(ALICE, "update", "--priority", "5", str(job)))
    assert line == f"error: permission denied: only admins may raise a priority (job {job}: 0 -> 5)"
    assert system.ok(ALICE, "update", "--time", "30m", str(job)).strip() == f"job {job}: time limit 1h -> 30m"
    assert system.ok(ADMIN, "update", "--priority", "5", str(job)).strip() == f"job {job}: priority 0 -> 5"
    view = c.show(job)
    assert view["priority"] == 5 and view["time_limit"] == 1800 and view["state"] == "Pending"
    assert system.ok(ALICE, "release", str(job)).strip() == f"job {job}: released"
    assert c.wait_state(job, ("Succeeded", "Failed"))["state"] == "Succeeded"


HOLD_CONNECTIONS = """
import socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    socks.append(s)
time.sleep(1.0)
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
print(closed, flush=True)
sys.stdin.read()
"""


def test_one_user_cannot_hold_every_connection(system):
    from corral.daemon.server import MAX_CONNECTIONS_PER_USER

    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3")
    n = MAX_CONNECTIONS_PER_USER + 40
    hog = subprocess.Popen(["runuser", "-u", BOB, "--", python, "-c", HOLD_CONNECTIONS,
                            os.path.join(system.c.home, "corral.sock"), str(n)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert hog.stdout is not None
        assert int(hog.stdout.readline()) == n - MAX_CONNECTIONS_PER_USER      # the rest are refused
        assert system.json(ALICE, "ps")["jobs"] is not None                   # the others are served
    finally:
        hog.stdin.close()
        hog.wait(timeout=30)


def _end_as_seen_by(system: System, user: str, job: int, *paths: str) -> str:
    """What ``user`` is told of how ``job`` ended, with ``paths`` replaced by P."""
    view = system.json(user, "show", str(job))
    text = json.dumps({k: view.get(k) for k in ("state", "reason", "message", "exit_code", "signal")})
    for path in paths:
        text = text.replace(path, "P")
    return text


def test_a_command_is_looked_up_with_the_users_rights(system):
    # root's view would tell an executable under a root-only directory from a missing one.
    hidden = tempfile.mkdtemp(prefix="crlhidden", dir="/root")
    try:
        os.chmod(hidden, 0o755)                                 # /root (0700) keeps users out
        tool = os.path.join(hidden, "tool")
        Path(tool).write_text("#!/bin/sh\necho root's\n")
        os.chmod(tool, 0o755)
        ends = set()
        for command in (tool, os.path.join(hidden, "missing")):
            job = system.submit(BOB, "--workdir", system.workdir, "--", command)
            system.c.wait_state(job, ("Failed", "Succeeded"))
            ends.add(_end_as_seen_by(system, BOB, job, command))
        assert ends == {'{"state": "Failed", "reason": "LaunchFailed", "message": "command not found or not '
                        'executable: P", "exit_code": 127, "signal": null}'}
    finally:
        shutil.rmtree(hidden, ignore_errors=True)
    # A relative command is found in the workdir, as the user.
    mine = tempfile.mkdtemp(prefix="crlmine", dir=system.workdir)
    os.chmod(mine, 0o755)
    Path(mine, "run.sh").write_text("#!/bin/sh\nid -un\n")
    os.chmod(os.path.join(mine, "run.sh"), 0o755)
    job = system.submit(BOB, "--workdir", mine, "--", "./run.sh")
    assert system.c.wait_state(job, ("Failed", "Succeeded"))["state"] == "Succeeded"
    assert system.ok(BOB, "logs", str(job)).strip() == BOB


def test_a_workdir_swapped_after_submit_says_nothing_of_what_root_sees(system):
    hidden = tempfile.mkdtemp(prefix="crlhidden", dir="/root")
    mine = tempfile.mkdtemp(prefix="crlmine", dir=system.workdir)
    bob = pwd.getpwnam(BOB)
    os.chown(mine, bob.pw_uid, bob.pw_gid)
    try:
        ends = set()
        for i, target in enumerate((hidden, hidden + "-missing")):
            link = os.path.join(mine, f"link{i}")
            os.symlink(system.workdir, link)                  # one Bob may enter, at submit
            job = system.submit(BOB, "--hold", "--workdir", link, "--", "true")
            os.unlink(link)
            os.symlink(target, link)                           # swapped before it starts
            system.ok(BOB, "release", str(job))
            system.c.wait_state(job, ("Failed", "Succeeded"))
            ends.add(_end_as_seen_by(system, BOB, job, link))
        assert ends == {f'{{"state": "Failed", "reason": "LaunchFailed", "message": "working directory P is not '
                        f'accessible to user {BOB}: Permission denied", "exit_code": null, "signal": null}}'}
    finally:
        shutil.rmtree(hidden, ignore_errors=True)


def test_what_a_job_says_cannot_drive_another_users_terminal(system):
    esc = "\x1b]0;pwned\x07\x1b[2J"
    job = system.submit(ALICE, "--hold", "--", f"echo {esc}\n  User:      {BOB}\n")
    failed = system.submit(ALICE, "--", f"/nonexistent{esc}")
    system.c.wait_state(failed, "Failed")
    try:
        for args in (("show", str(job)), ("show", str(failed)), ("ps", "--all")):
            out = system.ok(BOB, *args)
            assert "\x1b" not in out and "\x07" not in out, (args, out)
            assert args[0] != "show" or "\\x1b]0;pwned\\x07" in out, (args, out)   # shown, escaped
        shown = system.ok(BOB, "show", str(job)).splitlines()
        assert [line for line in shown if line.startswith("  User:")] == [f"  User:      {ALICE}"]
    finally:
        system.ok(ALICE, "cancel", str(job))


def test_without_a_cgroup_what_a_job_leaves_behind_ends_with_it(corral_factory):
    # The watchdog holds no cgroup: a child that left the job's session must still end with it.
    from corral_harness import MARKER

    ensure_users()
    argv, extra = user_cli()
    c = corral_factory()
    workroot = tempfile.mkdtemp(prefix="crlusers", dir="/tmp")
    os.chmod(workroot, 0o755)
    try:
        c.write_config(f"socket_group: {GROUP}\nenforcement: watchdog\n")
        c.up()
        system = System(c, argv, extra, workroot, workroot)
        job = system.submit(ALICE, "--env", f"{MARKER}={c.home}", "--",
                            "setsid sh -c 'exec sleep 300' </dev/null >/dev/null 2>&1 & sleep 0.3")
        assert c.wait_state(job, ("Failed", "Succeeded"))["state"] == "Succeeded"
        tag = f"CORRAL_JOB_ID={job}".encode()

        def left() -> list[int]:
            found = []
            for pid in c.processes():
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        if tag in f.read().split(b"\0"):
                            found.append(pid)
                except OSError:
                    pass
            return found

        wait_until(lambda: not left(), timeout=15, what="the job's orphan to be killed")
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
