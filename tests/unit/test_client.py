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
    (lambda c: c.update([3]), "nothing to change (give at least one of priority, time, queue)"),
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


def _serve_once(path, answer: bytes, *, reset: bool = False, read: int = 1 << 16):
    """A one-shot Unix-socket server that reads ``read`` bytes and sends ``answer``
    (then closes, or resets the connection)."""
    import socket
    import struct
    import threading

    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)

    def run():
        conn, _ = srv.accept()
        conn.recv(read)
        if answer:
            conn.sendall(answer)
        if reset:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        srv.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _home(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    return home


def test_a_cut_answer_or_a_reset_is_one_line_not_a_traceback(tmp_path):
    home = _home(tmp_path)
    conn = Connection(str(home), autostart=False)
    t = _serve_once(home / "corral.sock", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"jobs\":")
    with pytest.raises(DaemonUnavailable, match=r"answer was cut short: 8 of 100 bytes"):
        conn.request("GET", "/v1/jobs")
    t.join()
    (home / "corral.sock").unlink()
    t = _serve_once(home / "corral.sock", b"", reset=True)
    with pytest.raises(DaemonUnavailable, match="closed the connection"):
        conn.request("POST", "/v1/jobs", {"jobs": []})
    t.join()


def test_an_early_answer_to_a_large_body_is_read(tmp_path):
    """The daemon refuses a body over its limit before reading it: the client, still
    sending, gets the 413 and its line, not a broken pipe."""
    from corral.client import ApiError

    home = _home(tmp_path)
    body = b'{"error":"request body too large","lines":["request body too large"]}'
    t = _serve_once(home / "corral.sock", b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: %d\r\n"
                    b"Connection: close\r\n\r\n%s" % (len(body), body), read=1024)
    with pytest.raises(ApiError) as info:
        Connection(str(home), autostart=False).request("POST", "/v1/jobs", {"x": "y" * (32 * 2**20)})
    assert info.value.status == 413 and info.value.lines == ["request body too large"]
    t.join()


def test_a_submit_cut_off_is_sent_again_with_the_same_key(tmp_path):
    import json
    import socket
    import threading

    home = _home(tmp_path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(home / "corral.sock"))
    srv.listen(2)
    bodies = []

    def run():
        for answer in (None, b'{"jobs": [{"id": 7}]}'):
            conn, _ = srv.accept()
            data = b""
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
                    data.split(b"Content-Length: ")[1].split(b"\r\n")[0]):
                data += conn.recv(65536)
            bodies.append(json.loads(data.split(b"\r\n\r\n", 1)[1]))
            if answer is not None:                     # the first time the daemon "dies" before answering
                conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
            conn.close()
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    answer = Connection(str(home), autostart=True).submit_request({"jobs": [{"spec": {"command": ["true"]}}]})
    t.join()
    assert answer == {"jobs": [{"id": 7}]}
    assert len(bodies) == 2 and bodies[0]["idempotency_key"] == bodies[1]["idempotency_key"]
    assert len(bodies[0]["idempotency_key"]) == 32


def test_a_read_cut_off_is_asked_again_and_a_write_is_not(tmp_path):
    import socket
    import threading

    home = _home(tmp_path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(home / "corral.sock"))
    srv.listen(4)
    seen = []

    def run():
        for answer in (None, b'{"ok": true}', None):
            conn, _ = srv.accept()
            seen.append(conn.recv(65536).split(b" ")[0])
            if answer is not None:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
            conn.close()
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    conn = Connection(str(home), autostart=True)
    assert conn.request("GET", "/v1/health") == {"ok": True}
    with pytest.raises(DaemonUnavailable, match="without answering"):
        conn.request("POST", "/v1/jobs/cancel", {"ids": [1]})        # not repeated: it may have happened
    t.join()
    assert seen == [b"GET", b"GET", b"POST"]


def test_a_home_that_cannot_be_written_is_one_line(tmp_path):
    home = _home(tmp_path)
    (home / "daemon.log").mkdir()                     # opening the log fails, as on a read-only file system
    with pytest.raises(DaemonUnavailable) as info:
        Connection(str(home), autostart=True).request("GET", "/v1/health")
    assert str(info.value) == f"cannot start the corral daemon: cannot write {home}/daemon.log: Is a directory"


# -- homes (issue 13): a named home is created only by `corral up` -------------------------------

def test_a_named_home_that_does_not_exist_is_not_created(tmp_path, monkeypatch):
    home = tmp_path / "typo"
    for conn in (Connection(str(home)), Client(str(home))):
        with pytest.raises(DaemonUnavailable) as info:
            conn.request("GET", "/v1/health")
        assert str(info.value) == f"no corral home at {home}; create it with corral --home {home} up"
    monkeypatch.setenv("CORRAL_HOME", str(home))
    with pytest.raises(DaemonUnavailable, match="no corral home at"):
        Connection().request("GET", "/v1/health")
    assert not home.exists()


def test_the_default_home_is_still_created_on_first_use(tmp_path, monkeypatch):
    from corral.paths import Paths

    monkeypatch.delenv("CORRAL_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    paths = Paths()
    assert not paths.explicit and paths.home == str(tmp_path / "state" / "corral")
    assert Paths(str(tmp_path)).explicit


def test_homes_that_cannot_hold_a_socket_are_one_line(tmp_path):
    long = tmp_path / ("x" * 120)
    with pytest.raises(DaemonUnavailable) as info:
        Connection(str(long)).request("GET", "/v1/health")
    assert str(info.value).startswith(f"corral home path too long for a Unix socket: {long}/corral.sock is ")
    a_file = tmp_path / "f"
    a_file.write_text("")
    with pytest.raises(DaemonUnavailable) as info:
        Connection(str(a_file)).request("GET", "/v1/health")
    assert str(info.value) == f"corral home {a_file} is not a directory; give --home or CORRAL_HOME a directory"
    with pytest.raises(DaemonUnavailable) as info:
        Connection(str(a_file / "sub")).request("GET", "/v1/health")
    assert str(info.value).startswith(f"corral home {a_file / 'sub'} is not a directory (a part of its path")
    assert not long.exists()
