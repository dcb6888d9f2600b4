"""Daemon configuration: ``$CORRAL_HOME/config.yaml`` (optional), validated.

Stdlib only; PyYAML is imported lazily when a file is actually read. Every field is
optional; the file form is::

    simulate_gpus: 0            # pretend this many GPUs exist (0..64); `corral up --simulate-gpus N`
                                # or {count: 4, model: A100} (default model: "Simulated GPU")
    node_labels: {zone: lab1}   # this node's labels, matched by jobs' --node-selector / nodeSelector
    resources: {vendor.example/fpga: 2}   # extended resources this node offers (whole counts)
    max_request: 4Mi            # the largest API request body (64Ki..1Gi); larger: HTTP 413
    log_limit: 1Gi              # what a job may write to each log stream; the rest is dropped (0: no limit)
    listen: 127.0.0.1:8765      # also serve the API (and the dashboard) over TCP, with bearer tokens
    tls: {cert: /etc/corral/cert.pem, key: /etc/corral/key.pem}   # needed for a non-loopback listen
    insecure: false             # true: allow a non-loopback listen without TLS (tokens in clear text)
    rate_limit: 50              # requests per second per token over TCP (bursts of 4x)
    priority_classes:           # named priorities and who may use them (users, groups, queues)
      - {name: urgent, value: 100, preempt: true, users: [alice], groups: [leads]}
      - {name: normal, value: 0, default: true}   # what a job naming no class gets
    reserve: {cpu: 500m, memory: 1Gi}   # kept back for the system; memory omitted = daemon decides
    defaults: {cpu: "1"}        # requests for resources a job does not mention at all
    policy: best-effort-fifo    # the default queue's order: strict-fifo, priority, sjf, sjf-aging, las,
                                # fair-share (busy machines: las, or sjf-aging; see below)
    las: {levels: [30m, 6h, 36h]}   # las: level boundaries, in GPU-time attained (these are the defaults)
    engine: {type: local}       # where jobs run: local (this machine's processes), or
                                # {type: ray, address: HOST:PORT, start_timeout: 60s}:
                                # the nodes of a running Ray cluster (corral places, Ray runs)
    kill_grace: 10s             # SIGTERM -> SIGKILL grace; a bare number (or number string) is seconds
    node_name: gpu-box-1        # default: the machine's hostname (resolved by the daemon)
    enforcement: auto           # auto | cgroup | watchdog (see below)
    pids_limit: 16384           # tasks per job under a cgroup; 0 = no limit
    sample_interval: 2s         # how often running jobs are measured (CPU, memory, GPUs)
    series_interval: 30s        # one usage row per job per this interval in the store
    idle_gpu:                   # idle-GPU reclaim (per job: spec.idleGpu overrides fields)
      threshold: 5%             # utilization under this is idle
      window: 30m               # idle this long -> first action
      step: 10m                 # between further actions
      actions: [warn]           # any of warn, signal, cancel|requeue, in order; [] = off
      signal: SIGUSR1           # what the "signal" action sends
    retention: 30d              # finished jobs and their logs are deleted after this; 0 = keep
    cost:                       # optional rates for `corral usage`, per hour
      cpu: 0.04                 # per core-hour allocated
      memory: 0.005             # per GiB-hour allocated
      nvidia.com/gpu: 2.50      # per GPU-hour allocated
      energy: 0.15              # per kWh drawn by GPUs
      currency: USD
    mode: auto                  # auto (system when the daemon runs as root, else user) | user | system
    socket_group: corral        # system mode: members may use the socket (root:GROUP 0660)
    admin_group: corral-admin   # system mode: members may act on every job (root always may)
    queues:                     # quotas (Kueue-style); jobs name one with --queue (default: default)
      - name: research
        nominal: {nvidia.com/gpu: 4}          # guaranteed
        borrowing_limit: {nvidia.com/gpu: 2}  # at most this beyond nominal, from idle quota
        lending_limit: {nvidia.com/gpu: 2}    # at most this of its idle nominal lent to others
        policy: fair-share                    # best-effort-fifo | strict-fifo | priority | sjf | sjf-aging | las | fair-share
        max_user_gpus: 2
        max_user_jobs: 8
        priority_class: normal                # this queue's jobs that name no class get it
    fair_share: {half_life: 7d} # past usage counts half after this long
    backfill: false             # EASY backfill: reserve for the first blocked job (time limits)
    preemption: false           # a higher priority, or a queue reclaiming its nominal, preempts

``policy``: ``best-effort-fifo`` (the default) starts jobs in submit order, skipping
those that do not fit; right for a machine that is rarely full, where the order matters
little. For a **busy machine** -- jobs often wait, many users, a mix of short and long
jobs -- choose ``las`` when the long jobs checkpoint (:mod:`corral.scheduler.policies.las`):
least attained service first, in levels (``las.levels``, GPU-time run so far), so a job
that has run long goes behind new ones and *resumable* jobs (``resumable: true``: they
save their work on their stop signal and continue from it, ``CORRAL_SERVED`` telling them
how long they have run) are preempted for jobs of a lower level; with aging and a bound
on the wait. It needs no run-time estimates. On contended Philly traces it comes within
1.6x of the lower bound on the mean completion time, about oracle SRTF
(docs/benchmarks.md, "A default for busy machines: las"). Without checkpoints choose ``sjf-aging`` (:mod:`corral.scheduler.policies.sjf_aging`): shortest
expected run time first (the job's ``time_limit``, else what the user's recent jobs of
the same GPU count took), with aging so that long jobs move up as they wait and a bound
on the wait after which a job holds its queue until it starts. On contended Philly
traces it about halves the mean completion time against ``best-effort-fifo``
(docs/benchmarks.md, "A default for busy machines"). It does not preempt; time limits
make its order better from a user's first job on. ``sjf`` is the same order without
aging (a long job can wait as long as short ones keep coming).

``mode``: in ``user`` mode the daemon belongs to one user (its socket is 0600, every
job runs as that user). In ``system`` mode the daemon runs as root, each job runs as the
user who submitted it (taken from the socket's peer credentials), users may cancel and
read the logs of their own jobs only, and admins (root, ``admin_group``) of all. Without
``socket_group`` the system socket is 0600 (root only). Group names are checked when the
daemon starts.

``enforcement``: ``cgroup`` gives every job its own cgroup (hard memory, CPU and pids
limits, OOM kills reported; v2 or v1, detected) and refuses to start where corral cannot
create cgroups; ``watchdog`` samples each job's processes and kills a job over its memory
limit (CPU limits are then not enforced, only measured); ``auto`` (the default) uses
cgroups when it can and the watchdog otherwise. Either way ``corral nodes`` says which.

``simulate_gpus`` given to ``corral up --simulate-gpus N`` is kept in the store and wins
over the file's (:meth:`Config.merged` logs which won when they differ).

``defaults`` replaces the built-in ``{cpu: "1"}`` as a whole: ``defaults: {}`` means no
default requests, ``defaults: {memory: 2Gi}`` means a memory default and no cpu default.
Unknown fields and bad values raise a one-line :class:`~corral.errors.ValidationError`
prefixed with the file's path and naming the field, e.g.
``config.yaml: unknown field reserv (accepted: admin_group, backfill, cost, defaults, enforcement, engine, fair_share, idle_gpu, insecure, kill_grace, las, listen, log_limit, max_request, mode, node_labels, node_name, pids_limit, policy, preemption, priority_classes, queues, rate_limit, reserve, resources, retention, sample_interval, series_interval, simulate_gpus, socket_group, tls)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

from .constraints import parse_gpu_model, parse_selector
from .priorities import PriorityClass
from .durations import parse_duration
from .errors import QuantityError, ValidationError
from .resources import CPU, MEMORY, Resources, parse_quantity
from .monitor.idle import IdlePolicy, parse_idle
from .spec import _fail, _fields, _parse_resources, _quantity_error, _relocate, _why, load_yaml_all

from .scheduler.policies import POLICIES as _REGISTERED  # noqa: E402

#: Policies the daemon can run, for the default queue and for each queue (``sjf`` orders by
#: time limits, else by run times learned from history).
POLICIES = tuple(_REGISTERED)
#: Engines a daemon can run jobs on (``engine: {type: ...}``).
ENGINES = ("local", "ray", "slurm")
#: What an ``engine:`` block may hold, by engine.
ENGINE_FIELDS = {"local": ("type",), "ray": ("type", "address", "start_timeout"),
                 "slurm": ("type", "partition", "conf", "start_timeout")}
#: What a job may write to each of its logs by default: 1 GiB.
DEFAULT_LOG_LIMIT = 2**30
#: The largest API request body by default: 4 MiB.
DEFAULT_MAX_REQUEST = 4 * 2**20
MAX_MAX_REQUEST = 1 << 30
#: How long a job placed on Ray may take to start (its placement group and process).
DEFAULT_START_TIMEOUT = 60
MAX_SIMULATED_GPUS = 64
#: The model simulated GPUs report unless the config names one.
SIMULATED_GPU_MODEL = "Simulated GPU"
MAX_NODE_NAME = 253

_NODE_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z", re.ASCII)
_FILE_FIELDS = {k: k for k in ("simulate_gpus", "reserve", "defaults", "policy", "kill_grace", "node_name",
                                "enforcement", "pids_limit", "sample_interval", "series_interval", "idle_gpu",
                                "retention", "cost", "mode", "socket_group", "admin_group", "queues",
                                "fair_share", "backfill", "preemption", "engine", "node_labels",
                                "max_request", "priority_classes", "log_limit", "resources",
                                "listen", "tls", "insecure", "rate_limit", "las")}
QUEUE_FIELDS = ("name", "nominal", "borrowing_limit", "lending_limit", "policy", "max_user_gpus", "max_user_jobs",
                "priority_class")
MAX_QUEUES = 64
ENFORCEMENT = ("auto", "cgroup", "watchdog")
MODES = ("auto", "user", "system")
#: POSIX-ish group names (what groupadd accepts, plus the digits-only form).
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_][-A-Za-z0-9_.]{0,31}\$?\Z", re.ASCII)
#: "0.5", "0.5s", "500ms": fractions of a second (parse_duration gives whole seconds).
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|ms)?\s*\Z", re.ASCII)
COST_FIELDS = ("cpu", "memory", "nvidia.com/gpu", "energy", "currency")
MAX_PIDS = 4_194_304
_RESERVE_FIELDS = {CPU: CPU, MEMORY: MEMORY}


def _default_requests() -> Resources:
    return Resources({CPU: 1000})


@dataclass(frozen=True)
class Config:
    """Validated daemon settings, in canonical units."""

    simulate_gpus: int = 0
    reserve_cpu: int = 0                    # millicores kept back for the system
    reserve_memory: int | None = None       # bytes; None: the daemon decides
    default_requests: Resources = field(default_factory=_default_requests)
    policy: str = "best-effort-fifo"
    kill_grace: int = 10                    # seconds
    node_name: str | None = None            # None: the machine's hostname
    enforcement: str = "auto"               # auto | cgroup | watchdog
    pids_limit: int = 16384                 # per job under a cgroup; 0 = none
    sample_interval: float = 2.0            # seconds
    series_interval: float = 30.0           # seconds
    idle_gpu: IdlePolicy = field(default_factory=IdlePolicy)
    retention: int = 30 * 86400             # seconds; 0 = keep forever
    cost: dict[str, Any] = field(default_factory=dict)   # resource -> rate per hour; "currency"
    mode: str = "auto"                      # auto | user | system
    socket_group: str | None = None         # system mode: group allowed on the socket
    admin_group: str | None = None          # system mode: group whose members are admins
    #: Queues with quotas; a ``default`` queue is added unless they name one: the whole
    #: machine, ordered by ``policy``.
    queues: tuple[Any, ...] = ()             # corral.scheduler.types.QueueSpec
    half_life: int = 7 * 86400               # fair share: past usage counts half after this
    #: ``las``: its level boundaries in GPU-seconds of attained service (empty: the policy's).
    service_levels: tuple[int, ...] = ()
    backfill: bool = False                   # EASY backfill reservations (uses time limits)
    preemption: bool = False                 # higher priority / quota reclaim may preempt
    engine: str = "local"                    # where jobs run (ENGINES)
    engine_address: str = ""                 # ray: the cluster's GCS address, HOST:PORT
    engine_start_timeout: int = DEFAULT_START_TIMEOUT   # seconds until a placed job must run
    engine_partition: str = ""               # slurm: the partition corral places jobs in
    engine_conf: str = ""                    # slurm: a slurm.conf other than SLURM_CONF's / the default
    #: This machine's node labels (what jobs' node selectors match).
    node_labels: dict[str, str] = field(default_factory=dict)
    #: The largest API request body the daemon reads (bytes).
    max_request: int = DEFAULT_MAX_REQUEST
    #: Bytes a job may write to each log stream; beyond it output is dropped (0: no limit).
    log_limit: int = DEFAULT_LOG_LIMIT
    #: The TCP listener (:mod:`corral.daemon.listen`): HOST:PORT, TLS files, and whether a
    #: non-loopback address may go without TLS; requests per second per token.
    listen: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure: bool = False
    rate_limit: float = 50.0
    #: Named priority levels and who may use them (:mod:`corral.priorities`).
    priority_classes: tuple[Any, ...] = ()
    simulate_gpu_model: str = SIMULATED_GPU_MODEL    # the model simulated GPUs report
    #: Extended resources this node offers (``resources: {vendor.example/fpga: 2}``):
    #: whole counts, added to what is detected; jobs request them like GPUs.
    node_resources: dict[str, int] = field(default_factory=dict)

    @property
    def scheduling(self) -> Any:
        """The queues (with ``default``) and switches the scheduler runs with
        (:class:`corral.scheduler.settings.Scheduling`)."""
        from .scheduler.settings import Scheduling

        return Scheduling.make(tuple(self.queues), policy=self.policy, backfill=self.backfill,
                               preemption=self.preemption, half_life=float(self.half_life),
                               service_levels=tuple(float(x) for x in self.service_levels))

    @property
    def reserve(self) -> Resources:
        """The reservation as a resource vector (memory absent when the daemon decides)."""
        return Resources({CPU: self.reserve_cpu, MEMORY: self.reserve_memory or 0})

    def to_dict(self) -> dict[str, Any]:
        """JSON form (canonical units)."""
        return {
            "simulate_gpus": self.simulate_gpus,
            "simulate_gpu_model": self.simulate_gpu_model,
            "reserve_cpu": self.reserve_cpu,
            "reserve_memory": self.reserve_memory,
            "default_requests": self.default_requests.as_dict(),
            "policy": self.policy,
            "kill_grace": self.kill_grace,
            "node_name": self.node_name,
            "enforcement": self.enforcement,
            "pids_limit": self.pids_limit,
            "sample_interval": self.sample_interval,
            "series_interval": self.series_interval,
            "idle_gpu": self.idle_gpu.to_dict(),
            "retention": self.retention,
            "cost": dict(self.cost),
            "mode": self.mode,
            "socket_group": self.socket_group,
            "admin_group": self.admin_group,
            "queues": [_queue_dict(q) for q in self.queues],
            "half_life": self.half_life,
            "service_levels": list(self.service_levels),
            "backfill": self.backfill,
            "preemption": self.preemption,
            "engine": self.engine,
            "engine_address": self.engine_address,
            "engine_start_timeout": self.engine_start_timeout,
            "engine_partition": self.engine_partition,
            "engine_conf": self.engine_conf,
            "node_labels": dict(self.node_labels),
            "max_request": self.max_request,
            "log_limit": self.log_limit,
            "listen": self.listen, "tls_cert": self.tls_cert, "tls_key": self.tls_key, "insecure": self.insecure,
            "rate_limit": self.rate_limit,
            "priority_classes": [c.to_dict() for c in self.priority_classes],
            "node_resources": dict(self.node_resources),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Config":
        """Inverse of :meth:`to_dict` (trusted input); missing keys take the defaults."""
        base = cls()
        return cls(
            simulate_gpus=int(data.get("simulate_gpus", base.simulate_gpus)),
            simulate_gpu_model=str(data.get("simulate_gpu_model", base.simulate_gpu_model)),
            reserve_cpu=int(data.get("reserve_cpu", base.reserve_cpu)),
            reserve_memory=data.get("reserve_memory", base.reserve_memory),
            default_requests=Resources(data["default_requests"]) if "default_requests" in data
            else base.default_requests,
            policy=data.get("policy", base.policy),
            kill_grace=int(data.get("kill_grace", base.kill_grace)),
            node_name=data.get("node_name", base.node_name),
            enforcement=data.get("enforcement", base.enforcement),
            pids_limit=int(data.get("pids_limit", base.pids_limit)),
            sample_interval=float(data.get("sample_interval", base.sample_interval)),
            series_interval=float(data.get("series_interval", base.series_interval)),
            idle_gpu=IdlePolicy.from_dict(data["idle_gpu"]) if "idle_gpu" in data else base.idle_gpu,
            retention=int(data.get("retention", base.retention)),
            cost=dict(data.get("cost", base.cost)),
            mode=data.get("mode", base.mode),
            socket_group=data.get("socket_group", base.socket_group),
            admin_group=data.get("admin_group", base.admin_group),
            queues=tuple(_queue_from_dict(q) for q in data.get("queues", ())),
            half_life=int(data.get("half_life", base.half_life)),
            service_levels=tuple(int(x) for x in data.get("service_levels", base.service_levels)),
            backfill=bool(data.get("backfill", base.backfill)),
            preemption=bool(data.get("preemption", base.preemption)),
            engine=str(data.get("engine", base.engine)),
            engine_address=str(data.get("engine_address", base.engine_address)),
            engine_start_timeout=int(data.get("engine_start_timeout", base.engine_start_timeout)),
            engine_partition=str(data.get("engine_partition", base.engine_partition)),
            engine_conf=str(data.get("engine_conf", base.engine_conf)),
            node_labels=dict(data.get("node_labels", base.node_labels)),
            max_request=int(data.get("max_request", base.max_request)),
            log_limit=int(data.get("log_limit", base.log_limit)),
            listen=data.get("listen"), tls_cert=data.get("tls_cert"), tls_key=data.get("tls_key"),
            insecure=bool(data.get("insecure", False)), rate_limit=float(data.get("rate_limit", base.rate_limit)),
            priority_classes=tuple(PriorityClass.from_dict(c) for c in data.get("priority_classes") or ()),
            node_resources={str(k): int(v) for k, v in (data.get("node_resources") or {}).items()},
        )

    def merged(self, **overrides: Any) -> "Config":
        """A copy with every non-None override replacing its field, validated.

        Values are in the field's own units (``reserve_cpu`` millicores, ``reserve_memory``
        bytes, ``kill_grace`` seconds, ``default_requests`` a Resources or a raw mapping);
        strings are parsed like the file's values (``kill_grace="30s"``,
        ``reserve_cpu="500m"``, ``reserve_memory="1Gi"``). An unknown name is a TypeError.
        """
        known = {f.name for f in fields(self)}
        changes: dict[str, Any] = {}
        for name, value in overrides.items():
            if name not in known:
                raise TypeError(f"Config.merged() got an unknown field {name!r} (known: {', '.join(sorted(known))})")
            if value is not None:
                changes[name] = _OVERRIDE_PARSERS[name](value, name)
        given = changes.get("simulate_gpus")
        if given is not None and self.simulate_gpus and given != self.simulate_gpus:
            import logging

            logging.getLogger("corral.config").warning(
                "simulate_gpus: %d from `corral up --simulate-gpus %d` (kept in the store) wins over "
                "simulate_gpus: %d in config.yaml", given, given, self.simulate_gpus)
        return replace(self, **changes) if changes else self


# -- field parsers (value, path) -> canonical value ---------------------------------------

def _parse_simulate_gpus(value: object, path: str, *, also: str = "") -> int:
    expected = f"expected a whole number from 0 to {MAX_SIMULATED_GPUS}{also}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, value, expected)
    if not 0 <= value <= MAX_SIMULATED_GPUS:
        raise _fail(path, value, expected)
    return value


_SIMULATED_FIELDS = {"count": "count", "model": "model"}


def _parse_simulated(value: object, path: str) -> dict[str, Any]:
    """The file's ``simulate_gpus``: a count, or ``{count: 4, model: A100}`` -> Config fields."""
    if not isinstance(value, Mapping):
        return {"simulate_gpus": _parse_simulate_gpus(value, path, also=", or {count: N, model: NAME}, "
                                                                        "e.g. {count: 4, model: A100}")}
    fields_ = _fields(value, path, _SIMULATED_FIELDS)
    if "count" not in fields_:
        raise _fail(f"{path}.count", None, f"expected a whole number from 0 to {MAX_SIMULATED_GPUS}",
                    message=f"missing field {path}.count (expected a whole number from 0 to {MAX_SIMULATED_GPUS}, "
                            "e.g. {count: 4, model: A100})")
    out: dict[str, Any] = {"simulate_gpus": _parse_simulate_gpus(fields_["count"][1], f"{path}.count")}
    if "model" in fields_:
        out["simulate_gpu_model"] = parse_gpu_model(fields_["model"][1], f"{path}.model")
    return out


def _parse_quantity_at(resource: str, value: object, path: str) -> int:
    """A non-negative amount (zero allowed) with errors naming ``path``."""
    try:
        return parse_quantity(resource, value)
    except QuantityError as err:
        raise _quantity_error(path, value, err.expected, _why(err)) from None


def _parse_reserve_cpu(value: object, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):  # already millicores
        if value < 0:
            raise _quantity_error(path, value, "expected e.g. 2, 500m, 0.5", "must not be negative")
        return value
    return _parse_quantity_at(CPU, value, path)


def _parse_reserve_memory(value: object, path: str) -> int | None:
    if value is None:
        return None
    return _parse_quantity_at(MEMORY, value, path)


def _parse_defaults(value: object, path: str) -> Resources:
    if isinstance(value, Resources):
        for name, amount in value.items():
            if name not in (CPU, MEMORY):
                raise _fail(f"{path}.{name}", name, "expected cpu or memory", detail=f"unsupported resource in {path}")
            if amount <= 0:
                raise _fail(f"{path}.{name}", amount, "must be greater than zero")
        return value
    if value is None:
        return _default_requests()
    parsed = _parse_resources(value, path)
    for name in parsed:
        if name not in (CPU, MEMORY):
            raise _fail(f"{path}.{name}", name, "expected cpu or memory", detail=f"unsupported resource in {path}")
    return parsed


def _parse_policy(value: object, path: str) -> str:
    if value not in POLICIES:
        raise _fail(path, value, f"expected one of: {', '.join(POLICIES)}")
    return value  # type: ignore[return-value]


def _parse_listen(value: object, path: str) -> str:
    from .addresses import check_listen

    if not isinstance(value, str):
        raise _fail(path, value, "expected HOST:PORT, e.g. 127.0.0.1:8765")
    check_listen(value, tls=True, insecure=True)        # the form; where it may be is checked with tls
    return value


def _parse_tls(value: object, path: str) -> dict[str, str]:
    f = _fields(value, path, {"cert": "cert", "key": "key"})
    out = {}
    for key in ("cert", "key"):
        if key not in f:
            raise _fail(f"{path}.{key}", None, "expected it",
                        message=f"missing field {path}.{key} (tls needs cert and key: PEM files)")
        if not isinstance(f[key][1], str) or not f[key][1]:
            raise _fail(f"{path}.{key}", f[key][1], "expected the path of a PEM file")
        out[key] = f[key][1]
    return out


def _parse_rate(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100000:
        raise _fail(path, value, "expected requests per second, from 0.1 to 100000, e.g. 50")
    return float(value)


def _parse_log_limit(value: object, path: str) -> int:
    expected = "expected a size of at least 1Mi, e.g. 1Gi, or 0 for no limit"
    if value == 0 or value == "0":
        return 0
    try:
        amount = parse_quantity(MEMORY, value)
    except QuantityError:
        raise _fail(path, value, expected) from None
    if amount < 2**20:
        raise _fail(path, value, expected)
    return amount


def _parse_max_request(value: object, path: str) -> int:
    expected = "expected a size from 64Ki to 1Gi, e.g. 4Mi"
    try:
        amount = parse_quantity(MEMORY, value)
    except QuantityError:
        raise _fail(path, value, expected) from None
    if not 64 * 1024 <= amount <= MAX_MAX_REQUEST:
        raise _fail(path, value, expected)
    return amount


def _parse_classes(value: object, path: str) -> tuple[PriorityClass, ...]:
    from .priorities import MAX_CLASSES, NAME_EXPECTED, is_class_name
    from .spec import _parse_priority

    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_CLASSES:
        raise _fail(path, value, f"expected a list of at most {MAX_CLASSES} classes, each with name and value, "
                                 "e.g. [{name: urgent, value: 100}]")
    out: list[PriorityClass] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        f = _fields(item, where, {k: k for k in ("name", "value", "preempt", "users", "groups", "queues", "default")})
        for key in ("name", "value"):
            if key not in f:
                raise _fail(f"{where}.{key}", None, "expected it",
                            message=f"missing field {where}.{key} (every class has a name and a value)")
        name = f["name"][1]
        if not is_class_name(name):
            raise _fail(f"{where}.name", name, f"expected {NAME_EXPECTED}")
        if any(c.name == name for c in out):
            raise _fail(f"{where}.name", name, "expected each class name once")
        number = _parse_priority(f["value"][1], f"{where}.value")
        flags = {}
        for key, default in (("preempt", True), ("default", False)):
            flags[key] = f.get(key, ("", default))[1]
            if not isinstance(flags[key], bool):
                raise _fail(f"{where}.{key}", flags[key], "expected true or false")
        if flags["default"] and any(c.default for c in out):
            first = next(c.name for c in out if c.default)
            raise _fail(f"{where}.default", "true", f"expected default: true on one class at most ({first} has it)")
        lists = {}
        for key in ("users", "groups", "queues"):
            items = f.get(key, ("", []))[1]
            if not isinstance(items, list) or not all(isinstance(x, str) and x for x in items):
                raise _fail(f"{where}.{key}", items, f"expected a list of {key[:-1]} names")
            lists[key] = tuple(items)
        out.append(PriorityClass(name, number, flags["preempt"], lists["users"], lists["groups"], lists["queues"],
                                 flags["default"]))
    return tuple(out)


def _parse_engine(value: object, path: str) -> str:
    """An engine's name (``engine: {type: ...}`` or a bare name)."""
    return _parse_engine_block(value, path)["engine"]


_PARTITION = re.compile(r"^[A-Za-z0-9_.][-A-Za-z0-9_.]{0,63}\Z", re.ASCII)
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):(\d{1,5})\Z", re.ASCII)


def _parse_engine_block(value: object, path: str) -> dict[str, Any]:
    """``engine: {type: local}`` (a bare name is taken too) or ``engine: {type: ray,
    address: HOST:PORT, start_timeout: 60s}`` -> Config fields."""
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping):
        raise _fail(path, value, "expected {type: local}, {type: ray, address: HOST:PORT} or "
                                 "{type: slurm, partition: NAME}")
    kind = value.get("type", "local")
    if kind not in ENGINES:
        raise _fail(f"{path}.type", kind, f"expected one of: {', '.join(ENGINES)}")
    fields_ = _fields(value, path, {k: k for k in ENGINE_FIELDS[kind]})
    out: dict[str, Any] = {"engine": kind}
    if kind == "ray":
        if "address" not in fields_:
            raise _fail(f"{path}.address", None, "expected the Ray cluster's address, HOST:PORT",
                        message=f"missing field {path}.address (expected the Ray cluster's GCS address, "
                                "HOST:PORT, e.g. 10.0.0.5:6379)")
        address = fields_["address"][1]
        match = _HOST_PORT.match(address) if isinstance(address, str) else None
        if match is None or not 0 < int(match.group(3)) < 65536:
            raise _fail(f"{path}.address", address, "expected HOST:PORT, e.g. 10.0.0.5:6379")
        out["engine_address"] = address
    if kind == "slurm":
        partition = fields_["partition"][1] if "partition" in fields_ else None
        if partition is None:
            raise _fail(f"{path}.partition", None, "expected the Slurm partition corral places jobs in",
                        message=f"missing field {path}.partition (expected the Slurm partition corral places "
                                "jobs in, e.g. gpu)")
        if not isinstance(partition, str) or not _PARTITION.match(partition):
            raise _fail(f"{path}.partition", partition, "expected a Slurm partition name: letters, digits, "
                                                         "-, _ or ., at most 64")
        out["engine_partition"] = partition
        if "conf" in fields_:
            conf = fields_["conf"][1]
            if not isinstance(conf, str) or not conf.startswith("/") or "\0" in conf:
                raise _fail(f"{path}.conf", conf, "expected the absolute path of a slurm.conf")
            out["engine_conf"] = conf
    if kind in ("ray", "slurm"):
        if "start_timeout" in fields_:
            out["engine_start_timeout"] = parse_duration(
                fields_["start_timeout"][1], f"{path}.start_timeout", bare_unit=1, what="start timeout",
                examples="expected seconds or a duration, e.g. 60, 60s, 5m")
    return out


def _queue_dict(q: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": q.name, "policy": q.policy}
    for key in ("nominal", "borrowing_limit", "lending_limit"):
        value = getattr(q, key)
        out[key] = dict(value) if value is not None else None
    out["max_user_gpus"], out["max_user_jobs"] = q.max_user_gpus, q.max_user_jobs
    out["priority_class"] = q.priority_class
    return out


def _queue_from_dict(data: Mapping[str, Any]) -> Any:
    from .scheduler.queues import QueueSpec

    return QueueSpec(name=data["name"], nominal=data.get("nominal"), borrowing_limit=data.get("borrowing_limit"),
                     lending_limit=data.get("lending_limit"), policy=data.get("policy", "best-effort-fifo"),
                     max_user_gpus=data.get("max_user_gpus"), max_user_jobs=data.get("max_user_jobs"),
                     priority_class=data.get("priority_class") or "")


def _parse_amounts(value: object, path: str) -> dict[str, int] | None:
    """A quota mapping (zeros allowed): ``{nvidia.com/gpu: 4, cpu: 8, memory: 64Gi}``."""
    from .resources import canonical_name

    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _fail(path, value, 'expected a mapping of resource name to quantity, e.g. {nvidia.com/gpu: 4, cpu: "8"}')
    out: dict[str, int] = {}
    for key, amount in value.items():
        name = canonical_name(str(key))
        out[name] = _parse_quantity_at(name, amount, f"{path}.{key}")
    return out


_NODE_RESOURCES_EXPECTED = "expected a mapping of extended resource to a whole count, e.g. {vendor.example/fpga: 2}"


def _parse_node_resources(value: object, path: str) -> dict[str, int]:
    """``resources: {vendor.example/fpga: 2}``: extended resources the node offers. cpu,
    memory and GPUs are detected (``reserve`` keeps some back, ``simulate_gpus`` fakes
    GPUs), so they are refused here."""
    from .resources import GPU, canonical_name

    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, value, _NODE_RESOURCES_EXPECTED)
    out: dict[str, int] = {}
    for key, amount in value.items():
        where = f"{path}.{key}"
        if not isinstance(key, str):
            raise _fail(where, key, _NODE_RESOURCES_EXPECTED)
        try:
            name = canonical_name(key)
        except ValidationError:
            raise _fail(where, key, "expected an extended resource name such as vendor.example/fpga",
                        detail=f"invalid resource name in {path}") from None
        if name in (CPU, MEMORY, GPU):
            how = "simulate_gpus fakes GPUs" if name == GPU else "reserve keeps some back"
            raise _fail(where, key, f"expected an extended resource such as vendor.example/fpga: {name} is "
                                    f"detected ({how})", detail=f"invalid resource in {path}")
        if name in out:
            raise _fail(where, key, "each resource may appear once", detail=f"duplicate resource in {path}")
        if isinstance(amount, bool) or not isinstance(amount, (int, str)):
            raise _fail(where, amount, "expected a whole count, e.g. 2")
        out[name] = _parse_quantity_at(name, amount, where)
    return out


def _parse_count(value: object, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
        raise _fail(path, value, "expected a whole number from 0 to 1000000")
    return value


_QUEUE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?\Z", re.ASCII)


def _parse_queues(value: object, path: str) -> tuple[Any, ...]:
    from .scheduler.queues import QueueSpec

    if isinstance(value, tuple) and all(isinstance(q, QueueSpec) for q in value):
        return value
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(path, value, "expected a list of queues, each with name and optional nominal, borrowing_limit, "
                                 "lending_limit, policy, max_user_gpus, max_user_jobs")
    if len(value) > MAX_QUEUES:
        raise _fail(path, len(value), f"expected at most {MAX_QUEUES} queues")
    queues: list[QueueSpec] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        fields_ = _fields(item, where, {k: k for k in QUEUE_FIELDS})
        if "name" not in fields_:
            raise _fail(f"{where}.name", None, "expected a queue name, e.g. research",
                        message=f"missing field {where}.name (expected a queue name, e.g. research)")
        name = fields_["name"][1]
        if not isinstance(name, str) or not _QUEUE_NAME.match(name):
            raise _fail(f"{where}.name", name, "expected lower-case letters, digits, -, _ and ., at most 63, "
                                                "e.g. research")
        if any(q.name == name for q in queues):
            raise _fail(f"{where}.name", name, "expected each queue name once")
        policy = fields_.get("policy", ("policy", "best-effort-fifo"))[1]
        if policy not in POLICIES:
            raise _fail(f"{where}.policy", policy, f"expected one of: {', '.join(POLICIES)}")
        nominal = _parse_amounts(fields_.get("nominal", ("", None))[1], f"{where}.nominal")
        borrowing = _parse_amounts(fields_.get("borrowing_limit", ("", None))[1], f"{where}.borrowing_limit")
        lending = _parse_amounts(fields_.get("lending_limit", ("", None))[1], f"{where}.lending_limit")
        if lending is not None and nominal is not None:
            for r, v in lending.items():
                if v > nominal.get(r, 0):
                    raise _fail(f"{where}.lending_limit.{r}", v, f"expected at most the nominal quota "
                                                                  f"({nominal.get(r, 0)})")
        queues.append(QueueSpec(
            name=name, nominal=nominal, borrowing_limit=borrowing, lending_limit=lending, policy=policy,
            max_user_gpus=_parse_count(fields_.get("max_user_gpus", ("", None))[1], f"{where}.max_user_gpus"),
            max_user_jobs=_parse_count(fields_.get("max_user_jobs", ("", None))[1], f"{where}.max_user_jobs"),
            priority_class=_parse_class_name(fields_.get("priority_class", ("", ""))[1], f"{where}.priority_class")))
    return tuple(queues)


def _parse_class_name(value: object, path: str) -> str:
    from .priorities import NAME_EXPECTED, is_class_name

    if value == "":
        return ""
    if not is_class_name(value):
        raise _fail(path, value, f"expected the name of a priority class, {NAME_EXPECTED}")
    return str(value)


def _check_queue_classes(values: Mapping[str, Any]) -> None:
    """A queue's priority_class names a configured class."""
    names = {c.name for c in values.get("priority_classes", ())}
    for i, q in enumerate(values.get("queues", ())):
        if q.priority_class and q.priority_class not in names:
            raise _fail(f"queues[{i}].priority_class", q.priority_class,
                        "expected one of the priority_classes: " + (", ".join(sorted(names)) or "none are configured"))


def _parse_fair_share(value: object, path: str) -> int:
    """``fair_share: {half_life: 7d}`` -> the half-life in seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    fields_ = _fields(value, path, {"half_life": "half_life"})
    if "half_life" not in fields_:
        return 7 * 86400
    return parse_duration(fields_["half_life"][1], f"{path}.half_life", bare_unit=86400, what="half-life",
                          examples="expected e.g. 7d, 12h")


#: At most this many level boundaries for ``las``.
MAX_SERVICE_LEVELS = 8


def _parse_las(value: object, path: str) -> tuple[int, ...]:
    """``las: {levels: [30m, 6h, 36h]}`` -> the level boundaries in GPU-seconds (each a
    duration of GPU time: 30m is one GPU for 30 minutes, or two for 15), increasing."""
    fields_ = _fields(value, path, {"levels": "levels"})
    if "levels" not in fields_:
        return ()
    key, levels = fields_["levels"]
    where = f"{path}.{key}"
    if not isinstance(levels, list) or not 1 <= len(levels) <= MAX_SERVICE_LEVELS:
        raise _fail(where, levels, f"expected a list of 1 to {MAX_SERVICE_LEVELS} increasing GPU-times, "
                                   "e.g. [30m, 6h, 36h]")
    out: list[int] = []
    for i, item in enumerate(levels):
        seconds = parse_duration(item, f"{where}[{i}]", what="level boundary", examples="expected e.g. 30m, 6h")
        if out and seconds <= out[-1]:
            raise _fail(f"{where}[{i}]", item, f"expected more than the boundary before it ({levels[i - 1]}): "
                                               "levels increase")
        out.append(seconds)
    return tuple(out)


def _parse_flag(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, value, "expected true or false")
    return value


def _parse_kill_grace(value: object, path: str) -> int:
    return parse_duration(value, path, bare_unit=1, allow_zero=True, what="grace period",
                          examples="expected seconds or a duration, e.g. 10, 10s, 1m")


def _parse_node_name(value: object, path: str) -> str | None:
    if value is None:
        return None
    expected = (f"expected a host-like name of at most {MAX_NODE_NAME} letters, digits, -, _ and ., "
                "starting and ending with a letter or digit, e.g. gpu-box-1")
    if not isinstance(value, str) or len(value) > MAX_NODE_NAME or not _NODE_NAME.match(value):
        raise _fail(path, value, expected)
    return value


def _parse_enforcement(value: object, path: str) -> str:
    if value not in ENFORCEMENT:
        raise _fail(path, value, f"expected one of: {', '.join(ENFORCEMENT)}")
    return value  # type: ignore[return-value]


def _parse_pids_limit(value: object, path: str) -> int:
    expected = f"expected a whole number from 0 (no limit) to {MAX_PIDS}"
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PIDS:
        raise _fail(path, value, expected)
    return value


def _parse_interval(value: object, path: str) -> float:
    """Seconds, fractions allowed (a number), or a duration string (``2s``, ``1m``)."""
    expected = "expected seconds from 0.1 to 3600, e.g. 2, 0.5, 30s, 1m"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _SECONDS.match(value)):
        seconds = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    elif isinstance(value, str):
        try:
            seconds = float(parse_duration(value, path, bare_unit=1, what="interval", examples=expected))
        except ValidationError:
            raise _fail(path, value, expected) from None
    else:
        raise _fail(path, value, expected)
    if not 0.1 <= seconds <= 3600:
        raise _fail(path, value, expected)
    return seconds


def _parse_idle_gpu(value: object, path: str) -> IdlePolicy:
    if isinstance(value, IdlePolicy):
        return value
    if value is None:
        return IdlePolicy()
    return IdlePolicy().merged(parse_idle(value, path))


def _parse_retention(value: object, path: str) -> int:
    if value in (0, "0"):
        return 0
    return parse_duration(value, path, bare_unit=86400, what="retention",
                          examples="expected e.g. 30d, 12h, or 0 to keep finished jobs forever")


def _parse_cost(value: object, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, value, f"expected a mapping with fields {', '.join(COST_FIELDS)}")
    out: dict[str, Any] = {}
    for key, rate in value.items():
        full = f"{path}.{key}"
        name = "nvidia.com/gpu" if key in ("gpu", "gpus") else key
        if name not in COST_FIELDS:
            err = _fail(full, key, f"accepted: {', '.join(COST_FIELDS)}")
            err.args = (f"unknown field {full} (accepted: {', '.join(COST_FIELDS)})",)
            raise err
        if name == "currency":
            if not isinstance(rate, str) or not 0 < len(rate) <= 8 or not rate.isprintable():
                raise _fail(full, rate, "expected a short currency name, e.g. USD or EUR")
            out[name] = rate
            continue
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1e9:
            raise _fail(full, rate, "expected a non-negative number, the price per hour (energy: per kWh)")
        out[name] = float(rate)
    return out


def _parse_mode(value: object, path: str) -> str:
    if value not in MODES:
        raise _fail(path, value, f"expected one of: {', '.join(MODES)}")
    return value  # type: ignore[return-value]


def _parse_group(value: object, path: str) -> str | None:
    """A group's name (whether it exists is checked by the daemon when it starts)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _GROUP_NAME.match(value):
        raise _fail(path, value, "expected a group name, e.g. corral")
    return value


_OVERRIDE_PARSERS: dict[str, Callable[[object, str], Any]] = {
    "simulate_gpus": _parse_simulate_gpus,
    "simulate_gpu_model": parse_gpu_model,
    "node_labels": parse_selector,
    "reserve_cpu": _parse_reserve_cpu,
    "reserve_memory": _parse_reserve_memory,
    "default_requests": _parse_defaults,
    "policy": _parse_policy,
    "kill_grace": _parse_kill_grace,
    "node_name": _parse_node_name,
    "enforcement": _parse_enforcement,
    "pids_limit": _parse_pids_limit,
    "sample_interval": _parse_interval,
    "series_interval": _parse_interval,
    "idle_gpu": _parse_idle_gpu,
    "retention": _parse_retention,
    "cost": _parse_cost,
    "mode": _parse_mode,
    "queues": _parse_queues,
    "half_life": _parse_fair_share,
    "backfill": _parse_flag,
    "preemption": _parse_flag,
    "engine": _parse_engine,
    "max_request": _parse_max_request,
    "log_limit": _parse_log_limit,
    "priority_classes": _parse_classes,
    "socket_group": _parse_group,
    "admin_group": _parse_group,
    "node_resources": _parse_node_resources,
}


def _parse(data: object) -> Config:
    if not isinstance(data, Mapping):
        raise _fail("config", data, f"expected a mapping with fields {', '.join(sorted(_FILE_FIELDS))}",
                    detail="invalid config")
    top = _fields(data, "", _FILE_FIELDS)
    values: dict[str, Any] = {}
    if "simulate_gpus" in top:
        values.update(_parse_simulated(top["simulate_gpus"][1], "simulate_gpus"))
    if "reserve" in top:
        reserve = _fields(top["reserve"][1], "reserve", _RESERVE_FIELDS)
        if CPU in reserve:
            values["reserve_cpu"] = _parse_quantity_at(CPU, reserve[CPU][1], "reserve.cpu")
        if MEMORY in reserve:
            values["reserve_memory"] = _parse_reserve_memory(reserve[MEMORY][1], "reserve.memory")
    if "defaults" in top:
        values["default_requests"] = _parse_defaults(top["defaults"][1], "defaults")
    if "policy" in top:
        values["policy"] = _parse_policy(top["policy"][1], "policy")
    if "kill_grace" in top:
        values["kill_grace"] = _parse_kill_grace(top["kill_grace"][1], "kill_grace")
    for name in ("node_name", "enforcement", "pids_limit", "sample_interval", "series_interval", "idle_gpu",
                 "retention", "cost", "mode", "socket_group", "admin_group", "queues", "backfill", "preemption",
                 "node_labels", "max_request", "priority_classes", "log_limit"):
        if name in top:
            values[name] = _OVERRIDE_PARSERS[name](top[name][1], name)
    if "resources" in top:
        values["node_resources"] = _parse_node_resources(top["resources"][1], "resources")
    if "engine" in top:
        values.update(_parse_engine_block(top["engine"][1], "engine"))
    if "fair_share" in top:
        values["half_life"] = _parse_fair_share(top["fair_share"][1], "fair_share")
    if "las" in top:
        values["service_levels"] = _parse_las(top["las"][1], "las")
    if "listen" in top:
        values["listen"] = _parse_listen(top["listen"][1], "listen")
    if "tls" in top:
        tls = _parse_tls(top["tls"][1], "tls")
        values["tls_cert"], values["tls_key"] = tls["cert"], tls["key"]
    if "insecure" in top:
        values["insecure"] = _parse_flag(top["insecure"][1], "insecure")
    if "rate_limit" in top:
        values["rate_limit"] = _parse_rate(top["rate_limit"][1], "rate_limit")
    if values.get("listen"):
        from .addresses import check_listen

        check_listen(values["listen"], tls=bool(values.get("tls_cert")), insecure=values.get("insecure", False))
    _check_queue_classes(values)
    return Config(**values)


def parse_config(data: object, source: str = "<config>") -> Config:
    """Validate loaded YAML data (``None`` = empty file = defaults) into a :class:`Config`.

    Errors are prefixed with ``source``, e.g. ``config.yaml: invalid value for policy: ...``.
    """
    if data is None:
        return Config()
    try:
        return _parse(data)
    except ValidationError as err:
        raise _relocate(err, f"{source}: ") from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the config file at ``path``; a missing file means the defaults."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as err:
        why = getattr(err, "strerror", None) or str(err)
        raise _fail(source, source, "expected a readable UTF-8 YAML file",
                    message=f"{source}: cannot read config file ({why})") from None
    docs = [doc for doc in load_yaml_all(text, source=source) if doc is not None]
    if len(docs) > 1:
        raise _fail(source, len(docs), "expected a single YAML document",
                    message=f"{source}: {len(docs)} YAML documents (expected a single YAML document)")
    return parse_config(docs[0] if docs else None, source)
