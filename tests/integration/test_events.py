"""``GET /v1/events``: a real daemon's state changes as server-sent events, resumable
from the last id seen, and ``/metrics`` over the socket."""

from __future__ import annotations

import json
import os
import socket
import time


def _open(home: str, path: str, headers: str = "") -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(os.path.join(home, "corral.sock"))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: corral\r\n{headers}\r\n".encode())
    return sock


def _events_until(sock: socket.socket, done, limit: float = 30.0) -> list[dict]:
    """Read the stream until ``done(events)``; the parsed ``data`` of each event."""
    buf, events, deadline = b"", [], time.monotonic() + limit
    while time.monotonic() < deadline and not done(events):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.decode().splitlines() if ": " in line
                          and not line.startswith(":"))
            if fields.get("event") == "job":
                data = json.loads(fields["data"])
                assert int(fields["id"]) == data["id"]
                events.append(data)
    return events


def test_state_changes_stream_as_they_happen_and_resume_from_the_last_id(shared_corral):
    c = shared_corral
    sock = _open(c.home, "/v1/events")
    time.sleep(0.5)                                        # the stream starts from now
    job = c.submit("--cpus", "100m", "--name", "evt", "--", "sh", "-c", "exit 4")
    ended = lambda evs: any(e["job"] == job and e["to"] == "Failed" for e in evs)  # noqa: E731
    events = [e for e in _events_until(sock, ended) if e["job"] == job]
    sock.close()
    assert [e["to"] for e in events][0] == "Pending" and events[-1]["to"] == "Failed"
    assert "Running" in [e["to"] for e in events] and events[-1]["name"] == "evt" and events[-1]["user"]
    # Reconnecting with the id of the first event gives the rest again, nothing before.
    sock = _open(c.home, f"/v1/events?job={job}", f"Last-Event-ID: {events[0]['id']}\r\n")
    again = _events_until(sock, ended)
    sock.close()
    assert [e["id"] for e in again] == [e["id"] for e in events[1:]]


def test_metrics_over_the_socket(shared_corral):
    sock = _open(shared_corral.home, "/metrics", "Connection: close\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0] and b"corral_up 1.0" in body
    assert b'corral_node_resource_allocatable{node=' in body
