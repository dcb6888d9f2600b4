"""The CLI's own argument parser and how `corral submit` turns options into a request."""

from __future__ import annotations

import os

import pytest

from corral.cli.args import UsageError, parse
from corral.cli.job_cmds import _assign, _kv, _payload
from corral.cli.main import COMMANDS, main
from corral.errors import CorralError, ValidationError


def submit(*argv):
    return parse(COMMANDS["submit"], list(argv))


def test_options_then_command_with_its_own_options():
    args = submit("--gpus", "1", "--cpus=2", "--env", "A=1", "--env", "B=2", "python", "train.py", "--lr", "0.1")
    assert (args.gpus, args.cpus, args.env) == ("1", "2", ["A=1", "B=2"])
    assert args.argv == ["python", "train.py", "--lr", "0.1"]


def test_double_dash_starts_the_command():
    args = submit("--name", "x", "--", "--weird-program", "-v")
    assert args.name == "x" and args.argv == ["--weird-program", "-v"]


def test_flags_short_aliases_and_typed_positionals():
    ps = parse(COMMANDS["ps"], ["-a", "-n", "5", "--state", "Failed", "--json"])
    assert (ps.all, ps.limit, ps.state, ps.json) == (True, 5, ["Failed"], True)
    assert parse(COMMANDS["cancel"], ["3", "4"]).ids == [3, 4]
    assert parse(COMMANDS["logs"], ["-f", "7"]).id == 7


@pytest.mark.parametrize("command, argv, message", [
    ("submit", ["--bogus", "1"], "unknown option --bogus for `corral submit` (see `corral submit --help`)"),
    ("submit", ["--gpus"], "option --gpus needs a value ([MODEL:]N)"),
    ("ps", ["-n", "many"], 'invalid value for -n: "many" (expected an integer)'),
    ("ps", ["--all=yes"], "option --all takes no value"),
    ("cancel", [], "`corral cancel` needs at least one IDS"),
    ("show", [], "`corral show` needs ID"),
    ("show", ["1", "2"], "unexpected argument for `corral show`: 2"),
    ("wait", ["x"], 'invalid value for IDS: "x" (expected an integer)'),
])
def test_usage_errors_are_one_line(command, argv, message):
    with pytest.raises(UsageError) as err:
        parse(COMMANDS[command], argv)
    assert str(err.value) == message


def test_main_reports_usage_errors_with_status_2(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command \"frobnicate\"" in capsys.readouterr().err
    assert main(["submit", "--bogus"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0
    with pytest.raises(SystemExit) as done:
        main(["submit", "--help"])
    assert done.value.code == 0
    assert "--requests K=V,..." in capsys.readouterr().out


def test_kv_lists():
    assert _kv("cpu=2,memory=8Gi,nvidia.com/gpu=1", "--requests") == {
        "cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}
    assert _kv(" cpu = 2 , memory=8Gi, ", "--requests") == {"cpu": "2", "memory": "8Gi"}
    with pytest.raises(ValidationError) as err:
        _kv("cpu", "--requests")
    assert str(err.value) == ('invalid item in --requests: "cpu" '
                              "(expected comma-separated key=value pairs, e.g. cpu=2,memory=8Gi,nvidia.com/gpu=1)")
    with pytest.raises(ValidationError, match="duplicate key in --limits"):
        _kv("cpu=1,cpu=2", "--limits")
    assert _assign("K=a=b", "--env") == ("K", "a=b")
    with pytest.raises(ValidationError):
        _assign("K", "--env")


def test_payload_from_options():
    args = submit("--cpus", "2", "--mem", "8Gi", "--gpus", "1", "--limit-mem", "12Gi",
                  "--requests", "example.com/fpga=1", "--time", "90m", "--priority", "5", "--env", "A=1",
                  "--label", "team=vision", "--", "python", "train.py")
    flags = _payload(args)["jobs"][0]["flags"]
    assert flags["requests"] == {"example.com/fpga": "1", "cpu": "2", "memory": "8Gi"}
    assert flags["gpus"] == "1"                  # a count or MODEL:COUNT, checked by the daemon
    assert flags["limits"] == {"memory": "12Gi"}
    assert (flags["time"], flags["priority"], flags["env"], flags["labels"]) == ("90m", "5", {"A": "1"},
                                                                               {"team": "vision"})
    assert flags["command"] == ["python", "train.py"]
    assert flags["workdir"] == os.getcwd()


def test_one_argument_with_shell_characters_is_a_shell_command():
    assert _payload(submit("--", "echo hi && sleep 1"))["jobs"][0]["flags"]["command"] == "echo hi && sleep 1"
    assert _payload(submit("--", "true"))["jobs"][0]["flags"]["command"] == ["true"]


def test_file_and_options_conflict(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("spec: {command: [true]}\n")
    assert _payload(submit("-f", str(job)))["yaml"] == "spec: {command: [true]}\n"
    with pytest.raises(ValidationError, match="use either -f job.yaml or options with a command"):
        _payload(submit("-f", str(job), "--gpus", "1"))
    with pytest.raises(ValidationError, match="expected a readable YAML file"):
        _payload(submit("-f", str(tmp_path / "missing.yaml")))
    with pytest.raises(CorralError, match="missing command"):
        _payload(submit("--gpus", "1"))
