"""Options of ``corral submit`` that say the same thing twice.

``--cpus 1 --requests cpu=500m`` would otherwise let one of them win silently; like
``--gpus 1 --requests nvidia.com/gpu=2``, it is an error naming both. Stdlib only and
tiny: it runs on every ``corral submit``.
"""

from __future__ import annotations

from .args import UsageError

#: The names ``--requests``/``--limits`` accept for the resources the short options set
#: (resources.ALIASES, lower-cased; that module costs the CLI's start-up time).
_NAMES = {"cpu": "cpu", "cpus": "cpu", "memory": "memory", "mem": "memory",
          "nvidia.com/gpu": "nvidia.com/gpu", "nvidia.com/gpus": "nvidia.com/gpu", "gpu": "nvidia.com/gpu",
          "gpus": "nvidia.com/gpu"}

#: (short option, its attribute, the K=V option, its attribute, the resource, in words)
_PAIRS = (("--cpus", "cpus", "--requests", "requests", "cpu", "the CPU request"),
          ("--mem", "mem", "--requests", "requests", "memory", "the memory request"),
          ("--gpus", "gpus", "--requests", "requests", "nvidia.com/gpu", "the GPU count"),
          ("--limit-cpus", "limit_cpus", "--limits", "limits", "cpu", "the CPU limit"),
          ("--limit-mem", "limit_mem", "--limits", "limits", "memory", "the memory limit"))


def _keys(text: str | None) -> dict[str, str]:
    """``cpu=2,memory=8Gi`` -> ``{"cpu": "cpu=2", "memory": "memory=8Gi"}`` (canonical
    name -> the item as typed); malformed items are the daemon's to report."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        key, eq, _ = item.partition("=")
        name = _NAMES.get(key.strip().lower())
        if eq and name and name not in out:
            out[name] = item.strip()
    return out


def check_submit(args) -> None:
    """Raise :class:`UsageError` when a short option and ``--requests``/``--limits`` set
    the same amount: ``conflicting options --cpus 1 and --requests cpu=500m: both set the
    CPU request (give one)``."""
    if getattr(args, "file", None):
        return                       # -f with options is refused on its own, naming them
    parsed = {"requests": _keys(getattr(args, "requests", None)), "limits": _keys(getattr(args, "limits", None))}
    for short, attr, long, long_attr, resource, what in _PAIRS:
        value = getattr(args, attr, None)
        item = parsed[long_attr].get(resource)
        if value is not None and item is not None:
            raise UsageError(f"conflicting options {short} {value} and {long} {item}: both set {what} "
                             f"(give one)")
