"""Per-job cgroups against a FAKE cgroup tree: regular files in tmp_path stand in for cgroupfs.

Covers detection (v1 separate and co-mounted, nested own paths, v2 with subtree_control,
failures with their reasons), the exact values create() writes, stats() parsing, the
plain-data round trips and name validation. The real kernel is exercised by
tests/system/test_cgroups_real.py.
"""

from __future__ import annotations

import json
import os

import pytest

from corral.executors.local import cgroups
from corral.executors.local.cgroups import (
    CgroupError,
    CgroupStats,
    CgroupSupport,
    JobCgroup,
    Limits,
    cpu_quota_us,
    detect,
    parse_kv,
    remove_parent,
)

MiB = 1 << 20
V1_UNLIMITED_TEXT = "9223372036854771712\n"


# --------------------------------------------------------------------------- fake trees


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def read(path) -> str:
    return path.read_text()


def v1_tree(tmp_path, *, comount: bool = False, owns: dict[str, str] | None = None) -> dict:
    """A v1 machine like ours: one mount per controller (or cpu,cpuacct together), a
    controller-less cgroup2 at unified/, name=systemd; own dirs made for ``owns``."""
    cg = tmp_path / "cg"
    owns = owns or {}
    groups = [("memory",), ("cpu", "cpuacct") if comount else ("cpu",)]
    if not comount:
        groups.append(("cpuacct",))
    groups += [("pids",), ("devices",), ("freezer",)]
    mounts = [f"tmpfs {cg} tmpfs rw,relatime,mode=755 0 0"]
    self_lines = []
    for i, group in enumerate(groups, start=1):
        joined = ",".join(group)
        point = cg / joined
        own = owns.get(group[0], "/")
        (point / own.lstrip("/")).mkdir(parents=True, exist_ok=True)
        mounts.append(f"cgroup {point} cgroup rw,nosuid,relatime,{joined} 0 0")
        self_lines.append(f"{i}:{joined}:{own}")
    mounts.append(f"cgroup {cg}/systemd cgroup rw,relatime,name=systemd 0 0")
    self_lines.append(f"{len(groups) + 1}:name=systemd:/")
    write(cg / "unified" / "cgroup.controllers", "hugetlb\n")
    mounts.append(f"cgroup2 {cg}/unified cgroup2 rw,relatime 0 0")
    self_lines.append("0::/")
    write(tmp_path / "mounts", "\n".join(mounts) + "\n")
    write(tmp_path / "self_cgroup", "\n".join(reversed(self_lines)) + "\n")
    return {"root": str(cg), "mounts": str(tmp_path / "mounts"), "self_cgroup": str(tmp_path / "self_cgroup")}


def v2_tree(tmp_path, *, own: str = "/system.slice/corral.service", available="cpu memory pids") -> dict:
    cg = tmp_path / "cg"
    write(cg / "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    write(cg / "cgroup.subtree_control", "cpu memory pids\n")
    own_dir = cg / own.lstrip("/")
    write(own_dir / "cgroup.controllers", available + "\n")
    if own != "/":
        write(own_dir / "cgroup.subtree_control", "")
    write(tmp_path / "mounts", f"cgroup2 {cg} cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n")
    write(tmp_path / "self_cgroup", f"0::{own}\n")
    return {"root": str(cg), "mounts": str(tmp_path / "mounts"), "self_cgroup": str(tmp_path / "self_cgroup")}


def detected(tree: dict, name: str = "corral-ab12") -> CgroupSupport:
    support, reason = detect(name, **tree)
    assert support is not None, reason
    assert reason == ""
    return support


# --------------------------------------------------------------------------- detection: v1


def test_v1_separate_mounts(tmp_path):
    tree = v1_tree(tmp_path)
    support = detected(tree)
    cg = tmp_path / "cg"
    assert support.version == "v1"
    assert support.controllers == ("cpu", "cpuacct", "devices", "memory", "pids")
    assert support.parents == {c: str(cg / c / "corral-ab12") for c in support.controllers}
    assert all(os.path.isdir(d) for d in support.parents.values())
    assert support.describe() == "cgroup v1 (cpu, cpuacct, devices, memory, pids)"


def test_v1_comounted_cpu_cpuacct_share_one_dir(tmp_path):
    support = detected(v1_tree(tmp_path, comount=True))
    shared = str(tmp_path / "cg" / "cpu,cpuacct" / "corral-ab12")
    assert support.parents["cpu"] == support.parents["cpuacct"] == shared
    job = JobCgroup(support, "job-1")
    assert job.paths["cpu"] == job.paths["cpuacct"] == shared + "/job-1"
    job.create(Limits(cpu=250))
    assert read(tmp_path / "cg" / "cpu,cpuacct" / "corral-ab12" / "job-1" / "cpu.cfs_quota_us") == "25000"
    job.attach()  # one write per distinct dir
    assert read(tmp_path / "cg" / "cpu,cpuacct" / "corral-ab12" / "job-1" / "tasks") == "0"


def test_v1_parent_goes_under_our_own_nested_cgroup(tmp_path):
    tree = v1_tree(tmp_path, owns={"memory": "/process_api/438c8c07", "pids": "/user.slice/x"})
    support = detected(tree)
    cg = tmp_path / "cg"
    assert support.parents["memory"] == str(cg / "memory/process_api/438c8c07/corral-ab12")
    assert support.parents["pids"] == str(cg / "pids/user.slice/x/corral-ab12")
    assert support.parents["cpu"] == str(cg / "cpu/corral-ab12")


def test_v1_subtree_mount_falls_back_to_the_mount_point(tmp_path):
    # a container mounts only its own sub-tree: /docker/<id> does not exist under the mount
    tree = v1_tree(tmp_path)
    text = read(tmp_path / "self_cgroup").replace(":memory:/", ":memory:/docker/abc123")
    write(tmp_path / "self_cgroup", text)
    support = detected(tree)
    assert support.parents["memory"] == str(tmp_path / "cg" / "memory" / "corral-ab12")


def test_detect_reuses_existing_parents(tmp_path):
    tree = v1_tree(tmp_path)
    first = detected(tree)
    assert detected(tree) == first


def test_mount_points_are_unescaped_and_prefer_root(tmp_path):
    tree = v1_tree(tmp_path)
    spaced = tmp_path / "cg root" / "memory"
    spaced.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere" / "memory"
    elsewhere.mkdir(parents=True)
    lines = read(tmp_path / "mounts").splitlines()
    lines = [line for line in lines if not line.startswith(f"cgroup {tmp_path}/cg/memory ")]
    lines.insert(0, f"cgroup {elsewhere} cgroup rw,memory 0 0")  # first, but not under root
    lines.insert(1, f"cgroup {str(spaced).replace(' ', chr(92) + '040')} cgroup rw,memory 0 0")
    write(tmp_path / "mounts", "\n".join(lines) + "\n")
    tree["root"] = str(tmp_path)  # both cg/ and "cg root/" are under it, elsewhere/ too...
    support = detected(tree)
    assert support.parents["memory"] == str(elsewhere / "corral-ab12")  # ...so the first wins
    tree["root"] = str(tmp_path / "cg root")  # only the spaced one is under this root
    support = detected(tree)
    assert support.parents["memory"] == str(spaced / "corral-ab12")


# --------------------------------------------------------------------------- detection: v2


def test_v2_enables_controllers_in_own_and_parent(tmp_path):
    support = detected(v2_tree(tmp_path))
    own = tmp_path / "cg" / "system.slice" / "corral.service"
    assert support.version == "v2"
    assert support.parents == {"unified": str(own / "corral-ab12")}
    assert support.controllers == ("cpu", "memory", "pids")
    assert support.describe() == "cgroup v2 (cpu, memory, pids)"
    assert read(own / "cgroup.subtree_control") == "+memory +cpu +pids"
    assert read(own / "corral-ab12" / "cgroup.subtree_control") == "+memory +cpu +pids"


def test_v2_only_what_our_cgroup_offers_and_nothing_already_enabled(tmp_path):
    tree = v2_tree(tmp_path, available="memory io")
    own = tmp_path / "cg" / "system.slice" / "corral.service"
    write(own / "cgroup.subtree_control", "memory\n")  # already on: not written again
    support = detected(tree)
    assert support.controllers == ("memory",)
    assert read(own / "cgroup.subtree_control") == "memory\n"


def test_v2_at_the_root_cgroup(tmp_path):
    support = detected(v2_tree(tmp_path, own="/"))
    assert support.parents == {"unified": str(tmp_path / "cg" / "corral-ab12")}
    assert read(tmp_path / "cg" / "corral-ab12" / "cgroup.subtree_control") == "+memory +cpu +pids"


def test_v2_preferred_over_v1(tmp_path):
    tree = v1_tree(tmp_path)
    unified = tmp_path / "cg" / "unified"
    write(unified / "cgroup.controllers", "memory pids\n")
    support = detected(tree)
    assert support.version == "v2"
    assert support.parents == {"unified": str(unified / "corral-ab12")}


def test_v2_busy_own_cgroup_is_unusable_with_a_reason(tmp_path, monkeypatch):
    tree = v2_tree(tmp_path)

    def busy(path, value, append=False):
        raise CgroupError(f"cannot write {value} to {path}: Device or resource busy")

    monkeypatch.setattr(cgroups, "_write", busy)
    support, reason = detect("corral-ab12", **tree)
    assert support is None
    assert reason.startswith("cgroup v2 unusable: cannot write +memory")
    assert "cgroup.subtree_control: Device or resource busy" in reason
    assert "has processes" in reason and "\n" not in reason
    assert not (tmp_path / "cg" / "system.slice" / "corral.service" / "corral-ab12").exists()


def test_v2_unwritable_subtree_control(tmp_path):
    tree = v2_tree(tmp_path)
    own = tmp_path / "cg" / "system.slice" / "corral.service"
    (own / "cgroup.subtree_control").unlink()
    (own / "cgroup.subtree_control").mkdir()  # cannot be written
    support, reason = detect("corral-ab12", **tree)
    assert support is None
    assert reason.startswith("cgroup v2 unusable: cannot write +memory")
    assert str(own / "cgroup.subtree_control") in reason


# --------------------------------------------------------------------------- detection: failures


def test_no_memory_controller(tmp_path):
    tree = v1_tree(tmp_path)
    lines = [line for line in read(tmp_path / "mounts").splitlines() if ",memory " not in line]
    write(tmp_path / "mounts", "\n".join(lines) + "\n")
    support, reason = detect("corral-ab12", **tree)
    assert support is None
    assert "memory" in reason and "\n" not in reason


def test_no_cgroups_at_all(tmp_path):
    write(tmp_path / "mounts", "/dev/vda / ext4 rw 0 0\nproc /proc proc rw 0 0\n")
    write(tmp_path / "self_cgroup", "0::/\n")
    support, reason = detect("corral-ab12", root=str(tmp_path), mounts=str(tmp_path / "mounts"),
                             self_cgroup=str(tmp_path / "self_cgroup"))
    assert support is None
    assert "no cgroup hierarchy" in reason


def test_unreadable_proc_files(tmp_path):
    support, reason = detect("corral-ab12", root=str(tmp_path), mounts=str(tmp_path / "nope"),
                             self_cgroup=str(tmp_path / "nope"))
    assert support is None
    assert reason.startswith("cannot read cgroup information")


def test_parent_cannot_be_created(tmp_path):
    tree = v1_tree(tmp_path, owns={"memory": "/x"})
    blocker = tmp_path / "cg" / "memory" / "x" / "corral-ab12"
    blocker.write_text("a regular file where the parent dir should go")
    support, reason = detect("corral-ab12", **tree)
    assert support is None
    assert reason.startswith(f"no cgroup rights: cannot create {blocker}: ")
    assert "\n" not in reason


def test_permission_denied_reason(tmp_path, monkeypatch):
    tree = v1_tree(tmp_path)

    def denied(path, mode=0o777):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cgroups.os, "mkdir", denied)
    support, reason = detect("corral-1", **tree)
    assert support is None
    assert reason == f"no cgroup rights: cannot create {tmp_path}/cg/memory/corral-1: Permission denied"


def test_optional_controller_that_cannot_be_created_is_left_out(tmp_path):
    tree = v1_tree(tmp_path)
    (tmp_path / "cg" / "devices" / "corral-ab12").write_text("blocker")
    support = detected(tree)
    assert "devices" not in support.controllers and "devices" not in support.parents
    assert "memory" in support.controllers


@pytest.mark.parametrize("name", ["", "a/b", "..", ".", "a b", "job\n", "ünï"])
def test_bad_names_and_keys(tmp_path, name):
    with pytest.raises(ValueError):
        detect(name, **v1_tree(tmp_path))
    support = CgroupSupport("v2", {"unified": str(tmp_path)}, ("memory",))
    with pytest.raises(ValueError):
        JobCgroup(support, name)


def test_good_key_makes_paths_without_io(tmp_path):
    support = CgroupSupport("v1", {"memory": "/m/p", "pids": "/p/p"}, ("memory", "pids"))
    job = JobCgroup(support, "job-42.retry_1")
    assert job.paths == {"memory": "/m/p/job-42.retry_1", "pids": "/p/p/job-42.retry_1"}
    assert not job.exists()


# --------------------------------------------------------------------------- create()


def test_create_v1_writes_exact_values(tmp_path):
    support = detected(v1_tree(tmp_path))
    job = JobCgroup(support, "job-42")
    mem = tmp_path / "cg" / "memory" / "corral-ab12" / "job-42"
    write(mem / "memory.memsw.limit_in_bytes", V1_UNLIMITED_TEXT)  # stale dir, memsw exists
    job.create(Limits(memory=256 * MiB, cpu=500, pids=8, deny_devices=("c 195:1", "c 195:2 rw")))
    cg = tmp_path / "cg"
    assert read(mem / "memory.limit_in_bytes") == str(256 * MiB)
    assert read(mem / "memory.memsw.limit_in_bytes") == str(256 * MiB)
    assert read(cg / "cpu/corral-ab12/job-42/cpu.cfs_period_us") == "100000"
    assert read(cg / "cpu/corral-ab12/job-42/cpu.cfs_quota_us") == "50000"
    assert read(cg / "pids/corral-ab12/job-42/pids.max") == "8"
    assert read(cg / "devices/corral-ab12/job-42/devices.deny") == "c 195:1 rwm\nc 195:2 rw\n"
    assert os.path.isdir(cg / "cpuacct/corral-ab12/job-42")
    assert job.exists()


def test_create_v1_without_limits_and_without_memsw(tmp_path):
    support = detected(v1_tree(tmp_path))
    job = JobCgroup(support, "job-1")
    job.create(Limits())
    cg = tmp_path / "cg"
    assert read(cg / "memory/corral-ab12/job-1/memory.limit_in_bytes") == "-1"
    assert not (cg / "memory/corral-ab12/job-1/memory.memsw.limit_in_bytes").exists()
    # Hierarchies with nothing to hold for this job are left out (a mkdir, a move and an
    # rmdir each); memory (which holds the processes) and cpuacct (CPU time) stay.
    for idle in ("cpu", "pids", "devices"):
        assert not (cg / f"{idle}/corral-ab12/job-1").exists(), idle
    assert os.path.isdir(cg / "cpuacct/corral-ab12/job-1")
    assert set(job.paths) == {"memory", "cpuacct"}


def test_create_v2_writes_exact_values(tmp_path):
    support = detected(v2_tree(tmp_path))
    job = JobCgroup(support, "job-7")
    d = tmp_path / "cg/system.slice/corral.service/corral-ab12/job-7"
    write(d / "memory.swap.max", "max\n")
    write(d / "memory.oom.group", "0\n")
    job.create(Limits(memory=64 * MiB, cpu=500, pids=8, deny_devices=("c 195:1",)))
    assert job.paths == {"unified": str(d)}
    assert read(d / "memory.max") == str(64 * MiB)
    assert read(d / "memory.swap.max") == "0"
    assert read(d / "memory.oom.group") == "1"
    assert read(d / "cpu.max") == "50000 100000"
    assert read(d / "pids.max") == "8"
    assert not (d / "devices.deny").exists()  # v2: device rules are ignored


def test_create_v2_unlimited(tmp_path):
    support = detected(v2_tree(tmp_path))
    d = tmp_path / "cg/system.slice/corral.service/corral-ab12/job-7"
    JobCgroup(support, "job-7").create(Limits())
    assert read(d / "memory.max") == "max"
    assert read(d / "cpu.max") == "max 100000"
    assert read(d / "pids.max") == "max"


def test_limits_of_missing_controllers_are_not_written(tmp_path):
    support = CgroupSupport("v1", {"memory": str(tmp_path / "m")}, ("memory",))
    (tmp_path / "m").mkdir()
    JobCgroup(support, "j").create(Limits(memory=MiB, cpu=100, pids=3, deny_devices=("c 1:1",)))
    assert sorted(os.listdir(tmp_path / "m" / "j")) == ["memory.limit_in_bytes"]


def test_create_failure_removes_what_it_made(tmp_path, monkeypatch):
    support = detected(v1_tree(tmp_path))
    job = JobCgroup(support, "job-1")
    path = tmp_path / "cg/memory/corral-ab12/job-1/memory.limit_in_bytes"

    def fail(p, value, append=False):
        raise CgroupError(f"cannot write {value} to {p}: Device or resource busy")

    monkeypatch.setattr(cgroups, "_write", fail)
    with pytest.raises(CgroupError) as info:
        job.create(Limits(memory=2 * 1024 * MiB))
    assert str(info.value) == f"cannot write 2147483648 to {path}: Device or resource busy"
    assert not job.exists()


def test_create_failure_to_mkdir(tmp_path):
    support = CgroupSupport("v1", {"memory": str(tmp_path / "missing-parent")}, ("memory",))
    with pytest.raises(CgroupError, match=r"^cannot create .*missing-parent/j: No such file"):
        JobCgroup(support, "j").create(Limits(memory=MiB))


def test_write_error_message_is_one_line(tmp_path):
    (tmp_path / "devices.deny").mkdir()
    with pytest.raises(CgroupError) as info:
        cgroups._write(str(tmp_path / "devices.deny"), "c 195:1 rwm\n", append=True)
    assert str(info.value) == f"cannot write c 195:1 rwm to {tmp_path}/devices.deny: Is a directory"


@pytest.mark.parametrize(("millicores", "quota"), [(1000, 100000), (500, 50000), (2500, 250000), (1, 1000)])
def test_cpu_quota(millicores, quota):
    assert cpu_quota_us(millicores) == quota


# --------------------------------------------------------------------------- stats()


def test_stats_v1(tmp_path):
    support = detected(v1_tree(tmp_path))
    job = JobCgroup(support, "job-1")
    job.create(Limits(cpu=1000, pids=64))
    cg = tmp_path / "cg"
    mem = cg / "memory/corral-ab12/job-1"
    write(mem / "memory.usage_in_bytes", f"{100 * MiB}\n")
    write(mem / "memory.stat", f"cache 5\ninactive_file 999\ntotal_cache 7\ntotal_inactive_file {30 * MiB}\n")
    write(mem / "memory.max_usage_in_bytes", f"{120 * MiB}\n")
    write(mem / "memory.limit_in_bytes", V1_UNLIMITED_TEXT)
    write(mem / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    write(cg / "cpuacct/corral-ab12/job-1/cpuacct.usage", "123456789\n")
    write(cg / "cpu/corral-ab12/job-1/cpu.stat", "nr_periods 10\nnr_throttled 4\nthrottled_time 5\n")
    write(cg / "pids/corral-ab12/job-1/pids.current", "3\n")
    stats = job.stats()
    assert stats == CgroupStats(
        memory=70 * MiB, memory_peak=120 * MiB, memory_limit=None, cpu_usage_ns=123456789,
        nr_throttled=4, oom_kills=2, pids=3,
    )
    write(mem / "memory.limit_in_bytes", f"{64 * MiB}\n")
    write(mem / "memory.stat", f"total_inactive_file {200 * MiB}\n")
    stats = job.stats()
    assert stats.memory_limit == 64 * MiB
    assert stats.memory == 0  # floor
    assert json.loads(json.dumps(stats.to_dict()))["memory_limit"] == 64 * MiB


def test_stats_v1_missing_files_are_none(tmp_path):
    support = detected(v1_tree(tmp_path))
    job = JobCgroup(support, "job-1")
    assert job.stats() == CgroupStats(None, None, None, None, None, 0, None)  # no dirs at all
    job.create(Limits())
    write(tmp_path / "cg/cpu/corral-ab12/job-1/cpu.stat", "nr_periods 0\n")  # no nr_throttled
    write(tmp_path / "cg/memory/corral-ab12/job-1/memory.usage_in_bytes", "garbage\n")
    stats = job.stats()
    assert stats.memory is None and stats.nr_throttled is None and stats.oom_kills == 0
    assert stats.memory_limit is None  # the "-1" create() wrote into the fake tree


def test_stats_v2(tmp_path):
    support = detected(v2_tree(tmp_path))
    job = JobCgroup(support, "job-7")
    job.create(Limits(memory=64 * MiB))
    d = tmp_path / "cg/system.slice/corral.service/corral-ab12/job-7"
    write(d / "memory.current", f"{50 * MiB}\n")
    write(d / "memory.stat", f"anon 1\nfile 2\ninactive_file {10 * MiB}\nactive_file 3\n")
    write(d / "memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")
    write(d / "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 9\nnr_throttled 7\n")
    write(d / "pids.current", "2\n")
    stats = job.stats()
    assert stats == CgroupStats(
        memory=40 * MiB, memory_peak=None, memory_limit=64 * MiB, cpu_usage_ns=1_500_000,
        nr_throttled=7, oom_kills=1, pids=2,
    )
    write(d / "memory.peak", f"{60 * MiB}\n")
    write(d / "memory.max", "max\n")
    stats = job.stats()
    assert stats.memory_peak == 60 * MiB and stats.memory_limit is None


def test_stats_v2_missing_files_are_none(tmp_path):
    support = detected(v2_tree(tmp_path))
    assert JobCgroup(support, "gone").stats() == CgroupStats(None, None, None, None, None, 0, None)


def test_parse_kv():
    assert parse_kv("a 1\nb 2\n\nbad line here\nc x\nd -3\n") == {"a": 1, "b": 2, "d": -3}
    assert parse_kv("") == {}


# --------------------------------------------------------------------------- procs, attach, kill, remove


def test_attach_writes_pid_everywhere(tmp_path):
    # v1: the (single-threaded) caller's thread goes to ``tasks``: moving a thread group
    # through cgroup.procs waits on the kernel's threadgroup lock (tens of ms at times).
    support = detected(v1_tree(tmp_path))
    job = JobCgroup(support, "job-1")
    job.create(Limits())
    job.attach(4242)
    for d in job.paths.values():
        assert read(tmp_path / d / "tasks") == "4242"


def test_procs_and_kill_never_signal_pid_zero(tmp_path):
    support = detected(v2_tree(tmp_path))
    job = JobCgroup(support, "job-1")
    assert job.procs() == []
    job.create(Limits())
    job.attach()  # the fake cgroup.procs now says "0": must never become os.kill(0, ...)
    assert job.procs() == []
    job.kill()  # returns at once: nothing to kill, and we are alive
    write(tmp_path / job.paths["unified"] / "cgroup.procs", "12\n34\n")
    assert job.procs() == [12, 34]


def test_remove_of_missing_or_empty_dirs(tmp_path):
    support = detected(v1_tree(tmp_path))
    job = JobCgroup(support, "job-1")
    job.remove()  # never created: fine
    for d in job.paths.values():
        os.makedirs(d, exist_ok=True)
    os.makedirs(os.path.join(job.paths["memory"], "sub", "deeper"))  # a group the job made
    assert job.exists()
    job.remove()
    assert not job.exists()
    job.remove()  # already gone: fine


def test_remove_parent(tmp_path):
    support = detected(v1_tree(tmp_path))
    for key in ("a", "b"):
        for d in JobCgroup(support, key).paths.values():
            os.makedirs(d, exist_ok=True)
    busy = JobCgroup(support, "busy").paths["memory"]
    write(tmp_path / busy / "cgroup.procs", "123\n")
    problems = remove_parent(support)
    assert problems == [f"cannot remove {busy}: it still has processes"]
    assert os.path.isdir(busy)  # left alone, and its parent with it
    assert os.path.isdir(support.parents["memory"])
    assert not os.path.exists(support.parents["pids"])
    os.remove(os.path.join(busy, "cgroup.procs"))
    assert remove_parent(support) == []
    assert not any(os.path.exists(p) for p in support.parents.values())


# --------------------------------------------------------------------------- plain data


def test_limits_round_trip():
    limits = Limits(memory=64 * MiB, cpu=1500, pids=100, deny_devices=("c 195:1", "c  195:2   rw"))
    assert limits.deny_devices == ("c 195:1", "c 195:2 rw")  # spaces normalised
    d = json.loads(json.dumps(limits.to_dict()))
    assert d == {"memory": 64 * MiB, "cpu": 1500, "pids": 100, "deny_devices": ["c 195:1", "c 195:2 rw"]}
    assert Limits.from_dict(d) == limits
    assert Limits.from_dict({}) == Limits()
    assert Limits.from_dict(Limits().to_dict()) == Limits()


@pytest.mark.parametrize(
    "kwargs",
    [{"memory": 0}, {"memory": -1}, {"cpu": 1.5}, {"pids": True}, {"memory": "1G"},
     {"deny_devices": ("c 195",)}, {"deny_devices": ("x 1:2",)},
     {"deny_devices": ("c 1:2 rwx",)}],
)
def test_limits_validation(kwargs):
    with pytest.raises(ValueError):
        Limits(**kwargs)


def test_limits_deny_devices_must_not_be_one_string():
    with pytest.raises(TypeError):
        Limits(deny_devices="c 195:1")


def test_support_round_trip(tmp_path):
    support = detected(v1_tree(tmp_path, comount=True))
    d = json.loads(json.dumps(support.to_dict()))
    assert CgroupSupport.from_dict(d) == support
    assert d["version"] == "v1" and d["controllers"] == list(support.controllers)
    v2 = CgroupSupport("v2", {"unified": "/sys/fs/cgroup/corral-1"}, ("cpu", "memory", "pids"))
    assert CgroupSupport.from_dict(json.loads(json.dumps(v2.to_dict()))) == v2
