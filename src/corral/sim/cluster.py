"""Virtual clusters for the simulator: ``16x4gpu`` or a nodes file.

``NxMgpu`` is N nodes of M GPUs each; unless given, each node has 8 CPUs and 64Gi of
memory per GPU so that GPUs are the resource that binds (traces such as Philly carry no
CPU or memory figures). The long form adds them: ``16x4gpu,32cpu,256Gi``. A nodes file
is YAML: ``nodes: [{name: a, cpu: "32", memory: 256Gi, gpus: 4, count: 8}, ...]``, or
the Alibaba openb node list (a ``.csv`` file, :func:`corral.sim.loaders.load_alibaba_nodes`).
Simulated nodes pin no cores (only millicore accounting), and each node's GPUs are
NVLink pairs (see :func:`corral.capacity.node.simulated_gpus`).
"""

from __future__ import annotations

import re

from ..capacity.node import Node, simulated_gpus
from ..errors import ValidationError
from ..resources import CPU, GPU, MEMORY, Resources, parse_quantity

_SPEC = re.compile(r"^(?P<n>\d+)x(?P<g>\d+)gpu(?:,(?P<cpu>[^,]+)cpu)?(?:,(?P<mem>[^,]+))?$")
_EXPECTED = "expected e.g. 16x4gpu or 16x4gpu,32cpu,256Gi, or a nodes file"


def parse_cluster(text: str) -> list[Node]:
    m = _SPEC.match(text.strip())
    if not m:
        raise ValidationError("cluster", text, _EXPECTED)
    count, gpus = int(m["n"]), int(m["g"])
    if count < 1:
        raise ValidationError("cluster", text, "expected at least one node")
    cpu = parse_quantity(CPU, m["cpu"]) if m["cpu"] else 8000 * max(gpus, 1)
    mem = parse_quantity(MEMORY, m["mem"]) if m["mem"] else 64 * 2**30 * max(gpus, 1)
    return [make_sim_node(f"n{i:04d}", cpu=cpu, memory=mem, gpus=gpus) for i in range(count)]


def make_sim_node(name: str, *, cpu: int, memory: int, gpus: int, model: str = "Simulated GPU",
                  extended: dict[str, int] | None = None) -> Node:
    amounts = {CPU: cpu, MEMORY: memory, GPU: gpus, **(extended or {})}
    return Node(name=name, capacity=Resources(amounts), cores=(),
                gpus=simulated_gpus(gpus, model=model))


def load_nodes_file(path: str) -> list[Node]:
    import yaml

    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    items = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ValidationError(f"{path}: nodes", items, "expected a list of {name, cpu, memory, gpus, count}")
    nodes: list[Node] = []
    for i, item in enumerate(items):
        where = f"{path}: nodes[{i}]"
        if not isinstance(item, dict):
            raise ValidationError(where, item, "expected a mapping with name, cpu, memory, gpus")
        unknown = set(item) - {"name", "cpu", "memory", "gpus", "count", "model"}
        if unknown:
            raise ValidationError(f"{where}.{sorted(unknown)[0]}", sorted(unknown)[0],
                                  "accepted: name, cpu, memory, gpus, count, model", detail="unknown field")
        count = int(item.get("count", 1))
        base = str(item.get("name", f"node{i}"))
        for k in range(count):
            nodes.append(make_sim_node(
                base if count == 1 else f"{base}-{k}",
                cpu=parse_quantity(CPU, item.get("cpu", "8")),
                memory=parse_quantity(MEMORY, item.get("memory", "64Gi")),
                gpus=parse_quantity(GPU, item.get("gpus", 0)),
                model=str(item.get("model", "Simulated GPU"))))
    return nodes


def cluster_from(text: str) -> list[Node]:
    """``16x4gpu``-style text, or the path of a nodes file (YAML, or ``.csv``: the Alibaba
    openb node list ``sn,cpu_milli,memory_mib,gpu,model``)."""
    if _SPEC.match(text.strip()):
        return parse_cluster(text)
    import os

    if os.path.exists(text):
        if text.lower().endswith(".csv"):          # the Alibaba openb node list
            from .loaders import load_alibaba_nodes

            return load_alibaba_nodes(text)
        return load_nodes_file(text)
    raise ValidationError("cluster", text, _EXPECTED)
