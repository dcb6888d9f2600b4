"""JSON for the CLI's hot path, straight from the ``_json`` C accelerator.

``import json`` imports ``re`` (for the pure-Python fallback), which alone is a large
share of a short CLI call. The C scanner and encoder that ``json`` uses anyway need no
``re``; this module wires them up the same way ``json.decoder``/``json.encoder`` do.
Compact output only; use :mod:`json` for indented output.
"""

from __future__ import annotations

import _json


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_Context())


def loads(data: bytes | str):
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    text = text.strip()
    try:
        value, end = _scan(text, 0)
    except StopIteration as exc:
        raise ValueError(f"invalid JSON at offset {exc.value}") from None
    if end != len(text):
        raise ValueError(f"extra data in JSON at offset {end}")
    return value


def dumps(value) -> str:
    # A fresh markers dict per call keeps circular-reference detection correct.
    encoder = _json.make_encoder({}, None, _json.encode_basestring_ascii, None, ":", ",", False, False, True)
    return "".join(encoder(value, 0))


__all__ = ["loads", "dumps"]
