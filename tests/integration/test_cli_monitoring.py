"""Watching jobs: idle-GPU detection and its graded actions (driven by the simulated GPU
probe's values file), accounting, retention -- through the real CLI and daemon."""

from __future__ import annotations

import json
import os

from corral_harness import wait_until


def _gpu_values(c, values: dict) -> None:
    """What the simulated GPUs report from now on (the daemon re-reads the file)."""
    path = os.path.join(c.home, "simulated-gpus.json")
    with open(path + ".tmp", "w") as f:
        json.dump({str(k): v for k, v in values.items()}, f)
    os.replace(path + ".tmp", path)


def _events(view: dict, reason: str) -> list[dict]:
    return [e for e in view["events"] if e["reason"] == reason]



def test_idle_gpu_warns_then_requeues_and_the_job_runs_again(corral):
    c = corral
    c.write_config("sample_interval: 0.2\nseries_interval: 1s\n"
                   "idle_gpu: {threshold: 5%, window: 1s, step: 1s, actions: [warn, requeue]}\n")
    _gpu_values(c, {0: {"utilization": 1, "power": 60}, 1: {"utilization": 1, "power": 60}})
    c.up("--simulate-gpus", "2")
    job = c.submit("--gpus", "1", "--cpus", "100m", "--name", "stalled", "--", "sh", "-c",
                   'echo attempt $CORRAL_JOB_ID; sleep 1000')
    # Warned first, with the numbers, visible in ps as the running job's reason.
    view = c.show_when(job, lambda v: _events(v, "GpuIdle"), "an idle warning")
    warning = _events(view, "GpuIdle")[0]["message"]
    assert "idle for" in warning and "(utilization 1% < 5%)" in warning and "warning" in warning, warning
    assert "next: requeue in 1s" in warning
    # Then requeued: same id, back to Pending with its reason, started again.
    view = c.show_when(job, lambda v: _events(v, "Requeued"), "the requeue")
    requeue = _events(view, "Requeued")[0]
    assert requeue["from"] == "Running" and requeue["to"] == "Pending"
    assert requeue["message"].startswith("requeued: GPUs "), requeue
    # Make the GPUs busy so the second run is left alone.
    _gpu_values(c, {0: {"utilization": 90, "power": 300}, 1: {"utilization": 90, "power": 300}})
    view = c.show_when(job, lambda v: v["state"] == "Running" and v["attempts"] == 2,
                      "the job to run a second time")
    c.ok("cancel", str(job))
    [view] = c.wait_done(job)
    assert view["state"] == "Cancelled" and view["attempts"] == 2


def test_idle_gpu_cancel_per_job_override_and_busy_jobs_are_left_alone(corral):
    c = corral
    c.write_config("sample_interval: 0.2\nidle_gpu: {window: 1s, step: 1s}\n")   # default: warn only
    _gpu_values(c, {0: {"utilization": 0}, 1: {"utilization": 70}})
    c.up("--simulate-gpus", "2")
    idle = c.submit("--gpus", "1", "--cpus", "100m", "--idle-actions", "warn,cancel", "--", "sleep", "1000")
    wait_until(lambda: c.show(idle)["state"] == "Running", what="the idle job to start")
    busy = c.submit("--gpus", "1", "--cpus", "100m", "--", "sleep", "1000")
    [view] = c.wait_done(idle)
    assert (view["state"], view["reason"]) == ("Cancelled", "IdleGpuReclaimed"), view
    assert view["message"].startswith("cancelled: GPUs 0 idle for"), view["message"]
    # The other job holds GPU 1 at 70%: sampled, never judged idle.
    busy_view = c.show_when(busy, lambda v: (v.get("live") or {}).get("gpu_util") == 70,
                           "a GPU reading of the busy job")
    assert not _events(busy_view, "GpuIdle")
    assert busy_view["reason"] == "Launched"
    c.ok("cancel", str(busy))
    c.wait_done(busy)


def test_usage_accounts_gpu_hours_energy_and_waste(corral):
    c = corral
    c.write_config("sample_interval: 0.2\nseries_interval: 1s\n"
                   "cost: {gpu: 3600, cpu: 0, energy: 0, currency: EUR}\n")
    _gpu_values(c, {0: {"utilization": 0, "power": 200}, 1: {"utilization": 0, "power": 200}})
    c.up("--simulate-gpus", "2")
    job = c.submit("--gpus", "2", "--cpus", "100m", "--name", "acct", "--", "sleep", "2")
    [view] = c.wait_done(job)
    assert view["state"] == "Succeeded"
    data = c.json("usage", "--by", "job", "--since", "1h")
    [line] = [line for line in data["lines"] if line["key"] == str(job)]
    held = view["ended_at"] - view["started_at"]
    assert line["name"] == "acct" and line["jobs"] == 1
    assert abs(line["gpu_hours"] - 2 * held / 3600) < 1e-6            # 2 GPUs for the time it held them
    assert abs(line["cost"] - 3600 * line["gpu_hours"]) < 1e-6        # EUR 3600 per GPU-hour
    usage = view["usage"]
    # Energy is the sampled power (2 x 200 W) over the sampled time: about 400 J per second held.
    assert 0 < usage["energy_j"] <= 400 * usage["gpu_seconds"] / 2 + 1e-6
    assert abs(line["energy_kwh"] - usage["energy_j"] / 3.6e6) < 1e-9
    # Utilization 0 the whole time: every sampled GPU-second was wasted.
    assert line["wasted_gpu_hours"] > 0 and line["wasted_gpu_hours"] <= line["gpu_hours"] + 1e-9
    by_user = c.json("usage", "--since", "1h")
    assert by_user["lines"][0]["key"] == view["user"] and by_user["currency"] == "EUR"
    text = c.ok("usage", "--by", "job", "--since", "1h")
    assert "GPU-H" in text and "COST EUR" in text and "acct" in text


def test_prune_deletes_finished_jobs_and_their_logs_only(shared_corral):
    c = shared_corral
    done = c.submit("--cpus", "100m", "--", "echo", "hello")
    c.wait_done(done)
    running = c.submit("--cpus", "100m", "--", "sleep", "1000")
    wait_until(lambda: c.show(running)["state"] == "Running", what="the job to start")
    assert os.path.isdir(os.path.join(c.home, "jobs", str(done)))
    out = c.json("prune", "--older-than", "0")
    assert done in out["deleted"] and running not in out["deleted"]
    res = c.run("show", str(done))
    assert res.returncode == 1 and f"no such job: {done}" in res.stderr
    assert not os.path.exists(os.path.join(c.home, "jobs", str(done)))
    assert c.show(running)["state"] == "Running"
    c.ok("cancel", str(running))
    c.wait_done(running)
    assert "deleted" in c.ok("prune")                                 # default: 30 days, nothing that new


def test_bad_monitoring_options_are_one_line_errors(shared_corral):
    c = shared_corral
    for args, expected in [
        (("--signal", "KILL"), 'invalid value for --signal: "KILL"'),
        (("--idle-actions", "cancel,warn"), 'invalid value for --idle-actions: "cancel,warn"'),
        (("--idle-threshold", "200"), 'invalid value for --idle-threshold: "200"'),
        (("--grace", "soon"), 'invalid grace period for --grace: "soon"'),
    ]:
        res = c.run("submit", *args, "--", "true")
        assert res.returncode == 1, (args, res.stdout)
        assert res.stderr.startswith(f"error: {expected}") and res.stderr.count("\n") == 1, res.stderr
    res = c.run("usage", "--by", "team")
    assert res.returncode == 1 and 'invalid value for --by: "team" (expected one of: user, job, queue)' in res.stderr
