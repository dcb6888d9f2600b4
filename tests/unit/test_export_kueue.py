"""``corral export kueue``: golden manifests, valid against Kueue's own CRD schemas
(vendored in tests/data/kueue with their licence; Kueue v0.19.2, API v1beta2), the CEL
rules that matter checked by hand, and what has no Kueue equivalent said in a comment.

Golden files: ``tests/data/export/NAME.kueue.yaml`` for ``NAME.config.yaml`` on a fixed
machine; ``CORRAL_UPDATE_GOLDEN=1`` rewrites them.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import jsonschema
import pytest
import yaml

from corral.config import load_config, parse_config
from corral.errors import ValidationError
from corral.export.jobs import load_jobs
from corral.export.kubernetes import QUEUE_LABEL, Target, export_job, job_name
from corral.export.kueue import export_kueue
from corral.export.machine import Machine
from corral.export.render import to_yaml
from corral.resources import CPU, GPU, MEMORY, Resources, parse_quantity

DATA = Path(__file__).resolve().parents[1] / "data"
EXPORT = DATA / "export"
UPDATE = os.environ.get("CORRAL_UPDATE_GOLDEN") == "1"
GiB = 2**30
TWO_MODELS = Machine("gpu-box-1", Resources({CPU: 64000, MEMORY: 512 * GiB + 12345, GPU: 8, "example.com/fpga": 2}),
                     (("NVIDIA A100-SXM4-80GB", 4), ("NVIDIA H100 80GB HBM3", 4)), source="NVML")
ONE_MODEL = Machine("Lab_Server", Resources({CPU: 16000, MEMORY: 125 * GiB, GPU: 4}),
                    (("Simulated GPU", 4),), source="4 simulated GPUs")
NO_GPU = Machine("laptop", Resources({CPU: 8000, MEMORY: 15 * GiB}))
CASES = {"quotas": TWO_MODELS, "empty": ONE_MODEL, "nogpu": NO_GPU}
KINDS = {"ResourceFlavor": "resourceflavors", "ClusterQueue": "clusterqueues", "LocalQueue": "localqueues",
         "WorkloadPriorityClass": "workloadpriorityclasses"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _strict(schema: object) -> object:
    """Refuse properties an object schema does not list (the API server would prune
    them silently), unless it says otherwise."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@lru_cache(maxsize=None)
def validator(kind: str) -> jsonschema.Draft7Validator:
    crd = yaml.safe_load((DATA / "kueue" / f"kueue.x-k8s.io_{KINDS[kind]}.yaml").read_text())
    assert crd["spec"]["names"]["kind"] == kind
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
    assert version["served"] and version["storage"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def validate(body: dict) -> None:
    assert body["apiVersion"] == "kueue.x-k8s.io/v1beta2"
    name = body["metadata"]["name"]
    assert len(name) <= 253 and DNS_SUBDOMAIN.match(name), name
    errors = sorted(validator(body["kind"]).iter_errors(body), key=str)
    assert not errors, f"{body['kind']}/{name}: {errors[0].message} at {list(errors[0].absolute_path)}"


def check_cel(docs: list[dict]) -> None:
    """The CEL rules and references the schemas cannot check, for what corral writes."""
    flavors = {d["metadata"]["name"] for d in docs if d["kind"] == "ResourceFlavor"}
    queues = {d["metadata"]["name"] for d in docs if d["kind"] == "ClusterQueue"}
    for d in docs:
        if d["kind"] == "LocalQueue":
            assert d["spec"]["clusterQueue"] in queues
        if d["kind"] != "ClusterQueue":
            continue
        spec, seen_resources, seen_flavors = d["spec"], set(), set()
        for group in spec["resourceGroups"]:
            covered = group["coveredResources"]
            assert not seen_resources & set(covered), "a resource in two groups"
            seen_resources |= set(covered)
            for flavor in group["flavors"]:
                assert flavor["name"] in flavors and flavor["name"] not in seen_flavors
                seen_flavors.add(flavor["name"])
                assert [r["name"] for r in flavor["resources"]] == covered, "resources in coveredResources' order"
                for r in flavor["resources"]:
                    if "borrowingLimit" in r or "lendingLimit" in r:
                        assert spec.get("cohortName"), "limits need a cohort"
                    if "lendingLimit" in r:
                        lend, nominal = (parse_quantity(r["name"], r[k]) for k in ("lendingLimit", "nominalQuota"))
                        assert lend <= nominal


def export(name: str, namespace: str = "default") -> tuple[list, list[str]]:
    return export_kueue(load_config(EXPORT / f"{name}.config.yaml"), CASES[name], namespace)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_and_valid(name):
    manifests, header = export(name, namespace="ml" if name == "quotas" else "default")
    text = to_yaml(manifests, header)
    path = EXPORT / f"{name}.kueue.yaml"
    if UPDATE or not path.exists():
        path.write_text(text)
        if not UPDATE:
            pytest.fail(f"{path.name} did not exist: written; check it and run again")
    assert text == path.read_text(), f"{path.name} differs (CORRAL_UPDATE_GOLDEN=1 rewrites it)"
    docs = list(yaml.safe_load_all(text))
    assert docs == [m.body for m in manifests]
    for body in docs:
        validate(body)
    check_cel(docs)


def bodies(name: str, kind: str) -> dict[str, dict]:
    return {m.body["metadata"]["name"]: m for m in export(name)[0] if m.body["kind"] == kind}


def quota(cq, flavor: str, resource: str) -> dict:
    for group in cq.body["spec"]["resourceGroups"]:
        for f in group["flavors"]:
            if f["name"] == flavor:
                for r in f["resources"]:
                    if r["name"] == resource:
                        return r
    raise KeyError((flavor, resource))


def test_a_flavor_per_gpu_model_and_one_for_the_rest():
    flavors = bodies("quotas", "ResourceFlavor")
    assert flavors["default-flavor"].body["spec"] == {}
    assert flavors["nvidia-a100-sxm4-80gb"].body["spec"] == {"nodeLabels": {"nvidia.com/gpu.product":
                                                                           "NVIDIA-A100-SXM4-80GB"}}
    assert set(flavors) == {"default-flavor", "nvidia-a100-sxm4-80gb", "nvidia-h100-80gb-hbm3"}
    [cq] = [bodies("nogpu", "ClusterQueue")["teaching"]]
    assert cq.body["spec"]["resourceGroups"] == [{"coveredResources": ["cpu", "memory", "nvidia.com/gpu"], "flavors": [
        {"name": "default-flavor", "resources": [
            {"name": "cpu", "nominalQuota": "4", "borrowingLimit": "2"},
            {"name": "memory", "nominalQuota": "15Gi", "borrowingLimit": "0", "lendingLimit": "0"},
            {"name": "nvidia.com/gpu", "nominalQuota": "1"}]}]}]


def test_quotas_map_one_to_one_in_one_cohort():
    queues = bodies("quotas", "ClusterQueue")
    assert set(queues) == {"research", "prod-inference", "batch", "default"}
    assert {cq.body["spec"]["cohortName"] for cq in queues.values()} == {"gpu-box-1"}
    research = queues["research"]
    assert quota(research, "nvidia-a100-sxm4-80gb", GPU) == {"name": GPU, "nominalQuota": "4",
                                                            "borrowingLimit": "2", "lendingLimit": "2"}
    assert quota(research, "default-flavor", CPU) == {"name": CPU, "nominalQuota": "16"}
    # memory is not in research's quota: the machine's (whole MiB), lent to no one, not borrowed
    assert quota(research, "default-flavor", MEMORY) == {"name": MEMORY, "nominalQuota": "512Gi",
                                                         "borrowingLimit": "0", "lendingLimit": "0"}
    assert quota(queues["prod-inference"], "nvidia-h100-80gb-hbm3", GPU)["lendingLimit"] == "0"
    assert quota(queues["default"], "nvidia-h100-80gb-hbm3", GPU) == {"name": GPU, "nominalQuota": "4",
                                                                      "borrowingLimit": "0"}
    assert queues["prod-inference"].body["spec"]["queueingStrategy"] == "StrictFIFO"
    assert research.body["spec"]["preemption"] == {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"}
    assert "preemption" not in bodies("empty", "ClusterQueue")["default"].body["spec"]


def test_what_has_no_kueue_equivalent_is_a_comment():
    manifests, header = export("quotas")
    text = to_yaml(manifests, header)
    for said in ("# max_user_gpus: 2 (no Kueue equivalent", "# max_user_jobs: 8 (no Kueue equivalent",
                 "# policy fair-share", "# policy sjf", "# priority_class: normal", "# backfill: true",
                 "# corral queue prod_inference is prod-inference", "counts GPUs of every model together",
                 "# preempt: false", "# open only to users alice; groups leads", "# default: true"):
        assert said in text, said


def test_local_queues_are_what_jobs_name():
    manifests, _ = export("quotas", namespace="ml")
    local = {m.body["metadata"]["name"]: m.body for m in manifests if m.body["kind"] == "LocalQueue"}
    assert all(q["metadata"]["namespace"] == "ml" for q in local.values())
    classes = {m.body["metadata"]["name"] for m in manifests if m.body["kind"] == "WorkloadPriorityClass"}
    assert classes == {"urgent", "normal", "scavenger"}
    config = load_config(EXPORT / "quotas.config.yaml")
    for path in sorted(EXPORT.glob("*.job.yaml")):
        for spec in load_jobs(path.read_text(), path.name, config, "quotas.config.yaml"):
            for m in export_job(spec, job_name(spec)[0], Target(image="x")):
                labels = m.body["metadata"].get("labels", {})
                if QUEUE_LABEL in labels:
                    assert labels[QUEUE_LABEL] in local, path.name
                if "kueue.x-k8s.io/priority-class" in labels:
                    assert labels["kueue.x-k8s.io/priority-class"] in classes


def test_queue_names_that_collide_in_kubernetes_are_refused():
    config = parse_config({"queues": [{"name": "team_a"}, {"name": "team-a"}]})
    with pytest.raises(ValidationError) as info:
        export_kueue(config, NO_GPU)
    assert str(info.value) == ('conflicting names in queues: "team_a" and "team-a" both become team-a '
                               '(expected names that stay distinct in Kubernetes)')


def test_the_vendored_crds_name_their_version_and_licence():
    readme = (DATA / "kueue" / "README.md").read_text()
    assert "v0.19.2" in readme and "CEL" in readme
    assert "Apache License" in (DATA / "kueue" / "LICENSE").read_text()


def test_the_schema_check_refuses_what_the_api_server_would_prune():
    with pytest.raises(AssertionError, match="'cohort' was unexpected"):
        validate({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": "q"},
                  "spec": {"cohort": "machine"}})                        # v1beta1's name for cohortName
    with pytest.raises(AssertionError, match="nominalQuota"):
        validate({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": "q"},
                  "spec": {"resourceGroups": [{"coveredResources": ["cpu"], "flavors": [
                      {"name": "f", "resources": [{"name": "cpu", "nominal": "1"}]}]}]}})



def test_las_is_said_to_have_no_kueue_equivalent():
    docs, notes = export_kueue(parse_config({"policy": "las"}), NO_GPU)
    said = "\n".join(notes) + "\n".join(str(d) for d in docs)
    assert "policy las (least attained service first, in levels, preempting resumable jobs by it): " \
           "no Kueue equivalent" in said
