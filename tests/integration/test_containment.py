"""Nothing a job starts outlives it, however it detaches, in every way of grouping jobs.

Real supervisors from the real launcher, real processes: a job that leaves a ``setsid``
child or a double-forked daemon behind and exits, one that is cancelled, and one whose
supervisor is SIGKILLed while the daemon is down. Three ways of holding a job, each one
a parameter: its limits cgroup (root), a cgroup v2 group without controllers (root, where
a v2 hierarchy is mounted), and none at all (the supervisor as subreaper, and the job's
tag in the environment of what a dead supervisor left). What escaped must be dead when
the end is reported -- before the job's GPU can go to the next one -- and the job's cgroup
directories must be gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.capacity.node import make_node
from corral.executors.base import ExitStatus, Running, StopReason
from corral.executors.local import LocalExecutor, cgroup_key
from corral.executors.local.cgroups import JobCgroup, job_groups, remove_parent
from corral.executors.local.enforcement import Enforcement, choose, group_name
from corral.executors.local import supervisor as sup
from corral.executors.local.launcher import Launcher
from corral.job import Allocation, Job
from corral.resources import Resources
from corral.spec import build_spec

from corral_harness import proc_alive, wait_until

NODE = make_node("n1", cores=2, memory=4 * 2**30, gpus=2)
MODES = ("cgroup", "v2-group", "subreaper")
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: Double fork and setsid: the grandchild is a daemon in a session of its own, its
#: parent gone (the classic way to detach), and it writes its pid to $1.
DAEMONIZE = (f"{sys.executable} -c \"import os,sys,time\n"
             "if os.fork(): sys.exit(0)\n"
             "os.setsid()\n"
             "if os.fork(): sys.exit(0)\n"
             "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(4001)\"")


def enforcement_for(mode: str, home: str) -> Enforcement | None:
    """The grouping ``mode`` asks for, or None when this machine cannot give it."""
    if mode == "subreaper":
        return Enforcement("watchdog", why="test", group=None, group_why="test: no group")
    if os.geteuid() != 0:
        return None
    if mode == "cgroup":
        found = choose("auto", home)
        return found if found.support is not None else None
    found = choose("watchdog", home)
    return found if found.group is not None else None


class Setup:
    def __init__(self, tmp_path: Path, mode: str):
        self.home = str(tmp_path / "home")
        os.makedirs(self.home)
        self.mode = mode
        self.enforcement = enforcement_for(mode, self.home)
        if self.enforcement is None:
            why = f"grouping by {mode} needs root and a cgroup hierarchy that allows it"
            if CI:
                pytest.fail(f"{why} (CI=true: it must be tested)")
            pytest.skip(why)
        self.loop = asyncio.new_event_loop()
        self.ends: list[tuple[int, ExitStatus, dict[int, bool]]] = []
        self.watch: list[int] = []          # pids whose liveness is recorded at each end
        self.launcher = Launcher.start()
        self.executor = self.make()

    def make(self) -> LocalExecutor:
        return LocalExecutor(Path(self.home) / "jobs", self.on_exit, self.loop, self.launcher, node=NODE,
                             enforcement=self.enforcement, kill_grace=1.0)

    def on_exit(self, job_id: int, status: ExitStatus) -> None:
        # What is alive at the moment the end is reported: the next job may get the GPU now.
        self.ends.append((job_id, status, {pid: proc_alive(pid) for pid in self.watch}))

    def run_until(self, done, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while not done() and time.monotonic() < deadline:
            self.loop.run_until_complete(asyncio.sleep(0.02))
        assert done(), f"not done within {within}s"

    def launch(self, job_id: int, script: str) -> Job:
        spec = build_spec(["sh", "-c", script], requests={"cpu": "100m"}, kill_grace="1s")
        alloc = Allocation("n1", Resources.parse({"cpu": "100m", "gpu": 1}), gpus=(0,))
        job = Job(id=job_id, spec=spec, seq=job_id, allocation=alloc)
        self.executor.launch(job, alloc)
        return job

    def end_of(self, job_id: int):
        found = [e for e in self.ends if e[0] == job_id]
        return found[-1] if found else None

    def groups(self) -> list[str]:
        holder = self.enforcement.holder
        return sorted(job_groups(holder)) if holder is not None else []

    def close(self) -> None:
        self.executor.close()
        self.launcher.close()
        holder = self.enforcement.holder if self.enforcement is not None else None
        if holder is not None:
            for key in job_groups(holder):
                JobCgroup(holder, key).remove()
            remove_parent(holder)
        self.loop.close()


@pytest.fixture(params=MODES)
def setup(request, tmp_path):
    s = Setup(tmp_path, request.param)
    try:
        yield s
    finally:
        for pid in s.watch:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        s.close()


def read_pid(path: Path) -> int:
    return wait_until(lambda: path.exists() and path.read_text().strip().isdigit() and int(path.read_text()),
                      what=f"a pid in {path}")


@pytest.mark.parametrize("how", ["setsid", "double-fork"])
def test_what_a_job_left_behind_is_dead_when_its_end_is_reported(setup, tmp_path, how):
    pidfile = tmp_path / "escaped.pid"
    if how == "setsid":
        script = f"setsid sleep 4001 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}; sleep 0.3; exit 0"
    else:
        script = f"{DAEMONIZE} {pidfile}; sleep 0.3; exit 0"
    setup.launch(1, script)
    escaped = read_pid(pidfile)
    setup.watch.append(escaped)
    setup.run_until(lambda: setup.end_of(1) is not None)
    _, status, alive = setup.end_of(1)
    assert status.exit_code == 0, status
    assert alive == {escaped: False}, f"{how} child {escaped} outlived its job ({setup.mode})"
    assert cgroup_key(1) not in setup.groups()


def test_a_cancelled_job_takes_its_detached_children_with_it(setup, tmp_path):
    pidfile = tmp_path / "escaped.pid"
    setup.launch(2, f"setsid sleep 4001 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}; sleep 300")
    escaped = read_pid(pidfile)
    setup.watch.append(escaped)
    setup.run_until(lambda: setup.executor.pids(2) is not None)
    assert setup.executor.stop(2, StopReason.CANCEL, "test")
    setup.run_until(lambda: setup.end_of(2) is not None)
    _, status, alive = setup.end_of(2)
    assert status.stopped_for == StopReason.CANCEL
    assert alive == {escaped: False}
    assert cgroup_key(2) not in setup.groups()


def test_a_supervisor_killed_while_the_daemon_is_down_leaves_nothing(setup, tmp_path):
    pidfile = tmp_path / "escaped.pid"
    job = setup.launch(3, f"setsid sleep 4001 </dev/null >/dev/null 2>&1 & echo $! > {pidfile}; sleep 300")
    escaped = read_pid(pidfile)
    setup.run_until(lambda: setup.executor.pids(3) is not None)
    pids = setup.executor.pids(3)
    setup.watch += [escaped, pids["job"]]
    setup.executor.close()                      # the daemon goes down; the job runs on
    os.kill(pids["supervisor"], signal.SIGKILL)  # and its supervisor dies meanwhile
    wait_until(lambda: not proc_alive(pids["supervisor"]), what="the supervisor to die")
    assert proc_alive(escaped) and proc_alive(pids["job"])
    setup.launcher = Launcher.start()           # the daemon is back (with a launcher of its own)
    setup.executor = setup.make()
    outcome = setup.executor.adopt(job)
    assert isinstance(outcome, ExitStatus) and outcome.lost
    for pid in (escaped, pids["job"]):
        assert wait_until(lambda: not proc_alive(pid), timeout=5, what=f"{pid} to be killed")
    assert cgroup_key(3) not in setup.groups()


@pytest.mark.parametrize("mode", ["cgroup", "v2-group"])
def test_startup_removes_the_groups_no_running_job_owns(tmp_path, mode):
    setup = Setup(tmp_path, mode)
    try:
        _stale_group_swept(setup)
    finally:
        setup.close()


def _stale_group_swept(setup):
    holder = setup.enforcement.holder
    from corral.executors.local.cgroups import Limits

    stale = JobCgroup(holder, cgroup_key(77))
    stale.create(Limits())
    sleeper = subprocess.Popen(["sleep", "4001"], preexec_fn=lambda: stale.attach(0))
    try:
        assert cgroup_key(77) in setup.groups()
        setup.executor.recovered()
        sleeper.wait(timeout=5)
        assert cgroup_key(77) not in setup.groups()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        sleeper.wait()


def test_nodes_say_how_jobs_are_held(tmp_path):
    home = str(tmp_path)
    text = Enforcement("watchdog", group=None, group_why="no rights").containment()
    assert "CORRAL_JOB_TAG" in text and "subreaper" in text
    if os.geteuid() == 0:
        found = choose("auto", home)
        assert found.containment().startswith(f"each job in its own cgroup {found.support.version}")
        for support in filter(None, (found.support, found.group)):
            remove_parent(support)
    assert group_name(home).startswith("corral-")


def _parents_on_disk(home: str) -> list[str]:
    """Every cgroup dir named after this home's parent group, found without creating any."""
    name = group_name(home)
    found = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        if name in dirs:
            found.append(os.path.join(top, name))
        if top.count("/") > 6:
            dirs[:] = []
    return found


def test_a_start_that_fails_leaves_no_cgroup_parents(corral):
    if os.geteuid() != 0:
        if CI:
            pytest.fail("needs root to make cgroups (CI=true: it must be tested)")
        pytest.skip("needs root to make cgroups")
    Path(corral.home, "tokens.json").write_text("{not json")
    res = corral.run("up")
    assert res.returncode != 0 and "tokens.json" in res.stderr, res.stderr
    assert _parents_on_disk(corral.home) == []
    Path(corral.home, "tokens.json").unlink()
    corral.up()
    assert _parents_on_disk(corral.home) != []          # made by a start that works
    corral.down()
    assert _parents_on_disk(corral.home) == []          # and removed by corral down


@pytest.mark.parametrize("mode", ["subreaper", "cgroup"])
def test_a_kept_supervisor_runs_the_next_job_and_ignores_a_late_stop_for_the_last(tmp_path, mode):
    setup = Setup(tmp_path, mode)
    try:
        setup.launch(1, "exit 3")
        setup.run_until(lambda: setup.end_of(1) is not None)
        assert setup.end_of(1)[1].exit_code == 3
        gate = tmp_path / "go"
        setup.launch(2, f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 4")
        setup.run_until(lambda: setup.executor.pids(2) is not None)
        first = sup.read_state(str(Path(setup.home, "jobs", "1")))
        second = setup.executor.pids(2)
        assert second["supervisor"] == first.supervisor          # the same supervisor, kept
        # A stop that was meant for job 1 arrives late: job 2 has no stop file, so it runs on.
        os.kill(second["supervisor"], signal.SIGTERM)
        time.sleep(0.5)
        assert proc_alive(second["job"]) and setup.end_of(2) is None
        gate.touch()
        setup.run_until(lambda: setup.end_of(2) is not None)
        status = setup.end_of(2)[1]
        assert (status.exit_code, status.stopped_for) == (4, None), status
        # A stop the daemon asks for is obeyed by a kept supervisor as by a new one.
        setup.launch(3, "sleep 300")
        setup.run_until(lambda: setup.executor.pids(3) is not None)
        assert setup.executor.pids(3)["supervisor"] == first.supervisor
        assert setup.executor.stop(3, StopReason.CANCEL, "test")
        setup.run_until(lambda: setup.end_of(3) is not None)
        assert setup.end_of(3)[1].stopped_for == StopReason.CANCEL
        # A kept supervisor that dies takes only the job it ran.
        setup.launch(4, "sleep 300")
        setup.run_until(lambda: setup.executor.pids(4) is not None)
        pids = setup.executor.pids(4)
        setup.watch.append(pids["job"])
        os.kill(pids["supervisor"], signal.SIGKILL)
        setup.run_until(lambda: setup.end_of(4) is not None)
        assert setup.end_of(4)[1].lost and setup.end_of(4)[2] == {pids["job"]: False}
        assert [e[1].exit_code for e in setup.ends[:2]] == [3, 4]
        assert cgroup_key(4) not in setup.groups()
    finally:
        setup.close()


def test_a_kept_supervisors_job_does_not_inherit_its_lock(tmp_path):
    """The state file's descriptor reaches a kept supervisor through SCM_RIGHTS: a job
    that inherited it would hold the lock after its supervisor died."""
    setup = Setup(tmp_path, "subreaper")
    try:
        setup.launch(1, "true")
        setup.run_until(lambda: setup.end_of(1) is not None)
        out = tmp_path / "fds"
        setup.launch(2, f"ls -l /proc/$$/fd > {out}")
        setup.run_until(lambda: setup.end_of(2) is not None)
        assert sup.read_state(str(Path(setup.home, "jobs", "2"))).supervisor == \
            sup.read_state(str(Path(setup.home, "jobs", "1"))).supervisor
        assert "/state" not in out.read_text(), out.read_text()
    finally:
        setup.close()


@pytest.mark.parametrize("enforcement", ["watchdog", "auto"])
def test_the_escape_reproduction_through_the_daemon(corral, tmp_path, enforcement):
    """The issue's reproduction, through `corral up` and the CLI: a one-GPU job leaves a
    `setsid` sleeper and exits; the next job on that GPU finds it dead when it starts."""
    if enforcement == "auto" and os.geteuid() != 0:
        if CI:
            pytest.fail("needs root for cgroups (CI=true: it must be tested)")
        pytest.skip("needs root for cgroups")
    corral.write_config(f"enforcement: {enforcement}\n")
    corral.up("--simulate-gpus", "1")
    marker = f"escape-{os.getpid()}-{enforcement}"
    first = corral.submit("--gpus", "1", "--cpus", "100m", "--", "bash", "-c",
                          f"setsid bash -c 'exec -a {marker} sleep 4001' </dev/null >/dev/null 2>&1 & sleep 0.2; exit 0")
    found = tmp_path / "found"
    second = corral.submit("--gpus", "1", "--cpus", "100m", "--", "sh", "-c",
                           f"echo $CUDA_VISIBLE_DEVICES; pgrep -f '[{marker[0]}]{marker[1:]}' > {found}; exit 0")
    views = corral.wait_done(first, second)
    assert [v["state"] for v in views] == ["Succeeded", "Succeeded"], views
    assert corral.logs(second) == "0\n"                     # it had the same GPU
    assert found.read_text() == "", f"the first job's sleeper outlived it: {found.read_text()}"
    assert "subreaper" in corral.ok("nodes")


def test_jobs_started_under_the_earlier_layout_are_adopted_not_launched_again(tmp_path):
    """An upgrade while jobs run: their directories hold ``lock`` (flocked by a living
    supervisor), ``pids`` and, once ended, ``status.json``."""
    setup = Setup(tmp_path, "subreaper")
    try:
        spec = build_spec(["sh", "-c", "sleep 300"], requests={"cpu": "100m"})
        alloc = Allocation("n1", Resources.parse({"cpu": "100m"}))
        running = Path(setup.home, "jobs", "41")
        running.mkdir(parents=True)
        # A stand-in for an old supervisor: holds the lock, its job is its child.
        holder = subprocess.Popen([sys.executable, "-c", (
            "import fcntl, os, subprocess, sys, time\n"
            f"fd = os.open({str(running / 'lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "job = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
            f"open({str(running / 'pids')!r}, 'w').write(f'{{os.getpid()}} {{job.pid}} None\\n')\n"
            "job.wait()\n"
            f"open({str(running / 'status.json')!r}, 'w').write('{{\"exit_code\": 5, \"ended_at\": 1.0}}')\n")])
        setup.watch.append(holder.pid)
        wait_until(lambda: (running / "pids").exists(), what="the old supervisor's pids")
        job_pid = int((running / "pids").read_text().split()[1])
        setup.watch.append(job_pid)
        outcome = setup.executor.adopt(Job(id=41, spec=spec, seq=41, allocation=alloc))
        assert isinstance(outcome, Running), outcome
        assert setup.executor.pids(41) == {"supervisor": holder.pid, "job": job_pid}
        os.kill(job_pid, signal.SIGTERM)                    # the job ends; its old supervisor records it
        setup.run_until(lambda: setup.end_of(41) is not None)
        assert setup.end_of(41)[1].exit_code == 5
        holder.wait(timeout=10)
        ended = Path(setup.home, "jobs", "42")
        ended.mkdir()
        (ended / "lock").write_text("")
        (ended / "pids").write_text("1 2 None\n")
        (ended / "status.json").write_text('{"exit_code": 0, "ended_at": 2.0}')
        outcome = setup.executor.adopt(Job(id=42, spec=spec, seq=42, allocation=alloc))
        assert isinstance(outcome, ExitStatus) and outcome.exit_code == 0
    finally:
        setup.close()
