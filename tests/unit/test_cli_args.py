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
    assert parse(COMMANDS["cancel"], ["3", "4_1", "5-7"]).ids == ["3", "4_1", "5-7"]   # parsed by cli/ids.py
    assert parse(COMMANDS["cancel"], ["--name", "a*", "-y"]).ids == []                  # ids may be left out
    assert parse(COMMANDS["logs"], ["-f", "7_1"]).id == "7_1"                         # parsed by cli/ids.py


@pytest.mark.parametrize("text", ["1_0", " 1", "+1", "1.0", "٣"])
def test_integers_are_digits_only(text):
    with pytest.raises(UsageError, match="expected an integer"):
        parse(COMMANDS["ps"], ["-n", text])


@pytest.mark.parametrize("command, argv, message", [
    ("submit", ["--bogus", "1"], "unknown option --bogus for `corral submit` (see `corral submit --help`)"),
    ("submit", ["--gpus"], "option --gpus needs a value ([MODEL:]N)"),
    ("ps", ["-n", "many"], 'invalid value for -n: "many" (expected an integer)'),
    ("ps", ["--all=yes"], "option --all takes no value"),
    ("show", ["1", "2"], "unexpected argument for `corral show`: 2"),
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


# -- daily use (issue 13): conflicts, unknown commands, errors under --json, typed names ----------

@pytest.mark.parametrize("argv, line", [
    (["--gpus", "1", "--requests", "nvidia.com/gpu=2"],
     "conflicting options --gpus 1 and --requests nvidia.com/gpu=2: both set the GPU count (give one)"),
    (["--gpus", "A100:1", "--requests", "gpu=1"],
     "conflicting options --gpus A100:1 and --requests gpu=1: both set the GPU count (give one)"),
    (["--cpus", "1", "--requests", "memory=1Gi,CPU=500m"],
     "conflicting options --cpus 1 and --requests CPU=500m: both set the CPU request (give one)"),
    (["--limit-mem", "2Gi", "--limits", "memory=4Gi"],
     "conflicting options --limit-mem 2Gi and --limits memory=4Gi: both set the memory limit (give one)"),
])
def test_conflicting_submit_options_name_both(argv, line):
    from corral.cli.conflicts import check_submit

    with pytest.raises(UsageError) as err:
        check_submit(submit(*argv, "--", "true"))
    assert str(err.value) == line


def test_options_that_do_not_conflict():
    from corral.cli.conflicts import check_submit

    check_submit(submit("--cpus", "1", "--requests", "memory=1Gi", "--limits", "cpu=2", "--", "true"))
    check_submit(submit("--mem", "1Gi", "--limit-mem", "2Gi", "--", "true"))


def test_unknown_command_suggests_the_nearest(capsys):
    assert main(["sumbit"]) == 2
    assert capsys.readouterr().err == 'error: unknown command "sumbit" (did you mean submit?)\n'
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: unknown command "frobnicate" (expected one of: up, down, submit,')


def test_help_lists_version(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--version" in out and "--home DIR" in out


def test_usage_errors_under_json_are_a_json_object_on_stderr(capsys):
    import json

    for argv in (["ps", "--json", "--bogus"], ["--json", "ps", "--bogus"], ["--json", "sumbit"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        error = json.loads(captured.err)
        assert error["exit_code"] == 2 and error["lines"] == [error["error"]]
    from corral.cli.main import _json_mode

    assert not _json_mode(["submit", "--", "echo", "--json"])            # the job's own --json is its own


def test_daemon_field_names_become_the_options_typed():
    from corral.cli.main import _as_typed

    assert _as_typed("prune", 'invalid age for older_than: "x" (expected e.g. 30d)') == \
        'invalid age for --older-than: "x" (expected e.g. 30d)'
    assert _as_typed("submit", 'invalid time limit for time_limit: "x" (expected e.g. 2h)') == \
        'invalid time limit for --time: "x" (expected e.g. 2h)'
    assert _as_typed("update", "nothing to change (give at least one of priority, time, queue)") == \
        "nothing to change (give at least one of --priority, --time, --queue)"
    assert _as_typed("", 'invalid time limit for time_limit: "x"') == 'invalid time limit for time_limit: "x"'
    assert _as_typed("submit", "jobs.yaml: invalid value for spec.priority: 1.5") == \
        "jobs.yaml: invalid value for spec.priority: 1.5"


def test_missing_and_bad_positionals_are_named_in_words():
    from corral.cli.args import Command, Pos

    many = Command("kill", "Kill jobs.", Pos("ids", "job ids", type=int, many=True))
    one = Command("look", "Look at one job.", Pos("id", "job id", type=int))
    for command, argv, line in [
        (many, [], "`corral kill` needs at least one job id (e.g. `corral kill 12`)"),
        (one, [], "`corral look` needs a job id (e.g. `corral look 12`)"),
        (many, ["1", "x"], 'invalid value for job id: "x" (expected an integer)'),
        (one, ["x\n"], 'invalid value for job id: "x\\n" (expected an integer)'),
    ]:
        with pytest.raises(UsageError) as err:
            parse(command, argv)
        assert str(err.value) == line
