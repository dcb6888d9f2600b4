"""The node model the scheduler sees: pure data, no detection, no I/O."""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field

from ..resources import CPU, GPU, Resources


class TopologyLevel(enum.IntEnum):
    """How close two GPUs are, lower is closer.

    The values follow NVML's ``nvmlGpuTopologyLevel_t`` (INTERNAL=0 ... SYSTEM=50) with
    one addition: ``NVLINK`` for a pair joined by NVLink, closer than any PCIe path.
    """

    SELF = -10
    NVLINK = -5
    INTERNAL = 0      # same board (multi-GPU card)
    SINGLE = 10       # one PCIe switch between them
    MULTIPLE = 20     # several PCIe switches, no host bridge
    HOSTBRIDGE = 30   # same PCIe host bridge
    NODE = 40         # same NUMA node, across host bridges
    SYSTEM = 50       # across NUMA nodes (SMP interconnect)


@dataclass(frozen=True)
class GpuDevice:
    index: int
    uuid: str
    model: str
    memory: int                     # bytes
    simulated: bool = False
    #: Topology level to every other GPU, by GPU index (missing means SYSTEM).
    links: tuple[tuple[int, TopologyLevel], ...] = ()

    def level_to(self, other: int) -> TopologyLevel:
        if other == self.index:
            return TopologyLevel.SELF
        for idx, level in self.links:
            if idx == other:
                return level
        return TopologyLevel.SYSTEM

    def to_dict(self) -> dict:
        return {"index": self.index, "uuid": self.uuid, "model": self.model, "memory": self.memory,
                "simulated": self.simulated,
                "links": {str(i): lvl.name for i, lvl in self.links}}

    @classmethod
    def from_dict(cls, data: dict) -> "GpuDevice":
        return cls(index=int(data["index"]), uuid=data["uuid"], model=data["model"],
                   memory=int(data["memory"]), simulated=bool(data.get("simulated", False)),
                   links=tuple((int(i), TopologyLevel[lvl]) for i, lvl in data.get("links", {}).items()))


@dataclass(frozen=True)
class Node:
    """One machine: what it has, what is kept back for the system, what jobs may use.

    ``capacity`` is what the machine has, ``reserve`` what the system keeps, and
    ``allocatable = capacity - reserve`` is what the scheduler hands out. ``cores`` are
    the CPU ids this node's jobs may run on; ``gpus`` the GPU devices by index.
    ``labels`` are the node's (key, value) labels, sorted (what a job's node selector
    matches); ``address`` where other nodes reach it (a gang's rank 0: ``MASTER_ADDR``).
    """

    name: str
    capacity: Resources
    reserve: Resources = field(default_factory=Resources)
    cores: tuple[int, ...] = ()
    gpus: tuple[GpuDevice, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    address: str = ""

    def __post_init__(self) -> None:
        if self.labels and list(self.labels) != sorted(set(self.labels)):
            object.__setattr__(self, "labels", tuple(sorted(set(self.labels))))

    @property
    def allocatable(self) -> Resources:
        return self.capacity.sub(self.reserve).clamp_zero()

    @property
    def simulated_gpus(self) -> bool:
        return any(g.simulated for g in self.gpus)

    @property
    def gpu_models(self) -> tuple[str, ...]:
        """The distinct models of its GPUs, in index order."""
        return tuple(dict.fromkeys(g.model for g in sorted(self.gpus, key=lambda g: g.index)))

    def label(self, key: str) -> str | None:
        for k, v in self.labels:
            if k == key:
                return v
        return None

    def gpu(self, index: int) -> GpuDevice:
        for g in self.gpus:
            if g.index == index:
                return g
        raise KeyError(index)

    def to_dict(self) -> dict:
        return {"name": self.name, "capacity": self.capacity.as_dict(), "reserve": self.reserve.as_dict(),
                "cores": list(self.cores), "gpus": [g.to_dict() for g in self.gpus],
                "labels": dict(self.labels), "address": self.address}

    @classmethod
    def from_dict(cls, data: dict) -> "Node":
        return cls(name=data["name"], capacity=Resources(data["capacity"]),
                   reserve=Resources(data.get("reserve", {})), cores=tuple(data.get("cores", ())),
                   gpus=tuple(GpuDevice.from_dict(g) for g in data.get("gpus", ())),
                   labels=tuple(sorted((str(k), str(v)) for k, v in data.get("labels", {}).items())),
                   address=str(data.get("address", "")))


def make_node(name: str, *, cores: int | tuple[int, ...], memory: int, gpus: int | tuple[GpuDevice, ...] = 0,
              reserve: Resources | None = None, extended: dict[str, int] | None = None,
              gpu_group: int = 2, gpu_model: str = "Simulated GPU", labels: dict[str, str] | None = None,
              address: str = "") -> Node:
    """Build a node by hand (tests, the simulator, simulated GPUs).

    ``gpus=N`` makes N simulated GPUs where each consecutive ``gpu_group`` share an NVLink
    (the rest of the pairs are SYSTEM), so topology-aware placement has something to do.
    """
    core_ids = tuple(range(cores)) if isinstance(cores, int) else tuple(cores)
    if isinstance(gpus, int):
        devices = simulated_gpus(gpus, group=gpu_group, model=gpu_model)
    else:
        devices = tuple(gpus)
    amounts = {CPU: 1000 * len(core_ids), "memory": memory, GPU: len(devices)}
    amounts.update(extended or {})
    return Node(name=name, capacity=Resources(amounts), reserve=reserve or Resources(),
                cores=core_ids, gpus=devices, labels=tuple(sorted((labels or {}).items())), address=address)


def simulated_gpus(count: int, *, group: int = 2, memory: int = 80 * 2**30,
                   model: str = "Simulated GPU") -> tuple[GpuDevice, ...]:
    """``count`` simulated GPUs; each run of ``group`` consecutive GPUs shares an NVLink.
    Immutable, so nodes alike share one tuple (a 1,000-node simulated cluster builds one)."""
    return _simulated_gpus(count, group, memory, model)


@functools.lru_cache(maxsize=256)
def _simulated_gpus(count: int, group: int, memory: int, model: str) -> tuple[GpuDevice, ...]:
    devices = []
    for i in range(count):
        links = []
        for j in range(count):
            if j == i:
                continue
            same = group > 1 and i // group == j // group
            links.append((j, TopologyLevel.NVLINK if same else TopologyLevel.SYSTEM))
        devices.append(GpuDevice(index=i, uuid=f"GPU-sim-{i:04d}", model=model, memory=memory,
                                 simulated=True, links=tuple(links)))
    return tuple(devices)
