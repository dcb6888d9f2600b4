"""Where a job may run, as users write it: ``--gpus A100:2``, ``--node-selector``,
``--nodes`` and the job document's ``gpuModels``, ``nodeSelector``, ``nodes``; the
stored spec; the request the scheduler gets (``JobSpec.demand``); the daemon's config
(``simulate_gpus: {count, model}``, ``node_labels``); and the daemon placing such jobs
on a cluster of two labelled nodes."""

from __future__ import annotations

import json

import pytest

from corral.api.models import JobFlags
from corral.capacity.node import make_node
from corral.cli.args import parse
from corral.cli.job_cmds import _payload
from corral.cli.main import COMMANDS
from corral.config import Config, parse_config
from corral.daemon.api.specs import from_flags
from corral.daemon.views import job_view, node_view
from corral.errors import Infeasible, ValidationError
from corral.job import JobState
from corral.resources import CPU, GPU, MEMORY, Constraints, Resources
from corral.spec import JobSpec, build_spec, parse_document, spec_to_document
from manager_helpers import GiB, FakeExecutor, manager


def fails(fn, *args, **kw) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kw)
    return info.value


def submitted(*argv: str) -> JobSpec:
    """What ``corral submit ARGV`` becomes in the daemon (CLI payload -> API model -> spec)."""
    flags = _payload(parse(COMMANDS["submit"], list(argv)))["jobs"][0]["flags"]
    return from_flags(JobFlags.model_validate(flags))


def doc(**spec) -> dict:
    return {"spec": {"command": ["train"], **spec}}


# -- the CLI --------------------------------------------------------------------------------

def test_gpus_take_a_model_in_slurm_spelling():
    s = submitted("--gpus", "A100:2", "--", "train")
    assert (s.requests[GPU], s.gpu_models) == (2, ("A100",))
    assert submitted("--gpus", "a100:1", "--", "train").gpu_models == ("a100",)
    plain = submitted("--gpus", "2", "--", "train")
    assert (plain.requests[GPU], plain.gpu_models, plain.constraints) == (2, (), None)


@pytest.mark.parametrize("value, message", [
    (":2", 'invalid value for gpus: ":2" (expected a GPU model before the colon, e.g. A100:2, '
           'or a count alone, e.g. 2)'),
    ("A100:", 'invalid value for gpus: "A100:" (expected a whole number of GPUs from 1 after the colon, '
              'e.g. A100:2)'),
    ("A100:x", 'invalid value for gpus: "A100:x" (expected a whole number of GPUs from 1 after the colon, '
               'e.g. A100:2)'),
    ("A100:0", 'invalid value for gpus: "A100:0" (expected a whole number of GPUs from 1 after the colon, '
               'e.g. A100:2)'),
    ("0:2", 'invalid value for gpus: "0:2" (expected MODEL:COUNT with a model name that starts with a letter, '
            'of letters, digits, -, _, . or spaces, at most 64, e.g. A100:2)'),
    ("x", 'invalid quantity for gpus: "x" (expected a whole number, e.g. 1, 2)'),
])
def test_bad_gpus_are_one_line_errors(value, message):
    err = fails(submitted, "--gpus", value, "--", "train")
    assert str(err) == message and "\n" not in str(err)
    assert err.field == "gpus"


def test_gpus_given_twice_is_an_error():
    err = fails(submitted, "--gpus", "A100:1", "--requests", "nvidia.com/gpu=2", "--", "train")
    assert str(err) == ('GPUs requested twice: "A100:1" (give the GPU count once: in gpus or as requests '
                        'nvidia.com/gpu)')


def test_node_selector_and_nodes():
    s = submitted("--node-selector", "zone=lab1", "--node-selector", "rack=r3,kind=a", "-N", "2", "--gpus",
                  "1", "--", "train")
    assert s.node_selector == {"zone": "lab1", "rack": "r3", "kind": "a"}
    assert s.nodes == 2
    assert submitted("--nodes", "3", "--", "train").nodes == 3


@pytest.mark.parametrize("argv, message", [
    (["--node-selector", "zone"], 'invalid value for --node-selector: "zone" (expected KEY=VALUE, e.g. zone=lab1, '
                                  'or several: zone=lab1,rack=r3)'),
    (["--node-selector", "zone=a", "--node-selector", "zone=b"],
     'conflicting values in --node-selector: "zone" (each key once (it is a and b))'),
    (["--node-selector", "zone=a b"], 'invalid value for node_selector.zone: "a b" (expected a label value: at most '
                                      '63 letters, digits, -, _ and ., starting and ending with a letter or digit '
                                      '(or empty), e.g. lab1; quote numbers)'),
    (["--node-selector", "-x=1"], 'invalid label key in node_selector: "-x" (expected [prefix/]name: name at most '
                                  '63 characters of letters, digits, -, _ and ., starting and ending with a letter '
                                  'or digit, e.g. team or example.com/team)'),
    (["--nodes", "0"], 'invalid value for nodes: 0 (expected a whole number of nodes from 1 to 1024)'),
    (["--nodes", "two"], 'invalid value for nodes: "two" (expected a whole number of nodes from 1 to 1024)'),
    (["--nodes", "2000"], 'invalid value for nodes: 2000 (expected a whole number of nodes from 1 to 1024)'),
])
def test_bad_selectors_and_node_counts(argv, message):
    assert str(fails(submitted, *argv, "--", "train")) == message


def test_job_file_and_placement_options_conflict(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text("spec: {command: [true]}\n")
    for extra in (["--nodes", "2"], ["--node-selector", "a=b"]):
        err = fails(_payload, parse(COMMANDS["submit"], ["-f", str(job), *extra]))
        assert "use either -f job.yaml or options with a command, not both" in str(err)


# -- the job document and the SDK's flags ---------------------------------------------------

def test_document_fields():
    s = parse_document(doc(gpuModels=["A100", "H100", "A100"], nodeSelector={"zone": "lab1"}, nodes=2,
                           resources={"requests": {"nvidia.com/gpu": 4, "cpu": "2"}}))
    assert (s.gpu_models, s.node_selector, s.nodes) == (("A100", "H100"), {"zone": "lab1"}, 2)
    assert parse_document(doc(gpuModels="A100", resources={"requests": {"gpu": 1}})).gpu_models == ("A100",)
    assert parse_document(doc(gpuModels=[], nodeSelector={})).constraints is None


@pytest.mark.parametrize("spec, message", [
    ({"gpuModels": 5, "resources": {"requests": {"gpu": 1}}},
     "invalid value for spec.gpuModels: 5 (expected a list of GPU model names (any of them), e.g. [A100, H100]; "
     "at most 16)"),
    ({"gpuModels": ["A100", "0"], "resources": {"requests": {"gpu": 1}}},
     'invalid value for spec.gpuModels[1]: "0" (expected a GPU model name: a letter, then letters, digits, -, _, . '
     'or spaces, at most 64 characters, e.g. A100, H100, RTX-4090)'),
    ({"gpuModels": ["A100"]},
     "invalid value for spec.gpuModels: ['A100'] (GPU models choose GPUs, and the job requests none: request "
     "nvidia.com/gpu too, e.g. --gpus A100:1)"),
    ({"nodeSelector": ["zone=lab1"]},
     "invalid value for spec.nodeSelector: ['zone=lab1'] (expected a mapping of label keys to values, "
     "e.g. {zone: lab1})"),
    ({"nodeSelector": {"rack": 3}},
     "invalid value for spec.nodeSelector.rack: 3 (expected a label value: at most 63 letters, digits, -, _ and ., "
     "starting and ending with a letter or digit (or empty), e.g. lab1; quote numbers)"),
    ({"nodes": 0}, "invalid value for spec.nodes: 0 (expected a whole number of nodes from 1 to 1024)"),
    ({"nodes": True}, "invalid value for spec.nodes: True (expected a whole number of nodes from 1 to 1024)"),
    ({"nodes": 1.5}, "invalid value for spec.nodes: 1.5 (expected a whole number of nodes from 1 to 1024)"),
])
def test_document_errors_name_the_field(spec, message):
    assert str(fails(parse_document, doc(**spec))) == message


def test_sdk_flags_take_a_list_of_models():
    s = from_flags(JobFlags(command=["train"], gpus=2, gpu_models=["A100", "H100"], node_selector={"zone": "a"},
                            nodes=2))
    assert (s.requests[GPU], s.gpu_models, s.node_selector, s.nodes) == (2, ("A100", "H100"), {"zone": "a"}, 2)
    err = fails(from_flags, JobFlags(command=["train"], gpus="A100:2", gpu_models=["H100"]))
    assert str(err) == ("invalid value for gpu_models: ['H100'] (give the GPU models once: in gpus (MODEL:COUNT) "
                        "or in gpu_models)")


# -- the stored spec and the scheduler's request ---------------------------------------------

def test_round_trips_and_old_specs():
    s = build_spec(["train"], requests={"cpu": "2"}, gpus="A100:2", node_selector={"zone": "lab1"}, nodes=3)
    assert JobSpec.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert parse_document(spec_to_document(s)) == s
    assert spec_to_document(s)["spec"]["gpuModels"] == ["A100"] and spec_to_document(s)["spec"]["nodes"] == 3
    old = {k: v for k, v in s.to_dict().items() if k not in ("gpu_models", "node_selector", "nodes")}
    back = JobSpec.from_dict(old)
    assert (back.gpu_models, back.node_selector, back.nodes, back.constraints) == ((), {}, 1, None)
    assert "gpuModels" not in spec_to_document(back)["spec"]


def test_demand_is_the_total_with_the_constraints():
    s = build_spec(["train"], requests={"cpu": "2", "memory": "4Gi"}, gpus="A100:2", node_selector={"zone": "a"},
                   nodes=3)
    d = s.demand
    assert dict(d) == {CPU: 6000, MEMORY: 12 * GiB, GPU: 6}
    assert d.constraints == Constraints(("A100",), (("zone", "a"),), 3)
    assert d.replicas == 3 and d.per_node().as_dict() == s.requests.as_dict()
    one = build_spec(["train"], requests={"cpu": "1"}, gpus="A100:1")
    assert dict(one.demand) == dict(one.requests) and one.demand.constraints == Constraints(("A100",))
    plain = build_spec(["train"], requests={"cpu": "1"}, gpus=1)
    assert plain.demand is plain.requests


# -- the daemon's config --------------------------------------------------------------------

def test_simulated_gpus_with_and_without_a_model():
    assert (parse_config({"simulate_gpus": 4}).simulate_gpus, Config().simulate_gpu_model) == (4, "Simulated GPU")
    c = parse_config({"simulate_gpus": {"count": 2, "model": "A100"}})
    assert (c.simulate_gpus, c.simulate_gpu_model) == (2, "A100")
    assert parse_config({"simulate_gpus": {"count": 3}}).simulate_gpu_model == "Simulated GPU"
    again = c.merged(simulate_gpus=4)               # `corral up --simulate-gpus 4`: the count, same model
    assert (again.simulate_gpus, again.simulate_gpu_model) == (4, "A100")
    assert Config.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_node_labels():
    c = parse_config({"node_labels": {"zone": "lab1", "example.com/rack": "r3"}})
    assert c.node_labels == {"zone": "lab1", "example.com/rack": "r3"}
    assert Config.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert Config().node_labels == {}


@pytest.mark.parametrize("data, message", [
    ({"simulate_gpus": {"model": "A100"}},
     "c.yaml: missing field simulate_gpus.count (expected a whole number from 0 to 64, e.g. {count: 4, model: A100})"),
    ({"simulate_gpus": {"count": 2, "kind": "A100"}},
     "c.yaml: unknown field simulate_gpus.kind (accepted: count, model)"),
    ({"simulate_gpus": {"count": 99, "model": "A100"}},
     "c.yaml: invalid value for simulate_gpus.count: 99 (expected a whole number from 0 to 64)"),
    ({"simulate_gpus": {"count": 2, "model": "80GB"}},
     'c.yaml: invalid value for simulate_gpus.model: "80GB" (expected a GPU model name: a letter, then letters, '
     'digits, -, _, . or spaces, at most 64 characters, e.g. A100, H100, RTX-4090)'),
    ({"node_labels": "zone=lab1"},
     'c.yaml: invalid value for node_labels: "zone=lab1" (expected a mapping of label keys to values, '
     'e.g. {zone: lab1})'),
    ({"node_labels": {"zone": 1}},
     "c.yaml: invalid value for node_labels.zone: 1 (expected a label value: at most 63 letters, digits, -, _ and ., "
     "starting and ending with a letter or digit (or empty), e.g. lab1; quote numbers)"),
])
def test_config_errors(data, message):
    assert str(fails(parse_config, data, "c.yaml")) == message


# -- the daemon on two labelled nodes -------------------------------------------------------

def two_nodes():
    return [make_node("a", cores=4, memory=8 * GiB, gpus=2, gpu_model="NVIDIA A100-SXM4-80GB",
                      labels={"zone": "east"}),
            make_node("b", cores=4, memory=8 * GiB, gpus=2, gpu_model="NVIDIA H100 80GB HBM3",
                      labels={"zone": "west"})]


def test_the_daemon_places_models_selectors_and_replicas():
    m = manager(executor=FakeExecutor(two_nodes()))
    jobs = m.submit([build_spec(["t"], requests={"cpu": "1"}, gpus="H100:1"),
                     build_spec(["t"], requests={"cpu": "1"}, node_selector={"zone": "east"}),
                     build_spec(["t"], requests={"cpu": "1"}, gpus=1, nodes=2)])
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    assert ex.launched[jobs[0].id].allocation.node == "b"
    assert ex.launched[jobs[1].id].allocation.node == "a"
    pieces = ex.launched[jobs[2].id].allocation.pieces
    assert sorted(p.node for p in pieces) == ["a", "b"] and all(len(p.gpus) == 1 for p in pieces)
    view = job_view(m.store.get_job(jobs[2].id), m)
    assert (view["nodes"], view["requests"]) == (2, {"cpu": "1", "nvidia.com/gpu": "1"})   # per node
    assert job_view(m.store.get_job(jobs[0].id), m)["gpu_models"] == ["H100"]
    assert [n["labels"] for n in node_view(m, {})] == [{"zone": "east"}, {"zone": "west"}]
    # Both H100s are taken (job 1 and a replica of job 3): another H100 job waits, naming
    # the model, though an A100 is free.
    [more] = m.submit([build_spec(["t"], gpus="H100:1")])
    assert m.store.get_job(more.id).state is JobState.PENDING
    assert m.waiting_for(more.id).message == "insufficient nvidia.com/gpu (H100): requests 1, free 0 of 2"


@pytest.mark.parametrize("spec, line", [
    (dict(gpus="V100:1"), "no node has 1 GPU of model V100 (GPUs here: 2 x NVIDIA A100-SXM4-80GB, "
                          "2 x NVIDIA H100 80GB HBM3)"),
    (dict(node_selector={"zone": "north"}), "no node matches node selector zone=north "
                                            "(labels here: zone=east, zone=west)"),
    (dict(gpus=1, nodes=3), "needs 3 nodes that can each hold cpu=1, nvidia.com/gpu=1; 2 of the 2 nodes can"),
])
def test_what_can_never_fit_is_refused_at_submit(spec, line):
    m = manager(executor=FakeExecutor(two_nodes()))
    with pytest.raises(Infeasible) as info:
        m.submit([build_spec(["t"], requests={"cpu": "1"}, **spec)])
    assert info.value.lines == [line]
    assert m.store.list_jobs() == []


def test_quotas_count_every_replica():
    from corral.scheduler.queues import QueueSpec
    from corral.scheduler.settings import Scheduling

    queues = (QueueSpec(name="small", nominal={GPU: 1}, borrowing_limit={GPU: 0}),)
    m = manager(executor=FakeExecutor(two_nodes()), scheduling=Scheduling.make(queues))
    with pytest.raises(Infeasible) as info:
        m.submit([build_spec(["t"], gpus=1, nodes=2, queue="small")])
    assert info.value.lines == ["insufficient quota for nvidia.com/gpu: job requests 2, queue small can hold at "
                                "most 1 (nominal plus what it may borrow)"]


# -- the simulator replays what the scheduler placed -------------------------------------------

def test_corral_history_replays_the_demand(tmp_path):
    from corral.job import Allocation, Job, Reason
    from corral.sim.checks import feasible
    from corral.sim.loaders import load_corral
    from corral.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "corral.db")
    specs = [build_spec(["t"], name="ddp", requests={"cpu": "1"}, gpus=2, nodes=2),
             build_spec(["t"], name="a100", requests={"cpu": "1"}, gpus="A100:1")]
    jobs = store.add_jobs([Job(id=0, spec=s) for s in specs], now=1000.0)
    store.start_jobs([(j.id, Allocation(node="a", requests=Resources({CPU: 1000}))) for j in jobs], now=1001.0)
    for j in jobs:
        store.finish_job(j.id, JobState.SUCCEEDED, Reason.COMPLETED, exit_code=0, ended_at=1011.0)
    store.close()
    ddp, a100 = load_corral(tmp_path / "corral.db").jobs
    assert ddp.requests == specs[0].demand and ddp.requests[GPU] == 4 and ddp.requests.replicas == 2
    assert a100.requests.constraints == Constraints(("A100",))
    why: dict[int, str] = {}         # replicas are never split as a gang, even when larger than a node
    ok = feasible([make_node("s1", cores=4, memory=8 * GiB, gpus=2)], [ddp, a100], why)
    assert list(ok) == [] and why == {
        ddp.id: "needs 2 nodes that can each hold cpu=1, nvidia.com/gpu=2; 1 of the 1 nodes can",
        a100.id: "no node has 1 GPU of model A100 (GPUs here: 2 x Simulated GPU)"}
