"""Ray's node table as corral nodes.

Each entry of ``ray.nodes()`` (alive or dead) becomes a :class:`RayNode`: the corral
:class:`~corral.capacity.node.Node` the scheduler sees -- CPUs in millicores, memory in
bytes, GPUs as devices 0..N-1 with their model, custom resources that are corral-style
extended resources (``vendor.example/name``), the node's labels and address -- plus Ray's
node id and whether Ray says it is alive. Pure: no Ray import, so it is tested on plain
dicts.

Names: a node's corral name is its ``corral.dev/node`` label when it has one (the local
test cluster sets it; a real cluster can set it with ``ray start --labels``), else its
hostname, made unique with the start of its node id when several nodes share a host.
The GPU model: the ``corral.dev/gpu-model`` label, else Ray's accelerator type (its
``ray.io/accelerator-type`` label or ``accelerator_type:X`` resource), else unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from ...capacity.node import GpuDevice, Node
from ...resources import CPU, GPU, MEMORY, Resources

NODE_LABEL = "corral.dev/node"
GPU_MODEL_LABEL = "corral.dev/gpu-model"
ACCELERATOR_LABEL = "ray.io/accelerator-type"
NODE_ID_LABEL = "ray.io/node-id"
UNKNOWN_MODEL = "GPU (model unknown)"
#: Ray resources that are not corral resources: per-node markers, Ray's own accounting,
#: placement-group bundles (``CPU_group_<id>``).
_SKIP = re.compile(r"^(node:|accelerator_type:|corral/node:|object_store_memory$|bundle_group_)|_group_")
_EXTENDED = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


@dataclass(frozen=True)
class RayNode:
    node: Node
    ray_id: str
    alive: bool

    @property
    def name(self) -> str:
        return self.node.name


def _model(entry: dict[str, Any], labels: dict[str, str]) -> str:
    if labels.get(GPU_MODEL_LABEL):
        return labels[GPU_MODEL_LABEL]
    if labels.get(ACCELERATOR_LABEL):
        return labels[ACCELERATOR_LABEL]
    for key in entry.get("Resources", {}):
        if key.startswith("accelerator_type:"):
            return key.split(":", 1)[1]
    return UNKNOWN_MODEL


def to_node(entry: dict[str, Any], name: str) -> Node:
    """One ``ray.nodes()`` entry as a corral node named ``name``."""
    res = entry.get("Resources", {}) or {}
    labels = {str(k): str(v) for k, v in (entry.get("Labels") or {}).items()}
    amounts: dict[str, int] = {CPU: int(round(float(res.get("CPU", 0)) * 1000)),
                               MEMORY: int(float(res.get("memory", 0)))}
    gpus = int(float(res.get("GPU", 0)))
    amounts[GPU] = gpus
    for key, value in res.items():
        if key in ("CPU", "GPU", "memory") or _SKIP.search(key) or not _EXTENDED.match(key):
            continue
        amounts[key] = int(float(value))
    model = _model(entry, labels) if gpus else UNKNOWN_MODEL
    devices = tuple(GpuDevice(index=i, uuid=f"{name}-gpu{i}", model=model, memory=0) for i in range(gpus))
    return Node(name=name, capacity=Resources(amounts), gpus=devices, labels=tuple(sorted(labels.items())),
                address=str(entry.get("NodeManagerAddress", "")))


def read_nodes(entries: Iterable[dict[str, Any]], known: dict[str, str] | None = None) -> list[RayNode]:
    """``ray.nodes()`` as :class:`RayNode` s. ``known``: Ray node id -> the name given
    before, so a node keeps its name while the table changes."""
    entries = list(entries)
    known = known or {}
    hosts: dict[str, int] = {}
    for e in entries:
        labels = e.get("Labels") or {}
        if not labels.get(NODE_LABEL):
            host = str(e.get("NodeManagerHostname") or e.get("NodeManagerAddress") or "node")
            hosts[host] = hosts.get(host, 0) + 1
    out = []
    for e in entries:
        ray_id = str(e.get("NodeID", ""))
        labels = e.get("Labels") or {}
        name = known.get(ray_id)
        if name is None:
            if labels.get(NODE_LABEL):
                name = str(labels[NODE_LABEL])
            else:
                host = str(e.get("NodeManagerHostname") or e.get("NodeManagerAddress") or "node")
                name = host if hosts.get(host, 0) <= 1 else f"{host}-{ray_id[:6]}"
        out.append(RayNode(node=to_node(e, name), ray_id=ray_id, alive=bool(e.get("Alive", False))))
    return out


def bundle(piece_requests: Resources, node: RayNode) -> tuple[dict[str, float], dict[str, str]]:
    """The placement-group bundle that holds one piece in Ray, and the label selector
    that pins it to its node."""
    amounts: dict[str, float] = {}
    for name, value in piece_requests.items():
        if name == CPU:
            amounts["CPU"] = value / 1000
        elif name == GPU:
            amounts["GPU"] = float(value)
        elif name == MEMORY:
            amounts["memory"] = float(value)
        else:
            amounts[name] = float(value)
    if not amounts:
        amounts["CPU"] = 0.001          # a bundle must hold something
    return amounts, {NODE_ID_LABEL: node.ray_id}
