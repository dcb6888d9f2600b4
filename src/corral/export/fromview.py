"""A submitted job, as the daemon shows it, back as a :class:`~corral.spec.JobSpec`.

``corral export kubernetes 12`` reads job 12 through the API (``GET /v1/jobs/12``, and
``GET /v1/arrays/12`` when 12 is an array's id), the way ``corral show`` does, and
rebuilds the job document from that view, so it is validated like a job file. The view
is what ``corral show`` prints, which is not all of the spec: ``preemptible``,
``requeue`` and ``idleGpu`` are not in it (they are left at their defaults, and a note
says so), a priority class is its value, and memory that is not a whole number of a binary unit is shown rounded
(``3.1Gi``; a note says so too).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..durations import format_duration
from ..spec import API_VERSION, KIND, JobSpec, parse_document


def view_document(view: Mapping[str, Any], array: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The job document for a job's detail view (and, for a whole array, its array view)."""
    spec: dict[str, Any] = {"command": list(view["command"])}
    if view.get("env"):
        spec["env"] = dict(view["env"])
    if view.get("workdir"):
        spec["workingDir"] = view["workdir"]
    if view.get("priority"):
        spec["priority"] = int(view["priority"])
    if view.get("time_limit"):
        spec["timeLimit"] = format_duration(int(view["time_limit"]))
    if view.get("stop_signal") and view["stop_signal"] != "SIGTERM":
        spec["stopSignal"] = view["stop_signal"]
    if view.get("kill_grace") is not None:
        spec["gracePeriod"] = int(view["kill_grace"])
    if view.get("queue") and view["queue"] != "default":
        spec["queue"] = view["queue"]
    if array is not None:
        spec["array"] = array["indices"] + (f"%{array['array_limit']}" if array.get("array_limit") else "")
    if view.get("dependencies"):
        spec["dependencies"] = [{"type": d.partition(":")[0], "job": d.partition(":")[2]} for d in view["dependencies"]]
    if view.get("retries"):
        spec["retries"] = int(view["retries"])
    if view.get("held"):
        spec["hold"] = True
    if view.get("gpu_models"):
        spec["gpuModels"] = list(view["gpu_models"])
    if view.get("node_selector"):
        spec["nodeSelector"] = dict(view["node_selector"])
    if view.get("nodes"):
        spec["nodes"] = int(view["nodes"])
    if view.get("pty") is not None:              # where its terminal listens ("" when the engine says none)
        spec["pty"] = True
    resources = {k: dict(view[k]) for k in ("requests", "limits") if view.get(k)}
    if resources:
        spec["resources"] = resources
    metadata: dict[str, Any] = {}
    if view.get("name"):
        metadata["name"] = view["name"]
    if view.get("labels"):
        metadata["labels"] = dict(view["labels"])
    doc: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND}
    if metadata:
        doc["metadata"] = metadata
    doc["spec"] = spec
    return doc


def view_notes(view: Mapping[str, Any]) -> list[str]:
    """What the view leaves out of the job, as notes."""
    notes = [f"from job {view['id']} as the daemon shows it: preemptible, requeue and idleGpu are not shown, "
             "so they are the defaults here, and a priority class is shown by its value"]
    if view.get("env") is None:
        notes.append("env: not shown to you (not your job), so not exported")
    rounded = [f"{kind}.memory {amounts['memory']}" for kind in ("requests", "limits")
               if "." in (amounts := view.get(kind) or {}).get("memory", "")]
    if rounded:
        notes.append(f"{', '.join(rounded)}: rounded in the daemon's view")
    return notes


def spec_from_view(view: Mapping[str, Any], array: Mapping[str, Any] | None = None) -> JobSpec:
    return parse_document(view_document(view, array), where=f"job {view['id']}")
