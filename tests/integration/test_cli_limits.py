"""Limits hold: memory and CPU through real cgroups, the watchdog without them, time
limits with the job's own stop signal. All through the real CLI and daemon.

The cgroup tests need cgroup rights (root here, as in CI). Without them they skip --
except under ``CI=true``, where a machine that cannot enforce is a failure.
"""

from __future__ import annotations

import os

import pytest

from corral_harness import wait_until

HOG = ("import time\n"
       "x = []\n"
       "while True:\n"
       "    x.append(bytearray(8 << 20))\n"
       "    time.sleep(0.02)\n")


def _require_hard(c) -> dict:
    enforcement = c.node()["enforcement"]
    if not enforcement["hard"]:
        message = f"cgroups are not usable here: {enforcement['description']}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return enforcement


@pytest.fixture
def hard(corral):
    corral.write_config("sample_interval: 0.5\n")
    corral.up("--simulate-gpus", "2")
    _require_hard(corral)
    return corral


def test_memory_limit_is_hard_and_oom_kill_is_reported(hard):
    c = hard
    job = c.submit("--cpus", "100m", "--mem", "64Mi", "--name", "hog", "--", "python3", "-c", HOG)
    [view] = c.wait_done(job)
    assert (view["state"], view["reason"]) == ("Failed", "OOMKilled"), view
    assert view["message"].startswith("exceeded memory limit 64Mi (peak "), view["message"]
    assert view["signal"] == 9
    enforced = " ".join(view["enforcement"]["limits"])
    assert "memory 64Mi hard (cgroup, OOM kill)" in enforced, view["enforcement"]
    hints = view["efficiency"]["hints"]
    assert any(h.startswith("ran out of memory at its 64Mi limit") for h in hints), hints
    # The job's cgroup is gone once it ended.
    from corral.executors.local.cgroups import JobCgroup, detect
    from corral.executors.local.enforcement import group_name

    support, _ = detect(group_name(c.home))
    assert support is not None and not JobCgroup(support, f"job-{job}").exists()


def test_cpu_limit_holds_two_spinning_processes_to_half_a_cpu(hard):
    c = hard
    spin = "end=$(($(date +%s) + 4)); while [ $(date +%s) -lt $end ]; do :; done"
    job = c.submit("--cpus", "500m", "--name", "spin", "--", "sh", "-c", f"({spin}) & ({spin}); wait")
    [view] = c.wait_done(job)
    assert view["state"] == "Succeeded", view
    eff = view["efficiency"]
    # CPU time from the job's cgroup over its wall time: two busy processes, quota 0.5. The
    # kernel guarantees the upper bound; how much less they get depends on the machine's
    # load, so only that bound is checked (and that they ran).
    assert 0 < eff["cpu_used"] <= 0.6, eff
    assert "cpu 0.5 hard (CFS quota)" in " ".join(view["enforcement"]["limits"])


def test_job_without_limits_still_runs_in_a_cgroup_with_pids_limit(hard):
    c = hard
    job = c.submit("--cpus", "100m", "--", "sh", "-c", "cat /proc/self/cgroup")
    [view] = c.wait_done(job)
    assert view["state"] == "Succeeded", view
    assert f"job-{job}" in c.logs(job)
    assert "pids 16384 hard" in " ".join(view["enforcement"]["limits"])


def test_watchdog_kills_a_job_over_its_memory_limit(corral):
    c = corral
    c.write_config("enforcement: watchdog\nsample_interval: 0.2\n")
    c.up("--simulate-gpus", "2")
    enforcement = c.node()["enforcement"]
    assert enforcement["mode"] == "watchdog" and not enforcement["hard"]
    assert enforcement["description"].startswith("watched:")
    job = c.submit("--cpus", "100m", "--mem", "64Mi", "--name", "hog", "--", "python3", "-c", HOG)
    view = c.show(job)
    assert any("memory 64Mi watched" in line for line in view["enforcement"]["limits"]), view["enforcement"]
    [view] = c.wait_done(job)
    assert (view["state"], view["reason"]) == ("Failed", "MemoryLimitExceeded"), view
    assert view["message"].startswith("exceeded memory limit 64Mi (rss "), view["message"]
    assert view["message"].endswith(", watchdog)")


def test_time_limit_sends_the_jobs_own_signal_then_sigkill(hard):
    c = hard
    script = ("trap 'echo checkpoint at $(date +%s)' USR1; echo pid=$$; "
              "while :; do sleep 0.1; done")
    job = c.submit("--cpus", "100m", "--time", "2s", "--signal", "USR1", "--grace", "1s", "--", "sh", "-c", script)
    assert c.show(job)["stop_signal"] == "SIGUSR1"
    [view] = c.wait_done(job)
    assert (view["state"], view["reason"]) == ("Failed", "TimedOut"), view
    assert view["signal"] == 9, view               # it caught USR1, so SIGKILL ended it
    assert "checkpoint at" in c.logs(job)


def test_live_usage_and_efficiency_in_show_and_top(hard):
    c = hard
    job = c.submit("--cpus", "100m", "--mem", "256Mi", "--name", "holder", "--", "python3", "-c",
                   "import time; x = bytearray(40 << 20); x[::4096] = b'1' * len(x[::4096]); time.sleep(60)")
    def reading():
        view = c.show(job)
        return view if ((view.get("live") or {}).get("memory") or 0) > (30 << 20) else None

    view = wait_until(reading, what="a memory reading of the running job")
    assert view["live"]["source"] == "cgroup"
    top = c.ok("top", "--once")
    assert "holder" in top and "GPU" in top
    c.ok("cancel", str(job))
    [view] = c.wait_done(job)
    eff = view["efficiency"]
    assert eff["memory_peak"] >= 40 << 20 and eff["memory_request"] == 256 << 20
    assert view["usage"]["rows"] >= 1


def test_a_job_that_writes_without_bound_is_held_to_its_log_limit(corral):
    c = corral
    c.write_config("log_limit: 1Mi\nsample_interval: 0.2s\n")
    c.up()
    marker = b"[corral: log cut at 1,048,576 bytes; what the job writes beyond that is dropped]\n"
    job = c.submit("--cpus", "100m", "--", "sh", "-c",
                   "echo first; for i in $(seq 40); do head -c 100000 /dev/zero | tr '\\0' x; sleep 0.05; done; "
                   "echo done >&2")
    [done] = c.wait_done(job)
    assert done["state"] == "Succeeded", done
    out = open(f"{c.home}/jobs/{job}/stdout.log", "rb").read()
    assert out.startswith(b"first\nxxx") and out.endswith(marker) and len(out) == 2**20 + len(marker) + 1
    reasons = [e for e in c.show(job)["events"] if e["reason"] == "LogTruncated"]
    assert len(reasons) == 1 and reasons[0]["message"].startswith("stdout cut at 1Mi ("), reasons
    assert c.logs(job, "--stderr").strip() == "done"          # the other stream is its own
    # A job that writes it all between two looks is cut when it ends.
    fast = c.submit("--cpus", "100m", "--", "sh", "-c", "head -c 5000000 /dev/zero")
    c.wait_done(fast)
    assert open(f"{c.home}/jobs/{fast}/stdout.log", "rb").read().endswith(marker)
