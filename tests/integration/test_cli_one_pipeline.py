"""One scheduling pipeline for the daemon and its estimates, through the CLI.

Two cases that used to go wrong when the daemon had two pipelines: with ``policy: sjf``
and ``backfill: true`` the queue must still be shortest-job-first (it silently became
FIFO), and the estimated starts ``ps`` shows must follow the order the daemon then uses.
"""

from __future__ import annotations

from corral_harness import gate_cmd, wait_until


def _considered(c, *ids: int) -> None:
    wait_until(lambda: all(c.show(j)["reason"] != "Queued" for j in ids),
               what=f"jobs {ids} to be considered by the scheduler")


def test_sjf_with_backfill_stays_shortest_first(corral, tmp_path):
    c = corral
    c.write_config("policy: sjf\nbackfill: true\n")
    c.up("--simulate-gpus", "1")
    assert c.node()["policy"] == "sjf"
    gate = tmp_path / "gate"
    hog = c.submit("--gpus", "1", "--cpus", "100m", "--time", "1h", "--", gate_cmd(gate))
    c.wait_state(hog, "Running")
    long = c.submit("--gpus", "1", "--cpus", "100m", "--time", "1000s", "--", "true")
    short = c.submit("--gpus", "1", "--cpus", "100m", "--time", "10s", "--", "true")
    _considered(c, long, short)
    # Shortest first: the 10 s job is first in line although it came second.
    assert (c.show(short)["queue_position"], c.show(long)["queue_position"]) == (1, 2)
    gate.touch()
    first = c.wait_state(short, ("Running", "Succeeded"))
    later = c.wait_done(long)[0]
    assert first["started_at"] <= later["started_at"]
    assert c.wait(hog, short, long).returncode == 0


def test_estimated_starts_follow_the_order_the_daemon_uses(corral, tmp_path):
    c = corral
    c.write_config("policy: sjf\n")
    c.up("--simulate-gpus", "1")
    gate = tmp_path / "gate"
    busy = c.submit("--gpus", "1", "--cpus", "100m", "--time", "2000s", "--", gate_cmd(gate))
    c.wait_state(busy, "Running")
    two = c.submit("--gpus", "1", "--cpus", "100m", "--time", "1000s", "--", "true")
    three = c.submit("--gpus", "1", "--cpus", "100m", "--time", "10s", "--", "true")
    _considered(c, two, three)
    v2, v3 = c.show(two), c.show(three)
    assert (v3["queue_position"], v2["queue_position"]) == (1, 2)
    # Job 3 starts when the busy GPU's time limit ends, job 2 ten seconds later (job 3's
    # limit): the estimates run the same pipeline forward.
    end_of_busy = c.show(busy)["started_at"] + 2000
    assert abs(v3["estimated_start"] - end_of_busy) < 2
    assert abs(v2["estimated_start"] - (v3["estimated_start"] + 10)) < 0.01
    rows = {j["id"]: j for j in c.ps()}
    assert rows[three]["estimated_start"] < rows[two]["estimated_start"]
    gate.touch()
    assert c.wait(busy, two, three).returncode == 0
    done = {v["id"]: v for v in c.wait_done(two, three)}
    assert done[three]["started_at"] <= done[two]["started_at"]          # and so it happened
