"""JobSpec: what a job asks for, validated, in canonical units.

The dataclass and its JSON round trip are here; parsing from the YAML document, from
CLI-style values, Kubernetes requests/limits semantics and time limits follow below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .resources import Resources


@dataclass(frozen=True)
class JobSpec:
    """A validated job specification.

    ``requests`` is what the scheduler reserves, ``limits`` what enforcement holds the job
    to; both are canonical :class:`Resources` and already follow Kubernetes defaulting
    (a missing limit is the request, a missing request is the limit).
    """

    command: tuple[str, ...]
    name: str = ""
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    priority: int = 0
    time_limit: int | None = None          # seconds
    requests: Resources = field(default_factory=Resources)
    limits: Resources = field(default_factory=Resources)

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON form (integers in canonical units), as the store keeps it."""
        return {
            "command": list(self.command),
            "name": self.name,
            "env": dict(self.env),
            "workdir": self.workdir,
            "labels": dict(self.labels),
            "priority": self.priority,
            "time_limit": self.time_limit,
            "requests": self.requests.as_dict(),
            "limits": self.limits.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobSpec":
        """Inverse of :meth:`to_dict` (trusted input from the store)."""
        return cls(
            command=tuple(data["command"]),
            name=data.get("name", ""),
            env=dict(data.get("env", {})),
            workdir=data.get("workdir"),
            labels=dict(data.get("labels", {})),
            priority=int(data.get("priority", 0)),
            time_limit=data.get("time_limit"),
            requests=Resources(data.get("requests", {})),
            limits=Resources(data.get("limits", {})),
        )
