"""Shortest remaining time first with oracle run times (a reference, not deployable).

Preemptive (:mod:`.base`, run by :mod:`.loop`): at every arrival and end the active jobs are
ordered by remaining run time (the trace's real duration minus the time run so far --
oracle knowledge); in that order each job runs where it fits, the others wait (preempted
if they were running, their remaining time kept, no restart cost). Between events the
order among running jobs never changes (their remaining times all fall at the same rate),
so no other event is needed.

Ties (rules ``paper``, the default): as the Tiresias authors' simulator
(``SymbioticLab/Tiresias``, ``run_sim.py``, ``shortest_first_sim_jobs``) does, which appends
new jobs to a list and sorts it by remaining time at every event with a stable sort: among
equal remaining times the job that has had that remaining time the longest comes first --
a job that waits since an earlier event before a running one that has just counted down
to it (so a tie can preempt), a running one before a job submitted at this instant,
waiting jobs by when they stopped (or were submitted), running jobs in the order they had
when the last of them started (:meth:`SRTF.settle`); then submit time and id. Rules ``corral``: a running job before a waiting one on
equal remaining time (no preemption for a tie), then submit time and id.
"""

from __future__ import annotations

from itertools import count

from .base import CORRAL, PAPER, JobState, PreemptivePolicy, check_rules

NAME = "srtf"


class SRTF(PreemptivePolicy):
    name = NAME
    oracle = True

    def __init__(self, rules: str = PAPER):
        self.rules = check_rules(rules)
        #: Places at the front (decreasing) and the back of a tie among running jobs.
        self._front = count(-1, -1)
        self._back = count(1)

    def key(self, job: JobState, now: float) -> tuple:
        if self.rules == CORRAL:
            return (job.remaining_at(now), 0 if job.running else 1, job.submit, job.id)
        # (remaining, when it reached that remaining time, ...): a running job reaches it
        # now, and a running job comes before a job submitted now (appended to the list);
        # running jobs among themselves by their place (:meth:`settle`).
        if job.since is None:
            return (job.remaining, job.reached, 1, 0, job.submit, job.id)
        return (job.remaining_at(now), now, 0, job.place[0] if job.place else 0, job.submit, job.id)

    def settle(self, ran: list[JobState], preempted: list[JobState]) -> None:
        # Running jobs with equal remaining times keep the order they had when the last of
        # them started: one that had waited went ahead of the running ones then (their
        # remaining times had only just come down to its), one submitted at that instant
        # behind them -- so the first goes to the front of the tie, the second to the back.
        if self.rules == CORRAL:
            return
        for job in reversed(ran):
            if job.reached != job.since:
                job.place = (next(self._front),)
        for job in ran:
            if job.reached == job.since:
                job.place = (next(self._back),)


def srtf(*, rules: str = PAPER, **_: object) -> SRTF:
    return SRTF(rules)
