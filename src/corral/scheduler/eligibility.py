"""Which nodes, and which of their GPUs, a constrained request may use.

A request's :class:`~corral.resources.Constraints` name GPU models (any of) and node
labels (all of). A node is *eligible* when its labels include the selector and, for a
request with GPUs and models, it has GPUs of one of the models; the GPUs the request may
take there are those of a wanted model. Amounts are checked elsewhere (the snapshot,
placement): this only says where.

GPU models are matched as people write them: ``A100`` matches NVML's ``NVIDIA
A100-SXM4-80GB`` (the wanted name's words appear, in order, among the model's words;
case and punctuation do not matter), and a model written in full matches itself. So
``A100`` does not match ``A10``, and ``A100-80GB`` matches ``NVIDIA A100 80GB PCIe``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..capacity.node import Node
from ..resources import Constraints

_WORD = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=4096)
def _words(name: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(name.lower()))


@lru_cache(maxsize=4096)
def gpu_model_matches(wanted: str, model: str) -> bool:
    """Whether a GPU of ``model`` (as the node reports it) is a ``wanted`` one."""
    want, have = _words(wanted), _words(model)
    if not want:
        return False
    n = len(want)
    return any(have[i:i + n] == want for i in range(len(have) - n + 1))


#: (id of the node, constraints) -> (the node, eligible, the GPUs of a wanted model or
#: None for any). Nodes are immutable; the node is kept to check the id still means it.
_CACHE: dict[tuple[int, Constraints], tuple[Node, bool, frozenset[int] | None]] = {}
_CACHE_MAX = 100_000


def _judge(node: Node, c: Constraints) -> tuple[bool, frozenset[int] | None]:
    key = (id(node), c)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is node:
        return hit[1], hit[2]
    ok = all(node.label(k) == v for k, v in c.selector)
    gpus: frozenset[int] | None = None
    if c.gpu_models:
        gpus = frozenset(g.index for g in node.gpus if any(gpu_model_matches(w, g.model) for w in c.gpu_models))
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = (node, ok, gpus)
    return ok, gpus


def node_allows(node: Node, c: Constraints | None, gpus: int = 0) -> bool:
    """Whether ``node`` is eligible for a request with constraints ``c`` asking for
    ``gpus`` GPUs (labels match; with models, it has that many GPUs of a wanted model)."""
    if c is None:
        return True
    ok, wanted = _judge(node, c)
    if not ok:
        return False
    return wanted is None or gpus <= len(wanted)


def wanted_gpus(node: Node, c: Constraints | None) -> frozenset[int] | None:
    """The indices of the GPUs of ``node`` a request with constraints ``c`` may take
    (None: any of them)."""
    if c is None or not c.gpu_models:
        return None
    return _judge(node, c)[1]


def could_hold(node: Node, requests) -> bool:
    """Whether ``node`` could ever hold one replica of ``requests`` (all of it free)."""
    per = requests.per_node()
    return per.fits_in(node.allocatable) and node_allows(node, per.constraints, per.vec[0])


def holders(nodes, requests) -> int:
    """How many of ``nodes`` could ever hold a replica of ``requests``."""
    return sum(1 for node in nodes if could_hold(node, requests))
