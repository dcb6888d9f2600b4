"""Shortest remaining time first with oracle run times (a reference, not deployable).

Preemptive (:mod:`.base`, run by :mod:`.loop`): at every arrival and end the active jobs are ordered by
remaining run time (the trace's real duration minus the time run so far -- oracle
knowledge), a running job before a waiting one on equal remaining time (no preemption
for a tie), then submit time and id. A waiting job that fits nowhere preempts running
jobs with a longer remaining time (ranked below it), which go back to waiting with their
remaining time kept (no restart cost). Between events the order among running jobs never
changes (their remaining times all fall at the same rate), so no other event is needed.
"""

from __future__ import annotations

from .base import JobState, PreemptivePolicy

NAME = "srtf"


class SRTF(PreemptivePolicy):
    name = NAME
    oracle = True

    def key(self, job: JobState, now: float) -> tuple:
        return (job.remaining_at(now), 0 if job.running else 1, job.submit, job.id)


def srtf(**_: object) -> SRTF:
    return SRTF()
