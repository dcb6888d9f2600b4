"""Names and values as Kubernetes takes them: DNS-1123 names, label values, quantities.

Corral's names are freer than Kubernetes' (a job may be called ``ResNet lr=0.1``, a queue
``team_a``), so every name an export writes goes through :func:`dns_label` or
:func:`dns_subdomain`, which map it the way a person would (lower case, anything else
``-``) or refuse it in one line naming the field. Quantities are written exactly
(:func:`quantity`): ``format_quantity`` rounds inexact memory (``3.1Gi``), which is right
for people and wrong for a manifest.
"""

from __future__ import annotations

import re

from ..errors import invalid, show_value
from ..resources import CPU, MEMORY

#: A DNS-1123 label: what a Job, Service, container or hostname is named with.
MAX_LABEL = 63
#: A DNS-1123 subdomain: ResourceFlavor, ClusterQueue, LocalQueue names.
MAX_SUBDOMAIN = 253

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z", re.ASCII)
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z", re.ASCII)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?\Z", re.ASCII)
_NOT_LABEL = re.compile(r"[^a-z0-9]+")
_NOT_SUBDOMAIN = re.compile(r"[^a-z0-9.]+")
_NOT_VALUE = re.compile(r"[^A-Za-z0-9_.]+")

LABEL_EXPECTED = ("a DNS-1123 label: at most 63 lower-case letters, digits and -, starting and ending with a "
                  "letter or digit, e.g. resnet-lr0-1")


def is_dns_label(text: str) -> bool:
    return len(text) <= MAX_LABEL and bool(_LABEL.match(text))


def is_label_value(text: str) -> bool:
    """Kubernetes' label value syntax (at most 63 characters, may be empty)."""
    return len(text) <= MAX_LABEL and bool(_LABEL_VALUE.match(text))


def dns_label(text: str, field: str, *, limit: int = MAX_LABEL) -> str:
    """``text`` as a DNS-1123 label of at most ``limit`` characters: lower case, each run of
    other characters one ``-``, cut to ``limit``. Nothing left (``"__"``) is an error."""
    name = _NOT_LABEL.sub("-", text.lower()).strip("-")[:limit].rstrip("-")
    if not name:
        raise invalid(field, text, f"expected a name with a letter or digit, to make {LABEL_EXPECTED}")
    return name


def dns_subdomain(text: str, field: str) -> str:
    """``text`` as a DNS-1123 subdomain (a label, or labels joined by dots)."""
    name = _NOT_SUBDOMAIN.sub("-", text.lower())
    name = ".".join(p.strip("-") for p in name.split(".") if p.strip("-"))[:MAX_SUBDOMAIN].strip("-.")
    if not name or not _SUBDOMAIN.match(name):
        raise invalid(field, text, "expected a name with a letter or digit, to make a DNS-1123 subdomain, "
                                   "e.g. research or nvidia-a100")
    return name


def label_value(text: str, field: str) -> str:
    """``text`` as a label value (``NVIDIA A100-SXM4-80GB`` -> ``NVIDIA-A100-SXM4-80GB``,
    the way NVIDIA's GPU Feature Discovery writes ``nvidia.com/gpu.product``)."""
    value = _NOT_VALUE.sub("-", text.strip()).strip("-_.")
    if not value or len(value) > MAX_LABEL:
        raise invalid(field, text, "expected a name that makes a label value: at most 63 letters, digits, "
                                   "-, _ and ., e.g. NVIDIA-A100-SXM4-80GB")
    return value


def check_dns_label(text: str, field: str) -> str:
    """``text`` when it already is a DNS-1123 label (what a person typed: ``--namespace``)."""
    if not is_dns_label(text):
        raise invalid(field, text, f"expected {LABEL_EXPECTED}")
    return text


def quantity(resource: str, amount: int) -> str:
    """A canonical amount as an exact Kubernetes quantity: cpu ``2``, ``1.5``, ``250m``;
    memory ``16Gi`` when a binary unit divides it, else bytes; counts as they are."""
    if resource == CPU:
        if amount % 1000 == 0:
            return str(amount // 1000)
        return f"{amount}m"
    if resource == MEMORY:
        for suffix, unit in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if amount % unit == 0:
                return f"{amount // unit}{suffix}"
        return str(amount)
    return str(amount)


def floor_mebibytes(amount: int) -> int:
    """Memory rounded down to whole MiB (a machine's allocatable bytes are seldom round;
    a quota a little under them never grants what is not there)."""
    return amount - amount % 2**20


def unique(names: dict[str, str], field: str) -> None:
    """Refuse two sources that became the same name: ``{source: name}``."""
    seen: dict[str, str] = {}
    for source, name in names.items():
        if name in seen:
            raise invalid(field, source, "expected names that stay distinct in Kubernetes",
                          message=f"conflicting names in {field}: {show_value(seen[name])} and "
                                  f"{show_value(source)} both become {name} (expected names that stay "
                                  "distinct in Kubernetes)")
        seen[name] = source
