"""Commands: what users ask of the daemon -- submit, update, hold, release, cancel.

Each is all or nothing: every job of a request is checked first, with every reason why
not, and only then does anything change. Permissions (whose job, admin or not) are the
API's (:mod:`corral.daemon.auth`); these check the jobs and their specs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import Infeasible, InvalidTransition, PermissionDenied, ValidationError, show_value
from ..executors.base import StopReason
from ..job import Job, JobState, Reason
from ..resources import format_quantity
from ..scheduler import infeasible
from ..scheduler.quota import QuotaState
from .auth import dir_usable_as
from ..spec import JobSpec, with_defaults

if TYPE_CHECKING:
    from .admission import Admission
    from .context import Daemon
    from .lifecycle import Lifecycle


class Commands:
    def __init__(self, daemon: "Daemon", admission: "Admission", lifecycle: "Lifecycle"):
        self.m = daemon
        self.admission = admission
        self.lifecycle = lifecycle

    # -- submit -----------------------------------------------------------------------------------
    def submit(self, specs: list[JobSpec], base_env: dict[str, str] | None = None, user: str = "",
               uid: int | None = None, gid: int | None = None, key: str | None = None) -> list[Job]:
        """Admit a batch: all jobs are stored, or none (with every reason why not).

        An array spec becomes one job per index (same spec, ``array_id`` = the first
        task's id, ``CORRAL_ARRAY_INDEX`` in its environment)."""
        m = self.m
        if not specs:
            raise ValidationError("jobs", [], "expected at least one job")
        if key is not None:
            key = f"{uid}:{key}"                  # a user's keys are theirs alone
            before = m.store.jobs_for_key(key)
            if before is not None:
                return before                     # a retried submit: what the first one stored
        ready: list[Job] = []
        errors: list[str] = []
        checked: dict[str, bool] = {}           # workdir -> usable by the submitter
        queues = m.driver.queues
        for i, spec in enumerate(specs):
            spec = with_defaults(spec, m.default_requests)
            prefix = f"{spec.origin or f'job {i + 1}'}: " if len(specs) > 1 else ""
            if spec.workdir:
                usable = checked.get(spec.workdir)
                if usable is None:
                    usable = checked[spec.workdir] = dir_usable_as(spec.workdir, uid, gid, user)
                if not usable:
                    errors.append(f"{prefix}invalid value for workdir: {show_value(spec.workdir)} (expected an "
                                  "existing directory you can enter)")
            for line in infeasible(m.driver.nodes, spec.demand):
                errors.append(prefix + line)
            if spec.pty and not m.executor.capabilities.interactive:
                errors.append(f"{prefix}invalid value for pty: true (interactive jobs need the local engine)")
            if spec.queue not in queues:
                errors.append(f"{prefix}invalid value for queue: \"{spec.queue}\" (expected one of: "
                              f"{', '.join(sorted(queues))})")
            else:
                never = self.quota_never_fits(spec)
                if never:
                    errors.append(prefix + never)
            if spec.dependencies:
                spec, problems = self._resolve_tasks(spec)
                errors += [prefix + line for line in problems]
                wanted = {d for _, d in spec.dependencies if isinstance(d, int)}
                known = {j.id for j in m.store.get_jobs(wanted)}
                for missing in sorted(wanted - known):
                    errors.append(f"{prefix}invalid value for after: {missing} (no such job)")
            if spec.array:
                for index in spec.array:
                    ready.append(Job(id=0, spec=replace(spec, array=()), base_env=dict(base_env or {}), user=user,
                                     uid=uid, gid=gid, array_id=-(i + 1), array_index=index, held=spec.hold))
            else:
                ready.append(Job(id=0, spec=spec, base_env=dict(base_env or {}), user=user, uid=uid, gid=gid,
                                 held=spec.hold))
        if errors:
            raise Infeasible(errors)
        stored = m.store.add_jobs(ready, m.clock(), key=key)
        for job in stored:
            self.admission.offer(job)
        m.kick()
        return stored

    def _resolve_tasks(self, spec: JobSpec) -> tuple[JobSpec, list[str]]:
        """``--after 12_3``: the task's job id in place of ``"12_3"``. The first task of an
        array cannot be named alone: its job id is the array's, which means every task."""
        from ..store.filters import JobFilter

        deps: list[tuple[str, int]] = []
        problems: list[str] = []
        for kind, ref in spec.dependencies:
            if isinstance(ref, int):
                deps.append((kind, ref))
                continue
            array_id, _, index = str(ref).partition("_")
            hit = self.m.store.find_jobs(JobFilter(array=int(array_id), index=int(index)))
            if not hit:
                problems.append(f"invalid value for after: {ref} (no such array task)")
            elif hit[0].id == hit[0].array_id:
                problems.append(f"invalid value for after: {ref} (the first task's job id is the array's id, "
                                f"which means every task: use {array_id} for the whole array)")
            elif (kind, hit[0].id) not in deps:
                deps.append((kind, hit[0].id))
        return replace(spec, dependencies=tuple(deps)), problems

    def quota_never_fits(self, spec: JobSpec) -> str:
        """Why a job can never be admitted by its queue's quota ('' when it can): quotas
        count what it takes on all its nodes (:attr:`JobSpec.demand`)."""
        m = self.m
        quota = QuotaState(m.driver.queues, m.driver.state.capacity)
        limits = []
        for name, amount in spec.demand.sorted_items():
            most = quota.most(spec.queue, name)
            if most is not None and amount > most:
                limits.append(f"{name}: job requests {format_quantity(name, amount)}, queue {spec.queue} can "
                              f"hold at most {format_quantity(name, most)} (nominal plus what it may borrow)")
        return "insufficient quota for " + "; ".join(limits) if limits else ""

    # -- update -----------------------------------------------------------------------------------
    def update(self, ids: list[int], *, priority: int | None = None, time_limit: int | None = None,
               queue: str | None = None, admin: bool = True) -> list[tuple[int, str]]:
        """Change jobs' priority, time limit or queue (``scontrol update``), all or none.

        Pending jobs: any of them. Running jobs: the time limit only. Without ``admin``,
        a user may only lower a priority or a time limit (as in Slurm). Returns what
        changed per job, in words; raises a one-line error, changing nothing, when any
        job's change is refused."""
        m = self.m
        plans = [self._plan_update(m.store.get_job(job_id), priority, time_limit, queue, admin) for job_id in ids]
        out = []
        for job, new, changes in plans:
            if not changes:
                out.append((job.id, "unchanged"))
                continue
            m.store.update_spec(job.id, new, "updated: " + ", ".join(changes), m.clock())
            updated = m.store.get_job(job.id)
            live = m.driver.jobs.get(job.id)
            if live is not None:
                m.driver.changed(updated)
                if live.run is not None:
                    self.lifecycle.arm_time_limit(live)
            out.append((job.id, ", ".join(changes)))
        m.kick()
        return out

    def _plan_update(self, job: Job, priority: int | None, time_limit: int | None, queue: str | None,
                     admin: bool) -> tuple[Job, JobSpec, list[str]]:
        spec, job_id = job.spec, job.id
        if job.terminal:
            raise InvalidTransition(f"job {job_id} is {job.state.value}: a finished job cannot be changed")
        if job.state is JobState.RUNNING and (priority is not None or queue is not None):
            raise InvalidTransition(f"job {job_id} is Running: only its time limit can be changed")
        changes, new = [], spec
        if priority is not None and priority != spec.priority:
            if not admin and priority > spec.priority:
                raise PermissionDenied(f"permission denied: only admins may raise a priority "
                                       f"(job {job_id}: {spec.priority} -> {priority})")
            changes.append(f"priority {spec.priority} -> {priority}")
            new = replace(new, priority=priority)
        if time_limit is not None and time_limit != spec.time_limit:
            if not admin and (spec.time_limit is None or time_limit > spec.time_limit):
                raise PermissionDenied(f"permission denied: only admins may raise a time limit "
                                       f"(job {job_id}: {_limit(spec.time_limit)} -> {_limit(time_limit)})")
            changes.append(f"time limit {_limit(spec.time_limit)} -> {_limit(time_limit)}")
            new = replace(new, time_limit=time_limit)
        if queue is not None and queue != spec.queue:
            queues = self.m.driver.queues
            if queue not in queues:
                raise ValidationError("queue", queue, f"expected one of: {', '.join(sorted(queues))}")
            never = self.quota_never_fits(replace(new, queue=queue))
            if never:
                raise ValidationError("queue", queue, never)
            changes.append(f"queue {spec.queue} -> {queue}")
            new = replace(new, queue=queue)
        return job, new, changes

    # -- hold / release ---------------------------------------------------------------------------
    def hold(self, ids: list[int], who: str = "") -> list[int]:
        """Hold pending jobs (all or none); returns those that changed."""
        m = self.m
        changed = m.store.set_held(ids, True, f"held by {who}" if who else "held", m.clock())
        for job_id in changed:
            job = m.store.get_job(job_id)
            m.driver.track(job)
            m.driver.dequeue(job_id)             # a held preemptor no longer claims capacity
            m.gates.held.add(job_id)
            nxt = m.gates.array_done(job) if job.array_id is not None else None
            if nxt is not None:
                self.admission.offer(m.store.get_job(nxt))
        m.kick()
        return changed

    def release(self, ids: list[int], who: str = "") -> list[int]:
        """Release held jobs (all or none); returns those that changed."""
        m = self.m
        changed = m.store.set_held(ids, False, f"released by {who}" if who else "released", m.clock())
        for job_id in changed:
            m.gates.held.discard(job_id)
            self.admission.offer(m.store.get_job(job_id))
        m.kick()
        return changed

    # -- cancel -----------------------------------------------------------------------------------
    def cancel(self, job_id: int) -> str:
        """Cancel one job; returns what happened, in words."""
        m = self.m
        job = m.store.get_job(job_id)
        if job.state is JobState.PENDING:
            self.admission.end_pending(job, Reason.CANCELLED, "cancelled while pending")
            return "cancelled"
        if job.state is JobState.RUNNING:
            if m.executor.stop(job_id, StopReason.CANCEL):
                return "stopping"
            return "not running here"
        return f"already {job.state.value.lower()}"


def _limit(seconds: int | None) -> str:
    """A time limit as people write it (``1h30m``), ``none`` when there is none."""
    from ..durations import format_duration

    return format_duration(seconds) if seconds else "none"
