"""Shortest job first on run times learned from history: what the daemon's ``sjf`` does.

The deployable counterpart of the oracle ``sjf`` reference: a job's estimate is its time
limit when the trace records one, else the median run time of its user's last 20 jobs
*that had completed when it was submitted* (:class:`corral.scheduler.history.RunTimeHistory`,
fed by the engine as jobs end in virtual time), else unknown -- such jobs go after every
job with an estimate. The scheduler core's ``sjf`` ordering then runs unchanged on the fast
path (best-effort: a job that does not fit lets the next one start). Needs no oracle
knowledge: it is exactly what ``policy: sjf`` does in the daemon, which learns from the
store's successful jobs.
"""

from __future__ import annotations

from ...scheduler.policies.sjf import ShortestJobFirst

NAME = "sjf-history"


class ShortestJobFirstHistory(ShortestJobFirst):
    name = NAME
    oracle = False
    #: The engine gives this policy learned estimates instead of the real durations.
    learns = True


def sjf_history(**_: object) -> ShortestJobFirstHistory:
    return ShortestJobFirstHistory()
