"""``corral sim``: replay a trace through the daemon's scheduler core, compare policies."""

from __future__ import annotations

import math
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


def _seconds(text, option: str, *, allow_zero: bool) -> float | None:
    if text is None:
        return None
    from ..durations import parse_duration

    return float(parse_duration(text, option, bare_unit=1, allow_zero=allow_zero, what="duration",
                                examples="e.g. 8h, 30m, 60s, 3600"))


def cmd_sim(args) -> int:
    import time

    from ..durations import parse_duration
    from ..sim.bounds import mean_jct_lower_bound
    from ..sim.cluster import cluster_from
    from ..sim.engine import simulate
    from ..sim.loaders import load_trace
    from ..sim.metrics import summarize
    from ..sim.policies import (DEFAULT_HALF_LIFE, DEFAULT_THRESHOLDS, is_oracle, parse_promote_knob,
                                parse_thresholds, resolve)

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
    knob_text = getattr(args, "tiresias_promote_knob", None)
    knob = None if knob_text is None else parse_promote_knob(knob_text)
    config_path = getattr(args, "config", None)
    names = args.policy or ([] if config_path else ["best-effort-fifo"])
    if "config" in names and not config_path:
        raise ValidationError("--policy", "config", "expected --config FILE with it (a daemon config file)")
    from ..sim.research import check_placement, check_rules

    rules = check_rules(getattr(args, "reference_rules", None) or "paper")
    placement = check_placement(getattr(args, "placement", None) or "best-fit")
    policies = {name: resolve(name, estimate_factor=factor, half_life=half_life, tiresias_thresholds=thresholds,
                              tiresias_promote_knob=knob, reference_rules=rules)
                for name in names if name != "config"}
    if getattr(args, "placement", None) and not {"srtf", "tiresias"} & set(policies):
        raise ValidationError("--placement", args.placement,
                              "expected --policy srtf or tiresias with it (the daemon's policies place as the "
                              "daemon does: best fit)")
    if config_path:
        from ..sim.policies import load_config_policy

        policies["config"] = load_config_policy(config_path)
    seed = 0 if getattr(args, "seed", None) is None else args.seed
    window = _seconds(getattr(args, "window", None), "--window", allow_zero=False)
    min_duration = _seconds(getattr(args, "min_duration", None), "--min-duration", allow_zero=True) or 0.0
    max_gpu_hours = getattr(args, "max_gpu_hours", None)
    if max_gpu_hours is not None and not (max_gpu_hours > 0 and math.isfinite(max_gpu_hours)):
        raise ValidationError("--max-gpu-hours", max_gpu_hours, "expected GPU-hours above 0, e.g. 1000")
    if args.jobs is not None and args.jobs < 1:
        raise ValidationError("--jobs", args.jobs, "expected a whole number of jobs, 1 or more")
    fraction = getattr(args, "node_fraction", None)
    nodes = cluster_from(args.cluster)
    if fraction is not None:
        from ..sim.loaders import downsample_nodes

        if not (0 < fraction <= 1):
            raise ValidationError("--node-fraction", fraction, "expected a number above 0 and at most 1, e.g. 0.25")
        nodes = downsample_nodes(nodes, fraction, seed)
    keep_running = bool(getattr(args, "keep_running", False))
    fmt_name = str(args.format or "").strip().lower()
    if keep_running and fmt_name != "alibaba":
        raise ValidationError("--keep-running", args.format, "expected --format alibaba (only its pods have phases)")
    if getattr(args, "packing", False):
        from .sim_packing import cmd_packing

        return cmd_packing(args, nodes, seed)
    if getattr(args, "fill", None) is not None:
        raise ValidationError("--fill", args.fill, "expected --packing with it (the packing experiment)")
    trace = load_trace(args.trace, args.format, **({"include_running": True} if keep_running else {}))
    if not trace.timed:
        raise ValidationError("--trace", args.trace, "expected submit and run times (creation_time, deletion_time "
                              "columns) to replay; a pod list without them runs with --packing",
                              detail="no time columns")
    info = None
    if window is not None or min_duration or max_gpu_hours is not None or args.jobs:
        from ..sim.trace import sample

        trace, info = sample(trace, seed=seed, window=window, jobs=args.jobs, min_duration=min_duration,
                             max_gpu_time=None if max_gpu_hours is None else max_gpu_hours * 3600.0)
        if not trace.jobs:
            raise ValidationError("--window" if window is not None else "--jobs",
                                  getattr(args, "window", None) or args.jobs,
                                  "expected a sample with jobs: this one has none (try another --seed or a longer "
                                  "--window)", detail="empty sample")
    if getattr(args, "seed", None) is not None and window is None and fraction is None:
        print("note: --seed only picks the --window start and the --node-fraction nodes; without them "
              "the replay is the same for every seed", file=sys.stderr)
    if args.load != 1.0:
        trace = trace.rescale_load(args.load)
    total_gpus = sum(n.allocatable.get("nvidia.com/gpu", 0) for n in nodes)

    results: dict[str, dict] = {}
    runs: dict[str, object] = {}
    infeasible: dict[int, str] = {}
    oracle: list[str] = []
    for name, policy in policies.items():
        t0 = time.perf_counter()
        result = simulate(nodes, trace.jobs, policy, placement=placement)
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
        import dataclasses
        import json

        print(json.dumps({"trace": trace.source, "jobs": len(trace.jobs), "skipped": trace.skipped,
                          "skip_reasons": trace.skip_reasons, "infeasible": len(infeasible),
                          "gang_jobs": _gang_jobs(runs),
                          "nodes": len(nodes), "gpus": total_gpus, "load": args.load, "seed": seed,
                          "sample": None if info is None else dataclasses.asdict(info),
                          "estimate_factor": factor, "half_life": half_life,
                          "tiresias_thresholds": list(thresholds), "tiresias_promote_knob": knob,
                          "reference_rules": rules, "placement": placement,
                          "policies": results}, indent=2, sort_keys=True, default=str))
    else:
        print(f"trace {trace.source}: {len(trace.jobs)} jobs"
              + (f", {trace.skipped} rows skipped ({_reasons(trace.skip_reasons)})" if trace.skipped else "")
              + f"; cluster {len(nodes)} nodes, {total_gpus} GPUs; load x{args.load:g}")
        if info is not None:
            print(_sample_line(info))
        if infeasible:
            print(f"{len(infeasible)} jobs can never fit this cluster and were left out, e.g. "
                  f"job {next(iter(infeasible))}: {next(iter(infeasible.values()))}")
        gangs = _gang_jobs(runs)
        if gangs:
            print(f"{gangs} jobs need more GPUs than any one node and were gang-placed across nodes "
                  f"(all-or-nothing, CPU/memory split evenly per node; "
                  + ("whole free nodes plus one for the rest)" if placement == "first-fit" else
                     "whole free nodes when there are enough, else the fewest nodes with free GPUs)"))
        rows = [[name + (" (oracle)" if r["oracle"] else "")] + [_cell(k, r.get(k)) for k, _ in COLUMNS]
                for name, r in results.items()]
        print(fmt.table(["POLICY"] + [h for _, h in COLUMNS], rows))
        print("JCT/BOUND: mean JCT over a lower bound (fluid SRPT on one machine with all GPUs, "
              "or the mean duration, whichever is larger).")
        stranded = {name: r.get("gpu_stranded") for name, r in results.items() if r.get("gpu_stranded")}
        if stranded:
            print("GPU shares: free on shared devices only (usable by other shares only, a fragmentation "
                  "figure), time average: " + ", ".join(f"{name} {100 * v:.2f}%" for name, v in stranded.items()))
        if oracle:
            print("(oracle): uses the trace's real run times (a reference, not deployable): " + ", ".join(oracle))
        if "config" in policies:
            print(_config_line(config_path, policies["config"], trace.jobs))
        if "easy-backfill" in policies:
            print(f"easy-backfill: run-time estimate = the requested time when the trace has one, "
                  f"else the actual duration x {factor:g} (--estimate-factor).")
        if "tiresias" in policies:
            print("tiresias: queues by attained GPU-seconds, thresholds "
                  + ", ".join(f"{t:g}" for t in thresholds) + " (--tiresias-thresholds); starvation promotion "
                  + (f"after waiting {knob:g}x the run time" if knob else "off") + " (--tiresias-promote-knob); "
                  "PREEMPT: preemptions.")
        if set(policies) & {"srtf", "tiresias"}:
            print(f"srtf, tiresias: {rules} rules (--reference-rules), {placement} placement (--placement).")
    if args.out:
        _write_out(args.out, results)
    per_job = getattr(args, "per_job", None)
    if per_job:
        _write_per_job(per_job, runs)
    plot_dir = getattr(args, "plot", None)
    if plot_dir:
        from ..sim.plots import write_plots

        paths = write_plots(runs, plot_dir, title=f"load x{args.load:g}, {len(nodes)} nodes / {total_gpus} GPUs")
        print(f"wrote {len(paths)} plots to {plot_dir}", file=sys.stderr)
    return 0


def _config_line(path: str, policy, jobs) -> str:
    scheduling = policy.scheduling
    specs = scheduling.queue_map
    if len(specs) == 1:
        return f"config: {path}: policy {scheduling.default_policy} on one queue" + _flags(scheduling)
    counts: dict[str, int] = {}
    for job in jobs:
        queue = policy.queue_for(job)
        counts[queue] = counts.get(queue, 0) + 1
    per = ", ".join(f"{name} {counts.get(name, 0)}" for name in specs)
    return f"config: {path}: {len(specs)} queues, jobs per queue (by trace user): {per}" + _flags(scheduling)


def _flags(scheduling) -> str:
    flags = [f for f, on in (("fair share", scheduling.fair_share), ("backfill", scheduling.backfill),
                             ("preemption", scheduling.preemption),
                             ("las: the trace's jobs taken as resumable", scheduling.by_service)) if on]
    return f"; {', '.join(flags)}" if flags else ""


def _sample_line(info) -> str:
    where = (f"window of {fmt.duration(info.window)} from {fmt.duration(info.start)} into the trace (--seed "
             f"{info.seed}): {info.in_window} jobs" if info.window is not None else f"{info.in_window} jobs")
    dropped = [f"{n} {why}" for n, why in ((info.too_short, "shorter than --min-duration"),
                                            (info.too_big, "over --max-gpu-hours"),
                                            (info.over_cap, "past --jobs")) if n]
    return f"sample: {where}, {info.kept} kept" + (f" ({', '.join(dropped)} left out)" if dropped else "")


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


PER_JOB_COLUMNS = ("policy", "id", "submit", "start", "end", "node", "gpus", "share", "model")


def _write_per_job(path: str, runs: dict) -> None:
    """One row per job and policy: where and when it ran. ``gpus``: the GPU indices on its
    node (``|``-separated); ``share``: the thousandths of that GPU it held when it shared
    one (empty for whole GPUs)."""
    import csv

    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(PER_JOB_COLUMNS)
        for name, result in runs.items():
            for o in result.outcomes:
                whole = o.gpus == int(o.gpus)
                out.writerow([name, o.id, _secs(o.submit), _secs(o.start), _secs(o.end),
                              o.node, "|".join(map(str, o.devices)), "" if whole else round(o.gpus * 1000),
                              o.model])
    print(f"wrote {path}", file=sys.stderr)


def _secs(value: float) -> str:
    """Seconds as written in the per-job file: exact to the millisecond, no exponent."""
    return f"{value:.3f}".rstrip("0").rstrip(".")
