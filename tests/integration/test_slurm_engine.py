"""corral in front of a real Slurm: three slurmd on this host (Debian's build runs several
under their own names), fake GPUs as character devices in gres.conf, one corral daemon
with ``engine: {type: slurm, partition: corral}``, driven through the real CLI. corral
places; ``sbatch`` runs each job pinned to its nodes.

Slurm is installed by this module when it is missing and we are root (apt-get); without
it (or root) these tests skip, and under ``CI=true`` they fail instead. They stop exactly
the Slurm daemons they started, by pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from corral_harness import TIMEOUT, Corral, make_corral, teardown, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

#: n1 has the A100s (GRES type a100).
NODES = (("n0", None), ("n1", "a100"), ("n2", None))
CI = os.environ.get("CI") == "true"


def _unavailable(why: str):
    if CI:
        pytest.fail(f"Slurm engine tests cannot run under CI=true: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def cluster():
    from corral.executors.slurm.cluster import LocalSlurmCluster, SlurmNodeSpec, install

    why = install()
    if why:
        _unavailable(why)
    c = LocalSlurmCluster([SlurmNodeSpec(name, cpus=4, memory_mb=4000, gpus=2, gpu_model=model)
                           for name, model in NODES])
    try:
        c.start()
    except Exception as exc:  # noqa: BLE001 - no Slurm here: skip (fail under CI)
        c.stop()
        _unavailable(f"a local Slurm cluster did not start: {exc}")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def sc(cluster, tmp_path_factory):
    """The corral daemon on the cluster (start timeout 8 s, for the test that needs it)."""
    c = make_corral(str(tmp_path_factory.mktemp("slurm")))
    c.env["SLURM_CONF"] = cluster.conf
    c.write_config(f"engine: {{type: slurm, partition: {cluster.partition}, start_timeout: 8s}}\n")
    try:
        c.up()
        yield c
    finally:
        teardown(c)


@pytest.fixture
def slurm_corral(sc, cluster):
    """The shared daemon; whatever a test leaves is cancelled after it, drained nodes
    undrained, and Slurm is idle again."""
    yield sc
    left = [str(j["id"]) for j in sc.ps()]
    if left:
        sc.run("cancel", *left)
        sc.run("wait", *left, timeout=90)
    for n in sc.json("nodes")["nodes"]:
        if n["state"] == "Draining":
            sc.ok("undrain", n["name"])
    wait_until(lambda: not squeue(cluster), 60, what="Slurm to have no job left")


def nodes(c: Corral) -> dict[str, dict]:
    return {n["name"]: n for n in c.json("nodes")["nodes"]}


def squeue(cluster, *extra: str) -> list[str]:
    """Slurm's own view: ``ID STATE NODES GRES`` of each live job."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %T %N %b", *extra], env=cluster.env, capture_output=True,
                         text=True, timeout=30)
    return [line for line in out.stdout.splitlines() if line.strip()]


def test_the_daemon_builds_its_nodes_from_slurm(slurm_corral):
    c = slurm_corral
    seen = nodes(c)
    assert sorted(seen) == ["n0", "n1", "n2"]
    for name, model in NODES:
        n = seen[name]
        assert n["state"] == "Ready" and n["engine"] == "slurm", n
        assert len(n["gpus"]) == 2 and all(g["job"] is None for g in n["gpus"]), n["gpus"]
        assert n["resources"]["cpu"]["raw"]["allocatable"] == 4000
        assert n["resources"]["memory"]["raw"]["allocatable"] == 4000 * 2**20
    assert seen["n1"]["gpu_model"] == "a100"
    text = c.ok("nodes")
    assert text.startswith("3 nodes (slurm engine)\n"), text


def test_one_gpu_jobs_fill_the_cluster_and_slurm_agrees(slurm_corral, cluster):
    c = slurm_corral
    ids = [c.submit("--gpus", "1", "--cpus", "1", "--mem", "256Mi", "--", "sh", "-c",
                    "echo node=$CORRAL_NODE cvd=$CUDA_VISIBLE_DEVICES gpus=$CORRAL_GPUS; exec sleep 600")
           for _ in range(8)]
    running = wait_until(lambda: (lambda r: r if len(r) == 6 else None)(
        [j for j in c.ps() if j["state"] == "Running"]), TIMEOUT * 2, what="6 of the 8 jobs to run")
    waiting = [j for j in c.ps() if j["state"] == "Pending"]
    assert len(waiting) == 2 and all(j["reason"] == "InsufficientResources" for j in waiting), waiting
    per_node: dict[str, int] = {}
    for j in running:
        view = c.show(j["id"])
        per_node[view["node"]] = per_node.get(view["node"], 0) + 1
        c.show_when(j["id"], lambda v: "node=" in c.logs(j["id"]), "the job's output", timeout=60)
        node, cvd, gpus = (kv.split("=", 1)[1] for kv in c.logs(j["id"]).split())
        assert node == view["node"] and cvd in ("0", "1") and gpus == cvd, c.logs(j["id"])
    assert per_node == {"n0": 2, "n1": 2, "n2": 2}
    live = squeue(cluster, "-t", "RUNNING")
    assert len(live) == 6 and all("gpu" in line for line in live), live     # only what corral placed
    assert len(squeue(cluster)) == 6                                        # nothing pends in Slurm
    c.run("cancel", *map(str, ids))
    c.run("wait", *map(str, ids), timeout=90)


def test_no_gpus_means_an_empty_cuda_visible_devices_and_a_model_picks_its_node(slurm_corral):
    c = slurm_corral
    plain = c.submit("--cpus", "500m", "--", "sh", "-c", 'echo "cvd=[${CUDA_VISIBLE_DEVICES-unset}]"')
    a100 = c.submit("--gpus", "a100:2", "--", "sh", "-c", "echo node=$CORRAL_NODE cvd=$CUDA_VISIBLE_DEVICES")
    failing = c.submit("--cpus", "100m", "--", "sh", "-c", "echo on stderr >&2; exit 3")
    done = {v["id"]: v for v in c.wait_done(plain, a100, failing)}
    assert done[plain]["state"] == "Succeeded" and c.logs(plain).strip() == "cvd=[]"
    assert done[a100]["state"] == "Succeeded" and done[a100]["node"] == "n1", done[a100]
    assert c.logs(a100).strip() == "node=n1 cvd=0,1"
    assert (done[failing]["state"], done[failing]["exit_code"]) == ("Failed", 3), done[failing]
    assert c.ok("logs", "--stderr", str(failing)).strip() == "on stderr"
    res = c.run("submit", "--gpus", "h100:1", "--", "true")
    assert res.returncode == 1 and "no node has 1 GPU of model h100" in res.stderr, res.stderr


def test_a_gang_runs_one_replica_per_node_with_rank_variables(slurm_corral, tmp_path):
    c = slurm_corral
    out = tmp_path / "ranks"
    out.mkdir()
    script = (f'echo "$CORRAL_NODE $CUDA_VISIBLE_DEVICES $MASTER_ADDR:$MASTER_PORT $WORLD_SIZE $CORRAL_NUM_NODES" '
              f'> {out}/rank-$RANK; echo rank=$RANK')
    job = c.submit("--nodes", "2", "--gpus", "2", "--cpus", "1", "--", "sh", "-c", script)
    [done] = c.wait_done(job)
    assert done["state"] == "Succeeded", done
    lines = {p.name: p.read_text().split() for p in out.iterdir()}
    assert sorted(lines) == ["rank-0", "rank-1"], lines
    (n0, g0, m0, w0, k0), (n1, g1, m1, w1, k1) = lines["rank-0"], lines["rank-1"]
    assert n0 != n1 and g0 == g1 == "0,1" and m0 == m1 and w0 == w1 == k0 == k1 == "2", lines
    addr, port = m0.rsplit(":", 1)
    assert addr == nodes(c)[n0]["address"] and int(port) > 0
    assert sorted(c.logs(job).split()) == ["rank=0", "rank=1"]       # srun gathers every replica's output


def test_cancel_time_limits_logs_and_usage_go_through_slurm(slurm_corral, tmp_path):
    c = slurm_corral
    busy = c.submit("--cpus", "1", "--", "sh", "-c", "while :; do :; done")
    used = c.show_when(busy, lambda v: (v.get("live") or {}).get("cpu"), "sstat's CPU time", timeout=60)
    assert used["live"]["source"] == "slurm" and used["live"]["cpu"] > 0.2, used["live"]
    c.ok("cancel", str(busy))
    talker = c.submit("--cpus", "100m", "--", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.5; done")
    assert c.ok("logs", "-f", str(talker), timeout=60) == "line 1\nline 2\nline 3\n"
    slow = c.submit("--cpus", "100m", "--time", "2s", "--", "sleep", "600")
    [timed] = c.wait_done(slow)
    assert (timed["state"], timed["reason"]) == ("Failed", "TimedOut"), timed
    trap = c.submit("--cpus", "100m", "--signal", "SIGUSR1", "--grace", "20s", "--", "sh", "-c",
                    "trap 'echo got it; exit 7' USR1; echo ready; while :; do sleep 0.1; done")
    c.show_when(trap, lambda v: "ready" in c.logs(trap), "the job to trap its signal", timeout=60)
    c.ok("cancel", str(trap))
    [done] = c.wait_done(trap)
    assert done["state"] == "Cancelled" and done["exit_code"] == 7 and "got it" in c.logs(trap), done


def test_a_job_slurm_holds_pending_shows_its_reason_and_is_requeued_after_the_timeout(slurm_corral, cluster):
    """Someone uses Slurm directly: their job holds n2's GPUs behind corral's back. corral
    places on n2, Slurm holds its job pending (Resources); after the start timeout (8 s
    here) corral cancels it in Slurm and queues it again with a backoff; once the other
    job is gone it runs."""
    c = slurm_corral
    c.ok("drain", "n0")
    c.ok("drain", "n1")
    other = subprocess.run(["sbatch", "--parsable", "-w", "n2", "--gres=gpu:2", "-o", "/dev/null", "--wrap",
                            "sleep 600"], env=cluster.env, capture_output=True, text=True, timeout=60)
    assert other.returncode == 0, other.stderr
    other_id = other.stdout.strip()
    try:
        wait_until(lambda: any(line.startswith(other_id + " RUNNING") for line in squeue(cluster)), 60,
                   what="the other user's job to run")
        job = c.submit("--gpus", "2", "--", "sh", "-c", "echo ran on $CORRAL_NODE")
        held = c.show_when(job, lambda v: v["reason"] == "EnginePending" and "Resources" in v["message"],
                           "Slurm's reason", timeout=30)
        assert held["state"] == "Running" and held["message"].startswith("slurm: Resources"), held
        requeued = c.show_when(job, lambda v: v["reason"] == "StartTimeout", "the start timeout", timeout=60)
        assert requeued["state"] == "Pending" and "slurm: Resources" in requeued["message"], requeued
        assert not [line for line in squeue(cluster) if not line.startswith(other_id)]   # cancelled in Slurm
    finally:
        subprocess.run(["scancel", other_id], env=cluster.env, timeout=30)
    [done] = c.wait_done(job)
    assert done["state"] == "Succeeded" and c.logs(job).strip().endswith("ran on n2"), done
    assert done["attempts"] >= 2, done


def test_a_killed_daemon_readopts_its_slurm_jobs(slurm_corral, cluster):
    c = slurm_corral
    job = c.submit("--gpus", "1", "--", "sh", "-c", "sleep 5; echo finished; exit 3")
    quick = c.submit("--cpus", "100m", "--", "sh", "-c", "sleep 1; echo quick")
    before = c.wait_state(job, "Running", timeout=60)
    pid = c.daemon_pid_from_lock()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), what="the daemon to die")
    time.sleep(2)                                   # `quick` ends while no daemon watches
    c.up()
    after = c.show(job)
    assert after["state"] in ("Running", "Failed") and after["node"] == before["node"], after
    done = {v["id"]: v for v in c.wait_done(job, quick)}
    assert done[job]["state"] == "Failed" and done[job]["exit_code"] == 3, done      # the real exit
    assert done[quick]["state"] == "Succeeded", done[quick]
    assert c.logs(job).strip() == "finished"
    assert done[job]["attempts"] == 1                  # nothing submitted twice


def test_a_lost_node_requeues_its_job_elsewhere_without_slurms_delay(slurm_corral, cluster, tmp_path):
    """Runs last: n2's slurmd is killed while its job runs. Slurm notices (not
    responding, ~10 s here), corral ends the job NodeLost, cancels it in Slurm and queues
    it again at once; it runs on another node. n2 is Lost until its slurmd returns."""
    c = slurm_corral
    c.ok("drain", "n0")
    c.ok("drain", "n1")
    job = c.submit("--gpus", "1", "--", "sh", "-c", "echo on $CORRAL_NODE; exec sleep 600")
    assert c.wait_state(job, "Running", timeout=60)["node"] == "n2"
    c.show_when(job, lambda v: v["reason"] == "Launched" and "running in Slurm" in v["message"],
                "Slurm to run it", timeout=60)
    c.ok("undrain", "n0")
    c.ok("undrain", "n1")
    killed = time.monotonic()
    cluster.kill_node("n2")
    lost = c.show_when(job, lambda v: v["reason"] == "NodeLost" or (v["node"] or "n2") != "n2",
                       "the job to be requeued", timeout=60)
    detected = time.monotonic() - killed
    assert nodes(c)["n2"]["state"] == "Lost"
    again = c.wait_state(job, "Running", timeout=60)
    assert again["node"] in ("n0", "n1") and again["attempts"] == 2, again
    print(f"node loss noticed and the job requeued in {detected:.1f} s ({lost['reason']})")
    cluster.start_node("n2")
    assert wait_until(lambda: nodes(c)["n2"]["state"] == "Ready", 90, what="n2 to come back")
