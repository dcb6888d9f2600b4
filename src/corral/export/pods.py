"""A corral job's process as a Kubernetes container, and where its pods may run.

* **Command**: the argv as ``command`` (the program) and ``args`` (the rest); every
  ``$`` that Kubernetes would expand (``$(VAR)``, ``$$``) is escaped, so the process gets
  exactly the argv corral would run. A job file's shell string stays ``/bin/sh -c STRING``.
* **Environment**: the spec's ``env`` plus what corral gives every job and can give in a
  pod (:mod:`corral.executors.environment`): ``PYTHONUNBUFFERED=1`` and the thread-pool
  sizes (``OMP_NUM_THREADS`` ...) from the CPU request unless the spec sets them,
  ``CORRAL_JOB_NAME``, ``CORRAL_NODE`` (the node's name, from the downward API). Job ids,
  ``CORRAL_CPUS``/``CORRAL_GPUS`` and ``CUDA_VISIBLE_DEVICES`` are the kubelet's and the
  NVIDIA device plugin's to set, not corral's. The submitter's own environment is not
  exported: a pod's comes from its image.
* **Resources**: requests and limits 1:1, as exact quantities (GPU and extended
  resources have request == limit already: corral refuses anything else).
* **Stop signal**: Kubernetes stops a container with SIGTERM. A job with another stop
  signal gets a ``preStop`` hook that sends it to the container's PID 1 and waits for the
  process to end; SIGKILL follows when the grace period runs out, as in corral.
* **GPU models**: ``nvidia.com/gpu.product`` (the label NVIDIA's GPU Feature Discovery
  sets) ``In`` the product names of the machine's GPUs that the wanted models name
  (corral matches ``A100`` to ``NVIDIA A100-SXM4-80GB``; a label selector matches exactly).
"""

from __future__ import annotations

from typing import Any

from ..resources import CPU, Resources, sort_key
from ..spec import SHELL, JobSpec
from .names import label_value, quantity

GPU_PRODUCT = "nvidia.com/gpu.product"
HOSTNAME = "kubernetes.io/hostname"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
CONTAINER = "job"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")


def literal(text: str) -> str:
    """``text`` escaped against Kubernetes' ``$(VAR)`` expansion in command, args and env
    values: a ``$`` before ``(`` or ``$`` is doubled (Kubernetes turns ``$$`` into ``$``)."""
    if "$" not in text:
        return text
    out = []
    for i, ch in enumerate(text):
        out.append("$$" if ch == "$" and text[i + 1:i + 2] in ("(", "$") else ch)
    return "".join(out)


def command_fields(argv: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {"command": [literal(argv[0])]}
    if len(argv) > 1:
        fields["args"] = [literal(a) for a in argv[1:]]
    return fields


def value(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "value": literal(text)}


def field_ref(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def annotation_ref(name: str, key: str) -> dict[str, Any]:
    return field_ref(name, f"metadata.annotations['{key}']")


def environment(spec: JobSpec, corral_vars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The container's ``env``: corral's defaults the spec does not set, the spec's own
    variables, then ``corral_vars`` (which win, as they do in corral: the spec's
    ``CORRAL_*`` and rank variables are left out)."""
    own = {v["name"] for v in corral_vars}
    threads = str(max(1, spec.requests.get(CPU, 0) // 1000))
    env = [value("PYTHONUNBUFFERED", "1")] if "PYTHONUNBUFFERED" not in spec.env else []
    env += [value(var, threads) for var in THREAD_VARS if var not in spec.env]
    env += [value(k, v) for k, v in spec.env.items() if k not in own and not k.startswith("CORRAL_")]
    env.append(value("CORRAL_JOB_NAME", spec.name))
    env.append(field_ref("CORRAL_NODE", "spec.nodeName"))
    return env + corral_vars


def _quantities(resources: Resources) -> dict[str, str]:
    return {name: quantity(name, amount) for name, amount in sorted(resources.items(), key=lambda kv: sort_key(kv[0]))}


def resources(spec: JobSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.requests:
        out["requests"] = _quantities(spec.requests)
    if spec.limits:
        out["limits"] = _quantities(spec.limits)
    return out


def stop_hook(signal: str | None, pid1: tuple[str, ...]) -> tuple[dict[str, Any] | None, list[str]]:
    """The ``lifecycle`` for a stop signal other than SIGTERM, and the notes saying so;
    ``pid1``: the argv the container's first process ends up running."""
    if signal is None or signal == "SIGTERM":
        return None, []
    name = signal.removeprefix("SIG")
    script = f"kill -s {name} 1; while kill -0 1 2>/dev/null; do sleep 1; done"
    notes = [f"stopSignal {signal}: Kubernetes stops containers with SIGTERM, so a preStop hook (needs /bin/sh "
             f"in the image) sends {signal} to the container's PID 1 and waits for it to end; SIGKILL follows "
             "after terminationGracePeriodSeconds"]
    if pid1[:2] == SHELL and len(pid1) > 2 and not pid1[2].lstrip().startswith("exec "):
        notes.append(f"the command is a shell string, so PID 1 is /bin/sh, which does not pass {signal} on: start "
                     "the program with exec (exec python train.py) for it to get the signal")
    return {"preStop": {"exec": {"command": ["/bin/sh", "-c", script]}}}, notes


def gpu_products(wanted: tuple[str, ...], machine_models: tuple[str, ...],
                 path: str = "spec.gpuModels") -> tuple[list[str], list[str]]:
    """The ``nvidia.com/gpu.product`` values for the wanted models, and notes.

    Each wanted model becomes the product names of the machine's GPUs it names (as the
    scheduler matches them); one the machine has none of is written as it is, with a
    note: a label selector matches only the exact product name."""
    from ..scheduler.eligibility import gpu_model_matches

    values: list[str] = []
    notes: list[str] = []
    for i, model in enumerate(wanted):
        found = [m for m in machine_models if gpu_model_matches(model, m)]
        if not found:
            shown = label_value(model, f"{path}[{i}]")
            notes.append(f"GPU model {model}: this machine has no GPU of it, so {GPU_PRODUCT} is {shown} as "
                         "written; GPU Feature Discovery labels nodes with the full product name (e.g. "
                         "NVIDIA-A100-SXM4-80GB), which a node selector must match exactly")
            found = [model]
        for product in found:
            text = label_value(product, f"{path}[{i}]")
            if text not in values:
                values.append(text)
    return values, notes


def placement(spec: JobSpec, machine_models: tuple[str, ...], gang_of: str | None) -> tuple[dict[str, Any], list[str]]:
    """``nodeSelector`` and ``affinity`` for the pod spec, and notes. ``gang_of``: the
    Job's name when its pods must land one per node."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    selector = dict(spec.node_selector)
    terms: list[dict[str, Any]] = []
    if spec.gpu_models:
        products, notes = gpu_products(spec.gpu_models, machine_models)
        if len(products) == 1 and GPU_PRODUCT not in selector:
            selector[GPU_PRODUCT] = products[0]
        else:
            terms.append({"key": GPU_PRODUCT, "operator": "In", "values": products})
    if selector:
        out["nodeSelector"] = selector
    affinity: dict[str, Any] = {}
    if terms:
        affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": terms}]}}
    if gang_of is not None:
        affinity["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {JOB_NAME_LABEL: gang_of}}, "topologyKey": HOSTNAME}]}
    if affinity:
        out["affinity"] = affinity
    return out, notes
