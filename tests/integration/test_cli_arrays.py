"""Arrays as one thing, strict ids, ranges and selectors -- through the real CLI.

An array's id (its first task's job id) addresses the whole array (cancel, hold,
release, wait, show, --after); ``ID_INDEX`` one task; ``12-20`` and ``12,14`` are lists
of ids; ``cancel``/``hold``/``release`` take ``ps``'s selectors, and ask before changing
more than 5 jobs (``-y``; refused without a terminal)."""

from __future__ import annotations

import getpass
import json

from corral_harness import wait_until


def _array(c, spec: str, command: str, *opts: str) -> list[int]:
    out = c.json("submit", "--array", spec, "--cpus", "100m", *opts, "--", command)
    return out["ids"]


def _states(c, array_id: int) -> dict[int, str]:
    return {j["id"]: j["state"] for j in c.ps("-a", "--array", str(array_id))}


def test_after_an_array_waits_for_every_task(shared_corral, tmp_path):
    c = shared_corral
    gates = tmp_path / "gates"
    gates.mkdir()
    ids = _array(c, "0-2", f"while [ ! -e {gates}/$CORRAL_ARRAY_INDEX ]; do sleep 0.1; done")
    array_id = ids[0]
    dep = c.submit("--cpus", "100m", "--after", str(array_id), "--", "true")
    anyone = c.submit("--cpus", "100m", "--after", f"afterany:{array_id}", "--", "true")
    (gates / "0").touch()                       # the first task (whose job id is the array's) ends ...
    wait_until(lambda: _states(c, array_id)[array_id] == "Succeeded", what="task 0 to succeed")
    view = c.show_when(dep, lambda v: "1 of 3 tasks ended" in v["message"], "the dependent to count task 0")
    assert (view["state"], view["reason"]) == ("Pending", "Dependency")      # ... the others still run
    assert view["message"] == f"waiting for array {array_id} (afterok; 1 of 3 tasks ended)"
    (gates / "1").touch()
    (gates / "2").touch()
    done = c.wait_done(dep, anyone)
    assert [v["state"] for v in done] == ["Succeeded", "Succeeded"], done
    assert set(_states(c, array_id).values()) == {"Succeeded"}
    summary = c.show(array_id)                  # show ARRAY: the array as one thing
    assert (summary["tasks"], summary["counts"], summary["indices"]) == (3, {"Succeeded": 3}, "0-2")
    text = c.ok("show", str(array_id))
    assert text.startswith(f"Array {array_id}: 3 tasks, indices 0-2\n") and "3 Succeeded" in text


def test_after_an_array_fails_once_a_task_fails(shared_corral):
    c = shared_corral
    ids = _array(c, "0-1", "exit $CORRAL_ARRAY_INDEX")   # task 1 fails
    dep = c.submit("--cpus", "100m", "--after", str(ids[0]), "--", "true")
    notok = c.submit("--cpus", "100m", "--after", f"afternotok:{ids[0]}", "--", "true")
    views = c.wait_done(dep, notok)
    assert (views[0]["state"], views[0]["reason"]) == ("Cancelled", "DependencyFailed"), views[0]
    assert views[0]["message"] == f"dependency afterok:{ids[0]} not met: 1 of the 2 tasks of array {ids[0]} " \
                                  "did not succeed"
    assert views[1]["state"] == "Succeeded", views[1]
    res = c.run("wait", str(ids[0]))
    assert res.returncode == 1 and res.stdout.splitlines() == [
        f"job {ids[0]}: Succeeded (Completed: exit code 0)", f"job {ids[1]}: Failed (Error: exit code 1)"]


def test_cancel_an_array_ends_every_task_and_id_index_one(shared_corral):
    c = shared_corral
    ids = _array(c, "0-5", "sleep 1000", "--hold")
    array_id = ids[0]
    # ID_INDEX: one task, for show, cancel and release.
    task3 = c.json("show", f"{array_id}_3")
    assert (task3["id"], task3["array_id"], task3["array_index"]) == (ids[3], array_id, 3)
    assert c.ok("cancel", f"{array_id}_3") == f"job {ids[3]}: cancelled\n"
    assert c.ok("release", f"{array_id}_0") == f"job {array_id}: released\n"      # the first task alone
    wait_until(lambda: _states(c, array_id)[array_id] == "Running", what="the released task to start")
    assert _states(c, array_id)[ids[1]] == "Pending"
    summary = c.show(array_id)
    assert summary["counts"] == {"Running": 1, "Pending": 4, "Cancelled": 1} and summary["held"] == 4
    # The array's id: every (live) task.
    out = c.ok("release", str(array_id))
    assert out.splitlines() == [f"job {i}: released" for i in ids if i not in (array_id, ids[3])]
    out = c.ok("cancel", str(array_id))
    assert len(out.splitlines()) == 5 and all(line.startswith(f"job {i}: ") for line, i in
                                              zip(out.splitlines(), [array_id, *ids[1:3], *ids[4:]]))
    res = c.run("wait", str(array_id))
    assert res.returncode == 1
    assert set(_states(c, array_id).values()) == {"Cancelled"}
    assert c.ok("cancel", str(array_id)) == "no job to cancel: every job named has ended\n"
    res = c.run("show", f"{array_id}_9")
    assert res.returncode == 1 and res.stderr == f"error: no such array task: {array_id}_9\n"


def test_ids_are_strict_and_ranges_and_lists_take_many(fresh_corral4):
    c = fresh_corral4
    ids = [c.submit("--hold", "--cpus", "100m", "--", "true") for _ in range(12)]
    assert ids == list(range(1, 13))
    # `1_2` is task 2 of array 1 (there is none), never job 12.
    for command in ("cancel", "show", "hold", "release", "wait"):
        res = c.run(command, "1_2")
        assert res.returncode == 1 and res.stderr == "error: no such array task: 1_2\n", (command, res)
    res = c.run("show", "5_3")
    assert res.stderr == "error: no such array task: 5_3\n"
    for bad in ("1.2", "+1", "1_", "3-1", "x", "1__2"):
        res = c.run("cancel", bad)
        assert res.returncode == 1, res
        assert res.stderr == (f'error: invalid value for ID: "{bad}" (expected job ids such as 12, an array task '
                              '12_3, a range 12-20 or a list 12,14,20-22)\n'), res.stderr
    res = c.run("logs", "1_2")                        # an array task's form: there is no such task
    assert (res.returncode, res.stderr) == (1, "error: no such array task: 1_2\n")
    assert c.show(12)["state"] == "Pending"
    # Ranges and lists.
    assert c.ok("cancel", "3-5").splitlines() == [f"job {i}: cancelled" for i in (3, 4, 5)]
    assert c.ok("cancel", "6,8,10-11").splitlines() == [f"job {i}: cancelled" for i in (6, 8, 10, 11)]
    left = {j["id"] for j in c.ps()}
    assert left == {1, 2, 7, 9, 12}
    assert c.ok("update", "--priority", "-1", "1-2").splitlines() == ["job 1: priority 0 -> -1",
                                                                      "job 2: priority 0 -> -1"]
    assert c.ok("release", "7,9").splitlines() == ["job 7: released", "job 9: released"]
    res = c.run("wait", "7,9")
    assert res.returncode == 0 and res.stdout.splitlines() == [
        "job 7: Succeeded (Completed: exit code 0)", "job 9: Succeeded (Completed: exit code 0)"]


def test_selectors_count_and_ask_before_changing_many(shared_corral):
    c = shared_corral
    many = [c.submit("--hold", "--name", f"sel-{i}", "--cpus", "100m", "--", "true") for i in range(7)]
    other = c.submit("--hold", "--name", "keep", "--cpus", "100m", "--", "true")
    # Not a terminal, more than 5, no -y: refused, nothing changes.
    res = c.run("cancel", "--name", "sel-*", "--state", "Pending", input="")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == ("error: cancel 7 jobs: more than 5 without confirmation; pass -y to cancel them "
                          "(stdin is not a terminal to ask)\n")
    assert {j["id"] for j in c.ps("--name", "sel-*")} == set(many)
    # A few: no question.
    assert c.ok("release", "--name", "sel-[01]", input="").splitlines() == [
        f"job {many[0]}: released", f"job {many[1]}: released"]
    c.wait_done(many[0], many[1])             # released: they ran
    assert c.ok("hold", "--name", "sel-*", input="").splitlines() == [f"job {i}: already held" for i in many[2:]]
    out = c.ok("cancel", "--name", "sel-*", "--state", "Pending", "-y", input="")
    assert out.splitlines() == [f"job {i}: cancelled" for i in many[2:]]
    assert c.show(other)["state"] == "Pending"
    assert c.ok("cancel", "--name", "sel-*", "-y") == "no job to cancel: none matched\n"
    res = c.run("cancel", "--label", "novalue")
    assert res.returncode == 1 and res.stderr == 'error: invalid value for --label: "novalue" ' \
                                                 '(expected KEY=VALUE, e.g. team=vision)\n'
    res = c.run("cancel")
    assert res.returncode == 1 and res.stderr.startswith("error: `corral cancel` needs job ids")
    c.ok("cancel", str(other))


def test_ps_filters(shared_corral):
    c = shared_corral
    me = c.ps("-a", "-n", "1")                  # whatever ran before: the newest job only
    assert len(me) <= 1
    a = c.submit("--hold", "--name", "psf-train", "--label", "team=vision", "--cpus", "100m", "--", "true")
    b = c.submit("--hold", "--name", "psf-eval", "--label", "team=nlp", "--cpus", "100m", "--", "true")
    ids = _array(c, "0-2", "true", "--hold", "--name", "psf-arr")
    names = lambda *args: [j["id"] for j in c.ps(*args)]  # noqa: E731
    assert names("--name", "psf-*") == [a, b, *ids]
    assert names("--name", "psf-e*") == [b]
    assert names("--label", "team=vision") == [a]
    assert names("--array", str(ids[0])) == ids
    assert names("--name", "psf-*", "-n", "2") == ids[1:]               # the newest two
    assert names("--name", "psf-*", "--mine") == [a, b, *ids]
    assert names("--name", "psf-*", "--user", getpass.getuser()) == [a, b, *ids]
    assert names("--name", "psf-*", "--user", "nobody-else") == []
    assert names("--name", "psf-*", "--queue", "default", "--since", "1h") == [a, b, *ids]
    assert names("--name", "psf-*", "--state", "Running", "--state", "Succeeded") == []
    c.ok("cancel", "--name", "psf-*", "-y")
    assert names("--name", "psf-*", "--state", "Cancelled") == [a, b, *ids]
    assert names("--name", "psf-*") == []                               # finished: only with -a or --state
    table = c.ok("ps", "-a", "--array", str(ids[0]))
    assert f"psf-arr[{ids[0]}_2]" in table
    res = c.run("ps", "--state", "Bogus")
    assert res.returncode == 1 and res.stderr == ('error: invalid value for state: "Bogus" (expected one of: '
                                                  'Pending, Running, Succeeded, Failed, Cancelled)\n')


def test_ps_all_shows_finished_jobs_gpus(shared_corral):
    c = shared_corral
    job = c.submit("--gpus", "1", "--cpus", "100m", "--name", "gpu-done", "--", "true")
    [view] = c.wait_done(job)
    assert view["state"] == "Succeeded" and len(view["gpus"]) == 1
    [row] = [j for j in c.ps("-a", "--name", "gpu-done")]
    assert row["gpus"] == view["gpus"]
    line = [ln for ln in c.ok("ps", "-a", "--name", "gpu-done").splitlines() if ln.startswith(f"{job} ")][0]
    assert f" {view['gpus'][0]}* " in line or f" {view['gpus'][0]} " in line, line
    json.loads(c.ok("ps", "--json", "-a", "--name", "gpu-done"))


def test_logs_of_an_array_task(shared_corral):
    c = shared_corral
    array = c.submit("--array", "0-2", "--cpus", "100m", "--", "sh", "-c", "echo task $CORRAL_ARRAY_INDEX")
    assert c.wait(array).returncode == 0
    assert c.logs(f"{array}_2") == "task 2\n" and c.logs(array) == "task 0\n"
    res = c.run("logs", f"{array}_9")
    assert (res.returncode, res.stderr) == (1, f"error: no such array task: {array}_9\n")
