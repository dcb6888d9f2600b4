"""Admission: impossible requests are refused with one line per resource; feasible jobs
that do not fit now wait with a typed reason, exact numbers and a queue position."""

from __future__ import annotations

import os

import pytest

from corral_harness import NCPU, gate_cmd, wait_until


def _all_ids(c) -> list[int]:
    return [j["id"] for j in c.ps("-a")]


def test_impossible_cpu_request_is_rejected_and_not_stored(corral4):
    c = corral4
    before = _all_ids(c)
    res = c.run("submit", "--cpus", "64", "--", "true")
    assert res.returncode != 0
    assert res.stderr == f"error: insufficient cpu: job requests 64, node has {NCPU} allocatable\n"
    assert res.stdout == ""
    assert _all_ids(c) == before


def test_several_resources_short_give_one_line_each(corral4):
    c = corral4
    memory = c.node()["resources"]["memory"]["allocatable"]
    before = _all_ids(c)
    res = c.run("submit", "--cpus", "64", "--mem", "1000Ti", "--gpus", "9", "--", "true")
    assert res.returncode != 0
    assert res.stderr.splitlines() == [
        f"error: insufficient cpu: job requests 64, node has {NCPU} allocatable",
        f"error: insufficient memory: job requests 1000Ti, node has {memory} allocatable",
        "error: insufficient nvidia.com/gpu: job requests 9, node has 4 allocatable",
    ]
    assert _all_ids(c) == before


def test_impossible_job_in_a_batch_rejects_the_whole_batch(corral4):
    c = corral4
    before = _all_ids(c)
    docs = """\
apiVersion: corral/v1
kind: Job
metadata: {name: fine}
spec: {command: [\"true\"], resources: {requests: {cpu: 100m}}}
---
apiVersion: corral/v1
kind: Job
metadata: {name: too-big}
spec: {command: [\"true\"], resources: {requests: {nvidia.com/gpu: 5}}}
"""
    res = c.run("submit", "-f", "-", input=docs)
    assert res.returncode != 0
    assert res.stderr == ("error: <stdin> (document 2): insufficient nvidia.com/gpu: job requests 5, node has 4 "
                          "allocatable\n")
    assert _all_ids(c) == before


def _settled(c, job_id: int) -> dict:
    """Wait until a scheduling cycle has looked at the pending job (reason no longer Queued)."""
    box = {}

    def check():
        box["j"] = c.show(job_id)
        return box["j"]["state"] != "Pending" or box["j"]["reason"] != "Queued"

    wait_until(check, what=f"job {job_id} to be considered by the scheduler")
    return box["j"]


def test_pending_reason_message_and_queue_position(corral4, tmp_path):
    c = corral4
    hog = c.submit("--gpus", "4", "--cpus", "100m", "--", "sleep", "1000")
    c.wait_state(hog, "Running")
    second = c.submit("--gpus", "2", "--cpus", "100m", "--", "true")
    view = _settled(c, second)
    expected = "insufficient nvidia.com/gpu: requests 2, free 0 of 4"
    assert view["state"] == "Pending", view
    assert view["reason"] == "InsufficientResources", view
    assert view["message"] == expected
    assert view["queue_position"] == 1
    assert view["gpus"] == [] and view["started_at"] is None

    third = c.submit("--gpus", "1", "--cpus", "100m", "--", "true")
    view3 = _settled(c, third)
    assert (view3["state"], view3["reason"]) == ("Pending", "InsufficientResources")
    assert view3["message"] == "insufficient nvidia.com/gpu: requests 1, free 0 of 4"
    assert view3["queue_position"] == 2

    listed = {j["id"]: j for j in c.ps()}
    assert listed[hog]["state"] == "Running" and listed[hog]["gpus"] == [0, 1, 2, 3]
    assert (listed[second]["state"], listed[second]["reason"], listed[second]["message"],
            listed[second]["queue_position"]) == ("Pending", "InsufficientResources", expected, 1)
    assert listed[third]["queue_position"] == 2

    # The human table shows the reason too.
    table = c.ok("ps")
    row = next(line for line in table.splitlines() if line.split()[0] == str(second))
    assert "Pending" in row and expected in row

    human = c.ok("show", str(second))
    assert f"Pending (InsufficientResources): {expected}" in human
    assert "Position:  1 in line" in human


def test_whole_cores_are_accounted_and_waiting_jobs_say_cpu(corral4, tmp_path):
    c = corral4
    gate = tmp_path / "gate"
    holders = [c.submit("--cpus", "1", "--", gate_cmd(gate)) for _ in range(NCPU)]
    cores = sorted(core for j in holders for core in c.wait_state(j, "Running")["cpus"])
    assert cores == sorted(os.sched_getaffinity(0))  # each holds its own core
    node = c.node()
    assert node["resources"]["cpu"]["free"] == "0"
    assert {core["id"]: core["job"] for core in node["cores"]} == {
        core: j for j in holders for core in c.show(j)["cpus"]}
    whole = c.submit("--cpus", "1", "--", "true")
    frac = c.submit("--cpus", "100m", "--", "true")
    assert _settled(c, whole)["message"] == f"insufficient cpu: requests 1, free 0 of {NCPU}"
    assert _settled(c, frac)["message"] == f"insufficient cpu: requests 0.1, free 0 of {NCPU}"
    gate.touch()
    assert c.wait(*holders, whole, frac).returncode == 0


def test_memory_requests_are_accounted(corral4, tmp_path):
    c = corral4
    mem = c.node()["resources"]["memory"]
    big = mem["raw"]["allocatable"] * 6 // 10
    gate = tmp_path / "gate"
    first = c.submit("--cpus", "100m", "--mem", str(big), "--", gate_cmd(gate))
    c.wait_state(first, "Running")
    mem_now = c.node()["resources"]["memory"]
    assert mem_now["raw"]["allocated"] == big
    second = c.submit("--cpus", "100m", "--mem", str(big), "--", "true")
    view = _settled(c, second)
    assert view["reason"] == "InsufficientResources"
    assert view["message"] == (f"insufficient memory: requests {view['requests']['memory']}, "
                               f"free {mem_now['free']} of {mem_now['allocatable']}")
    gate.touch()
    assert c.wait(first, second).returncode == 0
    assert c.node()["resources"]["memory"]["raw"]["allocated"] == 0


def test_reserved_cpu_is_not_allocatable(corral):
    c = corral
    if NCPU < 2:
        pytest.skip("needs 2 cores")
    c.write_config("reserve: {cpu: 1}\n")
    c.up()
    cpu = c.node()["resources"]["cpu"]
    assert (cpu["capacity"], cpu["reserved"], cpu["allocatable"]) == (str(NCPU), "1", str(NCPU - 1))
    res = c.run("submit", "--cpus", str(NCPU), "--", "true")
    assert res.returncode == 1
    assert res.stderr == f"error: insufficient cpu: job requests {NCPU}, node has {NCPU - 1} allocatable\n"
