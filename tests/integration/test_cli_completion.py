"""Shell completion against a real daemon: the hidden ``corral __complete`` helper (job ids,
queues, nodes) and the bash script calling it; without a daemon nothing is printed and
none is started."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from corral_harness import CORRAL, gate_cmd

pytestmark = pytest.mark.integration

CORRAL_CONFIG = "queues:\n  - {name: research}\n  - {name: prod}\n"


def test_helper_lists_pending_and_running_ids_queues_and_nodes(corral4, tmp_path):
    c = corral4
    gate = tmp_path / "gate"
    running = c.submit("--cpus", "100m", "--", gate_cmd(gate))
    held = c.submit("--hold", "--cpus", "100m", "--", "true")
    done = c.submit("--cpus", "100m", "--", "true")
    c.wait_done(done)
    c.wait_state(running, "Running")
    try:
        ids = c.ok("__complete", "ids").split()
        assert sorted(map(int, ids)) == sorted([running, held])
        assert set(c.ok("__complete", "queues").split()) == {"default", "research", "prod"}
        assert c.ok("__complete", "nodes").split() == [c.node()["name"]]
    finally:
        gate.touch()


def test_helper_without_a_daemon_prints_nothing_and_starts_none(corral):
    res = corral.run("__complete", "ids")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert corral.run("__complete", "queues").stdout == ""
    assert not corral.socket_exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_job_ids_and_queues_from_the_daemon(corral4, tmp_path):
    c = corral4
    job = c.submit("--hold", "--cpus", "100m", "--", "true")
    env = {**c.env, "PATH": f"{Path(CORRAL[0]).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def complete(*words: str) -> list[str]:
        script = ('source <(corral completion bash)\n'
                  'COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _corral\n'
                  'printf "%s\\n" "${COMPREPLY[@]}"\n')
        res = subprocess.run(["bash", "-c", script, "bash", *words], env=env, cwd=c.workdir, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        return res.stdout.split()

    assert str(job) in complete("corral", "cancel", "")
    assert str(job) in complete("corral", "submit", "--after", "")
    assert set(complete("corral", "submit", "--queue", "")) == {"default", "research", "prod"}
    assert complete("corral", "run", "--queue", "re") == ["research"]
