"""``corral export kubernetes|kueue``: print manifests for a Kubernetes cluster.

* ``corral export kubernetes -f job.yaml --image IMAGE``: each job document as a
  ``batch/v1`` Job, as the daemon of this home would take it (its ``defaults``, its
  ``kill_grace``; a queue or priority class it does not have is refused, as ``submit``
  would refuse it).
* ``corral export kubernetes ID... --image IMAGE``: submitted jobs, read from the daemon
  (an array's id: the whole array; ``12_3``: one task).
* ``corral export kueue``: the config's queues as Kueue objects, with this machine's GPU
  models and amounts.

YAML by default, notes as comments; ``--json`` prints JSON (a ``v1`` List when there are
several objects) and the notes on stderr. The work is :mod:`corral.export`'s; this
module reads the inputs and prints.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Iterator

from ..errors import CorralError, ValidationError, invalid
from .args import UsageError

KINDS = ("kubernetes", "kueue")
IMAGE_EXAMPLE = "e.g. --image nvcr.io/nvidia/pytorch:24.08-py3"


def cmd_export(args) -> int:
    if args.kind not in KINDS:
        raise UsageError(f'invalid value for KIND: "{args.kind}" (expected one of: {", ".join(KINDS)})')
    if args.kind == "kueue":
        given = [o for o, v in (("-f", args.file), ("--image", args.image), ("--name", args.name)) if v]
        if given or args.ids:
            what = given[0] if given else f"job id {args.ids[0]}"
            raise UsageError(f"{what} is for `corral export kubernetes`; `corral export kueue` takes --config, "
                             "--namespace and --json")
        return _kueue(args)
    return _kubernetes(args)


def _namespace(args) -> str | None:
    from ..export.names import check_dns_label

    return check_dns_label(args.namespace, "--namespace") if args.namespace is not None else None


def _config(args) -> tuple[Any, str]:
    from ..config import load_config
    from ..paths import Paths

    path = args.config or Paths(args.home).config
    if args.config is not None:
        import os

        if not os.path.isfile(path):
            raise invalid("--config", path, "expected a corral config file, e.g. $CORRAL_HOME/config.yaml")
    return load_config(path), path


def _print(manifests: list, header: list[str], as_json: bool) -> int:
    from ..export import render

    if as_json:
        sys.stdout.write(render.to_json(manifests))
        for line in render.notes(manifests, header):
            print(f"corral: note: {line}", file=sys.stderr)
    else:
        sys.stdout.write(render.to_yaml(manifests, header))
    return 0


# kueue -----------------------------------------------------------------------------------
def _kueue(args) -> int:
    from ..export.kueue import export_kueue
    from ..export.machine import detect

    namespace = _namespace(args) or "default"
    config, _ = _config(args)
    manifests, header = export_kueue(config, detect(config), namespace)
    return _print(manifests, header, args.json)


# kubernetes ------------------------------------------------------------------------------
def _kubernetes(args) -> int:
    from ..export.kubernetes import Target, export_job, job_name
    from ..export.names import unique

    if bool(args.file) == bool(args.ids):
        raise UsageError("`corral export kubernetes` needs -f job.yaml or job ids, not both "
                         "(e.g. corral export kubernetes -f job.yaml --image IMAGE)" if args.file else
                         "`corral export kubernetes` needs -f job.yaml or job ids (e.g. corral export kubernetes "
                         "-f job.yaml --image IMAGE)")
    if not args.image:
        raise UsageError("`corral export kubernetes` needs --image IMAGE: corral jobs run on the machine's own "
                         f"files, a pod runs a container image ({IMAGE_EXAMPLE})")
    if not args.image.strip() or any(ch.isspace() or not ch.isprintable() for ch in args.image):
        raise invalid("--image", args.image, f"expected a container image reference without spaces, {IMAGE_EXAMPLE}")
    if args.ids and args.config:
        raise UsageError("--config is for -f: a job read by id is the daemon's, with its own config")
    namespace = _namespace(args)
    if args.file:
        jobs, grace, models = _from_file(args)
    else:
        jobs, grace, models = _from_daemon(args)
    if args.name is not None and len(jobs) > 1:
        raise invalid("--name", args.name, f"expected one job to name; there are {len(jobs)} (name them in the file)")
    target = Target(image=args.image, namespace=namespace, machine_models=models,
                    **({"kill_grace": grace} if grace is not None else {}))
    named = []
    for spec, job_id, notes in jobs:
        with _located(spec.origin):
            name, more = job_name(spec, given=args.name, job_id=job_id)
        named.append((spec, job_id, name, notes + more))
    unique({(spec.origin or f"job {job_id}"): name for spec, job_id, name, _ in named}, "metadata.name")
    manifests = []
    for spec, _, name, notes in named:
        with _located(spec.origin):
            made = export_job(spec, name, target)
        if notes:
            made[-1] = replace(made[-1], notes=tuple(notes) + made[-1].notes)
        manifests += made
    return _print(manifests, [], args.json)


@contextmanager
def _located(origin: str) -> Iterator[None]:
    """Errors about one job of a file say which (``jobs.yaml (document 2): ...``)."""
    try:
        yield
    except ValidationError as err:
        if not origin:
            raise
        raise invalid(err.field, err.value, err.expected, message=f"{origin}: {err}") from None


def _from_file(args) -> tuple[list, int, tuple[str, ...]]:
    """The file's jobs as the daemon would take them: ``(spec, None, notes)`` each, the
    daemon's grace period, the machine's GPU models (detected only when a job names models)."""
    from ..export.jobs import load_jobs

    if args.file == "-":
        text, source = sys.stdin.read(), "<stdin>"
    else:
        try:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise ValidationError("file", args.file, f"expected a readable YAML file ({why})") from None
        source = args.file
    config, path = _config(args)
    specs = load_jobs(text, source, config, path)
    models: tuple[str, ...] = ()
    if any(s.gpu_models for s in specs):
        from ..export.machine import detect

        models = detect(config).gpu_models
    return [(s, None, []) for s in specs], config.kill_grace, models


def _from_daemon(args) -> tuple[list, int | None, tuple[str, ...]]:
    """The jobs named by id, read from the daemon: ``(spec, id, notes)`` each (their grace
    periods are in them); the GPU models of the daemon's nodes."""
    from ..client import Connection
    from ..export.fromview import spec_from_view, view_notes
    from .ids import BadId, parse_one

    conn = Connection(args.home)
    jobs = []
    for text in args.ids:
        try:
            refs = parse_one(text)
        except BadId as exc:
            raise UsageError(str(exc)) from None
        if "tasks" in refs:
            picked = conn.request("POST", "/v1/jobs/select", refs)["jobs"]
            if not picked:
                raise CorralError(f"no such array task: {text}")
            job_id = picked[0]["id"]
        else:
            job_id = refs["ids"][0]
        view = conn.request("GET", f"/v1/jobs/{job_id}")
        array = None
        if view.get("array_id") == job_id and "tasks" not in refs:
            array = conn.request("GET", f"/v1/arrays/{job_id}")
        jobs.append((spec_from_view(view, array), job_id, view_notes(view)))
    models: list[str] = []
    if any(spec.gpu_models for spec, _, _ in jobs):
        for node in conn.request("GET", "/v1/nodes")["nodes"]:
            models += [g["model"] for g in node.get("gpus", []) if g["model"] not in models]
    return jobs, None, tuple(models)
