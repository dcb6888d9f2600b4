"""Request and response models of the daemon's HTTP API (``/v1``), shared by the daemon
and the SDK.

Requests are strict where a wrong type would mean something else (a job id is a JSON
integer, never ``true`` or ``"12"``) and forbid unknown fields; every constrained type
says what it accepts, so a rejected request reads ``invalid value for ids[0]: true
(expected a job id, a positive integer)`` (see :mod:`corral.api.problems`). The job
document itself (the ``job.yaml`` form) and the CLI's flags are checked by
:mod:`corral.spec`, whose one-line errors name the document's own fields; here a
document is a free mapping.

Responses are the views the daemon builds (:mod:`corral.daemon.views`). Fields a view
leaves out stay unset and are left out of the answer again (the daemon answers with
``exclude_unset``): e.g. ``queue_position`` only for pending jobs, ``env`` only in the
detail view and only for the job's owner. Responses allow extra fields, so an SDK reads
the answers of a newer daemon.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, StrictBool, StrictFloat,
                      StrictInt, StrictStr, Tag, ValidationError, WrapValidator, model_validator)
from pydantic_core import PydanticCustomError

from ..errors import show_value
from ..job import JobState, Reason

#: Job ids are SQLite integers: 1 to 2**63 - 1.
MAX_JOB_ID = 2**63 - 1


def expect(accepted: str, *, nested: bool = False) -> WrapValidator:
    """Validation metadata: any error of the annotated type becomes one ``expected`` error
    saying what is accepted. ``nested``: errors inside a container's items (``ids[1]``)
    are kept as they are, with their own location."""
    def check(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            if nested and any(err["loc"] for err in exc.errors()):
                raise
            raise PydanticCustomError("expected", "expected {accepted}", {"accepted": accepted}) from None

    return WrapValidator(check)


def _decimal(value: Any) -> Any:
    """An integer in a path or query string as written: ASCII digits only, so ``1.0``,
    `` 1``, ``1_0``, ``+1`` or ``1\\n`` are not read as job 1 (or 10)."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise PydanticCustomError("expected", "expected {accepted}", {"accepted": "a whole number, in decimal digits"})
    return value


#: Validation metadata for integers in paths and query strings (see :func:`_decimal`).
Digits = BeforeValidator(_decimal)

_SURROGATE = re.compile("[\ud800-\udfff]")
_TEXT_EXPECTED = "valid Unicode text, without lone surrogates such as \\ud800"


def _bad_text(value: str) -> bool:
    return not value.isascii() and _SURROGATE.search(value) is not None


_SCALARS = frozenset({int, float, bool, type(None)})
_FLAT = _SCALARS | {str}


def _path(parent: str, key: str | int | None) -> str:
    if key is None:
        return parent
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def lone_surrogate(data: Any) -> tuple[str, str, bool] | None:
    """The first string of a decoded JSON body (key or value, in document order) with a
    lone surrogate, which JSON's ``\\ud800`` escapes can spell but no file, argument or
    answer can hold: ``(where, the string, whether it is a key)``; where is ``""`` for
    the body itself. Checked in C first (the body as JSON text again), walked only where
    that finds one, or cannot tell."""
    try:
        text = json.dumps(data, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        pass                                  # not JSON's types, or nested deeper than dumps goes
    else:
        if not _bad_text(text):
            return None
    nested = (str, dict, list)
    stack: list[tuple[str, str | int | None, Any]] = [("", None, data)]   # (parent's path, key, value)
    while stack:
        parent, key, value = stack.pop()
        if isinstance(value, str):
            if _bad_text(value):
                return _path(parent, key), value, False
        elif isinstance(value, dict):
            where = _path(parent, key)
            for name in value:
                if isinstance(name, str) and _bad_text(name):
                    return where, name, True
            stack.extend((where, k, v) for k, v in reversed(value.items()) if isinstance(v, nested))
        elif isinstance(value, list):
            kinds = set(map(type, value))
            if kinds <= _SCALARS:
                continue
            if kinds <= _FLAT:
                strings = value if kinds == {str} else [v for v in value if type(v) is str]
                if _bad_text("".join(strings)):
                    i = next(i for i, v in enumerate(value) if type(v) is str and _bad_text(v))
                    return _path(_path(parent, key), i), value[i], False
                continue
            where = _path(parent, key)
            stack.extend((where, i, value[i]) for i in range(len(value) - 1, -1, -1) if isinstance(value[i], nested))
    return None


# -- request building blocks ---------------------------------------------------------------

JOB_ID = "a job id, a positive integer"
_JOB_IDS = "a non-empty list of job ids"
_DOCUMENT = 'a job document (a mapping, the job.yaml form) or {"flags": {...}}'
_COMMAND = "a list of strings, or one string run by /bin/sh -c"
_QUANTITIES = 'a mapping of resource names to quantities, e.g. {"cpu": "2", "memory": "8Gi"}'
_STRINGS = "a mapping of strings to strings"
_INTEGER = "an integer, or a string of one"
_DURATION = "a duration such as 90m or 2h, or a number"
_SIGNAL = "a signal name or number, e.g. USR1"
_TEXT = "a string"
_FLAG = "true or false"
_IDLE = "a mapping of idle-GPU fields: threshold, window, step, actions, signal"
_ARRAY = "indices such as 0-99%8"
_AFTER = "job ids such as 12 (an array's id: every task), 12_3 (one task) or afterany:12,13, or a list of them"
_GPUS = "a GPU count, or MODEL:COUNT such as A100:2"
_GPU_MODELS = "a list of GPU model names, e.g. [\"A100\", \"H100\"]"

JobId = Annotated[StrictInt, Field(gt=0, le=MAX_JOB_ID, description=JOB_ID), expect(JOB_ID)]
JobIds = Annotated[list[JobId], Field(min_length=1, description=_JOB_IDS), expect(_JOB_IDS, nested=True)]
Text = Annotated[StrictStr, Field(description=_TEXT), expect(_TEXT)]
Strings = Annotated[dict[StrictStr, StrictStr], Field(description=_STRINGS), expect(_STRINGS, nested=True)]
Quantities = Annotated[dict[StrictStr, Union[StrictStr, StrictInt, StrictFloat]], Field(description=_QUANTITIES),
                       expect(_QUANTITIES)]
Integer = Annotated[Union[StrictInt, StrictStr], Field(description=_INTEGER), expect(_INTEGER)]
Duration = Annotated[Union[StrictInt, StrictFloat, StrictStr], Field(description=_DURATION), expect(_DURATION)]
Flag = Annotated[StrictBool, Field(description=_FLAG), expect(_FLAG)]


class RequestModel(BaseModel):
    """A request body: unknown fields and missing required ones are one error each,
    naming the field and what is accepted."""

    model_config = ConfigDict(extra="forbid")

    #: A whole request body (not a part of one): its text is checked first, all of it.
    whole_body: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if cls.whole_body:
            found = lone_surrogate(data)
            if found is not None:
                where, text, key = found
                raise PydanticCustomError("invalid_text", "invalid text at {field}",
                                          {"field": where, "value": show_value(text), "key": key,
                                           "accepted": _TEXT_EXPECTED})
        if not isinstance(data, dict):
            return data
        for key in data:
            if key not in cls.model_fields:
                raise PydanticCustomError("unknown_field", "unknown field {field} (accepted: {accepted})",
                                          {"field": str(key), "accepted": ", ".join(cls.model_fields)})
        for name, info in cls.model_fields.items():
            if info.is_required() and name not in data:
                raise PydanticCustomError("missing_field", "missing {field} (expected {accepted})",
                                          {"field": name, "accepted": info.description or "a value"})
        return data


class QueryModel(BaseModel):
    """Query parameters; unknown ones are ignored, as HTTP clients add their own."""

    model_config = ConfigDict(extra="ignore")


# -- submit --------------------------------------------------------------------------------

class JobFlags(RequestModel):
    """A job as the CLI's options give it (``corral submit --gpus 1 -- cmd``); the values
    are checked by :func:`corral.spec.build_spec`, with its messages."""

    command: Annotated[Union[list[StrictStr], StrictStr], Field(description=_COMMAND), expect(_COMMAND)] | None = None
    requests: Quantities | None = None
    limits: Quantities | None = None
    name: Text | None = None
    env: Strings | None = None
    workdir: Text | None = None
    labels: Strings | None = None
    priority: Integer | None = None
    time: Duration | None = None
    signal: Annotated[Union[StrictInt, StrictStr], Field(description=_SIGNAL), expect(_SIGNAL)] | None = None
    grace: Duration | None = None
    idle_gpu: Annotated[dict[StrictStr, Any], Field(description=_IDLE), expect(_IDLE)] | None = None
    queue: Text | None = None
    array: Annotated[Union[StrictInt, StrictStr], Field(description=_ARRAY), expect(_ARRAY)] | None = None
    after: Annotated[Union[StrictInt, StrictStr, list[Any]], Field(description=_AFTER), expect(_AFTER)] | None = None
    retries: Integer | None = None
    hold: Flag | None = None
    preemptible: Flag | None = None
    requeue: Flag | None = None
    #: ``2`` or ``"A100:2"`` (Slurm's ``--gpus``); sets the GPU request.
    gpus: Annotated[Union[StrictInt, StrictStr], Field(description=_GPUS), expect(_GPUS)] | None = None
    #: Any of these GPU models (with a GPU count from ``gpus`` or ``requests``).
    gpu_models: Annotated[Union[list[StrictStr], StrictStr], Field(description=_GPU_MODELS),
                          expect(_GPU_MODELS)] | None = None
    #: Labels the node must have (Kubernetes' nodeSelector).
    node_selector: Strings | None = None
    #: Replicas, one per node, each with the per-node requests (Slurm's ``--nodes``).
    nodes: Integer | None = None
    #: Interactive: the job gets a pseudo-terminal (``corral run --pty``; local engine).
    pty: Flag | None = None
    #: It saves its work on its stop signal and continues from it (``policy: las``).
    resumable: Flag | None = None


class FlagsItem(RequestModel):
    """One item of a submit's ``jobs``: ``{"flags": {...}}``."""

    flags: JobFlags


#: Union tags of a ``jobs`` item; they appear in validation errors' locations and
#: :mod:`corral.api.problems` leaves them out of field names.
FLAGS_TAG, DOCUMENT_TAG = "flags item", "job document"
ITEM_TAGS = frozenset({FLAGS_TAG, DOCUMENT_TAG})


def _item_kind(item: Any) -> str:
    if isinstance(item, FlagsItem) or (isinstance(item, dict) and set(item) == {"flags"}):
        return FLAGS_TAG
    return DOCUMENT_TAG


JobDocument = Annotated[dict[StrictStr, Any], Field(description=_DOCUMENT), expect(_DOCUMENT)]
JobItem = Annotated[Union[Annotated[FlagsItem, Tag(FLAGS_TAG)], Annotated[JobDocument, Tag(DOCUMENT_TAG)]],
                    Discriminator(_item_kind)]


_KEY = "1 to 128 letters, digits and . _ : -, e.g. a UUID"


class SubmitRequest(RequestModel):
    """``POST /v1/jobs``: one batch, admitted all or nothing. Either ``jobs`` (job
    documents or flags items) or ``yaml`` (text with one or more documents, read as
    coming from ``source``). ``default_workdir``: for jobs that name no working
    directory. ``base_env``: the submitter's environment, which jobs start from."""

    whole_body = True

    jobs: Annotated[list[JobItem], Field(min_length=1, description="a non-empty list of job documents"),
                    expect("a non-empty list of job documents", nested=True)] | None = None
    yaml: Annotated[StrictStr, Field(description="YAML text"), expect("YAML text")] | None = None
    source: Text | None = None
    default_workdir: Text | None = None
    base_env: Strings = Field(default_factory=dict)
    #: A client's key for this batch: a retried submit with the same key gets the jobs the
    #: first one stored, and stores nothing new (kept a day).
    idempotency_key: Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
                                                description=_KEY), expect(_KEY)] | None = None

    @model_validator(mode="after")
    def _jobs_or_yaml(self) -> "SubmitRequest":
        if (self.jobs is None) == (self.yaml is None):
            raise PydanticCustomError("expected", "expected {accepted}",
                                      {"accepted": "either jobs (a list of job documents) or yaml (YAML text)"})
        return self


# -- acting on jobs ------------------------------------------------------------------------

_TASK = "an array task [ARRAY_ID, INDEX], e.g. [12, 3]"
_RANGE = "an id range [FIRST, LAST], e.g. [12, 20]"
_REFS = "ids, tasks, ranges or selector: the jobs to act on"
_SELECTOR = "a job selector: name, user, mine, queue, labels, array, state, since"
_LABEL_PAIRS = 'a mapping of label keys to values, e.g. {"team": "vision"}'
TaskRef = Annotated[tuple[JobId, Annotated[StrictInt, Field(ge=0, le=MAX_JOB_ID)]],
                    Field(description=_TASK), expect(_TASK)]
IdRange = Annotated[tuple[JobId, JobId], Field(description=_RANGE), expect(_RANGE)]


class JobSelector(RequestModel):
    """Jobs chosen by what they are rather than by id (``corral ps`` filters, and
    ``cancel``/``hold``/``release --name ...``); every field given must match.
    ``name``: a glob (``sweep-*``); ``mine``: the caller's own jobs; ``array``: the tasks
    of that array; ``state``: any of these states; ``since``: submitted within this
    long (e.g. 2h) before now."""

    name: Text | None = None
    user: Text | None = None
    mine: Flag | None = None
    queue: Text | None = None
    labels: Annotated[dict[StrictStr, StrictStr], Field(description=_LABEL_PAIRS),
                      expect(_LABEL_PAIRS, nested=True)] | None = None
    array: JobId | None = None
    state: Annotated[list[StrictStr], Field(description="a list of states, e.g. [\"Pending\"]"),
                     expect("a list of states, e.g. [\"Pending\"]")] | None = None
    since: Duration | None = None


class JobRefs(RequestModel):
    """Which jobs a request acts on, Slurm's way. ``ids``: job ids; an *array's* id (its
    first task's job id) means every task of the array. ``tasks``: one task each,
    ``[array id, index]`` (the CLI's ``12_3``). ``ranges``: ``[first, last]``, every job
    with an id in it (arrays among them whole; ids no job has are skipped). ``selector``:
    the jobs that match it. At least one of them; the jobs are the union. Where an array,
    range or selector picks jobs, only those the action applies to are taken (cancel and
    update: live jobs; hold and release: pending ones); jobs named one by one are taken
    as they are (and say why not)."""

    whole_body = True

    ids: JobIds | None = None
    tasks: Annotated[list[TaskRef], Field(min_length=1, description="a non-empty list of array tasks"),
                     expect("a non-empty list of array tasks", nested=True)] | None = None
    ranges: Annotated[list[IdRange], Field(min_length=1, description="a non-empty list of id ranges"),
                      expect("a non-empty list of id ranges", nested=True)] | None = None
    selector: JobSelector | None = None

    @model_validator(mode="before")
    @classmethod
    def _some_jobs(cls, data: Any) -> Any:
        if isinstance(data, dict) and all(data.get(k) is None for k in ("ids", "tasks", "ranges", "selector")) \
                and all(k in cls.model_fields for k in data):        # an unknown field is said first
            raise PydanticCustomError("missing_field", "missing {field} (expected {accepted})",
                                      {"field": "ids", "accepted": _JOB_IDS})
        return data


class IdsRequest(JobRefs):
    """``POST /v1/jobs/cancel``, ``/hold``, ``/release`` and ``/select``: the jobs (see
    :class:`JobRefs`), checked as a whole before anything changes."""


class UpdateRequest(JobRefs):
    """``POST /v1/jobs/update``: new priority, time limit or queue for pending jobs (the
    time limit also for running ones); at least one of them. The jobs as in
    :class:`JobRefs` (an array's pending tasks when a priority or queue changes)."""

    priority: Integer | None = None
    time: Duration | None = None
    queue: Text | None = None

    @model_validator(mode="after")
    def _something(self) -> "UpdateRequest":
        if self.priority is None and self.time is None and self.queue is None:
            raise PydanticCustomError("nothing_to_change", "nothing to change",
                                      {"accepted": "priority, time, queue"})
        return self


class PruneRequest(RequestModel):
    """``POST /v1/prune``: delete finished jobs older than this (default: the retention)."""

    whole_body = True

    older_than: Duration | None = None


class JobsQuery(QueryModel):
    """``GET /v1/jobs``: filter by state (repeated or comma-separated), at most ``limit``
    (the first by id), or the ``last`` N (the newest, still listed by id). The
    :class:`JobSelector` fields as parameters: ``name`` (a glob), ``user``, ``mine=true``,
    ``queue``, ``label=KEY=VALUE`` (repeated), ``array`` (an array id), ``since`` (e.g. 2h)."""

    state: list[str] = Field(default_factory=list)
    limit: Annotated[int, Field(ge=0, le=MAX_JOB_ID), Digits] | None = None
    last: Annotated[int, Field(ge=0, le=MAX_JOB_ID), Digits] | None = None
    name: str | None = None
    user: str | None = None
    mine: bool = False
    queue: str | None = None
    label: list[str] = Field(default_factory=list)
    array: Annotated[int, Field(gt=0, le=MAX_JOB_ID), Digits] | None = None
    since: str | None = None


class WaitQuery(QueryModel):
    """``GET /v1/jobs/{id}/wait``: answer when the job ends or after ``timeout`` seconds
    (at most 300), whichever is first."""

    timeout: Annotated[float, Field(allow_inf_nan=False)] = 30.0


class LogsQuery(QueryModel):
    """``GET /v1/jobs/{id}/logs``: one of the job's streams from byte ``offset``;
    ``follow`` keeps the answer open until the job ends."""

    stream: Literal["stdout", "stderr"] = "stdout"
    follow: bool = False
    offset: Annotated[int, Field(ge=0, le=MAX_JOB_ID), Digits] = 0
    #: Only what attempt N wrote (1: the first run; a retry or requeue is the next one).
    attempt: Annotated[int | None, Field(ge=1, le=MAX_JOB_ID), Digits] = None


class UsageQuery(QueryModel):
    """``GET /v1/usage``: accounting over the window ``since`` (e.g. 7d), grouped ``by``
    user, job or queue."""

    since: str = "7d"
    by: str = "user"


# -- responses -----------------------------------------------------------------------------

class ResponseModel(BaseModel):
    """An answer: extra fields are kept (a newer daemon may say more)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ErrorBody(ResponseModel):
    """Every 4xx/5xx answer: the message and one line per problem."""

    error: str
    lines: list[str]


class AccessView(ResponseModel):
    """Who may connect and who is an admin (see :mod:`corral.daemon.auth`)."""

    mode: str
    socket_group: str | None
    socket_mode: str
    admin_group: str | None
    description: str


class Health(ResponseModel):
    """``GET /v1/health``."""

    ok: bool
    pid: int
    version: str
    home: str | None
    pending: int
    running: int
    mode: str
    access: AccessView


class PieceView(ResponseModel):
    """One node's part of a multi-node allocation (amounts in canonical integer units)."""

    node: str
    requests: dict[str, int]
    gpus: list[int]
    cores: list[int]


class LiveView(ResponseModel):
    """The latest reading of a running job."""

    t: float
    cpu: float | None = None
    memory: int | None = None
    memory_peak: int | None = None
    pids: int | None = None
    gpu_util: float | None = None
    gpu_util_max: float | None = None
    gpu_memory: int | None = None
    gpu_power: float | None = None
    idle_for: float = 0.0
    source: str = ""
    idle_policy: str | None = None
    idle_actions: list[str] | None = None


class UsageTotals(ResponseModel):
    """A job's usage over its whole life, from its usage series."""

    job_id: int
    rows: int
    first: float
    last: float
    cpu_seconds: float
    memory_peak: int
    gpu_util_sum: float
    gpu_util_dt: float
    gpu_memory_peak: int | None
    energy_j: float
    gpu_seconds: float
    idle_gpu_seconds: float
    gpu_util: float | None


class Efficiency(ResponseModel):
    """``seff``-like summary with right-sizing hints; the numbers only once it started."""

    hints: list[str]
    elapsed: float | None = None
    memory_peak: int | None = None
    memory_request: int | None = None
    memory_efficiency: float | None = None
    cpu_used: float | None = None
    cpu_efficiency: float | None = None
    cpu_seconds: float | None = None
    gpu_util: float | None = None
    gpu_memory_peak: int | None = None
    gpu_hours: float | None = None
    idle_gpu_hours: float | None = None
    energy_kwh: float | None = None


class JobEnforcement(ResponseModel):
    """How one job's limits are held, in words."""

    mode: str
    hard: bool
    description: str
    limits: list[str]


class EventView(ResponseModel):
    """One state change of a job."""

    ts: float
    from_: JobState | None = Field(alias="from")
    to: JobState
    reason: Reason
    message: str


class JobView(ResponseModel):
    """A job as ``ps``, ``show``, ``submit`` and ``wait`` return it. The fields after
    ``command`` are there only where they apply; those from ``usage`` on only in the
    detail view (``GET /v1/jobs/{id}``)."""

    id: int
    name: str
    state: JobState
    reason: Reason
    message: str
    exit_code: int | None
    signal: int | None
    priority: int
    requests: dict[str, str]
    limits: dict[str, str]
    node: str | None
    gpus: list[int]
    cpus: list[int]
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    command: list[str]
    user: str
    attempts: int
    queue: str
    held: bool
    #: Pending: what it waits for, with the numbers (the reason's own fields).
    reason_detail: dict[str, Any] | None = None
    pieces: list[PieceView] | None = None
    gpus_simulated: bool | None = None
    cpus_shared: list[int] | None = None
    queue_position: int | None = None
    estimated_start: float | None = None
    array_id: int | None = None
    array_index: int | None = None
    array_limit: int | None = None
    dependencies: list[str] | None = None
    retries: int | None = None
    not_before: float | None = None
    #: Where it may run, when it says: GPU models (any of), node labels, nodes (replicas;
    #: ``requests`` and ``limits`` are then per node).
    gpu_models: list[str] | None = None
    node_selector: dict[str, str] | None = None
    nodes: int | None = None
    #: It checkpoints (``resumable``), and the seconds its earlier attempts ran whose work
    #: it kept (``policy: las`` preempts such jobs by attained service).
    resumable: bool | None = None
    served: float | None = None
    #: Interactive (``corral run --pty``): the socket its terminal listens on.
    pty: str | None = None
    live: LiveView | None = None
    # detail view
    usage: UsageTotals | None = None
    efficiency: Efficiency | None = None
    enforcement: JobEnforcement | None = None
    stop_signal: str | None = None
    kill_grace: float | None = None
    idle_policy: str | None = None
    workdir: str | None = None
    env: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    time_limit: int | None = None
    pids: dict[str, int] | None = None
    logs: dict[str, str] | None = None
    events: list[EventView] | None = None


class JobList(ResponseModel):
    """``GET /v1/jobs`` and ``POST /v1/jobs``."""

    jobs: list[JobView]


class CancelResult(ResponseModel):
    """One job of a cancel: what happened (``ok`` false: e.g. no such job)."""

    id: int
    result: str
    ok: bool


class CancelResults(ResponseModel):
    results: list[CancelResult]


class UpdateResult(ResponseModel):
    """One job of an update: what changed, in words."""

    id: int
    result: str


class UpdateResults(ResponseModel):
    results: list[UpdateResult]


class SelectedJob(ResponseModel):
    """One job a :class:`JobRefs` picked (``POST /v1/jobs/select``)."""

    id: int
    state: JobState
    held: bool
    user: str
    name: str
    array_id: int | None = None
    array_index: int | None = None


class Selected(ResponseModel):
    """``POST /v1/jobs/select``: the jobs a request would act on, by id; ``missing``:
    ids and tasks named one by one that no job has (``12``, ``12_3``)."""

    jobs: list[SelectedJob]
    missing: list[str] = Field(default_factory=list)


class ArrayView(ResponseModel):
    """``GET /v1/arrays/{id}``: an array as one thing. ``counts``: tasks by state;
    ``indices``: its ``--array`` indices (``0-99``); ``held``: tasks held."""

    id: int
    name: str
    user: str
    queue: str
    tasks: int
    counts: dict[str, int]
    indices: str
    held: int
    array_limit: int | None = None
    first_index: int
    last_index: int
    submitted_at: float
    started_at: float | None = None
    ended_at: float | None = None
    exit_codes: dict[str, int] = Field(default_factory=dict)


class Changed(ResponseModel):
    """``hold`` and ``release``: the jobs whose state changed (the others already were)."""

    changed: list[int]


class Enforcement(ResponseModel):
    """How the executor holds limits (cgroups, a watchdog, or not at all)."""

    mode: str
    hard: bool
    description: str
    controllers: list[str] | None = None
    cgroup_version: int | str | None = None
    containment: str | None = Field(None, description="How every process of a job is found and killed "
                                                      "when it ends, on this machine")


class RawAmounts(ResponseModel):
    capacity: int
    allocatable: int
    allocated: int
    free: int


class ResourceAmounts(ResponseModel):
    """One resource of a node, formatted (``16Gi``) and raw (canonical integers)."""

    capacity: str
    reserved: str
    allocatable: str
    allocated: str
    free: str
    raw: RawAmounts


class NodeGpu(ResponseModel):
    index: int
    uuid: str
    model: str
    memory: int
    memory_human: str
    simulated: bool
    job: int | None
    #: Peer GPU index -> topology level (``NVLINK``, ``PCIE`` ...).
    links: dict[str, str]


class NodeCore(ResponseModel):
    id: int
    job: int | None


class NodeView(ResponseModel):
    """``GET /v1/nodes``: one node's capacity and who holds what."""

    name: str
    #: Ready, NotReady, Lost (the engine's word) or Draining (``corral drain``).
    state: str = "Ready"
    #: Where other nodes reach it (a gang's MASTER_ADDR); None on one machine.
    address: str | None = None
    #: Its GPUs' model(s), comma-separated; None without GPUs.
    gpu_model: str | None = None
    #: The node's labels (what a job's node selector matches).
    labels: dict[str, str] = Field(default_factory=dict)
    resources: dict[str, ResourceAmounts]
    gpus: list[NodeGpu]
    cores: list[NodeCore]
    gpu_source: str
    simulated_gpus: bool
    policy: str
    engine: str
    enforcement: Enforcement | None
    idle_gpu: str | None
    access: AccessView


class NodeList(ResponseModel):
    nodes: list[NodeView]


class DrainAnswer(ResponseModel):
    """``POST /v1/nodes/{name}/drain`` and ``.../undrain``."""

    node: str
    state: str
    #: False when the node already was (not) draining.
    changed: bool
    #: Jobs still running on it (they run on; nothing new starts there while draining).
    running: list[int]


class GpuSampleView(ResponseModel):
    index: int
    utilization: float | None
    memory_used: int | None
    power: float | None
    #: pid -> GPU memory, bytes.
    processes: dict[str, int]


class TopJob(ResponseModel):
    id: int
    name: str
    user: str
    reason: Reason
    message: str
    started_at: float | None
    requests: dict[str, str]
    limits: dict[str, str]
    node: str | None
    gpus: list[int]
    cpus: list[int]
    live: LiveView | None


class TopGpu(ResponseModel):
    node: str
    index: int
    model: str
    memory: int
    simulated: bool
    job: int | None
    sample: GpuSampleView | None


class Top(ResponseModel):
    """``GET /v1/top``: running jobs with their latest readings, and every GPU's."""

    jobs: list[TopJob]
    gpus: list[TopGpu]
    pending: int
    sample_interval: float | None
    enforcement: Enforcement | None
    now: float


class QueueView(ResponseModel):
    """One queue: quota (formatted amounts; None: no limit), usage, what waits."""

    name: str
    policy: str
    nominal: dict[str, str] | None
    borrowing_limit: dict[str, str] | None
    lending_limit: dict[str, str] | None
    max_user_gpus: int | None
    max_user_jobs: int | None
    usage: dict[str, str]
    borrowed: dict[str, str]
    running: int
    pending: int


class Queues(ResponseModel):
    """``GET /v1/queues``; ``fair_share``: each user's decayed share of the past (0..1)."""

    queues: list[QueueView]
    fair_share: dict[str, float]
    backfill: bool
    preemption: bool


class UsageLine(ResponseModel):
    """One user's, job's or queue's usage over the window."""

    key: str
    jobs: int
    hours: float
    cpu_hours: float
    cpu_used_hours: float
    memory_gib_hours: float
    gpu_hours: float
    energy_kwh: float
    wasted_gpu_hours: float
    cost: float | None
    name: str
    user: str
    cpu_efficiency: float | None


class UsageReport(ResponseModel):
    """``GET /v1/usage``."""

    since: float
    now: float
    window: int
    by: str
    currency: str | None
    lines: list[UsageLine]
    total: UsageLine


class Pruned(ResponseModel):
    """``POST /v1/prune``: the deleted jobs and the age used, in seconds."""

    deleted: list[int]
    older_than: int


class ShutdownAnswer(ResponseModel):
    """``POST /v1/shutdown``: the daemon stops; its running jobs keep running."""

    ok: bool
    running_jobs_keep_running: int
