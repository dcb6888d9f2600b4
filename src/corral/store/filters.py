"""Which jobs a listing wants: :class:`JobFilter`, the one query shape every store
answers (:meth:`corral.store.base.Store.find_jobs`).

Every field narrows (all must match); ``None`` (or empty) leaves that one open. The
memory store (and the generic implementation) applies :meth:`JobFilter.matches` job by
job; SQLite turns the same fields into one ``WHERE`` (its name glob is this module's
:func:`glob_match`, registered as a SQL function, so both stores match alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..job import Job, JobState


def glob_match(name: str, pattern: str) -> bool:
    """Shell-style, case-sensitive: ``*``, ``?``, ``[abc]``, ``[!abc]``."""
    return fnmatchcase(name, pattern)


@dataclass(frozen=True)
class JobFilter:
    states: frozenset[JobState] | None = None
    #: Job name, a glob (``sweep-*``).
    name: str | None = None
    user: str | None = None
    queue: str | None = None
    #: Label pairs the job must all have.
    labels: tuple[tuple[str, str], ...] = ()
    #: Tasks of this array (its id); with ``index``, that one task.
    array: int | None = None
    index: int | None = None
    #: Submitted at or after.
    since: float | None = None
    #: Ids from ``id_min`` to ``id_max`` (inclusive).
    id_min: int | None = None
    id_max: int | None = None
    #: At most this many: the first ``limit`` by id, or with ``newest`` the last ones
    #: (still answered in id order).
    limit: int | None = None
    newest: bool = False

    def matches(self, job: Job) -> bool:
        """Whether ``job`` passes every field (``limit`` aside)."""
        if self.states is not None and job.state not in self.states:
            return False
        if self.name is not None and not glob_match(job.spec.name, self.name):
            return False
        if self.user is not None and job.user != self.user:
            return False
        if self.queue is not None and job.spec.queue != self.queue:
            return False
        if any(job.spec.labels.get(k) != v for k, v in self.labels):
            return False
        if self.array is not None and job.array_id != self.array:
            return False
        if self.index is not None and job.array_index != self.index:
            return False
        if self.since is not None and job.submitted_at < self.since:
            return False
        if self.id_min is not None and job.id < self.id_min:
            return False
        if self.id_max is not None and job.id > self.id_max:
            return False
        return True

    def take(self, jobs: list[Job]) -> list[Job]:
        """``jobs`` (matching, in id order) cut to ``limit``."""
        if self.limit is None:
            return jobs
        limit = max(self.limit, 0)
        if self.newest:
            return jobs[len(jobs) - limit:] if limit else []
        return jobs[:limit]
