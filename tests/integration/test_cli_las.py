"""``policy: las`` through the real CLI and daemon: a resumable job demoted at its level
boundary is preempted for a waiting job of a lower level -- with no other event to wake
the daemon -- saves its work on its stop signal, and runs again told what it has served;
a job that does not checkpoint is never preempted by attained service."""

from __future__ import annotations

import re
import time

# Counts its steps in a checkpoint file; on SIGTERM saves and exits; run again it goes on
# from the file. It says how it started (attempt, CORRAL_SERVED) and ends after 60 steps.
RESUMABLE = (
    'n=$(cat ckpt 2>/dev/null || echo 0); echo "attempt $CORRAL_ATTEMPT served $CORRAL_SERVED from $n"; '
    "trap 'echo $n > ckpt; echo saved $n; exit 143' TERM; "
    "while [ $n -lt 60 ]; do sleep 0.1; n=$((n+1)); done; echo done $n"
)


def test_a_demoted_resumable_job_is_preempted_and_resumes(corral, tmp_path):
    c = corral
    c.write_config("policy: las\nlas: {levels: [2s]}\nkill_grace: 5s\n")
    c.up("--simulate-gpus", "1")
    work = tmp_path / "work"
    work.mkdir()
    long = c.submit("--gpus", "1", "--cpus", "100m", "--resumable", "--workdir", str(work), "--name", "long",
                    "--", "sh", "-c", RESUMABLE)
    c.show_when(long, lambda v: v["state"] == "Running", "the long job to start")
    short = c.submit("--gpus", "1", "--cpus", "100m", "--name", "short", "--", "sleep", "0.5")
    # Level 0 like the short job for its first 2 GPU-seconds: the short one waits for the
    # GPU, then preempts it once it is demoted (the daemon wakes for that by itself).
    c.show_when(short, lambda v: v["state"] in ("Running", "Succeeded"), "the short job to start", timeout=60)
    victim = c.show_when(long, lambda v: any(e["reason"] == "Preempted" for e in v["events"]),
                         "the long job's preemption")
    preempted = [e for e in victim["events"] if e["reason"] == "Preempted"][0]
    assert preempted["message"].startswith(
        f"preempted for job {short} (attained service level 1 > 0; it resumes from its checkpoint)"), victim
    assert preempted["from"] == "Running" and preempted["to"] == "Pending"
    [done] = c.wait_done(long)
    assert done["state"] == "Succeeded" and done["attempts"] == 2, done
    assert done["resumable"] is True and done["served"] >= 2.0, done
    logs = c.logs(long)
    assert "attempt 1 served 0 from 0" in logs and "saved " in logs, logs
    saved = int(re.search(r"saved (\d+)", logs).group(1))
    assert saved > 0
    # Run again, it was told what it had served and went on from its checkpoint.
    again = re.search(r"attempt 2 served (\d+) from (\d+)", logs)
    assert again is not None, logs
    assert int(again.group(1)) == round(done["served"]) and int(again.group(2)) == saved, logs
    assert "done 60" in logs
    assert c.show(short)["state"] == "Succeeded"
    shown = c.ok("show", str(long))
    assert "Resumable: yes" in shown


def test_a_job_that_does_not_checkpoint_is_not_preempted_by_service(corral):
    c = corral
    c.write_config("policy: las\nlas: {levels: [1s]}\n")
    c.up("--simulate-gpus", "1")
    keep = c.submit("--gpus", "1", "--cpus", "100m", "--", "sleep", "600")
    c.show_when(keep, lambda v: v["state"] == "Running", "the job to start")
    waiting = c.submit("--gpus", "1", "--cpus", "100m", "--", "true")
    c.show_when(waiting, lambda v: v["reason"] == "InsufficientResources", "the new job to wait")
    time.sleep(2.0)                      # past the 1 s boundary: level 1, but not resumable
    assert c.show(keep)["state"] == "Running" and c.show(keep)["attempts"] == 1
    assert c.show(waiting)["state"] == "Pending"
    c.ok("cancel", str(keep))
    c.wait_done(waiting)
