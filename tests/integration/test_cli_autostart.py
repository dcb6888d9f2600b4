"""The first command on a fresh CORRAL_HOME starts the daemon (like ``tsp``); ``down``
never does."""

from __future__ import annotations

import json
import subprocess

import pytest

from corral_harness import CORRAL, proc_alive


@pytest.mark.parametrize("argv", [
    ["ps", "--json"],
    ["nodes", "--json"],
    ["submit", "--json", "--cpus", "100m", "--", "echo", "auto"],
    ["show", "1"],
], ids=["ps", "nodes", "submit", "show"])
def test_first_command_on_a_fresh_home_starts_the_daemon(corral, argv):
    c = corral
    assert not c.socket_exists() and c.daemon_pid_from_lock() is None
    res = c.run(*argv)
    started = f"corral: started a daemon for {c.home} (pid {c.daemon_pid_from_lock()})"
    if argv[0] == "show":
        assert (res.returncode, res.stderr) == (1, f"{started}\nerror: no such job: 1\n")  # answered by the daemon
    else:
        assert res.returncode == 0, res.stderr
        assert res.stderr == started + "\n"                           # said once
        out = json.loads(res.stdout)
        if argv[0] == "ps":
            assert out == {"jobs": []}
        elif argv[0] == "nodes":
            assert len(out["nodes"]) == 1 and out["nodes"][0]["simulated_gpus"] is False
        else:
            assert out["id"] == 1
            assert c.wait(1).returncode == 0
            assert c.logs(1) == "auto\n"
    pid = c.daemon_pid_from_lock()
    assert pid is not None and proc_alive(pid)
    assert c.socket_exists()
    up = c.up()
    assert up["already_running"] is True and up["health"]["pid"] == pid
    assert up["health"]["home"] == c.home


def test_down_on_a_fresh_home_does_not_start_a_daemon(corral):
    c = corral
    res = c.down()
    assert (res.returncode, res.stdout) == (0, "corral daemon is not running\n")
    assert not c.socket_exists() and c.daemon_pid_from_lock() is None


def test_up_twice_reports_already_running_and_refuses_to_change_gpus(corral):
    c = corral
    first = c.up("--simulate-gpus", "2")
    assert first["already_running"] is False
    assert [g["index"] for g in first["nodes"][0]["gpus"]] == [0, 1]
    second = c.up("--simulate-gpus", "2")
    assert second["already_running"] is True and second["health"]["pid"] == first["health"]["pid"]
    res = c.run("up", "--simulate-gpus", "3")
    assert res.returncode == 1
    assert res.stderr == ("error: the daemon is already running with 2 simulated GPUs; "
                          "run `corral down` first to change --simulate-gpus to 3\n")


def test_concurrent_first_commands_start_exactly_one_daemon(corral):
    c = corral
    procs = [subprocess.Popen([*CORRAL, "ps", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=c.env, cwd=c.workdir) for _ in range(4)]
    said = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert json.loads(out) == {"jobs": []}
        said += err.decode().splitlines()
    pid = c.daemon_pid_from_lock()
    assert said == [f"corral: started a daemon for {c.home} (pid {pid})"]     # by the one that started it
    assert pid is not None and proc_alive(pid)
    assert c.up()["health"]["pid"] == pid
