"""``corral sim``: replay a trace through the daemon's scheduler core, compare policies."""

from __future__ import annotations

import sys

from ..errors import ValidationError
from . import format as fmt

COLUMNS = [("jobs", "JOBS"), ("jct_mean", "JCT MEAN"), ("jct_p50", "P50"), ("jct_p95", "P95"),
           ("jct_p99", "P99"), ("wait_mean", "WAIT MEAN"), ("slowdown_mean", "SLOWDOWN"),
           ("makespan", "MAKESPAN"), ("utilization", "GPU UTIL"), ("jain_fairness", "JAIN"),
           ("jct_ratio", "JCT/BOUND")]


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key in ("jobs",):
        return str(value)
    if key in ("utilization",):
        return f"{100 * value:.1f}%"
    if key in ("slowdown_mean", "jain_fairness", "jct_ratio"):
        return f"{value:.3f}"
    return fmt.duration(value) if value >= 60 else f"{value:.1f}s"


def cmd_sim(args) -> int:
    import time

    from ..scheduler import POLICIES, get_policy
    from ..sim.bounds import mean_jct_lower_bound
    from ..sim.cluster import cluster_from
    from ..sim.engine import simulate
    from ..sim.loaders import load_trace
    from ..sim.metrics import summarize

    if not args.trace:
        raise ValidationError("--trace", "", "expected a trace file (see --format)", detail="missing trace")
    if args.load <= 0:
        raise ValidationError("--load", args.load, "expected a positive factor, e.g. 0.5, 1.0, 2.0")
    policies = args.policy or ["best-effort-fifo"]
    for name in policies:
        get_policy(name)
    nodes = cluster_from(args.cluster)
    trace = load_trace(args.trace, args.format)
    if args.jobs:
        trace = trace.head(args.jobs)
    if args.load != 1.0:
        trace = trace.rescale_load(args.load)
    total_gpus = sum(n.allocatable.get("nvidia.com/gpu", 0) for n in nodes)

    results: dict[str, dict] = {}
    infeasible: dict[int, str] = {}
    timings: dict[str, float] = {}
    for name in policies:
        t0 = time.perf_counter()
        result = simulate(nodes, trace.jobs, get_policy(name))
        timings[name] = time.perf_counter() - t0
        infeasible = result.infeasible
        ran = {o.id for o in result.outcomes}
        bound = None
        if total_gpus:
            bound = mean_jct_lower_bound([(j.submit, j.duration, j.requests.get("nvidia.com/gpu", 0))
                                          for j in trace.jobs if j.id in ran], total_gpus)
        results[name] = summarize(result.outcomes, result.samples, bound=bound)
        results[name]["wall_seconds"] = timings[name]

    if args.json:
        import json

        print(json.dumps({"trace": trace.source, "jobs": len(trace.jobs), "skipped": trace.skipped,
                          "skip_reasons": trace.skip_reasons, "infeasible": len(infeasible),
                          "nodes": len(nodes), "gpus": total_gpus, "load": args.load,
                          "policies": results}, indent=2, sort_keys=True, default=str))
    else:
        print(f"trace {trace.source}: {len(trace.jobs)} jobs"
              + (f", {trace.skipped} rows skipped ({_reasons(trace.skip_reasons)})" if trace.skipped else "")
              + f"; cluster {len(nodes)} nodes, {total_gpus} GPUs; load x{args.load:g}")
        if infeasible:
            print(f"{len(infeasible)} jobs can never fit this cluster and were left out, e.g. "
                  f"job {next(iter(infeasible))}: {next(iter(infeasible.values()))}")
        rows = [[name] + [_cell(k, r.get(k)) for k, _ in COLUMNS] for name, r in results.items()]
        print(fmt.table(["POLICY"] + [h for _, h in COLUMNS], rows))
        print("JCT/BOUND: mean JCT over a lower bound (fluid SRPT on one machine with all GPUs, "
              "or the mean duration, whichever is larger).")
        oracle = [n for n in policies if getattr(POLICIES.get(n), "oracle", False)]  # noqa: E501
        if oracle:
            print("needs oracle knowledge of run times (a reference, not deployable): " + ", ".join(oracle))
    if args.out:
        _write_out(args.out, results)
    return 0


def _reasons(reasons: dict[str, int]) -> str:
    return ", ".join(f"{count} {why}" for why, count in reasons.items())


def _write_out(path: str, results: dict[str, dict]) -> None:
    if path.endswith(".csv"):
        import csv

        from ..sim.metrics import to_csv_rows

        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(to_csv_rows(results))
    else:
        import json

        with open(path, "w") as f:
            json.dump(results, f, indent=2, sort_keys=True, default=str)
    print(f"wrote {path}", file=sys.stderr)
