"""corral in front of a real Ray cluster: three Ray nodes on this host (``ray start`` each,
with fake GPUs), one corral daemon with ``engine: {type: ray}``, driven through the real
CLI. corral places; a launcher actor on each node starts the job there.

Without Ray (or when a local cluster cannot start) these tests skip; under ``CI=true``
they fail instead. They stop exactly the Ray processes they started, by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral_harness import TIMEOUT, Corral, make_corral, teardown, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.ray]

GiB = 2**30
#: n0 is the head; n1 has the A100s.
NODES = (("n0", None), ("n1", "A100"), ("n2", None))
CI = os.environ.get("CI") == "true"


def _unavailable(why: str):
    if CI:
        pytest.fail(f"Ray engine tests cannot run under CI=true: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        import ray  # noqa: F401
    except ImportError:
        _unavailable("ray is not installed (pip install 'corral[ray]')")
    from corral.executors.ray.cluster import LocalRayCluster, NodeSpec

    specs = [NodeSpec(name, cpus=4, gpus=2, gpu_model=model, memory=4 * GiB) for name, model in NODES]
    c = LocalRayCluster(specs)
    try:
        c.start()
    except Exception as exc:  # noqa: BLE001 - no Ray here: skip (fail under CI)
        c.stop()
        _unavailable(f"a local Ray cluster did not start: {exc}")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def rc(cluster, tmp_path_factory):
    """The corral daemon on the cluster (start timeout 8 s, for the test that needs it)."""
    c = make_corral(str(tmp_path_factory.mktemp("ray")))
    for key in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED", "RAY_TMPDIR"):
        c.env[key] = cluster.env[key]
    c.write_config(f"engine: {{type: ray, address: \"{cluster.address}\", start_timeout: 8s}}\n")
    try:
        c.up()
        yield c
    finally:
        from corral.executors.ray import launch_root

        root = launch_root(c.home)
        teardown(c)
        shutil.rmtree(root, ignore_errors=True)          # the jobs' files on the (local) nodes


@pytest.fixture
def ray_corral(rc):
    """The shared daemon; whatever a test leaves pending or running is cancelled after it
    and its drained nodes are undrained."""
    yield rc
    left = [str(j["id"]) for j in rc.ps()]
    if left:
        rc.run("cancel", *left)
        rc.run("wait", *left, timeout=90)
    for n in rc.json("nodes")["nodes"]:
        if n["state"] == "Draining":
            rc.ok("undrain", n["name"])


def nodes(c: Corral) -> dict[str, dict]:
    return {n["name"]: n for n in c.json("nodes")["nodes"]}


def ray_available(cluster) -> dict[str, float]:
    """What Ray itself says is free, asked by a separate driver."""
    code = ("import json, ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
            "print(json.dumps(ray.available_resources())); ray.shutdown()" % cluster.address)
    out = subprocess.run([sys.executable, "-c", code], env=cluster.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_daemon_builds_its_nodes_from_ray(ray_corral):
    c = ray_corral
    seen = nodes(c)
    assert sorted(seen) == ["n0", "n1", "n2"]
    for name, model in NODES:
        n = seen[name]
        assert n["state"] == "Ready" and n["engine"] == "ray", n
        assert len(n["gpus"]) == 2 and all(g["job"] is None for g in n["gpus"]), n["gpus"]
        assert n["resources"]["cpu"]["raw"]["allocatable"] == 4000
        assert n["resources"]["memory"]["raw"]["allocatable"] == 4 * GiB
        assert n["labels"]["corral.dev/node"] == name
        assert n["gpu_model"] == model or (model is None and n["gpu_model"]), n
    assert seen["n1"]["gpu_model"] == "A100"
    text = c.ok("nodes")
    assert text.startswith("3 nodes (ray engine)\n") and "n1    Ready  A100" in text, text


def test_one_gpu_jobs_get_distinct_gpus_on_their_nodes_and_ray_agrees(ray_corral, cluster, tmp_path):
    c = ray_corral
    ids = [c.submit("--gpus", "1", "--cpus", "1", "--mem", "256Mi", "--", "sh", "-c",
                    "echo node=$CORRAL_NODE cvd=$CUDA_VISIBLE_DEVICES; exec sleep 600") for _ in range(8)]
    running = wait_until(lambda: (lambda r: r if len(r) == 6 else None)(
        [j for j in c.ps() if j["state"] == "Running"]), TIMEOUT * 2, what="6 of the 8 jobs to run")
    waiting = [j for j in c.ps() if j["state"] == "Pending"]
    assert len(waiting) == 2 and all(j["reason"] == "InsufficientResources" for j in waiting), waiting
    places = set()
    for j in running:
        view = c.show(j["id"])
        assert len(view["gpus"]) == 1
        places.add((view["node"], view["gpus"][0]))
        out = c.show_when(j["id"], lambda v: "node=" in c.logs(j["id"]), "the job's output")
        assert c.logs(j["id"]).strip() == f"node={view['node']} cvd={view['gpus'][0]}", out
    assert len(places) == 6                                   # every GPU of the cluster, once
    holders = {(name, g["index"]): g["job"] for name, n in nodes(c).items() for g in n["gpus"]}
    assert sorted(h for h in holders.values() if h) == sorted(j["id"] for j in running)
    free = ray_available(cluster)                             # Ray's view agrees: every GPU used
    assert free.get("GPU", 0) == 0 and free.get("CPU", 0) == 12 - 6, free
    c.run("cancel", *map(str, ids))
    c.run("wait", *map(str, ids), timeout=90)
    wait_until(lambda: ray_available(cluster).get("GPU") == 6, TIMEOUT, what="Ray to free the GPUs")


def test_a_job_without_gpus_sees_none_and_a_model_picks_its_node(ray_corral):
    c = ray_corral
    plain = c.submit("--cpus", "500m", "--", "sh", "-c", 'echo "cvd=[${CUDA_VISIBLE_DEVICES-unset}]"')
    a100 = c.submit("--gpus", "A100:2", "--", "sh", "-c", "echo node=$CORRAL_NODE cvd=$CUDA_VISIBLE_DEVICES")
    done = {v["id"]: v for v in c.wait_done(plain, a100)}
    assert done[plain]["state"] == "Succeeded" and c.logs(plain).strip() == "cvd=[]"
    assert done[a100]["state"] == "Succeeded" and done[a100]["node"] == "n1", done[a100]
    assert c.logs(a100).strip() == "node=n1 cvd=0,1"
    res = c.run("submit", "--gpus", "H100:1", "--", "true")
    assert res.returncode == 1 and "no node has 1 GPU of model H100" in res.stderr, res.stderr


def test_a_gang_runs_one_replica_per_node_with_rank_variables(ray_corral, tmp_path):
    c = ray_corral
    out = tmp_path / "ranks"
    out.mkdir()
    script = (f'echo "$CORRAL_NODE $CUDA_VISIBLE_DEVICES $MASTER_ADDR:$MASTER_PORT $WORLD_SIZE" '
              f'> {out}/rank-$RANK; echo rank=$RANK')
    job = c.submit("--nodes", "2", "--gpus", "2", "--cpus", "1", "--", "sh", "-c", script)
    [done] = c.wait_done(job)
    assert done["state"] == "Succeeded", done
    lines = {p.name: p.read_text().split() for p in out.iterdir()}
    assert sorted(lines) == ["rank-0", "rank-1"], lines
    (n0, g0, m0, w0), (n1, g1, m1, w1) = lines["rank-0"], lines["rank-1"]
    assert n0 != n1 and g0 == g1 == "0,1" and m0 == m1 and w0 == w1 == "2"
    addr, port = m0.rsplit(":", 1)
    assert addr == nodes(c)[n0]["address"] and int(port) > 0      # rank 0's node, a port free there
    assert c.logs(job).strip() == "rank=0"                 # the job's log is rank 0's


def test_a_gang_fails_with_its_first_failing_replica_and_the_others_are_stopped(ray_corral, tmp_path):
    c = ray_corral
    pids = tmp_path / "pids"
    script = f'echo "$RANK $$" >> {pids}; if [ "$RANK" = 1 ]; then sleep 1; exit 3; fi; exec sleep 600'
    job = c.submit("--nodes", "2", "--gpus", "1", "--", "sh", "-c", script)
    [done] = c.wait_done(job)
    assert done["state"] == "Failed" and done["exit_code"] == 3, done
    assert "replica 1" in done["message"], done
    rank0 = int(next(line.split()[1] for line in pids.read_text().splitlines() if line.startswith("0 ")))
    assert not Path(f"/proc/{rank0}").exists()            # the replica that still ran was stopped
    assert all(g["job"] is None for n in nodes(c).values() for g in n["gpus"])


def test_logs_follow_time_limits_and_cancel_go_through_the_engine(ray_corral, tmp_path):
    c = ray_corral
    # logs -f streams from the node while the job runs, and ends with it.
    talker = c.submit("--cpus", "100m", "--", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.5; done")
    assert c.ok("logs", "-f", str(talker), timeout=60) == "line 1\nline 2\nline 3\n"
    # A time limit stops the job with its stop signal.
    slow = c.submit("--cpus", "100m", "--time", "2s", "--", "sleep", "600")
    [timed] = c.wait_done(slow)
    assert (timed["state"], timed["reason"]) == ("Failed", "TimedOut"), timed
    # Cancelling a gang stops every replica; a job that traps the stop signal exits its way.
    pids = tmp_path / "pids"
    gang = c.submit("--nodes", "2", "--gpus", "1", "--", "sh", "-c", f"echo $$ >> {pids}; exec sleep 600")
    c.wait_state(gang, "Running", timeout=60)
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2, what="both replicas to start")
    c.ok("cancel", str(gang))
    [cancelled] = c.wait_done(gang)
    assert cancelled["state"] == "Cancelled", cancelled
    for pid in map(int, pids.read_text().split()):
        assert not Path(f"/proc/{pid}").exists(), pid
    trap = c.submit("--cpus", "100m", "--signal", "SIGUSR1", "--", "sh", "-c",
                    "trap 'echo got it; exit 7' USR1; echo ready; while :; do sleep 0.1; done")
    c.show_when(trap, lambda v: "ready" in c.logs(trap), "the job to trap its signal")
    c.ok("cancel", str(trap))
    [done] = c.wait_done(trap)
    assert done["state"] == "Cancelled" and done["exit_code"] == 7 and "got it" in c.logs(trap), done


def test_a_placement_ray_cannot_satisfy_times_out_and_is_requeued(ray_corral, cluster):
    """Someone else's placement group holds n2's GPUs behind corral's back: corral's launch
    cannot get them, times out (8 s here) and queues the job again with a backoff; once the
    other group is gone the job runs."""
    c = ray_corral
    c.ok("drain", "n0")
    c.ok("drain", "n1")
    code = ("import ray, sys, time; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
            "from ray.util import placement_group as pg; "
            "g = pg([{'GPU': 2, 'corral/node:n2': 0.001}]); ray.get(g.ready(), timeout=60); "
            "print('held', flush=True); sys.stdin.read()" % cluster.address)
    other = subprocess.Popen([sys.executable, "-c", code], env=cluster.env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        job = c.submit("--gpus", "2", "--", "sh", "-c", "echo ran on $CORRAL_NODE")
        requeued = c.show_when(job, lambda v: v["reason"] == "StartTimeout", "the start timeout", timeout=60)
        assert requeued["state"] == "Pending" and "n2" in requeued["message"], requeued
    finally:
        other.stdin.close()                                # its driver exits: Ray frees the group
        other.wait(timeout=60)
    [done] = c.wait_done(job)
    assert done["state"] == "Succeeded" and c.logs(job).strip() == "ran on n2", done
    assert done["attempts"] >= 2, done


def test_a_killed_daemon_readopts_its_ray_jobs(ray_corral):
    c = ray_corral
    job = c.submit("--gpus", "1", "--", "sh", "-c", "sleep 4; echo finished; exit 3")
    before = c.wait_state(job, "Running", timeout=60)
    pid = c.daemon_pid_from_lock()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), what="the daemon to die")
    c.up()
    after = c.show(job)
    assert after["state"] in ("Running", "Failed") and after["node"] == before["node"], after
    [done] = c.wait_done(job)
    assert done["state"] == "Failed" and done["exit_code"] == 3, done      # the real exit, seen by the new daemon
    assert c.logs(job).strip() == "finished"


def test_a_lost_node_requeues_its_job_elsewhere(ray_corral, cluster, tmp_path):
    """Runs last: n2's Ray dies (raylet, workers, launcher: SIGKILL) while its job's own
    process lives on, as when a machine drops off the network; the job is NodeLost,
    queued again and runs on another node; n2 shows Lost until it returns, and then
    corral kills the process the old attempt left there."""
    c = ray_corral
    c.ok("drain", "n0")
    c.ok("drain", "n1")
    pids = tmp_path / "pids"
    job = c.submit("--gpus", "1", "--", "sh", "-c", f"echo $$ >> {pids}; echo on $CORRAL_NODE; exec sleep 600")
    assert c.wait_state(job, "Running", timeout=60)["node"] == "n2"
    first = int(wait_until(lambda: pids.exists() and pids.read_text().split(), what="the job's pid")[0])
    c.ok("undrain", "n0")
    c.ok("undrain", "n1")
    killed = time.monotonic()
    cluster.kill_node("n2", leave_jobs=True)
    lost = c.show_when(job, lambda v: v["node"] not in (None, "n2") or v["reason"] == "NodeLost",
                       "the job to be requeued", timeout=60)
    detected = time.monotonic() - killed
    assert wait_until(lambda: nodes(c)["n2"]["state"] == "Lost", TIMEOUT, what="n2 to show Lost")
    again = c.wait_state(job, "Running", timeout=60)
    assert again["node"] in ("n0", "n1") and again["attempts"] == 2, again
    print(f"node loss noticed and the job requeued in {detected:.1f} s ({lost['reason']})")
    assert Path(f"/proc/{first}").exists()                 # the old attempt's process, orphaned on n2
    spec = next(s for s in cluster.specs if s.name == "n2")
    cluster.start_node(spec)
    assert wait_until(lambda: nodes(c)["n2"]["state"] == "Ready", 60, what="n2 to come back")
    wait_until(lambda: not Path(f"/proc/{first}").exists() or Path(f"/proc/{first}/stat").read_text()
               .split(")")[-1].split()[0] == "Z", 30, what="corral to kill what the lost attempt left on n2")
