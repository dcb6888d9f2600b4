"""A cheap ``/proc`` scanner: every process's parent, session, CPU time and RSS.

The daemon calls :func:`scan` every couple of seconds and groups the table into jobs
with :func:`job_trees`: what each running job uses when there is no cgroup to ask, and
which pids are a job's when the GPU driver reports per-process memory. Standard library
only, one read of ``/proc/PID/stat`` per process (psutil is several times slower for
this). Processes come and go while we read; one that vanishes is skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Clock ticks per second: the unit of utime/stime in ``/proc/PID/stat``.
CLK_TCK: int = os.sysconf("SC_CLK_TCK")
#: Bytes per page: the unit of rss in ``/proc/PID/stat``.
PAGE: int = os.sysconf("SC_PAGE_SIZE")

_READ_SIZE = 4096  # a stat line is ~300 bytes; comm is at most 64


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    sid: int
    state: str        # R, S, D, Z, T, ...
    cpu_ticks: int    # utime + stime, in CLK_TCK units
    rss: int          # bytes


@dataclass(frozen=True)
class TreeUsage:
    """What one job's processes use right now."""

    pids: tuple[int, ...]   # sorted
    rss: int                # bytes, summed over the tree (zombies count 0)
    cpu_ticks: int          # utime + stime summed over the tree's live (non-zombie) processes

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_ticks / CLK_TCK


EMPTY = TreeUsage((), 0, 0)


def read_proc(pid: int, proc: str = "/proc") -> ProcInfo | None:
    """``/proc/PID/stat`` parsed, or None when the process is gone or the line is unreadable."""
    try:
        fd = os.open(f"{proc}/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, _READ_SIZE)
        while len(data) % _READ_SIZE == 0 and data:  # longer than one read (only fakes are)
            more = os.read(fd, _READ_SIZE)
            if not more:
                break
            data += more
    except OSError:  # ESRCH: it exited between open and read
        return None
    finally:
        os.close(fd)
    return parse_stat(pid, data)


def parse_stat(pid: int, data: bytes) -> ProcInfo | None:
    """One ``stat`` line. The command name (field 2) is in parentheses and may itself hold
    spaces and ``)``, so the fields are split after the *last* ``)``."""
    end = data.rfind(b")")
    if end < 0:
        return None
    fields = data[end + 1:].split()
    # fields[0] is field 3 (state); field N is fields[N - 3].
    try:
        return ProcInfo(pid=pid, ppid=int(fields[1]), sid=int(fields[3]),
                        state=fields[0].decode("ascii", "replace"),
                        cpu_ticks=int(fields[11]) + int(fields[12]),
                        rss=max(0, int(fields[21])) * PAGE)
    except (IndexError, ValueError):
        return None


def scan(proc: str = "/proc") -> dict[int, ProcInfo]:
    """Every process, by pid; one read of its ``stat`` each."""
    table: dict[int, ProcInfo] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        info = read_proc(pid, proc)
        if info is not None:
            table[pid] = info
    return table


def job_trees(roots: dict[int, int], table: dict[int, ProcInfo]) -> dict[int, TreeUsage]:
    """Each job's processes and what they use: job id -> :class:`TreeUsage`.

    ``roots`` maps a job id to the job's main pid, a session leader (jobs start with
    ``setsid``, so its sid is its own pid). A process belongs to the job when its sid is
    the root pid, or when it descends (by the ppid chain) from the root or from any
    member of that session -- which catches children that called ``setsid`` themselves.
    Zombies are members with no RSS and no CPU time. A job whose root is not in the
    table gets an empty usage. Linear in the number of processes: the children and
    session maps are built once for all jobs.
    """
    children: dict[int, list[int]] = {}
    sessions: dict[int, list[int]] = {}
    for pid, info in table.items():
        if info.ppid != pid:
            children.setdefault(info.ppid, []).append(pid)
        sessions.setdefault(info.sid, []).append(pid)
    result: dict[int, TreeUsage] = {}
    for job, root in roots.items():
        if root not in table:
            result[job] = EMPTY
            continue
        members = {root}
        stack = [root]
        for pid in sessions.get(root, ()):
            if pid not in members:
                members.add(pid)
                stack.append(pid)
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in members:
                    members.add(child)
                    stack.append(child)
        rss = ticks = 0
        for pid in members:
            info = table[pid]
            if info.state != "Z":
                rss += info.rss
                ticks += info.cpu_ticks
        result[job] = TreeUsage(tuple(sorted(members)), rss, ticks)
    return result


def tagged(name: str, value: str, proc: str = "/proc") -> list[int]:
    """Processes whose environment holds ``name=value`` (those we may read: our own, or
    everyone's as root). A process that vanishes while we read is skipped."""
    marker = f"{name}={value}".encode()
    me = os.getpid()
    found = []
    try:
        names = os.listdir(proc)
    except OSError:
        return found
    for entry in names:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            fd = os.open(f"{proc}/{entry}/environ", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        except OSError:
            continue
        finally:
            os.close(fd)
        if marker in b"".join(chunks).split(b"\0"):
            found.append(int(entry))
    return found


def kill_tagged(name: str, value: str, proc: str = "/proc", rounds: int = 50) -> int:
    """SIGKILL every process tagged ``name=value`` until none is left (those forked
    meanwhile carry the tag too); how many were killed."""
    import signal
    import time

    killed: set[int] = set()
    for _ in range(rounds):
        pids = [p for p in tagged(name, value, proc) if (info := read_proc(p, proc)) is not None and info.state != "Z"]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    return len(killed)
