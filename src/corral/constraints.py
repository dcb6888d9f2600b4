"""Where a job may run, as people write it: GPU models, node selectors, node counts.

The job spec's side of :class:`corral.resources.Constraints` (which the scheduler
places, :mod:`corral.scheduler.eligibility`):

* ``--gpus A100:2`` (Slurm's spelling, model then count; ``--gpus 2``: any model) and
  ``gpuModels: [A100, H100]`` (any of them; matched as people write models, so ``A100``
  matches NVML's ``NVIDIA A100-SXM4-80GB``);
* ``--node-selector zone=lab1`` / ``nodeSelector: {zone: lab1}`` (Kubernetes'
  nodeSelector: every pair must be among the node's labels), and the node labels of the
  daemon's config (``node_labels``), with Kubernetes' label syntax;
* ``--nodes N`` / ``nodes: N`` (Slurm's ``-N``): N replicas, one per node, each with the
  job's per-node resources.

Stdlib only; every error is one line naming the field, the value and what is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import ValidationError, invalid

MAX_NODES = 1024
MAX_GPU_MODELS = 16
MAX_GPU_MODEL = 64
MAX_SELECTOR = 32
MAX_LABEL_VALUE = 63

_GPU_MODEL = re.compile(r"^[A-Za-z][-A-Za-z0-9_. ]*\Z", re.ASCII)
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z", re.ASCII)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?\Z", re.ASCII)
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z", re.ASCII)

GPU_MODEL_EXPECTED = (f"expected a GPU model name: a letter, then letters, digits, -, _, . or spaces, at most "
                      f"{MAX_GPU_MODEL} characters, e.g. A100, H100, RTX-4090")
GPUS_EXPECTED = "expected a GPU count, or MODEL:COUNT, e.g. 2 or A100:2"
GPU_MODELS_EXPECTED = f"expected a list of GPU model names (any of them), e.g. [A100, H100]; at most {MAX_GPU_MODELS}"
LABEL_KEY_EXPECTED = ("expected [prefix/]name: name at most 63 characters of letters, digits, -, _ and ., "
                      "starting and ending with a letter or digit, e.g. team or example.com/team")
LABEL_VALUE_EXPECTED = (f"expected a label value: at most {MAX_LABEL_VALUE} letters, digits, -, _ and ., "
                        "starting and ending with a letter or digit (or empty), e.g. lab1; quote numbers")
NODES_EXPECTED = f"expected a whole number of nodes from 1 to {MAX_NODES}"


def label_key_ok(key: str) -> bool:
    """Kubernetes' label key syntax: ``[prefix/]name``."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def parse_gpu_model(value: object, path: str) -> str:
    """One GPU model name as written (``A100``; case does not matter when matching)."""
    if not isinstance(value, str) or not _GPU_MODEL.match(value.strip()) or len(value.strip()) > MAX_GPU_MODEL:
        raise invalid(path, value, GPU_MODEL_EXPECTED)
    return value.strip()


def parse_gpus(value: object, path: str = "gpus") -> tuple[str | int | None, tuple[str, ...]]:
    """``--gpus``: ``2`` or ``"2"`` -> (the count as given, ()); ``"A100:2"`` -> (2, ("A100",)).

    The count alone is left for the resource parser (``"x"`` is a quantity error there,
    as for ``--cpus``); None -> (None, ())."""
    if value is None:
        return None, ()
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise invalid(path, value, GPUS_EXPECTED)
    if isinstance(value, int) or ":" not in value:
        return value, ()
    model, _, count = value.strip().rpartition(":")
    if not model.strip():
        raise invalid(path, value, "expected a GPU model before the colon, e.g. A100:2, or a count alone, e.g. 2")
    try:
        model = parse_gpu_model(model, path)
    except ValidationError:
        raise invalid(path, value, f"expected MODEL:COUNT with a model name that starts with a letter, of letters, "
                                   f"digits, -, _, . or spaces, at most {MAX_GPU_MODEL}, e.g. A100:2") from None
    count = count.strip()
    if not count.isascii() or not count.isdigit() or not 1 <= int(count) <= 1_000_000:
        raise invalid(path, value, "expected a whole number of GPUs from 1 after the colon, e.g. A100:2")
    return int(count), (model,)


def parse_gpu_models(value: object, path: str = "gpu_models") -> tuple[str, ...]:
    """``[A100, H100]`` (or one name) -> the names in order, each once; None or [] -> ()."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or len(items) > MAX_GPU_MODELS:
        raise invalid(path, value, GPU_MODELS_EXPECTED)
    out: list[str] = []
    for i, item in enumerate(items):
        model = parse_gpu_model(item, path if isinstance(value, str) else f"{path}[{i}]")
        if model not in out:
            out.append(model)
    return tuple(out)


def parse_selector(value: object, path: str = "node_selector") -> dict[str, str]:
    """``{zone: lab1}`` -> the pairs, keys and values in Kubernetes' label syntax; None -> {}."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid(path, value, "expected a mapping of label keys to values, e.g. {zone: lab1}")
    if len(value) > MAX_SELECTOR:
        raise invalid(path, len(value), f"expected at most {MAX_SELECTOR} labels", detail=f"too many labels in {path}")
    out: dict[str, str] = {}
    for key, text in value.items():
        if not isinstance(key, str) or not label_key_ok(key):
            raise invalid(path, key, LABEL_KEY_EXPECTED, detail=f"invalid label key in {path}")
        if not isinstance(text, str) or len(text) > MAX_LABEL_VALUE or not _LABEL_VALUE.match(text):
            raise invalid(f"{path}.{key}", text, LABEL_VALUE_EXPECTED)
        out[key] = text
    return out


def parse_nodes(value: object, path: str = "nodes") -> int:
    """How many nodes (replicas), 1 to :data:`MAX_NODES`; None -> 1."""
    if value is None:
        return 1
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NODES:
        raise invalid(path, value, NODES_EXPECTED)
    return value

