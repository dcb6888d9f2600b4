#!/usr/bin/env python3
"""Packing benchmark: the FGD paper's experiment on the Alibaba openb traces.

Run it with the project's interpreter::

    .venv/bin/python benchmarks/bench_packing.py [--seeds 0,1,2] [--fill 1.3] [--json-out PATH]
    .venv/bin/python benchmarks/bench_packing.py --pods PATH/openb_pod_list_gpushare100.csv \\
        --gpuspec PATH/openb_pod_list_gpuspec33.csv

(a) **Packing** (``corral.sim.packing``, what ``corral sim --packing --fill 1.3`` runs):
    the openb default pod list (every pod, whatever its phase, as the FGD simulator reads
    it; ``--pods`` for another list, e.g. the paper's ``gpushare`` ones from
    hkust-adsl/kubernetes-scheduler-simulator ``data/csv/``) on the openb GPU node list
    (1,213 nodes, 6,212 GPUs). Per seed the arrivals are shuffled by the seed and topped
    up with random draws until requests reach ``--fill`` x the GPUs; FGD and corral's best
    fit place each arrival or fail it, with no departures. Reported per seed and as the
    mean over seeds: the GPU allocation ratio (GPU allocated / capacity, a share counting
    its thousandths) at 100 % and at ``--fill`` arrived, the fragmentation (FGD's measure
    over the capacity) there, jobs that failed, and the wall time of each run.
(b) **GPU models** (``--gpuspec FILE``, a pod list with ``gpu_spec``, e.g. the paper's
    ``openb_pod_list_gpuspec33.csv``): the pods (Running ones kept) replayed with the
    default policy on the node list, once with their ``gpu_spec`` constraints and once
    with them taken off (what the loader did before it honoured ``gpu_spec``); reported:
    pods placed on a GPU model they do not allow, and the wall time.

Stdlib only (plus corral). Exit status 2 when the traces are missing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRACES = REPO.parent / "shared" / "traces"
sys.path.insert(0, str(REPO / "src"))

from corral.scheduler.eligibility import gpu_model_matches  # noqa: E402
from corral.sim.engine import simulate  # noqa: E402
from corral.sim.loaders import load_alibaba, load_alibaba_nodes  # noqa: E402
from corral.sim.packing import SCORERS, arrivals, pack  # noqa: E402
from corral.sim.policies import resolve  # noqa: E402

ALI_PODS = "alibaba-openb_pod_list_default.csv"
ALI_NODES = "alibaba-openb_node_list_gpu_node.csv"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(x: float | None) -> str:
    return "-" * 5 if x is None else f"{100 * x:.1f}%"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    print(f"\n{title}")
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def run_packing(pods: Path, nodes, seeds: list[int], fill: float, out: dict) -> None:
    trace = load_alibaba(pods, every_pod=True)
    capacity = sum(len(n.gpus) for n in nodes) * 1000
    runs: dict[str, list[dict]] = {s: [] for s in SCORERS}
    for seed in seeds:
        order = arrivals(trace.jobs, capacity, fill, seed)
        for scorer in SCORERS:
            t0 = time.perf_counter()
            r = pack(nodes, order, scorer, fill=fill)
            wall = time.perf_counter() - t0
            curve = {round(m, 6): (a, f) for m, a, f in r.curve}
            runs[scorer].append({"seed": seed, "arrivals": len(order), "placed": r.placed, "failed": r.failed,
                                 "alloc_100": curve[1.0][0], "alloc_fill": curve[round(fill, 6)][0],
                                 "frag_100": curve[1.0][1], "frag_fill": curve[round(fill, 6)][1],
                                 "curve": r.curve, "wall": wall})
            log(f"  seed {seed} {scorer}: {100 * curve[round(fill, 6)][0]:.1f}% at {fill:g} ({wall:.1f} s)")
    rows = []
    for scorer in SCORERS:
        for run in runs[scorer]:
            rows.append([scorer, str(run["seed"]), str(run["arrivals"]), pct(run["alloc_100"]), pct(run["alloc_fill"]),
                         pct(run["frag_100"]), pct(run["frag_fill"]), str(run["failed"]), f"{run['wall']:.1f}"])
    for scorer in SCORERS:
        m = lambda k: statistics.fmean(r[k] for r in runs[scorer])  # noqa: E731
        rows.append([f"{scorer} (mean)", "-", "-", pct(m("alloc_100")), pct(m("alloc_fill")), pct(m("frag_100")),
                     pct(m("frag_fill")), f"{m('failed'):.0f}", f"{m('wall'):.1f}"])
    table(f"(a) packing: {pods.name} ({len(trace.jobs)} pods) on {len(nodes)} nodes / {capacity // 1000} GPUs, "
          f"fill {fill:g}",
          ["SCORER", "SEED", "ARRIVALS", "ALLOC@100%", f"ALLOC@{100 * fill:.0f}%", "FRAG@100%",
           f"FRAG@{100 * fill:.0f}%", "FAILED", "WALL S"], rows)
    out["packing"] = {"pods": str(pods), "fill": fill, "seeds": seeds, "runs": runs}


def run_gpuspec(pods: Path, nodes, out: dict) -> None:
    trace = load_alibaba(pods, include_running=True)
    by_id = {j.id: j for j in trace.jobs}
    rows, res = [], {}
    for label, jobs in (("honoured", trace.jobs),
                        ("ignored", [replace(j, requests=j.requests.with_constraints(None)) for j in trace.jobs])):
        t0 = time.perf_counter()
        r = simulate(nodes, jobs, resolve("best-effort-fifo"))
        wall = time.perf_counter() - t0
        bad = sum(1 for o in r.outcomes if by_id[o.id].gpu_models and o.model
                  and not any(gpu_model_matches(w, o.model) for w in by_id[o.id].gpu_models))
        asked = sum(1 for o in r.outcomes if by_id[o.id].gpu_models)
        res[label] = {"placed": len(r.outcomes), "with_gpu_spec": asked, "violations": bad,
                      "infeasible": len(r.infeasible), "wall": wall}
        rows.append([label, str(len(r.outcomes)), str(asked), str(bad), str(len(r.infeasible)), f"{wall:.1f}"])
    table(f"(b) gpu_spec: {pods.name}, {len(trace.jobs)} pods (Running kept) replayed with best-effort-fifo",
          ["GPU_SPEC", "PLACED", "WITH GPU_SPEC", "ON A MODEL NOT ALLOWED", "NEVER FIT", "WALL S"], rows)
    out["gpuspec"] = {"pods": str(pods), **res}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=Path, default=DEFAULT_TRACES)
    ap.add_argument("--pods", type=Path, default=None, help=f"pod list for (a) (default: TRACES/{ALI_PODS})")
    ap.add_argument("--gpuspec", type=Path, default=None, help="pod list with gpu_spec for (b) (default: skip it)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--fill", type=float, default=1.3)
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    pods = args.pods or args.traces / ALI_PODS
    node_path = args.traces / ALI_NODES
    for p in [pods, node_path] + ([args.gpuspec] if args.gpuspec else []):
        if not p.exists():
            log(f"missing trace file {p} (see ../shared/traces/README.md)")
            return 2
    nodes = load_alibaba_nodes(node_path)
    out: dict = {}
    t0 = time.perf_counter()
    run_packing(pods, nodes, [int(s) for s in args.seeds.split(",")], args.fill, out)
    if args.gpuspec:
        run_gpuspec(args.gpuspec, nodes, out)
    print(f"\n{time.perf_counter() - t0:.0f} s in all")
    if args.json_out:
        args.json_out.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
