"""Job commands: submit, ps, show, logs, cancel, update, hold, release, wait.

They speak the API with plain dicts over :class:`~corral.client.Connection`: the SDK's
typed models would cost every call pydantic's import.
"""

from __future__ import annotations

import os
import sys
import time

from ..client import Connection, urlencode
from ..errors import CorralError, ValidationError
from . import format as fmt


def _json_dumps(data, indent=2) -> str:
    import json

    return json.dumps(data, indent=indent, sort_keys=True)

TERMINAL = ("Succeeded", "Failed", "Cancelled")


def _conn(args) -> Connection:
    return Connection(args.home)


def _print_json(data) -> None:
    print(_json_dumps(data))


# submit ---------------------------------------------------------------------------------
# The CLI only gathers what was typed; the daemon validates (spec.py) and answers with
# one-line errors. Importing the validation code here would cost every call start-up time.

def _kv(text: str, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValidationError(option, item.strip(),
                                  "expected comma-separated key=value pairs, e.g. cpu=2,memory=8Gi,nvidia.com/gpu=1",
                                  detail=f"invalid item in {option}")
        if key.strip() in out:
            raise ValidationError(option, key.strip(), "each key may appear once", detail=f"duplicate key in {option}")
        out[key.strip()] = value.strip()
    return out


def _selector(items: list[str]) -> dict[str, str]:
    """``--node-selector zone=lab1 --node-selector rack=r3`` (or ``zone=lab1,rack=r3``) ->
    the pairs; their syntax is the daemon's to check."""
    out: dict[str, str] = {}
    for text in items:
        for item in text.split(","):
            key, eq, value = item.strip().partition("=")
            if not eq or not key.strip():
                raise ValidationError("--node-selector", item.strip(),
                                      "expected KEY=VALUE, e.g. zone=lab1, or several: zone=lab1,rack=r3")
            key, value = key.strip(), value.strip()
            if out.get(key, value) != value:
                raise ValidationError("--node-selector", key, f"each key once (it is {out[key]} and {value})",
                                      detail="conflicting values in --node-selector")
            out[key] = value
    return out


def _assign(text: str, option: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise ValidationError(option, text, "expected KEY=value, e.g. CUDA_LAUNCH_BLOCKING=1")
    return key, value


def _payload(args) -> dict:
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if args.file:
        given = [o for o in ("cpus", "mem", "gpus", "limit_cpus", "limit_mem", "requests", "limits", "time",
                             "priority", "name", "workdir", "signal", "grace", "idle_threshold", "idle_window",
                             "idle_actions", "queue", "array", "after", "retries", "nodes")
                 if getattr(args, o) is not None]
        given += [o for o in ("hold", "no_requeue", "no_preempt", "resumable", "node_selector") if getattr(args, o)]
        if argv or given or args.env or args.label:
            what = "a command" if argv else "--" + (given[0] if given else ("env" if args.env else "label")).replace("_", "-")
            raise ValidationError("submit", what, "use either -f job.yaml or options with a command, not both",
                                  detail="conflicting arguments")
        if args.file == "-":
            text, source = sys.stdin.read(), "<stdin>"
        else:
            try:
                with open(args.file, encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                raise ValidationError("file", args.file, f"expected a readable YAML file ({exc.strerror})") from None
            source = args.file
        return {"yaml": text, "source": source, "default_workdir": os.getcwd()}
    if not argv:
        raise CorralError("missing command: give it after the options, e.g. corral submit --gpus 1 -- python train.py")
    requests: dict[str, str] = _kv(args.requests, "--requests") if args.requests else {}
    limits: dict[str, str] = _kv(args.limits, "--limits") if args.limits else {}
    for opt, key, target in (("cpus", "cpu", requests), ("mem", "memory", requests),
                             ("limit_cpus", "cpu", limits), ("limit_mem", "memory", limits)):
        value = getattr(args, opt)
        if value is not None:
            target[key] = value
    command: list[str] | str = argv
    if len(argv) == 1 and any(c in argv[0] for c in " \t;&|<>$`'\"*?(){}"):
        command = argv[0]
    flags = {
        "command": command, "requests": requests or None, "limits": limits or None, "name": args.name or "",
        "env": dict(_assign(e, "--env") for e in args.env),
        "labels": dict(_assign(e, "--label") for e in args.label),
        "workdir": os.path.abspath(args.workdir) if args.workdir else os.getcwd(),
        "priority": args.priority if args.priority is not None else 0,
        "time": args.time,
    }
    if args.signal is not None:
        flags["signal"] = args.signal
    if args.grace is not None:
        flags["grace"] = args.grace
    idle = {key: value for key, value in (("threshold", args.idle_threshold), ("window", args.idle_window),
                                          ("actions", args.idle_actions)) if value is not None}
    if idle.get("actions") == "none":
        idle["actions"] = []
    if idle:
        flags["idle_gpu"] = idle
    for option in ("gpus", "nodes", "queue", "array", "after", "retries"):
        if getattr(args, option) is not None:
            flags[option] = getattr(args, option)
    if args.node_selector:
        flags["node_selector"] = _selector(args.node_selector)
    if args.hold:
        flags["hold"] = True
    if args.no_requeue:
        flags["requeue"] = False
    if args.no_preempt:
        flags["preemptible"] = False
    if args.resumable:
        flags["resumable"] = True
    return {"jobs": [{"flags": flags}]}


def cmd_submit(args) -> int:
    body = _payload(args)
    body["base_env"] = dict(os.environ)
    jobs = _conn(args).submit_request(body)["jobs"]
    if args.json:
        _print_json({"id": jobs[0]["id"], "ids": [j["id"] for j in jobs], "jobs": jobs} if len(jobs) > 1
                    else dict(jobs[0]))
        return 0
    arrays: dict[int, list[dict]] = {}
    for job in jobs:
        if job.get("array_id") is not None:
            arrays.setdefault(job["array_id"], []).append(job)
            continue
        name = f" ({job['name']})" if job.get("name") else ""
        state = job["state"]
        detail = f": {fmt.why(job)}" if state == "Pending" and job.get("message") else ""
        print(f"submitted job {job['id']}{name}, {state.lower()}{detail}")
    for array_id, tasks in arrays.items():
        name = f" ({tasks[0]['name']})" if tasks[0].get("name") else ""
        print(f"submitted array {array_id}{name}: {len(tasks)} jobs {fmt.ids([t['id'] for t in tasks])}")
    return 0


# ps, cancel, hold, release, update, wait: jobs by id, array, range or selector -------------
def cmd_ps(args) -> int:
    from . import select_cmds

    return select_cmds.ps(args)


# show -------------------------------------------------------------------------------------
def cmd_show(args) -> int:
    from . import select_cmds

    conn, task_id, job = select_cmds.show_target(args)     # ID, ID_N, or an array's id: its summary
    if job is None:
        job = conn.request("GET", f"/v1/jobs/{task_id}")
    if args.json:
        _print_json(job)
        return 0
    if "counts" in job:
        select_cmds.print_array(job)
        return 0
    out = [f"Job {job['id']}" + (f" ({job['name']})" if job.get("name") else ""),
           f"  State:     {job['state']} ({job['reason']})" + (f": {job['message']}" if job.get("message") else "")]
    if job["state"] == "Pending" and job.get("queue_position"):
        out.append(f"  Position:  {job['queue_position']} in line")
    if job["state"] == "Pending" and "estimated_start" in job:
        start = job["estimated_start"]
        out.append("  Starts:    " + (f"in ~{fmt.duration(start - time.time())} (by {_ts(start)[:19]}), if running "
                                      "jobs use their whole time limits" if start else
                                      "unknown: it waits for jobs without a time limit"))
    out.append(f"  Command:   {' '.join(job['command'])}")
    per = " per node" if (job.get("nodes") or 1) > 1 else ""
    out.append(f"  Requests:  {', '.join(f'{k}={v}' for k, v in job['requests'].items()) or '-'}{per}")
    out.append(f"  Limits:    {', '.join(f'{k}={v}' for k, v in job['limits'].items()) or '-'}{per}")
    if per:
        out.append(f"  Nodes:     {job['nodes']} (one replica on each)")
    if job.get("gpu_models"):
        out.append(f"  GPU model: {' or '.join(job['gpu_models'])}")
    if job.get("node_selector"):
        out.append(f"  Selector:  {', '.join(f'{k}={v}' for k, v in job['node_selector'].items())}")
    enforcement = job.get("enforcement") or {}
    for i, line in enumerate(enforcement.get("limits") or []):
        out.append(f"  {'Enforced:' if i == 0 else '':<10} {line}")
    if enforcement.get("description"):
        out.append(f"  {'Enforced:' if not enforcement.get('limits') else '':<10} "
                   f"{enforcement['description']}")
    if job.get("user"):
        out.append(f"  User:      {job['user']}")
    if job.get("attempts", 0) > 1:
        out.append(f"  Attempts:  {job['attempts']}")
    if job.get("resumable"):
        out.append(f"  Resumable: yes ({job.get('served', 0):.0f}s run in earlier attempts, kept)")
    if job.get("node"):
        out.append(f"  Node:      {job['node']}")
        sim = " (simulated)" if job.get("gpus_simulated") else ""
        out.append(f"  GPUs:      {fmt.ids(job['gpus']) + sim if job['gpus'] else 'none (CUDA_VISIBLE_DEVICES empty)'}")
        shared = job.get("cpus_shared")
        cpus = fmt.ids(job["cpus"]) if job["cpus"] else ("shared pool " + fmt.ids(shared) if shared else "shared pool")
        out.append(f"  CPUs:      {cpus}")
    out.append(f"  Priority:  {job['priority']}  Queue: {job.get('queue', 'default')}")
    if job.get("array_id") is not None:
        limit = f" (at most {job['array_limit']} at once)" if job.get("array_limit") else ""
        out.append(f"  Array:     task {job['array_index']} of array {job['array_id']}{limit}")
    if job.get("dependencies"):
        out.append(f"  After:     {', '.join(job['dependencies'])}")
    if job.get("retries"):
        out.append(f"  Retries:   {job['retries']} (attempt {max(job.get('attempts', 0), 1)})")
    if job.get("time_limit"):
        out.append(f"  Time limit: {fmt.duration(job['time_limit'])}")
    if job.get("stop_signal"):
        out.append(f"  Stop:      {job['stop_signal']}, SIGKILL after {fmt.duration(job.get('kill_grace'))}")
    if job.get("idle_policy"):
        out.append(f"  Idle GPUs: {job['idle_policy']}")
    out.append(f"  Workdir:   {job.get('workdir') or '-'}")
    out.append(f"  Submitted: {_ts(job['submitted_at'])}")
    if job.get("started_at"):
        out.append(f"  Started:   {_ts(job['started_at'])}")
    if job.get("ended_at"):
        out.append(f"  Ended:     {_ts(job['ended_at'])} (ran {fmt.runtime(job)})")
    if job.get("exit_code") is not None or job.get("signal") is not None:
        out.append(f"  Exit:      code {job['exit_code']}" + (f", signal {job['signal']}" if job.get("signal") else ""))
    out += fmt.usage_lines(job)
    logs = job.get("logs") or {}
    if logs:
        out.append(f"  Logs:      {logs.get('stdout')}")
        out.append(f"             {logs.get('stderr')}")
    if job.get("events"):
        out.append("  Events:")
        for e in job["events"]:
            arrow = (f"-> {e['to']}" if not e["from"] else e["to"] if e["from"] == e["to"]    # a reason, no new state
                     else f"{e['from']} -> {e['to']}")
            msg = f": {e['message']}" if e.get("message") else ""
            out.append(f"    {_ts(e['ts'])}  {arrow} ({e['reason']}){msg}")
    print("\n".join(fmt.printable(line) for line in out))
    return 0


def _ts(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int((ts % 1) * 1000):03d}"


# logs -------------------------------------------------------------------------------------
def cmd_logs(args) -> int:
    from . import select_cmds

    stream = "stderr" if args.stderr else "stdout"
    fields = {"stream": stream, "follow": "true" if args.follow else "false"}
    if args.attempt is not None and args.attempt < 1:
        raise CorralError(f"invalid value for --attempt: {args.attempt} (expected a number of at least 1)")
    if args.attempt is not None:
        fields["attempt"] = args.attempt
    query = urlencode(fields)
    conn = _conn(args)
    args.id = select_cmds.log_target(conn, args.id)      # ID, or an array task ID_N
    if args.follow and not args.json:
        job = conn.request("GET", f"/v1/jobs/{args.id}")
        if job.get("attempts") == 0 and job.get("state") == "Pending":
            reason = job.get("reason") or ""
            why = f"{reason}: {job['message']}" if job.get("message") else reason
            print(f"job {args.id} has not started yet ({job['state']}{': ' + why if why else ''}); "
                  f"waiting for its output", file=sys.stderr, flush=True)
    chunks = conn.stream(f"/v1/jobs/{args.id}/logs?{query}")
    if args.json:
        text = b"".join(chunks).decode(errors="replace")
        _print_json({"id": args.id, "stream": stream, "text": text})
        return 0
    out = sys.stdout.buffer
    for chunk in chunks:
        out.write(chunk)
        out.flush()
    return 0


# cancel / wait ----------------------------------------------------------------------------
def cmd_cancel(args) -> int:
    from . import select_cmds

    return select_cmds.cancel(args)


def cmd_update(args) -> int:
    from . import select_cmds

    return select_cmds.update(args)


def cmd_hold(args) -> int:
    from . import select_cmds

    return select_cmds.hold(args, "hold")


def cmd_release(args) -> int:
    from . import select_cmds

    return select_cmds.hold(args, "release")


def cmd_wait(args) -> int:
    from . import select_cmds

    return select_cmds.wait(args)
