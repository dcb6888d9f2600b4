"""Per-job cgroups: hard memory, CPU, task-count and device limits enforced by the kernel.

Stdlib only and light on purpose: the small forked process that launches each job imports
this module, and it must stay tiny.

Design
------
* :func:`detect` runs once, when the daemon starts. It reads ``/proc/self/mounts`` to find
  the cgroup hierarchies and ``/proc/self/cgroup`` to find the daemon's *own* cgroup in
  each, and creates a parent group ``name`` **under the daemon's own cgroup** (never at a
  hierarchy root), so that any limit the machine already puts on the daemon still holds
  for its jobs. Pure cgroup v2 (a ``cgroup2`` mount whose controllers include ``memory``)
  is preferred; otherwise v1 (one hierarchy per controller, possibly co-mounted such as
  ``cpu,cpuacct``). The memory controller is required; ``cpu``, ``cpuacct``, ``pids`` and
  ``devices`` are used where present. On a machine where none of this works it returns
  ``(None, reason)``; it never raises because a machine lacks cgroups.
* The result, :class:`CgroupSupport`, is plain data (``to_dict``/``from_dict``) so it can
  travel to the launcher process as JSON.
* :class:`JobCgroup` is one job's group ``<parent>/<key>`` in every hierarchy used.
  The daemon calls :meth:`~JobCgroup.create` with the job's :class:`Limits`, the launcher
  calls :meth:`~JobCgroup.attach` in the child before ``exec`` (so every process the job
  ever starts is inside), the daemon polls :meth:`~JobCgroup.stats` (cheap: one read per
  file, no globbing, no subprocesses; a missing file gives ``None``, never an exception),
  and :meth:`~JobCgroup.kill` / :meth:`~JobCgroup.remove` end it.
  :func:`remove_parent` removes the (empty) parent groups on daemon shutdown.

How limits map to files
-----------------------
=============  ======================================  ==========================================
limit          cgroup v1                               cgroup v2
=============  ======================================  ==========================================
memory         ``memory.limit_in_bytes``, and           ``memory.max``; ``memory.swap.max`` = 0;
               ``memory.memsw.limit_in_bytes`` equal    ``memory.oom.group`` = 1 (the whole job
               (no swap) where it exists                is OOM-killed together)
cpu            ``cpu.cfs_quota_us`` over                ``cpu.max`` = ``"QUOTA 100000"``
               ``cpu.cfs_period_us`` = 100000
pids           ``pids.max``                             ``pids.max``
deny_devices   ``devices.deny`` (``"c 195:1 rwm"``)     not supported (needs eBPF): ignored
=============  ======================================  ==========================================

A limit whose controller is not available is not enforced (``CgroupSupport.controllers``
says which are); only memory is required.

cgroup v2's "no internal processes" rule: a cgroup that contains processes cannot enable
controllers for its children. :func:`detect` enables them in the daemon's own cgroup's
``cgroup.subtree_control`` (needed for the parent ``<own>/<name>`` to have them); if that
fails because the daemon's own cgroup has processes, v2 is reported unusable with that
reason; the daemon is never moved. (The root cgroup is exempt from the rule.)
"""

from __future__ import annotations

import errno
import os
import re
import signal
import time
from dataclasses import asdict, dataclass

CgroupVersion = str  # "v1" or "v2"

#: The CFS period: a limit of N millicores is a quota of N * CPU_PERIOD_US // 1000 us.
CPU_PERIOD_US = 100_000
#: The smallest CFS quota the kernel accepts (1 ms).
MIN_CPU_QUOTA_US = 1_000
#: cgroup v1 reports "no memory limit" as a number near 2**63; at or above this is unlimited.
V1_UNLIMITED = 1 << 62
#: The controllers used, per version (v2's "cpu" also gives usage, so no "cpuacct" there).
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "devices")
V2_CONTROLLERS = ("memory", "cpu", "pids")
#: How long kill() waits for a group to empty and remove() retries rmdir on EBUSY.
SETTLE_SECONDS = 2.0

_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")
_DEVICE_RULE = re.compile(r"[abc] (\d+|\*):(\d+|\*)( [rwm]{1,3})?\Z")
_MOUNT_ESCAPE = re.compile(r"\\([0-7]{3})")


class CgroupError(Exception):
    """A cgroup operation failed; the one-line message names the file and the value, e.g.
    ``cannot write 2147483648 to /sys/fs/cgroup/memory/.../memory.limit_in_bytes: Device
    or resource busy``."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Limits:
    """The hard limits of one job; ``None`` (or no device rules) means no limit."""

    memory: int | None = None  #: bytes
    cpu: int | None = None  #: millicores: a CFS quota over a 100 ms period (1000 -> 100000 us)
    pids: int | None = None  #: the most tasks (processes and threads) at once
    #: v1 device rules to deny, e.g. ``("c 195:1",)``; access letters default to ``rwm``.
    #: Ignored (not an error) where the devices controller is not available.
    deny_devices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("memory", "cpu", "pids"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise ValueError(
                    f"invalid {name} limit: {value!r} (expected a positive integer or None)"
                )
        if isinstance(self.deny_devices, str):
            raise TypeError(f"deny_devices must be a sequence of rules, not {self.deny_devices!r}")
        rules = tuple(" ".join(str(rule).split()) for rule in self.deny_devices)
        for rule in rules:
            if not _DEVICE_RULE.match(rule):
                raise ValueError(f"invalid device rule: {rule!r} (expected e.g. 'c 195:1')")
        object.__setattr__(self, "deny_devices", rules)

    def to_dict(self) -> dict:
        return {
            "memory": self.memory,
            "cpu": self.cpu,
            "pids": self.pids,
            "deny_devices": list(self.deny_devices),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Limits:
        return cls(
            memory=d.get("memory"),
            cpu=d.get("cpu"),
            pids=d.get("pids"),
            deny_devices=tuple(d.get("deny_devices") or ()),
        )


@dataclass(frozen=True)
class CgroupSupport:
    """What :func:`detect` found: the version, the parent group(s) and the usable controllers."""

    version: CgroupVersion  #: "v1" or "v2"
    #: v1: controller -> parent dir (co-mounted controllers share one); v2: {"unified": dir}
    parents: dict[str, str]
    #: the usable controllers, sorted, from memory, cpu, cpuacct, pids, devices
    controllers: tuple[str, ...]

    def describe(self) -> str:
        """E.g. ``cgroup v1 (cpu, cpuacct, devices, memory, pids)``."""
        if not self.controllers:
            return f"cgroup {self.version} (no controllers)"
        return f"cgroup {self.version} ({', '.join(self.controllers)})"

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "parents": dict(self.parents),
            "controllers": list(self.controllers),
        }

    @classmethod
    def from_dict(cls, d: dict) -> CgroupSupport:
        return cls(
            version=d["version"],
            parents=dict(d["parents"]),
            controllers=tuple(sorted(d["controllers"])),
        )


@dataclass(frozen=True)
class CgroupStats:
    """One reading of a job's cgroup; a field is ``None`` where its file could not be read."""

    memory: int | None  #: working set: usage minus inactive file cache, at least 0
    memory_peak: int | None  #: v1 memory.max_usage_in_bytes; v2 memory.peak (kernel >= 5.19)
    memory_limit: int | None  #: the job's own limit; None when unlimited
    cpu_usage_ns: int | None  #: CPU time used by the job, all processes together
    nr_throttled: int | None  #: CFS periods in which the job was throttled
    oom_kills: int  #: processes of the job killed by the OOM killer (0 when unknown)
    pids: int | None  #: tasks now in the job

    def to_dict(self) -> dict:
        return asdict(self)


def parse_kv(text: str) -> dict[str, int]:
    """Parse ``"key value"`` lines (memory.stat, cpu.stat, memory.events, memory.oom_control)
    into ints; other lines are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


# --------------------------------------------------------------------------- file helpers


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _write(path: str, value: str, *, append: bool = False) -> None:
    """Write ``value`` with a single write() call (cgroupfs takes one command per write).

    Opening with O_CREAT is harmless on cgroupfs (the files exist) and lets a fake tree of
    regular files in unit tests record what was written; ``append`` keeps every line there.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise CgroupError(f"cannot write {value.strip()} to {path}: {_reason(e)}") from None


def _read(path: str) -> str | None:
    """A small control file's text (plain system calls: no buffered file object)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_int(path: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):  # v2 writes "max" for unlimited
        return None


def _read_kv(path: str) -> dict[str, int] | None:
    text = _read(path)
    return None if text is None else parse_kv(text)


def _read_words(path: str) -> set[str]:
    """The words of a list file such as cgroup.controllers (a leading '+' is ignored)."""
    text = _read(path)
    return {word.lstrip("+") for word in text.split()} if text else set()


def _read_procs(directory: str) -> list[int]:
    text = _read(os.path.join(directory, "cgroup.procs"))
    if not text:
        return []
    pids = []
    for word in text.split():
        try:
            pid = int(word)
        except ValueError:
            continue
        if pid > 0:  # never 0 or negative: os.kill() would signal whole process groups
            pids.append(pid)
    return pids


def _rmdir(path: str, deadline: float) -> None:
    """Remove one cgroup dir; a missing one is fine; EBUSY (just after a kill) is retried."""
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise CgroupError(f"cannot remove {path}: {_reason(e)}") from None
        time.sleep(0.02)


def _bottom_up(directory: str) -> list[str]:
    """The dir and any sub-groups a job made inside it, deepest first (empty if missing)."""
    return [d for d, _, _ in os.walk(directory, topdown=False)]


def _check_name(what: str, value: object) -> None:
    if not isinstance(value, str) or not _NAME.match(value) or set(value) == {"."}:
        raise ValueError(
            f"invalid cgroup {what}: {value!r} (expected letters, digits, '_', '.' and '-')"
        )


# --------------------------------------------------------------------------- detection


def _read_mounts(path: str) -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, options) of every cgroup/cgroup2 mount."""
    with open(path) as f:
        text = f.read()
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("cgroup", "cgroup2"):
            point = _MOUNT_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[1])
            found.append((point, fields[2], set(fields[3].split(","))))
    return found


def _read_self_cgroup(path: str) -> tuple[dict[str, str], str | None]:
    """Our own cgroup path: per v1 controller, and in the v2 hierarchy (None if no line)."""
    with open(path) as f:
        text = f.read()
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, own = parts
        if parts[0] == "0" and controllers == "":
            v2 = own
        else:
            for controller in controllers.split(","):
                v1[controller] = own
    return v1, v2


def _own_dir(mount: str, own: str) -> str | None:
    """Our own cgroup's dir under a mount point.

    Normally ``<mount><own>``. When a container mounts only a sub-tree of the hierarchy
    (so ``<own>`` is not relative to the mount), shorter suffixes of ``<own>`` are tried,
    and finally the mount point itself.
    """
    parts = [p for p in own.split("/") if p not in ("", ".", "..")]
    for i in range(len(parts) + 1):
        candidate = os.path.join(mount, *parts[i:])
        if os.path.isdir(candidate):
            return candidate
    return None


def _under(path: str, root: str) -> bool:
    path, root = os.path.normpath(path), os.path.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _enable(directory: str, controllers: list[str]) -> tuple[list[str], CgroupError | None]:
    """Enable controllers for the children of a v2 cgroup; returns those enabled and the
    first error. One write for all of them, then one at a time if that fails."""
    path = os.path.join(directory, "cgroup.subtree_control")
    current = _read_words(path)
    missing = [c for c in controllers if c not in current]
    if not missing:
        return list(controllers), None
    try:
        _write(path, " ".join("+" + c for c in missing))
        return list(controllers), None
    except CgroupError as e:
        first = e
    enabled = [c for c in controllers if c in current]
    for c in missing:
        try:
            _write(path, "+" + c)
            enabled.append(c)
        except CgroupError:
            pass
    return enabled, first


def _detect_v2(
    name: str, mounts: list[tuple[str, str, set[str]]], own: str
) -> tuple[CgroupSupport | None, str]:
    """Returns (support, "") or (None, reason); reason "" when no v2 hierarchy has memory."""
    for point, _, _ in mounts:
        own_dir = _own_dir(point, own)
        if own_dir is None:
            continue
        available = _read_words(os.path.join(own_dir, "cgroup.controllers"))
        if "memory" not in available:
            continue
        wanted = [c for c in V2_CONTROLLERS if c in available]
        enabled, error = _enable(own_dir, wanted)
        if "memory" not in enabled:
            reason = f"cgroup v2 unusable: {error}"
            if "Device or resource busy" in str(error):
                reason += (
                    f" (our own cgroup {own_dir} has processes, so it cannot enable controllers"
                    " for children; run corral in a cgroup of its own, e.g. with"
                    " systemd-run --scope -p Delegate=yes)"
                )
            return None, reason
        parent = os.path.join(own_dir, name)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            return None, f"no cgroup rights: cannot create {parent}: {_reason(e)}"
        enabled, error = _enable(parent, enabled)
        if "memory" not in enabled:
            try:
                os.rmdir(parent)
            except OSError:
                pass
            return None, f"cgroup v2 unusable: {error}"
        return CgroupSupport("v2", {"unified": parent}, tuple(sorted(enabled))), ""
    return None, ""


def _detect_v1(
    name: str, mounts: list[tuple[str, str, set[str]]], owns: dict[str, str]
) -> tuple[CgroupSupport | None, str]:
    parents: dict[str, str] = {}
    for controller in V1_CONTROLLERS:
        point = next((p for p, _, opts in mounts if controller in opts), None)
        own = owns.get(controller)
        own_dir = None if point is None or own is None else _own_dir(point, own)
        if own_dir is None:
            if controller == "memory":
                if point is None:
                    return None, "no memory controller: no cgroup v1 or v2 hierarchy offers it"
                return None, f"no memory controller: cannot find our own memory cgroup under {point}"
            continue
        parent = os.path.join(own_dir, name)
        if parent not in parents.values():  # co-mounted controllers share one dir
            try:
                if not os.path.isdir(parent):
                    os.mkdir(parent)
            except OSError as e:
                if controller == "memory":
                    return None, f"no cgroup rights: cannot create {parent}: {_reason(e)}"
                continue  # an optional controller we may not use (memory is the first)
        parents[controller] = parent
    return CgroupSupport("v1", parents, tuple(sorted(parents))), ""


def detect(
    name: str,
    *,
    root: str = "/sys/fs/cgroup",
    mounts: str = "/proc/self/mounts",
    self_cgroup: str = "/proc/self/cgroup",
) -> tuple[CgroupSupport | None, str]:
    """Find what this machine allows and create the parent group(s) ``name`` under our own
    cgroup (reusing them if they exist).

    Returns ``(support, "")`` or ``(None, one-line reason)``, e.g. ``(None, "no cgroup
    rights: cannot create /sys/fs/cgroup/memory/x/corral-1: Permission denied")``. Never
    raises for a machine that lacks cgroups (a bad ``name`` is a ValueError).

    ``root`` is where hierarchies are expected to be mounted: mounts under it are preferred
    (others are used only when none is under it). ``root``, ``mounts`` and ``self_cgroup``
    exist so unit tests can point at a fake tree.
    """
    _check_name("name", name)
    try:
        table = _read_mounts(mounts)
        v1_owns, v2_own = _read_self_cgroup(self_cgroup)
    except OSError as e:
        return None, f"cannot read cgroup information: {_reason(e)}"
    table = [m for m in table if _under(m[0], root)] or table
    if not table:
        return None, "no cgroup hierarchy is mounted"
    try:
        v2_reason = ""
        v2_mounts = [m for m in table if m[1] == "cgroup2"]
        if v2_mounts and v2_own is not None:
            support, v2_reason = _detect_v2(name, v2_mounts, v2_own)
            if support is not None:
                return support, ""
        support, v1_reason = _detect_v1(name, [m for m in table if m[1] == "cgroup"], v1_owns)
        if support is not None:
            return support, ""
        return None, v2_reason or v1_reason
    except OSError as e:  # anything unforeseen on an odd machine: report, do not raise
        return None, f"cgroups unusable: {e}"


def detect_group(
    name: str,
    *,
    root: str = "/sys/fs/cgroup",
    mounts: str = "/proc/self/mounts",
    self_cgroup: str = "/proc/self/cgroup",
) -> tuple[CgroupSupport | None, str]:
    """A cgroup v2 parent ``name`` under our own v2 cgroup, used without controllers: to
    hold each job's processes together (and kill them at once with ``cgroup.kill``)
    where no controller can limit them -- a hybrid machine whose ``unified`` hierarchy
    has none, or a v2 subtree delegated without ``memory``. No controller is enabled,
    so the "no internal processes" rule does not apply. ``(None, reason)`` when there
    is no v2 hierarchy or no right to create a group in it."""
    _check_name("name", name)
    try:
        table = _read_mounts(mounts)
        _, own = _read_self_cgroup(self_cgroup)
    except OSError as e:
        return None, f"cannot read cgroup information: {_reason(e)}"
    table = [m for m in table if _under(m[0], root) and m[1] == "cgroup2"] or [
        m for m in table if m[1] == "cgroup2"]
    if not table or own is None:
        return None, "no cgroup v2 hierarchy is mounted"
    for point, _, _ in table:
        own_dir = _own_dir(point, own)
        if own_dir is None:
            continue
        parent = os.path.join(own_dir, name)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            return None, f"cannot create {parent}: {_reason(e)}"
        if not os.access(os.path.join(parent, "cgroup.procs"), os.W_OK):
            try:
                os.rmdir(parent)
            except OSError:
                pass
            return None, f"cannot move processes into {parent}"
        return CgroupSupport("v2", {"unified": parent}, ()), ""
    return None, "our own cgroup v2 group is not under the mount point"


def job_groups(support: CgroupSupport) -> dict[str, list[str]]:
    """The job groups now under the parent(s): key -> their dirs (one per hierarchy)."""
    found: dict[str, list[str]] = {}
    for parent in dict.fromkeys(support.parents.values()):
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for key in names:
            path = os.path.join(parent, key)
            if _NAME.match(key) and os.path.isdir(path):
                found.setdefault(key, []).append(path)
    return found


def remove_parent(support: CgroupSupport) -> list[str]:
    """Remove the parent group(s), and the empty job groups left in them (daemon shutdown).

    Groups that still have processes are left alone (with their parents). Returns one line
    per group that could not be removed; an empty list when everything is gone.
    """
    problems: list[str] = []
    deadline = time.monotonic() + SETTLE_SECONDS
    for parent in dict.fromkeys(support.parents.values()):
        blocked: set[str] = set()  # dirs with a sub-group that stayed
        for directory in _bottom_up(parent):
            if directory in blocked:
                blocked.add(os.path.dirname(directory))
                continue
            if _read_procs(directory):
                problems.append(f"cannot remove {directory}: it still has processes")
                blocked.add(os.path.dirname(directory))
                continue
            try:
                _rmdir(directory, deadline)
            except CgroupError as e:
                problems.append(str(e))
                blocked.add(os.path.dirname(directory))
    return problems


# --------------------------------------------------------------------------- one job


class JobCgroup:
    """One job's cgroup ``<parent>/<key>`` in every hierarchy of ``support``. No I/O here."""

    def __init__(self, support: CgroupSupport, key: str) -> None:
        _check_name("key", key)
        self.support = support
        self.key = key
        if support.version == "v2":
            self.paths: dict[str, str] = {"unified": os.path.join(support.parents["unified"], key)}
        else:
            self.paths = {
                c: os.path.join(support.parents[c], key)
                for c in support.controllers
                if c in support.parents
            }
        #: The memory group (v1) or the only group (v2): procs are read from here.
        self._main = self.paths.get("unified") or self.paths["memory"]
        #: Distinct dirs (co-mounted controllers share one), the main one first.
        self._dirs = list(dict.fromkeys([self._main, *self.paths.values()]))

    def __repr__(self) -> str:
        return f"JobCgroup({self.key!r}, {self._main!r})"

    # -- life cycle

    def create(self, limits: Limits) -> None:
        """Make the dirs (a stale one from a crash is reused) and write the limits.

        On v1, a hierarchy whose controller has nothing to hold for this job is left
        out (``cpu`` without a CPU limit, ``pids`` without a task limit, ``devices``
        without a rule): each one costs a mkdir, a move and an rmdir per job. Memory
        (which holds the job's processes) and ``cpuacct`` (its CPU time) always stay.
        On failure, the dirs made here are removed and CgroupError is raised.
        """
        if self.support.version == "v1":
            idle = {"cpu": limits.cpu is None, "pids": limits.pids is None, "devices": not limits.deny_devices}
            shared = {d for c, d in self.paths.items() if not idle.get(c, False)}
            self.paths = {c: d for c, d in self.paths.items() if not idle.get(c, False) or d in shared}
            self._dirs = list(dict.fromkeys([self._main, *self.paths.values()]))
        made: list[str] = []
        try:
            for d in self._dirs:
                try:
                    os.mkdir(d)
                    made.append(d)
                except FileExistsError:
                    pass
                except OSError as e:
                    raise CgroupError(f"cannot create {d}: {_reason(e)}") from None
            if self.support.version == "v2":
                self._write_v2(limits)
            else:
                self._write_v1(limits)
        except CgroupError:
            for d in reversed(made):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            raise

    def _write_v1(self, limits: Limits) -> None:
        mem = self.paths["memory"]
        limit_file = os.path.join(mem, "memory.limit_in_bytes")
        memsw_file = os.path.join(mem, "memory.memsw.limit_in_bytes")
        value = "-1" if limits.memory is None else str(limits.memory)
        if os.path.exists(memsw_file):
            # memory+swap must never be below memory: lift it, set memory, then match it
            # (so no swap is used). Writing memory first matters in a fresh group.
            _write(memsw_file, "-1")
            _write(limit_file, value)
            if limits.memory is not None:
                _write(memsw_file, value)
        else:
            _write(limit_file, value)
            swappiness = os.path.join(mem, "memory.swappiness")
            if limits.memory is not None and os.path.exists(swappiness):
                _write(swappiness, "0")  # no swap accounting: at least do not swap
        if "cpu" in self.paths:
            cpu = self.paths["cpu"]
            _write(os.path.join(cpu, "cpu.cfs_period_us"), str(CPU_PERIOD_US))
            quota = "-1" if limits.cpu is None else str(cpu_quota_us(limits.cpu))
            _write(os.path.join(cpu, "cpu.cfs_quota_us"), quota)
        if "pids" in self.paths:
            pids = "max" if limits.pids is None else str(limits.pids)
            _write(os.path.join(self.paths["pids"], "pids.max"), pids)
        if "devices" in self.paths:
            deny = os.path.join(self.paths["devices"], "devices.deny")
            for rule in limits.deny_devices:
                if rule.count(" ") == 1:
                    rule += " rwm"
                _write(deny, rule + "\n", append=True)  # one rule per write

    def _write_v2(self, limits: Limits) -> None:
        d = self.paths["unified"]
        have = self.support.controllers
        if "memory" in have:      # a group made only to hold a job's processes has no controllers
            memory = "max" if limits.memory is None else str(limits.memory)
            _write(os.path.join(d, "memory.max"), memory)
            swap = os.path.join(d, "memory.swap.max")
            if os.path.exists(swap):
                _write(swap, "max" if limits.memory is None else "0")
            group = os.path.join(d, "memory.oom.group")
            if os.path.exists(group):
                _write(group, "1")
        if "cpu" in have:
            quota = "max" if limits.cpu is None else str(cpu_quota_us(limits.cpu))
            _write(os.path.join(d, "cpu.max"), f"{quota} {CPU_PERIOD_US}")
        if "pids" in have:
            pids = "max" if limits.pids is None else str(limits.pids)
            _write(os.path.join(d, "pids.max"), pids)

    def attach(self, pid: int = 0) -> None:
        """Move a process (0: the calling one) into the job's group in every hierarchy.

        Its children are born inside. Called in the job's child process before exec.
        """
        # v1: write the thread to ``tasks``, not the process to ``cgroup.procs``. The
        # caller is a freshly forked, single-threaded child, so it is the same thing, but
        # moving a whole thread group takes the kernel's threadgroup lock, which waits
        # for an RCU grace period: measured here, 1 ms usually but up to 20-35 ms.
        name = "tasks" if self.support.version == "v1" else "cgroup.procs"
        for d in self._dirs:
            _write(os.path.join(d, name), str(pid))

    def leave(self) -> None:
        """Move the calling process (single-threaded: v1 moves a thread) back to the cgroup
        the parent group was made under -- the daemon's own, where the supervisor was
        before it joined the job's group to spawn the job inside."""
        name = "tasks" if self.support.version == "v1" else "cgroup.procs"
        for d in self._dirs:
            _write(os.path.join(os.path.dirname(os.path.dirname(d)), name), "0")

    def procs(self) -> list[int]:
        """The pids in the job's group (memory hierarchy on v1); [] when it is gone."""
        return _read_procs(self._main)

    def kill(self) -> None:
        """SIGKILL every process of the job and wait (up to ~2 s) until none is left.

        v2 uses cgroup.kill where the kernel has it (>= 5.14); otherwise, and as a backstop,
        the pids are read and killed in a loop, so processes forked meanwhile die too.
        """
        deadline = time.monotonic() + SETTLE_SECONDS
        if self.support.version == "v2":
            kill_file = os.path.join(self._main, "cgroup.kill")
            if os.path.exists(kill_file):
                try:
                    _write(kill_file, "1")
                except CgroupError:
                    pass  # the loop below does it
        me = os.getpid()
        while True:
            pids = [
                pid
                for d in self._dirs
                for sub in _bottom_up(d)
                for pid in _read_procs(sub)
                if pid != me
            ]
            if not pids:
                return
            for pid in dict.fromkeys(pids):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if time.monotonic() >= deadline:
                return
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill every process, then remove the dirs (any sub-groups first).

        rmdir is retried on EBUSY for ~2 s; dirs already gone are fine. Raises CgroupError
        only when a dir stays.
        """
        self.kill()
        deadline = time.monotonic() + SETTLE_SECONDS
        for d in self._dirs:
            for sub in _bottom_up(d):
                _rmdir(sub, deadline)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self._dirs)

    # -- monitoring

    def stats(self) -> CgroupStats:
        """Read the job's usage: one read per file; unreadable files give None."""
        if self.support.version == "v2":
            return self._stats_v2()
        return self._stats_v1()

    def _stats_v1(self) -> CgroupStats:
        mem = self.paths["memory"]
        usage = _read_int(os.path.join(mem, "memory.usage_in_bytes"))
        limit = _read_int(os.path.join(mem, "memory.limit_in_bytes"))
        if limit is not None and not 0 <= limit < V1_UNLIMITED:
            limit = None
        stat = _read_kv(os.path.join(mem, "memory.stat")) or {}
        oom = _read_kv(os.path.join(mem, "memory.oom_control")) or {}
        cpu_usage = throttled = pids = None
        if "cpuacct" in self.paths:
            cpu_usage = _read_int(os.path.join(self.paths["cpuacct"], "cpuacct.usage"))
        if "cpu" in self.paths:
            throttled = (_read_kv(os.path.join(self.paths["cpu"], "cpu.stat")) or {}).get(
                "nr_throttled"
            )
        if "pids" in self.paths:
            pids = _read_int(os.path.join(self.paths["pids"], "pids.current"))
        return CgroupStats(
            memory=_working_set(usage, stat.get("total_inactive_file", 0)),
            memory_peak=_read_int(os.path.join(mem, "memory.max_usage_in_bytes")),
            memory_limit=limit,
            cpu_usage_ns=cpu_usage,
            nr_throttled=throttled,
            oom_kills=oom.get("oom_kill", 0),
            pids=pids,
        )

    def _stats_v2(self) -> CgroupStats:
        d = self.paths["unified"]
        usage = _read_int(os.path.join(d, "memory.current"))
        stat = _read_kv(os.path.join(d, "memory.stat")) or {}
        events = _read_kv(os.path.join(d, "memory.events")) or {}
        cpu = _read_kv(os.path.join(d, "cpu.stat")) or {}
        usage_usec = cpu.get("usage_usec")
        return CgroupStats(
            memory=_working_set(usage, stat.get("inactive_file", 0)),
            memory_peak=_read_int(os.path.join(d, "memory.peak")),
            memory_limit=_read_int(os.path.join(d, "memory.max")),  # "max" -> None
            cpu_usage_ns=None if usage_usec is None else usage_usec * 1000,
            nr_throttled=cpu.get("nr_throttled"),
            oom_kills=events.get("oom_kill", 0),
            pids=_read_int(os.path.join(d, "pids.current")),
        )


def cpu_quota_us(millicores: int) -> int:
    """The CFS quota per 100 ms period for a CPU limit in millicores (at least 1 ms)."""
    return max(MIN_CPU_QUOTA_US, millicores * CPU_PERIOD_US // 1000)


def _working_set(usage: int | None, inactive_file: int) -> int | None:
    return None if usage is None else max(0, usage - inactive_file)
