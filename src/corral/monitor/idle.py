"""Idle-GPU detection and the graded reclaim chain: pure logic, no I/O, no clock.

A job that holds GPUs whose utilization stays under ``threshold`` percent for ``window``
seconds is *idle*. Then the actions of the policy run one by one, ``step`` seconds apart,
while it stays idle: ``warn`` (an event and a line in ``ps``/``show``), ``signal`` (the
checkpoint signal, SIGUSR1 by default, sent to the job's processes), then ``cancel`` or
``requeue``. Any sample at or over the threshold ends the idle stretch and starts over.
An unknown utilization (no sample) changes nothing: a GPU that cannot be read is never
judged idle.

Policies come from the daemon config (``idle_gpu:``) and can be overridden per job
(``spec.idleGpu`` / ``corral submit --idle-*``); the default is warn only.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ..durations import format_duration, parse_duration
from ..errors import ValidationError, show_value

ACTIONS = ("warn", "signal", "cancel", "requeue")
FINAL_ACTIONS = ("cancel", "requeue")
FIELDS = ("threshold", "window", "step", "actions", "signal")
_UNCATCHABLE = {"SIGKILL", "SIGSTOP"}


@dataclass(frozen=True)
class IdlePolicy:
    threshold: float = 5.0            # percent: utilization under this is idle
    window: int = 1800                # seconds idle before the first action
    step: int = 600                   # seconds between further actions
    actions: tuple[str, ...] = ("warn",)
    signal: str = "SIGUSR1"           # sent by the "signal" action

    @property
    def enabled(self) -> bool:
        return bool(self.actions)

    def due_at(self, idle_since: float, stage: int) -> float:
        """When action number ``stage`` (0-based) is due for a stretch idle since ``idle_since``."""
        return idle_since + self.window + stage * self.step

    def describe(self) -> str:
        if not self.actions:
            return "off"
        return (f"under {self.threshold:g}% for {format_duration(self.window)}: "
                + ", then ".join(self.actions) + (f" (every {format_duration(self.step)})"
                                                  if len(self.actions) > 1 else ""))

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "window": self.window, "step": self.step,
                "actions": list(self.actions), "signal": self.signal}

    @classmethod
    def from_dict(cls, data: Mapping) -> "IdlePolicy":
        base = cls()
        return cls(threshold=float(data.get("threshold", base.threshold)),
                   window=int(data.get("window", base.window)), step=int(data.get("step", base.step)),
                   actions=tuple(data.get("actions", base.actions)), signal=data.get("signal", base.signal))

    def merged(self, overrides: Mapping | None) -> "IdlePolicy":
        """This policy with the fields ``overrides`` (already validated, canonical) sets."""
        if not overrides:
            return self
        return replace(self, **{k: (tuple(v) if k == "actions" else v) for k, v in overrides.items()})


# -- parsing -----------------------------------------------------------------------------

def _fail(field: str, value: object, expected: str) -> ValidationError:
    err = ValidationError(field, value, expected)
    err.args = (f"invalid value for {field}: {show_value(value)} ({expected})",)
    return err


def parse_threshold(value: object, path: str) -> float:
    expected = "expected a GPU utilization percentage from 0 to 100, e.g. 5 or 5%"
    text = value.strip().rstrip("%").strip() if isinstance(value, str) else value
    if isinstance(text, bool):
        raise _fail(path, value, expected)
    try:
        number = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _fail(path, value, expected) from None
    if not 0 <= number <= 100:
        raise _fail(path, value, expected)
    return number


def parse_actions(value: object, path: str) -> tuple[str, ...]:
    expected = (f"expected a list of {', '.join(ACTIONS)} in order, each at most once, "
                "with cancel or requeue last, e.g. [warn, signal, cancel]; [] turns reclaim off")
    if isinstance(value, str):
        items: list[object] = [v.strip() for v in value.replace("+", ",").split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _fail(path, value, expected)
    out: list[str] = []
    for item in items:
        if item not in ACTIONS or item in out or (out and out[-1] in FINAL_ACTIONS):
            raise _fail(path, value, expected)
        if item in FINAL_ACTIONS and any(a in FINAL_ACTIONS for a in out):
            raise _fail(path, value, expected)
        out.append(item)  # type: ignore[arg-type]
    return tuple(out)


def parse_signal(value: object, path: str) -> str:
    """A catchable signal by name (``USR1``, ``SIGUSR1``) or number, as its ``SIG...`` name."""
    expected = "expected a signal name or number that a job can catch, e.g. SIGUSR1, USR2, TERM, 10"
    name: str | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            name = _signal.Signals(value).name
        except ValueError:
            name = None
    elif isinstance(value, str):
        text = value.strip().upper()
        if text.isascii() and text.isdigit():
            try:
                name = _signal.Signals(int(text)).name
            except ValueError:
                name = None
        else:
            text = text if text.startswith("SIG") else f"SIG{text}"
            name = text if text in _signal.Signals.__members__ else None
    if name is None or name in _UNCATCHABLE:
        raise _fail(path, value, expected)
    return name


def parse_idle(value: object, path: str, base: IdlePolicy | None = None) -> dict:
    """Validate an idle-GPU mapping; returns only the fields given, canonical
    (``{"threshold": 5.0, "window": 1800, ...}``). Unknown fields name the path."""
    if not isinstance(value, Mapping):
        raise _fail(path, value, f"expected a mapping with fields {', '.join(FIELDS)}")
    out: dict = {}
    for key, item in value.items():
        full = f"{path}.{key}"
        if key == "threshold":
            out["threshold"] = parse_threshold(item, full)
        elif key in ("window", "step"):
            out[key] = parse_duration(item, full, bare_unit=60, what="duration",
                                      examples="expected e.g. 30m, 1h, 90s")
        elif key == "actions":
            out["actions"] = parse_actions(item, full)
        elif key == "signal":
            out["signal"] = parse_signal(item, full)
        else:
            err = _fail(full, key, f"accepted: {', '.join(FIELDS)}")
            err.args = (f"unknown field {full} (accepted: {', '.join(FIELDS)})",)
            raise err
    return out


# -- the tracker -------------------------------------------------------------------------

@dataclass
class IdleVerdict:
    actions: tuple[str, ...] = ()     # due now, in order
    resumed: bool = False             # an idle stretch that had led to actions just ended
    idle_for: float = 0.0             # seconds idle so far (0 when active)


@dataclass
class IdleTracker:
    """Follows one running job's GPU utilization, sample by sample."""

    policy: IdlePolicy
    idle_since: float | None = None
    stage: int = 0                    # actions already taken in this idle stretch

    def observe(self, now: float, utilization: float | None) -> IdleVerdict:
        """Feed one sample (the highest utilization among the job's GPUs, or None)."""
        if utilization is not None and utilization != utilization:   # NaN: unreadable, not idle
            utilization = None
        if utilization is None:
            idle_for = now - self.idle_since if self.idle_since is not None else 0.0
            return IdleVerdict(idle_for=idle_for)
        if utilization >= self.policy.threshold:
            resumed = self.stage > 0
            self.idle_since, self.stage = None, 0
            return IdleVerdict(resumed=resumed)
        if self.idle_since is None:
            self.idle_since = now
        due: list[str] = []
        while self.stage < len(self.policy.actions) and now >= self.policy.due_at(self.idle_since, self.stage):
            due.append(self.policy.actions[self.stage])
            self.stage += 1
        return IdleVerdict(actions=tuple(due), idle_for=now - self.idle_since)
