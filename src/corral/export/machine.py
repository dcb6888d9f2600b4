"""The machine an export describes: its name, what it can hand out, its GPU models.

Kueue's quotas are numbers where corral's say "the whole machine" (a queue without a
``nominal``, a resource its quota does not name), and Kubernetes selects GPUs by the
product name NVIDIA's GPU Feature Discovery puts on nodes (``nvidia.com/gpu.product``)
where corral matches the words people write (``A100``). Both need the machine: this
module detects it the way the daemon does (:func:`corral.capacity.detect.detect_node`
with the config's ``simulate_gpus``, ``reserve``, ``resources`` and ``node_name``) and
holds the result as plain data, so the exporters stay pure and their tests give one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..resources import GPU, Resources


@dataclass(frozen=True)
class Machine:
    """``allocatable``: capacity less the system reserve, as the scheduler hands it out;
    ``gpus``: ``(model, count)`` per GPU model, in index order, models as the GPUs report
    them (NVML's ``NVIDIA A100-SXM4-80GB``)."""

    name: str
    allocatable: Resources
    gpus: tuple[tuple[str, int], ...] = ()
    #: One line on where the numbers come from (``4 simulated GPUs``, ``NVML``).
    source: str = ""

    @property
    def gpu_models(self) -> tuple[str, ...]:
        return tuple(model for model, _ in self.gpus)

    def gpu_count(self, model: str) -> int:
        return dict(self.gpus).get(model, 0)

    def describe(self) -> str:
        gpus = ", ".join(f"{n} x {m}" for m, n in self.gpus) or f"no {GPU}"
        return f"machine {self.name}: allocatable {self.allocatable.format() or 'nothing'}; GPUs: {gpus}"


def detect(config: Any) -> Machine:
    """This machine as the daemon with ``config`` (a :class:`corral.config.Config`) sees it."""
    from ..capacity.detect import detect_node

    node, info = detect_node(name=config.node_name, simulate_gpus=config.simulate_gpus,
                             reserve_cpu=config.reserve_cpu, reserve_memory=config.reserve_memory,
                             gpu_model=config.simulate_gpu_model, labels=config.node_labels,
                             extended=config.node_resources)
    counts: dict[str, int] = {}
    for gpu in sorted(node.gpus, key=lambda g: g.index):
        counts[gpu.model] = counts.get(gpu.model, 0) + 1
    return Machine(name=node.name, allocatable=node.allocatable, gpus=tuple(counts.items()),
                   source=str(info.get("gpu_source") or ""))
