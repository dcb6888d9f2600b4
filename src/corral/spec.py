"""JobSpec: what a job asks for, validated, in canonical units.

The dataclass and its JSON round trip are here; parsing from the YAML document, from
CLI-style values, Kubernetes requests/limits semantics and time limits follow below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .constraints import (LABEL_KEY_EXPECTED, label_key_ok, parse_gpu_models, parse_gpus, parse_nodes,
                          parse_selector)
from .durations import format_duration, parse_duration
from .errors import QuantityError, ValidationError, invalid, show_value
from .resources import (CPU, GPU, GPU_SHARE, MEMORY, Constraints, Resources, canonical_name, format_quantity, parse_quantity,
                        sort_key)


@dataclass(frozen=True)
class JobSpec:
    """A validated job specification.

    ``requests`` is what the scheduler reserves, ``limits`` what enforcement holds the job
    to; both are canonical :class:`Resources` and already follow Kubernetes defaulting
    (a missing limit is the request, a missing request is the limit). With ``nodes`` > 1
    both are per node: each of the ``nodes`` replicas gets them, and :attr:`demand` is
    what the scheduler places and quotas count.
    """

    command: tuple[str, ...]
    name: str = ""
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    priority: int = 0
    time_limit: int | None = None          # seconds
    requests: Resources = field(default_factory=Resources)
    limits: Resources = field(default_factory=Resources)
    #: Sent when corral stops the job (time limit, cancel, reclaim), e.g. "SIGUSR1" to let
    #: it checkpoint; None: SIGTERM. SIGKILL follows after the grace period.
    stop_signal: str | None = None
    kill_grace: int | None = None          # seconds; None: the daemon's kill_grace
    #: Idle-GPU reclaim fields overriding the daemon's (canonical, see corral.monitor.idle).
    idle_gpu: dict[str, Any] = field(default_factory=dict)
    #: The queue it is charged to (checked against the daemon's queues at submit).
    queue: str = "default"
    #: Array task indices (``--array 0-99%8``): one job per index; empty: not an array.
    array: tuple[int, ...] = ()
    #: At most this many tasks of the array run at once (the ``%8``); None: no limit.
    array_limit: int | None = None
    #: ``(type, job id)`` with type afterok, afterany or afternotok; an array's id means
    #: every task of it (:mod:`corral.daemon.gates`). Between parsing and submit an array
    #: task may still be ``"12_3"``, which the daemon resolves to its job id.
    dependencies: tuple[tuple[str, int], ...] = ()
    #: Run again after a failure (not after cancel or time limit), with backoff.
    retries: int = 0
    #: Submitted held: it waits until released.
    hold: bool = False
    #: May be preempted by a higher-priority job or a queue reclaiming its quota;
    #: ``requeue``: a preempted job is queued again (else it ends Cancelled/Preempted).
    preemptible: bool = True
    requeue: bool = True
    #: It saves its work when stopped (on its stop signal) and continues from it when
    #: started again: a preemption by attained service (``policy: las``) keeps its work.
    resumable: bool = False
    #: The priority class it asked for (``--priority urgent``); the daemon sets
    #: ``priority`` and ``preempts`` from the class (:mod:`corral.priorities`).
    priority_class: str = ""
    #: It may preempt others (a class with ``preempt: false`` says no).
    preempts: bool = True
    #: Its GPUs must be of one of these models (``--gpus A100:2``); empty: any GPU.
    gpu_models: tuple[str, ...] = ()
    #: The node's labels must include every pair (Kubernetes' nodeSelector).
    node_selector: dict[str, str] = field(default_factory=dict)
    #: Replicas, one per node, each with ``requests`` (Slurm's ``--nodes``).
    nodes: int = 1
    #: Interactive: the job's process gets a pseudo-terminal that ``corral run --pty``
    #: connects to (one process on one node; the local engine only).
    pty: bool = False
    #: The resources whose request came from the daemon's ``defaults``, not the job
    #: (what a wait for them says: ``requests 1 (the default; set --cpus)``).
    defaulted: tuple[str, ...] = ()
    #: Where it was written, for messages about it in a batch (``jobs.yaml (document 2)``,
    #: ``jobs[1]``); not stored, not part of what the spec is.
    origin: str = field(default="", compare=False, repr=False)

    @property
    def constraints(self) -> Constraints | None:
        """Where it may run, for the scheduler (None: any GPU, any node, one node)."""
        if not self.gpu_models and not self.node_selector and self.nodes == 1:
            return None
        return Constraints.make(self.gpu_models, self.node_selector, self.nodes)

    @property
    def demand(self) -> Resources:
        """What the scheduler places: the requests of all ``nodes`` replicas (the total)
        with the job's constraints; plain ``requests`` when there are none."""
        c = self.constraints
        if c is None:
            return self.requests
        return self.requests.scaled(self.nodes).with_constraints(c)

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON form (integers in canonical units), as the store keeps it."""
        return {
            "command": list(self.command),
            "name": self.name,
            "env": dict(self.env),
            "workdir": self.workdir,
            "labels": dict(self.labels),
            "priority": self.priority,
            "time_limit": self.time_limit,
            "requests": self.requests.as_dict(),
            "limits": self.limits.as_dict(),
            "stop_signal": self.stop_signal,
            "kill_grace": self.kill_grace,
            "idle_gpu": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.idle_gpu.items()},
            "queue": self.queue,
            "array": list(self.array),
            "array_limit": self.array_limit,
            "dependencies": [list(d) for d in self.dependencies],
            "retries": self.retries,
            "hold": self.hold,
            "preemptible": self.preemptible,
            "requeue": self.requeue,
            "resumable": self.resumable,
            "priority_class": self.priority_class,
            "preempts": self.preempts,
            "gpu_models": list(self.gpu_models),
            "node_selector": dict(self.node_selector),
            "nodes": self.nodes,
            "pty": self.pty,
            "defaulted": list(self.defaulted),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobSpec":
        """Inverse of :meth:`to_dict` (trusted input from the store)."""
        return cls(
            command=tuple(data["command"]),
            name=data.get("name", ""),
            env=dict(data.get("env", {})),
            workdir=data.get("workdir"),
            labels=dict(data.get("labels", {})),
            priority=int(data.get("priority", 0)),
            time_limit=data.get("time_limit"),
            requests=Resources(data.get("requests", {})),
            limits=Resources(data.get("limits", {})),
            stop_signal=data.get("stop_signal"),
            kill_grace=data.get("kill_grace"),
            idle_gpu=dict(data.get("idle_gpu") or {}),
            queue=data.get("queue") or "default",
            array=tuple(data.get("array") or ()),
            array_limit=data.get("array_limit"),
            dependencies=tuple((str(t), int(j)) for t, j in data.get("dependencies") or ()),
            retries=int(data.get("retries") or 0),
            hold=bool(data.get("hold", False)),
            preemptible=bool(data.get("preemptible", True)),
            requeue=bool(data.get("requeue", True)),
            resumable=bool(data.get("resumable", False)),
            priority_class=str(data.get("priority_class") or ""),
            preempts=bool(data.get("preempts", True)),
            gpu_models=tuple(data.get("gpu_models") or ()),
            node_selector=dict(data.get("node_selector") or {}),
            nodes=int(data.get("nodes") or 1),
            pty=bool(data.get("pty", False)),
            defaulted=tuple(str(n) for n in data.get("defaulted") or ()),
        )


# ---------------------------------------------------------------------------------------
# Validation and parsing. Everything below is stdlib only (PyYAML is imported lazily in
# load_documents), so importing this module stays cheap for the CLI.
# ---------------------------------------------------------------------------------------

API_VERSION = "corral/v1"
KIND = "Job"
SHELL = ("/bin/sh", "-c")
MAX_PRIORITY = 1_000_000
MAX_NAME = 253
MAX_LABEL_VALUE = 253
#: The longest string ``execve`` passes, an argument or one ``KEY=value`` of the
#: environment: Linux's MAX_ARG_STRLEN (32 pages), less the terminating NUL. Longer and
#: the job could never start (E2BIG), so it is refused at submit.
MAX_ARG_BYTES = 32 * 4096 - 1
#: The longest path ``chdir`` takes: PATH_MAX, less the terminating NUL.
MAX_PATH_BYTES = 4095
#: Job ids (dependencies name them) are SQLite integers: at most 2**63 - 1.
MAX_JOB_ID = 2**63 - 1

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z", re.ASCII)
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_INT = re.compile(r"^\s*[+-]?\d+\s*\Z", re.ASCII)

_COMMAND_EXPECTED = ('expected a program and its arguments, e.g. ["python", "train.py"], '
                     'or a shell command string, e.g. "python train.py > log.txt"')
_RESOURCES_EXPECTED = ('expected a mapping of resource name to quantity, '
                       'e.g. {cpu: "2", memory: 8Gi, nvidia.com/gpu: 1}')
_ENV_KEY_EXPECTED = ("expected a variable name of letters, digits and _, not starting with a digit, "
                     "e.g. CUDA_LAUNCH_BLOCKING")
_STRING_VALUE = 'expected a string; quote numbers and booleans, e.g. "1", "true"'
_LABEL_KEY_EXPECTED = LABEL_KEY_EXPECTED
_PRIORITY_EXPECTED = f"expected an integer from {-MAX_PRIORITY} to {MAX_PRIORITY} or a priority class name"


# -- error helpers ----------------------------------------------------------------------

#: A one-line :class:`ValidationError` (see :func:`corral.errors.invalid`).
_fail = invalid


def _quantity_error(field: str, value: object, expected: str, why: str | None) -> QuantityError:
    err = QuantityError(field, value, expected)
    tail = f"{expected}; {why}" if why else expected
    err.args = (f"invalid quantity for {field}: {show_value(value)} ({tail})",)
    return err


def _why(err: QuantityError) -> str | None:
    """The ``why`` part QuantityError appended to its message, if any."""
    text = str(err)
    marker = f"({err.expected}; "
    at = text.rfind(marker)
    if at >= 0 and text.endswith(")"):
        return text[at + len(marker):-1]
    return None


def _relocate(err: ValidationError, prefix: str) -> ValidationError:
    """The same error (same type and attributes) with ``prefix`` before its message."""
    new = err.__class__.__new__(err.__class__)
    new.__dict__.update(err.__dict__)
    new.args = (f"{prefix}{err}",)
    return new


# -- resources --------------------------------------------------------------------------

def resolve_resources(requests: Resources, limits: Resources, *,
                      field_prefix: str = "") -> tuple[Resources, Resources]:
    """Apply Kubernetes requests/limits semantics; returns ``(requests, limits)``.

    * a resource with only a request gets a limit equal to it, one with only a limit
      gets a request equal to it;
    * a request above its limit is an error;
    * for ``nvidia.com/gpu`` and every extended resource the request must equal the limit
      (they cannot be overcommitted);
    * amounts must be greater than zero (``Resources`` drops zeros, so explicit zeros are
      caught where raw values are parsed; negative amounts are caught here).

    ``field_prefix`` names the section in messages, e.g. ``"spec.resources."``.
    """
    section = field_prefix.rstrip(".") or "resources"
    req = dict(requests.items())
    lim = dict(limits.items())
    for name in sorted(set(req) | set(lim), key=sort_key):
        r, l = req.get(name), lim.get(name)
        for kind, amount in (("requests", r), ("limits", l)):
            if amount is not None and amount <= 0:
                raise _fail(f"{field_prefix}{kind}.{name}", amount, "must be greater than zero",
                            detail=f"invalid {section}: {kind}.{name}")
        if r is None:
            req[name] = l  # type: ignore[assignment]
            continue
        if l is None:
            lim[name] = r
            continue
        shown_r, shown_l = format_quantity(name, r), format_quantity(name, l)
        if name in (CPU, MEMORY):
            if r > l:
                raise _fail(f"{field_prefix}requests.{name}", shown_r, "a request must be at most its limit",
                            message=f"invalid {section}: {name} request {shown_r} exceeds limit {shown_l} "
                                    "(a request must be at most its limit)")
        elif r != l:
            raise _fail(f"{field_prefix}requests.{name}", shown_r, f"{name} request must equal its limit",
                        message=f"invalid {section}: {name} request {shown_r} differs from limit {shown_l} "
                                f"({name} cannot be overcommitted: its request must equal its limit)")
    return Resources(req), Resources(lim)


def _is_negative(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value < 0
    if isinstance(value, str) and value.strip().startswith("-"):
        try:
            parse_quantity(name, value.strip()[1:])
        except ValidationError:
            return False
        return True
    return False


def _parse_amount(name: str, value: object, field: str) -> int:
    """A positive amount for resource ``name``; errors name ``field`` (the full path)."""
    try:
        amount = parse_quantity(name, value)
    except QuantityError as err:
        why = "must be greater than zero" if _is_negative(name, value) else _why(err)
        raise _quantity_error(field, value, err.expected, why) from None
    if amount == 0:
        expected = "expected e.g. 2, 500m, 0.5" if name == CPU else (
            "expected e.g. 512Mi, 16Gi" if name == MEMORY else "expected a whole number, e.g. 1, 2")
        raise _quantity_error(field, value, expected, "must be greater than zero")
    if name == MEMORY and amount < MIN_MEMORY:
        raise _below_floor(field, value, amount)
    return amount


#: The smallest memory request or limit: less is a slip (``--mem 1`` is one byte), and
#: no job runs in it.
MIN_MEMORY = 2**20
_MEMORY_NUMBER = re.compile(r"^\s*(?P<num>\d+\.?\d*|\.\d+)(?P<suffix>m|k|Ki)?\s*\Z")


def _below_floor(field: str, value: object, amount: int) -> QuantityError:
    """``invalid quantity for memory: "1" (1 byte is below the floor of 1Mi; did you mean 1Gi?)``."""
    text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    m = _MEMORY_NUMBER.match(text)
    guess = ""
    if m:
        guess = f"; did you mean {m.group('num')}{'Mi' if m.group('suffix') else 'Gi'}?"
    size = "1 byte" if amount == 1 else f"{format_quantity(MEMORY, amount)} bytes" if amount < 1024 else \
        format_quantity(MEMORY, amount)
    err = QuantityError(field, value, "expected e.g. 512Mi, 16Gi")
    err.args = (f"invalid quantity for {field}: {show_value(value) if isinstance(value, str) else value} "
                f"({size} is below the floor of 1Mi; memory is in bytes{guess})",)
    return err


def _parse_resources(values: object, path: str) -> Resources:
    """Parse a raw ``{name: quantity}`` mapping at ``path`` (e.g. ``spec.resources.requests``)."""
    where = path or "requests"      # the CLI's requests are named by the resource alone
    if values is None:
        return Resources()
    if not isinstance(values, Mapping):
        raise _fail(where, values, _RESOURCES_EXPECTED)
    out: dict[str, int] = {}
    written: dict[str, object] = {}
    for raw_name, raw_value in values.items():
        if not isinstance(raw_name, str):
            raise _fail(f"{where}.{raw_name}", raw_name, _RESOURCES_EXPECTED,
                        detail=f"invalid resource name in {where}")
        try:
            name = canonical_name(raw_name)
        except ValidationError as err:
            raise _fail(f"{where}.{raw_name}", raw_name, err.expected,
                        detail=f"unknown resource name in {where}") from None
        field = f"{path}.{name}" if path else name
        if name in out:
            raise _fail(field, raw_name, f'each resource may appear once; "{written[name]}" is the same resource',
                        detail=f"duplicate resource in {where}")
        out[name] = _parse_amount(name, raw_value, field)
        written[name] = raw_name
    return Resources(out)


# -- individual fields ------------------------------------------------------------------

def _byte_length(text: str) -> int:
    """``text``'s length as ``execve`` counts it (UTF-8 bytes; lone surrogates as 3)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _too_long(text: str, limit: int = MAX_ARG_BYTES) -> bool:
    return len(text) > limit // 4 and _byte_length(text) > limit


_ARG_TOO_LONG = f"expected at most {MAX_ARG_BYTES:,} bytes, the most one argument can be (Linux's MAX_ARG_STRLEN)"


def _parse_command(value: object, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        if not value.strip():
            raise _fail(path, value,
                        'expected a non-empty shell command string, e.g. "python train.py", or an argv list')
        if "\x00" in value:
            raise _fail(path, value, "command strings cannot contain NUL characters")
        if _too_long(value):
            raise _fail(path, value, f"{_ARG_TOO_LONG}; got {_byte_length(value):,}")
        return (*SHELL, value)
    if isinstance(value, (list, tuple)):
        if not value:
            raise _fail(path, list(value),
                        'expected a non-empty argv list, e.g. ["python", "train.py"], or a shell command string')
        for i, arg in enumerate(value):
            if not isinstance(arg, str):
                raise _fail(f"{path}[{i}]", arg, 'expected a string argument; quote numbers in YAML, e.g. "0.1"')
            if "\x00" in arg:
                raise _fail(f"{path}[{i}]", arg, "arguments cannot contain NUL characters")
            if _too_long(arg):
                raise _fail(f"{path}[{i}]", arg, f"{_ARG_TOO_LONG}; got {_byte_length(arg):,}")
        if not value[0].strip():
            raise _fail(f"{path}[0]", value[0], "expected a program name or path, e.g. python")
        return tuple(value)
    raise _fail(path, value, _COMMAND_EXPECTED)


def _parse_name(value: object, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(path, value, f"expected a string of at most {MAX_NAME} characters")
    if len(value) > MAX_NAME:
        raise _fail(path, value, f"expected at most {MAX_NAME} characters, got {len(value)}")
    if _LINE_BREAKING.search(value):
        raise _fail(path, value, "expected one line without control characters")
    return value


def _parse_workdir(value: object, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, value, "expected a directory path, e.g. /home/me/project")
    if "\x00" in value:
        raise _fail(path, value, "paths cannot contain NUL characters")
    if _too_long(value, MAX_PATH_BYTES):
        raise _fail(path, value, f"expected a path of at most {MAX_PATH_BYTES:,} bytes (PATH_MAX); "
                                 f"got {_byte_length(value):,}")
    return value


def _parse_priority(value: object, path: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INT.match(value):
        number = int(value)
    else:
        raise _fail(path, value, _PRIORITY_EXPECTED)
    if not -MAX_PRIORITY <= number <= MAX_PRIORITY:
        raise _fail(path, value, _PRIORITY_EXPECTED)
    return number


def _parse_time_limit(value: object, path: str) -> int | None:
    if value is None:
        return None
    return parse_duration(value, path)


def _env_pair(key: object, value: object, path: str, value_path: str) -> tuple[str, str]:
    if not isinstance(key, str) or not _ENV_KEY.match(key):
        raise _fail(path, key, _ENV_KEY_EXPECTED, detail=f"invalid variable name in {path}")
    if not isinstance(value, str):
        raise _fail(value_path, value, _STRING_VALUE)
    if "\x00" in value:
        raise _fail(value_path, value, "environment values cannot contain NUL characters")
    if _too_long(value, MAX_ARG_BYTES - len(key) - 1):
        raise _fail(value_path, value, f"expected at most {MAX_ARG_BYTES:,} bytes with its name, the most one "
                                       f"variable can be (Linux's MAX_ARG_STRLEN); got "
                                       f"{_byte_length(value) + len(key) + 1:,}")
    return key, value


def _parse_env(value: object, path: str, *, list_form: bool) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(_env_pair(k, v, path, f"{path}.{k}") for k, v in value.items())
    if list_form and isinstance(value, (list, tuple)):
        out: dict[str, str] = {}
        for i, item in enumerate(value):
            item_path = f"{path}[{i}]"
            fields = _fields(item, item_path, _ENV_ITEM_FIELDS)
            if "name" not in fields:
                raise _fail(f"{item_path}.name", item, "expected {name: KEY, value: text}",
                            message=f"missing field {item_path}.name (expected {{name: KEY, value: text}})")
            key = fields["name"][1]
            raw = fields.get("value", ("value", ""))[1]
            key, text = _env_pair(key, "" if raw is None else raw, item_path + ".name", item_path + ".value")
            if key in out:
                raise _fail(f"{item_path}.name", key, "each variable may appear once",
                            detail=f"duplicate variable in {path}")
            out[key] = text
        return out
    expected = "expected a mapping KEY: value" + (" or a list of {name: KEY, value: text}" if list_form else "")
    raise _fail(path, value, expected)


def check_base_env(env: Mapping[str, str], path: str = "base_env") -> None:
    """What ``execve`` can pass: names non-empty, without ``=`` or NUL; values without
    NUL. (A caller's own environment may hold names a job spec may not, e.g. exported
    shell functions, so only what can never be passed is refused.)"""
    for key, value in env.items():
        if not key or "=" in key or "\x00" in key:
            raise _fail(path, key, "expected a variable name, not empty, without = or NUL",
                        detail=f"invalid variable name in {path}")
        if "\x00" in value:
            raise _fail(f"{path}.{key}", value, "expected text without NUL characters")
        if _too_long(value, MAX_ARG_BYTES - len(key) - 1):
            raise _fail(f"{path}.{key}", value, f"expected at most {MAX_ARG_BYTES:,} bytes with its name, the "
                                                "most one variable can be (Linux's MAX_ARG_STRLEN)")


def _parse_labels(value: object, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, value, "expected a mapping key: value, e.g. {team: vision}")
    out: dict[str, str] = {}
    for key, text in value.items():
        if not isinstance(key, str) or not label_key_ok(key):
            raise _fail(path, key, _LABEL_KEY_EXPECTED, detail=f"invalid label key in {path}")
        if not isinstance(text, str):
            raise _fail(f"{path}.{key}", text, _STRING_VALUE)
        if len(text) > MAX_LABEL_VALUE or _LINE_BREAKING.search(text):
            raise _fail(f"{path}.{key}", text,
                        f"expected one line of at most {MAX_LABEL_VALUE} characters without control characters")
        out[key] = text
    return out


def _parse_stop_signal(value: object, path: str) -> str | None:
    if value is None:
        return None
    from .monitor.idle import parse_signal

    return parse_signal(value, path)


def _parse_kill_grace(value: object, path: str) -> int | None:
    if value is None:
        return None
    return parse_duration(value, path, bare_unit=1, allow_zero=True, what="grace period",
                          examples="expected seconds or a duration, e.g. 10, 30s, 2m")


def _parse_idle_gpu(value: object, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    from .monitor.idle import parse_idle

    return parse_idle(value, path)


MAX_ARRAY = 10_000
MAX_RETRIES = 100
DEPENDENCY_TYPES = ("afterok", "afterany", "afternotok")
_QUEUE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?\Z", re.ASCII)
_ARRAY_EXPECTED = (f"expected indices like 0-99, 1,3,5-7 or 0-98:2, optionally %N to run at most N at once "
                   f"(e.g. 0-99%8); at most {MAX_ARRAY} tasks, indices 0 to {MAX_ARRAY * 100}")
_DEP_EXPECTED = ("expected job ids or array tasks (12_3), each optionally typed afterok: (default), afterany: or "
                 "afternotok:, e.g. 12 or afterany:12,13_2")


def _parse_queue(value: object, path: str) -> str:
    if value is None:
        return "default"
    if not isinstance(value, str) or not _QUEUE_NAME.match(value):
        raise _fail(path, value, "expected a queue name: lower-case letters, digits, -, _ and ., "
                                 "at most 63, e.g. research")
    return value


def parse_array(value: object, path: str = "array") -> tuple[tuple[int, ...], int | None]:
    """``"0-99%8"`` -> ``((0, 1, ..., 99), 8)``; Slurm's ``--array`` syntax."""
    if value is None:
        return (), None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, value, _ARRAY_EXPECTED)
    text, _, limit_text = value.replace(" ", "").partition("%")
    limit = None

    def bad(rule: str) -> ValidationError:
        return _fail(path, value, f"{rule}; {_ARRAY_EXPECTED}")

    if limit_text:
        if not limit_text.isascii() or not limit_text.isdigit():
            raise bad(f"the %N after the indices must be a whole number, not \"{limit_text[:20]}\"")
        if int(limit_text) < 1:
            raise bad("%N, the tasks run at once, must be at least 1")
        limit = int(limit_text)
    indices: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition(":")
        lo, dash, hi = rng.partition("-")
        try:
            start = int(lo) if lo.isascii() and lo.isdigit() else None
            end = (int(hi) if hi.isascii() and hi.isdigit() else None) if dash else start
            step = (int(step_text) if step_text.isascii() and step_text.isdigit() else None) if step_text else 1
        except ValueError:
            start = None
        if start is None or end is None or step is None:
            raise bad(f"\"{part[:20]}\" is not an index, a range A-B or a range with a step A-B:S")
        if step < 1:
            raise bad(f"the step in \"{part[:20]}\" must be at least 1")
        if end < start:
            raise bad(f"the range \"{part[:20]}\" ends before it starts")
        if end > MAX_ARRAY * 100:
            raise bad(f"index {end} is above the highest, {MAX_ARRAY * 100}")
        if (end - start) // step + 1 + len(indices) > MAX_ARRAY:
            raise bad(f"more than {MAX_ARRAY} tasks")
        indices.update(range(start, end + 1, step))
    return tuple(sorted(indices)), limit


def _task_ref(text: str) -> str | None:
    """``"12_3"`` (task 3 of array 12) as it is, or None."""
    head, sep, index = text.partition("_")
    if sep and head.isascii() and head.isdigit() and index.isascii() and index.isdigit() \
            and 1 <= int(head) <= MAX_JOB_ID and int(index) <= MAX_JOB_ID:
        return f"{int(head)}_{int(index)}"
    return None


def parse_dependencies(value: object, path: str = "after") -> tuple[tuple[str, int | str], ...]:
    """``"12"``, ``"afterany:12,13"``, ``[12, {"type": "afternotok", "job": 4}]`` -> ((type, id), ...).

    An id that is an array's id (its first task's job id) means the whole array; an
    array task is ``"12_3"`` (also ``{"job": "12_3"}``), kept as that string here and
    resolved to the task's job id by the daemon at submit (``JobSpec.dependencies``
    then holds job ids only)."""
    if value is None:
        return ()
    items: list[object]
    if isinstance(value, str):
        items = []
        kind = "afterok"
        for part in value.replace(" ", "").split(","):
            if ":" in part:
                kind, _, part = part.partition(":")
            items.append({"type": kind, "job": part})
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise _fail(path, value, _DEP_EXPECTED)
    out: list[tuple[str, int | str]] = []
    for item in items:
        kind, job = ("afterok", item) if not isinstance(item, Mapping) else (item.get("type", "afterok"), item.get("job"))
        if kind not in DEPENDENCY_TYPES:
            raise _fail(path, value, _DEP_EXPECTED)
        task = _task_ref(job) if isinstance(job, str) else None
        if task is not None:
            job = task
        elif isinstance(job, str) and job.isascii() and job.isdigit():
            job = int(job)
        if task is None and (isinstance(job, bool) or not isinstance(job, int) or not 1 <= job <= MAX_JOB_ID):
            raise _fail(path, value, _DEP_EXPECTED)
        if (kind, job) not in out:
            out.append((kind, job))
    return tuple(out)


def _parse_retries(value: object, path: str) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise _fail(path, value, f"expected a whole number from 0 to {MAX_RETRIES}")
    return value


def _parse_bool(value: object, path: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _fail(path, value, "expected true or false")
    return value


def _build(command: object, *, requests: object, limits: object, name: object, env: object,
           workdir: object, labels: object, priority: object, time_limit: object,
           paths: Mapping[str, str], env_list_form: bool, stop_signal: object = None,
           kill_grace: object = None, idle_gpu: object = None, queue: object = None, array: object = None,
           dependencies: object = None, retries: object = None, hold: object = None,
           preemptible: object = None, requeue: object = None, gpus: object = None, gpu_models: object = None,
           node_selector: object = None, nodes: object = None, pty: object = None,
           resumable: object = None) -> JobSpec:
    argv = _parse_command(command, paths["command"])
    name_ = _parse_name(name, paths["name"])
    labels_ = _parse_labels(labels, paths["labels"])
    env_ = _parse_env(env, paths["env"], list_form=env_list_form)
    workdir_ = _parse_workdir(workdir, paths["workdir"])
    from .priorities import is_class_name

    priority_class = priority if is_class_name(priority) else ""
    priority_ = 0 if priority_class else _parse_priority(priority, paths["priority"])
    time_limit_ = _parse_time_limit(time_limit, paths["time_limit"])
    req = _parse_resources(requests, paths["requests"])
    gpu_count, models = parse_gpus(gpus, paths.get("gpus", "gpus"))
    if gpu_count is not None:
        gpus_path = paths.get("gpus", "gpus")
        if GPU in req:
            raise _fail(gpus_path, gpus, f"give the GPU count once: in {gpus_path} or as requests {GPU}",
                        detail="GPUs requested twice")
        req = req.add({GPU: _parse_amount(GPU, gpu_count, gpus_path)})
    lim = _parse_resources(limits, paths["limits"])
    req, lim = resolve_resources(req, lim, field_prefix=paths["resources"])
    models_path = paths.get("gpu_models", "gpu_models")
    listed = parse_gpu_models(gpu_models, models_path)
    if listed and models:
        raise _fail(models_path, gpu_models, f"give the GPU models once: in {paths.get('gpus', 'gpus')} "
                                             f"(MODEL:COUNT) or in {models_path}")
    models = models or listed
    share = req.get(GPU_SHARE)
    if share:
        share_path = f"{paths['requests']}{GPU_SHARE}" if paths["requests"] else GPU_SHARE
        if share > 1000:
            raise _fail(share_path, share, f"expected 1 to 1000 (thousandths of one GPU); ask for whole GPUs with "
                                           f"{GPU}")
        if req.get(GPU):
            raise _fail(share_path, share, f"expected either {GPU} (whole GPUs) or a share of one GPU, not both")
    if models and not req.get(GPU) and not share:
        raise _fail(models_path, list(models), f"GPU models choose GPUs, and the job requests none: "
                                               f"request {GPU} too, e.g. --gpus {models[0]}:1")
    array_ = parse_array(array, paths.get("array", "array"))
    nodes_ = parse_nodes(nodes, paths.get("nodes", "nodes"))
    if share and nodes_ != 1:
        raise _fail(paths.get("nodes", "nodes"), nodes_, "expected 1: a share of one GPU runs on one node")
    pty_ = _parse_bool(pty, paths.get("pty", "pty"), False)
    preemptible_ = _parse_bool(preemptible, paths.get("preemptible", "preemptible"), True)
    resumable_ = _parse_bool(resumable, paths.get("resumable", "resumable"), False)
    if resumable_ and not preemptible_:
        raise _fail(paths.get("resumable", "resumable"), True,
                    "a resumable job is one corral may stop and start again: not with preemptible false")
    if pty_ and (array_[0] or nodes_ != 1):
        raise _fail(paths.get("pty", "pty"), True, "a job with a terminal is one process: not an array "
                    "and not on several nodes")
    return JobSpec(command=argv, name=name_, env=env_, workdir=workdir_, labels=labels_,
                   priority=priority_, priority_class=priority_class, time_limit=time_limit_, requests=req,
                   limits=lim,
                   stop_signal=_parse_stop_signal(stop_signal, paths["stop_signal"]),
                   kill_grace=_parse_kill_grace(kill_grace, paths["kill_grace"]),
                   idle_gpu=_parse_idle_gpu(idle_gpu, paths["idle_gpu"]),
                   queue=_parse_queue(queue, paths.get("queue", "queue")),
                   array=array_[0], array_limit=array_[1],
                   dependencies=parse_dependencies(dependencies, paths.get("dependencies", "after")),
                   retries=_parse_retries(retries, paths.get("retries", "retries")),
                   hold=_parse_bool(hold, paths.get("hold", "hold"), False),
                   preemptible=preemptible_, resumable=resumable_,
                   requeue=_parse_bool(requeue, paths.get("requeue", "requeue"), True),
                   gpu_models=models,
                   node_selector=parse_selector(node_selector, paths.get("node_selector", "node_selector")),
                   nodes=nodes_, pty=pty_)


_CLI_PATHS = {"command": "command", "requests": "", "limits": "limits", "resources": "",
              "name": "name", "env": "env", "workdir": "workdir", "labels": "labels",
              "priority": "priority", "time_limit": "time_limit", "stop_signal": "signal",
              "kill_grace": "grace", "idle_gpu": "idle_gpu", "queue": "queue", "array": "array",
              "dependencies": "after", "retries": "retries", "hold": "hold", "preemptible": "preemptible",
              "requeue": "requeue", "gpus": "gpus", "gpu_models": "gpu_models", "node_selector": "node_selector",
              "nodes": "nodes", "pty": "pty", "resumable": "resumable"}


def build_spec(command: str | list[str] | tuple[str, ...], *,
               requests: Mapping[str, object] | None = None,
               limits: Mapping[str, object] | None = None,
               name: str = "",
               env: Mapping[str, str] | None = None,
               workdir: str | None = None,
               labels: Mapping[str, str] | None = None,
               priority: int | str = 0,
               time_limit: object = None,
               stop_signal: object = None,
               kill_grace: object = None,
               idle_gpu: Mapping[str, object] | None = None,
               queue: object = None,
               array: object = None,
               dependencies: object = None,
               retries: object = None,
               hold: object = None,
               preemptible: object = None,
               requeue: object = None,
               gpus: object = None,
               gpu_models: object = None,
               node_selector: Mapping[str, str] | None = None,
               nodes: object = None,
               pty: object = None,
               resumable: object = None) -> JobSpec:
    """Build a validated :class:`JobSpec` from CLI/SDK-style values.

    ``command`` is an argv list, or one string run as ``/bin/sh -c STRING``.
    ``requests``/``limits`` map resource names (aliases such as ``gpu`` accepted) to raw
    quantities (``"2"``, ``"8Gi"``, ``1``); Kubernetes defaulting applies (see
    :func:`resolve_resources`). ``time_limit`` goes through
    :func:`~corral.durations.parse_duration` (a bare number string is minutes, a number
    seconds); None means no limit. ``priority`` is an int or a string of one.
    ``stop_signal`` (``USR1``, ``SIGUSR1``, 10) is sent instead of SIGTERM when corral
    stops the job; ``kill_grace`` (seconds or a duration) is how long before SIGKILL;
    ``idle_gpu`` overrides the daemon's idle-GPU reclaim fields (threshold, window, step,
    actions, signal).
    ``gpus`` is a count or Slurm's ``MODEL:COUNT`` (``"A100:2"``: two GPUs of model
    A100), ``gpu_models`` the models any of which will do (``["A100", "H100"]``; with a
    GPU count from ``requests`` or ``gpus``), ``node_selector`` labels the node must
    have (``{"zone": "lab1"}``), ``nodes`` how many nodes get one replica each with the
    per-node ``requests`` and ``limits``. ``pty``: interactive, the job gets a
    pseudo-terminal (``corral run --pty``). ``resumable``: the job saves its work on its
    stop signal and continues from it when started again (``policy: las`` may then
    preempt it by attained service; ``CORRAL_SERVED`` tells it how long it has run).
    Errors are one-line :class:`ValidationError` naming the field (``requests.memory``,
    ``env``, ``priority`` ...), the value and what is accepted.
    """
    return _build(command, requests=requests, limits=limits, name=name, env=env, workdir=workdir,
                  labels=labels, priority=priority, time_limit=time_limit,
                  paths=_CLI_PATHS, env_list_form=False, stop_signal=stop_signal, kill_grace=kill_grace,
                  idle_gpu=idle_gpu, queue=queue, array=array, dependencies=dependencies, retries=retries,
                  hold=hold, preemptible=preemptible, requeue=requeue, gpus=gpus, gpu_models=gpu_models,
                  node_selector=node_selector, nodes=nodes, pty=pty, resumable=resumable)


# -- the YAML document form -------------------------------------------------------------

# Accepted keys -> canonical key. Aliases map to the same canonical key; messages list
# only canonical keys.
_TOP_FIELDS = {"apiVersion": "apiVersion", "kind": "kind", "metadata": "metadata", "spec": "spec"}
_META_FIELDS = {"name": "name", "labels": "labels"}
_SPEC_FIELDS = {"command": "command", "env": "env", "workingDir": "workingDir", "workdir": "workingDir",
                "priority": "priority", "timeLimit": "timeLimit", "time_limit": "timeLimit",
                "resources": "resources", "stopSignal": "stopSignal", "gracePeriod": "gracePeriod",
                "idleGpu": "idleGpu", "queue": "queue", "array": "array", "dependencies": "dependencies",
                "retries": "retries", "hold": "hold", "preemptible": "preemptible", "requeue": "requeue",
                "gpuModels": "gpuModels", "nodeSelector": "nodeSelector", "nodes": "nodes",
                "pty": "pty", "resumable": "resumable"}
_RESOURCES_FIELDS = {"requests": "requests", "limits": "limits"}
_ENV_ITEM_FIELDS = {"name": "name", "value": "value"}


def _accepted(fields: Mapping[str, str]) -> str:
    return ", ".join(sorted(set(fields.values())))


def _fields(value: object, path: str, accepted: Mapping[str, str]) -> dict[str, tuple[str, object]]:
    """Check a mapping's keys; returns ``{canonical: (key as written, value)}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(path, value, f"expected a mapping with fields {_accepted(accepted)}")
    out: dict[str, tuple[str, object]] = {}
    for key, item in value.items():
        full = f"{path}.{key}" if path else str(key)
        canonical = accepted.get(key) if isinstance(key, str) else None
        if canonical is None:
            raise _fail(full, key, f"accepted: {_accepted(accepted)}",
                        message=f"unknown field {full} (accepted: {_accepted(accepted)})")
        if canonical in out:
            other = f"{path}.{out[canonical][0]}" if path else out[canonical][0]
            raise _fail(full, key, f"give only one of {other} and {full}",
                        message=f"field {full} given twice (as {other} and {full}; give only {canonical})")
        out[canonical] = (key, item)
    return out


def parse_document(doc: object, *, where: str = "job") -> JobSpec:
    """Parse one Kubernetes-flavoured job document (already loaded from YAML/JSON).

    Errors name the field's path (``spec.resources.requests.memory``). ``where`` locates
    the document: when it is not the default ``"job"`` every message is prefixed with it,
    e.g. ``jobs[1]: unknown field spec.comand (accepted: ...)``. The error keeps its type
    and its ``field``/``value``/``expected`` attributes.
    """
    if where == "job":
        return _parse_document(doc)
    try:
        return _parse_document(doc)
    except ValidationError as err:
        raise _relocate(err, f"{where}: ") from None


def _parse_document(doc: object) -> JobSpec:
    if not isinstance(doc, Mapping):
        raise _fail("job", doc, "expected a mapping with apiVersion, kind, metadata and spec",
                    detail="invalid job")
    top = _fields(doc, "", _TOP_FIELDS)
    api = top.get("apiVersion", ("apiVersion", API_VERSION))[1]
    if api != API_VERSION:
        raise _fail("apiVersion", api, f"expected {API_VERSION}")
    kind = top.get("kind", ("kind", KIND))[1]
    if kind != KIND:
        raise _fail("kind", kind, f"expected {KIND}")
    meta = _fields(top.get("metadata", ("metadata", None))[1], "metadata", _META_FIELDS)
    if "spec" not in top or top["spec"][1] is None:
        raise _fail("spec", None, "expected a mapping with at least command",
                    message=f"missing field spec (expected a mapping with at least command; "
                            f"accepted: {_accepted(_SPEC_FIELDS)})")
    spec = _fields(top["spec"][1], "spec", _SPEC_FIELDS)
    if "command" not in spec:
        raise _fail("spec.command", None, _COMMAND_EXPECTED,
                    message=f"missing field spec.command ({_COMMAND_EXPECTED})")
    res_key, res_value = spec.get("resources", ("resources", None))
    res = _fields(res_value, f"spec.{res_key}", _RESOURCES_FIELDS)

    def path(section: str, fields: Mapping[str, tuple[str, object]], canonical: str) -> str:
        return f"{section}.{fields[canonical][0]}" if canonical in fields else f"{section}.{canonical}"

    def get(fields: Mapping[str, tuple[str, object]], canonical: str) -> object:
        return fields[canonical][1] if canonical in fields else None

    res_path = f"spec.{res_key}"
    paths = {
        "command": path("spec", spec, "command"),
        "requests": path(res_path, res, "requests"),
        "limits": path(res_path, res, "limits"),
        "resources": f"{res_path}.",
        "name": path("metadata", meta, "name"),
        "labels": path("metadata", meta, "labels"),
        "env": path("spec", spec, "env"),
        "workdir": path("spec", spec, "workingDir"),
        "priority": path("spec", spec, "priority"),
        "time_limit": path("spec", spec, "timeLimit"),
        "stop_signal": path("spec", spec, "stopSignal"),
        "kill_grace": path("spec", spec, "gracePeriod"),
        "idle_gpu": path("spec", spec, "idleGpu"),
        "queue": path("spec", spec, "queue"),
        "array": path("spec", spec, "array"),
        "dependencies": path("spec", spec, "dependencies"),
        "retries": path("spec", spec, "retries"),
        "hold": path("spec", spec, "hold"),
        "preemptible": path("spec", spec, "preemptible"),
        "requeue": path("spec", spec, "requeue"),
        "gpu_models": path("spec", spec, "gpuModels"),
        "node_selector": path("spec", spec, "nodeSelector"),
        "nodes": path("spec", spec, "nodes"),
        "pty": path("spec", spec, "pty"),
        "resumable": path("spec", spec, "resumable"),
    }
    return _build(get(spec, "command"), requests=get(res, "requests"), limits=get(res, "limits"),
                  name=get(meta, "name"), env=get(spec, "env"), workdir=get(spec, "workingDir"),
                  labels=get(meta, "labels"), priority=get(spec, "priority"),
                  time_limit=get(spec, "timeLimit"), paths=paths, env_list_form=True,
                  stop_signal=get(spec, "stopSignal"), kill_grace=get(spec, "gracePeriod"),
                  idle_gpu=get(spec, "idleGpu"), queue=get(spec, "queue"), array=get(spec, "array"),
                  dependencies=get(spec, "dependencies"), retries=get(spec, "retries"), hold=get(spec, "hold"),
                  preemptible=get(spec, "preemptible"), requeue=get(spec, "requeue"),
                  gpu_models=get(spec, "gpuModels"), node_selector=get(spec, "nodeSelector"),
                  nodes=get(spec, "nodes"), pty=get(spec, "pty"), resumable=get(spec, "resumable"))


def _yaml_loader():  # imported lazily: PyYAML costs start-up time the CLI does not want
    import yaml

    return yaml, getattr(yaml, "CSafeLoader", yaml.SafeLoader)


#: Limits on YAML input: its size, how deep it nests, and how many values it holds once
#: its aliases are expanded (a few hundred bytes of aliases can stand for billions).
MAX_YAML_BYTES = 4 * 2**20
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 100_000


def _check_yaml_size(root: Any, source: str) -> None:
    """Refuse a composed YAML document that nests deeper than :data:`MAX_YAML_DEPTH` or
    stands for more than :data:`MAX_YAML_VALUES` values with its aliases expanded --
    counted on the node graph, where an alias is one shared node, in linear time."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_YAML_DEPTH:
            raise _fail(source, depth, f"expected at most {MAX_YAML_DEPTH} levels",
                        message=f"{source}: YAML nested more than {MAX_YAML_DEPTH} levels deep")
        key = id(node)
        if key in sizes and not done:
            continue
        value = node.value
        if isinstance(value, str):
            sizes[key] = 1
            continue
        children = [c for pair in value for c in pair] if value and isinstance(value[0], tuple) else list(value)
        if not done:
            sizes[key] = 0                       # in progress (YAML graphs from aliases are acyclic)
            stack.append((node, depth, True))
            stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        sizes[key] = total
        if total > MAX_YAML_VALUES:
            raise _fail(source, total, f"expected at most {MAX_YAML_VALUES:,} values",
                        message=f"{source}: YAML stands for more than {MAX_YAML_VALUES:,} values "
                                "once its aliases are expanded")


def source_name(source: str) -> str:
    """``source`` as messages name it: as it is when it is one short printable line,
    else shown as a value (quoted, escaped, shortened)."""
    return source if len(source) <= 200 and source.isprintable() else show_value(source)


def _unconstructable(loader: Any, root: Any) -> tuple[Any, Exception] | None:
    """The first scalar of a composed document whose value cannot be built (a date such
    as 2020-13-45, an integer of more digits than Python converts), and why."""
    loader.constructed_objects, loader.recursive_objects = {}, {}   # what the failed build left
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.value, str):
            try:
                loader.construct_object(node)
            except (ValueError, OverflowError, TypeError) as exc:
                return node, exc
            continue
        for item in reversed(node.value):
            stack.extend(reversed(item) if isinstance(item, tuple) else (item,))
    return None


def _value_problem(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "integer string conversion" in text:
        import sys

        return f"an integer of more than {sys.get_int_max_str_digits():,} digits"
    return text[:120] or type(exc).__name__


def load_yaml_all(text: str, *, source: str = "<input>") -> list[object]:
    """Every document in ``text`` (PyYAML safe loading, the C loader when available).

    Syntax errors, and values that cannot be built (a date such as 2020-13-45), become a
    one-line :class:`ValidationError` naming ``source`` and the line.
    """
    source = source_name(source)
    if len(text) > MAX_YAML_BYTES:
        raise _fail(source, len(text), f"expected at most {MAX_YAML_BYTES // 2**20} MiB of YAML",
                    message=f"{source}: {len(text):,} characters of YAML (expected at most "
                            f"{MAX_YAML_BYTES // 2**20} MiB)")
    yaml, loader_class = _yaml_loader()
    try:
        loader = loader_class(text)
        try:
            docs = []
            while loader.check_node():
                node = loader.get_node()
                _check_yaml_size(node, source)     # before building: aliases expand then
                try:
                    docs.append(loader.construct_document(node))
                except (ValueError, OverflowError, TypeError) as exc:
                    found = _unconstructable(loader, node)
                    mark = found[0].start_mark if found is not None else None
                    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
                    problem = _value_problem(found[1] if found is not None else exc)
                    raise _fail(source, problem, "expected valid YAML",
                                message=f"{source}: invalid YAML{where}: {problem}") from None
            return docs
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(problem).split())
        raise _fail(source, problem, "expected valid YAML",
                    message=f"{source}: invalid YAML{where}: {problem}") from None


def load_documents(text: str, *, source: str = "<input>") -> list[JobSpec]:
    """Parse YAML text into one :class:`JobSpec` per non-empty document (a batch).

    Errors are prefixed with the source (and the document number, counting every
    document in the stream, when the text has several), e.g.
    ``jobs.yaml (document 2): unknown field spec.comand (...)``.
    Text without any non-empty document is an error.
    """
    source = source_name(source)
    docs = load_yaml_all(text, source=source)
    many = len(docs) > 1
    specs: list[JobSpec] = []
    for number, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        where = f"{source} (document {number})" if many else source
        try:
            specs.append(replace(_parse_document(doc), origin=where))
        except ValidationError as err:
            raise _relocate(err, f"{where}: ") from None
    if not specs:
        raise _fail(source, text[:80], "expected at least one YAML document with kind: Job",
                    message=f"{source}: no job documents (expected at least one YAML document with kind: Job)")
    return specs


def _exact_formatted(resources: Resources) -> dict[str, str]:
    """``Resources.formatted()``, except amounts that would not parse back exactly
    (``format_bytes`` rounds inexact sizes to one decimal) are written in plain units."""
    out = {}
    for name, text in resources.formatted().items():
        amount = resources[name]
        try:
            exact = parse_quantity(name, text) == amount
        except ValidationError:
            exact = False
        out[name] = text if exact else (f"{amount}m" if name == CPU else str(amount))
    return out


def spec_to_document(spec: JobSpec) -> dict[str, Any]:
    """The YAML document form of ``spec``; :func:`parse_document` reads it back equal.

    Fields at their defaults are left out (no ``metadata`` when there is no name or label).
    """
    doc: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND}
    metadata: dict[str, Any] = {}
    if spec.name:
        metadata["name"] = spec.name
    if spec.labels:
        metadata["labels"] = dict(spec.labels)
    if metadata:
        doc["metadata"] = metadata
    body: dict[str, Any] = {"command": list(spec.command)}
    if spec.env:
        body["env"] = dict(spec.env)
    if spec.workdir is not None:
        body["workingDir"] = spec.workdir
    if spec.priority_class:
        body["priority"] = spec.priority_class        # the daemon resolves the name again
    elif spec.priority:
        body["priority"] = spec.priority
    if spec.time_limit is not None:
        body["timeLimit"] = format_duration(spec.time_limit)
    if spec.stop_signal is not None:
        body["stopSignal"] = spec.stop_signal
    if spec.kill_grace is not None:
        body["gracePeriod"] = spec.kill_grace
    if spec.idle_gpu:
        idle = dict(spec.idle_gpu)
        for key in ("window", "step"):
            if key in idle:
                idle[key] = format_duration(idle[key])
        if "actions" in idle:
            idle["actions"] = list(idle["actions"])
        body["idleGpu"] = idle
    if spec.queue != "default":
        body["queue"] = spec.queue
    if spec.array:
        body["array"] = format_array(spec.array, spec.array_limit)
    if spec.dependencies:
        body["dependencies"] = [{"type": t, "job": j} for t, j in spec.dependencies]
    if spec.retries:
        body["retries"] = spec.retries
    if spec.hold:
        body["hold"] = True
    if not spec.preemptible:
        body["preemptible"] = False
    if not spec.requeue:
        body["requeue"] = False
    if spec.resumable:
        body["resumable"] = True
    if spec.gpu_models:
        body["gpuModels"] = list(spec.gpu_models)
    if spec.node_selector:
        body["nodeSelector"] = dict(spec.node_selector)
    if spec.nodes != 1:
        body["nodes"] = spec.nodes
    if spec.pty:
        body["pty"] = True
    resources: dict[str, Any] = {}
    if spec.requests:
        resources["requests"] = _exact_formatted(spec.requests)
    if spec.limits:
        resources["limits"] = _exact_formatted(spec.limits)
    if resources:
        body["resources"] = resources
    doc["spec"] = body
    return doc


def with_defaults(spec: JobSpec, default_requests: Resources) -> JobSpec:
    """Fill resources the spec does not mention at all (neither request nor limit).

    Each such resource gets the default as both request and limit (e.g. the daemon's
    default ``cpu: 1``). Resources the spec names are left as they are.
    """
    missing = {name: amount for name, amount in default_requests.items()
               if name not in spec.requests and name not in spec.limits}
    if not missing:
        return spec
    return replace(spec, requests=spec.requests.add(missing), limits=spec.limits.add(missing),
                   defaulted=tuple(sorted(set(spec.defaulted) | set(missing))))


def format_array(indices: tuple[int, ...], limit: int | None = None) -> str:
    """``(0, 1, 2, 5)``, 8 -> ``"0-2,5%8"`` (parses back to the same)."""
    parts: list[str] = []
    i = 0
    while i < len(indices):
        j = i
        while j + 1 < len(indices) and indices[j + 1] == indices[j] + 1:
            j += 1
        parts.append(str(indices[i]) if i == j else f"{indices[i]}-{indices[j]}")
        i = j + 1
    return ",".join(parts) + (f"%{limit}" if limit else "")
