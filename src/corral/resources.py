"""Resource quantities in Kubernetes syntax, held as integers in canonical units.

* ``cpu`` is counted in millicores: ``2`` -> 2000, ``500m`` -> 500, ``0.5`` -> 500.
* ``memory`` is counted in bytes: ``512Mi``, ``16Gi``, ``1G``, ``1e9``, ``1073741824``.
* ``nvidia.com/gpu`` (alias ``gpu``) and every extended resource ``vendor.example/name``
  are whole counts.

Like Kubernetes, a value finer than the canonical unit is rounded up (``0.0001`` cpu is
``1m``). Amounts are bounded by :data:`MAX_AMOUNT` (the int64 range SQLite and the wire
format use), and :class:`Resources` arithmetic checks that bound, so a sum can never
silently overflow (Kueue's ``amount.go`` does the same in Go).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Iterable, Iterator, Mapping

from .errors import CorralError, QuantityError, ValidationError

CPU = "cpu"
MEMORY = "memory"
GPU = "nvidia.com/gpu"
#: A share of one GPU, in thousandths (1..1000): see :mod:`corral.scheduler.shares`.
GPU_SHARE = "corral.dev/gpu-milli"

#: Names users may type for the standard resources.
ALIASES = {"gpu": GPU, "gpus": GPU, "nvidia.com/gpus": GPU, "mem": MEMORY, "cpus": CPU}

#: Largest amount of any resource (int64).
MAX_AMOUNT = 2**63 - 1

_EXAMPLES = {
    CPU: "expected e.g. 2, 500m, 0.5",
    MEMORY: "expected e.g. 512Mi, 16Gi",
}
_COUNT_EXAMPLE = "expected a whole number, e.g. 1, 2"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
            "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<exp>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$"
)
#: ``16g``, ``16GB``, ``512mib``: a number with a unit corral does not take as typed.
_MEMORY_UNIT_TYPO = re.compile(r"^\s*(?P<num>\d+\.?\d*|\.\d+)(?P<unit>[kKmMgGtTpPeE])(?P<rest>[iI]?[bB]?)\s*$")
_EXTENDED = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def canonical_name(name: str) -> str:
    """The canonical resource name for ``name`` (``gpu`` -> ``nvidia.com/gpu``).

    Accepted: ``cpu``, ``memory``, ``nvidia.com/gpu`` (alias ``gpu``) and extended
    resources of the form ``vendor.example/name``.
    """
    key = name.strip()
    key = ALIASES.get(key.lower(), key)
    if key in (CPU, MEMORY, GPU) or _EXTENDED.match(key):
        return key
    raise ValidationError(
        "resource name", name,
        "expected cpu, memory, nvidia.com/gpu (alias gpu) or an extended resource such as vendor.example/name",
        detail="unknown resource name",
    )


def _expected(resource: str, value: object = None) -> str:
    if resource == MEMORY and isinstance(value, str):
        typo = _MEMORY_UNIT_TYPO.match(value)
        if typo:
            num, unit = typo.group("num"), typo.group("unit").upper()
            unit = "k" if unit == "K" else unit
            binary = "Ki" if unit == "k" else unit + "i"
            return f"expected e.g. {num}{binary} or {num}{unit} (units are case-sensitive)"
    return _EXAMPLES.get(resource, _COUNT_EXAMPLE)


def _to_decimal(resource: str, value: object) -> Decimal:
    if isinstance(value, bool):
        raise QuantityError(resource, value, _expected(resource))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(resource, value, _expected(resource))
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise QuantityError(resource, value, _expected(resource))
    text = value.strip()
    m = _QUANTITY.match(text)
    if not m:
        raise QuantityError(resource, value, _expected(resource, value))
    try:
        number = Decimal(m.group("num"))
        if m.group("exp"):
            number = number.scaleb(int(m.group("exp")[1:]))
    except (InvalidOperation, ValueError, OverflowError):
        raise QuantityError(resource, value, _expected(resource)) from None
    suffix = m.group("suffix") or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    return number * _DECIMAL[suffix]


def parse_quantity(resource: str, value: object) -> int:
    """Parse ``value`` for ``resource`` into an integer in canonical units.

    Raises :class:`QuantityError` naming the resource, the value and an accepted example,
    e.g. ``invalid quantity for memory: "16GG" (expected e.g. 512Mi, 16Gi)``.
    Zero is allowed here; callers decide whether it is meaningful.
    """
    resource = canonical_name(resource)
    amount = _to_decimal(resource, value)
    if amount.is_nan() or amount < 0:
        raise QuantityError(resource, value, _expected(resource), why="must not be negative")
    if resource == CPU:
        scaled = amount * 1000
    elif resource == MEMORY:
        scaled = amount
    else:
        if amount != amount.to_integral_value():
            raise QuantityError(resource, value, _COUNT_EXAMPLE, why="whole numbers only")
        scaled = amount
    try:
        result = int(scaled.to_integral_value(rounding="ROUND_CEILING"))
    except (InvalidOperation, OverflowError):
        raise QuantityError(resource, value, _expected(resource), why="too large") from None
    if result > MAX_AMOUNT:
        raise QuantityError(resource, value, _expected(resource), why="too large")
    return result


def format_quantity(resource: str, amount: int) -> str:
    """Render a canonical amount the way a user would write it (``1500`` cpu -> ``1.5``)."""
    if resource == CPU:
        if amount % 1000 == 0:
            return str(amount // 1000)
        if amount % 100 == 0:
            return f"{amount // 1000}.{(amount % 1000) // 100}"
        return f"{amount}m"
    if resource == MEMORY:
        return format_bytes(amount)
    return str(amount)


def format_bytes(amount: int) -> str:
    """``8589934592`` -> ``8Gi``; inexact sizes get one decimal (``3.1Gi``)."""
    if amount == 0:
        return "0"
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if amount >= unit:
            if amount % unit == 0:
                return f"{amount // unit}{suffix}"
            value = amount / unit
            return f"{value:.1f}{suffix}" if value < 100 else f"{value:.0f}{suffix}"
    return str(amount)


def _check(name: str, value: int) -> int:
    if value > MAX_AMOUNT or value < -MAX_AMOUNT:
        raise CorralError(f"resource arithmetic overflow for {name}: {value} exceeds the int64 range")
    return value


@dataclass(frozen=True)
class Constraints:
    """Where a request may go, beside how much it asks for (Slurm's typed GRES and
    ``--nodes``, Kubernetes' ``nodeSelector``).

    * ``gpu_models``: its GPUs must be of one of these models (any of; empty: any GPU);
    * ``selector``: the node's labels must include every (key, value) pair;
    * ``nodes``: the request is ``nodes`` replicas, one per node on that many distinct
      nodes; the amounts of the :class:`Resources` carrying these constraints are the
      total, split evenly (:meth:`Resources.per_node`).

    Pure data, normalised (sorted, no duplicates) so equal constraints compare equal.
    Which nodes and GPUs satisfy them is the scheduler's (:mod:`corral.scheduler.eligibility`).
    """

    gpu_models: tuple[str, ...] = ()
    selector: tuple[tuple[str, str], ...] = ()
    nodes: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or self.nodes < 1:
            raise CorralError(f"Constraints.nodes must be a positive integer, got {self.nodes!r}")
        object.__setattr__(self, "gpu_models", tuple(sorted(set(self.gpu_models))))
        object.__setattr__(self, "selector", tuple(sorted(set(self.selector))))

    @classmethod
    def make(cls, gpu_models: Iterable[str] = (), selector: Mapping[str, str] | None = None,
             nodes: int = 1) -> "Constraints | None":
        """The constraints, or None when there are none (any GPU, any node, one node)."""
        made = cls(tuple(gpu_models), tuple((selector or {}).items()), nodes)
        return None if made.trivial else made

    @property
    def trivial(self) -> bool:
        return not self.gpu_models and not self.selector and self.nodes == 1

    def on_one_node(self) -> "Constraints | None":
        """The same constraints for one replica (``nodes`` 1), None when nothing is left."""
        return Constraints.make(self.gpu_models, dict(self.selector), 1)

    def describe(self) -> str:
        parts = []
        if self.gpu_models:
            parts.append("GPU model " + " or ".join(self.gpu_models))
        if self.selector:
            parts.append("nodes labelled " + ", ".join(f"{k}={v}" for k, v in self.selector))
        if self.nodes > 1:
            parts.append(f"{self.nodes} nodes")
        return "; ".join(parts)


class Resources(Mapping[str, int]):
    """An immutable vector of resource amounts in canonical units.

    Missing names are zero. Arithmetic goes through methods that check the int64 bound,
    so sums of many jobs' requests never wrap or grow without limit. For the scheduler's
    hot loops: :attr:`amounts` is the plain dict of the non-zero amounts (never change
    it), :attr:`vec` the (GPU, CPU, memory) amounts and :attr:`only_vec` whether those
    are all there is.

    A request may carry :class:`Constraints` (:attr:`constraints`: GPU models, a node
    selector, replicas over several nodes): they are part of what the request *is* --
    equal amounts with other constraints are another shape -- but not of its amounts:
    arithmetic, :meth:`as_dict` and the mapping view leave them out.
    """

    __slots__ = ("amounts", "_hash", "vec", "only_vec", "constraints")

    def __init__(self, amounts: Mapping[str, int] | Iterable[tuple[str, int]] = (), *,
                 constraints: Constraints | None = None):
        items = amounts.items() if isinstance(amounts, Mapping) else amounts
        clean: dict[str, int] = {}
        for name, value in items:
            if not isinstance(value, int) or isinstance(value, bool):
                raise CorralError(f"resource amount for {name} must be an integer, got {value!r}")
            if value:
                clean[name] = _check(name, value)
        self.amounts = clean
        self._hash: int | None = None
        g, c, m = clean.get(GPU, 0), clean.get(CPU, 0), clean.get(MEMORY, 0)
        self.vec = (g, c, m)
        self.only_vec = len(clean) == (g != 0) + (c != 0) + (m != 0)
        self.constraints = None if constraints is None or constraints.trivial else constraints

    @classmethod
    def parse(cls, values: Mapping[str, object], *, field: str = "") -> "Resources":
        """Parse a user mapping such as ``{"cpu": "2", "memory": "8Gi", "gpu": 1}``."""
        out: dict[str, int] = {}
        for raw_name, raw_value in values.items():
            name = canonical_name(str(raw_name))
            if name in out:
                raise QuantityError(f"{field}{name}" if field else name, raw_name,
                                    "each resource may appear once", why="given twice")
            out[name] = parse_quantity(name, raw_value)
        return cls(out)

    # Mapping protocol -------------------------------------------------------------
    def __getitem__(self, name: str) -> int:
        return self.amounts.get(name, 0)

    def __iter__(self) -> Iterator[str]:
        return iter(self.amounts)

    def __len__(self) -> int:
        return len(self.amounts)

    def __contains__(self, name: object) -> bool:
        return name in self.amounts

    def get(self, name: str, default: int = 0) -> int:  # type: ignore[override]
        return self.amounts.get(name, default)

    # The Mapping mixins go through __iter__/__getitem__; the dict's own views are what
    # the scheduler's hot loops want.
    def items(self):  # type: ignore[override]
        return self.amounts.items()

    def keys(self):  # type: ignore[override]
        return self.amounts.keys()

    def values(self):  # type: ignore[override]
        return self.amounts.values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Resources):
            return self.amounts == other.amounts and self.constraints == other.constraints
        if isinstance(other, Mapping):
            return self.constraints is None and self.amounts == {k: v for k, v in other.items() if v}
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            h = hash(frozenset(self.amounts.items()))
            self._hash = h if self.constraints is None else hash((h, self.constraints))
        return self._hash

    def __repr__(self) -> str:
        if self.constraints is not None:
            return f"Resources({self.format()}; {self.constraints.describe()})"
        return f"Resources({self.format()})"

    def __reduce__(self):
        # Not the slots: the cached hash is only valid in the process that computed it.
        return (_resources, (self.amounts, self.constraints))

    def __copy__(self) -> "Resources":
        return self

    def __deepcopy__(self, memo: dict) -> "Resources":
        return self

    # Constraints ---------------------------------------------------------------------
    def with_constraints(self, constraints: Constraints | None) -> "Resources":
        """The same amounts with ``constraints`` (None: without any)."""
        return Resources(self.amounts, constraints=constraints)

    @property
    def replicas(self) -> int:
        """How many nodes the request spreads over, one replica each (1: one node)."""
        c = self.constraints
        return 1 if c is None else c.nodes

    def per_node(self) -> "Resources":
        """One replica's part of a request over several nodes (the amounts divided by
        :attr:`replicas`, which divides them exactly), with the constraints that hold
        on each node."""
        c = self.constraints
        if c is None or c.nodes == 1:
            return self
        n = c.nodes
        return Resources({k: v // n for k, v in self.amounts.items()}, constraints=c.on_one_node())

    def scaled(self, factor: int) -> "Resources":
        """The amounts times ``factor`` (without constraints)."""
        return Resources({k: _check(k, v * factor) for k, v in self.amounts.items()})

    # Arithmetic --------------------------------------------------------------------
    def add(self, other: Mapping[str, int]) -> "Resources":
        out = dict(self.amounts)
        for name, value in other.items():
            out[name] = _check(name, out.get(name, 0) + value)
        return Resources(out)

    def sub(self, other: Mapping[str, int]) -> "Resources":
        out = dict(self.amounts)
        for name, value in other.items():
            out[name] = _check(name, out.get(name, 0) - value)
        return Resources(out)

    __add__ = add
    __sub__ = sub

    def clamp_zero(self) -> "Resources":
        return Resources({k: max(v, 0) for k, v in self.amounts.items()})

    def fits_in(self, available: Mapping[str, int]) -> bool:
        """True when every amount here is at most the same amount in ``available``."""
        return all(value <= available.get(name, 0) for name, value in self.amounts.items())

    def shortfalls(self, available: Mapping[str, int]) -> list[str]:
        """Names of resources where this vector exceeds ``available``, in a stable order."""
        return sorted((n for n, v in self.amounts.items() if v > available.get(n, 0)), key=sort_key)

    def as_dict(self) -> dict[str, int]:
        return dict(self.amounts)

    def format(self) -> str:
        return ", ".join(f"{n}={format_quantity(n, v)}" for n, v in self.sorted_items())

    def formatted(self) -> dict[str, str]:
        return {n: format_quantity(n, v) for n, v in self.sorted_items()}

    def sorted_items(self) -> list[tuple[str, int]]:
        return sorted(self.amounts.items(), key=lambda kv: sort_key(kv[0]))


def _resources(amounts: dict[str, int], constraints: Constraints | None) -> Resources:
    return Resources(amounts, constraints=constraints)


def sort_key(name: str) -> tuple[int, str]:
    """cpu, memory, nvidia.com/gpu first, then extended resources by name."""
    order = {CPU: 0, MEMORY: 1, GPU: 2}
    return (order.get(name, 3), name)


EMPTY = Resources()
