"""Cancel: releases the allocation, lets waiting jobs start, and kills the whole process
group (SIGTERM, then SIGKILL after the grace period)."""

from __future__ import annotations

import pytest

from corral_harness import pgroup_members, proc_alive, wait_until


#: config.yaml of this module's daemon (written before `corral up`): a 1 s grace period.
CORRAL_CONFIG = "kill_grace: 1s\n"


@pytest.fixture
def corral_grace(corral4):
    """4 simulated GPUs and a 1 s kill grace period."""
    return corral4


def _ready(c, job_id: int, marker: str = "ready") -> None:
    wait_until(lambda: marker in c.logs(job_id), what=f"job {job_id} to print {marker!r}")


def test_cancel_running_job_releases_gpus_to_pending_jobs(corral_grace, tmp_path):
    c = corral_grace
    hog = c.submit("--gpus", "4", "--cpus", "100m", "--", "echo pid=$$; exec sleep 1000")
    c.wait_state(hog, "Running")
    hog_pid = c.job_main_pid(hog)
    a = c.submit("--gpus", "2", "--cpus", "100m", "--", "sleep 1000")
    b = c.submit("--gpus", "2", "--cpus", "100m", "--", "sleep 1000")
    wait_until(lambda: c.show(b)["reason"] == "InsufficientResources", what="job b to wait for GPUs")
    assert c.gpu_holders() == {0: hog, 1: hog, 2: hog, 3: hog}

    res = c.run("cancel", str(hog))
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"job {hog}: stopping\n"
    view = c.wait_done(hog)[0]
    assert (view["state"], view["reason"]) == ("Cancelled", "CancelledByUser"), view
    assert view["message"] == "cancelled by request (signal SIGTERM)"
    assert view["signal"] == 15 and view["exit_code"] is None
    wait_until(lambda: not proc_alive(hog_pid), what="the cancelled job's process to end")

    # The two waiting jobs start on the freed GPUs, two each, disjoint.
    va = c.wait_state(a, "Running")
    vb = c.wait_state(b, "Running")
    assert len(va["gpus"]) == 2 and len(vb["gpus"]) == 2
    assert set(va["gpus"]).isdisjoint(vb["gpus"])
    holders = c.gpu_holders()
    assert holders == {**{g: a for g in va["gpus"]}, **{g: b for g in vb["gpus"]}}
    node = c.node()
    assert node["resources"]["nvidia.com/gpu"]["allocated"] == "4"
    assert node["resources"]["nvidia.com/gpu"]["free"] == "0"

    # Cancelling a pending job: Cancelled at once, never ran.
    marker = tmp_path / "pending-ran"
    p = c.submit("--gpus", "1", "--cpus", "100m", "--", f"touch {marker}")
    wait_until(lambda: c.show(p)["reason"] == "InsufficientResources", what="the job to wait")
    res = c.run("cancel", str(p))
    assert (res.returncode, res.stdout) == (0, f"job {p}: cancelled\n"), res.stderr
    vp = c.show(p)
    assert (vp["state"], vp["reason"]) == ("Cancelled", "CancelledByUser"), vp
    assert vp["started_at"] is None and vp["gpus"] == [] and vp["exit_code"] is None
    # Its history: submitted, the reason it waited (recorded by the scheduling cycle), cancelled.
    assert [(e["to"], e["reason"]) for e in vp["events"]] == [
        ("Pending", "Queued"), ("Pending", "InsufficientResources"), ("Cancelled", "CancelledByUser")]
    # Cancelling again says so; it stays Cancelled.
    again = c.run("cancel", str(p))
    assert again.returncode == 0 and again.stdout == f"job {p}: already cancelled\n"

    # Free the GPUs; nothing should ever have run the cancelled pending job.
    assert c.run("cancel", str(a), str(b)).returncode == 0
    done = c.wait_done(a, b)
    assert [v["state"] for v in done] == ["Cancelled", "Cancelled"]
    assert set(c.gpu_holders().values()) == {None}
    assert not marker.exists()
    assert c.show(p)["state"] == "Cancelled"


def test_cancel_unknown_job_fails(corral_grace):
    res = corral_grace.run("cancel", "999")
    assert res.returncode == 1
    assert "999" in res.stderr and res.stderr.startswith("error: ")


def test_job_that_traps_sigterm_and_exits_0_is_still_cancelled(corral_grace):
    c = corral_grace
    job = c.submit("--gpus", "1", "--cpus", "100m", "--",
                   'trap "echo got TERM; exit 0" TERM; echo ready; while true; do sleep 0.1; done')
    _ready(c, job)
    assert c.run("cancel", str(job)).returncode == 0
    view = c.wait_done(job)[0]
    assert (view["state"], view["reason"]) == ("Cancelled", "CancelledByUser"), view
    assert view["exit_code"] == 0 and view["signal"] is None
    assert view["message"] == "cancelled by request (exit code 0)"
    assert "got TERM" in c.logs(job)
    assert c.wait(job).returncode == 1  # a cancelled job is not a success
    assert set(c.gpu_holders().values()) == {None}


def test_job_ignoring_sigterm_is_killed_after_grace(corral_grace):
    c = corral_grace
    job = c.submit("--gpus", "1", "--cpus", "100m", "--",
                   'trap "" TERM; echo pid=$$; echo ready; while true; do sleep 0.1; done')
    _ready(c, job)
    pid = c.job_main_pid(job)
    assert c.run("cancel", str(job)).returncode == 0
    view = c.wait_done(job)[0]
    assert (view["state"], view["reason"]) == ("Cancelled", "CancelledByUser"), view
    assert view["signal"] == 9 and view["exit_code"] is None
    assert view["message"] == "cancelled by request (signal SIGKILL)"
    wait_until(lambda: not pgroup_members(pid), timeout=10, what="the job's process group to be gone")
    assert set(c.gpu_holders().values()) == {None}


def test_cancel_kills_the_whole_process_group(corral_grace, tmp_path):
    c = corral_grace
    child = tmp_path / "child.pid"
    job = c.submit("--cpus", "100m", "--", f"echo pid=$$; sleep 1000 & echo $! > {child}; echo ready; wait")
    _ready(c, job)
    pid = c.job_main_pid(job)
    child_pid = int(wait_until(lambda: child.exists() and child.read_text().strip(), what="child pid"))
    assert proc_alive(child_pid)
    assert set(pgroup_members(pid)) >= {pid, child_pid}
    assert c.run("cancel", str(job)).returncode == 0
    view = c.wait_done(job)[0]
    assert view["state"] == "Cancelled"
    wait_until(lambda: not pgroup_members(pid), timeout=10, what="the job's process group to be gone")
    assert not proc_alive(child_pid)


def test_background_children_die_when_the_job_exits(corral_grace, tmp_path):
    c = corral_grace
    child = tmp_path / "child.pid"
    job = c.submit("--cpus", "100m", "--", f"echo pid=$$; sleep 1000 & echo $! > {child}; exit 0")
    view = c.wait_done(job)[0]
    assert (view["state"], view["exit_code"]) == ("Succeeded", 0), view
    child_pid = int(child.read_text())
    wait_until(lambda: not proc_alive(child_pid), timeout=10, what="the job's background child to be killed")
    assert pgroup_members(c.job_main_pid(job)) == []


def _sleepers(c) -> list[int]:
    out = []
    for pid in c.processes():
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if cmdline == b"sleep\x001000\x00":
            out.append(pid)
    return out


def test_cancel_right_after_submit(corral_grace):
    """Cancel races the launch: whatever the timing, the job ends Cancelled and nothing
    of it keeps running."""
    c = corral_grace
    jobs = []
    for _ in range(6):
        job = c.submit("--gpus", "1", "--cpus", "100m", "--", "exec sleep 1000")
        res = c.run("cancel", str(job))
        assert res.returncode == 0 and res.stdout in (f"job {job}: cancelled\n", f"job {job}: stopping\n"), res
        jobs.append(job)
    for view in c.wait_done(*jobs):
        assert (view["state"], view["reason"]) == ("Cancelled", "CancelledByUser"), view
    wait_until(lambda: not _sleepers(c), timeout=10, what="no job process to be left")
    assert set(c.gpu_holders().values()) == {None}
