"""``corral sim``: replay a trace through the daemon's scheduler core, compare policies."""

from __future__ import annotations

import sys

from ..errors import ValidationError
from . import format as fmt

COLUMNS = [("jobs", "JOBS"), ("jct_mean", "JCT MEAN"), ("jct_p50", "P50"), ("jct_p95", "P95"),
           ("jct_p99", "P99"), ("wait_mean", "WAIT MEAN"), ("slowdown_mean", "SLOWDOWN"),
           ("makespan", "MAKESPAN"), ("utilization", "GPU UTIL"), ("jain_fairness", "JAIN"),
           ("jct_ratio", "JCT/BOUND"), ("preemptions", "PREEMPT")]


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key in ("jobs", "preemptions"):
        return str(value)
    if key in ("utilization",):
        return f"{100 * value:.1f}%"
    if key in ("slowdown_mean", "jain_fairness", "jct_ratio"):
        return f"{value:.3f}"
    return fmt.duration(value) if value >= 60 else f"{value:.1f}s"


def cmd_sim(args) -> int:
    import time

    from ..durations import parse_duration
    from ..sim.bounds import mean_jct_lower_bound
    from ..sim.cluster import cluster_from
    from ..sim.engine import simulate
    from ..sim.loaders import load_trace
    from ..sim.metrics import summarize
    from ..sim.policies import DEFAULT_HALF_LIFE, DEFAULT_THRESHOLDS, is_oracle, parse_thresholds, resolve

    if not args.trace:
        raise ValidationError("--trace", "", "expected a trace file (see --format)", detail="missing trace")
    if args.load <= 0:
        raise ValidationError("--load", args.load, "expected a positive factor, e.g. 0.5, 1.0, 2.0")
    factor = getattr(args, "estimate_factor", None)
    factor = 1.0 if factor is None else factor
    if not factor > 0:
        raise ValidationError("--estimate-factor", factor, "expected a number above 0, e.g. 1.0 or 2")
    half_life_text = getattr(args, "half_life", None)
    half_life = float(DEFAULT_HALF_LIFE if half_life_text is None else
                      parse_duration(half_life_text, "--half-life", bare_unit=1, what="half-life",
                                     examples="e.g. 7d, 12h, 3600"))
    thresholds_text = getattr(args, "tiresias_thresholds", None)
    thresholds = DEFAULT_THRESHOLDS if thresholds_text is None else parse_thresholds(thresholds_text)
    names = args.policy or ["best-effort-fifo"]
    policies = {name: resolve(name, estimate_factor=factor, half_life=half_life, tiresias_thresholds=thresholds)
                for name in names}
    nodes = cluster_from(args.cluster)
    trace = load_trace(args.trace, args.format)
    if args.jobs:
        trace = trace.head(args.jobs)
    if args.load != 1.0:
        trace = trace.rescale_load(args.load)
    total_gpus = sum(n.allocatable.get("nvidia.com/gpu", 0) for n in nodes)

    results: dict[str, dict] = {}
    runs: dict[str, object] = {}
    infeasible: dict[int, str] = {}
    oracle: list[str] = []
    for name, policy in policies.items():
        t0 = time.perf_counter()
        result = simulate(nodes, trace.jobs, policy)
        wall = time.perf_counter() - t0
        runs[name] = result
        infeasible = result.infeasible
        ran = {o.id for o in result.outcomes}
        bound = None
        if total_gpus and ran:
            bound = mean_jct_lower_bound([(j.submit, j.duration, j.requests.get("nvidia.com/gpu", 0))
                                          for j in trace.jobs if j.id in ran], total_gpus)
        results[name] = summarize(result.outcomes, result.samples, bound=bound)
        results[name]["wall_seconds"] = wall
        results[name]["preemptions"] = result.preemptions
        results[name]["gang_placed"] = result.gang_placed
        results[name]["oracle"] = is_oracle(policy, (j for j in trace.jobs if j.id in ran))
        if results[name]["oracle"]:
            oracle.append(name)

    if args.json:
        import json

        print(json.dumps({"trace": trace.source, "jobs": len(trace.jobs), "skipped": trace.skipped,
                          "skip_reasons": trace.skip_reasons, "infeasible": len(infeasible),
                          "gang_jobs": _gang_jobs(runs),
                          "nodes": len(nodes), "gpus": total_gpus, "load": args.load,
                          "estimate_factor": factor, "half_life": half_life,
                          "tiresias_thresholds": list(thresholds),
                          "policies": results}, indent=2, sort_keys=True, default=str))
    else:
        print(f"trace {trace.source}: {len(trace.jobs)} jobs"
              + (f", {trace.skipped} rows skipped ({_reasons(trace.skip_reasons)})" if trace.skipped else "")
              + f"; cluster {len(nodes)} nodes, {total_gpus} GPUs; load x{args.load:g}")
        if infeasible:
            print(f"{len(infeasible)} jobs can never fit this cluster and were left out, e.g. "
                  f"job {next(iter(infeasible))}: {next(iter(infeasible.values()))}")
        gangs = _gang_jobs(runs)
        if gangs:
            print(f"{gangs} jobs need more GPUs than any one node and were gang-placed across whole nodes "
                  f"(all-or-nothing, CPU/memory split evenly per node)")
        rows = [[name + (" (oracle)" if r["oracle"] else "")] + [_cell(k, r.get(k)) for k, _ in COLUMNS]
                for name, r in results.items()]
        print(fmt.table(["POLICY"] + [h for _, h in COLUMNS], rows))
        print("JCT/BOUND: mean JCT over a lower bound (fluid SRPT on one machine with all GPUs, "
              "or the mean duration, whichever is larger).")
        if oracle:
            print("(oracle): uses the trace's real run times (a reference, not deployable): " + ", ".join(oracle))
        if "easy-backfill" in policies:
            print(f"easy-backfill: run-time estimate = the requested time when the trace has one, "
                  f"else the actual duration x {factor:g} (--estimate-factor).")
        if "tiresias" in policies:
            print("tiresias: queues by attained GPU-seconds, thresholds "
                  + ", ".join(f"{t:g}" for t in thresholds) + " (--tiresias-thresholds); PREEMPT: preemptions.")
    if args.out:
        _write_out(args.out, results)
    plot_dir = getattr(args, "plot", None)
    if plot_dir:
        from ..sim.plots import write_plots

        paths = write_plots(runs, plot_dir, title=f"load x{args.load:g}, {len(nodes)} nodes / {total_gpus} GPUs")
        print(f"wrote {len(paths)} plots to {plot_dir}", file=sys.stderr)
    return 0


def _gang_jobs(runs: dict) -> int:
    """Jobs gang-placed (the same jobs under every policy: every job runs once)."""
    return max((r.gang_placed for r in runs.values()), default=0)


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
