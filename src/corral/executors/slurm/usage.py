"""Running jobs' usage from ``sstat`` (Slurm's per-step accounting, read from the nodes'
slurmd: no database needed, ``JobAcctGatherType`` must be set on the cluster).

Pure parsing of ``sstat -n -P -a -j ID,... -o JobID,TresUsageInTot,NTasks``: each step's
total CPU time and memory (``TresUsageInTot``: ``cpu=00:01:02,mem=120M,...``), summed
over a job's steps.
"""

from __future__ import annotations

import re

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_CPU = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


def cpu_seconds(text: str) -> float | None:
    """``[D-][HH:]MM:SS[.sss]`` as seconds."""
    m = _CPU.match(text.strip())
    if m is None:
        return None
    days, hours, minutes, seconds = m.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def memory_bytes(text: str) -> int | None:
    m = re.match(r"^(\d+(?:\.\d+)?)([KMGT]?)$", text.strip())
    return None if m is None else int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_sstat(out: str) -> dict[int, dict[str, float | int]]:
    """Slurm job id -> {cpu_seconds, memory, processes}, summed over its steps."""
    usage: dict[int, dict[str, float | int]] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0].split(".")[0].isdigit():
            continue
        slurm_id = int(parts[0].split(".")[0])
        tres = dict(kv.split("=", 1) for kv in parts[1].split(",") if "=" in kv)
        acc = usage.setdefault(slurm_id, {"cpu_seconds": 0.0, "memory": 0, "processes": 0})
        cpu = cpu_seconds(tres.get("cpu", ""))
        mem = memory_bytes(tres.get("mem", ""))
        if cpu is not None:
            acc["cpu_seconds"] += cpu
        if mem is not None:
            acc["memory"] += mem
        if parts[2].isdigit():
            acc["processes"] += int(parts[2])
    return usage
