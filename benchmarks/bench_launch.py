#!/usr/bin/env python3
"""Where a short job's launch time goes: the launch path's parts, measured one by one.

Run it with the project's interpreter (``make bench`` runs bench_core.py; this one by hand)::

    .venv/bin/python benchmarks/bench_launch.py [--jobs 300] [--src PATH] [--dir DIR] [--json-out F]

``--src`` points at a checkout's ``src/`` (an older commit: ``git worktree add /tmp/old
COMMIT``); given twice, the table has a column for each, so the same script measures
before and after a change in one run. File creation on an ext4 without a journal (these
machines) is slow for a minute or more after many files were deleted (the allocator
skips recently freed inodes), so run it on a quiet machine and compare columns of one run. Every number
is per job, from ``--jobs`` trivial jobs (``/bin/true``) run one after another:

* **files**: creating a job's directory and files the way that code does (the inodes
  a job costs), on ``--dir`` (default: a directory under /tmp, the file system corral's
  home is on in the benchmarks) and on tmpfs (``/dev/shm``) for comparison;
* **fork of a supervisor** by the process that launches jobs (its size decides the cost:
  a fork of the daemon's package, or the small fresh launcher where the code has one);
* **supervisor + job CPU**: the real ``supervise()`` in a forked child, its and the job's
  CPU time from ``wait4``, for each way of holding a job: none (subreaper only), a cgroup
  v2 group without controllers, and the limits cgroup (root; v1 or v2 as the machine has);
* **cgroup operations** alone: create, move a process in, read its counters, kill, remove.

The daemon's own CPU per job (store transactions, scheduling, sampling) is measured by
``bench_core.py``'s batch run, which prints it beside task-spooler. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Runs in a child interpreter: measures one part, prints one JSON line.
CHILD = r'''
import json, os, signal, sys, time, types, resource
src, what, mode, n, root = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
sys.path.insert(0, src)
fresh = os.path.exists(os.path.join(src, "corral", "executors", "local", "launcher.py")) and \
    "_BOOT" in open(os.path.join(src, "corral", "executors", "local", "launcher.py")).read()
if fresh:          # as the fresh launcher loads them: without the package __init__ modules
    for name in ("corral", "corral.executors", "corral.executors.local"):
        m = types.ModuleType(name); m.__path__ = [os.path.join(src, *name.split("."))]; sys.modules[name] = m
    from corral.executors.local import launcher
else:              # as the launcher forked from the daemon had them
    import corral.executors.local.launcher as launcher
from corral.executors.local import supervisor as sup, cgroups
import gc
if fresh:
    gc.collect(); gc.freeze()

def jobfiles(d):
    if hasattr(sup, "open_state"):
        fd = sup.open_state(d)
    else:
        import fcntl
        sup.prepare_jobdir(d)
        fd = os.open(os.path.join(d, sup.LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd

def support_for(mode):
    name = "corral-benchlaunch"
    if mode == "cgroup":
        s, why = cgroups.detect(name)
        return s, cgroups.Limits(memory=1 << 30, cpu=1000, pids=4096).to_dict(), why
    if mode == "group":
        if not hasattr(cgroups, "detect_group"):
            return None, None, "this code has no cgroup v2 group without controllers"
        s, why = cgroups.detect_group(name)
        return s, cgroups.Limits().to_dict(), why
    return None, None, ""

out = {}
if what == "files":
    t0 = time.perf_counter()
    for i in range(n):
        d = os.path.join(root, str(i))
        fd = jobfiles(d)
        for name in (sup.STDOUT, sup.STDERR):
            os.close(os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        if hasattr(sup, "append_line"):
            sup.append_line(fd, b"pids 1 2 3\n"); sup.write_status(fd, b"{}")
        else:
            sup.write_atomic(os.path.join(d, sup.PIDS), b"1 2 3\n"); sup.write_atomic(os.path.join(d, sup.STATUS), b"{}")
        os.close(fd)
    out["ms"] = (time.perf_counter() - t0) / n * 1000
    out["inodes"] = sum(len(fs) + 1 for _, _, fs in os.walk(os.path.join(root, "0")))
elif what == "fork":
    t0 = time.perf_counter()
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    out["ms"] = (time.perf_counter() - t0) / n * 1000
    out["rss_kib"] = int([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS")][0])
elif what == "supervise":
    s, limits, why = support_for(mode)
    if mode != "none" and s is None:
        print(json.dumps({"skipped": why or "not available"})); sys.exit(0)
    if hasattr(sup, "load_prctl"):
        sup.load_prctl()
    signal.pthread_sigmask(signal.SIG_BLOCK, sup.HELD_SIGNALS)
    user = sys_ = 0.0
    t0 = time.perf_counter()
    for i in range(n):
        d = os.path.join(root, str(i))
        cg = {"support": s.to_dict(), "key": f"job-{i}", "limits": limits} if s else None
        fd = jobfiles(d)
        pid = os.fork()
        if pid == 0:
            sup.supervise(d, ["/bin/true"], {"PATH": "/usr/bin:/bin"}, "/tmp", None, 10.0, fd, signal.SIGTERM, cg)
        os.close(fd)
        _, _, ru = os.wait4(pid, 0)
        user += ru.ru_utime; sys_ += ru.ru_stime
    wall = (time.perf_counter() - t0) / n * 1000
    me = resource.getrusage(resource.RUSAGE_SELF)
    out.update(wall_ms=wall, supervisor_cpu_ms=(user + sys_) / n * 1000, launcher_cpu_ms=(me.ru_utime + me.ru_stime) / n * 1000)
    if s is not None:
        cgroups.remove_parent(s)
elif what == "cgroup":
    s, limits, why = support_for("cgroup")
    if s is None:
        print(json.dumps({"skipped": why})); sys.exit(0)
    parts = dict.fromkeys(("create", "move", "counters", "kill", "remove"), 0.0)
    lim = cgroups.Limits.from_dict(limits)
    for i in range(n):
        g = cgroups.JobCgroup(s, f"b{i}")
        t = time.perf_counter(); g.create(lim); parts["create"] += time.perf_counter() - t
        pid = os.fork()
        if pid == 0:
            g.attach(0)
            os._exit(0)
        os.waitpid(pid, 0)
        other = cgroups.JobCgroup(s, f"b{i}")
        t = time.perf_counter(); other.stats(); parts["counters"] += time.perf_counter() - t
        t = time.perf_counter(); other.kill(); parts["kill"] += time.perf_counter() - t
        t = time.perf_counter(); other.remove(); parts["remove"] += time.perf_counter() - t
    # Moving a process in (and back out), on its own: the children above also paid a fork.
    g = cgroups.JobCgroup(s, "bmove")
    g.create(lim)
    name = "tasks" if s.version == "v1" else "cgroup.procs"
    homes = [os.path.dirname(os.path.dirname(d)) for d in dict.fromkeys(g.paths.values())]
    me = str(os.getpid())
    t = time.perf_counter()
    for i in range(n):
        g.attach(os.getpid())
        for parent in homes:
            with open(os.path.join(parent, name), "w") as f:
                f.write(me)
    parts["move"] = (time.perf_counter() - t) / 2
    g.remove()
    out.update({k: v / n * 1000 for k, v in parts.items()})
    out["hierarchies"] = len(set(g.paths.values()))
    cgroups.remove_parent(s)
print(json.dumps(out))
'''


def child(python: str, src: str, what: str, mode: str, n: int, root: str) -> dict:
    flags = ["-I", "-S"] if "_BOOT" in Path(src, "corral/executors/local/launcher.py").read_text() else []
    res = subprocess.run([python, *flags, "-c", CHILD, src, what, mode, str(n), root],
                         capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        raise RuntimeError(f"{what} {mode} failed: {res.stderr.strip()[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure(python: str, src: str, jobs: int, where: str) -> tuple[dict, list[tuple[str, str]]]:
    """Every part for the code in ``src``: (numbers, table rows)."""
    def scratch(base: str) -> str:
        return tempfile.mkdtemp(prefix="bl", dir=base)

    results: dict = {}
    rows: list[tuple[str, str]] = []
    for label, base in ((f"files on {where}", where), ("files on tmpfs (/dev/shm)", "/dev/shm")):
        d = scratch(base)
        try:
            r = child(python, src, "files", "-", jobs, d)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        results[label] = r
        rows.append((f"{label} (inodes per job)", f"{r['ms']:.2f} ms ({r['inodes']})"))
    r = child(python, src, "fork", "-", jobs, "/tmp")
    results["fork"] = r
    rows.append(("fork + exit of a supervisor (the launcher's resident size)", f"{r['ms']:.2f} ms ({r['rss_kib'] / 1024:.1f} MiB)"))
    for mode in ("none", "group", "cgroup"):
        d = scratch("/dev/shm")
        try:
            r = child(python, src, "supervise", mode, jobs, d)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        results[f"supervise {mode}"] = r
        what = {"none": "no group (subreaper)", "group": "cgroup v2 group, no controllers",
                "cgroup": "limits cgroup"}[mode]
        if "skipped" in r:
            rows.append((f"supervisor + `true`, {what}: CPU, launcher's CPU, wall", "n/a"))
        else:
            rows.append((f"supervisor + `true`, {what}: CPU, launcher's CPU, wall",
                         f"{r['supervisor_cpu_ms']:.2f}, {r['launcher_cpu_ms']:.2f}, {r['wall_ms']:.2f} ms"))
    r = child(python, src, "cgroup", "-", jobs, "/tmp")
    results["cgroup ops"] = r
    label = "cgroup operations: create / move in / counters / kill / remove (hierarchies)"
    if "skipped" in r:
        rows.append((label, "n/a"))
    else:
        rows.append((label, " / ".join(f"{r[k]:.2f}" for k in ("create", "move", "counters", "kill", "remove"))
                     + f" ms ({r['hierarchies']})"))
    return results, rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=300, help="jobs per measurement (default 300)")
    ap.add_argument("--src", action="append", default=[],
                    help="the src/ of a checkout to measure (repeatable: one column each, measured one "
                         "after the other; default this checkout's)")
    ap.add_argument("--dir", default="/tmp", help="where job directories are made (default /tmp)")
    ap.add_argument("--json-out", metavar="PATH", help="write the numbers as JSON")
    args = ap.parse_args(argv)
    srcs = args.src or [str(REPO / "src")]
    columns = {src: measure(sys.executable, src, args.jobs, args.dir) for src in srcs}
    labels = [label for label, _ in next(iter(columns.values()))[1]]
    width = max(len(a) for a in labels)
    heads = [os.path.basename(os.path.dirname(os.path.abspath(src))) or src for src in srcs]
    print(f"launch path, per job ({args.jobs} jobs each)\n")
    print("| " + "part".ljust(width) + " | " + " | ".join(heads) + " |")
    print("|" + "-" * (width + 2) + "|" + "|".join("-" * (len(h) + 2) for h in heads) + "|")
    for i, label in enumerate(labels):
        print("| " + label.ljust(width) + " | " + " | ".join(columns[src][1][i][1] for src in srcs) + " |")
    print("\n" + "\n".join(f"{h}: {src}" for h, src in zip(heads, srcs)))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({src: columns[src][0] for src in srcs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
