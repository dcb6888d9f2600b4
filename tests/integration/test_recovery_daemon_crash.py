"""Crash safety: SIGKILL the daemon with jobs running and pending; jobs keep running,
ends that happen while it is down are recorded with their real exit status, and a
restarted daemon re-adopts what still runs without handing any GPU out twice."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time


from corral_harness import CORRAL, connected_unix_sockets, gate_cmd, proc_alive, wait_until


def _job(gate, code: int = 0) -> str:
    return gate_cmd(gate, before='echo pid=$$; echo "cvd=$CUDA_VISIBLE_DEVICES"', after=f"exit {code}")


def _cvd(c, job_id: int) -> set[int]:
    """The GPUs the job itself saw (CUDA_VISIBLE_DEVICES it printed)."""
    def find():
        for line in c.logs(job_id).splitlines():
            if line.startswith("cvd="):
                return line[4:] or "-"
        return None

    value = wait_until(find, what=f"job {job_id} to print CUDA_VISIBLE_DEVICES")
    return set() if value == "-" else {int(g) for g in value.split(",")}


def _check_gpus_exclusive(c) -> dict[int, set[int]]:
    """Running jobs: GPUs from ps, from the job's own environment and from `nodes` agree,
    and no GPU belongs to two of them."""
    running = {j["id"]: set(j["gpus"]) for j in c.ps("--state", "Running")}
    seen: dict[int, int] = {}
    for job_id, gpus in running.items():
        assert _cvd(c, job_id) == gpus, (job_id, gpus)
        for g in gpus:
            assert g not in seen, f"GPU {g} given to jobs {seen[g]} and {job_id}"
            seen[g] = job_id
    holders = c.gpu_holders()
    assert {g: j for g, j in holders.items() if j is not None} == seen, (holders, running)
    return running


def _kill_daemon(c) -> int:
    health = c.up()["health"]
    pid = health["pid"]
    assert c.daemon_pid_from_lock() == pid
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not proc_alive(pid), what="the daemon to die")
    return pid


def test_sigkill_daemon_with_running_and_pending_jobs(fresh_corral4, tmp_path):
    c = fresh_corral4
    gates = {name: tmp_path / f"gate-{name}" for name in ("r1", "r2", "r3", "p1", "p2", "p3")}
    r1 = c.submit("--gpus", "1", "--cpus", "100m", "--name", "r1", "--", _job(gates["r1"]))
    r2 = c.submit("--gpus", "1", "--cpus", "100m", "--name", "r2", "--", _job(gates["r2"], 3))
    r3 = c.submit("--gpus", "2", "--cpus", "100m", "--name", "r3", "--", _job(gates["r3"]))
    for j in (r1, r2, r3):
        c.wait_state(j, "Running")
    pids = {j: c.job_main_pid(j) for j in (r1, r2, r3)}
    before = _check_gpus_exclusive(c)
    assert set(before) == {r1, r2, r3}

    p1 = c.submit("--gpus", "4", "--cpus", "100m", "--name", "p1", "--", _job(gates["p1"]))
    p2 = c.submit("--gpus", "2", "--cpus", "100m", "--name", "p2", "--", _job(gates["p2"]))
    p3 = c.submit("--gpus", "3", "--cpus", "100m", "--name", "p3", "--", _job(gates["p3"]))
    wait_until(lambda: all(c.show(j)["reason"] == "InsufficientResources" for j in (p1, p2, p3)),
               what="the pending jobs to be considered")
    queue_before = [(j["id"], j["queue_position"]) for j in c.ps("--state", "Pending")]
    assert queue_before == [(p1, 1), (p2, 2), (p3, 3)]
    supervisors = {j: c.show(j).get("supervisor_pid") for j in (r1, r2, r3)}

    old_pid = _kill_daemon(c)

    # The jobs do not notice: all three still run.
    for j, pid in pids.items():
        assert proc_alive(pid), f"job {j} (pid {pid}) died with the daemon"
    # One of them ends (exit 3) while there is no daemon.
    gates["r2"].touch()
    wait_until(lambda: not proc_alive(pids[r2]), what="job r2 to exit")
    if supervisors[r2]:
        wait_until(lambda: not proc_alive(supervisors[r2]), what="job r2's supervisor to record the exit")
    assert proc_alive(pids[r1]) and proc_alive(pids[r3])

    up = c.up()
    assert up["already_running"] is False
    assert up["health"]["pid"] != old_pid
    assert up["health"]["pid"] == c.daemon_pid_from_lock()

    # The end that happened while the daemon was down: recorded with its real exit code.
    v2 = c.wait_state(r2, ("Succeeded", "Failed", "Cancelled"))
    assert (v2["state"], v2["reason"], v2["exit_code"], v2["signal"]) == ("Failed", "Error", 3, None), v2
    assert v2["message"] == "exit code 3"
    # Still-running jobs are re-adopted, on the same GPUs.
    for j in (r1, r3):
        v = c.show(j)
        assert (v["state"], v["reason"]) == ("Running", "Adopted"), v
        assert set(v["gpus"]) == before[j]
    # Pending jobs are still queued, in the same order.
    wait_until(lambda: all(c.show(j)["reason"] == "InsufficientResources" for j in (p1, p2, p3)),
               what="the pending jobs to be considered again")
    assert [(j["id"], j["queue_position"]) for j in c.ps("--state", "Pending")] == queue_before
    assert c.show(p1)["message"] == "insufficient nvidia.com/gpu: requests 4, free 1 of 4"
    after = _check_gpus_exclusive(c)
    assert after == {r1: before[r1], r3: before[r3]}
    assert c.gpu_holders()[next(iter(before[r2]))] is None

    # An adopted job's end is recorded too; its GPU (and r2's) go to the next job that fits.
    gates["r1"].touch()
    v1 = c.wait_done(r1)[0]
    assert (v1["state"], v1["reason"], v1["exit_code"]) == ("Succeeded", "Completed", 0), v1
    c.wait_state(p2, "Running")
    running = _check_gpus_exclusive(c)
    assert running[p2] == before[r1] | before[r2]
    assert running[r3] == before[r3]
    assert c.show(p1)["state"] == "Pending" and c.show(p3)["state"] == "Pending"

    gates["r3"].touch()
    assert c.wait_done(r3)[0]["state"] == "Succeeded"
    gates["p2"].touch()
    assert c.wait_done(p2)[0]["state"] == "Succeeded"
    # The queue order survived the crash: p1 (first) starts before p3.
    c.wait_state(p1, "Running")
    assert c.show(p3)["state"] == "Pending"
    assert _check_gpus_exclusive(c)[p1] == {0, 1, 2, 3}
    gates["p1"].touch()
    c.wait_state(p3, "Running")
    gates["p3"].touch()
    res = c.wait(p1, p3)
    assert res.returncode == 0, res.stdout
    assert set(c.gpu_holders().values()) == {None}


def test_any_command_restarts_a_killed_daemon_and_keeps_simulated_gpus(fresh_corral4, tmp_path):
    c = fresh_corral4
    gate = tmp_path / "gate"
    job = c.submit("--gpus", "1", "--cpus", "100m", "--", _job(gate))
    c.wait_state(job, "Running")
    gpus = set(c.show(job)["gpus"])
    old_pid = _kill_daemon(c)
    assert c.socket_exists()  # stale: nobody answers on it

    # `corral ps` finds no daemon behind the socket and starts one.
    listed = c.ps()
    assert [(j["id"], j["state"]) for j in listed] == [(job, "Running")]
    assert c.daemon_pid_from_lock() not in (None, old_pid)
    node = c.node()
    assert node["simulated_gpus"] is True and len(node["gpus"]) == 4
    assert c.show(job)["reason"] == "Adopted"
    assert _check_gpus_exclusive(c) == {job: gpus}
    gate.touch()
    assert c.wait(job).returncode == 0


def test_down_keeps_jobs_running_and_next_daemon_adopts_them(fresh_corral4, tmp_path):
    c = fresh_corral4
    gate = tmp_path / "gate"
    job = c.submit("--gpus", "1", "--cpus", "100m", "--", _job(gate, 5))
    c.wait_state(job, "Running")
    pid = c.job_main_pid(job)
    daemon = c.daemon_pid_from_lock()
    res = c.down()
    assert res.returncode == 0
    assert res.stdout == ("corral daemon stopped; 1 running job(s) keep running "
                          "and will be re-adopted by the next daemon\n")
    wait_until(lambda: not proc_alive(daemon), timeout=10, what="the daemon to exit")
    assert not c.socket_exists()
    assert proc_alive(pid)
    gate.touch()
    wait_until(lambda: not proc_alive(pid), what="the job to exit while no daemon runs")
    res = c.wait(job)  # auto-starts the daemon, which records the exit it missed
    assert res.returncode == 1
    view = c.show(job)
    assert (view["state"], view["reason"], view["exit_code"]) == ("Failed", "Error", 5), view
    assert set(c.gpu_holders().values()) == {None}


def test_cancel_in_flight_when_the_daemon_dies_still_ends_cancelled(corral, tmp_path):
    c = corral
    c.write_config("kill_grace: 30s\n")
    c.up("--simulate-gpus", "2")
    gate = tmp_path / "gate"
    # On SIGTERM the job takes its time (until the gate opens), then exits 0.
    job = c.submit("--gpus", "1", "--cpus", "100m", "--",
                   f"trap '{gate_cmd(gate, before='echo term')}' TERM; echo pid=$$; echo ready; "
                   "while true; do sleep 0.1; done")
    wait_until(lambda: "ready" in c.logs(job), what="the job to install its trap")
    pid = c.job_main_pid(job)
    assert c.ok("cancel", str(job)) == f"job {job}: stopping\n"
    wait_until(lambda: "term" in c.logs(job), what="the job to get SIGTERM")
    _kill_daemon(c)
    assert proc_alive(pid)
    gate.touch()
    wait_until(lambda: not proc_alive(pid), what="the job to exit")
    view = c.wait_done(job)[0]  # restarts the daemon
    assert (view["state"], view["reason"], view["exit_code"]) == ("Cancelled", "CancelledByUser", 0), view
    assert set(c.gpu_holders().values()) == {None}


def _follow(c, job_id: int) -> subprocess.Popen:
    """`corral logs -f JOB`, once it has printed the job's first line (so its connection
    to the daemon is open and streaming)."""
    proc = subprocess.Popen([*CORRAL, "logs", "-f", str(job_id)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=c.env, cwd=c.workdir)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    assert sel.select(30), "`corral logs -f` printed nothing"
    assert os.read(proc.stdout.fileno(), 100).startswith(b"ready")
    return proc


def test_command_right_after_down_with_a_connected_client(corral, tmp_path):
    c = corral
    c.up()
    gate = tmp_path / "gate"
    job = c.submit("--cpus", "100m", "--", gate_cmd(gate, before="echo ready"))
    follower = _follow(c, job)
    try:
        assert c.down().returncode == 0
        # The very next command must find (or start) a daemon; a daemon starts in ~1 s.
        res = c.run("ps", "--json", timeout=12)
        assert res.returncode == 0, res.stderr
        assert [j["id"] for j in json.loads(res.stdout)["jobs"]] == [job]
    finally:
        gate.touch()
        follower.kill()
        follower.communicate()


def test_wait_survives_a_daemon_restart(corral, tmp_path):
    c = corral
    daemon = c.up()["health"]["pid"]
    gate = tmp_path / "gate"
    job = c.submit("--cpus", "100m", "--", gate_cmd(gate))
    c.wait_state(job, "Running")
    waiter = subprocess.Popen([*CORRAL, "wait", str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=c.env, cwd=c.workdir)
    try:
        wait_until(lambda: connected_unix_sockets(waiter.pid) > 0, what="`corral wait` to connect")
        time.sleep(0.3)  # let its request reach the daemon (nothing is asserted on time)
        assert c.down().returncode == 0
        wait_until(lambda: not proc_alive(daemon), timeout=15, what="the daemon to exit")
        gate.touch()  # the job ends after the daemon is gone
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()
    started = f"corral: started a daemon for {c.home} (pid {c.daemon_pid_from_lock()})\n"   # wait brought one up
    assert (waiter.returncode, err) == (0, started), err
    assert out == f"job {job}: Succeeded (Completed: exit code 0)\n"


def test_daemon_killed_mid_burst_runs_every_job_exactly_once(fresh_corral4, tmp_path):
    """SIGKILL the daemon while a batch of short jobs is being launched: after the
    restart every job ends Succeeded and each one ran exactly once."""
    c = fresh_corral4
    runs = tmp_path / "runs"
    runs.mkdir()
    docs = "---\n".join(
        "apiVersion: corral/v1\nkind: Job\n"
        f"metadata: {{name: burst{i}}}\n"
        f"spec: {{command: 'touch {runs}/$CORRAL_JOB_ID.$$', resources: {{requests: {{cpu: 50m, nvidia.com/gpu: 1}}}}}}\n"
        for i in range(24))
    daemon = c.up()["health"]["pid"]
    ids = c.json("submit", "-f", "-", input=docs)["ids"]
    os.kill(daemon, signal.SIGKILL)  # at once: some jobs are still being launched
    assert len(ids) == 24
    wait_until(lambda: not proc_alive(daemon), what="the daemon to die")
    res = c.wait(*ids)  # restarts the daemon
    assert res.returncode == 0, res.stdout
    ran = sorted(int(name.split(".")[0]) for name in os.listdir(runs))
    assert ran == sorted(ids), "every job must run exactly once across the crash"
    assert set(c.gpu_holders().values()) == {None}
