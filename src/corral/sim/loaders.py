"""Read public cluster traces (and corral's own history) into a :class:`~.trace.Trace`.

``load_trace(path, format, **options)`` dispatches on ``format``:

* ``philly`` -- :func:`load_philly`, Microsoft Philly (as prepared by the Pollux artifact).
* ``alibaba`` -- :func:`load_alibaba`, Alibaba PAI "openb" pods (and optionally nodes).
* ``swf`` -- :func:`load_swf`, the Standard Workload Format of the Parallel Workloads Archive.
* ``corral`` -- :func:`load_corral`, finished jobs from a corral SQLite database.

Every loader streams its file (``csv`` module, no pandas), sorts jobs by ``(submit time,
order in the file)``, numbers them ``0..n-1`` and makes submit times relative to the
earliest one. A malformed row (wrong number of columns, a number that does not parse, a
negative duration) raises :class:`TraceFormatError` naming the file, the line and the
problem, e.g. ``philly.csv line 17: invalid duration "abc" (expected a number of
seconds)``; with ``on_error="skip"`` it is dropped and counted in ``Trace.skipped`` and
``Trace.skip_reasons`` instead. A header without the expected columns always raises.
"""

from __future__ import annotations

import csv
import functools
import gc
import math
import os
import random
import re
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Sequence

from ..capacity.node import Node, simulated_gpus
from ..errors import CorralError, ValidationError, show_value
from ..resources import CPU, GPU, MEMORY, Constraints, Resources, parse_quantity
from ..scheduler.shares import GPU_SHARE
from .trace import Trace, TraceJob

MiB = 2**20
KiB = 2**10

ON_ERROR = ("raise", "skip")


class TraceFormatError(ValidationError):
    """A trace row (or header) that does not parse: ``FILE line N: PROBLEM "VALUE" (EXPECTED)``.

    ``reason`` is the short problem without the value (``invalid duration``); it is the
    key under which ``on_error="skip"`` counts the row in ``Trace.skip_reasons``.
    """

    _NO_VALUE = object()

    def __init__(self, source: str, line: int | str, reason: str, value: object = _NO_VALUE,
                 expected: str = ""):
        self.source = source
        self.line = line
        self.reason = reason
        self.has_value = value is not TraceFormatError._NO_VALUE
        where = line if isinstance(line, str) else f"line {line}"
        super().__init__(f"{source} {where}", value if self.has_value else None, expected,
                         detail=reason)

    def _format(self) -> str:
        text = f"{self.field}: {self.reason}"
        if self.has_value:
            text += f" {show_value(self.value)}"
        if self.expected:
            text += f" ({self.expected})"
        return text


class _RowError(Exception):
    """Raised inside a row parser; the loader turns it into a TraceFormatError or a skip."""

    def __init__(self, reason: str, value: object = TraceFormatError._NO_VALUE, expected: str = ""):
        super().__init__(reason)
        self.reason, self.value, self.expected = reason, value, expected


class _Collector:
    """Gathers parsed jobs and dropped rows for one file."""

    def __init__(self, path: str | os.PathLike[str], on_error: str, *, label: str | None = None):
        if on_error not in ON_ERROR:
            raise ValidationError("on_error", on_error, "expected raise or skip")
        self.path = os.fspath(path)
        self.label = label or os.path.basename(self.path) or self.path
        self.on_error = on_error
        #: ``(submit, order, (duration, requests, user, name, time_limit, gpu_fraction,
        #: gpu_models))``: the TraceJob fields after ``id`` and ``submit``, in order.
        self.rows: list[tuple[float, int, tuple]] = []
        self.skipped = 0
        self.skip_reasons: dict[str, int] = {}

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1

    def bad(self, line: int | str, err: _RowError) -> None:
        if self.on_error == "raise":
            raise TraceFormatError(self.label, line, err.reason, err.value, err.expected) from None
        self.skip(err.reason)

    def header_error(self, found: Sequence[str], expected: Sequence[str]) -> TraceFormatError:
        missing = [c for c in expected if c not in found]
        what = f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}" if found \
            else "empty file, no header"
        return TraceFormatError(self.label, 1, what, expected="expected columns: " + ",".join(expected))

    def trace(self, fmt: str, nodes: list[Node] | None = None) -> Trace:
        self.rows.sort(key=lambda r: (r[0], r[1]))
        base = self.rows[0][0] if self.rows else 0.0
        jobs = [TraceJob(i, submit - base, *fields) for i, (submit, _, fields) in enumerate(self.rows)]
        return Trace(jobs=jobs, source=f"{fmt}:{self.path}", skipped=self.skipped,
                     skip_reasons=dict(self.skip_reasons), nodes=nodes)


def _gc_paused(loader: Callable[..., Any]) -> Callable[..., Any]:
    """Pause the cyclic garbage collector while a loader runs: a loader makes ~10 objects
    per row and none form cycles, yet the collector would rescan them all every few
    thousand rows (about 40% of the time of loading Philly's 82k rows)."""

    @functools.wraps(loader)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return loader(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper


# Field parsers (raise _RowError) ----------------------------------------------------------

def _float(text: str, what: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _RowError(f"invalid {what}", text, expected) from None
    if not math.isfinite(value):
        raise _RowError(f"invalid {what}", text, expected)
    return value


def _count(text: str, what: str, expected: str = "expected a whole number, 0 or more") -> int:
    try:
        value = int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            raise _RowError(f"invalid {what}", text, expected) from None
        if not f.is_integer():
            raise _RowError(f"invalid {what}", text, expected) from None
        value = int(f)
    return value


def _nonneg_count(text: str, what: str) -> int:
    value = _count(text, what)
    if value < 0:
        raise _RowError(f"invalid {what}", text, "expected a whole number, 0 or more")
    return value


def _duration(value: float, text: str) -> float:
    if value < 0:
        raise _RowError("negative duration", text, "expected 0 or more seconds")
    return value


def _csv_rows(col: _Collector, expected: Sequence[str]) -> Iterator[tuple[int, list[str], list[int]]]:
    """``(line, row, indices of expected columns)`` for each non-blank data row; checks the
    header (extra columns are allowed) and the column count of every row."""
    with open(col.path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        header = [h.strip() for h in header] if header else []
        if any(c not in header for c in expected):
            raise col.header_error(header, expected)
        idx = [header.index(c) for c in expected]
        width = len(header)
        for row in reader:
            if not row:
                continue   # a blank line (e.g. the one at the end of philly.csv) is not a row
            if len(row) != width:
                col.bad(reader.line_num, _RowError("wrong number of columns", len(row),
                                                   f"expected {width}: {','.join(header)}"))
                continue
            yield reader.line_num, row, idx


def _check_options(name: str, allowed: Sequence[str], options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValidationError(f"{name} option", unknown[0],
                              "accepted: " + (", ".join(allowed) or "none"), detail="unknown option")


# Philly ------------------------------------------------------------------------------------

PHILLY_COLUMNS = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")
_EPOCH = datetime(1970, 1, 1)


def _timestamp(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _RowError("invalid timestamp", text, "expected YYYY-MM-DD HH:MM:SS") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return (dt - _EPOCH).total_seconds()   # naive: no local time zone, no DST jumps


@_gc_paused
def load_philly(path: str | os.PathLike[str], *, cpu_per_gpu: str | int | float = "4",
                memory_per_gpu: str | int = "32Gi", on_error: str = "raise") -> Trace:
    """Microsoft Philly, as prepared by the Pollux (OSDI'21) artifact.

    CSV ``timestamp,duration,num_gpus,gpu_time,cluster`` with ``timestamp`` as
    ``YYYY-MM-DD HH:MM:SS`` (no time zone; only differences are used), ``duration`` in
    seconds. The ``cluster`` column (virtual cluster) is the job's user/queue. The trace has
    no CPU or memory figures, so each job requests ``num_gpus`` GPUs plus ``cpu_per_gpu``
    and ``memory_per_gpu`` per GPU (a job with 0 GPUs gets one share of each).
    ``gpu_time`` is not used (it is ``duration * num_gpus``). Jobs have no names.
    """
    cpu_each = parse_quantity(CPU, cpu_per_gpu)
    mem_each = parse_quantity(MEMORY, memory_per_gpu)
    col = _Collector(path, on_error)
    cache: dict[int, Resources] = {}
    order = 0
    for line, row, (i_ts, i_dur, i_gpus, _, i_cl) in _csv_rows(col, PHILLY_COLUMNS):
        try:
            submit = _timestamp(row[i_ts])
            text = row[i_dur]
            duration = _duration(_float(text, "duration", "expected a number of seconds"), text)
            gpus = _nonneg_count(row[i_gpus], "num_gpus")
        except _RowError as err:
            col.bad(line, err)
            continue
        requests = cache.get(gpus)
        if requests is None:
            share = max(gpus, 1)
            requests = cache[gpus] = Resources({CPU: cpu_each * share, MEMORY: mem_each * share, GPU: gpus})
        col.rows.append((submit, order, (duration, requests, row[i_cl].strip())))
        order += 1
    return col.trace("philly")


# Alibaba openb -------------------------------------------------------------------------------

ALIBABA_POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos",
                       "pod_phase", "creation_time", "deletion_time", "scheduled_time")
#: What a pod list must have; the other columns are optional (see :func:`load_alibaba`).
ALIBABA_POD_REQUIRED = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
ALIBABA_TIME_COLUMNS = ("creation_time", "deletion_time")
ALIBABA_NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
RUNNING_REASON = "still running at trace end"
NEVER_SCHEDULED_REASON = "never scheduled"


def _header(col: _Collector) -> list[str]:
    with open(col.path, newline="", encoding="utf-8-sig") as f:
        row = next(csv.reader(f), None)
    return [h.strip() for h in row] if row else []


def alibaba_requests(cpu_milli: int, memory_mib: int, gpus: int, gpu_milli: int,
                     models: tuple[str, ...] = ()) -> Resources:
    """An openb pod's requests: ``gpus`` whole GPUs, or -- one GPU with ``gpu_milli``
    below 1000 -- that share of one GPU (``corral.dev/gpu-milli``, see
    :mod:`corral.scheduler.shares`); ``models`` (its ``gpu_spec``) become the request's
    GPU-model constraint, as a daemon job's ``gpuModels``."""
    amounts = {CPU: cpu_milli, MEMORY: memory_mib * MiB}
    if gpus == 1 and 0 < gpu_milli < 1000:
        amounts[GPU_SHARE] = gpu_milli
    else:
        amounts[GPU] = gpus
    constraints = Constraints.make(gpu_models=models) if models and (gpus or gpu_milli) else None
    return Resources(amounts, constraints=constraints)


@_gc_paused
def load_alibaba(pods_path: str | os.PathLike[str], *, nodes_path: str | os.PathLike[str] | None = None,
                 include_running: bool = False, every_pod: bool = False, on_error: str = "raise") -> Trace:
    """Alibaba PAI GPU cluster, the "openb" trace of the FGD (ATC'23) paper.

    Pods CSV ``name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,
    creation_time,deletion_time,scheduled_time`` (times in seconds):

    * submit = ``creation_time``; duration = ``deletion_time - creation_time``.
    * requests (:func:`alibaba_requests`): cpu ``cpu_milli`` millicores, memory
      ``memory_mib`` MiB, ``num_gpu`` GPUs; a pod with ``num_gpu == 1`` and ``gpu_milli``
      below 1000 asks for that share of one GPU instead (``corral.dev/gpu-milli:
      gpu_milli``), and ``gpu_fraction = gpu_milli / 1000`` records it too.
    * ``gpu_models`` from ``gpu_spec`` (``|``-separated; empty or ``nan`` means any): the
      request's GPU-model constraint (the daemon's ``gpuModels``), so a pod runs only on
      GPUs of a model it allows.
    * user = ``qos`` (LS, BE, Burstable, Guaranteed): the trace has no user column.
    * name = the pod name.
    * Pods in phase ``Running`` were still running when the trace ended: skipped (reason
      "still running at trace end") unless ``include_running=True``, which keeps them
      cut at the trace's end: they end at their ``deletion_time`` or at the trace's end
      (the latest ``deletion_time`` of the file), whichever is first, and one without a
      ``deletion_time`` ends at the trace's end. Caution: in the public openb file that
      is 5,193 of 8,152 pods, and only 34 of them end at the trace's last deletion time;
      the others have ordinary run times (median ~900 s), so the phase looks like the
      last one observed rather than a cut-off marker.
    * Pods never scheduled (empty ``scheduled_time``; the trace's ``Pending`` pods) never
      ran, so they are skipped (reason "never scheduled").
    * ``every_pod=True`` (the packing mode, as the FGD paper's simulator reads a pod
      list): every row is a pod to place, whatever its phase.

    Only ``name,cpu_milli,memory_mib,num_gpu,gpu_milli`` are required. Without
    ``gpu_spec`` every pod takes any model, without ``qos`` the user is ``-``, without
    ``pod_phase``/``scheduled_time`` every pod counts. A pod list *without time columns*
    (no ``creation_time``/``deletion_time``, as the FGD paper's packing experiments use)
    loads with every pod submitted at 0 with no run time, in file order, and
    ``Trace.timed`` False: only the packing mode (``corral sim --packing``) replays it.

    ``nodes_path``: the node list ``sn,cpu_milli,memory_mib,gpu,model`` becomes
    ``Trace.nodes``: one :class:`~corral.capacity.node.Node` per row, named ``sn``, with
    that capacity, no pinned cores, and ``gpu`` simulated GPUs of ``model`` (``unknown``
    when empty; no NVLink). Under ``on_error="skip"`` a malformed node row is left out
    and counted in ``skip_reasons`` as ``node list: REASON``.
    """
    col = _Collector(pods_path, on_error)
    header = _header(col)
    if any(c not in header for c in ALIBABA_POD_REQUIRED):
        raise col.header_error(header, ALIBABA_POD_REQUIRED)
    timed = all(c in header for c in ALIBABA_TIME_COLUMNS)
    present = tuple(c for c in ALIBABA_POD_COLUMNS if c in header)
    pos = {c: i for i, c in enumerate(present)}
    rows: list[tuple[int, tuple]] = []
    trace_end = 0.0
    for line, row, idx in _csv_rows(col, present):
        get = lambda c: row[idx[pos[c]]] if c in pos else ""   # noqa: E731
        try:
            cpu_m = _nonneg_count(get("cpu_milli"), "cpu_milli")
            mem_mib = _nonneg_count(get("memory_mib"), "memory_mib")
            gpus = _nonneg_count(get("num_gpu"), "num_gpu")
            milli = get("gpu_milli")
            gpu_milli = _nonneg_count(milli, "gpu_milli")
            if gpu_milli > 1000:
                raise _RowError("invalid gpu_milli", milli, "expected 0 to 1000")
            phase = get("pod_phase").strip()
            start = end = 0.0
            if timed:
                start = _float(get("creation_time"), "creation_time", "expected a number of seconds")
                deleted = get("deletion_time")
                if deleted.strip() or not (phase == "Running" and (include_running or every_pod)):
                    end = _float(deleted, "deletion_time", "expected a number of seconds")
                    if end < start:
                        raise _RowError("negative duration", f"{deleted} - {get('creation_time')}",
                                        "expected deletion_time >= creation_time")
                    trace_end = max(trace_end, end)
                else:
                    end = math.inf            # still running, no end recorded: cut below
        except _RowError as err:
            col.bad(line, err)
            continue
        if every_pod:
            pass                              # the packing mode: every row is an arrival
        elif "scheduled_time" in pos and not get("scheduled_time").strip():
            col.skip(NEVER_SCHEDULED_REASON)
            continue
        elif phase == "Running" and not include_running:
            col.skip(RUNNING_REASON)
            continue
        spec = get("gpu_spec").strip()
        models = tuple(m.strip() for m in spec.split("|") if m.strip()) if spec and spec != "nan" else ()
        rows.append((line, (start, end, phase == "Running", cpu_m, mem_mib, gpus, gpu_milli, models,
                            get("qos").strip() or "-", get("name").strip())))
    for order, (_, (start, end, running, cpu_m, mem_mib, gpus, gpu_milli, models, qos, name)) in enumerate(rows):
        if running:
            end = max(start, min(end, trace_end))    # cut at the trace's end
        col.rows.append((start, order, (
            end - start, alibaba_requests(cpu_m, mem_mib, gpus, gpu_milli, models), qos, name, None,
            gpu_milli / 1000 if gpus == 1 and gpu_milli < 1000 else None, models)))
    nodes = None
    if nodes_path is not None:
        node_col = _Collector(nodes_path, on_error)
        nodes = _read_alibaba_nodes(node_col)
        for reason, count in node_col.skip_reasons.items():   # counted with the pods' skips
            col.skipped += count
            col.skip_reasons[f"node list: {reason}"] = count
    trace = col.trace("alibaba", nodes)
    trace.timed = timed
    return trace


@_gc_paused
def load_alibaba_nodes(path: str | os.PathLike[str]) -> list[Node]:
    """The openb node list ``sn,cpu_milli,memory_mib,gpu,model`` as simulator nodes (see
    :func:`load_alibaba`); a malformed row always raises."""
    return _read_alibaba_nodes(_Collector(path, "raise"))


def _read_alibaba_nodes(col: _Collector) -> list[Node]:
    nodes: list[Node] = []
    for line, row, idx in _csv_rows(col, ALIBABA_NODE_COLUMNS):
        sn, cpu, mem, ngpu, model = (row[i] for i in idx)
        try:
            if not sn.strip():
                raise _RowError("empty node name", sn, "expected a name such as openb-node-0001")
            cpu_m = _nonneg_count(cpu, "cpu_milli")
            mem_mib = _nonneg_count(mem, "memory_mib")
            gpus = _nonneg_count(ngpu, "gpu")
        except _RowError as err:
            col.bad(line, err)
            continue
        model = model.strip()
        model = model if model and model != "nan" else "unknown"
        nodes.append(Node(name=sn.strip(), capacity=Resources({CPU: cpu_m, MEMORY: mem_mib * MiB, GPU: gpus}),
                          cores=(), gpus=simulated_gpus(gpus, group=1, model=model)))
    return nodes


def downsample_nodes(nodes: Sequence[Node], fraction: float, seed: int = 0) -> list[Node]:
    """A deterministic random ``fraction`` of ``nodes`` (at least one), in their original
    order: the same ``seed`` always picks the same nodes."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not math.isfinite(fraction) or not 0 < fraction <= 1:
        raise ValidationError("node fraction", fraction, "expected a number above 0 and at most 1, e.g. 0.25")
    if not nodes:
        raise ValidationError("nodes", [], "expected at least one node to sample from")
    count = max(1, round(len(nodes) * fraction))
    picked = sorted(random.Random(seed).sample(range(len(nodes)), count))
    return [nodes[i] for i in picked]


# SWF -----------------------------------------------------------------------------------------

SWF_FIELDS = 18
_SWF_HEADER = re.compile(r"^;\s*([A-Za-z][A-Za-z0-9_]*)\s*:\s*(.*?)\s*$")
UNKNOWN_RUN_TIME = "unknown run time"
UNKNOWN_SUBMIT = "unknown submit time"
UNKNOWN_PROCS = "unknown processor count"


@_gc_paused
def load_swf(path: str | os.PathLike[str], *, cpus_per_node: int | str | None = None,
             memory_per_node: str | int | None = None, on_error: str = "raise") -> Trace:
    """Standard Workload Format (Parallel Workloads Archive).

    Lines starting with ``;`` are comments (the header); every other non-blank line has 18
    whitespace-separated fields: 1 job number, 2 submit time, 3 wait time, 4 run time,
    5 allocated processors, 6 average CPU time, 7 used memory (KB), 8 requested
    processors, 9 requested time, 10 requested memory (KB per processor), 11 status,
    12 user id, 13 group id, 14 executable, 15 queue, 16 partition, 17 preceding job,
    18 think time. ``-1`` means unknown. Used here:

    * submit = field 2 (relative to the earliest); duration = run time (field 4). A job
      with an unknown (negative) run time or submit time is skipped, counted under
      "unknown run time" / "unknown submit time".
    * processors = requested processors (8) when > 0, else allocated (5); neither known:
      skipped ("unknown processor count"). The cpu request is that many whole CPUs.
    * memory = requested memory (10, KB = 1024 bytes, per processor) x processors, when
      > 0; otherwise the job requests no memory. Used memory (7) is ignored.
    * time_limit = requested time (9) when > 0.
    * user = ``u<user id>`` (field 12; ``unknown`` when -1); name = the job number.
    * No GPUs. Wait time, status, group, queue, partition and dependencies are ignored
      (the simulator makes its own waits; a cancelled job with a run time still ran).

    ``cpus_per_node``: also build ``Trace.nodes`` from the header: ``MaxProcs /
    cpus_per_node`` nodes, rounded up (or ``MaxNodes`` nodes when the header has no
    ``MaxProcs``), each of ``cpus_per_node`` CPUs and ``memory_per_node`` memory. Without
    ``memory_per_node`` a node gets just enough memory that memory never binds before CPU
    (``cpus_per_node`` x the largest per-processor memory request; none when no job asks
    for memory). The header must give ``MaxProcs`` or ``MaxNodes`` then. Note that
    corral places a job on one node, so jobs asking for more processors than
    ``cpus_per_node`` can never run there (the simulator reports them as infeasible).
    """
    node_cpu = node_memory = None
    if cpus_per_node is not None:
        node_cpu = parse_quantity(CPU, cpus_per_node)
        if node_cpu <= 0 or node_cpu % 1000:
            raise ValidationError("cpus_per_node", cpus_per_node, "expected a whole number of CPUs, 1 or more")
        if memory_per_node is not None:
            node_memory = parse_quantity(MEMORY, memory_per_node)
    col = _Collector(path, on_error)
    header: dict[str, str] = {}
    order = 0
    max_mem_per_proc = 0
    with open(col.path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            if text.startswith(";"):
                m = _SWF_HEADER.match(text)
                if m:
                    header.setdefault(m.group(1), m.group(2))
                continue
            fields = text.split()
            try:
                if len(fields) != SWF_FIELDS:
                    raise _RowError("wrong number of fields", len(fields),
                                    f"expected {SWF_FIELDS} whitespace-separated fields")
                submit = _float(fields[1], "submit time", "expected a number of seconds")
                run = _float(fields[3], "run time", "expected a number of seconds, or -1")
                alloc = _count(fields[4], "allocated processors", "expected a whole number, or -1")
                req = _count(fields[7], "requested processors", "expected a whole number, or -1")
                req_time = _float(fields[8], "requested time", "expected a number of seconds, or -1")
                req_mem = _float(fields[9], "requested memory", "expected KB per processor, or -1")
                user_id = _count(fields[11], "user id", "expected a whole number, or -1")
            except _RowError as err:
                col.bad(line_no, err)
                continue
            if run < 0:
                col.skip(UNKNOWN_RUN_TIME)
                continue
            if submit < 0:
                col.skip(UNKNOWN_SUBMIT)
                continue
            procs = req if req > 0 else alloc
            if procs <= 0:
                col.skip(UNKNOWN_PROCS)
                continue
            amounts = {CPU: procs * 1000}
            if req_mem > 0:
                amounts[MEMORY] = math.ceil(req_mem * KiB * procs)
                max_mem_per_proc = max(max_mem_per_proc, math.ceil(req_mem * KiB))
            col.rows.append((submit, order, (
                run, Resources(amounts), f"u{user_id}" if user_id >= 0 else "unknown", fields[0],
                req_time if req_time > 0 else None)))
            order += 1
    nodes = None
    if node_cpu is not None:
        nodes = _swf_nodes(col, header, node_cpu, node_memory, max_mem_per_proc)
    return col.trace("swf", nodes)


def _swf_nodes(col: _Collector, header: dict[str, str], cpu: int, memory: int | None,
               max_mem_per_proc: int) -> list[Node]:
    per_node = cpu // 1000
    if memory is None:
        memory = max_mem_per_proc * per_node

    def header_int(key: str) -> int | None:
        try:
            number = int(float(header.get(key, "")))
        except (ValueError, OverflowError):   # absent, or e.g. UNKNOWN
            return None
        return number if number > 0 else None

    procs = header_int("MaxProcs")
    count = -(-procs // per_node) if procs is not None else header_int("MaxNodes")
    if count is None:
        raise TraceFormatError(col.label, "header", "no MaxProcs or MaxNodes",
                               expected="cpus_per_node needs the machine size from the header")
    return [Node(name=f"swf-{i:05d}", capacity=Resources({CPU: cpu, MEMORY: memory}), cores=())
            for i in range(count)]


# corral's own history ------------------------------------------------------------------------

NEVER_STARTED = "never started"
STILL_RUNNING = "still running"


def load_corral(db_path: str | os.PathLike[str], *, on_error: str = "raise") -> Trace:
    """corral's own job history, from its SQLite store.

    Jobs that ran to the end (``started_at`` and ``ended_at`` set): submit =
    ``submitted_at``, duration = ``ended_at - started_at``, requests = what the
    scheduler placed (:attr:`~corral.spec.JobSpec.demand`: the requests of all its nodes,
    with its GPU models, node selector and node count, which the simulated cluster must
    then meet), user = the spec's ``user`` label or ``local``, name = the spec's name,
    time_limit = the spec's time limit. Jobs that never started (still pending, or
    cancelled while pending) are skipped as "never started", running ones as "still
    running". The database is opened, read and closed; a missing file is an error (it
    is not created).
    """
    from ..job import JobState
    from ..store.sqlite import SqliteStore

    path = os.fspath(db_path)
    if not os.path.isfile(path):
        raise CorralError(f"no corral database at {path}")
    col = _Collector(path, on_error)
    store = SqliteStore(path)
    try:
        jobs = store.list_jobs()
    finally:
        store.close()
    for job in jobs:
        if job.started_at is None:
            col.skip(NEVER_STARTED)
            continue
        if job.ended_at is None or job.state is JobState.RUNNING:
            col.skip(STILL_RUNNING)
            continue
        if job.ended_at < job.started_at:
            col.bad(f"job {job.id}", _RowError("negative duration",
                                                f"{job.ended_at} - {job.started_at}",
                                                "expected ended_at >= started_at"))
            continue
        spec = job.spec
        col.rows.append((float(job.submitted_at), job.id, (
            float(job.ended_at - job.started_at), spec.demand, spec.labels.get("user") or "local",
            spec.name, float(spec.time_limit) if spec.time_limit is not None else None)))
    return col.trace("corral")


# Dispatch ----------------------------------------------------------------------------------

LOADERS: dict[str, Callable[..., Trace]] = {
    "philly": load_philly,
    "alibaba": load_alibaba,
    "swf": load_swf,
    "corral": load_corral,
}
_OPTIONS = {
    "philly": ("cpu_per_gpu", "memory_per_gpu", "on_error"),
    "alibaba": ("nodes_path", "include_running", "every_pod", "on_error"),
    "swf": ("cpus_per_node", "memory_per_node", "on_error"),
    "corral": ("on_error",),
}


def load_trace(path: str | os.PathLike[str], format: str, **options: Any) -> Trace:
    """Load ``path`` as a trace of ``format`` (philly, alibaba, swf, corral); ``options``
    go to that format's loader (see each ``load_*``)."""
    fmt = str(format).strip().lower()
    if fmt not in LOADERS:
        raise ValidationError("trace format", format, "expected one of " + ", ".join(LOADERS))
    _check_options(fmt, _OPTIONS[fmt], options)
    if not os.path.exists(os.fspath(path)):
        raise CorralError(f"no such trace file: {os.fspath(path)}")
    return LOADERS[fmt](path, **options)
