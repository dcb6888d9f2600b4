"""Queues: their quotas (Kueue's ClusterQueue), per-user limits and ordering policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

from ..resources import format_quantity
from .policies import POLICIES, QueuePolicy


class Amounts(Mapping[str, int]):
    """An immutable, hashable mapping of resource amounts that keeps explicit zeros.

    Quotas need zeros (``borrowing_limit: {gpu: 0}`` = never borrow GPUs, which is not
    the same as naming no limit), and :class:`~corral.resources.Resources` drops them.
    Names are canonicalised (``gpu`` -> ``nvidia.com/gpu``); values are canonical ints.
    """

    __slots__ = ("_items", "_dict")

    def __init__(self, amounts: Mapping[str, int] = ()):  # type: ignore[assignment]
        from ..resources import canonical_name

        clean: dict[str, int] = {}
        for name, value in dict(amounts).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                from ..errors import CorralError

                raise CorralError(f"quota amount for {name} must be a non-negative integer, got {value!r}")
            clean[canonical_name(name)] = value
        self._dict = clean
        self._items = tuple(sorted(clean.items()))

    @classmethod
    def parse(cls, values: Mapping[str, object]) -> "Amounts":
        """From user quantities (``{"gpu": 4, "cpu": "32", "memory": "0"}``), zeros kept."""
        from ..resources import canonical_name, parse_quantity

        return cls({canonical_name(str(k)): parse_quantity(str(k), v) for k, v in values.items()})

    def __getitem__(self, name: str) -> int:
        return self._dict[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __contains__(self, name: object) -> bool:
        return name in self._dict

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._dict == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return "Amounts(" + ", ".join(f"{n}={format_quantity(n, v)}" for n, v in self._items) + ")"


@dataclass(frozen=True)
class QueueSpec:
    """A queue with a quota (Kueue's ClusterQueue; all queues form one cohort).

    Resources a ``nominal`` mapping does not name are not limited by quota (only by
    the nodes). See :mod:`corral.scheduler.quota` for the exact borrowing rule.

    The three quota mappings accept :class:`~corral.resources.Resources` or any mapping
    of canonical amounts and are stored as :class:`Amounts`, which keep zeros: pass a
    plain dict (or ``Amounts.parse``) to say ``0`` -- ``Resources`` drops zero amounts.
    ``policy`` names one of :data:`corral.scheduler.policies.POLICIES`.
    """

    name: str
    #: Guaranteed share; None = the whole machine.
    nominal: Mapping[str, int] | None = None
    #: How much beyond nominal it may borrow, per resource (None or a missing
    #: resource = unlimited).
    borrowing_limit: Mapping[str, int] | None = None
    #: How much of its unused nominal others may borrow (None or a missing resource =
    #: all of it).
    lending_limit: Mapping[str, int] | None = None
    policy: str = "best-effort-fifo"
    #: GPUs one user's running jobs may hold in this queue.
    max_user_gpus: int | None = None
    #: Running jobs one user may have in this queue.
    max_user_jobs: int | None = None
    #: The priority class of this queue's jobs that name none (:mod:`corral.priorities`;
    #: the daemon applies it at submit, the scheduler only sees the value).
    priority_class: str = ""
    #: The policy object (from ``policy``).
    order: QueuePolicy = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("nominal", "borrowing_limit", "lending_limit"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Amounts):
                object.__setattr__(self, name, Amounts(value))
        cls = POLICIES.get(self.policy)
        if cls is None:
            from ..errors import ValidationError

            raise ValidationError("queue policy", self.policy, "expected one of: " + ", ".join(POLICIES))
        object.__setattr__(self, "order", cls())

    @property
    def has_user_limits(self) -> bool:
        return self.max_user_gpus is not None or self.max_user_jobs is not None
