"""Durations (time limits, grace periods) parsed into whole seconds.

Stdlib only: the CLI imports this module on every call.

Accepted by :func:`parse_duration`:

* **A number** (``int`` or ``float``, as YAML and the JSON API give them) is **seconds**:
  ``timeLimit: 90`` is 90 seconds. Fractions round up to the next whole second.
* **A bare number string** (as the CLI passes ``--time 30``) is **minutes**, like Slurm's
  ``--time``: ``"30"`` is 1800 seconds. So in YAML ``timeLimit: 30`` (a number) is 30
  seconds but ``timeLimit: "30"`` (a quoted string) is 30 minutes; prefer a unit
  (``30m``) to be unambiguous. Callers that want a bare string to mean seconds (the
  daemon's ``kill_grace``) pass ``bare_unit=1``.
* **Unit strings**: ``45s``, ``90m``, ``2h``, ``1d``, ``1h30m``, ``1d2h3m4s``, ``1.5h``
  (units in the order d, h, m, s, each at most once; case and inner spaces ignored).
* **Slurm's forms**: ``minutes``, ``minutes:seconds``, ``hours:minutes:seconds``,
  ``days-hours``, ``days-hours:minutes``, ``days-hours:minutes:seconds``; e.g. ``1:30``
  is 90 seconds, ``2-12`` is 60 hours, ``1-00:00:00`` is one day. Every part after the
  first is bounded (hours < 24 after days, minutes and seconds < 60).

  Note that YAML 1.1 (PyYAML) reads an unquoted ``1:30`` or ``1:30:00`` as a base-60
  *number* (90, 5400); read as seconds that is exactly Slurm's meaning, so both
  spellings agree.

Zero, negative, too large (over :data:`MAX_SECONDS`) or unparsable values raise
:class:`~corral.errors.ValidationError` with a one-line message such as
``invalid time limit for time: "2x" (expected e.g. 90m, 2h, 1-00:00:00)``.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from .errors import ValidationError, show_value

#: The examples every duration error message shows.
EXPECTED = "expected e.g. 90m, 2h, 1-00:00:00"

#: Largest accepted duration: 100 years (365-day years), far inside int64 and timers.
MAX_SECONDS = 100 * 365 * 86400

_NUM = r"\d+(?:\.\d+)?"
_UNITS = re.compile(
    rf"^(?:(?P<d>{_NUM})d)?(?:(?P<h>{_NUM})h)?(?:(?P<m>{_NUM})m)?(?:(?P<s>{_NUM})s)?\Z", re.ASCII
)
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_BARE = re.compile(rf"^{_NUM}\Z", re.ASCII)
# Slurm: [days-]hours:minutes:seconds and friends. Groups: d, a, b, c.
_SLURM = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?\Z", re.ASCII)


def _invalid(field: str, value: object, why: str | None = None, *, what: str = "time limit",
             examples: str = EXPECTED) -> ValidationError:
    expected = f"{examples}; {why}" if why else examples
    detail = f"invalid {what} for {field}"
    err = ValidationError(field, value, expected, detail=detail)
    err.args = (f"{detail}: {show_value(value)} ({expected})",)
    return err


def _from_text(text: str, bare_unit: int) -> Decimal | str | None:
    """Seconds for ``text``, a reason string when a part is out of range, None when unparsable."""
    if _BARE.match(text):
        return Decimal(text) * bare_unit
    m = _SLURM.match(text)
    if m:
        d, a, b, c = (m.group(k) for k in ("d", "a", "b", "c"))
        days = int(d) if d is not None else 0
        if d is None:
            if b is None:  # a bare integer: already handled by _BARE
                return Decimal(int(a) * bare_unit)
            if c is None:  # minutes:seconds
                hours, minutes, seconds = 0, int(a), int(b)
            else:  # hours:minutes:seconds
                hours, minutes, seconds = int(a), int(b), int(c)
        else:  # days-hours[:minutes[:seconds]]
            hours, minutes, seconds = int(a), int(b or 0), int(c or 0)
            if hours >= 24:
                return "hours after days must be below 24"
        minutes_leading = d is None and c is None   # minutes:seconds
        if not minutes_leading and minutes >= 60:
            return "minutes must be below 60"
        if seconds >= 60:
            return "seconds must be below 60"
        return Decimal(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    compact = re.sub(r"\s+", "", text.lower())
    m = _UNITS.match(compact)
    if m and any(m.group(u) for u in _UNIT_SECONDS):
        total = Decimal(0)
        for unit, factor in _UNIT_SECONDS.items():
            if m.group(unit):
                total += Decimal(m.group(unit)) * factor
        return total
    return None


def parse_duration(value: object, field: str = "time", *, bare_unit: int = 60,
                   allow_zero: bool = False, what: str = "time limit",
                   examples: str = EXPECTED) -> int:
    """Parse ``value`` into whole seconds (see the module docstring for the forms).

    ``bare_unit`` is the number of seconds a bare number *string* counts (60: minutes,
    Slurm's convention; 1: seconds). Numbers (int/float) are always seconds.
    ``allow_zero`` accepts 0 (e.g. a kill grace period of zero). ``what`` and
    ``examples`` shape the error message (``invalid {what} for {field}: ... ({examples})``).
    """
    def invalid(why: str | None = None) -> ValidationError:
        return _invalid(field, value, why, what=what, examples=examples)

    positive = "must not be negative" if allow_zero else "must be greater than zero"
    if isinstance(value, bool):
        raise invalid()
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise invalid()
        seconds = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            parsed = _from_text(text[1:].strip(), bare_unit)
            if isinstance(parsed, Decimal) and parsed > 0:
                raise invalid(positive)
            raise invalid()
        try:
            parsed = _from_text(text, bare_unit)
        except (InvalidOperation, ValueError):  # pragma: no cover - regexes guard this
            parsed = None
        if parsed is None:
            raise invalid()
        if isinstance(parsed, str):
            raise invalid(parsed)
        seconds = parsed
    else:
        raise invalid()
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise invalid(positive)
    if seconds > MAX_SECONDS:
        raise invalid(f"at most {format_duration(MAX_SECONDS)}")
    return int(seconds.to_integral_value(rounding="ROUND_CEILING"))


def format_duration(seconds: int) -> str:
    """Render seconds compactly: ``5400`` -> ``1h30m``, ``183600`` -> ``2d3h``, ``45`` -> ``45s``.

    The result parses back to the same number with :func:`parse_duration`.
    """
    seconds = int(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0s"
    parts = []
    for unit, factor in _UNIT_SECONDS.items():
        count, seconds = divmod(seconds, factor)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
