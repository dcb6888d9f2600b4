"""Tiresias' discretized two-dimensional least-attained-service (Gu et al., NSDI'19).

Preemptive (:mod:`.preemptive`), no oracle knowledge: a job's *attained service* is its
GPUs x the time it has run so far (kept across preemptions). Thresholds ``T1 < T2 < ...``
on attained service (``--tiresias-thresholds``, GPU-seconds; default one threshold at
3200, i.e. two queues) split jobs into queues: queue ``k`` holds the jobs with
``T_k <= attained < T_{k+1}``. Lower queues come first; within a queue FIFO by submit time
(then id). A running job moves to the next queue the moment its attained service reaches
a threshold -- the engine gets an event for that (:meth:`Tiresias.next_change`) -- and
then jobs of the higher queue that wait may preempt it. Preempted jobs keep their
attained service. No starvation promotion (the paper's optional knob) yet.
"""

from __future__ import annotations

import math

from ...errors import ValidationError
from .preemptive import JobState, PreemptivePolicy

NAME = "tiresias"
DEFAULT_THRESHOLDS: tuple[float, ...] = (3200.0,)


def _tolerance(t: float) -> float:
    return 1e-9 * max(1.0, abs(t))


class Tiresias(PreemptivePolicy):
    name = NAME
    oracle = False

    def __init__(self, thresholds=DEFAULT_THRESHOLDS):
        values = []
        for t in thresholds:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
                raise ValidationError("tiresias threshold", t, "expected positive GPU-seconds, e.g. 3200")
            values.append(float(t))
        if values != sorted(set(values)):
            raise ValidationError("tiresias thresholds", ",".join(f"{t:g}" for t in thresholds),
                                  "expected increasing GPU-seconds, e.g. 3200 or 3200,36000")
        self.thresholds = tuple(values)

    def queue(self, attained: float) -> int:
        """Index of the queue for this much attained service (0 = highest priority)."""
        return sum(1 for t in self.thresholds if attained >= t - _tolerance(t))

    def key(self, job: JobState, now: float) -> tuple:
        return (self.queue(job.attained_at(now)), job.submit, job.id)

    def next_change(self, job: JobState, now: float) -> float | None:
        if job.gpus <= 0 or job.since is None:
            return None
        attained = job.attained_at(now)
        for t in self.thresholds:
            if attained < t - _tolerance(t):
                return now + (t - attained) / job.gpus
        return None


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``"3200"`` or ``"3200,36000"`` (GPU-seconds) -> thresholds."""
    try:
        values = tuple(float(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise ValidationError("--tiresias-thresholds", text, "expected GPU-seconds, e.g. 3200 or 3200,36000")
    if not values:
        raise ValidationError("--tiresias-thresholds", text, "expected GPU-seconds, e.g. 3200 or 3200,36000")
    return Tiresias(values).thresholds


def tiresias(*, thresholds=DEFAULT_THRESHOLDS, **_: object) -> Tiresias:
    return Tiresias(thresholds)
