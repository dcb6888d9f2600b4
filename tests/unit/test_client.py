"""The SDK and the transport (corral.client) without a daemon: what stays cheap to import,
and requests the SDK refuses to send."""

from __future__ import annotations

import subprocess
import sys

import pytest

from corral.api.problems import as_validation_error, field_name, shown
from corral.client import Client, Connection
from corral.errors import DaemonUnavailable, ValidationError

HEAVY = ("pydantic", "fastapi", "starlette", "uvicorn", "yaml", "corral.api.models")


def test_cli_and_transport_do_not_import_pydantic():
    """The CLI speaks the API with plain dicts: every command module and the transport
    load without pydantic (which costs ~150 ms a call), and so does the SDK's module."""
    code = ("import sys, corral.client, corral.cli.main, corral.cli.job_cmds, corral.cli.usage_cmds, "
            "corral.cli.daemon_cmds; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.fixture
def client(tmp_path) -> Client:
    """An SDK client of a home where no daemon runs: any request that got sent would
    raise DaemonUnavailable instead of what the tests expect."""
    return Client(str(tmp_path / "home"), autostart=False)


@pytest.mark.parametrize("call, line", [
    (lambda c: c.cancel([True]), "invalid value for ids[0]: true (expected a job id, a positive integer)"),
    (lambda c: c.hold([2**63]), "invalid value for ids[0]: 9223372036854775808 (expected a job id, a positive integer)"),
    (lambda c: c.release([]), "invalid value for ids: [] (expected a non-empty list of job ids)"),
    (lambda c: c.update([3]), 'invalid value for request: {"ids":[3]} (expected at least one of priority, time, queue)'),
    (lambda c: c.job(True), "invalid value for job_id: true (expected a job id, a positive integer)"),
    (lambda c: c.wait([0]), "invalid value for job_id: 0 (expected a job id, a positive integer)"),
    (lambda c: c.logs(1, stream="stdin"), "invalid value for stream: \"stdin\" (expected 'stdout' or 'stderr')"),
    (lambda c: c.submit([]), "invalid value for jobs: [] (expected a non-empty list of job documents)"),
    (lambda c: c.submit([{"spec": {}}], base_env={"PATH": 1}),
     "invalid value for base_env.PATH: 1 (expected a string)"),
    (lambda c: c.jobs(limit=-1), "invalid value for limit: -1 (expected a number of at least 0)"),
])
def test_sdk_refuses_invalid_requests_before_sending(client, call, line):
    with pytest.raises(ValidationError) as info:
        call(client)
    assert str(info.value) == line


def test_valid_requests_are_sent(client):
    with pytest.raises(DaemonUnavailable, match="corral daemon is not running"):
        client.cancel([1, 2])
    with pytest.raises(DaemonUnavailable):
        Connection(client.paths.home, autostart=False).request("GET", "/v1/health")


def test_problem_formatting():
    assert field_name(("body", "jobs", 0, "flags item", "flags", "env", "A")) == "jobs[0].flags.env.A"
    assert field_name(("query", "state")) == "state"
    assert (shown(True), shown(None), shown("x"), shown([1, "a"])) == ("true", "null", '"x"', '[1,"a"]')
    assert shown("y" * 100) == '"' + "y" * 80 + '..."'
    err = as_validation_error([{"type": "expected", "loc": ("ids", 0), "input": False,
                                "ctx": {"accepted": "a job id, a positive integer"}}])
    assert (err.field, err.value, err.expected) == ("ids[0]", False, "expected a job id, a positive integer")
    assert str(err) == "invalid value for ids[0]: false (expected a job id, a positive integer)"
