"""``corral run``'s exit status from the job's end (``srun``'s rules) and its refusals."""

from __future__ import annotations

import pytest

from corral.cli.run_cmd import _exit_status
from corral.cli.main import main


def job(state, reason, exit_code=None, signal=None, message=""):
    return {"id": 7, "state": state, "reason": reason, "exit_code": exit_code, "signal": signal, "message": message}


@pytest.mark.parametrize("view, code", [
    (job("Succeeded", "Completed", 0), 0),
    (job("Failed", "Error", 4, message="exit code 4"), 4),
    (job("Failed", "Signaled", None, 9), 137),
    (job("Failed", "OOMKilled", None, 9, "exceeded memory limit 2Gi"), 137),
    (job("Failed", "TimedOut", None, 15), 143),
])
def test_exit_codes(view, code):
    assert _exit_status(view) == code


@pytest.mark.parametrize("view, words", [
    (job("Failed", "LaunchFailed", 127, message="command not found or not executable: nope"), "failed to launch"),
    (job("Cancelled", "CancelledByUser", None, 15, "cancelled by request"), "was cancelled"),
    (job("Failed", "DependencyFailed", message="job 3 failed"), "failed"),
])
def test_launch_failures_and_cancels_are_1_with_one_line(view, words, capsys):
    assert _exit_status(view) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"corral: job 7 {words} (") and view["reason"] in err


def test_messages_are_escaped(capsys):
    _exit_status(job("Failed", "LaunchFailed", 127, message="not found: a\x1b[2Jb"))
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b" in err


def test_pty_with_a_job_file_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))
    (tmp_path / "job.yaml").write_text("spec: {command: [sh]}\n")
    assert main(["run", "--pty", "-f", str(tmp_path / "job.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: conflicting arguments --pty and -f") and err.count("\n") == 1
    assert not (tmp_path / "home").exists()


def test_the_wait_line():
    from corral.cli.run_cmd import _waiting

    view = {"message": "insufficient nvidia.com/gpu: requests 1, free 0 of 4", "queue_position": 2}
    assert _waiting(view) == "insufficient nvidia.com/gpu: requests 1, free 0 of 4 (#2 in line)"
    assert _waiting({"message": "held at submit"}) == "held at submit"
