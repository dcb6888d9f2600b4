"""Daily use, as a Slurm or kubectl user expects (issue 13, items 4-6), through the real CLI:
homes and autostart, inputs that make sense, messages a person reads."""

from __future__ import annotations

import json
import os

#: The module's daemon (corral4): a default memory request and an extended resource.
CORRAL_CONFIG = """
defaults: {cpu: "1", memory: 64Mi}
resources: {vendor.example/fpga: 2}
"""


def _lines(res) -> list[str]:
    return res.stderr.splitlines()


# -- 4. homes and autostart ---------------------------------------------------------------

def test_a_named_home_that_does_not_exist_is_created_only_by_up(corral):
    c = corral
    os.rmdir(c.home)                                   # a mistyped --home / CORRAL_HOME
    for argv in (["--home", c.home, "ps"], ["ps"], ["submit", "--", "true"], ["nodes"]):
        res = c.run(*argv)
        assert res.returncode == 1, res
        assert _lines(res) == [f"error: no corral home at {c.home}; create it with corral --home {c.home} up"]
        assert not os.path.exists(c.home)              # nothing created, no daemon started
    res = c.run("--json", "ps")
    assert json.loads(res.stderr)["lines"] == [f"no corral home at {c.home}; create it with corral --home {c.home} up"]
    assert c.down().returncode == 0 and not os.path.exists(c.home)
    up = c.up()                                        # `corral up` creates it
    assert up["already_running"] is False and os.path.isdir(c.home)
    res = c.run("ps")
    assert res.returncode == 0 and res.stderr == ""


def test_autostart_says_once_that_it_started_a_daemon(corral):
    c = corral
    first = c.run("ps")
    pid = c.daemon_pid_from_lock()
    assert first.returncode == 0 and _lines(first) == [f"corral: started a daemon for {c.home} (pid {pid})"]
    again = c.run("ps")
    assert again.returncode == 0 and again.stderr == ""


def test_homes_that_cannot_hold_a_daemon_are_one_line(corral, tmp_path):
    c = corral
    long = "/tmp/" + "x" * 120
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cases = [
        (["--home", long, "ps"], f"error: corral home path too long for a Unix socket: {long}/corral.sock is "
                                 f"{len(long) + 12} bytes (at most 107); use a shorter --home or CORRAL_HOME"),
        (["--home", long, "up"], f"error: corral home path too long for a Unix socket: {long}/corral.sock is "
                                 f"{len(long) + 12} bytes (at most 107); use a shorter --home or CORRAL_HOME"),
        (["--home", str(a_file), "ps"], f"error: corral home {a_file} is not a directory; give --home or "
                                        "CORRAL_HOME a directory"),
        (["--home", str(a_file), "up"], f"error: corral home {a_file} is not a directory; give --home or "
                                        "CORRAL_HOME a directory"),
        (["--home", "/proc/corral-x", "ps"], "error: no corral home at /proc/corral-x; create it with "
                                             "corral --home /proc/corral-x up"),
    ]
    for argv, line in cases:
        res = c.run(*argv)
        assert res.returncode == 1 and _lines(res) == [line], res
    res = c.run("--home", "/proc/corral-x", "up")
    assert res.returncode == 1 and len(_lines(res)) == 1 and "Traceback" not in res.stderr
    assert _lines(res)[0].startswith("error: cannot start the corral daemon: cannot write /proc/corral-x")
    assert not os.path.exists(long)


# -- 5. inputs that make sense ----------------------------------------------------------------

def test_conflicting_options_name_both(corral4):
    c = corral4
    for argv, line in [
        (["--gpus", "1", "--requests", "nvidia.com/gpu=2"],
         "conflicting options --gpus 1 and --requests nvidia.com/gpu=2: both set the GPU count (give one)"),
        (["--cpus", "1", "--requests", "cpu=500m"],
         "conflicting options --cpus 1 and --requests cpu=500m: both set the CPU request (give one)"),
        (["--mem", "1Gi", "--requests", "mem=2Gi"],
         "conflicting options --mem 1Gi and --requests mem=2Gi: both set the memory request (give one)"),
        (["--limit-cpus", "2", "--limits", "cpu=4"],
         "conflicting options --limit-cpus 2 and --limits cpu=4: both set the CPU limit (give one)"),
    ]:
        res = c.run("submit", *argv, "--", "true")
        assert (res.returncode, _lines(res)) == (2, [f"error: {line}"])
    assert c.ps("-a") == []


def test_memory_floor_and_units(corral4):
    c = corral4
    for value, line in [
        ("1", 'invalid quantity for memory: "1" (1 byte is below the floor of 1Mi; memory is in bytes; '
              "did you mean 1Gi?)"),
        ("512Ki", 'invalid quantity for memory: "512Ki" (512Ki is below the floor of 1Mi; memory is in bytes; '
                  "did you mean 512Mi?)"),
        ("16g", 'invalid quantity for memory: "16g" (expected e.g. 16Gi or 16G (units are case-sensitive))'),
        ("16GB", 'invalid quantity for memory: "16GB" (expected e.g. 16Gi or 16G (units are case-sensitive))'),
    ]:
        res = c.run("submit", "--mem", value, "--", "true")
        assert (res.returncode, _lines(res)) == (1, [f"error: {line}"])
    res = c.run("submit", "--limit-mem", "5", "--", "true")
    assert _lines(res) == ['error: invalid quantity for limits.memory: "5" (5 bytes is below the floor of 1Mi; '
                           "memory is in bytes; did you mean 5Gi?)"]


def test_default_requests_and_a_wait_they_cause(corral4):
    c = corral4
    cpu = c.node()["resources"]["cpu"]["allocatable"]
    hog = c.submit("--cpus", cpu, "--mem", "64Mi", "--", "sleep", "600")
    c.wait_state(hog, "Running")
    plain = c.submit("--", "true")
    view = c.show(plain)
    assert view["requests"] == {"cpu": "1", "memory": "64Mi"}           # both from `defaults`
    asked = c.submit("--cpus", "1", "--", "true")
    waits = {j["id"]: j["message"] for j in c.ps()}
    assert waits[plain] == f"insufficient cpu: requests 1 (the default; set --cpus), free 0 of {cpu}"
    assert waits[asked] == f"insufficient cpu: requests 1, free 0 of {cpu}"


def test_extended_resources_declared_on_the_node(corral4):
    c = corral4
    fpga = c.node()["resources"]["vendor.example/fpga"]
    assert (fpga["capacity"], fpga["allocatable"]) == ("2", "2")
    ids = [c.submit("--cpus", "100m", "--requests", "vendor.example/fpga=1", "--", "sleep", "600") for _ in range(3)]
    c.wait_state(ids[0], "Running")
    c.wait_state(ids[1], "Running")
    third = c.show(ids[2])
    assert third["state"] == "Pending"
    assert third["message"] == "insufficient vendor.example/fpga: requests 1, free 0 of 2"
    res = c.run("submit", "--requests", "vendor.example/fpga=3", "--", "true")
    assert res.returncode == 1 and "vendor.example/fpga" in res.stderr and "Traceback" not in res.stderr


def test_simulate_gpus_in_the_config_is_honoured_and_the_store_wins(corral):
    c = corral
    c.write_config("simulate_gpus: 3\n")
    assert len(c.up()["nodes"][0]["gpus"]) == 3                          # the file alone: honoured
    assert c.down().returncode == 0
    res = c.run("up", "--simulate-gpus", "2")
    assert res.returncode == 0
    assert _lines(res) == [f"corral: simulate_gpus: 3 in {c.home}/config.yaml is overridden by `corral up "
                           "--simulate-gpus 2` (kept in the store; it wins): the daemon has 2 simulated GPUs; "
                           "`corral down; corral up --simulate-gpus 3` changes it"]
    assert len(c.node()["gpus"]) == 2
    with open(os.path.join(c.home, "daemon.log"), encoding="utf-8") as log:
        assert ("simulate_gpus: 2 from `corral up --simulate-gpus 2` (kept in the store) wins over "
                "simulate_gpus: 3 in config.yaml") in log.read()


# -- 6. messages a person reads -------------------------------------------------------------

def test_command_line_messages(corral4):
    c = corral4
    res = c.run("sumbit", "--", "true")
    assert (res.returncode, _lines(res)) == (2, ['error: unknown command "sumbit" (did you mean submit?)'])
    res = c.run("--help")
    assert res.returncode == 0 and "--version" in res.stdout
    assert c.ok("--version").startswith("corral ")
    res = c.run("show")
    assert _lines(res)[0].startswith("error: `corral show` needs a job id")
    job = c.submit("--", "true")
    res = c.run("update", str(job))
    assert _lines(res) == ["error: nothing to change (give at least one of --priority, --time, --queue)"]
    res = c.run("prune", "--older-than", "x")
    assert _lines(res) == ['error: invalid age for --older-than: "x" (expected e.g. 30d, 12h, 0)']
    res = c.run("submit", "--time", "x", "--", "true")
    assert _lines(res) == ['error: invalid time limit for --time: "x" (expected e.g. 90m, 2h, 1-00:00:00)']
    res = c.run("submit", "--array", "5-1", "--", "true")
    assert _lines(res)[0].startswith('error: invalid value for --array: "5-1" (the range "5-1" ends before it starts;')
    res = c.run("submit", "--array", "0-3%0", "--", "true")
    assert "%N, the tasks run at once, must be at least 1" in res.stderr


def test_errors_under_json_are_json(corral4):
    c = corral4
    for argv, code in ((["submit", "--json", "--mem", "16g", "--", "true"], 1),
                       (["show", "--json", "999999"], 1),
                       (["ps", "--json", "--bogus"], 2)):
        res = c.run(*argv)
        assert res.returncode == code and res.stdout == ""
        error = json.loads(res.stderr)
        assert error["exit_code"] == code and error["error"] == "; ".join(error["lines"])
        assert not error["error"].startswith("error:")


def test_a_bad_document_is_named_by_file_and_document(corral4):
    c = corral4
    path = os.path.join(c.workdir, "jobs.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write("spec: {command: [\"true\"]}\n---\nspec: {command: [\"true\"], resources: {requests: "
                "{nvidia.com/gpu: 99}}}\n")
    res = c.run("submit", "-f", "jobs.yaml")
    assert res.returncode == 1
    assert _lines(res) == ["error: jobs.yaml (document 2): insufficient nvidia.com/gpu: job requests 99, "
                           "node has 4 allocatable"]


def test_a_time_limit_is_an_event_with_the_limit(corral4):
    c = corral4
    job = c.submit("--time", "1s", "--grace", "1s", "--", "sleep", "600")
    [view] = c.wait_done(job)
    assert (view["state"], view["reason"]) == ("Failed", "TimedOut")
    events = c.show(job)["events"]
    assert {"from": "Running", "to": "Running", "reason": "TimeLimit",
            "message": "time limit 1s reached: SIGTERM sent, SIGKILL after 1s"} in [
        {k: e[k] for k in ("from", "to", "reason", "message")} for e in events]
    limited = c.submit("--time", "2h", "--", "sleep", "600")
    c.wait_state(limited, "Running")
    assert c.ok("update", "--time", "90m", str(limited)).strip() == f"job {limited}: time limit 2h -> 1h30m"
