"""One contract, every executor: launch, exit codes, stop with the job's signal and grace
period, launch failures, signals, logs, adopting after a restart, every end reported
exactly once.

Each executor comes with a small harness that knows how to write a job that runs for a
while and exits with a code (a shell command for the local executor, a program for the
simulated one), how to let time pass (real time on an event loop, or virtual time) and
how to restart (a new executor instance on the same job directories / world). The test
class is the same for all.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import pytest

from corral.capacity.node import make_node
from corral.executors.base import ExitStatus, Running, StopReason
from corral.executors.local import LocalExecutor
from corral.executors.simulated import Program, SimulatedExecutor, SimWorld
from corral.job import Allocation, Job
from corral.resources import Resources
from corral.spec import build_spec

GiB = 2**30
NODE = make_node("n1", cores=2, memory=4 * GiB, gpus=2)


def allocation(gpus=(0,)) -> Allocation:
    return Allocation("n1", Resources.parse({"cpu": "100m", "gpu": len(gpus)}), gpus=tuple(gpus))


class Harness:
    """What every executor's harness gives the contract."""

    name = ""

    def __init__(self) -> None:
        self.ends: list[tuple[int, ExitStatus]] = []
        self.executor = self.make()

    def on_exit(self, job_id: int, status: ExitStatus) -> None:
        self.ends.append((job_id, status))

    def ended(self, job_id: int) -> ExitStatus | None:
        found = [s for j, s in self.ends if j == job_id]
        return found[-1] if found else None

    def settle(self, *job_ids: int, pause: float = 0.3) -> None:
        """Let launched jobs start (an engine that queues them first: until it runs them),
        then ``pause`` more."""
        self.advance_until(lambda: False, pause)

    def wait_end(self, job_id: int, within: float) -> ExitStatus:
        self.advance_until(lambda: self.ended(job_id) is not None, within)
        status = self.ended(job_id)
        assert status is not None, f"job {job_id} did not end within {within}s"
        return status

    def restart(self) -> None:
        """The daemon stops (its executor with it) and a new one starts: jobs keep running."""
        self.executor.close()
        self.executor = self.make()

    # Each executor's own:
    def make(self):  # pragma: no cover - overridden
        raise AssertionError

    def job(self, job_id: int, seconds: float, exit_code: int = 0, *, output: str = "", catch_stop: int | None = None,
            stop_delay: float = 0.0, ignore_stop: bool = False, stop_signal: str | None = None,
            grace: float = 1.0) -> Job:  # pragma: no cover - overridden
        raise AssertionError

    def failing_job(self, job_id: int) -> tuple[Job, Allocation]:  # pragma: no cover - overridden
        """A job that cannot start here, and what its launch error says."""
        raise AssertionError

    def advance_until(self, done, within: float) -> None:  # pragma: no cover - overridden
        raise AssertionError

    def close(self) -> None:
        self.executor.close()


class LocalHarness(Harness):
    name = "local"

    def __init__(self, tmp_path) -> None:
        self.tmp = tmp_path
        self.loop = asyncio.new_event_loop()
        super().__init__()

    def make(self):
        return LocalExecutor(self.tmp / "jobs", self.on_exit, self.loop, node=NODE, kill_grace=1.0)

    def job(self, job_id, seconds, exit_code=0, *, output="", catch_stop=None, stop_delay=0.0, ignore_stop=False,
            stop_signal=None, grace=1.0):
        sig = (stop_signal or "SIGTERM")[3:]
        script = f"printf %s '{output}'; " if output else ""
        if ignore_stop:
            script += f"trap '' {sig}; "
        elif catch_stop is not None:
            script += f"trap 'sleep {stop_delay}; exit {catch_stop}' {sig}; "
        script += f"sleep {seconds} & wait $!; exit {exit_code}"
        spec = build_spec(["sh", "-c", script], requests={"cpu": "100m"}, stop_signal=stop_signal,
                          kill_grace=f"{grace}s" if grace >= 1 else None)
        return Job(id=job_id, spec=spec, seq=job_id, allocation=allocation())

    failure = "command not found or not executable: /nonexistent/program"

    def failing_job(self, job_id):
        spec = build_spec(["/nonexistent/program"], requests={"cpu": "100m"})
        return Job(id=job_id, spec=spec, seq=job_id), allocation()

    def advance_until(self, done, within):
        deadline = time.monotonic() + within
        while not done() and time.monotonic() < deadline:
            self.loop.run_until_complete(asyncio.sleep(0.02))

    def close(self):
        super().close()
        self.loop.close()


class SimulatedHarness(Harness):
    name = "simulated"

    def __init__(self) -> None:
        self.programs: dict[int, Program] = {}
        self.world = SimWorld([NODE], program_for=lambda job: self.programs[job.id])
        super().__init__()

    def make(self):
        return SimulatedExecutor(self.world, self.on_exit, kill_grace=1.0)

    def job(self, job_id, seconds, exit_code=0, *, output="", catch_stop=None, stop_delay=0.0, ignore_stop=False,
            stop_signal=None, grace=1.0):
        self.programs[job_id] = Program(seconds, exit_code, output=output.encode(), stop_delay=stop_delay,
                                        stop_exit_code=catch_stop, ignores_stop=ignore_stop)
        spec = build_spec(["simulated"], requests={"cpu": "100m"}, stop_signal=stop_signal,
                          kill_grace=f"{grace}s" if grace >= 1 else None)
        return Job(id=job_id, spec=spec, seq=job_id, allocation=allocation())

    failure = "launch failed: no such node: elsewhere"

    def failing_job(self, job_id):
        self.programs[job_id] = Program(1.0)
        spec = build_spec(["simulated"], requests={"cpu": "100m"})
        return Job(id=job_id, spec=spec, seq=job_id), Allocation("elsewhere", Resources.parse({"cpu": "100m"}))

    def advance_until(self, done, within):
        deadline = self.world.now + within
        while not done() and self.world.advance(deadline):
            pass


RAY_VARS = ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED", "RAY_TMPDIR")


class RayHarness(LocalHarness):
    """A one-node Ray cluster (node ``n1``, 2 CPUs, 2 fake GPUs) shared by the module; each
    test a home of its own (its own Ray namespace)."""

    name = "ray"

    def __init__(self, tmp_path, cluster) -> None:
        self.cluster = cluster
        super().__init__(tmp_path)

    def make(self):
        import os

        from corral.executors.ray import RayExecutor

        os.environ.update({k: self.cluster.env[k] for k in RAY_VARS})     # for ray.init (restored after)
        return RayExecutor(self.cluster.address, self.on_exit, self.loop, home=str(self.tmp / "home"),
                           kill_grace=1.0, start_timeout=60.0)

    failure = "launch failed: cannot start /nonexistent/program on n1: No such file or directory"

    def close(self):
        import shutil

        from corral.executors.ray import launch_root

        super().close()
        shutil.rmtree(launch_root(str(self.tmp / "home")), ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster():
    """Started only when a Ray test runs; skips without Ray (fails under CI=true)."""
    import os

    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("the Ray executor's contract cannot run under CI=true: ray is not installed")
        pytest.skip("ray is not installed (pip install 'corral[ray]')")
    from corral.executors.ray.cluster import LocalRayCluster, NodeSpec

    cluster = LocalRayCluster([NodeSpec("n1", cpus=2, gpus=2, memory=4 * GiB)])
    try:
        cluster.start()
    except Exception as exc:  # noqa: BLE001
        cluster.stop()
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Ray executor's contract cannot run under CI=true: {exc}")
        pytest.skip(f"a local Ray cluster did not start: {exc}")
    saved = {k: os.environ.get(k) for k in RAY_VARS}
    yield cluster
    cluster.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class SlurmHarness(LocalHarness):
    """A one-node Slurm (node ``n1``, 2 CPUs, 2 fake GPUs) shared by the module; each test a
    home of its own (its own job names)."""

    name = "slurm"
    #: The contract's durations and waits, stretched (Slurm starts a job about a second
    #: after its submission, and its commands take a while on a loaded machine). Every
    #: job and wait keeps its order.
    stretch = 2.0

    def __init__(self, tmp_path, cluster) -> None:
        self.cluster = cluster
        super().__init__(tmp_path)

    def make(self):
        from corral.executors.slurm import SlurmExecutor

        return SlurmExecutor(self.cluster.partition, self.on_exit, self.loop, home=str(self.tmp / "home"),
                             conf=self.cluster.conf, kill_grace=1.0, start_timeout=60.0, job_poll=0.1)

    def job(self, job_id, seconds, *args, **kwargs):
        """As the local one's, marking its start in a file, then waiting (up to 3 s) for the
        harness's word to go on: Slurm starts jobs submitted together on passes a second
        apart, so ``settle`` lets jobs it waits for begin their timed part together."""
        import dataclasses

        job = super().job(job_id, seconds * self.stretch, *args, **kwargs)
        sh, flag, body = job.spec.command
        go = f"{self.tmp}/go-{job_id}"
        marked = (f"touch {self.tmp}/started-{job_id}; i=0; while [ ! -e {go} ] && [ $i -lt 300 ]; do sleep 0.01; "
                  f"i=$((i + 1)); done; {body}")
        return dataclasses.replace(job, spec=dataclasses.replace(job.spec, command=(sh, flag, marked)))

    def advance_until(self, done, within):
        super().advance_until(done, within * self.stretch)

    def settle(self, *job_ids, pause=0.3):
        """Slurm schedules a submitted job within a second or two: wait until it runs (or
        ended already)."""
        def running() -> bool:
            return all((self.tmp / f"started-{j}").exists() or self.ended(j) is not None for j in job_ids)

        self.advance_until(running, 15)
        for j in job_ids:
            (self.tmp / f"go-{j}").touch()
        self.advance_until(lambda: False, pause)

    failure = "launch failed: node elsewhere is not available in Slurm"

    def failing_job(self, job_id):
        spec = build_spec(["true"], requests={"cpu": "100m"})
        return Job(id=job_id, spec=spec, seq=job_id), Allocation("elsewhere", Resources.parse({"cpu": "100m"}))


@pytest.fixture(scope="module")
def slurm_cluster():
    """Started only when a Slurm test runs; skips without Slurm or root (fails under CI=true)."""
    import os

    from corral.executors.slurm.cluster import LocalSlurmCluster, SlurmNodeSpec, install

    why = install()
    if not why:
        cluster = LocalSlurmCluster([SlurmNodeSpec("n1", cpus=2, memory_mb=4096, gpus=2)])
        try:
            cluster.start()
        except Exception as exc:  # noqa: BLE001
            cluster.stop()
            why = f"a local Slurm cluster did not start: {exc}"
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Slurm executor's contract cannot run under CI=true: {why}")
        pytest.skip(why)
    yield cluster
    cluster.stop()


@pytest.fixture(params=["local", "simulated", "ray", "slurm"])
def h(request, tmp_path):
    if request.param == "local":
        harness = LocalHarness(tmp_path)
    elif request.param == "simulated":
        harness = SimulatedHarness()
    elif request.param == "ray":
        harness = RayHarness(tmp_path, request.getfixturevalue("ray_cluster"))
    else:
        harness = SlurmHarness(tmp_path, request.getfixturevalue("slurm_cluster"))
    yield harness
    harness.close()


class TestExecutorContract:
    def test_capabilities_and_inventory(self, h):
        caps = h.executor.capabilities
        assert caps.stop_signals and caps.inventory
        # Slurm chooses which of a node's GPUs a job gets (corral counts them per node).
        assert caps.device_pinning is (h.name != "slurm")
        assert [n.name for n in h.executor.nodes()] == ["n1"]

    def test_exit_codes_are_reported_once_each(self, h):
        ok, bad = h.job(1, 0.2), h.job(2, 0.2, exit_code=3)
        h.executor.launch(ok, ok.allocation)
        h.executor.launch(bad, bad.allocation)
        a, b = h.wait_end(1, 10), h.wait_end(2, 10)
        assert (a.exit_code, a.signal, a.stopped_for) == (0, None, None)
        assert (b.exit_code, b.signal) == (3, None)
        h.advance_until(lambda: False, 0.5)              # nothing more comes
        assert Counter(j for j, _ in h.ends) == {1: 1, 2: 1}

    def test_a_launch_that_fails_is_an_end_not_an_exception(self, h):
        job, alloc = h.failing_job(5)
        h.executor.launch(job, alloc)                    # must not raise
        status = h.wait_end(5, 10)
        assert status.launch_error == h.failure and status.signal is None
        assert [j for j, _ in h.ends] == [5]

    def test_stop_sends_the_stop_signal_and_says_why(self, h):
        job = h.job(1, 30)
        h.executor.launch(job, job.allocation)
        h.settle(1)
        assert h.executor.stop(1, StopReason.CANCEL, "by test")
        status = h.wait_end(1, 10)
        assert status.signal == signal.SIGTERM and status.stopped_for is StopReason.CANCEL
        assert h.executor.stop(1, StopReason.CANCEL) is False          # not running any more

    def test_a_job_that_catches_its_stop_signal_exits_with_its_own_code(self, h):
        job = h.job(1, 30, catch_stop=7, stop_delay=0.2, stop_signal="SIGUSR1", grace=5)
        h.executor.launch(job, job.allocation)
        h.settle(1)
        h.executor.stop(1, StopReason.TIME_LIMIT)
        status = h.wait_end(1, 10)
        assert (status.exit_code, status.signal, status.stopped_for) == (7, None, StopReason.TIME_LIMIT)

    def test_one_that_ignores_it_is_killed_after_the_grace_period(self, h):
        job = h.job(1, 60, ignore_stop=True, grace=1)
        h.executor.launch(job, job.allocation)
        h.settle(1)
        h.executor.stop(1, StopReason.CANCEL)
        h.advance_until(lambda: h.ended(1) is not None, 0.5)
        assert h.ended(1) is None                                    # still in its grace period
        status = h.wait_end(1, 10)
        assert status.signal == signal.SIGKILL and status.stopped_for is StopReason.CANCEL

    def test_signal_reaches_a_running_job_only(self, h):
        job = h.job(1, 30, catch_stop=0)
        h.executor.launch(job, job.allocation)
        h.settle(1)
        assert h.executor.signal(1, signal.SIGUSR2) is True
        h.executor.stop(1, StopReason.CANCEL)
        h.wait_end(1, 10)
        assert h.executor.signal(1, signal.SIGUSR2) is False

    def test_logs(self, h):
        if not h.executor.capabilities.logs:
            pytest.skip(f"the {h.name} executor has no logs")
        job = h.job(1, 0.1, output="hello")
        h.executor.launch(job, job.allocation)
        h.wait_end(1, 10)
        assert h.executor.read_log(1, "stdout") == b"hello"
        assert h.executor.read_log(1, "stdout", offset=2) == b"llo"
        assert h.executor.read_log(99, "stdout") is None

    def test_adopt_after_a_restart(self, h):
        keeps, ends = h.job(1, 1.5, exit_code=4), h.job(2, 0.2, exit_code=5)
        never = h.job(3, 1.0)
        for j in (keeps, ends):
            h.executor.launch(j, j.allocation)
        h.settle(1, 2, pause=0.1)
        h.restart()                                      # the daemon goes away and comes back later
        h.advance_until(lambda: False, 0.6)              # job 2 ends while nobody watches
        assert h.ends == []
        assert isinstance(h.executor.adopt(keeps), Running)
        gone = h.executor.adopt(ends)
        assert isinstance(gone, ExitStatus) and gone.exit_code == 5
        assert h.executor.adopt(never) is None           # recorded as started, never launched
        status = h.wait_end(1, 10)                       # the adopted job's end comes to the new executor
        assert status.exit_code == 4
        h.advance_until(lambda: False, 0.3)
        assert [j for j, _ in h.ends] == [1]             # once, and job 2 only through adopt
