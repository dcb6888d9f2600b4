"""Priority classes (Kubernetes' PriorityClass is the model): named levels with a value,
whether jobs of the class may preempt others, and who may use them.

In the config::

    priority_classes:
      - {name: low, value: -10}
      - {name: normal, value: 0}
      - {name: urgent, value: 100, preempt: true, users: [alice], groups: [ml-leads]}
      - {name: batch-high, value: 50, preempt: false}      # ahead in the queue, preempts no one
      - {name: lab, value: 20, queues: [lab]}              # for every job of queue lab
      - {name: normal, value: 0, default: true}            # what a job that names none gets
    queues:
      - {name: lab, priority_class: lab}                   # this queue's jobs get lab by default

A job asks for a class by name (``--priority urgent``, YAML ``spec.priority: urgent``) or
for a raw integer. Admins may use anything. Any other user may use a class whose
``users``, ``groups`` and ``queues`` are all empty (everyone) or name them (or the job's
queue), and a raw integer up to the highest value among those classes -- 0 when none is
configured, so on a shared machine nobody outranks everyone else by typing a big number.
What is refused names the classes the user may use.

A job that names no class (and no priority other than 0) gets its queue's
``priority_class``, else the class marked ``default: true`` (Kubernetes'
``globalDefault``), else plain 0. A default is the policy's choice, so it is never
refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .errors import PermissionDenied, ValidationError

MAX_CLASSES = 64
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?\Z", re.ASCII)
NAME_EXPECTED = "lower-case letters, digits and -, starting with a letter, e.g. urgent"


@dataclass(frozen=True)
class PriorityClass:
    name: str
    value: int
    preempt: bool = True
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    #: Open to every job of these queues.
    queues: tuple[str, ...] = ()
    #: The class of jobs that name none (in a queue without a priority_class of its own).
    default: bool = False

    def open_to(self, user: str, groups: Iterable[str], queue: str = "") -> bool:
        if not self.users and not self.groups and not self.queues:
            return True
        return user in self.users or bool(set(self.groups) & set(groups)) or queue in self.queues

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "preempt": self.preempt, "users": list(self.users),
                "groups": list(self.groups), "queues": list(self.queues), "default": self.default}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PriorityClass":
        return cls(str(data["name"]), int(data["value"]), bool(data.get("preempt", True)),
                   tuple(data.get("users") or ()), tuple(data.get("groups") or ()),
                   tuple(data.get("queues") or ()), bool(data.get("default", False)))

    def describe(self) -> str:
        return f"{self.name}={self.value}"


def is_class_name(value: object) -> bool:
    return isinstance(value, str) and bool(_NAME.match(value))


class Priorities:
    """The configured classes, and what one user may ask for."""

    def __init__(self, classes: Iterable[PriorityClass] = (), queue_defaults: Mapping[str, str] | None = None):
        self.classes = {c.name: c for c in classes}
        #: queue -> the class its jobs get when they name none.
        self.queue_defaults = dict(queue_defaults or {})

    def default_for(self, queue: str) -> PriorityClass | None:
        """The class a job of ``queue`` that names none gets (None: plain 0)."""
        name = self.queue_defaults.get(queue)
        if name is not None and name in self.classes:
            return self.classes[name]
        return next((c for c in self.classes.values() if c.default), None)

    def resolve(self, name: str, path: str = "priority") -> PriorityClass:
        found = self.classes.get(name)
        if found is None:
            known = ", ".join(c.describe() for c in self.classes.values()) or "none are configured"
            raise ValidationError(path, name, f"expected an integer or a priority class ({known})",
                                  detail=f"unknown priority class")
        return found

    def allowed(self, user: str, groups: Iterable[str], queue: str = "") -> list[PriorityClass]:
        groups = list(groups)
        return sorted((c for c in self.classes.values() if c.open_to(user, groups, queue)), key=lambda c: c.value)

    def check(self, user: str, groups: Iterable[str], *, value: int, name: str = "", queue: str = "") -> None:
        """Raise PermissionDenied unless a non-admin ``user`` may submit at this priority
        (to ``queue``)."""
        allowed = self.allowed(user, groups, queue)
        listed = ", ".join(c.describe() for c in allowed) or "none"
        if name:
            if all(c.name != name for c in allowed):
                raise PermissionDenied(f"permission denied: priority class {name} is not open to {user} "
                                       f"(classes you may use: {listed})")
            return
        ceiling = max((c.value for c in allowed), default=0)
        if value > ceiling:
            raise PermissionDenied(f"permission denied: priority {value} is above what {user} may use "
                                   f"(at most {ceiling}; classes you may use: {listed})")
