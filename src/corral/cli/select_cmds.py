"""Commands that choose jobs: ``ps`` (filters), ``cancel``, ``hold``, ``release``,
``update``, ``wait`` (ids, arrays, ranges, selectors) and ``show`` of an array.

Ids are parsed strictly here (:mod:`.ids`) and sent as the API's ``ids``, ``tasks`` and
``ranges``; the daemon resolves them (an array's id is every task of it). A selector
(``--name 'sweep-*' --state Pending``) is sent as the API's ``selector``. When a
selector would change more than :data:`CONFIRM_OVER` jobs, the command says how many and
asks first (``-y`` skips; without a terminal it refuses), then acts on exactly the jobs
it counted.
"""

from __future__ import annotations

import sys
import time

from ..client import Connection, urlencode
from ..errors import CorralError
from . import format as fmt
from .ids import SELECTOR_KEYS, BadId, parse_one, parse_refs

TERMINAL = ("Succeeded", "Failed", "Cancelled")
#: A selector that would change more jobs than this asks first.
CONFIRM_OVER = 5
#: More results than this are summed up (``9998 jobs: cancelled``), not listed.
LIST_UP_TO = 20


class Refused(CorralError):
    """Bad arguments found after parsing, or an unconfirmed change: one line, exit 1."""


def _conn(args) -> Connection:
    return Connection(args.home)


def _print_json(data) -> None:
    import json

    print(json.dumps(data, indent=2, sort_keys=True))


def refs_of(args) -> dict:
    try:
        return parse_refs(list(args.ids or []))
    except BadId as exc:
        raise Refused(str(exc)) from None


def selector_of(args) -> dict:
    """The selector options given (``--name``, ``--mine`` ...), as the API's ``selector``."""
    sel: dict = {}
    for key in ("name", "user", "queue", "since"):
        if getattr(args, key, None) is not None:
            sel[key] = getattr(args, key)
    if getattr(args, "mine", False):
        sel["mine"] = True
    labels: dict[str, str] = {}
    for item in getattr(args, "label", None) or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise Refused(f'invalid value for --label: "{item}" (expected KEY=VALUE, e.g. team=vision)')
        labels[key] = value
    if labels:
        sel["labels"] = labels
    if getattr(args, "array", None) is not None:
        text = args.array
        if not (text.isascii() and text.isdigit() and 0 < int(text) < 2**63):
            raise Refused(f'invalid value for --array: "{text}" (expected an array id, e.g. 12)')
        sel["array"] = int(text)
    states = [s for raw in getattr(args, "state", None) or [] for s in raw.split(",") if s.strip()]
    if states:
        sel["state"] = states
    return sel


def _exact(jobs: list[dict]) -> dict:
    """Jobs as refs that name exactly them: array tasks as ``tasks`` (an array's first
    task's id alone would mean the whole array), the others as ``ids``."""
    ids = [j["id"] for j in jobs if j.get("array_id") is None]
    tasks = [[j["array_id"], j["array_index"]] for j in jobs if j.get("array_id") is not None]
    return {k: v for k, v in (("ids", ids), ("tasks", tasks)) if v}


def _confirm(verb: str, count: int, args) -> None:
    if count <= CONFIRM_OVER or args.yes:
        return
    if not sys.stdin.isatty():
        raise Refused(f"{verb} {count} jobs: more than {CONFIRM_OVER} without confirmation; pass -y to {verb} them "
                      "(stdin is not a terminal to ask)")
    try:
        answer = input(f"{verb} {count} jobs? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise Refused(f"nothing done: {verb} {count} jobs was not confirmed")


def _body(args, action: str) -> tuple[Connection, dict, list[dict] | None]:
    """What ``action`` acts on: refs from the ids, or (a selector) the exact jobs it
    picked, counted and confirmed first; the jobs picked, when a selection was made."""
    refs = refs_of(args)
    sel = selector_of(args) if hasattr(args, "yes") else {}
    if not refs and not sel:
        options = ", ".join("--" + k for k in SELECTOR_KEYS)
        raise Refused(f"`corral {action}` needs job ids (e.g. 12, 12_3, 12-20) or a selector ({options})")
    conn = _conn(args)
    if not sel and action in ("cancel", "update"):
        return conn, refs, None
    body = {**refs, **({"selector": sel} if sel else {})}
    picked = conn.request("POST", f"/v1/jobs/select?{urlencode({'action': action})}", body)
    jobs = picked["jobs"]
    if picked.get("missing") and action != "cancel":
        ref = picked["missing"][0]
        raise CorralError(f"no such array task: {ref}" if "_" in ref else f"no such job: {ref}")
    if sel:
        changing = [j for j in jobs if action in ("cancel", "update") or (j["held"] == (action == "release"))]
        _confirm(action, len(changing), args)
        return conn, _exact(jobs) if jobs else {}, jobs
    return conn, refs, jobs


def _sum_up(pairs: list[tuple[int, str]]) -> list[str]:
    """``job N: RESULT`` per job, or counts of each result when there are many."""
    if len(pairs) <= LIST_UP_TO:
        return [f"job {i}: {text}" for i, text in pairs]
    counts: dict[str, int] = {}
    for _, text in pairs:
        counts[text] = counts.get(text, 0) + 1
    return [f"{n} jobs: {text}" for text, n in counts.items()]


# cancel / hold / release / update ---------------------------------------------------------
def cancel(args) -> int:
    conn, body, picked = _body(args, "cancel")
    if not body:
        print("no job to cancel: none matched")
        return 0
    results = conn.request("POST", "/v1/jobs/cancel", body)["results"]
    if args.json:
        _print_json({"results": results})
        return 0 if all(r["ok"] for r in results) else 1
    if not results:
        print("no job to cancel: every job named has ended")
    for line in _sum_up([(r["id"], r["result"]) for r in results if r["ok"]]):
        print(line)
    for r in [r for r in results if not r["ok"]]:
        print(f"error: {r['result']}", file=sys.stderr)
    return 0 if all(r["ok"] for r in results) else 1


def hold(args, action: str) -> int:
    conn, body, picked = _body(args, action)
    verb = "held" if action == "hold" else "released"
    if not body or not picked:
        if args.json:
            _print_json({"changed": []})
        else:
            print(f"no job to {action}: none matched (only pending jobs can be {verb})")
        return 0
    changed = conn.request("POST", f"/v1/jobs/{action}", body)["changed"]
    if args.json:
        _print_json({"changed": changed})
        return 0
    done = set(changed)
    for line in _sum_up([(j["id"], verb if j["id"] in done else f"already {verb}") for j in picked]):
        print(line)
    return 0


def update(args) -> int:
    conn, refs, picked = _body(args, "update")
    body: dict = dict(refs)
    for key in ("priority", "time", "queue"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    results = conn.request("POST", "/v1/jobs/update", body)["results"]
    if args.json:
        _print_json({"results": results})
        return 0
    if not results:
        print("no job to update: every job named has ended")
    for line in _sum_up([(r["id"], r["result"]) for r in results]):
        print(line)
    return 0


def wait(args) -> int:
    refs = refs_of(args)
    conn = _conn(args)
    picked = conn.request("POST", "/v1/jobs/select", refs)
    if picked.get("missing"):
        ref = picked["missing"][0]
        raise CorralError(f"no such array task: {ref}" if "_" in ref else f"no such job: {ref}")
    jobs = [conn.wait_for(j["id"]) for j in picked["jobs"]]
    if args.json:
        _print_json({"jobs": jobs})
    elif len(jobs) <= LIST_UP_TO:
        for j in jobs:
            print(f"job {j['id']}: {j['state']} ({fmt.why(j)})")
    else:
        counts: dict[str, int] = {}
        for j in jobs:
            counts[j["state"]] = counts.get(j["state"], 0) + 1
        print(f"{len(jobs)} jobs: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return 0 if all(j["state"] == "Succeeded" for j in jobs) else 1


# ps ---------------------------------------------------------------------------------------
def ps(args) -> int:
    sel = selector_of(args)
    states = sel.pop("state", None) or ([] if args.all else ["Pending", "Running"])
    query: list[tuple[str, object]] = [("state", s) for s in states]
    for key in ("name", "user", "queue", "array", "since"):
        if key in sel:
            query.append((key, sel[key]))
    if sel.get("mine"):
        query.append(("mine", "true"))
    query += [("label", f"{k}={v}") for k, v in (sel.get("labels") or {}).items()]
    if args.limit is not None:
        if args.limit < 0:
            raise Refused(f'invalid value for -n: "{args.limit}" (expected a whole number, e.g. 20)')
        query.append(("last", args.limit))
    jobs = _conn(args).request("GET", "/v1/jobs" + ("?" + urlencode(query) if query else ""))["jobs"]
    if args.json:
        _print_json({"jobs": jobs})
        return 0
    now = time.time()
    rows = []
    for j in jobs:
        gpus = fmt.ids(j.get("gpus", [])) + ("*" if j.get("gpus_simulated") else "") if j.get("gpus") else "-"
        name = j.get("name") or "-"
        if j.get("array_id") is not None:
            name = f"{name if name != '-' else ''}[{j['array_id']}_{j['array_index']}]"
        rows.append([str(j["id"]), name, j.get("user") or "-", j["state"], fmt.requests(j), gpus,
                     fmt.ids(j.get("cpus", [])) if j.get("cpus") else ("shared" if j["state"] == "Running" else "-"),
                     fmt.runtime(j, now) if j.get("started_at") else fmt.ago(j.get("submitted_at"), now),
                     "-" if j.get("exit_code") is None else str(j["exit_code"]),
                     fmt.why(j)])
    headers = ["ID", "NAME", "USER", "STATE", "REQUESTS", "GPUS", "CPUS", "TIME", "EXIT", "REASON"]
    if sys.stdout.isatty():
        import shutil

        rows = fmt.fit(headers, rows, shutil.get_terminal_size().columns, ("REASON", "NAME", "REQUESTS", "USER"))
    print(fmt.table(headers, rows))
    if any(j.get("gpus_simulated") and j.get("gpus") for j in jobs):
        print("* simulated GPU")
    return 0


# show of an array ---------------------------------------------------------------------------
def show_target(args) -> tuple[Connection, int | None, dict | None]:
    """``show ID`` / ``show ID_N``: the job id to show, or (an array's id) its summary."""
    try:
        refs = parse_one(args.id)
    except BadId as exc:
        raise Refused(str(exc)) from None
    conn = _conn(args)
    if "tasks" in refs:
        picked = conn.request("POST", "/v1/jobs/select", refs)
        if not picked["jobs"]:
            raise CorralError(f"no such array task: {args.id}")
        return conn, picked["jobs"][0]["id"], None
    job_id = refs["ids"][0]
    job = conn.request("GET", f"/v1/jobs/{job_id}")
    if job.get("array_id") == job_id:
        return conn, None, conn.request("GET", f"/v1/arrays/{job_id}")
    return conn, None, job


def log_target(conn: Connection, text: str) -> int:
    """``logs ID`` / ``logs ID_N``: the job whose log to print (an array's id is its task 0)."""
    try:
        refs = parse_one(text)
    except BadId as exc:
        raise Refused(str(exc)) from None
    if "tasks" in refs:
        picked = conn.request("POST", "/v1/jobs/select", refs)
        if not picked["jobs"]:
            raise CorralError(f"no such array task: {text}")
        return picked["jobs"][0]["id"]
    if "ids" not in refs or len(refs["ids"]) != 1:
        raise Refused(f'invalid value for ID: "{text}" (expected one job id, e.g. 12, or an array task, e.g. 12_3)')
    return refs["ids"][0]


def print_array(view: dict) -> None:
    name = f" ({view['name']})" if view.get("name") else ""
    limit = f", at most {view['array_limit']} at once" if view.get("array_limit") else ""
    order = ("Pending", "Running", "Succeeded", "Failed", "Cancelled")
    counts = ", ".join(f"{view['counts'][s]} {s}" for s in order if view["counts"].get(s))
    out = [f"Array {view['id']}{name}: {view['tasks']} tasks, indices {view['indices']}{limit}",
           f"  Tasks:     {counts}" + (f" ({view['held']} held)" if view.get("held") else ""),
           f"  User:      {view.get('user') or '-'}  Queue: {view.get('queue')}",
           f"  Submitted: {_ts(view['submitted_at'])}"]
    if view.get("started_at"):
        out.append(f"  Started:   {_ts(view['started_at'])}")
    if view.get("ended_at"):
        out.append(f"  Ended:     {_ts(view['ended_at'])}")
    if view.get("exit_codes"):
        out.append("  Exit codes: " + ", ".join(f"{code} ({n} tasks)" for code, n in sorted(
            view["exit_codes"].items(), key=lambda kv: int(kv[0]))))
    out.append(f"  One task:  corral show {view['id']}_{view['first_index']}; all: corral ps -a --array {view['id']}")
    print("\n".join(fmt.printable(line) for line in out))


def _ts(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


__all__ = ["Refused", "cancel", "hold", "ps", "show_target", "update", "wait"]
