"""JobSpec: CLI-style building, Kubernetes requests/limits, the YAML document form."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.errors import QuantityError, ValidationError
from corral.resources import CPU, GPU, MAX_AMOUNT, MEMORY, Resources
from corral.spec import (
    MIN_MEMORY,
    JobSpec,
    build_spec,
    load_documents,
    parse_document,
    resolve_resources,
    spec_to_document,
    with_defaults,
)

GI = 2**30


def fails(fn, *args, **kwargs) -> ValidationError:
    """Call ``fn``; it must raise a ValidationError with a one-line message."""
    with pytest.raises(ValidationError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message and "\r" not in message
    return info.value


def doc(**spec) -> dict:
    spec.setdefault("command", ["python", "train.py"])
    return {"apiVersion": "corral/v1", "kind": "Job", "spec": spec}


# -- JobSpec dataclass (unchanged) -----------------------------------------------------

def test_to_dict_from_dict_round_trip():
    spec = JobSpec(command=("python", "x.py"), name="n", env={"A": "1"}, workdir="/w", labels={"t": "v"},
                   priority=3, time_limit=60, requests=Resources({CPU: 500}), limits=Resources({CPU: 1000}))
    assert JobSpec.from_dict(spec.to_dict()) == spec


# -- resolve_resources -----------------------------------------------------------------

def test_missing_limit_defaults_to_request():
    req, lim = resolve_resources(Resources({CPU: 2000, MEMORY: GI}), Resources())
    assert req == lim == Resources({CPU: 2000, MEMORY: GI})


def test_missing_request_defaults_to_limit():
    req, lim = resolve_resources(Resources(), Resources({CPU: 4000, GPU: 1}))
    assert req == lim == Resources({CPU: 4000, GPU: 1})


def test_request_below_limit_kept():
    req, lim = resolve_resources(Resources({CPU: 2000, MEMORY: 8 * GI}), Resources({CPU: 4000, MEMORY: 12 * GI}))
    assert req == Resources({CPU: 2000, MEMORY: 8 * GI})
    assert lim == Resources({CPU: 4000, MEMORY: 12 * GI})


def test_mixed_defaulting_per_resource():
    req, lim = resolve_resources(Resources({CPU: 1000}), Resources({MEMORY: GI}))
    assert req == lim == Resources({CPU: 1000, MEMORY: GI})


def test_request_exceeds_limit_message():
    err = fails(resolve_resources, Resources({CPU: 4000}), Resources({CPU: 2000}))
    assert str(err) == "invalid resources: cpu request 4 exceeds limit 2 (a request must be at most its limit)"
    assert err.field == "requests.cpu"


def test_request_exceeds_limit_memory_formatted():
    err = fails(resolve_resources, Resources({MEMORY: 16 * GI}), Resources({MEMORY: 8 * GI}))
    assert str(err) == "invalid resources: memory request 16Gi exceeds limit 8Gi (a request must be at most its limit)"


def test_field_prefix_in_message():
    err = fails(resolve_resources, Resources({CPU: 4000}), Resources({CPU: 2000}), field_prefix="spec.resources.")
    assert str(err).startswith("invalid spec.resources: cpu request 4 exceeds limit 2")
    assert err.field == "spec.resources.requests.cpu"


@pytest.mark.parametrize("name", [GPU, "example.com/fpga"])
def test_extended_request_must_equal_limit(name):
    err = fails(resolve_resources, Resources({name: 1}), Resources({name: 2}))
    assert str(err) == (f"invalid resources: {name} request 1 differs from limit 2 "
                        f"({name} cannot be overcommitted: its request must equal its limit)")
    # also when the request is the larger one
    fails(resolve_resources, Resources({name: 2}), Resources({name: 1}))
    req, lim = resolve_resources(Resources({name: 2}), Resources({name: 2}))
    assert req == lim == Resources({name: 2})


def test_negative_amount_rejected():
    err = fails(resolve_resources, Resources({CPU: -1}), Resources())
    assert "must be greater than zero" in str(err)
    assert "requests.cpu" in str(err)


# -- build_spec ------------------------------------------------------------------------

def test_build_minimal():
    spec = build_spec(["python", "train.py"])
    assert spec == JobSpec(command=("python", "train.py"))
    assert spec.requests == Resources() and spec.limits == Resources()


def test_build_shell_string():
    spec = build_spec("python train.py > log.txt 2>&1")
    assert spec.command == ("/bin/sh", "-c", "python train.py > log.txt 2>&1")


def test_build_everything():
    spec = build_spec(
        ("python", "train.py"),
        requests={"cpu": "2", "memory": "8Gi", "gpu": 1},
        limits={"cpu": 4, "memory": "12Gi", "nvidia.com/gpu": "1"},
        name="resnet-lr0.1",
        env={"CUDA_LAUNCH_BLOCKING": "1", "_X": ""},
        workdir="/home/me/project",
        labels={"team": "vision", "example.com/run": "a_b.c-d"},
        priority="10",
        time_limit="2h",
    )
    assert spec.command == ("python", "train.py")
    assert spec.requests == Resources({CPU: 2000, MEMORY: 8 * GI, GPU: 1})
    assert spec.limits == Resources({CPU: 4000, MEMORY: 12 * GI, GPU: 1})
    assert spec.name == "resnet-lr0.1"
    assert spec.env == {"CUDA_LAUNCH_BLOCKING": "1", "_X": ""}
    assert spec.workdir == "/home/me/project"
    assert spec.labels == {"team": "vision", "example.com/run": "a_b.c-d"}
    assert spec.priority == 10
    assert spec.time_limit == 7200


def test_build_defaulting():
    spec = build_spec(["x"], requests={"cpu": "500m"})
    assert spec.limits == Resources({CPU: 500})
    spec = build_spec(["x"], limits={"memory": "1Gi"})
    assert spec.requests == Resources({MEMORY: GI})


def test_build_time_limit_forms():
    assert build_spec(["x"], time_limit=None).time_limit is None
    assert build_spec(["x"], time_limit="30").time_limit == 1800        # CLI string: minutes
    assert build_spec(["x"], time_limit=30).time_limit == 30            # number: seconds
    assert build_spec(["x"], time_limit="1-00:00:00").time_limit == 86400
    err = fails(build_spec, ["x"], time_limit="2x")
    assert str(err) == 'invalid time limit for time_limit: "2x" (expected e.g. 90m, 2h, 1-00:00:00)'


def test_build_request_exceeds_limit():
    err = fails(build_spec, ["x"], requests={"cpu": "4"}, limits={"cpu": "2"})
    assert str(err) == "invalid resources: cpu request 4 exceeds limit 2 (a request must be at most its limit)"


def test_build_gpu_request_differs_from_limit():
    err = fails(build_spec, ["x"], requests={"gpu": 1}, limits={"gpu": 2})
    assert "nvidia.com/gpu request 1 differs from limit 2" in str(err)


@pytest.mark.parametrize(
    ("resource", "value", "field"),
    [("cpu", 0, "cpu"), ("cpu", "0", "cpu"), ("cpu", "0m", "cpu"),
     ("memory", "0Gi", "memory"), ("gpu", 0, "nvidia.com/gpu"),
     ("example.com/fpga", "0", "example.com/fpga")],
)
def test_build_explicit_zero_rejected(resource, value, field):
    err = fails(build_spec, ["x"], requests={resource: value})
    assert isinstance(err, QuantityError)
    assert str(err).startswith(f"invalid quantity for {field}: ")
    assert str(err).endswith("; must be greater than zero)")
    assert err.field == field


def test_build_explicit_zero_limit_rejected():
    err = fails(build_spec, ["x"], requests={"cpu": 1}, limits={"cpu": 0})
    assert str(err) == 'invalid quantity for limits.cpu: 0 (expected e.g. 2, 500m, 0.5; must be greater than zero)'


@pytest.mark.parametrize("value", [-1, "-1", "-500m", -0.5])
def test_build_negative_rejected(value):
    err = fails(build_spec, ["x"], requests={"cpu": value})
    assert "invalid quantity for cpu" in str(err)
    assert "must be greater than zero" in str(err)


def test_build_bad_quantity():
    err = fails(build_spec, ["x"], requests={"memory": "16GG"})
    assert str(err) == 'invalid quantity for memory: "16GG" (expected e.g. 512Mi, 16Gi)'
    err = fails(build_spec, ["x"], limits={"gpu": "0.5"})
    assert str(err) == ('invalid quantity for limits.nvidia.com/gpu: "0.5" '
                        '(expected a whole number, e.g. 1, 2; whole numbers only)')


def test_build_unknown_resource_name():
    err = fails(build_spec, ["x"], requests={"gpux": 1})
    assert str(err).startswith('unknown resource name in requests: "gpux" (expected cpu, memory, nvidia.com/gpu')


def test_build_alias_duplicate():
    err = fails(build_spec, ["x"], requests={"gpu": 1, "nvidia.com/gpu": 1})
    assert str(err) == ('duplicate resource in requests: "nvidia.com/gpu" '
                        '(each resource may appear once; "gpu" is the same resource)')


def test_build_small_cpu_rounds_up_not_zero():
    assert build_spec(["x"], requests={"cpu": "0.0001"}).requests == Resources({CPU: 1})


@pytest.mark.parametrize(
    ("command", "field"),
    [([], "command"), ("", "command"), ("   ", "command"), (5, "command"), (None, "command"),
     (["python", 0.1], "command[1]"), ([""], "command[0]"), (["a\x00b"], "command[0]"),
     ({"a": 1}, "command")],
)
def test_build_bad_command(command, field):
    err = fails(build_spec, command)
    assert err.field == field
    assert f"for {field}:" in str(err)


def test_build_bad_command_messages():
    assert str(fails(build_spec, [])) == (
        'invalid value for command: [] (expected a non-empty argv list, e.g. ["python", "train.py"], '
        'or a shell command string)')
    assert str(fails(build_spec, ["python", 1])) == (
        'invalid value for command[1]: 1 (expected a string argument; quote numbers in YAML, e.g. "0.1")')


def test_build_env_errors():
    err = fails(build_spec, ["x"], env={"1A": "x"})
    assert str(err).startswith('invalid variable name in env: "1A" (expected a variable name')
    assert err.field == "env"
    for key in ["A-B", "", "A B", "É"]:
        fails(build_spec, ["x"], env={key: "x"})
    err = fails(build_spec, ["x"], env={"A": 1})
    assert str(err) == 'invalid value for env.A: 1 (expected a string; quote numbers and booleans, e.g. "1", "true")'
    fails(build_spec, ["x"], env={"A": True})
    fails(build_spec, ["x"], env={"A": "a\x00b"})
    fails(build_spec, ["x"], env=["A=1"])  # list form only in documents
    fails(build_spec, ["x"], env={"A\n": "x"})


def test_build_env_values_may_have_newlines_and_equals():
    assert build_spec(["x"], env={"A": "a=b\nc"}).env == {"A": "a=b\nc"}


@pytest.mark.parametrize(
    "key",
    ["team", "a", "A1", "a.b-c_d", "example.com/team", "a.b.c/x", "x" * 63, "example.com/" + "x" * 63],
)
def test_build_label_keys_ok(key):
    assert build_spec(["x"], labels={key: "v"}).labels == {key: "v"}


@pytest.mark.parametrize(
    "key",
    ["", "-a", "a-", "_a", "a b", "x" * 64, "/a", "Example.com/a", "a/b/c", "a/", "exa_mple.com/a", "a\n"],
)
def test_build_label_keys_bad(key):
    err = fails(build_spec, ["x"], labels={key: "v"})
    assert err.field == "labels"
    assert str(err).startswith("invalid label key in labels: ")
    assert "expected [prefix/]name" in str(err)


def test_build_label_values():
    err = fails(build_spec, ["x"], labels={"team": 1})
    assert str(err) == 'invalid value for labels.team: 1 (expected a string; quote numbers and booleans, e.g. "1", "true")'
    fails(build_spec, ["x"], labels={"team": "a\nb"})
    fails(build_spec, ["x"], labels={"team": "x" * 254})
    assert build_spec(["x"], labels={"team": ""}).labels == {"team": ""}
    fails(build_spec, ["x"], labels=["team=x"])


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (10, 10), (-5, -5), ("7", 7), (" -3 ", -3),
                                                  (1_000_000, 1_000_000), (-1_000_000, -1_000_000)])
def test_build_priority_ok(value, expected):
    assert build_spec(["x"], priority=value).priority == expected


@pytest.mark.parametrize("value", ["X", "1.5", 1.5, True, 1_000_001, -1_000_001, "2000000", [], "", "-a"])
def test_build_priority_bad(value):
    err = fails(build_spec, ["x"], priority=value)
    assert err.field == "priority"
    assert str(err).endswith("(expected an integer from -1000000 to 1000000 or a priority class name)")


def test_build_priority_message_and_class_names():
    assert str(fails(build_spec, ["x"], priority="High!")) == (
        'invalid value for priority: "High!" (expected an integer from -1000000 to 1000000 or a priority class name)')
    spec = build_spec(["x"], priority="urgent")            # resolved by the daemon, from its config
    assert (spec.priority, spec.priority_class) == (0, "urgent")
    assert type(spec).from_dict(spec.to_dict()).priority_class == "urgent"
    assert parse_document(spec_to_document(spec)).priority_class == "urgent"


def test_build_name():
    assert build_spec(["x"], name="x" * 253).name == "x" * 253
    err = fails(build_spec, ["x"], name="x" * 254)
    assert err.field == "name" and "at most 253 characters" in str(err)
    err = fails(build_spec, ["x"], name="a\nb")
    assert str(err) == 'invalid value for name: "a\\nb" (expected one line without control characters)'
    fails(build_spec, ["x"], name=5)
    assert build_spec(["x"], name="résumé run 1").name == "résumé run 1"


def test_build_workdir():
    assert build_spec(["x"], workdir="/tmp").workdir == "/tmp"
    assert build_spec(["x"], workdir="rel/dir").workdir == "rel/dir"
    assert fails(build_spec, ["x"], workdir="").field == "workdir"
    fails(build_spec, ["x"], workdir=5)
    fails(build_spec, ["x"], workdir="/a\x00b")


def test_long_value_shortened_in_message():
    err = fails(build_spec, ["x"], priority="9" * 500)
    assert len(str(err)) < 200
    assert err.value == "9" * 500  # the attribute keeps the full value


# -- parse_document ------------------------------------------------------------------------

FULL = textwrap.dedent("""\
    apiVersion: corral/v1
    kind: Job
    metadata: {name: resnet-lr0.1, labels: {team: vision}}
    spec:
      command: ["python", "train.py", "--lr", "0.1"]
      env: {KEY: value}
      workingDir: /path
      priority: 10
      timeLimit: 2h
      resources:
        requests: {cpu: "2", memory: 8Gi, nvidia.com/gpu: 1}
        limits:   {cpu: "4", memory: 12Gi, nvidia.com/gpu: 1}
    """)


def test_full_document():
    [spec] = load_documents(FULL)
    assert spec == JobSpec(
        command=("python", "train.py", "--lr", "0.1"), name="resnet-lr0.1", env={"KEY": "value"},
        workdir="/path", labels={"team": "vision"}, priority=10, time_limit=7200,
        requests=Resources({CPU: 2000, MEMORY: 8 * GI, GPU: 1}),
        limits=Resources({CPU: 4000, MEMORY: 12 * GI, GPU: 1}))


def test_minimal_document_defaults():
    assert parse_document({"spec": {"command": ["x"]}}) == JobSpec(command=("x",))
    assert parse_document({"apiVersion": "corral/v1", "kind": "Job", "metadata": None,
                           "spec": {"command": "echo hi", "env": None, "resources": None}}) == \
        JobSpec(command=("/bin/sh", "-c", "echo hi"))


def test_document_aliases():
    spec = parse_document(doc(workdir="/w", time_limit="90m"))
    assert spec.workdir == "/w" and spec.time_limit == 5400
    err = fails(parse_document, doc(workdir="/w", workingDir="/v"))
    assert "given twice" in str(err)
    assert "spec.workdir" in str(err) and "spec.workingDir" in str(err)


def test_document_env_list_form():
    spec = parse_document(doc(env=[{"name": "A", "value": "1"}, {"name": "B"}, {"name": "C", "value": None}]))
    assert spec.env == {"A": "1", "B": "", "C": ""}


def test_document_env_list_errors():
    err = fails(parse_document, doc(env=[{"name": "A", "valueFrom": {"secretKeyRef": {}}}]))
    assert str(err) == "unknown field spec.env[0].valueFrom (accepted: name, value)"
    err = fails(parse_document, doc(env=[{"value": "1"}]))
    assert str(err).startswith("missing field spec.env[0].name")
    err = fails(parse_document, doc(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]))
    assert str(err).startswith('duplicate variable in spec.env: "A"')
    err = fails(parse_document, doc(env=["A=1"]))
    assert "spec.env[0]" in str(err)
    err = fails(parse_document, doc(env=[{"name": "1A"}]))
    assert "spec.env[0].name" in str(err)
    err = fails(parse_document, doc(env=[{"name": "A", "value": 1}]))
    assert err.field == "spec.env[0].value"
    err = fails(parse_document, doc(env="A=1"))
    assert err.field == "spec.env"


def test_document_env_mapping_value_type():
    err = fails(parse_document, doc(env={"A": 1}))
    assert str(err) == 'invalid value for spec.env.A: 1 (expected a string; quote numbers and booleans, e.g. "1", "true")'


def test_document_shell_string_command():
    assert parse_document(doc(command="python train.py | tee log")).command == (
        "/bin/sh", "-c", "python train.py | tee log")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"spec": {"comand": ["x"]}},
         "unknown field spec.comand (accepted: array, command, dependencies, env, gpuModels, gracePeriod, hold, idleGpu, nodeSelector, nodes, preemptible, priority, pty, queue, requeue, resources, resumable, retries, stopSignal, timeLimit, workingDir)"),
        (doc(resources={"request": {}}), "unknown field spec.resources.request (accepted: limits, requests)"),
        ({"metadata": {"namespace": "x"}, "spec": {"command": ["x"]}},
         "unknown field metadata.namespace (accepted: labels, name)"),
        ({"status": {}, "spec": {"command": ["x"]}},
         "unknown field status (accepted: apiVersion, kind, metadata, spec)"),
        (doc(env=[{"name": "A", "valueFrom": 1}]), "unknown field spec.env[0].valueFrom (accepted: name, value)"),
    ],
)
def test_unknown_fields_at_depth(document, message):
    assert str(fails(parse_document, document)) == message


def test_unknown_field_attributes():
    err = fails(parse_document, {"spec": {"comand": ["x"]}})
    assert err.field == "spec.comand" and err.value == "comand"


def test_api_version_and_kind():
    err = fails(parse_document, {"apiVersion": "v1", "spec": {"command": ["x"]}})
    assert str(err) == 'invalid value for apiVersion: "v1" (expected corral/v1)'
    err = fails(parse_document, {"kind": "Pod", "spec": {"command": ["x"]}})
    assert str(err) == 'invalid value for kind: "Pod" (expected Job)'
    fails(parse_document, {"kind": None, "spec": {"command": ["x"]}})


@pytest.mark.parametrize(
    ("document", "field", "start"),
    [
        (doc(command=5), "spec.command", "invalid value for spec.command: 5 (expected a program"),
        (doc(resources=[]), "spec.resources", "invalid value for spec.resources: [] (expected a mapping"),
        (doc(resources={"requests": ["cpu"]}), "spec.resources.requests",
         "invalid value for spec.resources.requests: ['cpu'] (expected a mapping of resource name"),
        ({"spec": []}, "spec", "invalid value for spec: [] (expected a mapping with fields array, command"),
        ({"metadata": "x", "spec": {"command": ["x"]}}, "metadata", 'invalid value for metadata: "x"'),
        ({"metadata": {"labels": ["a"]}, "spec": {"command": ["x"]}}, "metadata.labels",
         "invalid value for metadata.labels: ['a']"),
        ({"metadata": {"name": 5}, "spec": {"command": ["x"]}}, "metadata.name", "invalid value for metadata.name: 5"),
        (doc(priority="High"), "spec.priority", 'invalid value for spec.priority: "High"'),
        (doc(timeLimit="2x"), "spec.timeLimit", 'invalid time limit for spec.timeLimit: "2x"'),
        (doc(workingDir=3), "spec.workingDir", "invalid value for spec.workingDir: 3"),
        (doc(command=["python", 0.1]), "spec.command[1]", "invalid value for spec.command[1]: 0.1"),
    ],
)
def test_wrong_types_name_path(document, field, start):
    err = fails(parse_document, document)
    assert err.field == field
    assert str(err).startswith(start), str(err)


def test_document_not_a_mapping():
    err = fails(parse_document, ["x"])
    assert str(err) == "invalid job: ['x'] (expected a mapping with apiVersion, kind, metadata and spec)"
    err = fails(parse_document, "x", where="jobs[1]")
    assert str(err).startswith('jobs[1]: invalid job: "x" (expected a mapping')


def test_where_prefixes_messages_and_keeps_attributes():
    err = fails(parse_document, {"spec": {"comand": ["x"]}}, where="jobs[2]")
    assert str(err) == ("jobs[2]: unknown field spec.comand "
                        "(accepted: array, command, dependencies, env, gpuModels, gracePeriod, hold, idleGpu, nodeSelector, nodes, preemptible, priority, pty, queue, requeue, resources, resumable, retries, stopSignal, timeLimit, workingDir)")
    assert err.field == "spec.comand"
    err = fails(parse_document, doc(resources={"requests": {"memory": "16GG"}}), where="jobs[0]")
    assert isinstance(err, QuantityError)
    assert str(err) == 'jobs[0]: invalid quantity for spec.resources.requests.memory: "16GG" (expected e.g. 512Mi, 16Gi)'


def test_document_missing_spec_and_command():
    assert str(fails(parse_document, {})) == (
        "missing field spec (expected a mapping with at least command; "
        "accepted: array, command, dependencies, env, gpuModels, gracePeriod, hold, idleGpu, nodeSelector, nodes, preemptible, priority, pty, queue, requeue, resources, resumable, retries, stopSignal, timeLimit, workingDir)")
    assert str(fails(parse_document, {"spec": {}})).startswith("missing field spec.command (")
    assert str(fails(parse_document, {"spec": None})).startswith("missing field spec (")


def test_document_quantity_path():
    err = fails(parse_document, doc(resources={"requests": {"memory": "16GG"}}))
    assert isinstance(err, QuantityError)
    assert str(err) == 'invalid quantity for spec.resources.requests.memory: "16GG" (expected e.g. 512Mi, 16Gi)'
    assert err.field == "spec.resources.requests.memory"


def test_document_zero_and_negative_paths():
    err = fails(parse_document, doc(resources={"limits": {"gpu": 0}}))
    assert str(err) == ('invalid quantity for spec.resources.limits.nvidia.com/gpu: 0 '
                        '(expected a whole number, e.g. 1, 2; must be greater than zero)')
    err = fails(parse_document, doc(resources={"requests": {"cpu": -2}}))
    assert str(err) == ('invalid quantity for spec.resources.requests.cpu: -2 '
                        '(expected e.g. 2, 500m, 0.5; must be greater than zero)')


def test_document_request_exceeds_limit():
    err = fails(parse_document, doc(resources={"requests": {"cpu": 4}, "limits": {"cpu": 2}}))
    assert str(err) == "invalid spec.resources: cpu request 4 exceeds limit 2 (a request must be at most its limit)"
    err = fails(parse_document, doc(resources={"requests": {"gpu": 1}, "limits": {"gpu": 2}}))
    assert "nvidia.com/gpu request 1 differs from limit 2" in str(err)


def test_document_extended_resources():
    spec = parse_document(doc(resources={"requests": {"example.com/fpga": 2}}))
    assert spec.requests == spec.limits == Resources({"example.com/fpga": 2})
    err = fails(parse_document, doc(resources={"requests": {"Bad_Name": 1}}))
    assert str(err).startswith('unknown resource name in spec.resources.requests: "Bad_Name"')
    err = fails(parse_document, doc(resources={"requests": {1: 1}}))
    assert "spec.resources.requests" in str(err)


def test_document_time_limit_number_is_seconds_string_is_minutes():
    assert parse_document(doc(timeLimit=30)).time_limit == 30
    assert parse_document(doc(timeLimit="30")).time_limit == 1800
    # unquoted YAML 1:30 is a base-60 number (90): seconds, as Slurm reads minutes:seconds
    [spec] = load_documents("spec: {command: [x], timeLimit: 1:30}")
    assert spec.time_limit == 90
    [spec] = load_documents("spec: {command: [x], timeLimit: 1-00:00:00}")
    assert spec.time_limit == 86400
    [spec] = load_documents("spec: {command: [x], timeLimit: 2-12}")
    assert spec.time_limit == 60 * 3600


# -- load_documents --------------------------------------------------------------------------

def test_multi_document_batch():
    text = textwrap.dedent("""\
        spec: {command: [python, a.py]}
        ---
        ---
        metadata: {name: b}
        spec: {command: python b.py, resources: {requests: {gpu: 1}}}
        """)
    specs = load_documents(text, source="batch.yaml")
    assert [s.command for s in specs] == [("python", "a.py"), ("/bin/sh", "-c", "python b.py")]
    assert specs[1].limits == Resources({GPU: 1})


def test_error_prefixed_with_source_and_document():
    text = "spec: {command: [x]}\n---\nspec: {comand: [x]}\n"
    err = fails(load_documents, text, source="jobs.yaml")
    assert str(err) == ("jobs.yaml (document 2): unknown field spec.comand "
                        "(accepted: array, command, dependencies, env, gpuModels, gracePeriod, hold, idleGpu, nodeSelector, nodes, preemptible, priority, pty, queue, requeue, resources, resumable, retries, stopSignal, timeLimit, workingDir)")
    assert err.field == "spec.comand"
    err = fails(load_documents, "spec: {comand: [x]}\n", source="job.yaml")
    assert str(err).startswith("job.yaml: unknown field spec.comand")


def test_error_keeps_quantity_error_type():
    err = fails(load_documents, "spec: {command: [x], resources: {requests: {memory: 16GG}}}", source="j.yaml")
    assert isinstance(err, QuantityError)
    assert str(err) == 'j.yaml: invalid quantity for spec.resources.requests.memory: "16GG" (expected e.g. 512Mi, 16Gi)'


def test_yaml_syntax_error_one_line_with_line_number():
    err = fails(load_documents, "spec:\n  command: [python\n  env: {a: 1\n", source="bad.yaml")
    assert str(err).startswith("bad.yaml: invalid YAML at line ")
    err = fails(load_documents, "a: b: c\n", source="bad.yaml")
    assert str(err).startswith("bad.yaml: invalid YAML at line 1")


def test_empty_input_is_an_error():
    for text in ["", "\n", "---\n---\n", "# just a comment\n"]:
        err = fails(load_documents, text, source="empty.yaml")
        assert str(err) == "empty.yaml: no job documents (expected at least one YAML document with kind: Job)"


def test_non_mapping_document():
    err = fails(load_documents, "- a\n- b\n", source="list.yaml")
    assert str(err).startswith("list.yaml: invalid job: ['a', 'b'] (expected a mapping")


def test_yaml_booleans_in_env_rejected():
    err = fails(load_documents, "spec: {command: [x], env: {DEBUG: yes}}")
    assert str(err) == ('<input>: invalid value for spec.env.DEBUG: True '
                        '(expected a string; quote numbers and booleans, e.g. "1", "true")')


# -- spec_to_document ------------------------------------------------------------------------

def test_spec_to_document_shape():
    [spec] = load_documents(FULL)
    assert spec_to_document(spec) == {
        "apiVersion": "corral/v1", "kind": "Job",
        "metadata": {"name": "resnet-lr0.1", "labels": {"team": "vision"}},
        "spec": {"command": ["python", "train.py", "--lr", "0.1"], "env": {"KEY": "value"},
                 "workingDir": "/path", "priority": 10, "timeLimit": "2h",
                 "resources": {"requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
                               "limits": {"cpu": "4", "memory": "12Gi", "nvidia.com/gpu": "1"}}},
    }


def test_spec_to_document_minimal():
    assert spec_to_document(JobSpec(command=("x",))) == {
        "apiVersion": "corral/v1", "kind": "Job", "spec": {"command": ["x"]}}


def test_spec_to_document_inexact_memory_stays_exact():
    spec = build_spec(["x"], requests={"memory": 10**9, "cpu": "1234m"}, limits={"memory": "1.5Gi"})
    document = spec_to_document(spec)
    assert document["spec"]["resources"]["requests"] == {"cpu": "1234m", "memory": "1000000000"}
    assert document["spec"]["resources"]["limits"] == {"cpu": "1234m", "memory": "1.5Gi"}
    assert parse_document(document) == spec


def test_yaml_text_round_trip():
    [spec] = load_documents(FULL)
    again = load_documents(yaml.safe_dump_all([spec_to_document(spec)] * 2))
    assert again == [spec, spec]


# -- with_defaults -------------------------------------------------------------------------

def test_with_defaults_fills_unmentioned():
    spec = build_spec(["x"], requests={"gpu": 1})
    filled = with_defaults(spec, Resources({CPU: 1000}))
    assert filled.requests == Resources({CPU: 1000, GPU: 1})
    assert filled.limits == Resources({CPU: 1000, GPU: 1})
    assert spec.requests == Resources({GPU: 1})  # original untouched


def test_with_defaults_leaves_mentioned_resources():
    spec = build_spec(["x"], limits={"cpu": "4"})
    assert with_defaults(spec, Resources({CPU: 1000})) is spec
    spec = build_spec(["x"], requests={"cpu": "500m"}, limits={"cpu": "2"})
    filled = with_defaults(spec, Resources({CPU: 1000, MEMORY: GI}))
    assert filled.requests == Resources({CPU: 500, MEMORY: GI})
    assert filled.limits == Resources({CPU: 2000, MEMORY: GI})


def test_with_defaults_empty_defaults():
    spec = build_spec(["x"])
    assert with_defaults(spec, Resources()) is spec


# -- import cost -----------------------------------------------------------------------------

def test_import_is_stdlib_only():
    code = ("import sys, corral.spec, corral.durations; "
            "bad = [m for m in ('yaml', 'pydantic', 'fastapi', 'psutil') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# -- property: round trips -------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20)
_ARG = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
_ENV_KEY = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
_LABEL_NAME = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?", fullmatch=True)
_LABEL_KEY = st.one_of(_LABEL_NAME, st.builds(lambda p, n: f"{p}/{n}",
                                              st.from_regex(r"[a-z0-9]{1,5}(\.[a-z0-9]{1,5}){0,2}", fullmatch=True),
                                              _LABEL_NAME))
_EXTENDED = st.sampled_from([GPU, "example.com/fpga", "vendor.io/tpu"])


@st.composite
def resource_pairs(draw):
    """Requests and limits that already follow the defaulting rules."""
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    for name, low, top in ((CPU, 1, 10**9), (MEMORY, MIN_MEMORY, MAX_AMOUNT)):
        if draw(st.booleans()):
            a = draw(st.integers(low, top))
            b = draw(st.integers(a, top)) if draw(st.booleans()) else a
            requests[name], limits[name] = a, b
    for name in draw(st.lists(_EXTENDED, unique=True, max_size=3)):
        requests[name] = limits[name] = draw(st.integers(1, 10**6))
    return Resources(requests), Resources(limits)


@st.composite
def job_specs(draw, arg=_ARG):
    first = draw(arg.filter(lambda s: s.strip()))
    command = (first, *draw(st.lists(arg, max_size=4)))
    requests, limits = draw(resource_pairs())
    return JobSpec(
        command=command,
        name=draw(_TEXT),
        env=draw(st.dictionaries(_ENV_KEY, arg, max_size=4)),
        workdir=draw(st.none() | _TEXT.filter(lambda s: s.strip())),
        labels=draw(st.dictionaries(_LABEL_KEY, _TEXT, max_size=4)),
        priority=draw(st.integers(-1_000_000, 1_000_000)),
        time_limit=draw(st.none() | st.integers(1, 100 * 365 * 86400)),
        requests=requests,
        limits=limits,
    )


@settings(max_examples=150, deadline=None)
@given(job_specs())
def test_round_trips(spec):
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert parse_document(spec_to_document(spec)) == spec


# PyYAML's emitter mangles some control characters (e.g. U+0085 becomes a space), so
# the YAML text round trip uses printable text; the dict-level round trip above covers the rest.
@settings(max_examples=100, deadline=None)
@given(job_specs(arg=_TEXT))
def test_yaml_round_trip(spec):
    text = yaml.safe_dump(spec_to_document(spec), allow_unicode=True)
    assert load_documents(text) == [spec]


@settings(max_examples=100, deadline=None)
@given(job_specs())
def test_build_spec_accepts_its_own_output(spec):
    rebuilt = build_spec(list(spec.command), requests=spec_to_document(spec)["spec"].get("resources", {}).get("requests"),
                         limits=spec_to_document(spec)["spec"].get("resources", {}).get("limits"),
                         name=spec.name, env=spec.env, workdir=spec.workdir, labels=spec.labels,
                         priority=spec.priority, time_limit=spec.time_limit)
    assert rebuilt == spec


# -- stop signal, grace period, idle-GPU overrides ---------------------------------------------

def test_stop_signal_grace_and_idle_from_cli_values():
    spec = build_spec(["train"], stop_signal="usr1", kill_grace="2m",
                      idle_gpu={"window": "1h", "actions": "warn,cancel", "threshold": "10%"})
    assert spec.stop_signal == "SIGUSR1" and spec.kill_grace == 120
    assert spec.idle_gpu == {"window": 3600, "actions": ("warn", "cancel"), "threshold": 10.0}
    assert JobSpec.from_dict(spec.to_dict()).to_dict() == spec.to_dict()
    assert build_spec(["x"], stop_signal=12).stop_signal == "SIGUSR2"
    assert build_spec(["x"], kill_grace=0).kill_grace == 0


def test_stop_signal_grace_and_idle_from_document_round_trip():
    doc = {"apiVersion": "corral/v1", "kind": "Job",
           "spec": {"command": ["train"], "stopSignal": "SIGUSR2", "gracePeriod": "45s",
                    "idleGpu": {"window": "20m", "step": "5m", "actions": ["warn", "signal", "requeue"]}}}
    spec = parse_document(doc)
    assert spec.stop_signal == "SIGUSR2" and spec.kill_grace == 45
    assert spec.idle_gpu == {"window": 1200, "step": 300, "actions": ("warn", "signal", "requeue")}
    again = parse_document(spec_to_document(spec))
    assert again.to_dict() == spec.to_dict()


@pytest.mark.parametrize(("fields", "message"), [
    ({"stopSignal": "SIGKILL"}, 'invalid value for spec.stopSignal: "SIGKILL" (expected a signal name or number that a job can catch, e.g. SIGUSR1, USR2, TERM, 10)'),
    ({"stopSignal": "HUP2"}, 'invalid value for spec.stopSignal: "HUP2"'),
    ({"gracePeriod": "-5s"}, "invalid grace period for spec.gracePeriod"),
    ({"idleGpu": {"threshold": "high"}}, 'invalid value for spec.idleGpu.threshold: "high"'),
    ({"idleGpu": {"actions": ["warn", "nap"]}}, "invalid value for spec.idleGpu.actions"),
    ({"idleGpu": {"after": "1h"}}, "unknown field spec.idleGpu.after (accepted: threshold, window, step, actions, signal)"),
    ({"idleGpu": "1h"}, 'invalid value for spec.idleGpu: "1h" (expected a mapping with fields threshold, window, step, actions, signal)'),
])
def test_stop_signal_grace_and_idle_errors(fields, message):
    doc = {"apiVersion": "corral/v1", "kind": "Job", "spec": {"command": ["x"], **fields}}
    with pytest.raises(ValidationError) as info:
        parse_document(doc)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


# -- queues, arrays, dependencies, retries, hold, preemption --------------------------------

from corral.spec import format_array, parse_array, parse_dependencies  # noqa: E402


@pytest.mark.parametrize(("text", "indices", "limit"), [
    ("0-3", (0, 1, 2, 3), None), ("0-99%8", tuple(range(100)), 8), ("1,3,5-7", (1, 3, 5, 6, 7), None),
    ("0-8:4", (0, 4, 8), None), ("7", (7,), None), (5, (5,), None), ("2-3,0-1", (0, 1, 2, 3), None),
])
def test_array_forms(text, indices, limit):
    assert parse_array(text) == (indices, limit)
    assert parse_array(format_array(indices, limit)) == (indices, limit)


@pytest.mark.parametrize("text", ["", "a-b", "3-1", "0-99%0", "0-5:0", "1-", "0-2000000", "0-10000", "0-9%x", "-1"])
def test_array_errors(text):
    with pytest.raises(ValidationError) as info:
        parse_array(text, "array")
    assert str(info.value).startswith("invalid value for array: ")


def test_dependencies_forms():
    assert parse_dependencies("12") == (("afterok", 12),)
    assert parse_dependencies("afterany:12,13") == (("afterany", 12), ("afterany", 13))
    assert parse_dependencies("4,afternotok:5") == (("afterok", 4), ("afternotok", 5))
    assert parse_dependencies([3, {"type": "afterany", "job": 4}, 3]) == (("afterok", 3), ("afterany", 4))
    for bad in ("x", "afterstart:3", "0", [True], {"job": 1}):
        with pytest.raises(ValidationError):
            parse_dependencies(bad, "after")


def test_sharing_fields_round_trip_and_defaults():
    spec = build_spec(["x"])
    assert (spec.queue, spec.array, spec.dependencies, spec.retries, spec.hold) == ("default", (), (), 0, False)
    assert spec.preemptible and spec.requeue
    spec = build_spec(["x"], queue="research", array="0-9%2", dependencies="afterany:3", retries="3",
                      hold=True, preemptible=False, requeue=False)
    assert spec.queue == "research" and spec.array == tuple(range(10)) and spec.array_limit == 2
    assert spec.dependencies == (("afterany", 3),) and spec.retries == 3 and spec.hold
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert parse_document(spec_to_document(spec)) == spec
    with pytest.raises(ValidationError, match="invalid value for queue: \"Research!\""):
        build_spec(["x"], queue="Research!")
    with pytest.raises(ValidationError, match="invalid value for retries: 101"):
        build_spec(["x"], retries=101)
    with pytest.raises(ValidationError, match="invalid value for spec.hold: \"yes\" \\(expected true or false\\)"):
        parse_document({"apiVersion": "corral/v1", "kind": "Job", "spec": {"command": "x", "hold": "yes"}})


def test_error_messages_cost_what_they_show():
    from corral.errors import show_value

    shared = ["x"] * 1000
    huge = [[shared] * 1000] * 1000                   # a billion items, shared (what aliases build)
    assert show_value(huge) == "[[[" + "'x', " * 15 + "'x..."    # 80 characters of it, then ...
    assert show_value({"a": "b" * 1000}).startswith("{'a': 'bbb") and show_value({"a": "b" * 1000}).endswith("...")
    assert show_value("x" * 10**7) == '"' + "x" * 80 + '..."'
    assert (show_value("a\nb"), show_value(3), show_value(None), show_value([1, 2])) == ('"a\\nb"', "3", "None",
                                                                                       "[1, 2]")


def test_yaml_limits():
    from corral.spec import load_yaml_all

    assert load_yaml_all("a: &x [1, 2]\nb: *x\n") == [{"a": [1, 2], "b": [1, 2]}]
    with pytest.raises(ValidationError) as err:
        load_yaml_all("[" * 80 + "]" * 80, source="deep.yaml")
    assert str(err.value) == "deep.yaml: YAML nested more than 64 levels deep"
    with pytest.raises(ValidationError) as err:
        load_yaml_all("#" * (4 * 2**20 + 1), source="big.yaml")
    assert str(err.value) == "big.yaml: 4,194,305 characters of YAML (expected at most 4 MiB)"


# -- daily use (issue 13): the memory floor, array rules, defaults, where a document was ------------

@pytest.mark.parametrize("value, line", [
    ("1", 'invalid quantity for memory: "1" (1 byte is below the floor of 1Mi; memory is in bytes; did you mean 1Gi?)'),
    (4, "invalid quantity for memory: 4 (4 bytes is below the floor of 1Mi; memory is in bytes; did you mean 4Gi?)"),
    ("500m", 'invalid quantity for memory: "500m" (1 byte is below the floor of 1Mi; memory is in bytes; '
             "did you mean 500Mi?)"),
    ("1e3", 'invalid quantity for memory: "1e3" (1000 bytes is below the floor of 1Mi; memory is in bytes)'),
    ("16g", 'invalid quantity for memory: "16g" (expected e.g. 16Gi or 16G (units are case-sensitive))'),
])
def test_memory_below_the_floor_or_in_the_wrong_case(value, line):
    with pytest.raises(ValidationError) as err:
        build_spec(["x"], requests={"memory": value})
    assert str(err.value) == line
    assert build_spec(["x"], requests={"memory": "1Mi"}).requests["memory"] == MIN_MEMORY


@pytest.mark.parametrize("value, rule", [
    ("5-1", 'the range "5-1" ends before it starts'),
    ("0-3%0", "%N, the tasks run at once, must be at least 1"),
    ("0-3%x", 'the %N after the indices must be a whole number, not "x"'),
    ("0-9:0", 'the step in "0-9:0" must be at least 1'),
    ("0-20000", "more than 10000 tasks"),
    ("0-99999999", "index 99999999 is above the highest, 1000000"),
    ("a-b", '"a-b" is not an index, a range A-B or a range with a step A-B:S'),
])
def test_each_array_error_says_which_rule_failed(value, rule):
    with pytest.raises(ValidationError) as err:
        parse_array(value)
    assert str(err.value).startswith(f'invalid value for array: "{value}" ({rule}; expected indices like 0-99')


def test_defaulted_requests_are_known_and_kept():
    from corral.resources import Resources
    from corral.spec import with_defaults

    spec = with_defaults(build_spec(["x"], requests={"cpu": "2"}), Resources({"cpu": 1000, "memory": 2**30}))
    assert spec.defaulted == ("memory",) and spec.requests == {"cpu": 2000, "memory": 2**30}
    assert JobSpec.from_dict(spec.to_dict()).defaulted == ("memory",)
    assert with_defaults(build_spec(["x"]), Resources({"cpu": 1000})).defaulted == ("cpu",)


def test_documents_of_a_file_know_where_they_were_written():
    text = "spec: {command: [a]}\n---\nspec: {command: [b]}\n"
    assert [s.origin for s in load_documents(text, source="jobs.yaml")] == ["jobs.yaml (document 1)",
                                                                           "jobs.yaml (document 2)"]
    assert load_documents(text, source="a.yaml") == load_documents(text, source="b.yaml")  # not what it is
