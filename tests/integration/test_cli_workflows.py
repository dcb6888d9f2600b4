"""Arrays, dependencies, retries, hold and release through the real CLI and daemon."""

from __future__ import annotations

import re

from corral_harness import gate_cmd, wait_until


def test_array_runs_every_index_at_most_n_at_once(shared_corral):
    c = shared_corral
    out = c.ok("submit", "--array", "0-5%2", "--cpus", "100m", "--name", "sweep", "--",
               "sh", "-c", 'echo index=$CORRAL_ARRAY_INDEX array=$CORRAL_ARRAY_ID; sleep 0.3')
    assert out.startswith("submitted array ") and ": 6 jobs " in out, out
    jobs = [j for j in c.ps("-a") if j.get("name") == "sweep"]
    ids = sorted(j["id"] for j in jobs)
    assert len(ids) == 6
    array_id = ids[0]
    # While it runs, never more than 2 of its tasks are queued or running at once.
    seen_running = 0

    def done() -> bool:
        nonlocal seen_running
        live = [j for j in c.ps() if j.get("array_id") == array_id]
        running = [j for j in live if j["state"] == "Running"]
        seen_running = max(seen_running, len(running))
        assert len(running) <= 2, running
        throttled = [j for j in live if j["state"] == "Pending" and j["reason"] == "ArrayLimit"]
        assert all("(limit %2)" in j["message"] for j in throttled), throttled
        return not live

    wait_until(done, what="the array to finish")
    views = c.ps("-a", "--array", str(array_id))          # `show ARRAY` is the array's summary
    assert [v["id"] for v in views] == ids and all(v["state"] == "Succeeded" for v in views), views
    assert c.show(array_id)["counts"] == {"Succeeded": 6}
    indices = sorted(int(c.logs(i).split()[0].split("=")[1]) for i in ids)
    assert indices == [0, 1, 2, 3, 4, 5]
    assert all(f"array={array_id}" in c.logs(i) for i in ids)
    table = c.ok("ps", "-a")
    assert f"sweep[{array_id}_5]" in table


def test_dependencies_order_jobs_and_a_failure_ends_the_chain(shared_corral, tmp_path):
    c = shared_corral
    gate = tmp_path / "gate"
    # The first job fails when the test says so, not after a time the CLI may need more of.
    first = c.submit("--cpus", "100m", "--", gate_cmd(gate, after="exit 3"))
    ok_dep = c.submit("--cpus", "100m", "--after", str(first), "--", "true")
    any_dep = c.submit("--cpus", "100m", "--after", f"afterany:{first}", "--", "true")
    notok_dep = c.submit("--cpus", "100m", "--after", f"afternotok:{first}", "--", "true")
    chained = c.submit("--cpus", "100m", "--after", str(ok_dep), "--", "true")
    view = c.show(ok_dep)
    assert (view["state"], view["reason"]) == ("Pending", "Dependency"), view
    assert view["message"].startswith(f"waiting for job {first} (afterok; it is ")
    assert c.show(chained)["message"] == f"waiting for job {ok_dep} (afterok; it is Pending)"
    gate.touch()
    views = c.wait_done(first, ok_dep, any_dep, notok_dep, chained)
    assert [(v["state"], v["reason"]) for v in views] == [
        ("Failed", "Error"), ("Cancelled", "DependencyFailed"), ("Succeeded", "Completed"),
        ("Succeeded", "Completed"), ("Cancelled", "DependencyFailed")]
    assert views[1]["message"] == f"dependency afterok:{first} not met: job {first} ended Failed (Error)"
    res = c.run("submit", "--after", "999999", "--", "true")
    assert res.returncode == 1 and res.stderr == "error: invalid value for --after: 999999 (no such job)\n"


def test_retries_run_a_failing_job_again_after_a_backoff(shared_corral):
    c = shared_corral
    marker = f"{c.workdir}/attempts"
    # Fails twice, then succeeds (counts its attempts in a file); each attempt says which
    # it is and leaves its last line unfinished.
    script = f'echo "run $CORRAL_ATTEMPT"; printf partial; echo x >> {marker}; [ $(wc -l < {marker}) -ge 3 ]'
    job = c.submit("--cpus", "100m", "--retries", "3", "--", "sh", "-c", script)
    def retrying():
        view = c.show(job)
        return view if view["reason"] == "RetryBackoff" else None

    view = wait_until(retrying, what="the first retry")
    assert view["state"] == "Pending" and view["message"] == "exit code 1; retry 1 of 3 in 10s", view
    assert view["not_before"] > view["submitted_at"]
    [view] = c.wait_done(job)
    assert (view["state"], view["attempts"]) == ("Succeeded", 3), view
    assert [e["message"] for e in view["events"] if e["reason"] == "RetryBackoff"] == [
        "exit code 1; retry 1 of 3 in 10s", "exit code 1; retry 2 of 3 in 20s"]
    # The log holds every attempt, each retry's output opened by a header line of its own.
    lines = c.logs(job).split("\n")
    assert lines[:2] == ["run 1", "partial"] and lines[3:5] == ["run 2", "partial"], lines
    assert lines[6:] == ["run 3", "partial"], lines
    for line, n in ((lines[2], 2), (lines[5], 3)):
        assert re.fullmatch(rf"\[corral\] attempt {n} started \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{{4}} on "
                            rf"{re.escape(view['node'])}", line), line
    assert c.logs(job, "--attempt", "1") == "run 1\npartial\n"
    second = c.logs(job, "--attempt", "2").split("\n")
    assert second[0] == lines[2] and second[1:] == ["run 2", "partial", ""]
    assert c.logs(job, "--attempt", "3").split("\n")[1:] == ["run 3", "partial"]
    res = c.run("logs", "--attempt", "4", str(job))
    assert (res.returncode, res.stderr) == (1, f"error: job {job} has no output of attempt 4 (it has run 3 times)\n")
    assert c.logs(job, "--stderr", "--attempt", "2").startswith("[corral] attempt 2 started ")


def test_hold_and_release(shared_corral):
    c = shared_corral
    job = c.submit("--cpus", "100m", "--hold", "--", "true")
    view = c.show(job)
    assert (view["state"], view["reason"], view["held"]) == ("Pending", "Held", True)
    res = c.run("logs", str(job))               # no logs before it ever ran: it says so
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == (f"error: job {job} has not started yet: Pending (Held: held at submit); "
                          f"`corral logs -f {job}` waits for its output\n")
    assert c.ok("release", str(job)) == f"job {job}: released\n"
    [view] = c.wait_done(job)
    assert view["state"] == "Succeeded"
    blocker = c.submit("--cpus", "100m", "--after", str(job), "--", "sleep", "30")
    later = c.submit("--cpus", "100m", "--after", str(blocker), "--", "true")
    assert c.ok("hold", str(later)) == f"job {later}: held\n"
    assert c.show(later)["reason"] == "Held"
    res = c.run("hold", str(blocker))
    assert res.returncode == 1 and "only pending jobs can be held or released" in res.stderr
    c.ok("cancel", str(blocker))
    [view] = c.wait_done(later)
    assert (view["state"], view["reason"]) == ("Cancelled", "DependencyFailed")


def test_a_python_jobs_prints_reach_the_log_as_they_happen(shared_corral, tmp_path):
    c = shared_corral
    gate = tmp_path / "go"
    script = (f"import os, time\nprint('epoch 1 done')\n"
              f"while not os.path.exists({str(gate)!r}): time.sleep(0.05)\nprint('epoch 2 done')")
    job = c.submit("--cpus", "100m", "--", "python3", "-c", script)
    wait_until(lambda: c.logs(job) == "epoch 1 done\n", what="the first print while the job still runs")
    assert c.show(job)["state"] == "Running"
    gate.touch()
    [view] = c.wait_done(job)
    assert view["state"] == "Succeeded" and c.logs(job) == "epoch 1 done\nepoch 2 done\n"
