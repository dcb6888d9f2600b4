"""Malformed requests: a catalog of requests no client should send, every one of them
answered, none of them stored, the daemon serving throughout.

Each case is sent over the daemon's socket as it is. *Handled* means an answer with a
4xx (503/507 only where a case says so) whose body is corral's error form, ``{"error":
"one line", "lines": [...]}``, with a one-line ``error`` that names the field or value
the case got wrong. Protocol-level cases (a garbage request line, oversized headers, a
``Content-Length`` that lies) are answered by the HTTP server itself: there any short
4xx or a clean close counts. A 2xx, a 5xx or no answer at all is a failure, as is a
daemon that stops serving, a job stored by a malformed request, a store that is not
intact afterwards or a traceback in ``daemon.log``.

The catalog is generated: each route's fields crossed with the classes of bad value
(wrong JSON types, integers at and past 2**63, zero and negative ids, NaN and Infinity,
huge strings, NUL bytes and lone surrogates, deep nesting, invalid and truncated JSON,
wrong content types, oversized bodies, YAML bombs and tags, bad quantities, durations,
priorities, arrays and dependencies, unknown paths and methods, HTTP that is not HTTP).
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from harness import Answer, Home, Result, parse_answer

NAME = "malformed"

#: A body that is not given (``None`` is JSON ``null``).
NOBODY = object()
#: What a handled non-protocol case answers with: any 4xx.
CLIENT_ERRORS = tuple(range(400, 500))
#: The largest one-line error we call readable.
MAX_LINE = 1000
MIB = 2**20


@dataclass
class Case:
    """One malformed request: ``body`` is sent as JSON, ``raw`` as bytes, ``wire`` as the
    whole request (head and body, exactly as given)."""

    name: str
    kind: str                                   # the class of bad input (short mode keeps each)
    method: str = "GET"
    path: str = "/v1/health"
    body: Any = NOBODY
    raw: bytes | None = None
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    wire: bytes | None = None
    protocol: bool = False                      # the HTTP server answers (or closes) itself
    statuses: tuple[int, ...] = CLIENT_ERRORS
    mention: str | tuple[str, ...] | None = None  # the error line must name this (or one of these)
    half_close: bool = False                    # shut our side after sending (EOF mid-request)
    stall: float = 0.0                          # hold the connection open this long, unanswered
    timeout: float = 15.0
    heavy: bool = False                         # worth a health timing right after
    pipelined: bool = False                     # judge the last of several answers

    def request_bytes(self, keep_alive: bool = False) -> bytes:
        """The request as sent; ``keep_alive``: without ``Connection: close`` (another
        request may follow on the connection)."""
        if self.wire is not None:
            return self.wire
        if self.raw is not None:
            payload = self.raw
        elif self.body is NOBODY:
            payload = b""
        else:
            payload = json.dumps(self.body).encode()
        head = [f"{self.method} {self.path} HTTP/1.1", "Host: corral"] + ([] if keep_alive else ["Connection: close"])
        if self.content_type is not None:
            head.append(f"Content-Type: {self.content_type}")
        if not any(k.lower() in ("content-length", "transfer-encoding") for k in self.headers):
            head.append(f"Content-Length: {len(payload)}")
        head += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload


# -- the catalog ---------------------------------------------------------------------------

#: A held job document: if a case were ever accepted, its job would not run.
def held(**spec: Any) -> dict:
    return {"spec": {"command": ["true"], "hold": True, **spec}}


def with_spec(key: str, value: Any) -> dict:
    return held(**{key: value})


#: Bad job ids (as JSON values) with a short label; each one must be refused wherever an
#: id goes. Raw JSON text where Python's json cannot write the value.
BAD_IDS: list[tuple[str, Any]] = [
    ("true", True), ("false", False), ("null", None), ("string", "1"), ("float", 1.0), ("fraction", 1.5),
    ("zero", 0), ("negative", -1), ("2**63", 2**63), ("2**70", 2**70), ("-2**63", -2**63), ("list", [1]),
    ("object", {"id": 1}), ("empty string", ""), ("1MB string", "9" * MIB),
]
BAD_ID_TOKENS: list[tuple[str, str]] = [
    ("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("1e400", "1e400"), ("1e3", "1e3"),
    ("-0", "-0"), ("5000 digits", "9" * 5000),
]


def id_cases() -> Iterator[Case]:
    """Every bad id in every list of ids (cancel, hold, release, update), and bad lists."""
    for route in ("cancel", "hold", "release", "update"):
        extra = {"priority": -1} if route == "update" else {}
        path = f"/v1/jobs/{route}"
        for label, value in BAD_IDS:
            yield Case(f"{route} ids=[{label}]", "ids", "POST", path, {"ids": [value], **extra}, mention="ids[0]")
        for label, token in BAD_ID_TOKENS:
            # "5000 digits" is more than Python's int() takes: the body does not parse.
            yield Case(f"{route} ids=[{label}]", "ids", "POST", path,
                       raw=f'{{"ids": [{token}]{", " + json.dumps(extra)[1:-1] if extra else ""}}}'.encode(),
                       mention=None if label == "5000 digits" else "ids[0]")
        for label, value in (("empty", []), ("string", "1"), ("object", {"1": 1}), ("null", None),
                             ("number", 1), ("nested", [[1]]), ("second bad", [1, True])):
            yield Case(f"{route} ids={label}", "ids", "POST", path, {"ids": value, **extra}, mention="ids")
        yield Case(f"{route} missing ids", "body", "POST", path, dict(extra) or {}, mention="ids")
        yield Case(f"{route} unknown field", "body", "POST", path, {"ids": [1], "all": True, **extra},
                   mention="all")


def update_cases() -> Iterator[Case]:
    path = "/v1/jobs/update"
    for field_, values in (
            ("priority", [("2**70", 2**70), ("true", True), ("1.5", 1.5), ("list", [1]), ("huge", 10**7),
                          ("class?", "no-such-class"), ("1e3 string", "1e3"), ("NUL", "1\x00")]),
            ("time", [("2x", "2x"), ("negative", -1), ("zero", 0), ("2**70", 2**70), ("true", True),
                      ("list", []), ("100000y", "100000d"), ("bad slurm", "1-25"), ("surrogate", "\ud800")]),
            ("queue", [("upper", "UPPER"), ("empty", ""), ("number", 5), ("long", "q" * 100),
                       ("unknown", "no-such-queue"), ("newline", "a\nb")])):
        for label, value in values:
            yield Case(f"update {field_}={label}", "update", "POST", path, {"ids": [1], field_: value},
                       mention=field_)
    yield Case("update nothing to change", "update", "POST", path, {"ids": [1]})
    yield Case("update NaN time", "update", "POST", path, raw=b'{"ids": [1], "time": NaN}', mention="time")
    yield Case("update Infinity time", "update", "POST", path, raw=b'{"ids": [1], "time": Infinity}',
               mention="time")


#: (label, spec field, value, what the error names) for one job document each.
DOC_FIELDS: list[tuple[str, str, Any, str]] = [
    # command
    ("empty argv", "command", [], "command"), ("empty string", "command", "", "command"),
    ("blank", "command", "   ", "command"), ("number arg", "command", [1], "command[0]"),
    ("null arg", "command", [None], "command[0]"), ("NUL arg", "command", ["a\x00b"], "command[0]"),
    ("NUL string", "command", "a\x00b", "command"), ("surrogate arg", "command", ["\ud800"], "command[0]"),
    ("surrogate string", "command", "echo \udcff", "command"), ("object", "command", {"a": 1}, "command"),
    ("number", "command", 5, "command"), ("true", "command", True, "command"),
    ("empty program", "command", [""], "command[0]"), ("1MB arg", "command", ["x" * MIB], "command[0]"),
    ("deep", "command", [[[["x"]]]], "command[0]"),
    # env
    ("digit key", "env", {"1A": "x"}, "env"), ("A=B key", "env", {"A=B": "x"}, "env"),
    ("empty key", "env", {"": "x"}, "env"), ("number value", "env", {"A": 1}, "env.A"),
    ("null value", "env", {"A": None}, "env.A"), ("NUL value", "env", {"A": "x\x00y"}, "env.A"),
    ("NUL key", "env", {"A\x00": "x"}, "env"), ("surrogate value", "env", {"A": "\ud800"}, "env.A"),
    ("surrogate key", "env", {"\ud800": "x"}, "env"), ("string", "env", "A=B", "env"),
    ("item without name", "env", [{"value": "x"}], "env[0].name"),
    ("item extra field", "env", [{"name": "A", "value": "x", "from": 1}], "env[0].from"),
    ("duplicate item", "env", [{"name": "A"}, {"name": "A"}], "spec.env"),
    ("1MB value", "env", {"A": "x" * MIB}, "env.A"),
    # working directory
    ("empty workdir", "workingDir", "", "workingDir"), ("number workdir", "workingDir", 5, "workingDir"),
    ("NUL workdir", "workingDir", "/a\x00b", "workingDir"), ("missing workdir", "workingDir", "/no/such/dir",
                                                              "workdir"),
    ("newline workdir", "workingDir", "/no/such\ndir", "workdir"),
    ("surrogate workdir", "workingDir", "/tmp/\ud800", "workingDir"),
    ("1MB workdir", "workingDir", "/" + "d" * MIB, "workingDir"),
    ("both workdir spellings", "workdir", "/", "workdir"),
    # priority
    ("priority 2**63", "priority", 2**63, "priority"), ("priority 2**70", "priority", 2**70, "priority"),
    ("priority fraction", "priority", 1.5, "priority"), ("priority true", "priority", True, "priority"),
    ("priority list", "priority", [], "priority"), ("priority object", "priority", {}, "priority"),
    ("priority over max", "priority", 1_000_001, "priority"), ("priority 1e3 string", "priority", "1e3", "priority"),
    ("unknown priority class", "priority", "ultra-urgent", "priority"),
    ("priority NUL", "priority", "high\x00", "priority"),
    # time limit
    ("time 2x", "timeLimit", "2x", "timeLimit"), ("time negative", "timeLimit", -1, "timeLimit"),
    ("time zero", "timeLimit", 0, "timeLimit"), ("time 2**70", "timeLimit", 2**70, "timeLimit"),
    ("time true", "timeLimit", True, "timeLimit"), ("time list", "timeLimit", [], "timeLimit"),
    ("time -5m", "timeLimit", "-5m", "timeLimit"), ("time 1-25", "timeLimit", "1-25", "timeLimit"),
    ("time 1.5.5h", "timeLimit", "1.5.5h", "timeLimit"), ("time huge days", "timeLimit", "9" * 30 + "d",
                                                          "timeLimit"),
    # resources
    ("resources string", "resources", "cpu=1", "resources"), ("resources list", "resources", [], "resources"),
    ("requests string", "resources", {"requests": "cpu"}, "requests"),
    ("cpu -1", "resources", {"requests": {"cpu": "-1"}}, "cpu"),
    ("cpu abc", "resources", {"requests": {"cpu": "abc"}}, "cpu"),
    ("cpu zero", "resources", {"requests": {"cpu": 0}}, "cpu"),
    ("cpu true", "resources", {"requests": {"cpu": True}}, "cpu"),
    ("cpu null", "resources", {"requests": {"cpu": None}}, "cpu"),
    ("cpu 1e400 string", "resources", {"requests": {"cpu": "1e400"}}, "cpu"),
    ("cpu NaN string", "resources", {"requests": {"cpu": "NaN"}}, "cpu"),
    ("cpu Infinity string", "resources", {"requests": {"cpu": "Infinity"}}, "cpu"),
    ("cpu 2**70", "resources", {"requests": {"cpu": 2**70}}, "cpu"),
    ("cpu list", "resources", {"requests": {"cpu": [1]}}, "cpu"),
    ("memory 1e400 string", "resources", {"requests": {"memory": "1e400"}}, "memory"),
    ("memory huge", "resources", {"requests": {"memory": "9" * 30 + "Gi"}}, "memory"),
    ("memory bad unit", "resources", {"requests": {"memory": "16GG"}}, "memory"),
    ("gpu 2.5", "resources", {"requests": {"nvidia.com/gpu": 2.5}}, "nvidia.com/gpu"),
    ("gpu -1", "resources", {"requests": {"nvidia.com/gpu": -1}}, "nvidia.com/gpu"),
    ("gpu 3 of 2", "resources", {"requests": {"nvidia.com/gpu": 3}}, "nvidia.com/gpu"),
    ("cpu 1000 of 2", "resources", {"requests": {"cpu": "1000"}}, "cpu"),
    ("memory 1Pi", "resources", {"requests": {"memory": "1Pi"}}, "memory"),
    ("unknown resource", "resources", {"requests": {"bogus.io/x": 1}}, "bogus.io/x"),
    ("duplicate resource", "resources", {"requests": {"cpu": "1", "cpus": "2"}}, "cpu"),
    ("request over limit", "resources", {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}, "cpu"),
    ("gpu request != limit", "resources", {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 2}},
     "nvidia.com/gpu"),
    ("resources unknown field", "resources", {"requests": {}, "limitz": {}}, "limitz"),
    ("resource name number", "resources", {"requests": {"1": 1}}, "1"),
    # signals, grace, idle GPU
    ("signal KILL", "stopSignal", "KILL", "stopSignal"), ("signal NOPE", "stopSignal", "NOPE", "stopSignal"),
    ("signal 0", "stopSignal", 0, "stopSignal"), ("signal 99", "stopSignal", 99, "stopSignal"),
    ("signal 2**70", "stopSignal", 2**70, "stopSignal"), ("signal list", "stopSignal", [], "stopSignal"),
    ("grace -1", "gracePeriod", -1, "gracePeriod"), ("grace abc", "gracePeriod", "abc", "gracePeriod"),
    ("grace 2**70", "gracePeriod", 2**70, "gracePeriod"),
    ("idleGpu string", "idleGpu", "off", "idleGpu"), ("idleGpu unknown", "idleGpu", {"bogus": 1}, "bogus"),
    ("idleGpu threshold", "idleGpu", {"threshold": "abc"}, "threshold"),
    ("idleGpu window", "idleGpu", {"window": -1}, "window"),
    ("idleGpu action", "idleGpu", {"actions": ["explode"]}, "actions"),
    # queue
    ("queue upper", "queue", "UPPER", "queue"), ("queue empty", "queue", "", "queue"),
    ("queue number", "queue", 5, "queue"), ("queue unknown", "queue", "no-such-queue", "queue"),
    # arrays
    ("array 0-99999999999", "array", "0-99999999999", "array"), ("array 5-1", "array", "5-1", "array"),
    ("array a-b", "array", "a-b", "array"), ("array %0", "array", "0-10%0", "array"),
    ("array step 0", "array", "0-10:0", "array"), ("array -1", "array", -1, "array"),
    ("array empty", "array", "", "array"), ("array true", "array", True, "array"),
    ("array fraction", "array", 1.5, "array"), ("array 0-", "array", "0-", "array"),
    ("array arabic digits", "array", "\u0663-\u0665", "array"), ("array too many", "array", "0-20000", "array"),
    ("array 2**70", "array", 2**70, "array"),
    # dependencies
    ("after abc", "dependencies", "abc", "after"), ("after 0", "dependencies", 0, "after"),
    ("after -1", "dependencies", -1, "after"), ("after bogus type", "dependencies", "afterbogus:1", "after"),
    ("after [true]", "dependencies", [True], "after"), ("after no job", "dependencies", [{"type": "afterok"}],
                                                        "after"),
    ("after object", "dependencies", {"job": 1}, "after"), ("after 2**63", "dependencies", 2**63, "after"),
    ("after 2**70 string", "dependencies", "afterany:" + str(2**70), "after"),
    ("after unknown job", "dependencies", 999_999, "after"),
    # retries, flags, placement
    ("retries -1", "retries", -1, "retries"), ("retries 101", "retries", 101, "retries"),
    ("retries 2**70", "retries", 2**70, "retries"), ("retries true", "retries", True, "retries"),
    ("hold yes", "hold", "yes", "hold"), ("hold 1", "hold", 1, "hold"),
    ("preemptible no", "preemptible", "no", "preemptible"), ("requeue 0", "requeue", 0, "requeue"),
    ("gpuModels number", "gpuModels", 5, "gpuModels"), ("gpuModels [1]", "gpuModels", [1], "gpuModels"),
    ("gpuModels without gpus", "gpuModels", ["A100"], "gpuModels"),
    ("nodeSelector string", "nodeSelector", "zone=a", "nodeSelector"),
    ("nodeSelector number value", "nodeSelector", {"zone": 1}, "nodeSelector"),
    ("nodes 0", "nodes", 0, "nodes"), ("nodes -1", "nodes", -1, "nodes"), ("nodes 2**70", "nodes", 2**70, "nodes"),
    ("nodes 5 of 1", "nodes", 5, "nodes"), ("nodes string", "nodes", "two", "nodes"),
    ("unknown spec field", "comand", ["true"], "comand"),
]

#: Whole documents that are wrong above the spec.
BAD_DOCUMENTS: list[tuple[str, Any, str | None]] = [
    ("apiVersion v2", {"apiVersion": "v2", **held()}, "apiVersion"),
    ("kind Pod", {"kind": "Pod", **held()}, "kind"),
    ("metadata string", {"metadata": "x", **held()}, "metadata"),
    ("name 1MB", {"metadata": {"name": "n" * MIB}, **held()}, "metadata.name"),
    ("name newline", {"metadata": {"name": "a\nb"}, **held()}, "metadata.name"),
    ("name surrogate", {"metadata": {"name": "\ud800"}, **held()}, "metadata.name"),
    ("name number", {"metadata": {"name": 5}, **held()}, "metadata.name"),
    ("labels list", {"metadata": {"labels": []}, **held()}, "metadata.labels"),
    ("label bad key", {"metadata": {"labels": {"bad key!": "v"}}, **held()}, "metadata.labels"),
    ("label number value", {"metadata": {"labels": {"k": 1}}, **held()}, "metadata.labels.k"),
    ("label newline value", {"metadata": {"labels": {"k": "v\n"}}, **held()}, "metadata.labels.k"),
    ("label surrogate value", {"metadata": {"labels": {"k": "\udc80"}}, **held()}, "metadata.labels.k"),
    ("spec string", {"spec": "true"}, "spec"),
    ("spec list", {"spec": []}, "spec"),
    ("spec null", {"spec": None}, "spec"),
    ("no spec", {"metadata": {"name": "x"}}, "spec"),
    ("no command", {"spec": {"hold": True}}, "spec.command"),
    ("unknown top field", {"status": {}, **held()}, "status"),
    ("both workdir spellings", {"spec": {"command": ["true"], "hold": True, "workdir": "/", "workingDir": "/"}},
     "workingDir"),
]


def submit_cases() -> Iterator[Case]:
    path = "/v1/jobs"
    for label, key, value, mention in DOC_FIELDS:
        if label == "both workdir spellings":
            continue                                   # a whole document below
        yield Case(f"submit spec.{key} {label}", "document", "POST", path, {"jobs": [with_spec(key, value)]},
                   mention=mention)
    for label, document, mention in BAD_DOCUMENTS:
        yield Case(f"submit document {label}", "document", "POST", path, {"jobs": [document]}, mention=mention)
    # A bad job in a batch of good ones: the batch is refused, the good ones not stored.
    yield Case("submit batch second bad", "document", "POST", path,
               {"jobs": [held(), with_spec("command", []), held()]}, mention="jobs[1]")
    # The CLI's flags form.
    for label, flags, mention in (
            ("command number", {"command": 5}, "command"), ("requests string", {"command": ["x"], "requests": "x"},
                                                            "requests"),
            ("env number", {"command": ["x"], "env": {"A": 1}}, "env.A"),
            ("env NUL", {"command": ["x"], "env": {"A": "\x00"}}, "env.A"),
            ("priority true", {"command": ["x"], "priority": True}, "priority"),
            ("time list", {"command": ["x"], "time": []}, "time"),
            ("signal object", {"command": ["x"], "signal": {}}, "signal"),
            ("gpus A100:x", {"command": ["x"], "gpus": "A100:x"}, "gpus"),
            ("gpus 2**70", {"command": ["x"], "gpus": 2**70}, "gpus"),
            ("gpus -1", {"command": ["x"], "gpus": -1}, "gpus"),
            ("gpu_models number", {"command": ["x"], "gpu_models": 5}, "gpu_models"),
            ("nodes string", {"command": ["x"], "nodes": "x"}, "nodes"),
            ("retries 2**70", {"command": ["x"], "retries": 2**70}, "retries"),
            ("after 2**63", {"command": ["x"], "after": 2**63}, "after"),
            ("array huge", {"command": ["x"], "array": "0-99999999999"}, "array"),
            ("unknown flag", {"command": ["x"], "gpu": 1}, "gpu"),
            ("no command", {"hold": True}, "command"),
            ("hold string", {"command": ["x"], "hold": "yes"}, "hold")):
        yield Case(f"submit flags {label}", "flags", "POST", path, {"jobs": [{"flags": {"hold": True, **flags}}]},
                   mention=mention)
    yield Case("submit flags list", "flags", "POST", path, {"jobs": [{"flags": []}]}, mention="flags")
    yield Case("submit flags null", "flags", "POST", path, {"jobs": [{"flags": None}]}, mention="flags")
    yield Case("submit flags and spec", "flags", "POST", path, {"jobs": [{"flags": {"command": ["x"]}, **held()}]},
               mention="flags")
    # The request around the jobs.
    for label, body, mention in (
            ("jobs empty", {"jobs": []}, "jobs"), ("jobs object", {"jobs": {}}, "jobs"),
            ("jobs string", {"jobs": "true"}, "jobs"), ("jobs null", {"jobs": None}, "jobs"),
            ("job string", {"jobs": ["echo hi"]}, "jobs[0]"), ("job number", {"jobs": [1]}, "jobs[0]"),
            ("job null", {"jobs": [None]}, "jobs[0]"), ("job list", {"jobs": [[]]}, "jobs[0]"),
            ("jobs and yaml", {"jobs": [held()], "yaml": "spec: {}"}, "yaml"), ("neither", {}, "yaml"),
            ("yaml number", {"yaml": 5}, "yaml"), ("yaml empty", {"yaml": ""}, "no job documents"),
            ("source number", {"jobs": [held()], "source": 5}, "source"),
            ("default_workdir number", {"jobs": [held()], "default_workdir": 5}, "default_workdir"),
            ("default_workdir NUL", {"jobs": [held()], "default_workdir": "/\x00"}, "workdir"),
            ("base_env NUL key", {"jobs": [held()], "base_env": {"A\x00": "x"}}, "base_env"),
            ("base_env A=B key", {"jobs": [held()], "base_env": {"A=B": "x"}}, "base_env"),
            ("base_env empty key", {"jobs": [held()], "base_env": {"": "x"}}, "base_env"),
            ("base_env NUL value", {"jobs": [held()], "base_env": {"A": "x\x00"}}, "base_env.A"),
            ("base_env number value", {"jobs": [held()], "base_env": {"A": 1}}, "base_env.A"),
            ("base_env null value", {"jobs": [held()], "base_env": {"A": None}}, "base_env.A"),
            ("base_env list", {"jobs": [held()], "base_env": ["A=B"]}, "base_env"),
            ("base_env surrogate value", {"jobs": [held()], "base_env": {"A": "\ud800"}}, "base_env.A"),
            ("base_env surrogate key", {"jobs": [held()], "base_env": {"\udcff": "x"}}, "base_env"),
            ("idempotency_key empty", {"jobs": [held()], "idempotency_key": ""}, "idempotency_key"),
            ("idempotency_key spaces", {"jobs": [held()], "idempotency_key": "a b"}, "idempotency_key"),
            ("idempotency_key 129", {"jobs": [held()], "idempotency_key": "k" * 129}, "idempotency_key"),
            ("idempotency_key number", {"jobs": [held()], "idempotency_key": 5}, "idempotency_key"),
            ("unknown field", {"jobs": [held()], "priority": 5}, "priority"),
            ("unknown field surrogate", {"jobs": [held()], "\ud800": 1}, "invalid key in request body"),
            ("unknown field newline", {"jobs": [held()], "a\nb": 1}, "unknown field"),
            ("body list", [held()], "request body"), ("body string", "jobs", "request body"),
            ("body null", None, "request body")):
        yield Case(f"submit {label}", "submit", "POST", path, body, mention=mention)


def yaml_cases() -> Iterator[Case]:
    path = "/v1/jobs"
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] + [
        f'{chr(98 + i)}: &{chr(98 + i)} [{",".join(["*" + chr(97 + i)] * 9)}]' for i in range(8)]
    small = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    deep_flow = "spec: {command: [true], env: " + "[" * 70 + "]" * 70 + "}\n"
    deep_block = "spec:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(70)) + "  " * 71 + "x: 1\n"
    for label, text, mention in (
            ("billion laughs", "\n".join(laughs) + "\n", "aliases"),
            (f"{len(small.encode())}-byte alias bomb", small, "aliases"),
            ("alias bomb in spec", "x: &x [" + ",".join(["y"] * 50) + "]\n" + "".join(
                f"x{i}: &x{i} [{','.join(['*x' if i == 0 else f'*x{i - 1}'] * 50)}]\n" for i in range(4))
             + "spec: {command: [true], hold: true, env: *x3}\n", "aliases"),
            ("deeper than 64 (flow)", deep_flow, "levels"),
            ("deeper than 64 (block)", deep_block, "levels"),
            ("10000 [", "[" * 10_000, "<input>"),
            ("python object tag", "!!python/object/apply:os.system ['true']\n", "<input>"),
            ("python object in spec", "spec: {command: !!python/object:os.system {}, hold: true}\n", "<input>"),
            ("python name tag", "spec: {command: [true], hold: !!python/name:os.system }\n", "<input>"),
            ("unknown tag", "spec: !corral/job {command: [true]}\n", "<input>"),
            ("a list", "- a\n- b\n", "job"), ("a string", "just words\n", "job"), ("a number", "42\n", "job"),
            ("invalid syntax", "spec: [\n", "invalid YAML"), ("tab indent", "spec:\n\tcommand: [true]\n", "<input>"),
            ("NUL", "spec: {command: [\"a\x00b\"], hold: true}\n", "<input>"),
            ("surrogate", "spec: {command: [\"\ud800\"], hold: true}\n", "yaml"),
            ("escaped surrogate", 'spec: {command: ["\\ud800"], hold: true}\n', "invalid YAML"),
            ("binary tag", "spec: {command: !!binary aGVsbG8=, hold: true}\n", "command"),
            ("set tag", "spec: {command: !!set {a, b}, hold: true}\n", "command"),
            ("timestamp arg", "spec: {command: [echo, 2020-01-01], hold: true}\n", "command[1]"),
            ("unhashable key", "? [a, b]\n: c\n", "<input>"),
            ("number keys", "1: 2\n", "1"),
            ("nan priority", "spec: {command: ['true'], hold: true, priority: .nan}\n", "priority"),
            ("inf memory", "spec: {command: ['true'], hold: true, resources: {requests: {memory: .inf}}}\n",
             "memory"),
            ("second document bad", "spec: {command: ['true'], hold: true}\n---\nspec: {comand: ['true']}\n",
             "document 2"),
            ("only comments", "# nothing\n", "no job documents"),
            ("1MB scalar", "spec: {command: ['true'], hold: true, priority: " + "9" * MIB + "}\n", "line 1"),
            ("impossible date", "spec: {command: [echo, 2020-13-45], hold: true}\n", "line 1"),
            ("impossible date behind an alias", "d: &d 2021-02-30\nspec: {command: [echo, *d], hold: true}\n",
             "line 1"),
            ("float tag on a word", "spec: {command: ['true'], hold: true, priority: !!float abc}\n", "<input>"),
            ("int tag on a word", "spec: {command: ['true'], hold: true, priority: !!int abc}\n", "<input>"),
            ("merge key bomb", "a: &a {x: 1}\nb: &b {<<: [*a, *a, *a]}\nspec: {<<: *b}\n", None)):
        yield Case(f"yaml {label}", "yaml", "POST", path, {"yaml": text}, mention=mention,
                   heavy=("bomb" in label or "laughs" in label) and "merge" not in label)
    yield Case("yaml source newline", "yaml", "POST", path, {"yaml": "spec: [\n", "source": "a\nb.yaml"},
               mention="invalid YAML")
    yield Case("yaml source surrogate", "yaml", "POST", path, {"yaml": "spec: [\n", "source": "\ud800.yaml"},
               mention="source")
    yield Case("yaml source 1MB", "yaml", "POST", path, {"yaml": "spec: [\n", "source": "s" * MIB},
               mention="invalid YAML")


def json_cases() -> Iterator[Case]:
    """The body as text: what does not parse, what parses into the wrong thing."""
    for route in ("/v1/jobs", "/v1/jobs/cancel", "/v1/prune"):
        short = route.rsplit("/", 1)[-1]
        for label, raw in (("invalid", b'{"ids": [1,'), ("truncated", b'{"jobs": [{"spec": {"comm'),
                           ("single quotes", b"{'ids': [1]}"), ("trailing comma", b'{"ids": [1],}'),
                           ("whitespace only", b"   \n"), ("bare word", b"cancel"),
                           ("10000 [", b"[" * 10_000), ("10000 nested objects", b'{"a":' * 10_000),
                           ("invalid UTF-8", b'{"ids": ["\xff\xfe"]}'),
                           ("5000-digit int", b'{"ids": [' + b"9" * 5000 + b"]}"),
                           ("NUL byte", b'{"ids": [1]}\x00'), ("two documents", b'{"ids": [1]} {"ids": [2]}')):
            yield Case(f"{short} json {label}", "json", "POST", route, raw=raw, mention="request body")
        if route != "/v1/prune":    # an empty prune body is "no body": prune with the default age
            yield Case(f"{short} empty body", "json", "POST", route, raw=b"", mention="request body")
    # Deep but parseable JSON: errors that show the value must not recurse into it.
    for depth in (200, 500, 800, 900, 950, 990):
        nested = b"[" * depth + b"1" + b"]" * depth
        # Parsed, or too deep for the decoder where the request is read: either is named.
        yield Case(f"cancel ids nested {depth} deep", "json", "POST", "/v1/jobs/cancel",
                   raw=b'{"ids": ' + nested + b"}", mention=("ids", "nested too deeply"))
        yield Case(f"submit env nested {depth} deep", "json", "POST", "/v1/jobs",
                   raw=b'{"jobs": [{"spec": {"command": ["true"], "hold": true, "env": ' + nested + b"}}]}",
                   mention=("env", "nested too deeply"))
    # Content types.
    body = {"ids": [1]}
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  "application/xml", "application/jsonx", None):
        yield Case(f"cancel content-type {ctype or 'missing'}", "content-type", "POST", "/v1/jobs/cancel", body,
                   content_type=ctype, mention="Content-Type")
    yield Case("submit content-type text/yaml", "content-type", "POST", "/v1/jobs",
               raw=b"spec: {command: [true], hold: true}\n", content_type="text/yaml", mention="Content-Type")


def size_cases() -> Iterator[Case]:
    big = b'{"jobs": [{"spec": {"command": ["' + b"x" * (5 * MIB) + b'"], "hold": true}}]}'
    yield Case("submit 5 MiB body", "size", "POST", "/v1/jobs", raw=big, statuses=(413,), mention="too large",
               heavy=True)
    yield Case("cancel 5 MiB body", "size", "POST", "/v1/jobs/cancel", raw=b'{"ids": [' + b"1," * (5 * MIB // 2)
               + b"1]}", statuses=(413,), mention="too large", heavy=True)
    yield Case("yaml 5 MiB body", "size", "POST", "/v1/jobs", {"yaml": "#" * (5 * MIB)}, statuses=(413,),
               mention="too large", heavy=True)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in [b"x" * 65536] * 80) + b"0\r\n\r\n"
    yield Case("submit 5 MiB chunked body", "size", "POST", "/v1/jobs", raw=chunked,
               headers={"Transfer-Encoding": "chunked"}, statuses=(413,), mention="too large", heavy=True)
    # Declared larger than the limit, nothing sent: refused on the header alone (also
    # before /v1/shutdown could act).
    for route in ("/v1/jobs", "/v1/shutdown", "/v1/nodes/vm/drain"):
        yield Case(f"{route} declares 5 MiB", "size", wire=(
            f"POST {route} HTTP/1.1\r\nHost: corral\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {5 * MIB}\r\n\r\n").encode(), statuses=(413,), mention="too large")
    yield Case("ids 1 MB string", "size", "POST", "/v1/jobs/cancel", {"ids": ["x" * MIB]}, mention="ids[0]")
    yield Case("1 MB unknown field name", "size", "POST", "/v1/jobs/cancel", {"k" * MIB: 1}, mention="unknown field")
    yield Case("100k ids, one bad", "size", "POST", "/v1/jobs/cancel", {"ids": [1] * 100_000 + [0]},
               mention="ids[100000]")


def query_cases() -> Iterator[Case]:
    cases = [
        ("jobs limit -1", "/v1/jobs?limit=-1", "limit"), ("jobs limit abc", "/v1/jobs?limit=abc", "limit"),
        ("jobs limit 2**63", f"/v1/jobs?limit={2**63}", "limit"), ("jobs limit 2**70", f"/v1/jobs?limit={2**70}",
                                                                    "limit"),
        ("jobs limit 1e3", "/v1/jobs?limit=1e3", "limit"), ("jobs limit empty", "/v1/jobs?limit=", "limit"),
        ("jobs limit NaN", "/v1/jobs?limit=NaN", "limit"), ("jobs limit true", "/v1/jobs?limit=true", "limit"),
        ("jobs limit 1.5", "/v1/jobs?limit=1.5", "limit"), ("jobs limit 1.0", "/v1/jobs?limit=1.0", "limit"),
        ("jobs limit space", "/v1/jobs?limit=%205", "limit"), ("jobs limit +5", "/v1/jobs?limit=%2B5", "limit"),
        ("jobs limit NUL", "/v1/jobs?limit=1%00", "limit"),
        ("jobs limit 5000 digits", "/v1/jobs?limit=" + "9" * 5000, "limit"),
        ("jobs state bogus", "/v1/jobs?state=Bogus", "state"), ("jobs state empty", "/v1/jobs?state=", "state"),
        ("jobs state NUL", "/v1/jobs?state=%00", "state"), ("jobs state newline", "/v1/jobs?state=Pending%0ARunning",
                                                            "state"),
        ("jobs state 10k", "/v1/jobs?state=" + "x" * 10_000, "state"),
        ("jobs state bad UTF-8", "/v1/jobs?state=%FF%FE", "state"),
        ("jobs state second bad", "/v1/jobs?state=Pending&state=Nope", "state"),
        ("wait timeout abc", "/v1/jobs/1/wait?timeout=abc", "timeout"),
        ("wait timeout inf", "/v1/jobs/1/wait?timeout=inf", "timeout"),
        ("wait timeout nan", "/v1/jobs/1/wait?timeout=nan", "timeout"),
        ("wait timeout 1e400", "/v1/jobs/1/wait?timeout=1e400", "timeout"),
        ("wait timeout empty", "/v1/jobs/1/wait?timeout=", "timeout"),
        ("logs offset -1", "/v1/jobs/1/logs?offset=-1", "offset"),
        ("logs offset abc", "/v1/jobs/1/logs?offset=abc", "offset"),
        ("logs offset 2**63", f"/v1/jobs/1/logs?offset={2**63}", "offset"),
        ("logs offset 1.5", "/v1/jobs/1/logs?offset=1.5", "offset"),
        ("logs offset 1.0", "/v1/jobs/1/logs?offset=1.0", "offset"),
        ("logs stream stdin", "/v1/jobs/1/logs?stream=stdin", "stream"),
        ("logs stream empty", "/v1/jobs/1/logs?stream=", "stream"),
        ("logs stream NUL", "/v1/jobs/1/logs?stream=stdout%00", "stream"),
        ("logs follow maybe", "/v1/jobs/1/logs?follow=maybe", "follow"),
        ("logs follow 2", "/v1/jobs/1/logs?follow=2", "follow"),
        ("usage since abc", "/v1/usage?since=abc", "since"), ("usage since -1d", "/v1/usage?since=-1d", "since"),
        ("usage since 0", "/v1/usage?since=0", "since"),
        ("usage since huge", "/v1/usage?since=" + "9" * 40 + "d", "since"),
        ("usage since NUL", "/v1/usage?since=%00", "since"), ("usage since inf", "/v1/usage?since=inf", "since"),
        ("usage by bogus", "/v1/usage?by=bogus", "by"), ("usage by empty", "/v1/usage?by=", "by"),
        ("usage by newline", "/v1/usage?by=user%0Ajob", "by"),
    ]
    for name, path, mention in cases:
        yield Case(name, "query", "GET", path, mention=mention)
    for label, value in (("-1", -1), ("abc", "abc"), ("true", True), ("list", []), ("object", {}), ("2**70", 2**70),
                         ("-5d", "-5d"), ("1-25", "1-25"), ("huge", "9" * 40 + "d"), ("surrogate", "\ud800")):
        yield Case(f"prune older_than {label}", "prune", "POST", "/v1/prune", {"older_than": value},
                   mention="older_than")
    for label, raw in (("NaN", b'{"older_than": NaN}'), ("Infinity", b'{"older_than": Infinity}'),
                       ("1e400", b'{"older_than": 1e400}')):
        yield Case(f"prune older_than {label}", "prune", "POST", "/v1/prune", raw=raw, mention="older_than")
    yield Case("prune unknown field", "prune", "POST", "/v1/prune", {"all": True}, mention="all")
    yield Case("prune body list", "prune", "POST", "/v1/prune", [], mention="request body")
    yield Case("prune body number", "prune", "POST", "/v1/prune", 30, mention="request body")


def path_cases() -> Iterator[Case]:
    ids = [("abc", "abc"), ("1e3", "1e3"), ("NUL", "%00"), ("1 NUL", "1%00"), ("23 digits", "9" * 23),
           ("2**63", str(2**63)), ("zero", "0"), ("negative", "-1"), ("1.0", "1.0"), ("hex", "0x1"),
           ("space", "%201"), ("arabic digit", "%D9%A3"), ("underscore", "1_0"), ("true", "true"),
           ("5000 digits", "9" * 5000), ("bad UTF-8", "%FF"), ("newline", "1%0A")]
    for label, value in ids:
        for suffix in ("", "/wait", "/logs"):
            yield Case(f"GET /v1/jobs/{{{label}}}{suffix}", "path", "GET", f"/v1/jobs/{value}{suffix}",
                       mention="job_id")
    yield Case("show unknown job", "path", "GET", "/v1/jobs/999999999", statuses=(404,), mention="999999999")
    yield Case("wait unknown job", "path", "GET", "/v1/jobs/999999999/wait?timeout=0", statuses=(404,),
               mention="999999999")
    yield Case("logs unknown job", "path", "GET", "/v1/jobs/999999999/logs", statuses=(404,), mention="999999999")
    for label, name in (("unknown", "nope"), ("NUL", "%00"), ("newline", "a%0Ab"), ("dots", "%2E%2E"),
                        ("300 chars", "n" * 300), ("bad UTF-8", "%FF%FE"), ("surrogate escape", "%ED%A0%80")):
        for action in ("drain", "undrain"):
            yield Case(f"{action} node {label}", "node", "POST", f"/v1/nodes/{name}/{action}", statuses=(404,),
                       mention="no such node")
    for label, path in (("unknown", "/v1/nope"), ("root", "/"), ("v2", "/v2/jobs"), ("job subpath", "/v1/jobs/1/nope"),
                        ("double slash", "//v1/jobs"), ("trailing parts", "/v1/jobs/1/wait/extra"),
                        ("dot dot", "/v1/../v1/health/.."), ("newline", "/v1/no%0Ape"), ("NUL", "/v1/%00"),
                        ("bad UTF-8", "/v1/%FF"), ("8 KiB path", "/v1/" + "p" * 8192)):
        yield Case(f"path {label}", "route", "GET", path, statuses=(404, 405), mention="not found")
    for method, path in (("DELETE", "/v1/jobs"), ("PUT", "/v1/jobs/1"), ("PATCH", "/v1/jobs/cancel"),
                         ("POST", "/v1/health"), ("POST", "/v1/queues"), ("POST", "/v1/top"), ("POST", "/v1/nodes"),
                         ("GET", "/v1/prune"), ("GET", "/v1/shutdown"), ("DELETE", "/v1/shutdown"),
                         ("GET", "/v1/nodes/vm/drain"), ("PUT", "/v1/nodes/vm/undrain"), ("POST", "/v1/usage"),
                         ("OPTIONS", "/v1/jobs"), ("TRACE", "/v1/health"), ("BREW", "/v1/health"),
                         ("DELETE", "/v1/jobs/1/logs")):
        yield Case(f"{method} {path}", "method", method, path, statuses=(405, 404), mention="not allowed")


def protocol_cases() -> Iterator[Case]:
    """HTTP itself malformed: uvicorn/h11 answer (a short 4xx) or close."""
    def p(name: str, wire: bytes, **kw: Any) -> Case:
        return Case(name, "protocol", wire=wire, protocol=True, **kw)

    head = b"GET /v1/health HTTP/1.1\r\nHost: corral\r\nConnection: close\r\n"
    yield p("garbage request line", b"\x00\x01\x02garbage\r\n\r\n")
    yield p("one word", b"HELLO\r\n\r\n")
    yield p("HTTP/0.9 request", b"GET /v1/health\r\n\r\n")
    yield p("HTTP/0.9 request, then EOF", b"GET /v1/health\r\n", half_close=True)
    yield p("HTTP/1.1 without Host", b"GET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n")
    yield p("h2c preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    yield p("TLS ClientHello", bytes.fromhex("160301012c010001280303") + b"\x00" * 64)
    yield p("non-ASCII target", b"GET /v1/jobs/\xff HTTP/1.1\r\nHost: corral\r\nConnection: close\r\n\r\n")
    yield p("space in target", b"GET /v1/jobs /1 HTTP/1.1\r\nHost: corral\r\nConnection: close\r\n\r\n")
    yield p("header without colon", head + b"BadHeader\r\n\r\n")
    yield p("header name with space", head + b"Bad Header: x\r\n\r\n")
    yield p("header value with NUL", head + b"X-A: a\x00b\r\n\r\n")
    yield p("header block over 64 KiB", head + b"X-Big: " + b"b" * (70 * 1024) + b"\r\n\r\n")
    yield p("2000 headers", head + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 32) for i in range(2000)) + b"\r\n")
    yield p("100 KiB request target", b"GET /v1/" + b"a" * (100 * 1024) + b" HTTP/1.1\r\nHost: corral\r\n\r\n")
    post = b"POST /v1/jobs/cancel HTTP/1.1\r\nHost: corral\r\nConnection: close\r\nContent-Type: application/json\r\n"
    yield p("Content-Length abc", post + b"Content-Length: abc\r\n\r\n{}")
    yield p("Content-Length -1", post + b"Content-Length: -1\r\n\r\n{}")
    yield p("Content-Length 2**70", post + b"Content-Length: " + str(2**70).encode() + b"\r\n\r\n{}")
    yield p("two Content-Lengths", post + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}")
    yield p("Content-Length and chunked", post + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            half_close=True)
    yield p("Transfer-Encoding gzip", post + b"Transfer-Encoding: gzip\r\n\r\n{}")
    yield p("bad chunk size", post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
    yield p("chunk longer than said", post + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{\"ids\":[1]}\r\n0\r\n\r\n")
    body = b'{"ids": [1]}'
    yield p("Content-Length smaller than body", post + b"Content-Length: 5\r\n\r\n" + body)
    yield p("Content-Length larger than body, then EOF", post + b"Content-Length: 1000\r\n\r\n" + body,
            half_close=True)
    yield p("Content-Length larger than body, stalled", post + b"Content-Length: 1000\r\n\r\n" + body, stall=2.0)
    yield p("headers cut short, stalled", b"POST /v1/jobs HTTP/1.1\r\nHost: cor", stall=2.0)
    yield p("chunked body cut short, then EOF", post + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"id", half_close=True)
    yield p("no bytes at all", b"", half_close=True)
    yield p("request line only, then EOF", b"POST /v1/jobs HTTP/1.1\r\n", half_close=True)
    yield p("garbage after a kept-alive request", b"GET /v1/health HTTP/1.1\r\nHost: corral\r\n\r\n"
            b"\x16\x03\x01garbage\r\n\r\n", pipelined=True)


def catalog() -> list[Case]:
    cases = [*id_cases(), *update_cases(), *submit_cases(), *yaml_cases(), *json_cases(), *size_cases(),
             *query_cases(), *path_cases(), *protocol_cases()]
    names = Counter(c.name for c in cases)
    dupes = [n for n, k in names.items() if k > 1]
    assert not dupes, f"duplicate case names: {dupes}"
    return cases


def short_catalog(cases: list[Case]) -> list[Case]:
    """The short run: every case but the id matrix's repeats (all bad ids go to cancel; hold,
    release and update get a few) and the heaviest duplicates."""
    keep = []
    for case in cases:
        if case.kind == "ids" and not case.name.startswith("cancel") and not any(
                case.name.endswith(s) for s in ("[true]", "[2**63]", "[NaN]", "ids=empty", "unknown field")):
            continue
        if case.name in ("cancel 5 MiB body", "yaml 5 MiB body", "/v1/nodes/vm/drain declares 5 MiB"):
            continue
        if case.kind == "json" and "nested" in case.name and not case.name.endswith(("900 deep", "990 deep")):
            continue
        keep.append(case)
    return keep


# -- sending and judging -------------------------------------------------------------------

def exchange(home: Home, case: Case) -> tuple[Answer, str]:
    """Send ``case``; returns the answer and how the connection ended: ``answered``,
    ``closed`` (no answer, a clean close), ``reset``, ``timeout`` (no answer in time), or
    ``stalled`` (held open ``stall`` seconds while the daemon kept serving others)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(case.timeout)
    chunks: list[bytes] = []
    how = "answered"
    try:
        sock.connect(home.socket_path)
        try:
            sock.sendall(case.request_bytes())
        except (BrokenPipeError, ConnectionResetError):
            pass                               # answered before it read everything
        if case.half_close:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if case.stall:
            served = home.serving()            # meanwhile, on another connection
            sock.settimeout(case.stall)
            try:
                chunk = sock.recv(65536)
                chunks.append(chunk)
            except socket.timeout:
                return Answer(0), "stalled" if served and home.serving() else "stalled, not serving"
            sock.settimeout(case.timeout)
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                how = "reset"
                break
            if not chunk:
                break
            chunks.append(chunk)
    except socket.timeout:
        how = "timeout"
    except OSError as exc:
        return Answer(0), f"connection failed ({exc})"
    finally:
        sock.close()
    data = b"".join(chunks)
    if not data:
        return Answer(0), "closed" if how == "answered" else how
    if case.pipelined:
        data = split_answers(data)[-1]
    return parse_answer(data), how


def split_answers(data: bytes) -> list[bytes]:
    """Several answers on one connection, each with a Content-Length (the last as it is)."""
    out = []
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                       if line.lower().startswith(b"content-length:")), None)
        if not sep or length is None or len(rest) <= length:
            out.append(data)
            return out
        out.append(data[:len(head) + 4 + length])
        data = rest[length:]


#: What follows each malformed request on the same connection in the keep-alive pass.
FOLLOW_UP = b"GET /v1/health HTTP/1.1\r\nHost: corral\r\nConnection: close\r\n\r\n"


def keep_alive_pass(home: Home, cases: list[Case]) -> tuple[int, int, list[str]]:
    """Each (non-protocol) case on a kept-alive connection, a valid request right behind
    it: the malformed one is answered as before, and the next one is served -- unless the
    first answer closed the connection (a 413 does, its body unread). Returns the cases
    tried, how many were followed by a served request, and what went wrong."""
    tried, followed, problems = 0, 0, []
    for case in cases:
        if case.protocol or case.wire is not None:
            continue
        tried += 1
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(case.timeout)
        chunks = []
        try:
            sock.connect(home.socket_path)
            try:
                sock.sendall(case.request_bytes(keep_alive=True) + FOLLOW_UP)
            except (BrokenPipeError, ConnectionResetError):
                pass
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (socket.timeout, OSError) as exc:
            if not chunks:
                problems.append(f"keep-alive: {case.name}: no answer ({type(exc).__name__})")
                continue
        finally:
            sock.close()
        answers = [parse_answer(a) for a in split_answers(b"".join(chunks))]
        first, last = answers[0], answers[-1]
        why = judge(case, first, "answered")
        if why is not None:
            problems.append(f"keep-alive: {case.name}: {why}")
        elif len(answers) > 1 and last.status == 200:
            followed += 1
        elif first.headers.get("connection", "").lower() != "close":
            problems.append(f"keep-alive: {case.name}: the request behind it got "
                            f"{'HTTP ' + str(last.status) if len(answers) > 1 else 'no answer'}")
    return tried, followed, problems


def judge(case: Case, answer: Answer, how: str) -> str | None:
    """None when ``case`` was handled; otherwise what was wrong, in one line."""
    got = f"HTTP {answer.status} {answer.body[:120]!r}" if answer.status else f"no answer ({how})"
    if case.protocol:
        if answer.status == 0:
            return None if how in ("closed", "reset", "stalled") else got
        if not 400 <= answer.status < 500:
            return got
        return None if len(answer.body) < 2000 else f"{got} (a long body)"
    if answer.status == 0:
        return got
    if answer.status not in case.statuses:
        return got
    line = answer.error_line
    data = answer.json()
    if line is None or not isinstance(data.get("lines"), list) or not all(isinstance(x, str) for x in data["lines"]):
        return f"{got} (not the error form)"
    if not line.strip():
        return f"{got} (an empty error)"
    if any(ch in line for ch in "\n\r\x00") or any(ch in x for x in data["lines"] for ch in "\n\r"):
        return f"{got} (the error is not one line)"
    if len(line) > MAX_LINE:
        return f"{got} (an error of {len(line):,} characters)"
    mentions = (case.mention,) if isinstance(case.mention, str) else case.mention
    if mentions and not any(m.lower() in line.lower() for m in mentions):
        return f"{got} (the error does not name {' or '.join(map(repr, mentions))})"
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return f"{got} (content-type {answer.headers.get('content-type')!r})"
    return None


def health_seconds(home: Home) -> float:
    started = time.monotonic()
    ok = home.serving()
    return round(time.monotonic() - started, 3) if ok else -1.0


def integrity(home: Home) -> str:
    db = home.path("corral.db")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return str(con.execute("PRAGMA integrity_check").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error as exc:
        return f"error: {exc}"


def snapshot(home: Home) -> list[tuple[int, str, bool]] | str:
    """The store's jobs (id, state, held), or why they could not be listed."""
    try:
        return sorted((j["id"], j["state"], bool(j.get("held"))) for j in home.jobs())
    except (RuntimeError, KeyError, TypeError) as exc:
        return f"unlistable ({exc})"


def run(short: bool) -> Result:
    result = Result(NAME)
    cases = catalog()
    if short:
        cases = short_catalog(cases)
    check_every = 10 if short else 1
    home = Home(prefix="cxm")
    try:
        home.up("--simulate-gpus", "2")
        # A few valid jobs first (held, so nothing runs): what the store must still hold after.
        home.cli_json("submit", "--hold", "--", "true")
        good = [home.request("POST", "/v1/jobs", {"jobs": [held()]}),
                home.request("POST", "/v1/jobs", {"jobs": [{"flags": {"command": ["true"], "hold": True}}]}),
                home.request("POST", "/v1/jobs", {"yaml": "spec: {command: [sleep, '1'], hold: true}\n",
                                                  "source": "ok.yaml"})]
        result.check(all(a.status == 201 for a in good),
                     "valid submits were not stored: " + ", ".join(str(a.status) for a in good))
        before = snapshot(home)

        unhandled: list[str] = []
        statuses: Counter[int] = Counter()
        protocol = 0
        closes = 0
        serving = True
        after_heavy: dict[str, float] = {}
        for i, case in enumerate(cases):
            answer, how = exchange(home, case)
            if case.heavy:
                after_heavy[case.name] = health_seconds(home)
            protocol += case.protocol
            if answer.status:
                statuses[answer.status] += 1
            else:
                closes += 1
            why = judge(case, answer, how)
            if why is not None:
                unhandled.append(case.name)
                result.failures.append(f"unhandled: {case.name}: {why}")
            if (i + 1) % check_every == 0 or i == len(cases) - 1:
                if not home.serving():
                    serving = False
                    result.failures.append(f"the daemon stopped serving after case {case.name!r}")
                    break
        kept_alive = None
        if serving and not short:
            tried, followed, problems = keep_alive_pass(home, cases)
            kept_alive = f"{followed} of {tried} followed by a served request"
            result.failures += problems
            serving = home.serving()
            result.check(serving, "the daemon stopped serving during the keep-alive pass")
        after = snapshot(home) if serving else None
        check = integrity(home)
        log = home.daemon_log()
        tracebacks = log.count("Traceback") + log.count("Exception in ASGI application")

        result.figures.update({
            "inputs tried": len(cases) if serving else i + 1,
            "inputs handled": (len(cases) if serving else i + 1) - len(unhandled),
            "protocol-level": protocol,
            "4xx by status": dict(sorted((s, n) for s, n in statuses.items() if 400 <= s < 500)),
            "other statuses": dict(sorted((s, n) for s, n in statuses.items() if not 400 <= s < 500)) or "none",
            "closed without answer": closes,
            "unhandled": unhandled[:10] + ([f"... {len(unhandled) - 10} more"] if len(unhandled) > 10 else []),
            "daemon serving after": serving,
            "store intact": after == before and check == "ok",
            "tracebacks in daemon.log": tracebacks,
            "health right after (s)": after_heavy,
        })
        if kept_alive is not None:
            result.figures["keep-alive pass"] = kept_alive
        result.check(after == before, f"the job list changed: before {before}, after {after}")
        result.check(check == "ok", f"PRAGMA integrity_check: {check}")
        result.check(tracebacks == 0, "daemon.log has tracebacks: " + " | ".join(
            line for line in log.splitlines() if "Error" in line or "Traceback" in line)[:600])
    finally:
        home.close()
    return result
