"""Research reference policies (SRTF, Tiresias): the interface their loop drives.

These are *references from the literature*, kept to compare corral's policies against --
not policies the daemon runs. A :class:`PreemptivePolicy` does not go through the
daemon's cycle (the daemon does not preempt by remaining time or attained service); its
own loop (:mod:`.loop`) recomputes the running set at every event instead, by the paper's
rules or corral's (:attr:`PreemptivePolicy.rules`; what each does: :mod:`.loop`):

* every active job -- running or waiting -- is ordered by :meth:`PreemptivePolicy.key`
  (lowest first = highest priority);
* a preempted job releases its allocation and goes back to waiting with the work it has
  done (remaining time and attained service are kept; no restart cost, as in the
  literature's SRTF and Tiresias simulations).

:meth:`PreemptivePolicy.next_change` lets a policy ask for an event when a running job's
priority changes without any arrival or end (Tiresias' demotions, applied by
:meth:`PreemptivePolicy.changed`); :meth:`PreemptivePolicy.next_promotion` and
:meth:`PreemptivePolicy.promote` do the same for a waiting job (Tiresias' starvation
promotion), which the policy may change the state of. :meth:`PreemptivePolicy.arrive` and
:meth:`PreemptivePolicy.settle` let it keep per-job bookkeeping (Tiresias' queue lists).

A waiting job's :meth:`~PreemptivePolicy.key` must depend on its state only, not on the
time (SRTF: the remaining time; Tiresias: the queue and the place in it), so that it only
changes when the job starts, stops or is promoted: the engine keeps the waiting jobs sorted
by it instead of sorting every job at every event (with ``check=True`` it verifies that the
kept keys are the current ones). Keys should be unique (end with the job id); among equal
keys the earlier submit, then the lower id, ranks first.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ValidationError

#: The reference rules: the authors' simulators' (default) or corral's own variant.
PAPER, CORRAL = "paper", "corral"
RULES = (PAPER, CORRAL)


def check_rules(rules: object) -> str:
    if rules not in RULES:
        raise ValidationError("--reference-rules", rules, "expected paper (the authors' simulators) or corral")
    return str(rules)


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
    #: GPU-seconds attained since the last promotion (all of them until promoted), as of
    #: ``since`` when running: what Tiresias queues by.
    service: float = 0.0
    #: Seconds run since the last promotion, as of ``since`` when running.
    executed: float = 0.0
    #: Seconds waited since the last promotion while ``executed`` > 0, as of
    #: ``waiting_since`` when waiting.
    waited: float = 0.0
    #: When the current wait began (None: running).
    waiting_since: float | None = None
    promotions: int = 0
    #: Tiresias (the paper's rules): the job's queue (0 = highest priority) and its place in
    #: that queue's list, kept by the policy (:meth:`PreemptivePolicy.arrive`, ``changed``,
    #: ``promote``, ``settle``).
    queue: int = 0
    place: tuple = ()
    #: When the job last stopped running (its submit time until it first runs): since then
    #: its remaining time has not changed (SRTF's order among equal remaining times).
    reached: float = 0.0

    @property
    def running(self) -> bool:
        return self.since is not None

    def remaining_at(self, now: float) -> float:
        return self.remaining if self.since is None else max(self.remaining - (now - self.since), 0.0)

    def attained_at(self, now: float) -> float:
        return self.attained if self.since is None else self.attained + self.gpus * (now - self.since)

    def service_at(self, now: float) -> float:
        return self.service if self.since is None else self.service + self.gpus * (now - self.since)

    def executed_at(self, now: float) -> float:
        return self.executed if self.since is None else self.executed + (now - self.since)

    def waited_at(self, now: float) -> float:
        if self.waiting_since is None or self.executed <= 0:
            return self.waited
        return self.waited + (now - self.waiting_since)

    def resume(self, now: float) -> None:
        """The job (re)starts at ``now``."""
        self.waited = self.waited_at(now)
        self.waiting_since = None
        self.since = now
        if self.first_start is None:
            self.first_start = now

    def pause(self, now: float) -> None:
        """The job stops running at ``now`` (preempted, or ended), its work kept."""
        self.remaining = self.remaining_at(now)
        self.attained = self.attained_at(now)
        self.service = self.service_at(now)
        self.executed = self.executed_at(now)
        self.since = None
        self.waiting_since = now
        self.reached = now


class PreemptivePolicy:
    """Base class: ``name``, ``oracle`` (reads the trace's real run times), ``key``."""

    name: str = ""
    oracle: bool = False
    #: ``paper``: the authors' simulator's rules (:mod:`.loop`, "The paper's rules");
    #: ``corral``: corral's own variant (victims searched on one node, gang jobs first and
    #: never preempted, Tiresias queues by submit time).
    rules: str = PAPER

    def arrive(self, job: JobState, now: float) -> None:
        """``job`` was just submitted (before it is first ranked)."""

    def changed(self, job: JobState, now: float) -> None:
        """The running ``job``'s :meth:`next_change` is due at ``now``."""

    def settle(self, ran: list[JobState], preempted: list[JobState]) -> None:
        """After a pass (the paper's rules): ``ran`` the jobs running after it and
        ``preempted`` those it stopped, each in the order the pass visited them."""

    def key(self, job: JobState, now: float) -> tuple:
        """Rank of ``job`` at ``now`` (lowest first); every concrete policy defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define key()")

    def next_change(self, job: JobState, now: float) -> float | None:
        """When the running ``job``'s key changes by itself (None: never)."""
        return None

    def next_promotion(self, job: JobState, now: float) -> float | None:
        """When the waiting ``job`` is due a :meth:`promote` (``now`` at the earliest;
        None: never while it waits)."""
        return None

    def promote(self, job: JobState, now: float) -> bool:
        """Apply the promotion the waiting ``job`` is due at ``now`` (changing its state,
        hence its key); False, changing nothing, when none is due."""
        return False
