"""Every way a job can end is recorded once, with its reason, and releases what it held."""

from __future__ import annotations

from corral_harness import NCPU, TERMINAL, proc_alive


def _ends(view: dict) -> list[dict]:
    return [e for e in view["events"] if e["to"] in TERMINAL]


def test_exit_paths_are_recorded_and_release_exactly_once(corral4):
    c = corral4
    jobs = {
        "success": c.submit("--gpus", "1", "--cpus", "100m", "--", "true"),
        "failure": c.submit("--gpus", "1", "--cpus", "100m", "--", "exit 3"),
        "signal": c.submit("--gpus", "1", "--cpus", "100m", "--", "kill -9 $$"),
        "launch": c.submit("--gpus", "1", "--cpus", "100m", "--", "/nonexistent/prog", "--flag"),
    }
    res = c.wait(*jobs.values())
    assert res.returncode == 1, res.stdout  # some failed
    views = {k: c.show(v) for k, v in jobs.items()}

    v = views["success"]
    assert (v["state"], v["reason"], v["exit_code"], v["signal"]) == ("Succeeded", "Completed", 0, None), v
    assert v["message"] == "exit code 0"

    v = views["failure"]
    assert (v["state"], v["reason"], v["exit_code"], v["signal"]) == ("Failed", "Error", 3, None), v
    assert v["message"] == "exit code 3"

    v = views["signal"]
    assert (v["state"], v["reason"], v["signal"]) == ("Failed", "Signaled", 9), v
    assert v["exit_code"] is None
    assert v["message"] == "killed by signal SIGKILL"

    v = views["launch"]
    assert (v["state"], v["reason"]) == ("Failed", "LaunchFailed"), v
    assert "/nonexistent/prog" in v["message"], v
    assert v["signal"] is None

    for name, v in views.items():
        # One end each: ran (or tried to) once, and ended once.
        assert [e["to"] for e in v["events"]] == ["Pending", "Running", v["state"]], (name, v["events"])
        assert len(_ends(v)) == 1
        assert v["ended_at"] is not None and v["started_at"] is not None

    # `wait` reports each job's end in words.
    lines = res.stdout.splitlines()
    assert lines[0] == f"job {jobs['success']}: Succeeded (Completed: exit code 0)"
    assert lines[1] == f"job {jobs['failure']}: Failed (Error: exit code 3)"
    assert lines[2] == f"job {jobs['signal']}: Failed (Signaled: killed by signal SIGKILL)"
    assert lines[3].startswith(f"job {jobs['launch']}: Failed (LaunchFailed: ")

    # Everything is free again ...
    node = c.node()
    for name, r in node["resources"].items():
        assert r["raw"]["allocated"] == 0, (name, r)
        assert r["raw"]["free"] == r["raw"]["allocatable"], (name, r)
    assert all(g["job"] is None for g in node["gpus"])
    assert all(core["job"] is None for core in node["cores"])
    assert c.ps() == []

    # ... and really usable: a job asking for the whole node starts and succeeds.
    whole = c.submit("--gpus", "4", "--cpus", str(NCPU), "--", "true")
    assert c.wait(whole).returncode == 0
    v = c.show(whole)
    assert v["gpus"] == [0, 1, 2, 3] and len(v["cpus"]) == NCPU
    assert c.node()["resources"]["nvidia.com/gpu"]["raw"]["allocated"] == 0


def test_launch_failure_of_a_non_executable_file(corral4, tmp_path):
    c = corral4
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    job = c.submit("--cpus", "100m", "--", str(script))
    view = c.wait_done(job)[0]
    assert (view["state"], view["reason"]) == ("Failed", "LaunchFailed"), view
    assert str(script) in view["message"]
    assert c.logs(job) == ""


def test_bad_workdir_is_rejected_at_submit(corral4, tmp_path):
    c = corral4
    missing = tmp_path / "missing"
    before = len(c.ps("-a"))
    res = c.run("submit", "--workdir", str(missing), "--", "true")
    assert res.returncode == 1
    assert res.stderr == (f'error: invalid value for --workdir: "{missing}" (expected an existing directory you can enter)\n')
    assert len(c.ps("-a")) == before


def test_time_limit_stops_the_job(corral4):
    c = corral4
    job = c.submit("--cpus", "100m", "--gpus", "1", "--time", "1s", "--", "echo pid=$$; exec sleep 1000")
    view = c.wait_state(job, "Running")
    assert view["time_limit"] == 1
    pid = c.job_main_pid(job)
    try:
        view = c.wait_done(job)[0]
    finally:
        c.run("cancel", str(job))
    assert (view["state"], view["reason"], view["signal"]) == ("Failed", "TimedOut", 15), view
    assert view["message"] == "time limit reached (signal SIGTERM)"
    assert not proc_alive(pid)
    assert set(c.gpu_holders().values()) == {None}
