"""Tiresias' discretized two-dimensional least-attained-service (Gu et al., NSDI'19).

Preemptive (:mod:`.base`, run by :mod:`.loop`), no oracle knowledge: a job's *attained
service* is its GPUs x the time it has run so far (kept across preemptions). Thresholds
``T1 < T2 < ...`` on attained service (``--tiresias-thresholds``, GPU-seconds; default
3250 and 7200, i.e. three queues, as in the authors' simulator, ``SymbioticLab/Tiresias``,
``jobs.py``) split jobs into queues; lower queues come first. A running job moves to the
next queue the moment its attained service reaches a threshold -- the engine gets an
event for that (:meth:`Tiresias.next_change`) -- and then jobs of the higher queue that
wait may preempt it. Preempted jobs keep their attained service.

Order within a queue (rules ``paper``, the default), as the authors' simulator
(``run_sim.py``, ``dlas_sim_jobs``) keeps it: each queue is a list; a new job is appended
to the first queue, a demoted job to the end of its new queue, a promoted one to the end
of the first; after every pass the jobs that wait are moved, in their order, behind those
that run. So a running job keeps its place ahead of the waiting jobs of its queue and a
waiting job never preempts a running job of its own queue -- except a job demoted into
it, which is behind that queue's waiting jobs until the next pass. Rules ``corral``: each
queue is ordered by submit time (then id), so an older waiting job preempts younger
running ones of its queue.

Starvation promotion (the paper's "avoiding starvation" rule, PROMOTEKNOB; off by
default, ``promote_knob``): a waiting job in a lower queue whose waiting time so far
(``delta``) reaches ``promote_knob`` times its execution time so far (``t``, seconds) moves
back to the highest-priority queue, and both ``t`` and ``delta`` are reset to zero -- its
attained service *for queueing* restarts from 0, so it is not demoted again right away
(its total attained service, reported in the outcomes, is kept). As in the authors'
simulator, ``t`` counts the run time since the last promotion, ``delta`` the time waited
since the last promotion once the job has run (resuming does not reset it), and a job that
has not run since its last promotion (or ever) is in the highest queue and never promoted.
The engine gets an event at the moment the rule fires (:meth:`Tiresias.next_promotion`),
so the promotion happens at that exact virtual time.
"""

from __future__ import annotations

import math
from bisect import bisect_right

from ...errors import ValidationError
from itertools import count

from .base import CORRAL, PAPER, JobState, PreemptivePolicy, check_rules

NAME = "tiresias"
#: The authors' simulator's: three queues (``jobs.py``: ``queue_limit = [3250, 7200, ...]``
#: with ``num_queue = 3``).
DEFAULT_THRESHOLDS: tuple[float, ...] = (3250.0, 7200.0)

#: A place in a queue's list: ``(0, n)`` among the jobs that ran at the last pass, ``(1, n)``
#: behind them (n increasing towards the back).
_RUNNING, _BEHIND = 0, 1


def _tolerance(t: float) -> float:
    return 1e-9 * max(1.0, abs(t))


class Tiresias(PreemptivePolicy):
    name = NAME
    oracle = False

    def __init__(self, thresholds=DEFAULT_THRESHOLDS, promote_knob: float | None = None, rules: str = PAPER):
        self.rules = check_rules(rules)
        #: Places handed out at the back of a queue, and at the front of its waiting part
        #: (decreasing), for the paper's order.
        self._back = count()
        self._front = count(-1, -1)
        #: Running jobs demoted since the last pass (at the back of their new queue).
        self._demoted: dict[int, JobState] = {}
        values = []
        for t in thresholds:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
                raise ValidationError("tiresias threshold", t, "expected positive GPU-seconds, e.g. 3250")
            values.append(float(t))
        if values != sorted(set(values)):
            raise ValidationError("tiresias thresholds", ",".join(f"{t:g}" for t in thresholds),
                                  "expected increasing GPU-seconds, e.g. 3250,7200")
        self.thresholds = tuple(values)
        #: The thresholds less their round-off tolerance, increasing like them.
        self._cuts = [t - _tolerance(t) for t in self.thresholds]
        #: PROMOTEKNOB; None: no starvation promotion.
        self.promote_knob = check_promote_knob(promote_knob)

    def queue(self, attained: float) -> int:
        """Index of the queue for this much attained service (0 = highest priority)."""
        return bisect_right(self._cuts, attained)     # how many cuts are <= attained

    def key(self, job: JobState, now: float) -> tuple:
        if self.rules == CORRAL:
            return (self.queue(job.service_at(now)), job.submit, job.id)
        return (job.queue, *job.place, job.id)

    def queue_of(self, job: JobState) -> int:
        """The queue ``job`` is in (while it waits, or as of its last event)."""
        return self.queue(job.service) if self.rules == CORRAL else job.queue

    def next_change(self, job: JobState, now: float) -> float | None:
        if job.gpus <= 0 or job.since is None:
            return None
        attained = job.service_at(now)
        for t in self.thresholds:
            if attained < t - _tolerance(t):
                return now + (t - attained) / job.gpus
        return None

    # -- the paper's order within a queue ----------------------------------------------------

    def arrive(self, job: JobState, now: float) -> None:
        job.queue, job.place = 0, (_BEHIND, next(self._back))

    def changed(self, job: JobState, now: float) -> None:
        queue = self.queue(job.service_at(now))
        if queue != job.queue:                 # demoted: to the back of its new queue
            job.queue, job.place = queue, (_BEHIND, next(self._back))
            self._demoted[job.id] = job

    def settle(self, ran: list[JobState], preempted: list[JobState]) -> None:
        if self.rules == CORRAL:
            return
        # The waiting part of each queue moves behind its running jobs: those that just
        # started and those demoted into it that still run, in the order of the pass.
        behind = {job.id: job for job in self._demoted.values() if job.running}
        self._demoted.clear()
        behind.update((job.id, job) for job in ran if job.place[0] != _RUNNING)
        for job in sorted(behind.values(), key=lambda j: (j.queue, j.place, j.id)):
            job.place = (_RUNNING, next(self._back))
        for job in reversed(preempted):        # ... and the preempted lead the waiting part
            if job.place[0] == _RUNNING:
                job.place = (_BEHIND, next(self._front))

    def next_promotion(self, job: JobState, now: float) -> float | None:
        knob = self.promote_knob
        if knob is None or job.waiting_since is None or job.executed <= 0 or self.queue_of(job) == 0:
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
        job.queue, job.place = 0, (_BEHIND, next(self._back))   # to the back of the first queue
        return True


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``"3250,7200"`` or ``"3200"`` (GPU-seconds) -> thresholds."""
    try:
        values = tuple(float(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise ValidationError("--tiresias-thresholds", text, "expected GPU-seconds, e.g. 3250,7200 or 3200")
    if not values:
        raise ValidationError("--tiresias-thresholds", text, "expected GPU-seconds, e.g. 3250,7200 or 3200")
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


def tiresias(*, thresholds=DEFAULT_THRESHOLDS, promote_knob: float | None = None, rules: str = PAPER,
             **_: object) -> Tiresias:
    return Tiresias(thresholds, promote_knob=promote_knob, rules=rules)
