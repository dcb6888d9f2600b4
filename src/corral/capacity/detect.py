"""Detect this machine's capacity: usable cores, memory (cgroup-capped) and GPUs."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from ..errors import ValidationError
from ..resources import CPU, GPU, MEMORY, Resources, format_quantity
from .gpu import GpuProbe, detect_gpus, probe_gpus
from .node import Node

#: Default memory reserve: the smaller of 1 GiB and 10% of the node's memory.
DEFAULT_RESERVE_MEMORY = 2**30
#: cgroup v1 reports "no limit" as a huge page-rounded number; anything above is no limit.
_V1_UNLIMITED = 2**60


def usable_cores() -> tuple[int, ...]:
    """The CPU ids this process may run on (its affinity mask), sorted."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS)
        return tuple(range(os.cpu_count() or 1))


def physical_memory() -> int:
    """Total RAM in bytes as the kernel reports it."""
    import psutil  # lazy: keeps CLI start-up light

    return int(psutil.virtual_memory().total)


def cgroup_memory_limit(root: str | os.PathLike[str] = "/") -> int | None:
    """The tightest memory limit on this process's cgroups, in bytes, or None.

    Reads ``<root>/proc/self/cgroup`` and, walking from the process's cgroup up to the
    hierarchy root, cgroup v2 ``memory.max`` and cgroup v1 ``memory.limit_in_bytes``
    under ``<root>/sys/fs/cgroup``. Missing or unreadable files mean no limit.
    """
    base = Path(root)
    try:
        lines = (base / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    limits: list[int] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            limit = _walk(base / "sys/fs/cgroup", path, "memory.max")
        elif "memory" in controllers.split(","):
            limit = _walk(base / "sys/fs/cgroup/memory", path, "memory.limit_in_bytes")
        else:
            continue
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def _walk(mount: Path, path: str, filename: str) -> int | None:
    """Smallest limit in ``filename`` from the cgroup at ``path`` up to ``mount``.

    Walking up also finds the limit when the process's path is not visible in this
    mount namespace (a container sees its own cgroup as the mount root).
    """
    parts = PurePosixPath(path).parts[1:]
    if ".." in parts:  # outside our cgroup namespace: only the mount root is ours
        parts = ()
    found: list[int] = []
    for depth in range(len(parts), -1, -1):
        value = _read_limit(mount.joinpath(*parts[:depth]) / filename)
        if value is not None:
            found.append(value)
    return min(found) if found else None


def _read_limit(file: Path) -> int | None:
    try:
        text = file.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():  # "max" (v2 unlimited) or garbage
        return None
    value = int(text)
    return value if 0 < value < _V1_UNLIMITED else None


def total_memory(root: str | os.PathLike[str] = "/") -> int:
    """Physical memory in bytes, capped by this process's cgroup memory limit if any."""
    return _memory(root)[0]


def _memory(root: str | os.PathLike[str]) -> tuple[int, int | None]:
    limit = cgroup_memory_limit(root)
    physical = physical_memory()
    return (min(physical, limit) if limit is not None else physical), limit


def default_reserve_memory(total: int) -> int:
    """``min(1 GiB, 10% of total)``."""
    return min(DEFAULT_RESERVE_MEMORY, total // 10)


def detect_node(*, name: str | None = None, simulate_gpus: int = 0, reserve_cpu: int = 0,
                reserve_memory: int | None = None, probe: GpuProbe | None = None,
                cgroup_root: str | os.PathLike[str] = "/", gpu_model: str = "Simulated GPU",
                labels: Mapping[str, str] | None = None,
                extended: Mapping[str, int] | None = None) -> tuple[Node, dict]:
    """This machine as a :class:`Node`, plus display info.

    Capacity is 1000 millicores per usable core, cgroup-capped memory and the detected
    GPUs (``probe`` when given, which the caller closes; else ``simulate_gpus``
    simulated GPUs of ``gpu_model`` when it is > 0; else NVML, whose GPUs say their own
    model). ``labels``: the node's labels (the config's ``node_labels``, what jobs'
    node selectors match). ``extended``: extended resources the node offers (the
    config's ``resources``, e.g. ``{"vendor.example/fpga": 2}``). ``reserve_cpu`` is in millicores,
    ``reserve_memory`` in bytes (default ``min(1 GiB, 10%)``). A reserve at or above
    capacity raises :class:`ValidationError`. The info dict holds ``gpu_source``
    (one line) and ``cgroup_memory_limit`` (bytes or None).
    """
    if simulate_gpus < 0:
        raise ValidationError("simulate_gpus", simulate_gpus, "expected 0 or a positive count")
    cores = usable_cores()
    memory, limit = _memory(cgroup_root)
    if probe is not None:
        gpus, source = probe_gpus(probe)
    else:
        gpus, source = detect_gpus(simulate_gpus, model=gpu_model)
    capacity = Resources({**dict(extended or {}), CPU: 1000 * len(cores), MEMORY: memory, GPU: len(gpus)})
    if reserve_memory is None:
        reserve_memory = default_reserve_memory(memory)
    _check_reserve(CPU, reserve_cpu, capacity[CPU])
    _check_reserve(MEMORY, reserve_memory, capacity[MEMORY])
    node = Node(name=name or socket.gethostname() or "localhost", capacity=capacity,
                reserve=Resources({CPU: reserve_cpu, MEMORY: reserve_memory}),
                cores=cores, gpus=gpus, labels=tuple(sorted((labels or {}).items())))
    return node, {"gpu_source": source, "cgroup_memory_limit": limit}


def _check_reserve(resource: str, amount: int, capacity: int) -> None:
    field = f"reserve.{resource}"
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise ValidationError(field, amount, "expected a non-negative whole amount")
    if amount and amount >= capacity:
        raise ValidationError(
            field, format_quantity(resource, amount),
            f"must be less than the node's {resource} capacity of {format_quantity(resource, capacity)}")
