"""Which enforcement the daemon runs: hard limits through cgroups, or the watchdog.

``auto`` (the default) takes cgroups where corral can create them (root, or a delegated
cgroup v2 subtree) and falls back to the watchdog otherwise; ``cgroup`` insists (the
daemon refuses to start without them); ``watchdog`` never uses cgroups. Whatever is
chosen is said by ``corral nodes`` and ``corral show``: limits are never silently
unenforced.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ...errors import CorralError
from .cgroups import CgroupSupport, detect


@dataclass(frozen=True)
class Enforcement:
    mode: str                              # "cgroup" | "watchdog"
    support: CgroupSupport | None = None
    why: str = ""                          # why not cgroups (watchdog mode)

    @property
    def hard(self) -> bool:
        return self.mode == "cgroup"

    def describe(self) -> str:
        if self.support is not None:
            return f"hard: {self.support.describe()}"
        why = f" ({self.why})" if self.why else ""
        return f"watched: watchdog kills jobs over their memory limit; CPU limits not enforced{why}"

    def to_dict(self) -> dict:
        return {"mode": self.mode, "hard": self.hard, "description": self.describe(),
                "controllers": list(self.support.controllers) if self.support else [],
                "cgroup_version": self.support.version if self.support else None}


def group_name(home: str) -> str:
    """The parent cgroup's name for one corral home (several daemons may share a machine)."""
    return "corral-" + hashlib.sha1(home.encode()).hexdigest()[:10]


def choose(mode: str, home: str) -> Enforcement:
    """Set up enforcement for the daemon of ``home`` as the config asks."""
    if mode == "watchdog":
        return Enforcement("watchdog", why="enforcement: watchdog in the config")
    support, why = detect(group_name(home))
    if support is not None:
        return Enforcement("cgroup", support)
    if mode == "cgroup":
        raise CorralError(f"enforcement: cgroup is configured but cgroups cannot be used here: {why}")
    return Enforcement("watchdog", why=why)
