"""One root exception with a shallow tree.

Every user-facing error says what was wrong, with the offending value, and what
would be accepted. Messages are single lines.
"""

from __future__ import annotations


def show_value(value: object) -> str:
    """A value as an error message shows it: one line, at most ~80 characters, strings
    quoted. Costs what it shows, not the value's size: containers are walked only until
    80 characters are written (a value from a YAML alias bomb is huge, and shared)."""
    if isinstance(value, str):
        text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in value[:81])
        return f'"{text[:80]}..."' if len(value) > 80 or len(text) > 80 else f'"{text}"'
    parts: list[str] = []
    _short_repr(value, parts, [84])
    text = "".join(parts)
    return text[:80] + "..." if len(text) > 80 else text


def _short_repr(value: object, out: list[str], budget: list[int]) -> None:
    """repr(value) into ``out`` until ``budget[0]`` characters are spent."""
    if budget[0] <= 0:
        return
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        opening, closing = {list: "[]", tuple: "()", dict: "{}"}.get(type(value), "{}")
        out.append(opening)
        budget[0] -= 1
        items = value.items() if isinstance(value, dict) else value
        for i, item in enumerate(items):
            if budget[0] <= 0:
                return
            if i:
                out.append(", ")
                budget[0] -= 2
            if isinstance(value, dict):
                _short_repr(item[0], out, budget)
                out.append(": ")
                budget[0] -= 2
                _short_repr(item[1], out, budget)
            else:
                _short_repr(item, out, budget)
        out.append(closing)
        budget[0] -= 1
        return
    text = repr(value[:budget[0] + 2]) if isinstance(value, (str, bytes)) else repr(value)
    text = text[:budget[0] + 1]
    out.append(text)
    budget[0] -= len(text)


class CorralError(Exception):
    """Root of every error corral raises on purpose."""

    #: HTTP status the daemon answers with when this error crosses the API.
    status = 400


class ValidationError(CorralError):
    """Bad input: a field, the value given and what is accepted."""

    status = 422

    def __init__(self, field: str, value: object, expected: str, *, detail: str | None = None):
        self.field = field
        self.value = value
        self.expected = expected
        self.detail = detail
        super().__init__(self._format())

    def _format(self) -> str:
        # Strings as show_value shows them (escaped, at most ~80 characters): a value
        # with a newline or a megabyte of text still makes one readable line.
        shown = show_value(self.value) if isinstance(self.value, str) else repr(self.value)
        if len(shown) > 80:
            shown = show_value(self.value)
        head = self.detail or f"invalid value for {self.field}"
        return f"{head}: {shown} ({self.expected})"


def invalid(field: str, value: object, expected: str, *, detail: str | None = None,
            message: str | None = None) -> ValidationError:
    """A :class:`ValidationError` whose message is one line (the value escaped and
    shortened by :func:`show_value`): ``invalid value for FIELD: VALUE (EXPECTED)``, or
    ``DETAIL: VALUE (EXPECTED)``, or ``message`` as it is."""
    err = ValidationError(field, value, expected, detail=detail)
    head = detail or f"invalid value for {field}"
    err.args = (message or f"{head}: {show_value(value)} ({expected})",)
    return err


class QuantityError(ValidationError):
    """A resource quantity that does not parse or is out of range."""

    def __init__(self, field: str, value: object, expected: str, *, why: str | None = None):
        super().__init__(field, value, expected, detail=f"invalid quantity for {field}")
        if why:
            self.args = (f"{self.args[0][:-1]}; {why})",)

    def __str__(self) -> str:  # keep the adjusted message
        return self.args[0]


class Infeasible(CorralError):
    """A request that can never fit: more than the node's allocatable amount."""

    status = 422

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("; ".join(lines))


class NotFound(CorralError):
    status = 404


class NotStarted(CorralError):
    """Asked for what a job has once it runs (its logs) while it has never run."""

    status = 409


class InvalidTransition(CorralError):
    """A job state change that the transition table does not allow."""

    status = 409


class DaemonUnavailable(CorralError):
    status = 503


class ConnectionLost(DaemonUnavailable):
    """The daemon went away while a request was under way (sent, not fully answered)."""


class PermissionDenied(CorralError):
    """The caller may not do this (e.g. act on another user's job); nothing was changed.
    ``lines``: one line per refusal."""

    status = 403

    def __init__(self, lines: list[str] | str):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("; ".join(self.lines))
