"""``corral run``: submit a job, stream its output, exit with its exit code (Slurm's ``srun``).

The job is submitted through the normal API with every ``submit`` option. While it waits
the reason is printed once on stderr; its stdout and stderr are streamed to ours (the
logs API, followed); the exit status is the job's exit code, 128+N for signal N, and 1
with a one-line message when it failed to launch or was cancelled. SIGINT (Ctrl-C),
SIGTERM or SIGHUP while it is pending or running cancels it (exit 130); a second one
exits at once.

``--pty``: the job gets a pseudo-terminal (:mod:`.ptyclient` connects our terminal to
it); it still runs under its supervisor with its cgroup, cores, GPUs, user and limits,
and ends (releasing them) when its shell exits.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from ..client import Connection
from ..errors import CorralError, ValidationError
from . import format as fmt

#: How often the job's state is asked while it waits to start.
POLL = 0.2


class _Stop(Exception):
    """A stop signal arrived (Ctrl-C ...): cancel the job."""


class _Signals:
    """The first stop signal cancels the job (raising :class:`_Stop` once we may act on
    it); a second exits at once, restoring the terminal first."""

    def __init__(self):
        self.count = 0
        self.armed = False
        self.raw = None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handler)

    def _handler(self, signum, frame) -> None:
        self.count += 1
        if self.count > 1:
            if self.raw is not None:
                self.raw.restore()
            os._exit(130)
        if self.armed:
            raise _Stop


def _body(args) -> dict:
    from .job_cmds import _payload   # the very same job as `corral submit` would send

    if args.json:
        raise ValidationError("--json", "--json", "corral run streams the job's own output; for JSON use "
                              "corral submit --json, then corral wait and corral show --json",
                              detail="invalid option for corral run")
    if args.array is not None:
        raise ValidationError("--array", args.array, "corral run runs one job; submit arrays with corral submit")
    if args.pty and args.file:
        raise ValidationError("--pty", "-f " + args.file, "with a job file, say pty: true in its spec instead",
                              detail="conflicting arguments --pty and -f")
    body = _payload(args)
    if args.pty:
        flags = body["jobs"][0]["flags"]
        flags["pty"] = True
        term = os.environ.get("TERM")
        if term and "TERM" not in flags["env"]:
            flags["env"]["TERM"] = term     # a system-mode job's clean environment has none
    body["base_env"] = dict(os.environ)
    return body


def cmd_run(args) -> int:
    conn = Connection(args.home)
    body = _body(args)
    signals = _Signals()
    signals.install()
    jobs = conn.submit_request(body)["jobs"]
    if len(jobs) != 1:
        conn.request("POST", "/v1/jobs/cancel", {"ids": [j["id"] for j in jobs]})
        raise CorralError(f"corral run runs one job, and the file has {len(jobs)} (cancelled them); "
                          "use corral submit for batches")
    job = jobs[0]
    streams = None
    cancelled: list[bool] = []

    def cancel() -> None:
        signals.armed = False            # a second signal now exits at once
        if not cancelled:
            cancelled.append(True)
            conn.request("POST", "/v1/jobs/cancel", {"ids": [job["id"]]})
            print(f"corral: cancelling job {job['id']}; waiting for it to end (Ctrl-C again: do not wait)",
                  file=sys.stderr, flush=True)

    try:
        signals.armed = True
        if signals.count:
            raise _Stop
        if job.get("pty") is not None:
            job = _interactive(conn, job, signals, cancel)
        else:
            streams = _Streams(conn, job["id"])
            _until_started(conn, job)
            streams.join()
            job = conn.wait_for(job["id"])
        signals.armed = False
        return _exit_status(job)
    except _Stop:
        cancel()
        if streams is not None:
            streams.join()               # what it writes until it has ended
        conn.wait_for(job["id"])
        return 130


# waiting and streaming --------------------------------------------------------------------
def _until_started(conn: Connection, job: dict) -> dict:
    """Poll until the job is no longer pending; print why it waits, once."""
    told, asked = False, False
    while job["state"] == "Pending":
        if not told and job.get("message"):
            print(f"corral: job {job['id']} waiting: {_printable(_waiting(job))}", file=sys.stderr, flush=True)
            told = True
        if asked:                        # the first time at once: the submit's cycle has run by now
            time.sleep(POLL)
        asked = True
        job = conn.request("GET", f"/v1/jobs/{job['id']}")
    return job


def _waiting(job: dict) -> str:
    """``insufficient nvidia.com/gpu: requests 1, free 0 of 4 (#1 in line, starts in ~5m)``."""
    extra = [f"#{job['queue_position']} in line"] if job.get("queue_position") else []
    start = job.get("estimated_start")
    if start and start > time.time():
        extra.append(f"starts in ~{fmt.duration(start - time.time())}")
    return job["message"] + (f" ({', '.join(extra)})" if extra else "")


class _Streams:
    """The job's stdout and stderr, followed until it ends, each to ours (two threads)."""

    def __init__(self, conn: Connection, job_id: int):
        import threading

        self.errors: list[BaseException] = []
        self.home, self.job_id = conn.paths.home, job_id
        self.threads = [threading.Thread(target=self._pump, args=(s, o), daemon=True)
                        for s, o in (("stdout", sys.stdout.buffer), ("stderr", sys.stderr.buffer))]
        for t in self.threads:
            t.start()

    def _pump(self, stream: str, out) -> None:
        from ..client import urlencode

        try:
            path = f"/v1/jobs/{self.job_id}/logs?{urlencode({'stream': stream, 'follow': 'true'})}"
            for chunk in Connection(self.home, autostart=False).stream(path):
                out.write(chunk)
                out.flush()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.errors.append(exc)

    def join(self) -> None:
        for t in self.threads:
            t.join()
        if self.errors:
            raise self.errors[0]


def _interactive(conn: Connection, job: dict, signals: _Signals, cancel) -> dict:
    """Wait until it runs, connect our terminal to its terminal, relay until it ends."""
    from . import ptyclient

    job = _until_started(conn, job)
    path = job.get("pty") or ""
    sock = None
    while job["state"] == "Running" and path:
        try:
            sock = ptyclient.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.05)                 # its supervisor is making it
            job = conn.request("GET", f"/v1/jobs/{job['id']}")
        except PermissionError:
            raise CorralError(f"cannot connect to job {job['id']}'s terminal at {path}: permission denied "
                              "(only the job's user can)") from None
    if sock is not None:
        with ptyclient.RawMode(0) as raw:
            signals.raw = raw
            try:
                ptyclient.relay(sock)
            except _Stop:
                cancel()                     # before the terminal hangs up: the job ends Cancelled
                raise
            finally:
                signals.raw = None
                sock.close()
    return conn.wait_for(job["id"])


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


# the exit status --------------------------------------------------------------------------
def _exit_status(job: dict) -> int:
    state, reason = job["state"], job.get("reason")
    if state == "Succeeded":
        return 0
    detail = f"{reason}: {job['message']}" if job.get("message") else str(reason)
    if state == "Cancelled" or reason == "LaunchFailed" or (job.get("exit_code") is None
                                                            and job.get("signal") is None):
        what = "was cancelled" if state == "Cancelled" else ("failed to launch" if reason == "LaunchFailed"
                                                             else "failed")
        print(f"corral: job {job['id']} {what} ({_printable(detail)})", file=sys.stderr)
        return 1
    if job.get("signal"):
        if reason not in ("Signaled", "Error"):
            print(f"corral: job {job['id']} ended: {_printable(detail)}", file=sys.stderr)
        return 128 + int(job["signal"])
    if reason not in ("Signaled", "Error"):
        print(f"corral: job {job['id']} ended: {_printable(detail)}", file=sys.stderr)
    return int(job["exit_code"])
