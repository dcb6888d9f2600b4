"""``corral export kueue``: corral's queues as Kueue objects (``kueue.x-k8s.io/v1beta2``).

* a **ResourceFlavor** per GPU model of the machine (``nodeLabels``:
  ``nvidia.com/gpu.product``, the product name as GPU Feature Discovery writes it), and
  ``default-flavor`` (no node labels) for cpu, memory and extended resources -- and for
  GPUs too when the machine has none to name a model by;
* a **ClusterQueue** per corral queue (``default`` included), all in one cohort named
  after the machine, as corral's queues share the machine: ``nominal``,
  ``borrowing_limit`` and ``lending_limit`` are ``nominalQuota``, ``borrowingLimit`` and
  ``lendingLimit`` 1:1. Kueue needs a quota for every resource a Workload asks for, where
  corral limits a resource a quota does not name by the nodes only; such a resource (and
  every resource of a queue without ``nominal``: the whole machine) gets the machine's
  allocatable amount, borrowing nothing (it has the machine) and, when the queue's quota
  does not name it, lending nothing (corral does not pool it);
* a **LocalQueue** per ClusterQueue (in ``namespace``): what a Job's
  ``kueue.x-k8s.io/queue-name`` label names (:mod:`.kubernetes`);
* a **WorkloadPriorityClass** per priority class (``kueue.x-k8s.io/priority-class``).

The policies map where Kueue has them (``best-effort-fifo``/``priority``:
BestEffortFIFO, ``strict-fifo``: StrictFIFO; ``preemption: true``: reclaim within the
cohort from any borrower, preempt lower priorities within a queue). What has no
equivalent (``max_user_gpus``, ``max_user_jobs``, ``sjf``, ``sjf-aging``, ``las``,
``fair-share``, backfill,
per-queue default classes, who may use a class) is a comment, never dropped silently.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import ValidationError
from ..resources import CPU, GPU, MEMORY, sort_key
from .machine import Machine
from .names import dns_subdomain, floor_mebibytes, label_value, quantity, unique
from .pods import GPU_PRODUCT
from .render import Manifest

API = "kueue.x-k8s.io/v1beta2"
DEFAULT_FLAVOR = "default-flavor"
_STRATEGY = {"best-effort-fifo": "BestEffortFIFO", "priority": "BestEffortFIFO", "strict-fifo": "StrictFIFO"}
_NO_POLICY = {
    "sjf": "shortest expected run time first",
    "fair-share": "dominant resource fairness between users, with decayed history",
    "sjf-aging": "shortest expected run time first, with aging and a bound on the wait",
    "las": "least attained service first, in levels, preempting resumable jobs by it",
}


class _Flavor:
    def __init__(self, name: str, model: str | None, covers: tuple[str, ...]):
        self.name, self.model, self.covers = name, model, covers


def _flavors(machine: Machine, resources: list[str]) -> tuple[list[_Flavor], list[list[_Flavor]]]:
    """The flavors, and per resource group (covering resources in order) its flavors."""
    gpu_flavors = []
    names = {}
    for i, model in enumerate(machine.gpu_models):
        product = label_value(model, f"GPU model {i}")
        names[model] = dns_subdomain(product, f"GPU model {i}")
        gpu_flavors.append(_Flavor(names[model], model, (GPU,)))
    unique(names, "GPU models")
    base = tuple(r for r in resources if r != GPU or not gpu_flavors)
    default = _Flavor(DEFAULT_FLAVOR, None, base)
    groups = [[default]] + ([gpu_flavors] if gpu_flavors and GPU in resources else [])
    return [default, *gpu_flavors], groups


def _machine_amount(machine: Machine, flavor: _Flavor, resource: str) -> int:
    if flavor.model is not None:
        return machine.gpu_count(flavor.model)
    amount = machine.allocatable.get(resource, 0)
    return floor_mebibytes(amount) if resource == MEMORY else amount


def _quota(queue: Any, resource: str, machine_amount: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": resource}
    if queue.nominal is None or resource not in queue.nominal:
        entry["nominalQuota"] = quantity(resource, machine_amount)
        entry["borrowingLimit"] = "0"
        if queue.nominal is not None:
            entry["lendingLimit"] = "0"
        elif queue.lending_limit is not None and resource in queue.lending_limit:
            entry["lendingLimit"] = quantity(resource, min(queue.lending_limit[resource], machine_amount))
        return entry
    nominal = queue.nominal[resource]
    entry["nominalQuota"] = quantity(resource, nominal)
    if queue.borrowing_limit is not None and resource in queue.borrowing_limit:
        entry["borrowingLimit"] = quantity(resource, queue.borrowing_limit[resource])
    if queue.lending_limit is not None and resource in queue.lending_limit:
        entry["lendingLimit"] = quantity(resource, min(queue.lending_limit[resource], nominal))
    return entry


def _queue_notes(queue: Any, resources: list[str], gpu_flavors: list[_Flavor], half_life: int) -> list[str]:
    notes = []
    if queue.nominal is None:
        notes.append("no nominal in corral (the whole machine): nominalQuota is the machine's allocatable amount, "
                     "borrowingLimit 0")
    else:
        unnamed = [r for r in resources if r not in queue.nominal]
        if unnamed:
            notes.append(f"{', '.join(unnamed)}: not in this queue's corral quota (limited by the nodes only): "
                         "nominalQuota is the machine's allocatable amount, borrowing and lending nothing")
        if GPU in queue.nominal and len(gpu_flavors) > 1:
            n = queue.nominal[GPU]
            notes.append(f"{GPU}: corral's quota ({n}) counts GPUs of every model together, Kueue's counts per "
                         f"flavor: each of the {len(gpu_flavors)} GPU flavors has {n}, so this queue may hold up to "
                         f"{n * len(gpu_flavors)} at once")
    if queue.policy in _NO_POLICY:
        extra = f", half-life {half_life // 86400}d" if queue.policy == "fair-share" else ""
        notes.append(f"policy {queue.policy} ({_NO_POLICY[queue.policy]}{extra}): no Kueue equivalent; Kueue orders "
                     "by priority, then creation time")
    elif queue.policy not in _STRATEGY:
        notes.append(f"policy {queue.policy}: no Kueue equivalent; Kueue orders by priority, then creation time")
    if queue.max_user_gpus is not None:
        notes.append(f"max_user_gpus: {queue.max_user_gpus} (no Kueue equivalent: Kueue's quotas are per "
                     "ClusterQueue, not per user; a ClusterQueue and LocalQueue per user's namespace comes closest)")
    if queue.max_user_jobs is not None:
        notes.append(f"max_user_jobs: {queue.max_user_jobs} (no Kueue equivalent: Kueue limits quota, not how many "
                     "Workloads one user runs)")
    if queue.priority_class:
        notes.append(f"priority_class: {queue.priority_class} (this queue's jobs that name no class get it; no "
                     f"Kueue equivalent: label its Jobs kueue.x-k8s.io/priority-class: {queue.priority_class})")
    return notes


def _cluster_queue(queue: Any, name: str, cohort: str, groups: list[list[_Flavor]], machine: Machine,
                   preemption: bool, notes: list[str]) -> Manifest:
    resource_groups = []
    for flavors in groups:
        covered = list(flavors[0].covers)
        resource_groups.append({"coveredResources": covered, "flavors": [
            {"name": f.name, "resources": [_quota(queue, r, _machine_amount(machine, f, r)) for r in covered]}
            for f in flavors]})
    spec: dict[str, Any] = {"cohortName": cohort, "namespaceSelector": {},
                            "queueingStrategy": _STRATEGY.get(queue.policy, "BestEffortFIFO"),
                            "resourceGroups": resource_groups}
    if preemption:
        spec["preemption"] = {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"}
    return Manifest({"apiVersion": API, "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec},
                    tuple(notes))


def _priority_class(pc: Any) -> Manifest:
    notes = []
    if pc.default:
        notes.append(f"default: true (jobs naming no class get {pc.name}): no Kueue equivalent; a Workload without "
                     "kueue.x-k8s.io/priority-class has priority 0 (or its pods' PriorityClass)")
    if not pc.preempt:
        notes.append("preempt: false (may not preempt): no Kueue equivalent; a WorkloadPriorityClass only orders "
                     "and preempts by value")
    if pc.users or pc.groups or pc.queues:
        who = "; ".join(f"{k} {', '.join(v)}" for k, v in (("users", pc.users), ("groups", pc.groups),
                                                            ("queues", pc.queues)) if v)
        notes.append(f"open only to {who}: no Kueue equivalent (an admission policy can restrict the label)")
    body = {"apiVersion": API, "kind": "WorkloadPriorityClass", "metadata": {"name": pc.name}, "value": pc.value,
            "description": f"corral priority class {pc.name}"}
    return Manifest(body, tuple(notes))


def _resources(queues: Sequence[Any], machine: Machine) -> list[str]:
    """What the ClusterQueues cover: what the machine has and every resource a quota names."""
    names = {CPU, MEMORY} | {r for r, v in machine.allocatable.items() if v > 0}
    for q in queues:
        for quota in (q.nominal, q.borrowing_limit, q.lending_limit):
            names |= set(quota or ())
    return sorted(names, key=sort_key)


def export_kueue(config: Any, machine: Machine, namespace: str = "default") -> tuple[list[Manifest], list[str]]:
    """The manifests for ``config`` (a :class:`corral.config.Config`) on ``machine``, and
    the header lines (the machine, and switches without an equivalent)."""
    queues = config.scheduling.queues
    resources = _resources(queues, machine)
    flavors, groups = _flavors(machine, resources)
    try:
        cohort = dns_subdomain(machine.name, "node_name")
    except ValidationError:
        cohort = "corral"
    names = {q.name: dns_subdomain(q.name, f"queues[{i}].name") for i, q in enumerate(queues)}
    unique(names, "queues")
    header = [f"corral export kueue: {machine.describe()}" + (f" ({machine.source})" if machine.source else ""),
              f"cohort {cohort}: every ClusterQueue, as corral's queues share the machine"]
    if config.backfill:
        header.append("backfill: true (EASY backfill reservations): no Kueue equivalent")
    if getattr(config, "engine", "local") != "local":
        header.append(f"engine {config.engine}: the machine's amounts are this node's, not the whole cluster's")
    out = []
    for f in flavors:
        spec = {"nodeLabels": {GPU_PRODUCT: label_value(f.model, "GPU model")}} if f.model else {}
        what = f"GPUs {f.model} ({machine.gpu_count(f.model)} on {machine.name})" if f.model else \
            ", ".join(f.covers) + (" (no GPU model to name)" if GPU in f.covers else "")
        out.append(Manifest({"apiVersion": API, "kind": "ResourceFlavor", "metadata": {"name": f.name},
                             "spec": spec}, (f"flavor for {what}",)))
    out += [_priority_class(pc) for pc in config.priority_classes]
    gpu_flavors = [f for f in flavors if f.model is not None]
    for q in queues:
        notes = _queue_notes(q, resources, gpu_flavors, config.half_life)
        if names[q.name] != q.name:
            notes.insert(0, f"corral queue {q.name} is {names[q.name]} here (a DNS-1123 name), and so is its "
                            "LocalQueue (what kueue.x-k8s.io/queue-name names)")
        out.append(_cluster_queue(q, names[q.name], cohort, groups, machine, config.preemption, notes))
    for q in queues:
        out.append(Manifest({"apiVersion": API, "kind": "LocalQueue",
                             "metadata": {"name": names[q.name], "namespace": namespace},
                             "spec": {"clusterQueue": names[q.name]}}))
    return out, header
