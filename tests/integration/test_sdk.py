"""The Python SDK and the raw API against a real daemon: the README's example as written,
typed answers for every call, the caller taken from the socket only, and a CLI that
never loads pydantic."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from corral.api.models import FlagsItem, Health, JobFlags, JobView
from corral.client import ApiError, Client, Connection
from corral.job import JobState, Reason
from corral_harness import TIMEOUT

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The Python block of the README's section on the SDK."""
    text = README.read_text()
    start = text.index("From Python, the same API the CLI uses")
    match = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert match is not None, "the README lost its SDK example"
    return match.group(1)


def test_readme_example_runs_as_written(corral):
    corral.up("--simulate-gpus", "2")
    work = Path(corral.workdir)
    (work / "train.py").write_text("import os, sys\nprint('lr', sys.argv[2], 'gpu', os.environ['CUDA_VISIBLE_DEVICES'])\n")
    env = dict(corral.env, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")   # `python`
    res = subprocess.run([sys.executable, "-c", readme_example()], cwd=work, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    printed = [line.split() for line in res.stdout.splitlines()]
    assert [state for _, state, _ in printed] == ["Succeeded", "Succeeded"], res.stdout
    assert [code for _, _, code in printed] == ["0", "0"]
    outputs = sorted(corral.logs(int(job_id)).split()[1] for job_id, _, _ in printed)
    assert outputs == ["0.01", "0.1"]


def test_sdk_answers_are_typed(corral):
    corral.up("--simulate-gpus", "2")
    c = Client(corral.home, autostart=False)
    health = c.health()
    assert isinstance(health, Health) and health.pid == corral.daemon_pid_from_lock() and health.ok

    script = FlagsItem(flags=JobFlags(command=["sh", "-c", "echo hi; echo oops >&2"], name="hello", hold=True))
    [job] = c.submit([script], workdir=corral.workdir)
    assert isinstance(job, JobView) and (job.state, job.reason, job.held, job.name) == (
        JobState.PENDING, Reason.HELD, True, "hello")
    assert [r.id for r in c.update([job.id], priority=-1)] == [job.id]
    assert c.hold([job.id]) == [] and c.release([job.id]) == [job.id]
    [done] = c.wait([job.id])
    assert (done.state, done.exit_code) == (JobState.SUCCEEDED, 0)
    assert b"".join(c.logs(job.id)) == b"hi\n" and b"".join(c.logs(job.id, stream="stderr")) == b"oops\n"
    assert b"".join(c.logs(job.id, offset=1)) == b"i\n"
    detail = c.job(job.id)
    assert detail.priority == -1 and detail.logs and set(detail.logs) == {"stdout", "stderr"}
    assert [e.to for e in detail.events][-1] is JobState.SUCCEEDED and detail.events[1].from_ is JobState.PENDING
    assert job.id in [j.id for j in c.jobs(["Succeeded"], limit=10)]

    [sleeper] = c.submit([{"spec": {"command": ["sleep", "60"]}}], workdir=corral.workdir)
    results = c.cancel([sleeper.id, 999999], missing_ok=True)
    assert [(r.id, r.ok) for r in results] == [(sleeper.id, True), (999999, False)]
    assert c.wait([sleeper.id])[0].state is JobState.CANCELLED

    [node] = c.nodes()
    assert node.resources["nvidia.com/gpu"].allocatable == "2" and node.simulated_gpus
    assert node.access.mode == health.mode
    assert [q.name for q in c.queues().queues] == ["default"]
    assert c.top().pending == 0
    report = c.usage("1d", "job")
    assert report.by == "job" and {line.key for line in report.lines} <= {str(job.id), str(sleeper.id)}
    assert sorted(c.prune("0").deleted) == sorted([job.id, sleeper.id])
    assert c.jobs() == []


def test_raw_requests_get_one_line_errors(corral):
    corral.up()
    conn = Connection(corral.home, autostart=False)
    for ids, line in (([True], "invalid value for ids[0]: true (expected a job id, a positive integer)"),
                      ([2**63], "invalid value for ids[0]: 9223372036854775808 "
                                "(expected a job id, a positive integer)")):
        with pytest.raises(ApiError) as info:
            conn.request("POST", "/v1/jobs/cancel", {"ids": ids})
        assert (info.value.status, info.value.lines) == (422, [line])
    with pytest.raises(ApiError) as info:
        conn.request("GET", f"/v1/jobs/{2**63}")
    assert info.value.lines == [f'invalid value for job_id: "{2**63}" (expected a job id, a positive integer)']
    res = corral.run("show", str(2**64))
    assert res.returncode == 1 and res.stderr == (f'error: invalid value for ID: "{2**64}" '
                                                  "(expected one job id such as 12, or an array task 12_3)\n")


#: Run as another user: three requests on the daemon's socket, each claiming to be root in
#: every header a proxy might set; prints each answer's status and body, one JSON per line.
SPOOF = r"""
import json, socket, sys
headers = {"X-Forwarded-For": "uid:0:0", "Forwarded": 'for="uid:0:0"', "X-Real-IP": "uid:0:0"}
for method, path, body in (("POST", "/v1/jobs", {"jobs": [{"flags": {"command": ["true"], "hold": True}}]}),
                           ("POST", "/v1/shutdown", None), ("GET", "/v1/health", None)):
    payload = b"" if body is None else json.dumps(body).encode()
    head = [f"{method} {path} HTTP/1.1", "Host: corral", "Connection: close", "Content-Type: application/json",
            f"Content-Length: {len(payload)}"] + [f"{k}: {v}" for k, v in headers.items()]
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(sys.argv[1])
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    status = int(data.split(b" ", 2)[1])
    print(json.dumps({"status": status, "body": json.loads(data.split(b"\r\n\r\n", 1)[1])}))
"""


NOBODY = 65534


def as_nobody(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), user=NOBODY, group=NOBODY, extra_groups=[], cwd="/", capture_output=True,
                          text=True, timeout=TIMEOUT)


def nobodys_python() -> str:
    """A Python that user nobody can run (the script is stdlib only): this one, unless it
    lives where nobody cannot reach (e.g. under /root), else the system's."""
    for python in dict.fromkeys((sys.executable, "/usr/bin/python3")):
        try:
            if as_nobody(python, "-I", "-c", "pass").returncode == 0:
                return python
        except OSError:
            continue
    pytest.skip("no Python that user nobody can run")
    raise AssertionError("unreachable")


def test_proxy_headers_cannot_make_a_user_root(corral):
    """A system daemon whose socket group lets ``nobody`` in: whatever headers nobody
    sends, the daemon sees nobody (SO_PEERCRED)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: a system-mode daemon and a process running as nobody")
    corral.write_config("socket_group: nogroup\n")
    assert corral.up()["health"]["mode"] == "system"
    res = as_nobody(nobodys_python(), "-I", "-c", SPOOF, os.path.join(corral.home, "corral.sock"))
    assert res.returncode == 0, res.stderr
    submitted, shutdown, health = (json.loads(line) for line in res.stdout.splitlines())
    assert submitted["status"] == 201 and submitted["body"]["jobs"][0]["user"] == "nobody"
    assert shutdown == {"status": 403, "body": {
        "error": "permission denied: only admins may stop the daemon (you are nobody)",
        "lines": ["permission denied: only admins may stop the daemon (you are nobody)"]}}
    assert health["status"] == 200 and health["body"]["pid"] == corral.daemon_pid_from_lock()
    [job] = corral.ps()
    assert (job["user"], job["held"]) == ("nobody", True)


def test_cli_commands_do_not_load_pydantic(corral):
    corral.up()
    for args in (["ps"], ["ps", "-a", "--json"], ["nodes"], ["queues"], ["--help"]):
        res = subprocess.run([sys.executable, "-X", "importtime", "-m", "corral.cli.main", *args],
                             capture_output=True, text=True, env=corral.env, cwd=corral.workdir, timeout=60)
        assert res.returncode == 0, (args, res.stderr[-2000:])
        loaded = {line.split("|")[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
        assert not {m for m in loaded if m.split(".")[0] in ("pydantic", "pydantic_core", "fastapi")}, args
        assert "corral.client" in loaded or args == ["--help"]


def test_the_sdk_has_the_clis_verbs_with_its_defaults(shared_corral, tmp_path):
    from corral.client import WaitTimeout

    c = Client(shared_corral.home)
    here = tmp_path / "here"
    here.mkdir()
    old = os.getcwd()
    os.chdir(here)
    try:
        job = c.submit_command("pwd; echo $GREETING", cpus="100m", mem="64Mi", name="verbs", env={"GREETING": "hi"})
    finally:
        os.chdir(old)
    assert job.requests == {"cpu": "0.1", "memory": "64Mi"} and job.name == "verbs"
    [done] = c.wait([job.id], timeout=60)
    assert done.state is JobState.SUCCEEDED
    assert b"".join(c.logs(job.id)).decode() == f"{here}\nhi\n"          # the CLI's working directory
    with pytest.raises(ApiError) as err:
        c.cancel([job.id, 987654])
    assert err.value.status == 404 and err.value.lines == ["no such job: 987654"]
    assert [r.ok for r in c.cancel([987654], missing_ok=True)] == [False]
    slow = c.submit_command(["sleep", "60"], cpus="100m")
    with pytest.raises(WaitTimeout, match=rf"job {slow.id} is still (Pending|Running) after 0.5s"):
        c.wait([slow.id], timeout=0.5)
    seen = []
    for event in c.events(job=slow.id, after=0):
        seen.append(event["to"])
        if event["to"] == "Running":
            c.cancel([slow.id])
        if event["to"] == "Cancelled":
            break
    assert seen[0] == "Pending" and seen[-1] == "Cancelled"
    token = c.create_token(name="sdk", scope="read", expires="1d")
    assert token.token.startswith("crl_") and [t.name for t in c.tokens()] == ["sdk"]
    assert c.revoke_token("sdk").id == token.id and c.tokens() == []
