"""Which enforcement the daemon runs: hard limits through cgroups, or the watchdog.

``auto`` (the default) takes cgroups where corral can create them (root, or a delegated
cgroup v2 subtree) and falls back to the watchdog otherwise; ``cgroup`` insists (the
daemon refuses to start without them); ``watchdog`` never uses cgroups. Whatever is
chosen is said by ``corral nodes`` and ``corral show``: limits are never silently
unenforced.

Containment -- finding and killing everything a job started, however it detached --
works in every mode, and ``corral nodes`` says how (:meth:`Enforcement.containment`):

* with cgroups, the job's cgroup holds every process it starts;
* without them, a cgroup v2 group with no controllers where one can be made (the
  ``unified`` hierarchy of a hybrid machine, a v2 subtree delegated without ``memory``):
  it limits nothing but holds the job's processes, and ``cgroup.kill`` ends them at once;
* always, the supervisor is the job's subreaper (``PR_SET_CHILD_SUBREAPER``): a process
  that leaves the job's session or double-forks is reparented to it, not to init, and
  killed when the job ends;
* where there is no group, processes that outlived a dead supervisor are found by the
  ``CORRAL_JOB_TAG`` in their environment (as HTCondor tracks process families by an
  inherited variable) and killed when the daemon learns the supervisor is gone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ...errors import CorralError
from .cgroups import CgroupSupport, detect, detect_group


@dataclass(frozen=True)
class Enforcement:
    mode: str                              # "cgroup" | "watchdog"
    support: CgroupSupport | None = None
    why: str = ""                          # why not cgroups (watchdog mode)
    #: Without cgroup limits: a cgroup v2 group per job that only holds its processes.
    group: CgroupSupport | None = None
    group_why: str = ""                    # why there is no such group

    @property
    def holder(self) -> CgroupSupport | None:
        """Where each job's processes are grouped: its limits cgroup, else the v2 group."""
        return self.support if self.support is not None else self.group

    @property
    def hard(self) -> bool:
        return self.mode == "cgroup"

    def describe(self) -> str:
        if self.support is not None:
            return f"hard: {self.support.describe()}"
        why = f" ({self.why})" if self.why else ""
        return f"watched: watchdog kills jobs over their memory limit; CPU limits not enforced{why}"

    def containment(self) -> str:
        """How every process of a job is found and killed when it ends, on this machine."""
        if self.support is not None:
            how = f"each job in its own {self.support.describe().split(' (')[0]} group"
        elif self.group is not None:
            how = "each job in its own cgroup v2 group (no controllers: it holds, not limits; cgroup.kill ends it)"
        else:
            why = f": {self.group_why}" if self.group_why else ""
            how = f"no cgroup group{why}; processes found by CORRAL_JOB_TAG after a supervisor dies"
        return f"{how}; the supervisor is each job's subreaper"

    def to_dict(self) -> dict:
        return {"mode": self.mode, "hard": self.hard, "description": self.describe(),
                "containment": self.containment(),
                "controllers": list(self.support.controllers) if self.support else [],
                "cgroup_version": self.support.version if self.support else None}


def group_name(home: str) -> str:
    """The parent cgroup's name for one corral home (several daemons may share a machine)."""
    return "corral-" + hashlib.sha1(home.encode()).hexdigest()[:10]


def choose(mode: str, home: str) -> Enforcement:
    """Set up enforcement for the daemon of ``home`` as the config asks."""
    name = group_name(home)
    if mode == "watchdog":
        why = "enforcement: watchdog in the config"
    else:
        support, why = detect(name)
        if support is not None:
            return Enforcement("cgroup", support)
        if mode == "cgroup":
            raise CorralError(f"enforcement: cgroup is configured but cgroups cannot be used here: {why}")
    group, group_why = detect_group(name)
    return Enforcement("watchdog", why=why, group=group, group_why=group_why)


def home_parents(home: str) -> list[CgroupSupport]:
    """Every cgroup parent a daemon of ``home`` uses on this machine -- its limits groups
    and its holding group -- for tools that clean up after it (they are created if
    missing; :func:`~.cgroups.remove_parent` removes them again)."""
    name = group_name(home)
    found = []
    for find in (detect, detect_group):
        support, _ = find(name)
        if support is not None:
            found.append(support)
    return found
