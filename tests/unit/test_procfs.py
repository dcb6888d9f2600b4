"""The /proc scanner: parsing stat lines, scanning a fake /proc, grouping processes into
job trees (by session and by parent chain), and one run against the real /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from corral.executors.local.procfs import (
    CLK_TCK, PAGE, ProcInfo, TreeUsage, job_trees, parse_stat, read_proc, scan,
)


def stat_line(pid: int, comm: str, state: str, ppid: int, sid: int, *, utime: int = 0,
              stime: int = 0, rss_pages: int = 0) -> str:
    """A /proc/PID/stat line as Linux writes it (52 fields)."""
    fields = [str(pid), f"({comm})", state, str(ppid), str(sid), str(sid), "34817", str(sid),
              "4194560", "1841", "0", "3", "0", str(utime), str(stime), "7", "2", "20", "0", "1",
              "0", "8714520", "27574272", str(rss_pages), "18446744073709551615",
              "94244423573504", "94244424295757", "140726373236080", "0", "0", "0", "65536",
              "3686404", "1266761467", "1", "0", "0", "17", "3", "0", "0", "0", "0", "0",
              "94244424521008", "94244424555604", "94244448317440", "140726373240543",
              "140726373240554", "140726373240554", "140726373244910", "0"]
    return " ".join(fields) + "\n"


class FakeProc:
    def __init__(self, root):
        self.root = root
        root.mkdir(exist_ok=True)
        (root / "self").mkdir()       # non-numeric entries are ignored
        (root / "meminfo").write_text("MemTotal: 1 kB\n")

    def add(self, pid, comm="python3", state="S", ppid=1, sid=None, **kw):
        d = self.root / str(pid)
        d.mkdir()
        (d / "stat").write_text(stat_line(pid, comm, state, ppid, pid if sid is None else sid, **kw))

    def __str__(self):
        return str(self.root)


@pytest.fixture
def fake(tmp_path):
    return FakeProc(tmp_path / "proc")


# Parsing -------------------------------------------------------------------------------------

def test_read_proc_fields(fake):
    fake.add(4242, "train.py", "R", ppid=100, sid=4000, utime=250, stime=50, rss_pages=1000)
    info = read_proc(4242, str(fake))
    assert info == ProcInfo(pid=4242, ppid=100, sid=4000, state="R", cpu_ticks=300, rss=1000 * PAGE)


def test_command_name_with_spaces_and_parens(fake):
    fake.add(77, "my (weird) cmd", "S", ppid=5, sid=5, utime=3, stime=4, rss_pages=9)
    info = read_proc(77, str(fake))
    assert (info.ppid, info.sid, info.state, info.cpu_ticks, info.rss) == (5, 5, "S", 7, 9 * PAGE)
    assert parse_stat(1, b"1 ()) ) R 0 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 2 0").cpu_ticks == 11


def test_unreadable_lines_and_vanished_processes(fake):
    assert read_proc(12345, str(fake)) is None           # no such process
    assert parse_stat(1, b"garbage") is None
    assert parse_stat(1, b"1 (x) R 0 1") is None         # truncated
    assert parse_stat(1, b"1 (x) R zero 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 2 0") is None
    (fake.root / "55").mkdir()                            # exited between listdir and open
    fake.add(56)
    assert set(scan(str(fake))) == {56}


def test_long_line_is_read_whole(fake):
    fake.add(9, "x" * 5000, "S", ppid=1, sid=9, utime=1, stime=2, rss_pages=3)
    assert read_proc(9, str(fake)).cpu_ticks == 3


def test_scan_missing_proc(tmp_path):
    assert scan(str(tmp_path / "nothing")) == {}


# Job trees ------------------------------------------------------------------------------------

@pytest.fixture
def tree(fake):
    """Two jobs and some bystanders:

    job 1: root 100 (session 100) -> 101 -> 102 (grandchild); 103 in session 100 whose
           parent is init (re-parented after its parent exited); 104 a zombie child;
           105 a child of 101 that called setsid (session 105) -> 106 its child.
    job 2: root 200 -> 201.
    bystanders: 1 (init), 300 in its own session, child 301 of 300.
    """
    fake.add(1, "systemd", "S", ppid=0, sid=1, utime=10, rss_pages=100)
    fake.add(100, "sh", "S", ppid=1, sid=100, utime=1, stime=1, rss_pages=10)
    fake.add(101, "python3", "R", ppid=100, sid=100, utime=100, stime=20, rss_pages=1000)
    fake.add(102, "data loader", "S", ppid=101, sid=100, utime=5, rss_pages=200)
    fake.add(103, "orphan", "S", ppid=1, sid=100, utime=2, rss_pages=50)
    fake.add(104, "defunct", "Z", ppid=100, sid=100, utime=9, rss_pages=0)
    fake.add(105, "my (weird) cmd", "S", ppid=101, sid=105, utime=3, rss_pages=30)
    fake.add(106, "worker", "S", ppid=105, sid=105, utime=4, rss_pages=40)
    fake.add(200, "bash", "S", ppid=1, sid=200, rss_pages=5)
    fake.add(201, "sleep", "S", ppid=200, sid=200, stime=1, rss_pages=6)
    fake.add(300, "sshd", "S", ppid=1, sid=300, rss_pages=70)
    fake.add(301, "bash", "S", ppid=300, sid=300, rss_pages=80)
    return scan(str(fake))


def test_scan_reads_every_process(tree):
    assert set(tree) == {1, 100, 101, 102, 103, 104, 105, 106, 200, 201, 300, 301}
    assert tree[105].ppid == 101 and tree[105].sid == 105


def test_job_trees_membership(tree):
    usage = job_trees({1: 100, 2: 200}, tree)
    job1 = usage[1]
    # 103: by session; 102: by parent chain; 105/106: setsid'ed descendants; 104: zombie.
    assert job1.pids == (100, 101, 102, 103, 104, 105, 106)
    assert job1.rss == (10 + 1000 + 200 + 50 + 0 + 30 + 40) * PAGE
    assert job1.cpu_ticks == 2 + 120 + 5 + 2 + 3 + 4       # the zombie's 9 ticks are not counted
    assert job1.cpu_seconds == pytest.approx(136 / CLK_TCK)
    assert usage[2] == TreeUsage((200, 201), 11 * PAGE, 1)


def test_descendants_of_setsid_session_member_outside_ppid_chain(fake):
    # 501 is in the job's session but re-parented to init; its child 502 called setsid.
    fake.add(500, "sh", ppid=1, sid=500)
    fake.add(501, "daemonized", ppid=1, sid=500)
    fake.add(502, "escaped", ppid=501, sid=502, rss_pages=7)
    fake.add(503, "unrelated", ppid=1, sid=502)   # same sid as 502 but not a descendant
    usage = job_trees({9: 500}, scan(str(fake)))[9]
    assert usage.pids == (500, 501, 502)


def test_zombie_rss_is_zero_even_if_reported(fake):
    fake.add(600, "sh", ppid=1, sid=600)
    fake.add(601, "dead", "Z", ppid=600, sid=600, rss_pages=99, utime=5)
    usage = job_trees({1: 600}, scan(str(fake)))[1]
    assert usage.pids == (600, 601) and usage.rss == 0 and usage.cpu_ticks == 0


def test_root_not_in_table(tree):
    usage = job_trees({1: 100, 7: 999}, tree)
    assert usage[7] == TreeUsage((), 0, 0)
    assert usage[7].cpu_seconds == 0.0
    assert job_trees({}, tree) == {}


def test_vanished_root_with_live_children(tree):
    del tree[100]   # the root exited; its children are still in its session
    usage = job_trees({1: 100}, tree)
    assert usage[1] == TreeUsage((), 0, 0)


def test_process_with_itself_as_parent_does_not_loop():
    table = {5: ProcInfo(5, 5, 5, "S", 1, PAGE), 6: ProcInfo(6, 5, 5, "S", 1, PAGE)}
    assert job_trees({1: 5}, table)[1] == TreeUsage((5, 6), 2 * PAGE, 2)


def test_job_trees_is_linear():
    """10 000 processes in 1 000 jobs: a quadratic walk would be ~10^7 steps."""
    table = {}
    roots = {}
    pid = 1000
    for job in range(1000):
        root = pid
        roots[job] = root
        table[root] = ProcInfo(root, 1, root, "S", 1, PAGE)
        for k in range(9):
            table[root + 1 + k] = ProcInfo(root + 1 + k, root + k, root, "S", 1, PAGE)
        pid += 10
    start = time.perf_counter()
    usage = job_trees(roots, table)
    elapsed = time.perf_counter() - start
    assert all(len(u.pids) == 10 and u.cpu_ticks == 10 for u in usage.values())
    assert elapsed < 1.0


# The real /proc -------------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_real_proc_finds_shell_and_both_sleeps():
    # "; wait" keeps a shell that execs its last command (bash) a shell, like dash.
    job = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30; wait"], start_new_session=True)

    def comm(pid):
        try:
            with open(f"/proc/{pid}/comm") as f:
                return f.read().strip()
        except OSError:
            return None

    try:
        deadline = time.monotonic() + 10
        while True:  # until both children have exec'd sleep
            table = scan()
            usage = job_trees({1: job.pid}, table)[1]
            sleeps = [p for p in usage.pids if p != job.pid and comm(p) == "sleep"]
            if len(sleeps) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert len(sleeps) == 2, usage
        assert usage.pids == tuple(sorted([job.pid, *sleeps]))
        assert comm(job.pid) == "sh"
        assert table[job.pid].sid == job.pid
        assert all(table[p].sid == job.pid and table[p].ppid == job.pid for p in sleeps)
        assert usage.rss > 0
        assert usage.rss == sum(table[p].rss for p in usage.pids)
        assert usage.cpu_ticks >= 0
        assert os.getpid() in table and os.getpid() not in usage.pids
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_real_scan_reads_this_process():
    me = read_proc(os.getpid())
    assert me is not None and me.ppid == os.getppid() and me.sid == os.getsid(0)
    assert me.state in "RSD" and me.rss > 0 and me.cpu_ticks > 0
