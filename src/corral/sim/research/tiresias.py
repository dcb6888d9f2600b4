"""Tiresias' discretized two-dimensional least-attained-service (Gu et al., NSDI'19).

Preemptive (:mod:`.base`, run by :mod:`.loop`), no oracle knowledge: a job's *attained service* is its
GPUs x the time it has run so far (kept across preemptions). Thresholds ``T1 < T2 < ...``
on attained service (``--tiresias-thresholds``, GPU-seconds; default one threshold at
3200, i.e. two queues) split jobs into queues: queue ``k`` holds the jobs with
``T_k <= attained < T_{k+1}``. Lower queues come first; within a queue FIFO by submit time
(then id). A running job moves to the next queue the moment its attained service reaches
a threshold -- the engine gets an event for that (:meth:`Tiresias.next_change`) -- and
then jobs of the higher queue that wait may preempt it. Preempted jobs keep their
attained service.

Starvation promotion (the paper's "avoiding starvation" rule, PROMOTEKNOB; off by
default, ``promote_knob``): a waiting job in a lower queue whose waiting time so far (``delta``) reaches
``promote_knob`` times its execution time so far (``t``, seconds) moves back to the
highest-priority queue, and both ``t`` and ``delta`` are reset to zero -- its attained
service *for queueing* restarts from 0, so it is not demoted again right away (its total
attained service, reported in the outcomes, is kept). As in the authors' simulator
(``SymbioticLab/Tiresias``, ``run_sim.py``), ``t`` counts the run time since the last
promotion, ``delta`` the time waited since the last promotion once the job has run
(resuming does not reset it), and a job that has not run since its last promotion (or
ever) is in the highest queue and never promoted. The engine gets an event at the moment
the rule fires (:meth:`Tiresias.next_promotion`), so the promotion happens at that exact
virtual time. A promoted job takes its place in the highest queue by submit time like
any other, so it may preempt younger jobs there at once (the authors' simulator appends
it behind that queue's jobs instead); under heavy overload this makes for many
preemptions.
"""

from __future__ import annotations

import math
from bisect import bisect_right

from ...errors import ValidationError
from .base import JobState, PreemptivePolicy

NAME = "tiresias"
DEFAULT_THRESHOLDS: tuple[float, ...] = (3200.0,)


def _tolerance(t: float) -> float:
    return 1e-9 * max(1.0, abs(t))


class Tiresias(PreemptivePolicy):
    name = NAME
    oracle = False

    def __init__(self, thresholds=DEFAULT_THRESHOLDS, promote_knob: float | None = None):
        values = []
        for t in thresholds:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
                raise ValidationError("tiresias threshold", t, "expected positive GPU-seconds, e.g. 3200")
            values.append(float(t))
        if values != sorted(set(values)):
            raise ValidationError("tiresias thresholds", ",".join(f"{t:g}" for t in thresholds),
                                  "expected increasing GPU-seconds, e.g. 3200 or 3200,36000")
        self.thresholds = tuple(values)
        #: The thresholds less their round-off tolerance, increasing like them.
        self._cuts = [t - _tolerance(t) for t in self.thresholds]
        #: PROMOTEKNOB; None: no starvation promotion.
        self.promote_knob = check_promote_knob(promote_knob)

    def queue(self, attained: float) -> int:
        """Index of the queue for this much attained service (0 = highest priority)."""
        return bisect_right(self._cuts, attained)     # how many cuts are <= attained

    def key(self, job: JobState, now: float) -> tuple:
        return (self.queue(job.service_at(now)), job.submit, job.id)

    def next_change(self, job: JobState, now: float) -> float | None:
        if job.gpus <= 0 or job.since is None:
            return None
        attained = job.service_at(now)
        for t in self.thresholds:
            if attained < t - _tolerance(t):
                return now + (t - attained) / job.gpus
        return None

    def next_promotion(self, job: JobState, now: float) -> float | None:
        knob = self.promote_knob
        if knob is None or job.waiting_since is None or job.executed <= 0 or self.queue(job.service) == 0:
            return None                        # off, running, not run since promoted, or queue 0
        due = knob * job.executed
        if job.waited_at(now) >= due - _tolerance(due):
            return now
        return max(now, job.waiting_since + (due - job.waited))

    def promote(self, job: JobState, now: float) -> bool:
        if self.next_promotion(job, now) != now:
            return False
        job.service = job.executed = job.waited = 0.0
        job.waiting_since = now
        job.promotions += 1
        return True


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``"3200"`` or ``"3200,36000"`` (GPU-seconds) -> thresholds."""
    try:
        values = tuple(float(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise ValidationError("--tiresias-thresholds", text, "expected GPU-seconds, e.g. 3200 or 3200,36000")
    if not values:
        raise ValidationError("--tiresias-thresholds", text, "expected GPU-seconds, e.g. 3200 or 3200,36000")
    return Tiresias(values).thresholds


_KNOB_EXPECTED = "expected a positive number of times the run time, e.g. 1 or 4 (0: no promotion)"


def check_promote_knob(knob: object) -> float | None:
    """``knob`` as PROMOTEKNOB: None or 0 is off, else a positive finite number."""
    if knob is None:
        return None
    if isinstance(knob, bool) or not isinstance(knob, (int, float)) or not math.isfinite(knob) or knob < 0:
        raise ValidationError("tiresias promote knob", knob, _KNOB_EXPECTED)
    return float(knob) if knob else None


def parse_promote_knob(text: str) -> float | None:
    """``"4"`` -> 4.0; ``"0"`` -> None (no starvation promotion)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValidationError("--tiresias-promote-knob", text, _KNOB_EXPECTED)
    return value or None


def tiresias(*, thresholds=DEFAULT_THRESHOLDS, promote_knob: float | None = None, **_: object) -> Tiresias:
    return Tiresias(thresholds, promote_knob=promote_knob)
