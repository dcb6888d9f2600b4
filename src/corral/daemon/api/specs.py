"""A submit request's jobs as validated :class:`~corral.spec.JobSpec` objects.

The request model (:class:`~corral.api.models.SubmitRequest`) has checked the shape;
what the jobs say is checked here by :mod:`corral.spec`, whose one-line errors name the
document's own fields (``job.spec.resources.requests.cpu``, or ``jobs[1]...`` in a
batch) and the CLI's flags (``--cpus`` is ``cpu``, ``--time`` is ``time`` ...).
"""

from __future__ import annotations

from dataclasses import replace

from ...api.models import FlagsItem, JobFlags, SubmitRequest
from ...spec import JobSpec, _parse_workdir, build_spec, load_documents, parse_document


def specs_from(body: SubmitRequest) -> list[JobSpec]:
    """Every job of the batch, in order; raises the first job's first error."""
    if body.yaml is not None:
        specs = load_documents(body.yaml, source=body.source or "<input>")   # raises when there are none
    else:
        items = body.jobs or []   # the model holds one of the two
        specs = []
        for i, item in enumerate(items):
            where = f"jobs[{i}]" if len(items) > 1 else "job"
            spec = from_flags(item.flags) if isinstance(item, FlagsItem) else parse_document(item, where=where)
            specs.append(replace(spec, origin=where) if len(items) > 1 else spec)
    if body.default_workdir is not None:
        workdir = _parse_workdir(body.default_workdir, "default_workdir")
        specs = [s if s.workdir else replace(s, workdir=workdir) for s in specs]
    return specs


def from_flags(flags: JobFlags) -> JobSpec:
    """A job given as the CLI's options."""
    return build_spec(flags.command or "", requests=flags.requests, limits=flags.limits, name=flags.name or "",
                      env=flags.env, workdir=flags.workdir, labels=flags.labels, priority=flags.priority,
                      time_limit=flags.time, stop_signal=flags.signal, kill_grace=flags.grace,
                      idle_gpu=flags.idle_gpu, queue=flags.queue, array=flags.array, dependencies=flags.after,
                      retries=flags.retries, hold=flags.hold, preemptible=flags.preemptible,
                      requeue=flags.requeue, gpus=flags.gpus, gpu_models=flags.gpu_models,
                      node_selector=flags.node_selector, nodes=flags.nodes, pty=flags.pty,
                      resumable=flags.resumable)
