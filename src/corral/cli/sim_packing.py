"""``corral sim --packing``: the FGD paper's packing experiment (:mod:`corral.sim.packing`)."""

from __future__ import annotations

import sys

from ..errors import ValidationError
from . import format as fmt

DEFAULT_FILL = 1.3


def cmd_packing(args, nodes, seed: int) -> int:
    from ..sim.loaders import load_trace
    from ..sim.packing import SCORERS, arrivals, check_fill, pack

    fill = check_fill(DEFAULT_FILL if getattr(args, "fill", None) is None else args.fill)
    for opt, value in (("--policy", args.policy), ("--window", getattr(args, "window", None)),
                       ("--plot", getattr(args, "plot", None))):
        if value:
            raise ValidationError(opt, value, "expected a replay for it, not --packing (which compares its "
                                  "scorers on arrivals without departures)", detail="not with --packing")
    options = {"every_pod": True} if str(args.format).strip().lower() == "alibaba" else {}
    trace = load_trace(args.trace, args.format, **options)
    jobs = trace.jobs if not args.jobs else trace.jobs[:args.jobs]
    capacity = sum(len(n.gpus) for n in nodes) * 1000
    order = arrivals(jobs, capacity, fill, seed)
    results = {scorer: pack(nodes, order, scorer, fill=fill) for scorer in SCORERS}
    per_job = getattr(args, "per_job", None)
    if per_job:
        _write_placements(per_job, order, nodes, results)
    if args.json:
        import json

        print(json.dumps({
            "trace": trace.source, "jobs": len(jobs), "arrivals": len(order), "nodes": len(nodes),
            "gpus": capacity // 1000, "fill": fill, "seed": seed,
            "scorers": {name: {"placed": r.placed, "failed": r.failed, "arrived_fraction": r.arrived_fraction,
                               "curve": [{"arrived": m, "allocation_ratio": a, "fragmentation": f}
                                         for m, a, f in r.curve]}
                        for name, r in results.items()}}, indent=2, sort_keys=True))
        return 0
    print(f"packing: {len(order)} arrivals from {len(jobs)} jobs of {trace.source} (shuffled by --seed {seed}, "
          f"no departures, until requests reach {100 * fill:g}% of the GPUs); cluster {len(nodes)} nodes, "
          f"{capacity // 1000} GPUs")
    first = next(iter(results.values()))
    headers = ["ARRIVED"] + [f"{name.upper()} ALLOC" for name in results] + [f"{name.upper()} FRAG"
                                                                            for name in results]
    rows = []
    for i, (mark, _, _) in enumerate(first.curve):
        rows.append([f"{100 * mark:.0f}%"] + [f"{100 * r.curve[i][1]:.1f}%" for r in results.values()]
                    + [f"{100 * r.curve[i][2]:.1f}%" for r in results.values()])
    print(fmt.table(headers, rows))
    print("; ".join(f"{name}: {r.placed} placed, {r.failed} found no node" for name, r in results.items()))
    print("ALLOC: GPU allocated (shares by their thousandths) / the cluster's GPUs, once that share of them was "
          "requested. FRAG: FGD's fragmentation (free GPU the typical jobs cannot use) / the cluster's GPUs.")
    if args.out:
        import json

        with open(args.out, "w") as f:
            json.dump({name: r.curve for name, r in results.items()}, f, indent=2)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


PLACEMENT_COLUMNS = ("scorer", "arrival", "id", "node", "gpus", "share", "model")


def _write_placements(path: str, order, nodes, results: dict) -> None:
    """``--per-job`` in the packing mode: where each arrival was placed, per scorer (an
    arrival that found no node has an empty node; a job drawn again to top up the
    arrivals appears once per arrival)."""
    import csv

    from ..scheduler.shares import share_of

    node_of = {n.name: n for n in nodes}
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(PLACEMENT_COLUMNS)
        for scorer, r in results.items():
            for number, job in enumerate(order):
                node, gpus = r.where.get(number, ("", ()))
                model = "|".join(dict.fromkeys(node_of[node].gpu(g).model for g in gpus)) if node else ""
                out.writerow([scorer, number, job.id, node, "|".join(map(str, gpus)),
                              share_of(job.requests) or "", model])
    print(f"wrote {path}", file=sys.stderr)
