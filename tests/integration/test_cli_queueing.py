"""Queue order: priority first, then submission order; best-effort FIFO lets a smaller job
start past a blocked one, strict FIFO makes it wait behind it."""

from __future__ import annotations

from corral_harness import gate_cmd, wait_until


def _considered(c, *ids: int) -> None:
    wait_until(lambda: all(c.show(j)["reason"] != "Queued" for j in ids),
               what=f"jobs {ids} to be considered by the scheduler")


def test_higher_priority_is_first_in_queue_and_starts_first(corral4, tmp_path):
    c = corral4
    hog_gate = tmp_path / "hog"
    hog = c.submit("--gpus", "4", "--cpus", "100m", "--", gate_cmd(hog_gate))
    c.wait_state(hog, "Running")
    low = c.submit("--gpus", "4", "--cpus", "100m", "--", "sleep 1000")
    high = c.submit("--gpus", "4", "--cpus", "100m", "--priority", "10", "--", "sleep 1000")
    _considered(c, low, high)
    assert c.show(high)["queue_position"] == 1
    assert c.show(low)["queue_position"] == 2
    assert [j["id"] for j in c.ps("--state", "Pending")] == [low, high]  # listed by id
    hog_gate.touch()
    c.wait_state(high, "Running")
    view = c.show(low)
    assert (view["state"], view["queue_position"]) == ("Pending", 1)
    assert view["message"] == "insufficient nvidia.com/gpu: requests 4, free 0 of 4"
    assert c.run("cancel", str(high), str(low)).returncode == 0
    assert [v["state"] for v in c.wait_done(high, low)] == ["Cancelled", "Cancelled"]


def test_best_effort_fifo_lets_a_small_job_start_past_a_blocked_one(corral4, tmp_path):
    c = corral4
    gate = tmp_path / "gate"
    hog = c.submit("--gpus", "3", "--cpus", "100m", "--", gate_cmd(gate))
    c.wait_state(hog, "Running")
    big = c.submit("--gpus", "2", "--cpus", "100m", "--", "true")
    small = c.submit("--gpus", "1", "--cpus", "100m", "--", "true")
    assert c.wait(small).returncode == 0
    view = c.show(big)
    assert (view["state"], view["reason"]) == ("Pending", "InsufficientResources")
    gate.touch()
    assert c.wait(hog, big).returncode == 0


def test_strict_fifo_makes_later_jobs_wait_behind_the_blocked_one(corral, tmp_path):
    c = corral
    c.write_config("policy: strict-fifo\n")
    c.up("--simulate-gpus", "4")
    assert c.node()["policy"] == "strict-fifo"
    gate = tmp_path / "gate"
    hog = c.submit("--gpus", "3", "--cpus", "100m", "--", gate_cmd(gate))
    c.wait_state(hog, "Running")
    big = c.submit("--gpus", "2", "--cpus", "100m", "--", "true")
    small = c.submit("--gpus", "1", "--cpus", "100m", "--", "true")
    _considered(c, big, small)
    vb, vs = c.show(big), c.show(small)
    assert (vb["state"], vb["reason"], vb["message"]) == (
        "Pending", "InsufficientResources", "insufficient nvidia.com/gpu: requests 2, free 1 of 4")
    assert (vs["state"], vs["reason"], vs["message"]) == ("Pending", "Priority", f"waiting behind job {big} (strict order)")
    assert (vb["queue_position"], vs["queue_position"]) == (1, 2)
    gate.touch()
    res = c.wait(hog, big, small)
    assert res.returncode == 0, res.stdout
