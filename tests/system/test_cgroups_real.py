"""Per-job cgroups against the REAL cgroups of this machine: the kernel enforces the limits.

Needs root and a usable cgroup hierarchy; otherwise the module is skipped, except under
``CI=true``, where it fails instead (CI machines are expected to have them). Every group
is made under a parent named ``corral-test-<pid>``, removed at the end.

No test puts a threshold on how fast anything is; CPU is checked as a ratio of CPU time
to wall time.
"""

from __future__ import annotations

import errno
import itertools
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from corral.executors.local.cgroups import (
    CgroupSupport,
    JobCgroup,
    Limits,
    detect,
    remove_parent,
)

MiB = 1 << 20
NAME = f"corral-test-{os.getpid()}"
IN_CI = os.environ.get("CI") == "true"
_keys = itertools.count(1)


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"real cgroups are required when CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def support():
    if os.geteuid() != 0:
        unavailable("creating cgroups needs root")
    found, reason = detect(NAME)
    if found is None:
        unavailable(f"no usable cgroups on this machine: {reason}")
    yield found
    problems = remove_parent(found)
    assert problems == []
    assert not any(os.path.exists(p) for p in found.parents.values())


@pytest.fixture
def job(support: CgroupSupport):
    j = JobCgroup(support, f"job-{next(_keys)}")
    yield j
    j.remove()
    assert not j.exists()


def spawn(job: JobCgroup, argv: list[str]) -> subprocess.Popen:
    """Start argv inside the job's cgroup (attached in the child, before exec).

    stdin is a pipe: a child blocked in ``sys.stdin.read()`` lives until it is killed."""
    return subprocess.Popen(
        argv,
        preexec_fn=lambda: job.attach(0),  # noqa: PLW1509 (what the launcher does, too)
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def own_cgroups(pid: int) -> dict[str, str]:
    """/proc/<pid>/cgroup as {controller: path} (v2: {"unified": path})."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else ["unified"]:
                out[c] = path
    return out


def test_detect_found_a_parent_under_our_own_cgroup(support):
    assert "memory" in support.controllers
    ours = own_cgroups(os.getpid())
    for controller, parent in support.parents.items():
        assert os.path.isdir(parent)
        assert parent.endswith(ours[controller].rstrip("/") + "/" + NAME), (controller, parent)
    again, reason = detect(NAME)  # a second detect reuses the parents
    assert again == support, reason


def test_attach_and_stats(job):
    job.create(Limits(memory=128 * MiB, cpu=2000, pids=50))
    p = spawn(job, python("import sys; b = bytearray(32 << 20); print('ok', flush=True); sys.stdin.read()"))
    assert p.stdout.readline() == "ok\n"
    assert job.procs() == [p.pid]
    where = own_cgroups(p.pid)
    for controller, path in job.paths.items():
        assert path.endswith(where[controller]), (controller, path, where[controller])
    stats = job.stats()
    assert stats.memory is not None and stats.memory >= 32 * MiB
    assert stats.memory_peak is not None and stats.memory_peak >= 32 * MiB
    assert stats.memory_limit == 128 * MiB
    assert stats.oom_kills == 0
    assert stats.pids == 1
    assert stats.cpu_usage_ns is not None and stats.cpu_usage_ns > 0
    assert stats.nr_throttled is not None
    job.kill()
    assert p.wait(timeout=5) == -signal.SIGKILL
    assert job.procs() == []


def test_memory_limit_oom_kills(job):
    limit = 64 * MiB
    job.create(Limits(memory=limit))
    code = (
        "chunks = []\n"
        "for _ in range(25):\n"  # 25 x 16 MiB = 400 MiB
        "    b = bytearray(16 << 20)\n"
        "    b[::4096] = b'x' * (len(b) // 4096)\n"  # touch every page
        "    chunks.append(b)\n"
        "print('survived')\n"
    )
    p = spawn(job, python(code))
    out, _ = p.communicate(timeout=20)
    assert p.returncode == -signal.SIGKILL
    assert "survived" not in out
    stats = job.stats()
    assert stats.oom_kills >= 1
    assert stats.memory_peak is not None and stats.memory_peak >= 0.9 * limit
    assert stats.memory_peak <= limit
    assert stats.memory_limit == limit


def test_cpu_limit_throttles_two_busy_processes(job):
    if "cpu" not in job.support.controllers:
        unavailable(f"no cpu controller here ({job.support.describe()})")
    job.create(Limits(cpu=500))
    p = spawn(job, ["sh", "-c", "while :; do :; done & while :; do :; done"])
    wait_for(lambda: len(job.procs()) == 2)
    time.sleep(0.3)
    before, t0 = job.stats().cpu_usage_ns, time.monotonic_ns()
    time.sleep(3)
    after, t1 = job.stats(), time.monotonic_ns()
    ratio = (after.cpu_usage_ns - before) / (t1 - t0)
    # The kernel holds the group to 50 ms of CPU per 100 ms period: over 3 s at most 1.5 s,
    # plus the period the window starts or ends in. How much less it gets depends on what
    # else the machine runs, so only the bound the limit guarantees is checked -- and that
    # the limit bit (the group was throttled).
    assert 0 < ratio <= 0.55, f"used {ratio:.2f} CPUs with a limit of 0.5"
    assert after.nr_throttled > 0
    job.kill()
    assert job.procs() == []
    assert p.wait(timeout=5) == -signal.SIGKILL
    job.remove()
    assert not job.exists()
    assert not any(os.path.exists(d) for d in job.paths.values())


def test_pids_limit_makes_fork_fail(job):
    if "pids" not in job.support.controllers:
        unavailable(f"no pids controller here ({job.support.describe()})")
    job.create(Limits(pids=8))
    code = (
        "import os, sys\n"
        "started = failed = 0\n"
        "for _ in range(20):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        failed += 1\n"
        "        continue\n"
        "    if pid == 0:\n"
        "        os.execvp('sleep', ['sleep', '60'])\n"
        "    started += 1\n"
        "print(started, failed, flush=True)\n"
        "sys.stdin.read()\n"
    )
    p = spawn(job, python(code))
    started, failed = map(int, p.stdout.readline().split())
    assert failed > 0
    assert started + failed == 20
    assert started <= 7  # the forking process itself is one of the 8
    assert job.stats().pids <= 8
    assert len(job.procs()) == started + 1
    job.remove()
    assert p.wait(timeout=5) == -signal.SIGKILL


def test_denied_device_is_eperm_and_allowed_one_is_not(job, tmp_path):
    if "devices" not in job.support.controllers:
        unavailable(f"no devices controller here ({job.support.describe()})")
    allowed, denied = tmp_path / "nvidia0", tmp_path / "nvidia1"
    os.mknod(allowed, stat.S_IFCHR | 0o666, os.makedev(195, 0))
    os.mknod(denied, stat.S_IFCHR | 0o666, os.makedev(195, 1))
    no_driver = {"ENXIO", "ENODEV"}
    # outside the job both fail alike (no driver here) ...
    for node in (allowed, denied):
        with pytest.raises(OSError) as info:
            open(node, "rb").close()
        assert errno.errorcode[info.value.errno] in no_driver
    job.create(Limits(deny_devices=("c 195:1",)))
    code = (
        "import errno, sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path, 'rb').close()\n"
        "        print('ok')\n"
        "    except OSError as e:\n"
        "        print(errno.errorcode[e.errno])\n"
    )
    p = spawn(job, python(code, str(allowed), str(denied)))
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    on_allowed, on_denied = out.split()
    # ... inside it, the denied device is refused by the cgroup before any driver is asked
    assert on_allowed in no_driver
    assert on_denied == "EPERM"


def test_remove_kills_live_processes_and_leaves_no_dir(job):
    job.create(Limits(memory=64 * MiB))
    p = spawn(job, ["sh", "-c", "sleep 60 & sleep 60 & wait"])
    wait_for(lambda: len(job.procs()) == 3)
    job.remove()
    assert p.wait(timeout=5) == -signal.SIGKILL
    assert not job.exists()
    assert not any(os.path.exists(d) for d in job.paths.values())
    assert job.stats().memory is None  # reading a removed group is not an error
