"""A lower bound on the mean job completion time (JCT) of any schedule of a trace.

Stdlib only. The bound answers "how far is a policy from the best possible?": a policy's
mean JCT divided by :func:`mean_jct_lower_bound` is at least 1, and the closer to 1 the
less room any policy has left.

The model
---------
A cluster has ``G`` interchangeable GPUs. Job ``j`` is released (submitted) at ``r_j``,
needs ``g_j`` GPUs at once and, holding them, runs for ``d_j`` seconds (its trace
duration, the run time when running alone on its resources). Any feasible schedule --
preemptive or not, with or without migration, with any placement -- gives job ``j`` a
completion time ``C_j`` and a JCT ``C_j - r_j``. The bound assumes only that a job
cannot finish sooner than ``d_j`` after its release and needs at least ``w_j = d_j * g_j``
GPU-seconds of processing (restarts, interference or slow placements only add to either).

The two terms
-------------
1. **Fluid SRPT** (:func:`fluid_srpt_completions`). Relax the cluster into one machine of
   speed ``G`` (GPU-seconds per second) on which job ``j`` is ``w_j`` units of work
   released at ``r_j``. The machine can emulate any feasible cluster schedule: at every
   instant the cluster processes at most ``G`` GPU-seconds per second in total, so
   running each job on the machine at the rate ``g_j`` while it holds its GPUs in the
   cluster is a feasible *processor-sharing* schedule of the machine, with the same
   completion times. A processor-sharing schedule of one machine can be turned into a
   preemptive one in which no job finishes later (process, at every instant, the released
   unfinished job whose processor-sharing completion is earliest: EDF meets all those
   completion times as deadlines because a feasible fractional schedule exists), and
   preemptive SRPT -- always run the released job with the shortest remaining work --
   minimizes the *sum* of completion times on one machine with release dates and
   preemption (``1 | r_j, pmtn | sum C_j``; Schrage 1968, Baker 1974). Hence
   ``sum C_j^SRPT <= sum C_j`` for every feasible cluster schedule. This bounds only the
   sum (an individual ``C_j^SRPT`` may exceed that job's ``C_j``), but ``sum r_j`` is a
   constant of the trace, so ``sum (C_j^SRPT - r_j) / n`` bounds the mean JCT. It
   dominates under heavy load, when total GPU work is what delays jobs.
2. **Mean duration**. The fluid machine may run a job at speed ``G``, far faster than the
   cluster can (a job on ``g_j`` GPUs cannot beat ``d_j``), so also ``C_j >= r_j + d_j``
   for every job, hence mean JCT ``>= mean(d_j)``. It dominates under light load.

Both are lower bounds on the same quantity, so their maximum is one too::

    LB = max( sum_j (C_j^SRPT - r_j) / n , sum_j d_j / n )

The bound is not tight in general (it ignores that a ``g_j``-GPU job occupies ``g_j``
GPUs for ``d_j`` seconds, i.e. packing, and non-preemption), but it is cheap
(``O(n log n)``) and valid for every policy, preemptive or not.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

__all__ = ["fluid_srpt_completions", "mean_jct_lower_bound", "mean_jct_lower_bound_terms"]


def _finite(value: float, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return number


def fluid_srpt_completions(jobs: Sequence[tuple[float, float]], speed: float) -> list[float]:
    """Completion times of preemptive SRPT on one machine of the given speed.

    ``jobs`` is a sequence of ``(release, work)``; the machine processes ``speed`` units of
    work per second, one job at a time, always the released unfinished job with the least
    remaining work (ties: the lower index, so the result is deterministic; the *sum* of
    completions does not depend on tie-breaking). A job with zero work completes at its
    release. Returns the completion time of each job, in input order. Exact
    event-driven simulation (releases and completions) in ``O(n log n)``: every release
    preempts at most one job, and only the running job's remaining work changes.

    Raises ``ValueError`` for a non-positive or non-finite speed, a non-finite release,
    or a negative or non-finite work (naming the job index).
    """
    speed = _finite(speed, "speed")
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed!r}")
    releases: list[float] = []
    works: list[float] = []
    for index, job in enumerate(jobs):
        release, work = job
        releases.append(_finite(release, f"job {index}: release"))
        work = _finite(work, f"job {index}: work")
        if work < 0:
            raise ValueError(f"job {index}: work must be >= 0, got {work!r}")
        works.append(work)

    n = len(releases)
    order = sorted(range(n), key=lambda j: (releases[j], j))
    completions = [0.0] * n
    heap: list[tuple[float, int]] = []  # (remaining work, index); heap[0] is running
    nxt = 0  # next position in `order` not yet released
    t = -math.inf
    while nxt < n or heap:
        if not heap:  # idle: jump to the next release
            t = max(t, releases[order[nxt]])
        while nxt < n and releases[order[nxt]] <= t:
            j = order[nxt]
            heapq.heappush(heap, (works[j], j))
            nxt += 1
        remaining, j = heap[0]
        finish = t + remaining / speed
        next_release = releases[order[nxt]] if nxt < n else math.inf
        if finish <= next_release:  # completes before (or exactly at) the next release
            heapq.heappop(heap)
            completions[j] = finish
            t = finish
        else:  # runs until the next release, which may preempt it
            heapq.heapreplace(heap, (remaining - (next_release - t) * speed, j))
            t = next_release
    return completions


def _validated_jobs(jobs: Sequence[tuple[float, float, int]], total_gpus: int) -> list[tuple[float, float, int]]:
    if isinstance(total_gpus, bool) or not isinstance(total_gpus, int) or total_gpus < 1:
        raise ValueError(f"total_gpus must be a positive integer, got {total_gpus!r}")
    if not jobs:
        raise ValueError("no jobs: the mean JCT of an empty trace is undefined")
    checked = []
    for index, job in enumerate(jobs):
        submit, duration, gpus = job
        submit = _finite(submit, f"job {index}: submit")
        duration = _finite(duration, f"job {index}: duration")
        if duration < 0:
            raise ValueError(f"job {index}: duration must be >= 0, got {duration!r}")
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
            raise ValueError(f"job {index}: gpus must be a non-negative integer, got {gpus!r}")
        if gpus > total_gpus:
            raise ValueError(f"job {index} requests {gpus} GPUs but the cluster has only {total_gpus}: "
                             "it can never run")
        checked.append((submit, duration, gpus))
    return checked


def mean_jct_lower_bound_terms(jobs: Sequence[tuple[float, float, int]], total_gpus: int) -> tuple[float, float]:
    """The two terms of :func:`mean_jct_lower_bound`: ``(fluid_srpt, mean_duration)``.

    ``fluid_srpt`` is ``sum_j (C_j^SRPT - r_j) / n`` for the relaxation to one machine of
    speed ``total_gpus`` with work ``duration * gpus``; ``mean_duration`` is the mean of the
    durations. Useful to report which term binds. Same arguments and errors as
    :func:`mean_jct_lower_bound`.
    """
    checked = _validated_jobs(jobs, total_gpus)
    completions = fluid_srpt_completions([(s, d * g) for s, d, g in checked], total_gpus)
    n = len(checked)
    # Sum of JCTs = sum C_j - sum r_j; subtract per job to keep magnitudes small.
    fluid = math.fsum(c - s for c, (s, _, _) in zip(completions, checked)) / n
    mean_duration = math.fsum(d for _, d, _ in checked) / n
    return fluid, mean_duration


def mean_jct_lower_bound(jobs: Sequence[tuple[float, float, int]], total_gpus: int) -> float:
    """A lower bound on the mean JCT of *any* feasible schedule of ``jobs`` on ``total_gpus`` GPUs.

    ``jobs`` is a sequence of ``(submit, duration, gpus)``. Returns
    ``max(fluid SRPT mean JCT, mean duration)`` (see the module docstring for why each term
    is a valid bound). Raises ``ValueError`` for an empty job list, a non-positive
    ``total_gpus``, a negative or non-finite submit/duration, or a job requesting more
    GPUs than ``total_gpus`` (naming the job's index: such a job can never run).
    """
    fluid, mean_duration = mean_jct_lower_bound_terms(jobs, total_gpus)
    return max(fluid, mean_duration)
