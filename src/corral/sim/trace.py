"""The trace model the simulator replays: jobs with submit times, run times and requests.

A :class:`Trace` is what every loader (:mod:`corral.sim.loaders`) returns, whatever the
source format. Its jobs are sorted by submit time, numbered ``0..n-1`` in that order, and
their submit times are seconds from the trace start (the first job at 0). Rows a loader
dropped are never lost silently: :attr:`Trace.skipped` counts them and
:attr:`Trace.skip_reasons` says why.

Fractional GPUs (Alibaba's GPU-sharing pods, ``gpu_milli`` < 1000) are simplified: such a
job still requests one whole ``nvidia.com/gpu`` in :attr:`TraceJob.requests` (corral
allocates whole devices); the fraction it asked for is kept in
:attr:`TraceJob.gpu_fraction` for policies and reports that want it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ValidationError
from ..resources import Resources


@dataclass(frozen=True)
class TraceJob:
    """One job of a trace.

    ``submit`` is seconds from the trace start, ``duration`` seconds of run time on its
    requested resources, ``requests`` canonical :class:`~corral.resources.Resources` (cpu
    millicores, memory bytes, ``nvidia.com/gpu`` count), ``user`` whatever the trace
    offers for fairness (user, team, virtual cluster or queue).
    """

    id: int
    submit: float
    duration: float
    requests: Resources
    user: str
    name: str = ""
    #: Requested wall time, when the trace records one (e.g. SWF's requested time).
    time_limit: float | None = None
    #: Fraction of one GPU asked for (Alibaba ``gpu_milli / 1000`` when below 1); the job
    #: still requests one whole ``nvidia.com/gpu`` in ``requests``.
    gpu_fraction: float | None = None
    #: GPU models the job may run on (Alibaba ``gpu_spec``); empty means any.
    gpu_models: tuple[str, ...] = ()


@dataclass
class Trace:
    """Jobs sorted by submit time (ids ``0..n-1``), and what the loader dropped."""

    jobs: list[TraceJob]
    source: str
    #: Rows dropped while loading (malformed ones under ``on_error="skip"``, and rows the
    #: format says cannot be replayed, e.g. pods still running when the trace ended).
    skipped: int = 0
    #: Why rows were dropped: reason -> count (the counts add up to ``skipped``).
    skip_reasons: dict[str, int] = field(default_factory=dict)
    #: The trace's own machines (:class:`corral.capacity.node.Node`), when it has them.
    nodes: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.jobs)

    def __repr__(self) -> str:   # a trace can hold 100k jobs: summarise
        nodes = "" if self.nodes is None else f", nodes={len(self.nodes)}"
        return f"Trace(source={self.source!r}, jobs={len(self.jobs)}, skipped={self.skipped}{nodes})"

    def _derive(self, jobs: list[TraceJob], note: str, *, scale: float = 1.0) -> "Trace":
        """A new trace of ``jobs`` (in submit order), re-based so the first submits at 0,
        submit times divided by ``scale``, ids renumbered."""
        base = jobs[0].submit if jobs else 0.0
        out = [replace(j, id=i, submit=(j.submit - base) / scale) for i, j in enumerate(jobs)]
        return Trace(jobs=out, source=f"{self.source} {note}", skipped=self.skipped,
                     skip_reasons=dict(self.skip_reasons),
                     nodes=list(self.nodes) if self.nodes is not None else None)

    def rescale_load(self, factor: float) -> "Trace":
        """The same jobs arriving ``factor`` times as densely: every inter-arrival gap is
        divided by ``factor`` (2.0 doubles the offered load, 0.5 halves it); durations and
        requests are unchanged."""
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
                or not math.isfinite(factor) or factor <= 0:
            raise ValidationError("load factor", factor, "expected a number above 0, e.g. 2.0")
        return self._derive(self.jobs, f"(load x{factor:g})", scale=float(factor))

    def head(self, n: int) -> "Trace":
        """The first ``n`` jobs by submit time."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValidationError("job count", n, "expected a whole number of jobs, 0 or more")
        return self._derive(self.jobs[:n], f"(first {n} jobs)")

    def window(self, start: float, end: float | None = None) -> "Trace":
        """Jobs submitted in ``[start, end)`` seconds of this trace (``end=None``: to the
        end), re-based so the first of them submits at 0."""
        if end is not None and end < start:
            raise ValidationError("window", f"{start}..{end}", "expected start <= end")
        jobs = [j for j in self.jobs if j.submit >= start and (end is None or j.submit < end)]
        return self._derive(jobs, f"(window {start:g}s..{'end' if end is None else f'{end:g}s'})")
