"""pydantic's validation errors as corral's one-line messages.

``[{"type": "expected", "loc": ("body", "ids", 0), "input": True, ...}]`` becomes
``invalid value for ids[0]: true (expected a job id, a positive integer)``: the field as
a path into the request, the value as the request spelled it (JSON), and what is
accepted. The daemon answers a rejected request with these lines; the SDK raises the
first one before it sends anything.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..errors import ValidationError, show_value
from .models import ITEM_TAGS

#: A field name shown as it is (others are shown quoted and escaped, as values are).
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_./:-]{1,80}\Z")

#: The parts of a request a location may start with (FastAPI's ``loc[0]``).
SOURCES = {"body": "request body", "query": "query", "path": "path", "header": "headers", "cookie": "cookies"}

#: What pydantic's own error types accept, in words (``ctx`` fills the braces).
_EXPECTED = {
    "model_type": "a JSON object", "model_attributes_type": "a JSON object", "dict_type": "a mapping",
    "list_type": "a list", "string_type": "a string", "bool_type": "true or false", "bool_parsing": "true or false",
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "greater_than": "a number greater than {gt}", "greater_than_equal": "a number of at least {ge}",
    "less_than": "a number less than {lt}", "less_than_equal": "a number of at most {le}",
    "too_short": "at least {min_length} item(s)", "too_long": "at most {max_length} item(s)",
    "literal_error": "{expected}", "enum": "one of {expected}", "string_too_long": "at most {max_length} characters",
}


@dataclass(frozen=True)
class Problem:
    """One rejected part of a request: where, what was given, what is accepted."""

    field: str
    value: Any
    expected: str
    line: str


def field_name(loc: Iterable[Any]) -> str:
    """``("body", "jobs", 0, "flags item", "flags", "env")`` -> ``jobs[0].flags.env``."""
    out = ""
    for i, part in enumerate(loc):
        if i == 0 and part in SOURCES:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ITEM_TAGS:
            out += f".{part}" if out else str(part)
    return out


def shown(value: Any) -> str:
    """A value as the request spelled it: JSON (``true``, ``null``), strings quoted, one
    line of at most ~80 characters."""
    if isinstance(value, str):
        return show_value(value)
    try:
        text = json.dumps(value, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text[:80] + "..." if len(text) > 80 else text


def problem(error: Mapping[str, Any]) -> Problem:
    """One pydantic error (``ValidationError.errors()`` item) as a :class:`Problem`."""
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    source = SOURCES.get(loc[0] if loc else "", "request")
    if kind == "json_invalid":       # loc: (source, position)
        at = f" at position {loc[1]}" if len(loc) > 1 else ""
        why = ctx.get("error", "it does not parse")
        return Problem(source, None, "JSON", f"invalid JSON in the {source}{at} ({why})")
    field = field_name(loc)
    where = field or source
    if kind == "unknown_field":
        key = ctx["field"]
        name = f"{field}.{key}" if field else key
        if not _PLAIN_KEY.match(key):       # a newline, a megabyte, a NUL: the key as a value
            name = f"{field}.{show_value(key)}" if field else show_value(key)
        return Problem(name, key, f"accepted: {ctx['accepted']}",
                       f"unknown field {name} (accepted: {ctx['accepted']})")
    if kind == "invalid_text":       # ctx: where in the body, the string shown, what is accepted
        inner = ctx["field"]
        name = ".".join(p for p in (field, inner) if p).replace(".[", "[") or source
        head = f"invalid key in {name}" if ctx.get("key") else f"invalid value for {name}"
        return Problem(name, ctx["value"], f"expected {ctx['accepted']}",
                       f"{head}: {ctx['value']} (expected {ctx['accepted']})")
    if kind == "missing_field":
        name = f"{field}.{ctx['field']}" if field else ctx["field"]
        return Problem(name, None, f"expected {ctx['accepted']}", f"missing {name} (expected {ctx['accepted']})")
    if kind == "nothing_to_change":   # a request that changes nothing: which fields would
        return Problem(where, None, f"expected at least one of {ctx['accepted']}",
                       f"nothing to change (give at least one of {ctx['accepted']})")
    if kind == "missing":
        expected = "expected a JSON object" if not field else "required"
        return Problem(where, None, expected, f"missing {where} ({expected})")
    if kind == "expected":
        expected = f"expected {ctx['accepted']}"
    elif kind in _EXPECTED:
        expected = "expected " + _EXPECTED[kind].format(**ctx)
    else:
        expected = str(error.get("msg", "rejected")).rstrip(".")
        expected = expected[:1].lower() + expected[1:]
    return Problem(where, value, expected, f"invalid value for {where}: {shown(value)} ({expected})")


def lines(errors: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per problem, duplicates left out, in the order pydantic found them."""
    return list(dict.fromkeys(problem(e).line for e in errors))


def as_validation_error(errors: Iterable[Mapping[str, Any]]) -> ValidationError:
    """The first problem as corral's :class:`~corral.errors.ValidationError` (its message
    is the problem's line); what the SDK raises for a request it will not send."""
    first = problem(next(iter(errors)))
    err = ValidationError(first.field, first.value, first.expected)
    err.args = (first.line,)
    return err


__all__ = ["Problem", "as_validation_error", "field_name", "lines", "problem", "shown"]
