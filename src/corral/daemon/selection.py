"""Which jobs a request means: ids (an array's id: all of it), tasks, ranges and
selectors, resolved against the store (Slurm's meaning; :class:`~corral.api.models.JobRefs`).

An array's id is its first task's job id, so "job 12" and "array 12" are one number:
as in Slurm, the id names the whole array; ``12_N`` names one task (including the first).
Jobs an array, a range or a selector picks are kept only when the action applies to
them (``states``: cancel takes live jobs, hold and release pending ones), so ``cancel
ARRAY`` does not answer "already succeeded" for every finished task; jobs named one by
one are kept as they are, and the action says why not.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..errors import ValidationError
from ..job import Job, JobState
from ..store.base import Store
from ..store.filters import JobFilter

LIVE = frozenset({JobState.PENDING, JobState.RUNNING})
PENDING = frozenset({JobState.PENDING})

_STATES = ", ".join(s.value for s in JobState)


def parse_state(text: str, field: str = "state") -> JobState:
    for s in JobState:
        if s.value.lower() == text.strip().lower():
            return s
    raise ValidationError(field, text, "expected one of: " + _STATES)


def parse_states(values: Iterable[str], field: str = "state") -> frozenset[JobState] | None:
    """``["Pending", "running,failed"]`` -> the states; None when none are given."""
    parts = [part for raw in values for part in raw.split(",")]
    return frozenset(parse_state(p, field) for p in parts) if parts else None


def parse_label(text: str, field: str = "label") -> tuple[str, str]:
    from ..constraints import label_key_ok

    key, eq, value = text.partition("=")
    if not eq or not label_key_ok(key):
        raise ValidationError(field, text, "expected KEY=VALUE with a label key such as team or example.com/team, "
                                           "e.g. team=vision")
    return key, value


def job_filter(*, name: str | None = None, user: str | None = None, mine: bool = False, me: str = "",
               queue: str | None = None, labels: Iterable[tuple[str, str]] = (), array: int | None = None,
               states: Iterable[str] = (), since: Any = None, now: float = 0.0, field: str = "") -> JobFilter:
    """A selector's fields (as the API takes them) as a :class:`JobFilter`; ``me``: the
    caller's user name (``mine``); ``field``: the prefix of the fields' names in errors."""
    from ..durations import parse_duration

    pairs = []
    for key, value in labels:
        from ..constraints import label_key_ok

        if not label_key_ok(key):
            raise ValidationError(f"{field}labels", key, "expected a label key such as team or example.com/team")
        pairs.append((key, value))
    owner = me if mine else user
    if mine and user is not None and user != me:
        owner = "\0"                         # both asked for and they differ: nothing matches
    start = None
    if since is not None:
        start = now - parse_duration(since, f"{field}since", bare_unit=60, what="window",
                                     examples="expected e.g. 30m, 2h, 7d")
    return JobFilter(states=parse_states(states, f"{field}state"), name=name, user=owner,
                     queue=queue, labels=tuple(pairs), array=array, since=start)


def selector_filter(selector: Any, me: str, now: float) -> JobFilter:
    """An API :class:`~corral.api.models.JobSelector` as a :class:`JobFilter`."""
    return job_filter(name=selector.name, user=selector.user, mine=bool(selector.mine), me=me, queue=selector.queue,
                      labels=(selector.labels or {}).items(), array=selector.array, states=selector.state or (),
                      since=selector.since, now=now, field="selector.")


def is_array(job: Job) -> bool:
    """Whether ``job``'s id is its array's id (its first task)."""
    return job.array_id is not None and job.array_id == job.id


def resolve(store: Store, refs: Any, *, me: str, now: float,
            states: frozenset[JobState] | None = None) -> tuple[list[Job], list[str]]:
    """The jobs ``refs`` (:class:`~corral.api.models.JobRefs`) names, by id, and the refs
    named one by one that no job has (``"12"``, ``"12_3"``). ``states``: what jobs an
    array, range or selector contributes must be in (None: any)."""
    named: dict[int, Job] = {}
    picked: dict[int, Job] = {}
    missing: list[str] = []

    def whole(job: Job) -> None:
        for task in store.find_jobs(JobFilter(array=job.id, states=states)):
            picked[task.id] = task

    if refs.ids:
        found = {j.id: j for j in store.get_jobs(refs.ids)}
        for job_id in refs.ids:
            job = found.get(job_id)
            if job is None:
                missing.append(str(job_id))
            elif is_array(job):
                whole(job)
            else:
                named[job.id] = job
    for array_id, index in refs.tasks or ():
        hit = store.find_jobs(JobFilter(array=array_id, index=index))
        if hit:
            named[hit[0].id] = hit[0]
        else:
            missing.append(f"{array_id}_{index}")
    for lo, hi in refs.ranges or ():
        for job in store.find_jobs(JobFilter(id_min=lo, id_max=hi)):
            if is_array(job):
                whole(job)
            elif states is None or job.state in states:
                picked[job.id] = job
    if refs.selector is not None:
        query = selector_filter(refs.selector, me, now)
        for job in store.find_jobs(query):
            if states is None or job.state in states:
                picked[job.id] = job
    picked.update(named)
    return [picked[i] for i in sorted(picked)], missing
