"""Queues with quotas, per-user limits, EASY backfill, preemption and estimated starts,
through the real CLI and daemon."""

from __future__ import annotations

import time

SLEEP = ("sleep", "600")



def test_quota_user_limit_and_queues_view(corral):
    c = corral
    c.write_config("queues:\n"
                   "  - {name: research, nominal: {nvidia.com/gpu: 1}, borrowing_limit: {nvidia.com/gpu: 0}}\n"
                   "  - {name: prod, nominal: {nvidia.com/gpu: 3}, max_user_jobs: 1}\n")
    c.up("--simulate-gpus", "4")
    first = c.submit("--queue", "research", "--gpus", "1", "--cpus", "100m", "--", *SLEEP)
    second = c.submit("--queue", "research", "--gpus", "1", "--cpus", "100m", "--", *SLEEP)
    view = c.show_when(second, lambda v: v["reason"] == "QuotaExceeded", "a quota reason")
    assert view["state"] == "Pending"
    assert view["message"].startswith("queue research: quota nvidia.com/gpu: requests 1, in use 1 of nominal 1"), view
    prod = c.submit("--queue", "prod", "--gpus", "1", "--cpus", "100m", "--", *SLEEP)
    prod2 = c.submit("--queue", "prod", "--gpus", "1", "--cpus", "100m", "--", *SLEEP)
    view = c.show_when(prod2, lambda v: v["reason"] == "UserLimit", "a user-limit reason")
    assert "max_user_jobs 1" in view["message"] and "prod" in view["message"], view
    assert c.show(first)["state"] == "Running" and c.show(prod)["state"] == "Running"
    queues = {q["name"]: q for q in c.json("queues")["queues"]}
    assert queues["research"]["usage"]["nvidia.com/gpu"] == "1" and queues["research"]["pending"] == 1
    assert queues["prod"]["running"] == 1 and queues["prod"]["pending"] == 1
    text = c.ok("queues")
    assert "research" in text and "BORROWED" in text
    assert text.rstrip().endswith("3 queues"), text        # default, prod, research; nothing else on
    res = c.run("submit", "--queue", "nope", "--", "true")
    assert res.returncode == 1
    assert res.stderr == 'error: invalid value for --queue: "nope" (expected one of: default, prod, research)\n'
    c.ok("cancel", str(first))
    c.show_when(second, lambda v: v["state"] == "Running", "the research job to start after the first ends")


def test_priority_preemption_requeues_the_victim_which_runs_again(corral):
    c = corral
    c.write_config("preemption: true\nkill_grace: 2s\n")
    c.up("--simulate-gpus", "2")
    low = c.submit("--gpus", "2", "--cpus", "100m", "--name", "low", "--", "sh", "-c",
                   "trap 'echo got TERM; exit 143' TERM; echo started; while :; do sleep 0.1; done")
    c.show_when(low, lambda v: v["state"] == "Running", "the low-priority job to start")
    high = c.submit("--gpus", "2", "--cpus", "100m", "--priority", "10", "--name", "high", "--", "sleep", "2")
    view = c.show_when(high, lambda v: v["state"] in ("Running", "Succeeded"), "the high-priority job to start")
    victim = c.show(low)
    preempted = [e for e in victim["events"] if e["reason"] == "Preempted"]
    assert preempted and preempted[0]["message"].startswith(f"preempted for job {high} (priority 10 > 0)"), victim
    assert preempted[0]["from"] == "Running" and preempted[0]["to"] == "Pending"
    assert "got TERM" in c.logs(low)
    # Same id, run again once the high-priority job is done.
    view = c.show_when(low, lambda v: v["state"] == "Running" and v["attempts"] == 2, "the victim to run again")
    assert c.show(high)["state"] == "Succeeded"
    c.ok("cancel", str(low))
    c.wait_done(low)


def test_no_preemption_when_off_or_not_preemptible(corral):
    c = corral
    c.write_config("preemption: true\n")
    c.up("--simulate-gpus", "1")
    keep = c.submit("--gpus", "1", "--cpus", "100m", "--no-preempt", "--", *SLEEP)
    c.show_when(keep, lambda v: v["state"] == "Running", "the job to start")
    high = c.submit("--gpus", "1", "--cpus", "100m", "--priority", "10", "--", "true")
    view = c.show_when(high, lambda v: v["reason"] == "InsufficientResources", "the high job to wait")
    time.sleep(1.0)
    assert c.show(keep)["state"] == "Running" and c.show(keep)["attempts"] == 1
    assert view["state"] == "Pending"
    c.ok("cancel", str(keep))
    c.wait_done(high)


def test_backfill_reserves_for_the_head_job_and_estimates_starts(corral):
    c = corral
    c.write_config("backfill: true\n")
    c.up("--simulate-gpus", "2")
    running = c.submit("--gpus", "1", "--cpus", "100m", "--time", "1h", "--", *SLEEP)
    c.show_when(running, lambda v: v["state"] == "Running", "the first job to start")
    head = c.submit("--gpus", "2", "--cpus", "100m", "--time", "30m", "--name", "head", "--", *SLEEP)
    no_limit = c.submit("--gpus", "1", "--cpus", "100m", "--name", "nolimit", "--", *SLEEP)
    short = c.submit("--gpus", "1", "--cpus", "100m", "--time", "5m", "--name", "short", "--", "sleep", "1")
    # The short job ends before the head job's reservation: it is backfilled.
    c.show_when(short, lambda v: v["state"] in ("Running", "Succeeded"), "the short job to be backfilled")
    view = c.show(no_limit)
    assert (view["state"], view["reason"]) == ("Pending", "Reserved"), view
    assert view["message"].startswith(f"reserved for job {head}"), view
    started = c.show(running)["started_at"]
    head_view = c.show(head)
    assert head_view["reason"] == "InsufficientResources"
    assert abs(head_view["estimated_start"] - (started + 3600)) < 5, (head_view["estimated_start"], started)
    assert "Starts:    in ~" in c.ok("show", str(head))
    ps = c.ok("ps")
    assert "(starts in ~" in ps
    for job in (running, head, no_limit):
        c.ok("cancel", str(job))
    c.wait_done(running, head, no_limit, short)


def test_a_job_larger_than_its_queue_can_ever_hold_is_refused(corral):
    c = corral
    c.write_config("queues:\n"
                   "  - {name: small, nominal: {nvidia.com/gpu: 1}, borrowing_limit: {nvidia.com/gpu: 1}}\n")
    c.up("--simulate-gpus", "4")
    res = c.run("submit", "--queue", "small", "--gpus", "3", "--", "true")
    assert res.returncode == 1
    assert res.stderr == ("error: insufficient quota for nvidia.com/gpu: job requests 3, queue small can hold at "
                          "most 2 (nominal plus what it may borrow)\n"), res.stderr
    assert c.ps("-a") == []
