"""Slurm's node table (``sinfo --json``) as corral nodes, and each node's state.

Pure: parses the JSON Slurm prints, so it is tested on plain dicts. CPUs come from the
node's ``cpus`` (in millicores), memory from ``real_memory`` (MiB), GPUs from its GRES
(``gpu:a100:2``, ``gpu:2(S:0-1)``, several comma-separated): devices 0..N-1 whose model
is the GRES type (what ``--gres=gpu:TYPE:N`` asks for), unknown without one.

States, as corral counts them: a node ``DOWN``, ``FAIL`` or ``NOT_RESPONDING`` is *lost*
(its jobs end NodeLost and are requeued); one drained, draining, in maintenance, powered
down or not yet registered is *NotReady* (its jobs run on, nothing new is placed there);
the rest (idle, mixed, allocated, completing) is *Ready*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from ...capacity.node import GpuDevice, Node
from ...resources import CPU, GPU, MEMORY, Resources

UNKNOWN_MODEL = "GPU (model unknown)"
#: One GRES entry: name, optional type, count, optional socket binding.
_GRES = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(?::(?P<type>[^:(]+))?:(?P<count>\d+)(?:\(.*\))?$")
_LOST = {"DOWN", "FAIL", "NOT_RESPONDING", "FUTURE"}
_NOT_READY = {"DRAIN", "DRAINED", "DRAINING", "MAINTENANCE", "MAINT", "POWERED_DOWN", "POWER_DOWN", "POWERING_DOWN",
              "UNKNOWN", "INVALID", "REBOOT_REQUESTED", "REBOOT_ISSUED", "RESERVED", "PLANNED"}
MiB = 2**20


@dataclass(frozen=True)
class SlurmNode:
    node: Node
    #: Ready, NotReady or Lost (see the module's text).
    state: str
    #: Slurm's own words for its state (``idle``, ``down*`` ...), with its reason if any.
    slurm_state: str

    @property
    def name(self) -> str:
        return self.node.name


def gpu_models(gres: str) -> list[str]:
    """The GPU model of each GPU in a node's GRES string, in device order."""
    out: list[str] = []
    for entry in (gres or "").split(","):
        m = _GRES.match(entry.strip())
        if m is None or m.group("name") != "gpu":
            continue
        kind = m.group("type")
        out += [kind if kind else UNKNOWN_MODEL] * int(m.group("count"))
    return out


def node_state(entry: dict[str, Any]) -> str:
    """Ready, NotReady or Lost for one ``sinfo --json`` node."""
    words = {str(entry.get("state", "")).upper()} | {str(f).upper() for f in entry.get("state_flags") or ()}
    if words & _LOST:
        return "Lost"
    if words & _NOT_READY:
        return "NotReady"
    return "Ready"


def to_node(entry: dict[str, Any]) -> SlurmNode:
    name = str(entry["name"])
    models = gpu_models(str(entry.get("gres", "")))
    amounts = {CPU: int(entry.get("cpus") or 0) * 1000, MEMORY: int(entry.get("real_memory") or 0) * MiB,
               GPU: len(models)}
    devices = tuple(GpuDevice(index=i, uuid=f"{name}-gpu{i}", model=m, memory=0) for i, m in enumerate(models))
    flags = [str(f).lower() for f in entry.get("state_flags") or ()]
    words = "+".join([str(entry.get("state", "")).lower(), *flags])
    if entry.get("reason"):
        words += f" ({entry['reason']})"
    node = Node(name=name, capacity=Resources(amounts), gpus=devices, address=str(entry.get("address") or ""))
    return SlurmNode(node=node, state=node_state(entry), slurm_state=words)


def read_nodes(data: dict[str, Any], partition: str) -> list[SlurmNode]:
    """The nodes of ``partition`` in ``sinfo --json`` output, by name."""
    out = []
    for entry in data.get("nodes") or ():
        if partition and partition not in (entry.get("partitions") or ()):
            continue
        out.append(to_node(entry))
    return sorted(out, key=lambda n: n.name)


def partitions(data: dict[str, Any]) -> list[str]:
    """Every partition named in ``sinfo --json`` output."""
    seen: set[str] = set()
    for entry in data.get("nodes") or ():
        seen.update(str(p) for p in entry.get("partitions") or ())
    return sorted(seen)


def names(nodes: Iterable[SlurmNode]) -> list[str]:
    return [n.name for n in nodes]
