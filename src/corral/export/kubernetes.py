"""``corral export kubernetes``: a corral job as a ``batch/v1`` Job.

What maps, and how (the container itself is :mod:`.pods`'):

* a **time limit** is the Job's ``activeDeadlineSeconds`` (an array's is each task's:
  the pod's ``activeDeadlineSeconds``, as a Job's would bound the whole array);
* the **grace period** (the job's, else the daemon's ``kill_grace``) is
  ``terminationGracePeriodSeconds``;
* **retries** are ``backoffLimit`` (an array's ``backoffLimitPerIndex``: each task has
  its own, as in corral); Kubernetes' back-off (10 s, doubling) is corral's;
* **requeue** after preemption: pods disrupted by Kubernetes (``DisruptionTarget``:
  preemption, eviction, node drain) do not count as failures; ``requeue: false`` fails
  the Job instead;
* a **queue** other than ``default``: the Job is created suspended with the label
  ``kueue.x-k8s.io/queue-name`` (the LocalQueue ``corral export kueue`` writes for it),
  a priority class with ``kueue.x-k8s.io/priority-class`` (its WorkloadPriorityClass).
  A job of the ``default`` queue is a plain Job, which runs without Kueue; with Kueue,
  the LocalQueue ``default`` takes it (Kueue's LocalQueueDefaulting);
* an **array** is an Indexed Job: ``completions`` its task count, ``parallelism`` its
  ``%N`` throttle; ``CORRAL_ARRAY_INDEX`` is the task's corral index (Kubernetes numbers
  an Indexed Job's pods 0 to completions-1: other indices are looked up by a small
  ``/bin/sh`` wrapper);
* a **gang** (``nodes`` > 1) is an Indexed Job of one pod per node (required pod
  anti-affinity on ``kubernetes.io/hostname``) plus a headless Service, so rank 0 is
  ``NAME-0.NAME``; each pod gets corral's rank variables (``CORRAL_NODE_RANK``,
  ``CORRAL_NUM_NODES``, ``RANK``, ``NODE_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
  ``MASTER_PORT``). Not a JobSet: a Job needs nothing installed beyond Kubernetes and
  Kueue admits its pods as one Workload (all or nothing); what only JobSet has (restart
  the whole gang on a failure) is said in a note where it matters (``retries``).

What has no equivalent (dependencies, idle-GPU reclaim, ``preemptible: false``, a
numeric priority) is written as a note, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import invalid
from ..spec import JobSpec, format_array
from . import pods
from .names import dns_label, dns_subdomain, is_label_value
from .render import Manifest

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
NAME_ANNOTATION = "corral.dev/name"
DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class Target:
    """Where the Job goes: its image (corral jobs have none), namespace, the grace period
    of jobs that name none (the daemon's ``kill_grace``), the machine's GPU models (to
    turn ``A100`` into product names) and a gang's ``MASTER_PORT``."""

    image: str
    namespace: str | None = None
    kill_grace: int = 10
    machine_models: tuple[str, ...] = ()
    master_port: int = 29500


def job_name(spec: JobSpec, *, given: str | None = None, job_id: int | None = None) -> tuple[str, list[str]]:
    """The Job's name and a note when it is not the job's own: ``given`` (``--name``) as
    it is, else the job's name made a DNS-1123 label, else ``corral-ID``."""
    indexed = bool(spec.array) or spec.nodes > 1
    count = len(spec.array) if spec.array else spec.nodes
    limit = 63 - (len(f"-{count - 1}") if indexed else 0)      # pods' hostnames are NAME-INDEX
    if given is not None:
        name = dns_label(given, "--name", limit=limit)
        if name != given:
            raise invalid("--name", given, f"expected a DNS-1123 label of at most {limit} characters (lower-case "
                                           f"letters, digits and -), e.g. {name}")
        return name, []
    if spec.name:
        name = dns_label(spec.name, "metadata.name", limit=limit)
        if name == spec.name:
            return name, []
        return name, [f"metadata.name {spec.name!r} is {name} here (a DNS-1123 label of at most {limit} characters); "
                      f"annotation {NAME_ANNOTATION} keeps it"]
    if job_id is not None:
        return f"corral-{job_id}", []
    raise invalid("metadata.name", "", "expected a job name to name the Job: set metadata.name in the job file or "
                                      "give --name NAME")


def _labels(spec: JobSpec) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """The job's labels that are Kubernetes label values, the others (annotations), notes."""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    notes: list[str] = []
    for key, text in spec.labels.items():
        if is_label_value(text):
            labels[key] = text
        else:
            annotations[key] = text
            notes.append(f"label {key}: its value is not a Kubernetes label value (at most 63 letters, digits, -, _ "
                         "and .), so it is an annotation")
    return labels, annotations, notes


def _array(spec: JobSpec, argv: tuple[str, ...]) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """The container's command fields and variables for an array task, and notes."""
    indices = spec.array
    env = [pods.field_ref("CORRAL_ARRAY_ID", f"metadata.labels['{pods.JOB_NAME_LABEL}']")]
    if indices == tuple(range(len(indices))):
        env.append(pods.annotation_ref("CORRAL_ARRAY_INDEX", pods.COMPLETION_INDEX))
        return pods.command_fields(argv), env, []
    step = indices[1] - indices[0] if len(indices) > 1 else 1
    if all(b - a == step for a, b in zip(indices, indices[1:])):
        lookup = f"CORRAL_ARRAY_INDEX=$(({indices[0]} + {step} * JOB_COMPLETION_INDEX))"
    else:
        env.append(pods.value("CORRAL_ARRAY_INDICES", " ".join(str(i) for i in indices)))
        lookup = ('i=0; for x in $CORRAL_ARRAY_INDICES; do if [ "$i" = "$JOB_COMPLETION_INDEX" ]; then '
                  'CORRAL_ARRAY_INDEX=$x; break; fi; i=$((i + 1)); done')
    wrapper = ("/bin/sh", "-c", f'{lookup}; export CORRAL_ARRAY_INDEX; exec "$@"', "corral-array")
    fields = {"command": [pods.literal(w) for w in wrapper], "args": [pods.literal(a) for a in argv]}
    note = (f"array {format_array(indices)}: Kubernetes numbers the pods 0 to {len(indices) - 1} "
            "(JOB_COMPLETION_INDEX); a /bin/sh wrapper (needs /bin/sh in the image) sets CORRAL_ARRAY_INDEX to "
            "the task's index and execs the command")
    return fields, env, [note]


def _gang(spec: JobSpec, name: str, target: Target) -> list[dict[str, Any]]:
    rank = "metadata.annotations['" + pods.COMPLETION_INDEX + "']"
    return [pods.field_ref("CORRAL_NODE_RANK", rank), pods.value("CORRAL_NUM_NODES", str(spec.nodes)),
            pods.value("MASTER_ADDR", f"{name}-0.{name}"), pods.value("MASTER_PORT", str(target.master_port)),
            pods.value("WORLD_SIZE", str(spec.nodes)), pods.field_ref("RANK", rank),
            pods.field_ref("NODE_RANK", rank)]


def _unmapped(spec: JobSpec, name: str, queued: bool) -> list[str]:
    """Notes on what the spec says and a Job cannot."""
    notes = []
    if spec.dependencies:
        deps = ", ".join(f"{kind}:{job}" for kind, job in spec.dependencies)
        notes.append(f"dependencies {deps}: no Kubernetes equivalent; create this Job once they have ended")
    if spec.idle_gpu:
        notes.append("idleGpu: no Kubernetes equivalent (corral's idle-GPU reclaim is not exported)")
    if spec.priority and not spec.priority_class:
        notes.append(f"priority {spec.priority}: Kubernetes and Kueue take priorities by class name "
                     "(PriorityClass, WorkloadPriorityClass), not a number")
    if not spec.preemptible:
        notes.append("preemptible: false: no per-Job equivalent in Kueue; a WorkloadPriorityClass above the others' "
                     "keeps it from being preempted by priority")
    if not spec.requeue and queued:
        notes.append("requeue: false: Kueue requeues a Workload it preempts; only pods Kubernetes disrupts "
                     "(eviction, node drain) fail the Job")
    if spec.hold:
        notes.append("hold: created suspended; Kueue admits suspended Jobs, so under Kueue it waits only for "
                     "admission" if queued else
                     f"hold: created suspended; release it with kubectl patch job {name} -p "
                     "'{\"spec\":{\"suspend\":false}}'")
    if spec.pty:
        notes.append("pty: the container gets stdin and a tty; attach with kubectl attach -it")
    return notes


def _failure_policy(spec: JobSpec) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [{"action": "Ignore" if spec.requeue else "FailJob",
                                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
    if spec.nodes > 1:
        rules.append({"action": "FailJob", "onExitCodes": {"containerName": pods.CONTAINER, "operator": "NotIn",
                                                           "values": [0]}})
    return {"rules": rules}


def export_job(spec: JobSpec, name: str, target: Target) -> list[Manifest]:
    """The Job for ``spec`` named ``name`` (and, for a gang, its headless Service first)."""
    if spec.array and spec.nodes > 1:
        raise invalid("spec.nodes", spec.nodes, "expected nodes: 1 in an array: an array of multi-node jobs has no "
                                                "batch/v1 Job form (export each task, or use a JobSet)")
    queued = spec.queue != DEFAULT_QUEUE
    labels, annotations, notes = _labels(spec)
    if spec.name and name != spec.name:
        annotations[NAME_ANNOTATION] = spec.name
    pod_labels = dict(labels)
    if queued:
        labels[QUEUE_LABEL] = dns_subdomain(spec.queue, "spec.queue")
    if spec.priority_class:
        labels[PRIORITY_LABEL] = spec.priority_class
    argv = spec.command
    corral_vars: list[dict[str, Any]] = []
    command = pods.command_fields(argv)
    if spec.array:
        command, corral_vars, more = _array(spec, argv)
        notes += more
    gang = spec.nodes > 1
    if gang:
        corral_vars = _gang(spec, name, target)
    container: dict[str, Any] = {"name": pods.CONTAINER, "image": target.image, **command}
    if spec.workdir is not None:
        container["workingDir"] = spec.workdir
    container["env"] = pods.environment(spec, corral_vars)
    container["resources"] = pods.resources(spec)
    lifecycle, more = pods.stop_hook(spec.stop_signal, spec.command)     # an array's wrapper execs it
    notes += more
    if lifecycle is not None:
        container["lifecycle"] = lifecycle
    if spec.pty:
        container["stdin"], container["tty"] = True, True
    grace = spec.kill_grace if spec.kill_grace is not None else target.kill_grace
    pod: dict[str, Any] = {"restartPolicy": "Never", "terminationGracePeriodSeconds": grace}
    if spec.array and spec.time_limit is not None:
        pod["activeDeadlineSeconds"] = spec.time_limit
        notes.append("timeLimit is per task: the pod's activeDeadlineSeconds (from the pod's start)")
        if spec.retries:
            notes.append("a task stopped at its time limit counts as a failure and is retried (corral does not "
                         "retry after a time limit)")
    if gang:
        pod["subdomain"] = name
    where, more = pods.placement(spec, target.machine_models, name if gang else None)
    notes += more
    pod.update(where)
    pod["containers"] = [container]
    job_spec: dict[str, Any] = {}
    if queued or spec.hold:
        job_spec["suspend"] = True
    if spec.array or gang:
        count = len(spec.array) if spec.array else spec.nodes
        job_spec["completionMode"] = "Indexed"
        job_spec["completions"] = count
        job_spec["parallelism"] = min(spec.array_limit or count, count) if spec.array else count
    if spec.array:
        job_spec["backoffLimitPerIndex"] = spec.retries
    else:
        job_spec["backoffLimit"] = 0 if gang else spec.retries
    if gang and spec.retries:
        notes.append(f"retries {spec.retries}: a batch/v1 Job restarts one pod, not the gang, so a failed rank "
                     "fails the Job (JobSet's failurePolicy.maxRestarts restarts the whole gang)")
    if spec.time_limit is not None and not spec.array:
        job_spec["activeDeadlineSeconds"] = spec.time_limit
    job_spec["podFailurePolicy"] = _failure_policy(spec)
    template_meta: dict[str, Any] = {"labels": pod_labels} if pod_labels else {}
    job_spec["template"] = {**({"metadata": template_meta} if template_meta else {}), "spec": pod}
    notes += _unmapped(spec, name, queued)
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": _metadata(name, target, labels, annotations),
           "spec": job_spec}
    out = [Manifest(job, tuple(notes))]
    if gang:
        service = {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(name, target, {}, {}),
                   "spec": {"clusterIP": "None", "selector": {pods.JOB_NAME_LABEL: name},
                            "publishNotReadyAddresses": True}}
        out.insert(0, Manifest(service, (f"the headless Service of Job {name}'s gang: rank 0 is {name}-0.{name}",)))
    return out


def _metadata(name: str, target: Target, labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if target.namespace:
        meta["namespace"] = target.namespace
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return meta
