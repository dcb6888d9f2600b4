"""Daemon commands: up, down, nodes. Plain dicts over :class:`~corral.client.Connection`,
as in :mod:`.job_cmds`."""

from __future__ import annotations

import sys

from ..client import Connection
from ..errors import CorralError
from . import format as fmt


def _json_dumps(data, indent=2) -> str:
    import json

    return json.dumps(data, indent=indent, sort_keys=True)


def cmd_up(args) -> int:
    if args.simulate_gpus is not None and args.simulate_gpus < 0:
        raise CorralError(f"invalid value for --simulate-gpus: {args.simulate_gpus} (expected 0 or more)")
    from ..paths import Paths

    problem = Paths(args.home).problem()
    if problem:
        raise CorralError(problem)
    if args.foreground:
        from ..executors.local.launcher import Launcher

        launcher = Launcher.start()  # before the daemon's heavy imports: cheaper forks
        from ..daemon.server import run

        return run(args.home, simulate_gpus=args.simulate_gpus, launcher=launcher, new_store=args.new_store)
    options = [] if args.simulate_gpus is None else ["--simulate-gpus", str(args.simulate_gpus)]
    if args.new_store:
        options.append("--new-store")
    conn = Connection(args.home, start_options=options, create_home=True, announce=False)
    already = conn.is_running()
    if already and args.new_store:
        raise CorralError("the daemon is running on its store; --new-store is for a home whose store was lost "
                          "(the daemon refused to start, saying so)")
    if already and args.simulate_gpus is not None:
        nodes = conn.request("GET", "/v1/nodes")["nodes"]
        have = sum(len(n["gpus"]) for n in nodes if n["simulated_gpus"])
        if have != args.simulate_gpus:
            raise CorralError(f"the daemon is already running with {have} simulated GPUs; "
                              f"run `corral down` first to change --simulate-gpus to {args.simulate_gpus}")
    if not already:
        conn.start_daemon()
    health = conn.request("GET", "/v1/health")
    nodes = conn.request("GET", "/v1/nodes")["nodes"]
    notice = _simulate_gpus_notice(conn, args, nodes)
    if notice:
        print(f"corral: {notice}", file=sys.stderr)
    if args.json:
        print(_json_dumps({"already_running": already, "health": health, "nodes": nodes}))
        return 0
    word = "already running" if already else "started"
    print(f"corral daemon {word} (pid {health['pid']}, home {health['home']})")
    for n in nodes:
        r = n["resources"]
        gpus = f"{r['nvidia.com/gpu']['allocatable']} GPUs" + (" (simulated)" if n["simulated_gpus"] else "")
        extended = "".join(f", {v['allocatable']} {name}" for name, v in r.items()
                           if name not in ("cpu", "memory", "nvidia.com/gpu"))
        print(f"node {n['name']}: {r['cpu']['allocatable']} cpu, {r['memory']['allocatable']} memory, {gpus}"
              f"{extended} allocatable; GPUs from {n['gpu_source']}")
    return 0


def _simulate_gpus_notice(conn: Connection, args, nodes: list[dict]) -> str:
    """Which simulate_gpus won, when config.yaml's differs from what the daemon runs with:
    ``corral up --simulate-gpus N`` is kept in the store and wins over the file."""
    if len(nodes) != 1:
        return ""
    try:
        from ..config import load_config

        wanted = load_config(conn.paths.config).simulate_gpus
    except CorralError:
        return ""                   # a bad config.yaml stops the daemon, which says so
    have = len(nodes[0]["gpus"]) if nodes[0].get("simulated_gpus") else 0
    if not wanted or wanted == have:
        return ""
    return (f"simulate_gpus: {wanted} in {conn.paths.config} is overridden by `corral up --simulate-gpus {have}` "
            f"(kept in the store; it wins): the daemon has {have} simulated GPUs; "
            f"`corral down; corral up --simulate-gpus {wanted}` changes it")


def cmd_down(args) -> int:
    conn = Connection(args.home, autostart=False)
    if not conn.is_running():
        print("corral daemon is not running")
        return 0
    answer = conn.request("POST", "/v1/shutdown")
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and conn.lock_held():   # until the process is gone
        time.sleep(0.01)
    if args.json:
        print(_json_dumps(answer))
    else:
        keep = answer.get("running_jobs_keep_running", 0)
        extra = f"; {keep} running job(s) keep running and will be re-adopted by the next daemon" if keep else ""
        print(f"corral daemon stopped{extra}")
    return 0


def cmd_nodes(args) -> int:
    nodes = Connection(args.home).request("GET", "/v1/nodes")["nodes"]
    if args.json:
        print(_json_dumps({"nodes": nodes}))
        return 0
    if len(nodes) > 1:
        rows = []
        for n in nodes:
            gpus = n["gpus"]
            res = n["resources"]
            rows.append([n["name"], n.get("state") or "Ready", n.get("gpu_model") or "-",
                         f"{sum(1 for g in gpus if not g['job'])}/{len(gpus)}",
                         f"{res.get('cpu', {}).get('free', '0')}/{res.get('cpu', {}).get('allocatable', '0')}",
                         f"{res.get('memory', {}).get('free', '0')}/{res.get('memory', {}).get('allocatable', '0')}",
                         ",".join(sorted({f'job {g["job"]}' for g in gpus if g["job"]}, key=lambda s: int(s[4:])))
                         or "-"])
        print(f"{len(nodes)} nodes ({nodes[0]['engine']} engine)")
        print(fmt.table(["NODE", "STATE", "GPU MODEL", "GPUS FREE", "CPU FREE", "MEMORY FREE", "GPUS HELD BY"], rows))
        print()
    for n in nodes:
        sim = " (simulated GPUs)" if n["simulated_gpus"] else ""
        state = n.get("state") or "Ready"
        print(f"Node {n['name']}{sim}  {state}  policy {n['policy']}  GPUs from {n['gpu_source']}")
        enforcement = n.get("enforcement") or {}
        print(f"Limits: {enforcement.get('description') or 'not enforced'}")
        if enforcement.get("containment"):
            print(f"Containment: {enforcement['containment']}")
        if (n.get("access") or {}).get("description"):
            print(f"Access: {n['access']['description']}")
        if n.get("idle_gpu"):
            print(f"Idle GPUs: {n['idle_gpu']}")
        if n.get("labels"):
            print(f"Labels: {', '.join(f'{k}={v}' for k, v in sorted(n['labels'].items()))}")
        rows = [[name, v["capacity"], v["reserved"], v["allocatable"], v["allocated"], v["free"]]
                for name, v in n["resources"].items()]
        print(fmt.table(["RESOURCE", "CAPACITY", "RESERVED", "ALLOCATABLE", "ALLOCATED", "FREE"], rows))
        if n["gpus"]:
            print()
            grows = [[str(g["index"]), g["model"] + (" (simulated)" if g["simulated"] else ""), g["memory_human"],
                      g["uuid"], _links(g), f"job {g['job']}" if g["job"] else "free"] for g in n["gpus"]]
            print(fmt.table(["GPU", "MODEL", "MEMORY", "UUID", "NVLINK", "HELD BY"], grows))
        print()
        crows = [[str(c["id"]), f"job {c['job']}" if c["job"] else "free (shared pool)"] for c in n["cores"]]
        print(fmt.table(["CORE", "HELD BY"], crows))
    return 0


def cmd_drain(args) -> int:
    return _drain(args, "drain")


def cmd_undrain(args) -> int:
    return _drain(args, "undrain")


def _drain(args, action: str) -> int:
    from urllib.parse import quote

    answer = Connection(args.home).request("POST", f"/v1/nodes/{quote(args.node, safe='')}/{action}")
    if args.json:
        print(_json_dumps(answer))
        return 0
    running = answer.get("running") or []
    if action == "drain":
        head = f"node {answer['node']}: draining" if answer["changed"] else f"node {answer['node']}: already draining"
        tail = (f"; {len(running)} running job(s) run on: {', '.join(map(str, running))}" if running
                else "; nothing runs there")
        print(head + tail)
    else:
        print(f"node {answer['node']}: {'undrained' if answer['changed'] else 'was not draining'} ({answer['state']})")
    return 0


def _links(gpu: dict) -> str:
    peers = [i for i, lvl in gpu.get("links", {}).items() if lvl == "NVLINK"]
    return ",".join(sorted(peers, key=int)) or "-"


__all__ = ["cmd_up", "cmd_down", "cmd_nodes", "cmd_drain", "cmd_undrain", "sys"]
