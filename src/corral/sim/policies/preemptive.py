"""Preemptive simulator policies: the common interface the engine drives.

A :class:`PreemptivePolicy` does not go through the daemon's cycle (the daemon does not
preempt by remaining time or attained service); the engine's preemptive loop
(:mod:`corral.sim.preemptive`) recomputes the running set at every event instead:

* every active job -- running or waiting -- is ordered by :meth:`PreemptivePolicy.key`
  (lowest first = highest priority);
* in that order, a waiting job starts where it fits (best fit, the scheduler core's
  :func:`~corral.scheduler.placement.node_score` and
  :func:`~corral.scheduler.placement.place_on`); if it fits nowhere, the running jobs
  ranked *below* it are preempted on the node that needs the fewest of them (lowest-ranked
  first, node name on ties) when that makes it fit; otherwise it keeps waiting and
  later-ranked jobs may use the room it cannot;
* a preempted job releases its allocation and goes back to waiting with the work it has
  done (remaining time and attained service are kept; no restart cost, as in the
  literature's SRTF and Tiresias simulations).

:meth:`PreemptivePolicy.next_change` lets a policy ask for an event when a running job's
priority changes without any arrival or end (Tiresias' demotions).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class JobState:
    """A job the preemptive engine tracks (times in seconds, service in GPU-seconds)."""

    id: int
    submit: float
    duration: float
    gpus: int
    #: Work left (seconds of run time), as of ``since`` when running.
    remaining: float
    #: GPUs x seconds run so far, as of ``since`` when running.
    attained: float = 0.0
    #: When the current run began (None: waiting).
    since: float | None = None
    first_start: float | None = None
    preemptions: int = 0

    @property
    def running(self) -> bool:
        return self.since is not None

    def remaining_at(self, now: float) -> float:
        return self.remaining if self.since is None else max(self.remaining - (now - self.since), 0.0)

    def attained_at(self, now: float) -> float:
        return self.attained if self.since is None else self.attained + self.gpus * (now - self.since)


class PreemptivePolicy:
    """Base class: ``name``, ``oracle`` (reads the trace's real run times), ``key``."""

    name: str = ""
    oracle: bool = False

    def key(self, job: JobState, now: float) -> tuple:
        raise NotImplementedError

    def next_change(self, job: JobState, now: float) -> float | None:
        """When the running ``job``'s key changes by itself (None: never)."""
        return None
