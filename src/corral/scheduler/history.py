"""Run-time estimates from history: what a user's recent jobs took.

Pure (no I/O, no clock): the daemon feeds it the run times of jobs that succeeded (from
its store at start, then as jobs end), the simulator the run times of trace jobs as
they complete in virtual time; both ask it for a job's estimate when the job is queued.

A job's estimate is, in order: its own time limit (what the user declared); else the
median run time of its user's last :data:`KEEP` successful jobs; else unknown (None).
The median, not the mean: one forgotten job that ran for days should not make every
later estimate long. Only what has *finished* counts -- a job still running says nothing
yet -- so the estimate never reads the future.

``sjf`` (shortest job first) orders the queue by these estimates: short jobs of users
whose jobs are short go first; jobs with no estimate go after every job with one.

Asked with a GPU count (``sjf-aging`` does), the prediction is the median of the user's
last jobs *of that many GPUs* when there is one, else the user's median over all their
jobs: one user's 1-GPU trials and 8-GPU runs differ more than one user's runs of one
size do (on the Philly week samples the learned order comes out about 3 % closer to
the lower bound; docs/benchmarks.md). Ends recorded without a GPU count (the daemon's
history read back from its store at start) only feed the per-user lane.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import median

#: Successful run times kept per user.
KEEP = 20


class RunTimeHistory:
    """The last ``keep`` successful run times (seconds) of each user."""

    def __init__(self, keep: int = KEEP):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.keep = keep
        self._times: dict[str, deque[float]] = {}
        #: The same per (user, GPUs per job).
        self._sized: dict[tuple[str, int], deque[float]] = {}

    def observe(self, user: str, seconds: float, gpus: int | None = None) -> None:
        """A job of ``user`` (of ``gpus`` GPUs, when known) succeeded after running
        ``seconds`` (oldest first when loading)."""
        if not math.isfinite(seconds) or seconds < 0:
            return                                   # a clock step; nothing to learn
        times = self._times.get(user)
        if times is None:
            times = self._times[user] = deque(maxlen=self.keep)
        times.append(float(seconds))
        if gpus is not None:
            sized = self._sized.get((user, gpus))
            if sized is None:
                sized = self._sized[(user, gpus)] = deque(maxlen=self.keep)
            sized.append(float(seconds))

    def predict(self, user: str, gpus: int | None = None) -> float | None:
        """The median of ``user``'s recent successful run times (None: no history); with
        ``gpus``, of their recent jobs of that many GPUs when there are any."""
        if gpus is not None:
            sized = self._sized.get((user, gpus))
            if sized:
                return median(sized)
        times = self._times.get(user)
        return median(times) if times else None

    def estimate(self, user: str, time_limit: float | None = None, gpus: int | None = None) -> float | None:
        """The job's time limit when it has one, else :meth:`predict`."""
        if time_limit is not None and time_limit > 0:
            return float(time_limit)
        return self.predict(user, gpus)

    def samples(self, user: str) -> int:
        """How many run times the prediction for ``user`` rests on."""
        return len(self._times.get(user, ()))
