"""Manifests as text: YAML documents with comments, or JSON.

A :class:`Manifest` is one Kubernetes object (plain dicts, lists, strings, numbers) and
the notes that go with it: what corral's job or queue says that the object cannot (a
stop signal Kubernetes does not send, a per-user limit Kueue does not have). In YAML the
notes are comments above the object, so nothing is dropped without a word; JSON has no
comments, so :func:`notes` gives them to the caller to print on stderr.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

#: Lines longer than this are not folded (a command line stays one line).
_WIDTH = 4096


@dataclass(frozen=True)
class Manifest:
    body: dict[str, Any]
    notes: tuple[str, ...] = field(default=())

    @property
    def title(self) -> str:
        """``Job/resnet``: what a note on stderr is about."""
        return f"{self.body.get('kind', '?')}/{self.body.get('metadata', {}).get('name', '?')}"


def _one_line(text: str) -> str:
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def to_yaml(manifests: Sequence[Manifest], header: Sequence[str] = ()) -> str:
    """Every manifest as a YAML document (``---`` between them), its notes as comments
    above it and ``header`` as comments at the top."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:      # a value used twice is written twice, not &id001
            return True

    docs = []
    for i, manifest in enumerate(manifests):
        lines = [f"# {_one_line(h)}" for h in header] if i == 0 else []
        lines += [f"# {_one_line(n)}" for n in manifest.notes]
        text = yaml.dump(manifest.body, Dumper=Dumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True, width=_WIDTH)
        docs.append("\n".join(lines + [text.rstrip("\n")]) + "\n")
    return "---\n".join(docs)


def to_json(manifests: Sequence[Manifest]) -> str:
    """One object as it is; several as a ``v1`` ``List`` (what ``kubectl get -o json``
    prints and ``kubectl apply -f`` takes)."""
    if len(manifests) == 1:
        data: dict[str, Any] = manifests[0].body
    else:
        data = {"apiVersion": "v1", "kind": "List", "items": [m.body for m in manifests]}
    return json.dumps(data, indent=2) + "\n"


def notes(manifests: Sequence[Manifest], header: Sequence[str] = ()) -> list[str]:
    """The notes as lines for stderr: ``Job/resnet: stopSignal SIGUSR1: ...``."""
    out = [_one_line(h) for h in header]
    for manifest in manifests:
        out += [f"{manifest.title}: {_one_line(n)}" for n in manifest.notes]
    return out
