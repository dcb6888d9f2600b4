"""Store faults on a small tmpfs: the disk fills up, another process holds the database
locked, the database is deleted or replaced under a running daemon, emptied while it is
stopped, and the file system turns read-only. While a fault lasts every request that
needs the store gets one line (507 or 503), reads are served, and nothing is
acknowledged that could be lost; jobs that end meanwhile keep their exit codes, and
their GPUs are free within seconds of the fault clearing, without a restart.

Needs root (to mount the tmpfs); skipped otherwise.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from harness import Home, Result, alive, is_root, wait_for

SIZE = "48m"


class Mount:
    """A tmpfs of its own (so filling it touches nothing else)."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="cxs", dir="/tmp")
        sh("mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "tmpfs", self.path)

    def remount(self, mode: str) -> None:
        try:
            sh("mount", "-o", f"remount,{mode}", self.path)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; files open there: {self.holders()}") from None

    def holders(self) -> list[str]:
        """Processes with a file of this mount open (pid, command, file)."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith(self.path):
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:80]
                        found.append(f"{pid} {cmd} {target}")
            except OSError:
                continue
        return found

    def fill(self) -> Path:
        """Write a file until the file system is full."""
        filler = Path(self.path, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 4096, 1):        # big pieces, then the last few pages
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)
        return filler

    def close(self) -> None:
        subprocess.run(["umount", "-l", self.path], capture_output=True)
        shutil.rmtree(self.path, ignore_errors=True)


def sh(*argv: str) -> None:
    res = subprocess.run(list(argv), capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")


class Fault:
    """One fault's figures."""

    def __init__(self, name: str):
        self.name = name
        self.acked_during = 0        # submits acknowledged while the fault lasted
        self.lost = 0                # acknowledged jobs gone afterwards
        self.codes_lost = 0          # jobs that ended during the fault without their exit code
        self.freed_after: float | None = None
        self.bad_answers: list[str] = []   # not one line, or a 500, or a traceback
        self.reads_served = True
        self.notes: list[str] = []

    def answer_ok(self, answer, want: tuple[int, ...], what: str) -> None:
        line = answer.error_line
        if answer.status not in want or not line or "\n" in line:
            self.bad_answers.append(f"{what}: HTTP {answer.status} {answer.body[:160]!r}")

    def cli_ok(self, res: subprocess.CompletedProcess, what: str, succeed: bool = False) -> None:
        err = res.stderr.strip()
        if succeed:
            if res.returncode != 0:
                self.bad_answers.append(f"{what}: exit {res.returncode}: {err[:200]}")
            return
        if res.returncode == 0 or not err or len(err.splitlines()) != 1 or "Traceback" in err:
            self.bad_answers.append(f"{what}: exit {res.returncode}, stderr {err[:200]!r}")


def gate_job(home: Home, gates: Path, name: str, code: int, gpus: int = 1) -> int:
    gate = gates / name
    cmd = f"while [ ! -e {gate} ]; do sleep 0.05; done; exit {code}"
    return home.cli_json("submit", "--gpus", str(gpus), "--cpus", "100m", "--name", name, "--", cmd)["id"]


def wait_running(home: Home, *ids: int) -> bool:
    return bool(wait_for(lambda: all(home.request("GET", f"/v1/jobs/{i}").json()["state"] == "Running"
                                     for i in ids), timeout=30))


def ended_with(home: Home, expected: dict[int, int]) -> bool:
    for job_id, code in expected.items():
        view = home.request("GET", f"/v1/jobs/{job_id}").json()
        if not view or view.get("state") not in ("Succeeded", "Failed") or view.get("exit_code") != code:
            return False
    nodes = home.request("GET", "/v1/nodes").json() or {}
    return all(g.get("job") is None for n in nodes.get("nodes", []) for g in n["gpus"])


def submit_body(home: Home) -> dict:
    return {"jobs": [{"flags": {"command": ["true"], "hold": True, "workdir": home.workdir}}]}


def reads_ok(home: Home, job_id: int) -> bool:
    return (home.request("GET", "/v1/jobs").status == 200 and home.request("GET", f"/v1/jobs/{job_id}").status == 200)


# -- the faults ----------------------------------------------------------------------------

def disk_full(mount: Mount, gates: Path, short: bool) -> Fault:
    fault = Fault("disk full while jobs end")
    home = Home(root=mount.path, prefix="h")
    try:
        home.write_config("simulate_gpus: 2\n")
        home.up()
        a, b = gate_job(home, gates, "full-a", 7), gate_job(home, gates, "full-b", 0)
        wait_running(home, a, b)
        filler = mount.fill()
        for name in ("full-a", "full-b"):
            (gates / name).touch()           # both end while the disk is full
        time.sleep(3.0)                      # ends are recorded, or buffered
        answer = home.request("POST", "/v1/jobs", submit_body(home))
        if answer.status < 300:
            fault.acked_during += 1
        fault.answer_ok(answer, (507,), "submit while the disk is full")
        fault.reads_served = reads_ok(home, a)
        os.unlink(filler)
        cleared = time.monotonic()
        if wait_for(lambda: ended_with(home, {a: 7, b: 0}), timeout=30, interval=0.1):
            fault.freed_after = time.monotonic() - cleared
        else:
            fault.codes_lost += sum(1 for i, c in ((a, 7), (b, 0))
                                    if home.request("GET", f"/v1/jobs/{i}").json().get("exit_code") != c)
            fault.notes.append("the jobs' ends were not recorded within 30 s of the disk clearing")
        check_log(home, fault)
    finally:
        home.close()
    return fault


def locked(mount: Mount, gates: Path, short: bool) -> Fault:
    fault = Fault("database locked by another process")
    home = Home(root=mount.path, prefix="h")
    try:
        home.write_config("simulate_gpus: 2\n")
        home.up()
        a = gate_job(home, gates, "lock-a", 5)
        wait_running(home, a)
        holder = sqlite3.connect(str(home.path("corral.db")), timeout=1, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        release_at = threading.Event()
        (gates / "lock-a").touch()
        answer = home.request("POST", "/v1/jobs", submit_body(home), timeout=60)
        if answer.status < 300:
            fault.acked_during += 1
        fault.answer_ok(answer, (503,), "submit while the database is locked")
        fault.reads_served = reads_ok(home, a)
        holder.execute("ROLLBACK")
        holder.close()
        release_at.set()
        cleared = time.monotonic()
        if wait_for(lambda: ended_with(home, {a: 5}), timeout=30, interval=0.1):
            fault.freed_after = time.monotonic() - cleared
        else:
            fault.codes_lost += 1
        check_log(home, fault)
    finally:
        home.close()
    return fault


def deleted(mount: Mount, gates: Path, short: bool, replace: bool) -> Fault:
    fault = Fault("database replaced while running" if replace else "database deleted while running")
    home = Home(root=mount.path, prefix="h")
    try:
        home.write_config("simulate_gpus: 2\n")
        home.up()
        first = home.cli_json("submit", "--hold", "--", "true")["id"]
        old = Path(mount.path, "old.db")
        if replace:
            src = sqlite3.connect(str(home.path("corral.db")))
            dst = sqlite3.connect(str(old))
            src.backup(dst)
            src.close()
            dst.close()
        a = gate_job(home, gates, f"del-{replace}", 0)
        wait_running(home, a)
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(str(home.path("corral.db")) + suffix)
            except FileNotFoundError:
                pass
        if replace:
            os.replace(old, home.path("corral.db"))
        answer = home.request("POST", "/v1/jobs", submit_body(home))
        if answer.status < 300:
            fault.acked_during += 1
        fault.answer_ok(answer, (503,), "submit after the database went")
        fault.reads_served = reads_ok(home, first)
        home.cli("down")
        res = home.cli("up")
        fault.cli_ok(res, "corral up on the changed store")
        if "--new-store" not in res.stderr:
            fault.bad_answers.append(f"corral up does not say how to recover: {res.stderr.strip()[:200]!r}")
        recovered = home.cli("up", "--json", "--new-store")
        fault.cli_ok(recovered, "corral up --new-store", succeed=True)
        if recovered.returncode == 0:
            nodes = home.request("GET", "/v1/nodes").json()["nodes"]
            if any(g.get("job") is not None for n in nodes for g in n["gpus"]):
                fault.notes.append("GPUs held after --new-store")
            new = home.cli_json("submit", "--hold", "--", "true")["id"]
            if new <= a:
                fault.notes.append(f"a new job got id {new}, not above the old jobs' ({a})")
        check_log(home, fault)
    finally:
        home.close()
    return fault


def emptied_while_stopped(mount: Mount, gates: Path, short: bool) -> Fault:
    fault = Fault("database emptied while stopped")
    home = Home(root=mount.path, prefix="h")
    try:
        home.write_config("simulate_gpus: 2\n")
        home.up()
        home.cli_json("submit", "--hold", "--", "true")
        home.cli("down")
        for suffix in ("-wal", "-shm"):
            Path(str(home.path("corral.db")) + suffix).unlink(missing_ok=True)
        os.truncate(home.path("corral.db"), 0)
        fault.cli_ok(home.cli("up"), "corral up on an emptied store")
        fault.cli_ok(home.cli("ps"), "corral ps on an emptied store")
    finally:
        home.close()
    return fault


def read_only_fs(mount: Mount, gates: Path, short: bool) -> Fault:
    fault = Fault("read-only file system")
    home = Home(root=mount.path, prefix="h")
    try:
        home.write_config("simulate_gpus: 2\n")
        home.up()
        job = home.cli_json("submit", "--hold", "--", "true")["id"]
        pid = home.daemon_pid()
        home.cli("down")
        wait_for(lambda: pid is None or not alive(pid), timeout=30)
        mount.remount("ro")
        try:
            fault.cli_ok(home.cli("ps"), "corral ps on a read-only file system")
            fault.cli_ok(home.cli("up"), "corral up on a read-only file system")
            fault.cli_ok(home.cli("submit", "--", "true"), "corral submit on a read-only file system")
        finally:
            mount.remount("rw")
        cleared = time.monotonic()
        res = home.cli("show", "--json", str(job))
        fault.cli_ok(res, "corral show after the file system is writable again", succeed=True)
        if res.returncode == 0:
            fault.freed_after = time.monotonic() - cleared
        else:
            fault.lost += 1
    finally:
        home.close()
    return fault


def check_log(home: Home, fault: Fault) -> None:
    if "Traceback" in home.daemon_log():
        fault.bad_answers.append("a traceback in daemon.log")


def run(short: bool) -> Result:
    result = Result("store")
    if not is_root():
        result.skipped = "needs root to mount a tmpfs"
        return result
    gates = Path(tempfile.mkdtemp(prefix="cxg", dir="/tmp"))
    faults: list[Fault] = []
    try:
        mount = Mount()
        try:
            faults.append(disk_full(mount, gates, short))
            faults.append(locked(mount, gates, short))
            faults.append(deleted(mount, gates, short, replace=False))
            faults.append(deleted(mount, gates, short, replace=True))
            faults.append(emptied_while_stopped(mount, gates, short))
        finally:
            mount.close()
        # A file system of its own: the kernel refuses to remount one read-only while a
        # file deleted from it is still held open somewhere (EBUSY).
        mount = Mount()
        try:
            faults.append(read_only_fs(mount, gates, short))
        finally:
            mount.close()
    finally:
        shutil.rmtree(gates, ignore_errors=True)
    result.figures["faults"] = len(faults)
    for f in faults:
        freed = f"freed {f.freed_after:.1f} s after" if f.freed_after is not None else "-"
        result.figures[f.name] = (f"acknowledged during {f.acked_during}, lost {f.lost}, exit codes lost "
                                  f"{f.codes_lost}, {freed}, reads {'served' if f.reads_served else 'FAILED'}, "
                                  f"bad answers {len(f.bad_answers)}")
        result.check(f.acked_during == 0, f"{f.name}: a submit was acknowledged during the fault")
        result.check(f.lost == 0, f"{f.name}: {f.lost} acknowledged jobs lost")
        result.check(f.codes_lost == 0, f"{f.name}: {f.codes_lost} exit codes lost")
        result.check(f.reads_served, f"{f.name}: reads were not served during the fault")
        for line in f.bad_answers + f.notes:
            result.failures.append(f"{f.name}: {line}")
    result.figures["acknowledged lost (all faults)"] = sum(f.lost + f.acked_during for f in faults)
    result.figures["exit codes lost (all faults)"] = sum(f.codes_lost for f in faults)
    return result
