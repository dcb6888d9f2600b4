"""Summary metrics of a finished simulation: JCT, waiting, slowdown, utilization, fairness.

Stdlib only. Input: one :class:`JobOutcome` per job and the cluster timeline as
:class:`Sample` s. Output of :func:`summarize`: a flat dict of numbers (plus the nested
``per_user`` dict), all times in seconds. :func:`format_table` and :func:`to_csv_rows`
turn ``{policy name: summary}`` into rows for printing or writing with :mod:`csv`.

Definitions (``n`` jobs; ``JCT = end - submit``; ``d`` = trace duration)
-----------------------------------------------------------------------
* **Percentiles** use the *nearest-rank* method: the p-th percentile of ``n`` values is
  the value of rank ``ceil(p / 100 * n)`` (1-based, at least 1) in ascending order --
  always one of the values, never interpolated, deterministic. ``p`` is read as its
  decimal spelling (``Fraction(str(p))``) so e.g. ``p = 95`` with ``n = 20`` is rank 19
  exactly, free of float round-off.
* **Queueing delay** ``wait = start - submit`` with ``start`` the *first* start:
  ``wait_mean``, ``wait_p50``, ``wait_p95``, ``wait_p99``, ``max_wait``. For preemptive
  policies the total time not running is ``JCT - d``; its mean is ``wait_total_mean``
  (equal to ``wait_mean`` when no job is preempted or slowed down; not clamped, so a job
  finishing faster than its trace duration would show up as a negative contribution).
* **Bounded slowdown** ``max(JCT / max(d, 10 s), 1)`` (the 10 s floor,
  :data:`SLOWDOWN_FLOOR`, keeps very short jobs from dominating): ``slowdown_mean``,
  ``slowdown_p95``.
* **Makespan** ``last end - first submit``.
* **GPU allocation utilization**: the samples are piecewise constant (each holds from its
  ``t`` until the next sample's ``t``; the last one until the window's end; of several
  samples at the same ``t`` the last wins; before the first sample nothing is allocated
  and the capacity is the first sample's). ``utilization = integral of gpus_allocated /
  integral of gpus_total`` over the makespan window ``[first submit, last end]``, which is
  ``integral gpus_allocated / (gpus_total * makespan)`` for a fixed cluster.
* **Offered load** ``sum_j d_j * g_j / (gpus_total * (last submit - first submit))``: the
  GPU work that arrives per second of the arrival window, as a fraction of the cluster's
  capacity (the capacity integral over the arrival window when it varies). Above 1 the
  queue grows for as long as jobs arrive. ``None`` when all submits are equal (no arrival
  window) or there are no samples (unknown capacity).
* **Mean queue length** ``queue_mean``: the time-weighted mean of ``queue_length`` over the
  makespan window.
* **Fairness** ``jain_fairness``: Jain's index ``(sum x_u)^2 / (U * sum x_u^2)`` over the
  ``U`` users of ``x_u`` = the user's *mean bounded slowdown*. Slowdown rather than JCT so
  that a user whose jobs are simply long is not counted as treated unfairly. 1.0 when
  every user sees the same mean slowdown; tends to ``1/U`` when one user is starved
  (its slowdown grows without bound while the others' stay near 1).
* ``per_user``: ``{user: {"jobs", "jct_mean", "wait_mean", "max_wait", "slowdown_mean"}}``,
  users in sorted order.
* With ``bound`` (e.g. :func:`corral.sim.bounds.mean_jct_lower_bound`):
  ``jct_mean_bound = bound`` and ``jct_ratio = jct_mean / bound`` (``None`` if the bound
  is 0).

``JobOutcome.attained`` (service a policy credited the job with, e.g. for least-attained
service) is carried for policies and analyses that want it; :func:`summarize` does not use
it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

__all__ = [
    "JobOutcome", "Sample", "SLOWDOWN_FLOOR", "DEFAULT_COLUMNS",
    "percentile", "bounded_slowdown", "jain_index", "summarize", "format_table", "to_csv_rows",
]

#: Bounded slowdown divides by ``max(duration, SLOWDOWN_FLOOR)`` seconds.
SLOWDOWN_FLOOR = 10.0


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What a finished simulation knows about one job (times in seconds)."""

    id: int
    user: str
    submit: float
    start: float      #: first start
    end: float
    duration: float   #: run time alone on its resources (the trace duration)
    gpus: float       #: GPUs it held (a share of one GPU: the fraction, e.g. 0.25)
    attained: float | None = None
    #: Where it ran (its last run): the node (several, ``|``-joined, for a gang), the GPU
    #: indices there, and their model ('' without GPUs). Not compared: two runs that
    #: decide the same times are equal outcomes wherever the ties put the jobs.
    node: str = field(default="", compare=False)
    devices: tuple[int, ...] = field(default=(), compare=False)
    model: str = field(default="", compare=False)

    @property
    def jct(self) -> float:
        return self.end - self.submit

    @property
    def wait(self) -> float:
        return self.start - self.submit


def gpus_held(allocation) -> float:
    """GPUs an allocation holds: its devices, a share of one GPU (``corral.dev/gpu-milli``)
    counting its fraction of the device."""
    from ..scheduler.shares import GPU_SHARE, MILLI

    total = 0.0
    for piece in allocation.pieces:
        share = piece.requests.get(GPU_SHARE, 0)
        total += share / MILLI if share else len(piece.gpus)
    return total if total != int(total) else int(total)


def where(allocation, nodes: dict) -> dict:
    """``node``, ``devices`` and ``model`` of :class:`JobOutcome` for an allocation
    (``nodes``: name -> :class:`~corral.capacity.node.Node`, for the GPU model)."""
    pieces = allocation.pieces
    models = []
    for p in pieces:
        node = nodes.get(p.node)
        for g in p.gpus:
            model = node.gpu(g).model if node is not None else ""
            if model not in models:
                models.append(model)
    return {"node": "|".join(p.node for p in pieces),
            "devices": tuple(g for p in pieces for g in p.gpus),
            "model": "|".join(models)}


@dataclass(frozen=True, slots=True)
class Sample:
    """The cluster's state from time ``t`` until the next sample."""

    t: float
    gpus_allocated: int
    gpus_total: int
    queue_length: int
    running: int
    #: GPU free on shared devices only (in GPUs: the free thousandths of devices that
    #: sharers hold part of), which only another share can use: a fragmentation figure.
    gpus_stranded: float = 0.0


# --------------------------------------------------------------------------- helpers


def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile: the value of rank ``ceil(p/100 * n)`` (at least 1) in sorted order.

    ``ValueError`` for no values or ``p`` outside ``[0, 100]``.
    """
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    q = Fraction(str(p))
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {p!r}")
    rank = max(1, math.ceil(q * len(ordered) / 100))
    return ordered[rank - 1]


def bounded_slowdown(jct: float, duration: float, floor: float = SLOWDOWN_FLOOR) -> float:
    """``max(jct / max(duration, floor), 1)``."""
    return max(jct / max(duration, floor), 1.0)


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index ``(sum x)^2 / (n * sum x^2)``, in ``[1/n, 1]`` for ``x >= 0``.

    ``ValueError`` for no values; 1.0 when all values are 0.
    """
    if not values:
        raise ValueError("Jain's index of no values")
    squares = math.fsum(x * x for x in values)
    if squares == 0:
        return 1.0
    return math.fsum(values) ** 2 / (len(values) * squares)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _validate(outcomes: Sequence[JobOutcome]) -> None:
    if not outcomes:
        raise ValueError("no job outcomes to summarize")
    for o in outcomes:
        for name in ("submit", "start", "end", "duration"):
            value = getattr(o, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"job {o.id}: {name} must be a finite number, got {value!r}")
        if o.start < o.submit:
            raise ValueError(f"job {o.id}: starts at {o.start} before its submit {o.submit}")
        if o.end < o.start:
            raise ValueError(f"job {o.id}: ends at {o.end} before its start {o.start}")
        if o.duration < 0:
            raise ValueError(f"job {o.id}: negative duration {o.duration}")
        if o.gpus < 0:
            raise ValueError(f"job {o.id}: negative gpus {o.gpus}")


def _integrate(samples: Sequence[Sample], field: str, lo: float, hi: float) -> float:
    """Integral of a piecewise-constant sample field over ``[lo, hi]`` (samples sorted by t).

    Before the first sample the value is 0, except ``gpus_total`` which takes the first
    sample's value.
    """
    if hi <= lo:
        return 0.0
    parts: list[float] = []
    first = samples[0]
    if lo < first.t:
        before = first.gpus_total if field == "gpus_total" else 0
        parts.append(before * (min(first.t, hi) - lo))
    for i, s in enumerate(samples):
        seg_lo = max(s.t, lo)
        seg_hi = min(samples[i + 1].t if i + 1 < len(samples) else math.inf, hi)
        if seg_hi > seg_lo:
            parts.append(getattr(s, field) * (seg_hi - seg_lo))
    return math.fsum(parts)


# --------------------------------------------------------------------------- summary


def summarize(outcomes: Sequence[JobOutcome], samples: Sequence[Sample], *,
              bound: float | None = None) -> dict:
    """Summary metrics of one simulation run (see the module docstring for definitions).

    Keys: ``jobs``, ``jct_mean``, ``jct_p50``, ``jct_p95``, ``jct_p99``, ``wait_mean``,
    ``wait_p50``, ``wait_p95``, ``wait_p99``, ``max_wait``, ``wait_total_mean``,
    ``slowdown_mean``, ``slowdown_p95``, ``slowdown_p99``, ``makespan``, ``utilization``, ``offered_load``,
    ``queue_mean``, ``users``, ``jain_fairness``, ``per_user`` and, with ``bound``,
    ``jct_mean_bound`` and ``jct_ratio``. ``utilization`` and ``queue_mean`` are ``None``
    without samples or with a zero-length makespan window; ``offered_load`` as documented.

    ``ValueError`` for no outcomes, an inconsistent outcome (start before submit, end
    before start, negative duration or gpus, non-finite times; naming the job id) or a
    negative or non-finite ``bound``.
    """
    _validate(outcomes)
    if bound is not None and (not isinstance(bound, (int, float)) or not math.isfinite(bound) or bound < 0):
        raise ValueError(f"bound must be a finite number >= 0, got {bound!r}")

    jcts = [o.jct for o in outcomes]
    waits = [o.wait for o in outcomes]
    slowdowns = [bounded_slowdown(o.jct, o.duration) for o in outcomes]

    first_submit = min(o.submit for o in outcomes)
    last_submit = max(o.submit for o in outcomes)
    last_end = max(o.end for o in outcomes)
    makespan = last_end - first_submit

    timeline = sorted(samples, key=lambda s: s.t)  # stable: the last of equal t wins
    utilization = queue_mean = offered_load = stranded = None
    if timeline:
        capacity = _integrate(timeline, "gpus_total", first_submit, last_end)
        if makespan > 0:
            queue_mean = _integrate(timeline, "queue_length", first_submit, last_end) / makespan
            if capacity > 0:
                utilization = _integrate(timeline, "gpus_allocated", first_submit, last_end) / capacity
                stranded = _integrate(timeline, "gpus_stranded", first_submit, last_end) / capacity
        arrival_capacity = _integrate(timeline, "gpus_total", first_submit, last_submit)
        if last_submit > first_submit and arrival_capacity > 0:
            offered_load = math.fsum(o.duration * o.gpus for o in outcomes) / arrival_capacity

    by_user: dict[str, list[int]] = {}
    for i, o in enumerate(outcomes):
        by_user.setdefault(o.user, []).append(i)
    per_user = {}
    for user in sorted(by_user):
        idx = by_user[user]
        per_user[user] = {
            "jobs": len(idx),
            "jct_mean": _mean([jcts[i] for i in idx]),
            "wait_mean": _mean([waits[i] for i in idx]),
            "max_wait": max(waits[i] for i in idx),
            "slowdown_mean": _mean([slowdowns[i] for i in idx]),
        }

    result: dict = {
        "jobs": len(outcomes),
        "jct_mean": _mean(jcts),
        "jct_p50": percentile(jcts, 50),
        "jct_p95": percentile(jcts, 95),
        "jct_p99": percentile(jcts, 99),
        "wait_mean": _mean(waits),
        "wait_p50": percentile(waits, 50),
        "wait_p95": percentile(waits, 95),
        "wait_p99": percentile(waits, 99),
        "max_wait": max(waits),
        "wait_total_mean": _mean([o.jct - o.duration for o in outcomes]),
        "slowdown_mean": _mean(slowdowns),
        "slowdown_p95": percentile(slowdowns, 95),
        "slowdown_p99": percentile(slowdowns, 99),
        "makespan": makespan,
        "utilization": utilization,
        "gpu_stranded": stranded,
        "offered_load": offered_load,
        "queue_mean": queue_mean,
        "users": len(per_user),
        "jain_fairness": jain_index([u["slowdown_mean"] for u in per_user.values()]),
        "per_user": per_user,
    }
    if bound is not None:
        result["jct_mean_bound"] = float(bound)
        result["jct_ratio"] = result["jct_mean"] / bound if bound > 0 else None
    return result


# --------------------------------------------------------------------------- output

#: ``(key, header, kind)`` of the columns :func:`format_table` shows by default; kind is
#: ``"int"``, ``"s"`` (seconds, one decimal) or ``"ratio"`` (three decimals).
DEFAULT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("jobs", "jobs", "int"),
    ("jct_mean", "JCT mean (s)", "s"),
    ("jct_p95", "JCT p95 (s)", "s"),
    ("wait_mean", "wait mean (s)", "s"),
    ("wait_p95", "wait p95 (s)", "s"),
    ("max_wait", "max wait (s)", "s"),
    ("slowdown_mean", "slowdown mean", "ratio"),
    ("makespan", "makespan (s)", "s"),
    ("utilization", "GPU util", "ratio"),
    ("jain_fairness", "Jain", "ratio"),
    ("jct_ratio", "JCT / bound", "ratio"),
)


def _cell(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "int":
        return str(int(value))
    if kind == "s":
        return f"{value:.1f}"
    return f"{value:.3f}"


def format_table(results: Mapping[str, Mapping], columns: Sequence[tuple[str, str, str]] = DEFAULT_COLUMNS,
                 ) -> list[list[str]]:
    """Rows of strings for printing: a header, then one row per policy (in ``results`` order).

    ``results`` maps a policy name to its :func:`summarize` dict. A missing or ``None``
    metric (e.g. ``jct_ratio`` without a bound) shows as ``-``.
    """
    rows = [["policy", *(header for _, header, _ in columns)]]
    for name, summary in results.items():
        rows.append([name, *(_cell(summary.get(key), kind) for key, _, kind in columns)])
    return rows


def to_csv_rows(results: Mapping[str, Mapping]) -> list[list[str]]:
    """Rows for :func:`csv.writer`: ``policy`` then every scalar metric, full precision.

    Columns are the scalar (non-dict) keys in first-seen order across ``results``;
    ``per_user`` is left out. Floats are written with ``repr`` (round-trips exactly);
    ``None`` and missing metrics are empty cells.
    """
    keys: list[str] = []
    for summary in results.values():
        for key, value in summary.items():
            if not isinstance(value, Mapping) and key not in keys:
                keys.append(key)
    rows = [["policy", *keys]]
    for name, summary in results.items():
        row = [name]
        for key in keys:
            value = summary.get(key)
            row.append("" if value is None else repr(value) if isinstance(value, float) else str(value))
        rows.append(row)
    return rows
