"""``corral completion bash|zsh|fish``: scripts generated from the CLI's own command table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from corral.cli import completion
from corral.cli.main import COMMANDS, main


CI = os.environ.get("CI", "").lower() == "true"


def _shell(name: str) -> str:
    """The shell ``name``, installed with apt-get when missing and running as root; else
    the test is skipped (and fails under CI=true)."""
    found = shutil.which(name)
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", name]
        if subprocess.run(install, capture_output=True, timeout=900, env=env).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, env=env)
            subprocess.run(install, capture_output=True, timeout=900, env=env)
        found = shutil.which(name)
    if found is None:
        if CI:
            pytest.fail(f"{name} is missing (apt-get install {name}); CI=true: this test must run")
        pytest.skip(f"needs {name}")
    return found


def _corral_env(tmp_path) -> dict[str, str]:
    """A PATH where ``corral`` is this checkout's, and a home with no daemon."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "corral"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -m corral.cli.main \"$@\"\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "CORRAL_HOME": str(tmp_path / "no-daemon")}


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_every_command_and_option_is_in_the_script(shell, capsys):
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert name in script
        for opt in command.opts:
            for n in opt.names:
                needle = n if shell != "fish" else (f"-l {n[2:]}" if n.startswith("--") else f"-s {n[1:]}")
                assert needle in script, (shell, name, n)
    assert "__complete" in script


def test_unknown_shell_is_one_line(capsys):
    assert main(["completion", "tcsh"]) == 2
    err = capsys.readouterr().err
    assert err == 'error: invalid value for SHELL: "tcsh" (expected one of: bash, zsh, fish)\n'


def test_the_helper_refuses_what_it_does_not_know(capsys):
    assert main(["__complete", "users"]) == 2
    assert capsys.readouterr().err.startswith('error: invalid value for __complete: "users"')


def test_run_takes_every_submit_option_and_pty():
    submit, run = COMMANDS["submit"], COMMANDS["run"]
    assert [o for o in run.opts if o.dest not in ("pty", "json")] == [o for o in submit.opts if o.dest != "json"]
    assert run.lookup("--pty").flag
    assert [p.dest for p in run.pos] == [p.dest for p in submit.pos]


def test_value_kinds():
    submit = COMMANDS["submit"]
    assert completion.value_kind(submit.lookup("--queue")) == "queues"
    assert completion.value_kind(submit.lookup("--after")) == "ids"
    assert completion.value_kind(submit.lookup("-f")) == "file"
    assert completion.value_kind(submit.lookup("--workdir")) == "dir"
    assert completion.value_kind(submit.lookup("--cpus")) == ""
    assert completion.positional_kind(COMMANDS["logs"]) == "ids"
    assert completion.positional_kind(COMMANDS["submit"]) == "command"
    assert completion.positional_kind(COMMANDS["drain"]) == "nodes"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_script_registers_and_completes(tmp_path):
    env = _corral_env(tmp_path)
    res = subprocess.run(["bash", "-c", "source <(corral completion bash); complete -p corral"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "complete -F _corral corral"

    def complete(*words: str) -> list[str]:
        script = ('source <(corral completion bash)\n'
                  'COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _corral\n'
                  'printf "%s\\n" "${COMPREPLY[@]}"\n')
        out = subprocess.run(["bash", "-c", script, "bash", *words], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert complete("corral", "ru") == ["run"]
    assert complete("corral", "run", "--pt") == ["--pty"]
    assert complete("corral", "ps", "--state", "R") == ["Running"]
    assert complete("corral", "completion", "") == ["bash", "zsh", "fish"]
    assert complete("corral", "submit", "--cpus", "") == []            # a value: nothing to offer
    assert complete("corral", "cancel", "") == []                      # no daemon: no ids, and no error
    assert complete("corral", "--home", "/tmp/x", "ru") == ["run"]
    assert not (tmp_path / "no-daemon").exists()                      # nothing was started


def test_zsh_script_parses_and_registers(tmp_path):
    _shell("zsh")
    env = _corral_env(tmp_path)
    script = completion.zsh(COMMANDS)
    check = subprocess.run(["zsh", "-n"], input=script, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    res = subprocess.run(["zsh", "-f", "-c", "autoload -U compinit && compinit -u; source <(corral completion zsh); "
                          "print -r -- ${_comps[corral]}"], env={**env, "HOME": str(tmp_path)}, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "_corral"


def test_fish_script_parses_and_completes(tmp_path):
    _shell("fish")
    env = {**_corral_env(tmp_path), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "XDG_DATA_HOME": str(tmp_path / "data")}
    check = subprocess.run(["fish", "--no-execute"], input=completion.fish(COMMANDS), capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stderr
    res = subprocess.run(["fish", "-c", "corral completion fish | source; complete -C 'corral ru'; "
                          "complete -C 'corral ps --state R'; complete -C 'corral run --pt'"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    words = [line.split("\t")[0] for line in res.stdout.splitlines()]
    assert "run" in words and "Running" in words and "--pty" in words, res.stdout
