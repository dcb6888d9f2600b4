"""``corral export kubernetes``: golden manifests, valid against Kubernetes' own schemas
(kubernetes-validate, strict: an unknown field is an error), and every bad job refused in
one line naming the field.

The golden files are ``tests/data/export/NAME.k8s.yaml`` for ``NAME.job.yaml``, exported
under ``quotas.config.yaml`` on a fixed machine; ``CORRAL_UPDATE_GOLDEN=1`` rewrites them.
"""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from corral.config import load_config
from corral.errors import ValidationError
from corral.export.jobs import load_jobs
from corral.export.kubernetes import QUEUE_LABEL, Target, export_job, job_name
from corral.export.machine import Machine
from corral.export.pods import literal
from corral.export.render import to_json, to_yaml
from corral.resources import CPU, GPU, MEMORY, Resources
from corral.spec import build_spec

DATA = Path(__file__).resolve().parents[1] / "data" / "export"
UPDATE = os.environ.get("CORRAL_UPDATE_GOLDEN") == "1"
GiB = 2**30
#: The oldest Kubernetes the output needs (backoffLimitPerIndex and podFailurePolicy are
#: GA from 1.33), and the newest kubernetes-validate knows.
VERSIONS = ("1.33.0", kubernetes_validate.latest_version())
MACHINE = Machine("gpu-box-1", Resources({CPU: 64000, MEMORY: 512 * GiB + 12345, GPU: 8, "example.com/fpga": 2}),
                  (("NVIDIA A100-SXM4-80GB", 4), ("NVIDIA H100 80GB HBM3", 4)), source="NVML")
IMAGE = "registry.example/ml/train:1.0"
JOBS = sorted(p.name.removesuffix(".job.yaml") for p in DATA.glob("*.job.yaml"))


def config():
    return load_config(DATA / "quotas.config.yaml")


def target(**kw) -> Target:
    return Target(image=IMAGE, kill_grace=config().kill_grace, machine_models=MACHINE.gpu_models, **kw)


def export_file(name: str, **kw) -> list:
    path = DATA / f"{name}.job.yaml"
    out = []
    for spec in load_jobs(path.read_text(), path.name, config(), "quotas.config.yaml"):
        job, notes = job_name(spec)
        manifests = export_job(spec, job, target(**kw))
        out += manifests[:-1] + [type(manifests[-1])(manifests[-1].body, tuple(notes) + manifests[-1].notes)]
    return out


def validate(body: dict) -> None:
    for version in VERSIONS:
        kubernetes_validate.validate(body, version, strict=True)


def golden(path: Path, text: str) -> None:
    if UPDATE or not path.exists():
        path.write_text(text)
        if not UPDATE:
            pytest.fail(f"{path.name} did not exist: written; check it and run again")
    assert text == path.read_text(), f"{path.name} differs (CORRAL_UPDATE_GOLDEN=1 rewrites it)"


# -- golden manifests, valid -------------------------------------------------------------------

@pytest.mark.parametrize("name", JOBS)
def test_golden_and_valid(name):
    manifests = export_file(name, namespace="ml" if name == "gang" else None)
    text = to_yaml(manifests)
    golden(DATA / f"{name}.k8s.yaml", text)
    docs = list(yaml.safe_load_all(text))
    assert docs == [m.body for m in manifests]             # the comments are only comments
    for body in docs:
        validate(body)


def test_the_golden_inputs_cover_what_the_issue_names():
    assert {"basic", "array", "array-range", "gang", "policy", "pty"} <= set(JOBS)


def test_requests_limits_time_and_grace_map_one_to_one():
    [job] = [m.body for m in export_file("basic")]
    pod = job["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["resources"] == {"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
                              "limits": {"cpu": "6", "memory": "24Gi", "nvidia.com/gpu": "2"}}
    assert job["spec"]["activeDeadlineSeconds"] == 7200 and job["spec"]["backoffLimit"] == 2
    assert pod["terminationGracePeriodSeconds"] == 30                 # the config's kill_grace
    assert pod["nodeSelector"] == {"zone": "lab1", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert c["command"] == ["python"] and c["args"][-4:] == ["--out", "$$(pwd)/ckpt", "--tag", "$$$"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["OMP_NUM_THREADS"] == "8" and env["MKL_NUM_THREADS"] == "4"   # the spec's wins, else the cpus
    assert "suspend" not in job["spec"] and QUEUE_LABEL not in job["metadata"]["labels"]


def test_an_array_is_an_indexed_job_with_corrals_index():
    [job] = [m.body for m in export_file("array")]
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 5, 2)
    assert spec["backoffLimitPerIndex"] == 1 and "activeDeadlineSeconds" not in spec
    pod = spec["template"]["spec"]
    assert pod["activeDeadlineSeconds"] == 1800                       # per task
    [c] = pod["containers"]
    assert c["command"][:2] == ["/bin/sh", "-c"] and c["args"][:2] == ["/bin/sh", "-c"]
    assert {"name": "CORRAL_ARRAY_INDICES", "value": "1 3 5 6 7"} in c["env"]
    assert c["lifecycle"]["preStop"]["exec"]["command"][2].startswith("kill -s USR1 1;")


def test_array_index_lookup_runs_in_a_shell():
    """The wrapper, as Kubernetes would run it (``$$`` unescaped), gives each completion
    index its corral index."""
    import subprocess

    for name, expect in (("array", [1, 3, 5, 6, 7]), ("array-range", [10, 15, 20, 25, 30])):
        body = [m.body for m in export_file(name)][-1]
        [c] = body["spec"]["template"]["spec"]["containers"]
        argv = [a.replace("$$", "$") for a in c["command"]] + ["sh", "-c", 'echo "$CORRAL_ARRAY_INDEX"']
        env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
        got = [int(subprocess.run(argv, env={**env, "JOB_COMPLETION_INDEX": str(i)}, capture_output=True,
                                  text=True, check=True).stdout) for i in range(body["spec"]["completions"])]
        assert got == expect


def test_an_array_from_zero_needs_no_wrapper():
    job = export_file("array-range")[0].body
    [c] = job["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["python"]
    [ref] = [e for e in c["env"] if e["name"] == "CORRAL_ARRAY_INDEX"]
    index = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert ref["valueFrom"]["fieldRef"]["fieldPath"] == index
    assert job["metadata"]["labels"][QUEUE_LABEL] == "research" and job["spec"]["suspend"] is True


def test_a_gang_is_an_indexed_job_one_pod_per_node_with_rank_variables():
    service, job = (m.body for m in export_file("gang", namespace="ml"))
    assert service["kind"] == "Service" and service["spec"]["clusterIP"] == "None"
    assert service["metadata"] == {"name": "llm-pretrain", "namespace": "ml"}
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (4, 4, 0)
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == "llm-pretrain"
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"]
    [c] = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["MASTER_ADDR"]["value"] == "llm-pretrain-0.llm-pretrain" and env["MASTER_PORT"]["value"] == "29500"
    assert env["WORLD_SIZE"]["value"] == env["CORRAL_NUM_NODES"]["value"] == "4"
    assert [e["name"] for e in c["env"]].count("MASTER_PORT") == 1            # corral's wins over the spec's
    for rank in ("RANK", "NODE_RANK", "CORRAL_NODE_RANK"):
        assert "job-completion-index" in env[rank]["valueFrom"]["fieldRef"]["fieldPath"]
    assert job["metadata"]["labels"] == {"team": "nlp", QUEUE_LABEL: "research",
                                         "kueue.x-k8s.io/priority-class": "urgent"}
    notes = " ".join(export_file("gang")[1].notes)
    assert "retries 1" in notes and "JobSet" in notes


def test_what_has_no_equivalent_is_a_note():
    [m] = export_file("policy")
    notes = " | ".join(m.notes)
    for said in ("metadata.name 'Nightly Export_v2' is nightly-export-v2", "dependencies afterok:12, afterany:14_2",
                 "idleGpu", "priority 5", "preemptible: false", "requeue: false", "hold"):
        assert said in notes, said
    assert m.body["metadata"]["annotations"] == {"corral.dev/name": "Nightly Export_v2"}
    assert m.body["metadata"]["labels"] == {QUEUE_LABEL: "batch"}
    assert m.body["spec"]["podFailurePolicy"]["rules"][0]["action"] == "FailJob"       # requeue: false
    assert "lifecycle" not in m.body["spec"]["template"]["spec"]["containers"][0]      # SIGTERM: Kubernetes' own
    text = to_yaml([m])
    assert all(f"# {n}" in text for n in m.notes)


def test_a_label_value_kubernetes_refuses_becomes_an_annotation():
    [m] = export_file("basic")
    assert m.body["metadata"]["labels"] == {"team": "vision"}
    assert m.body["metadata"]["annotations"] == {"project": "imagenet 2026", "corral.dev/name": "resnet-lr0.1"}


def test_json_is_one_object_or_a_list():
    import json

    [job] = export_file("basic")
    assert json.loads(to_json([job])) == job.body
    both = export_file("gang")
    listed = json.loads(to_json(both))
    assert listed["kind"] == "List" and [i["kind"] for i in listed["items"]] == ["Service", "Job"]
    validate(listed["items"][0])


@pytest.mark.parametrize("text, escaped", [
    ("plain", "plain"), ("$HOME", "$HOME"), ("$(date)", "$$(date)"), ("$$", "$$$"), ("a$", "a$"),
    ("$$(x)", "$$$$(x)"), ("$((1+2))", "$$((1+2))"),
])
def test_kubernetes_expansion_is_escaped(text, escaped):
    assert literal(text) == escaped
    assert _expand(escaped) == text


def _expand(text: str) -> str:
    """Kubernetes' ``$(VAR)`` expansion (third_party/forked/golang/expansion), with no
    variables defined: ``$$`` is ``$``, an undefined ``$(VAR)`` stays as it is."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end >= 0:
                    out.append(text[i:end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def test_names_fit_kubernetes():
    spec = build_spec(["true"], name="x" * 80, array="0-999")
    name, notes = job_name(spec)
    assert name == "x" * 59 and notes                                 # NAME-999 is a 63-character hostname
    assert job_name(build_spec(["true"]), job_id=12) == ("corral-12", [])
    assert job_name(build_spec(["true"], name="Bad Name"), given="good")[0] == "good"


def test_machine_models_name_the_products_a_gpu_model_matches():
    spec = build_spec(["true"], gpus="H100:1")
    [m] = export_job(spec, "h", target())
    assert m.body["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert not m.notes
    [m] = export_job(build_spec(["true"], gpus="L4:1"), "l", target())
    assert m.body["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "L4"}
    assert any("L4" in n and "exactly" in n for n in m.notes)


# -- refused, one line naming the field --------------------------------------------------------

def refused(fn, *args, **kw) -> str:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kw)
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text
    return text


NAMED = "metadata: {name: j}\n"


@pytest.mark.parametrize("doc, field", [
    (NAMED + "spec: {command: [x], nodes: 2, array: 0-3}", "spec.nodes"),
    (NAMED + "spec: {command: [x], queue: nope}", "spec.queue"),
    (NAMED + "spec: {command: [x], priority: vip}", "spec.priority"),
    (NAMED + "spec: {command: [x], comand: [y]}", "spec.comand"),
    (NAMED + "spec: {command: [x], resources: {requests: {memory: 16GB}}}", "spec.resources.requests.memory"),
    (NAMED + f"spec: {{command: [x], gpuModels: [{'A' * 64}], resources: {{requests: {{nvidia.com/gpu: 1}}}}}}",
     "spec.gpuModels[0]"),
    ("metadata: {name: '_'}\nspec: {command: [x]}", "metadata.name"),
    ("spec: {command: [x]}", "metadata.name"),
])
def test_bad_jobs_are_refused_naming_the_field(doc, field):
    text = "apiVersion: corral/v1\nkind: Job\n" + doc

    def run():
        for spec in load_jobs(text, "bad.yaml", config(), "quotas.config.yaml"):
            export_job(spec, job_name(spec)[0], target())

    line = refused(run)
    assert field in line, line


def test_unknown_queue_names_the_queues_there_are():
    text = "apiVersion: corral/v1\nkind: Job\nspec: {command: [x], queue: nope}\n"
    line = refused(load_jobs, text, "j.yaml", config(), "quotas.config.yaml")
    assert line == ('j.yaml: unknown queue in spec.queue: "nope" (expected one of the queues of quotas.config.yaml: '
                    'research, prod_inference, batch, default; --config FILE reads another corral config)')


def test_a_name_option_that_is_not_a_dns_label_is_refused():
    assert "--name" in refused(job_name, build_spec(["true"]), given="Not_OK")


def test_strict_validation_refuses_fields_kubernetes_does_not_have():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"podsPerIndex": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)
    del job["spec"]["podsPerIndex"]
    validate(job)
