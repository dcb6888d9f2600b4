#!/usr/bin/env python3
"""Simulator benchmark: scheduling policies on real traces, and the scheduler core's speed.

Run it with the project's interpreter::

    .venv/bin/python benchmarks/bench_sim.py [--seeds 8] [--alibaba-jobs 2000] [--json-out PATH]
    .venv/bin/python benchmarks/bench_sim.py --skip alibaba --skip scale \\
        --window-hours 168 --sample-jobs 1000 --min-sample 200 --plot-dir docs/img

Three parts, each printed as tables (``--skip philly|alibaba|scale`` leaves one out):

(a) **Philly policy comparison.** For each seed, ``random.Random(seed)`` picks a window
    start uniformly in ``[0, span - 8 h]`` of the Philly trace (``span`` = last submit,
    so the window lies inside the trace), keeps the jobs submitted in ``[start,
    start + 8 h)`` with duration >= 60 s and GPU-time (duration x GPUs) < 1000 GPU-hours
    and, if more than 160 remain, keeps the first 160 in submit order (fewer are reported
    as such): ``corral.sim.trace.sample``, what ``corral sim --window 8h --seed N --jobs
    160 --min-duration 60 --max-gpu-hours 1000`` replays. Jobs asking for more GPUs than
    one node has are kept and gang-placed on whole nodes (``corral.sim.gang``); jobs asking
    for more than the whole cluster can never run and are left out (counted). Each sample is
    replayed at loads 0.5, 1, 1.5 and 2 on 16 nodes x 4 GPUs. ``--load-basis offered``
    (default): the sample's arrival gaps are rescaled (``Trace.rescale_load``) so that
    its offered load -- GPU work / (arrival span x cluster GPUs) -- equals the load;
    ``--load-basis trace``: the trace's own gaps are divided by the load. Policies:
    every one in ``corral.scheduler.POLICIES`` (the fast path), then the simulator's
    multi-tenant ones (``corral.sim.policies``: ``easy-backfill`` once per
    ``--estimate-factors`` value, ``fair-share``); a policy that reads the real run
    times is marked "oracle". Reported per load and policy: the mean over seeds of the
    mean JCT, of its ratio to the lower bound
    (``corral.sim.bounds.mean_jct_lower_bound``, the ratio taken per seed, then
    averaged), of the p50/p95 JCT, of the mean wait and slowdown, of the GPU
    utilization during the arrivals and over the makespan, and of Jain's index.
    ``--plot-dir DIR`` writes PNG plots (matplotlib) of one run (``--plot-seed``,
    ``--plot-load``).
(b) **Alibaba openb.** The default pod list loaded with ``include_running=True`` (the
    trace README says Running pods are cut off by the trace end; the script checks that
    claim on the file and prints the counts), the first ``--alibaba-jobs`` pods
    (``Trace.head``), replayed with the default policy on a random fraction of the GPU
    node list (``downsample_nodes(nodes, fraction, seed)``) for several fractions.
    Reported per fraction: GPU and CPU allocation utilization, mean JCT and wait,
    Jain's fairness over the qos classes (the trace's ``user``), pods that can never fit
    any node, and the simulation's wall time.
(c) **Scale.** The full Philly trace replayed end to end on 16 x 8 GPUs with the default
    policy, in a child process pinned to one core: load and replay wall time, peak RSS
    (``ru_maxrss``), cycles and placements. Then a micro-benchmark of the scheduler core:
    ``--micro-pending`` (10,000) pending jobs of mixed shapes on ``--micro-nodes``
    (1,000) nodes of 8 GPUs; the cluster is first filled (by the benchmark, untimed),
    then each cycle frees 1 to 3 random running jobs (``Snapshot.forget``) and runs
    ``schedule_on`` on the persistent Snapshot + PendingQueue; the queue is topped up
    to 10,000 after each cycle. Reported: time per placement (cycle time / placements
    in it) p50/p99 and placements per second overall. Separately (``--initial-cycle``),
    the time of one cycle that starts from the empty cluster and places as many jobs as
    fit, in a child process with a time limit.

Stdlib only (plus corral; matplotlib for --plot-dir). Exit status 2 when the traces are missing.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRACES = REPO.parent / "shared" / "traces"

try:
    import corral  # noqa: F401
except ImportError:  # run with a python that lacks the package: use the checkout's src/
    sys.path.insert(0, str(REPO / "src"))

from corral.resources import CPU, GPU, MEMORY, Resources  # noqa: E402
from corral.scheduler import (DEFAULT_POLICY, POLICIES, PendingJob, PendingQueue, Snapshot,  # noqa: E402
                              get_policy, schedule_on)
from corral.job import Allocation  # noqa: E402
from corral.sim.bounds import mean_jct_lower_bound  # noqa: E402
from corral.sim.cluster import parse_cluster  # noqa: E402
from corral.sim.engine import simulate  # noqa: E402
from corral.sim.loaders import downsample_nodes, load_alibaba_nodes, load_trace  # noqa: E402
from corral.sim.metrics import percentile, summarize  # noqa: E402
from corral.sim.policies import HISTORY_POLICIES, PREEMPTIVE_POLICIES, TENANT_POLICIES, resolve  # noqa: E402
from corral.sim.policies import is_oracle as policy_is_oracle  # noqa: E402
from corral.sim.trace import Trace, sample  # noqa: E402

from benchenv import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

PHILLY = "philly.csv"
ALI_PODS = "alibaba-openb_pod_list_default.csv"
ALI_NODES = "alibaba-openb_node_list_gpu_node.csv"
GiB = 2**30
HOUR = 3600.0


# helpers ---------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def table(title: str, header: list[str], rows: list[list[str]], notes: list[str] = (), *,
          left: bool = False) -> str:
    """A Markdown table (first column, or every column with ``left``, left-aligned)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(  # noqa: E731
        str(c).ljust(w) if i == 0 or left else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"
    out = [f"\n{title}", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    out += list(notes)
    return "\n".join(out)


def f0(x) -> str:
    return "-" if x is None else f"{x:,.0f}"


def f2(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def f3(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def mib(kib) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f}"


def mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return math.fsum(xs) / len(xs) if xs else None


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def is_oracle(name_or_policy, jobs=()) -> bool:
    """A policy (or a core policy's name) that reads the real run times of ``jobs``."""
    if isinstance(name_or_policy, str):
        return bool(getattr(POLICIES.get(name_or_policy), "oracle", False))
    return policy_is_oracle(name_or_policy, jobs)


def environment() -> dict:
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip() or None
    except Exception:
        commit = None
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "commit": commit,
            "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "policies": {**{n: ("oracle" if is_oracle(n) else "") for n in POLICIES},
                         **{n: "learned run times" for n in HISTORY_POLICIES},
                         **{n: "multi-tenant cycle" for n in TENANT_POLICIES},
                         **{n: "preemptive" + (", oracle" if n == "srtf" else "") for n in PREEMPTIVE_POLICIES}}}


# (a) Philly policy comparison ---------------------------------------------------------------
def philly_sample(trace: Trace, seed: int, *, jobs: int, window: float, node_gpus: int, total_gpus: int,
                  min_duration: float, max_gpu_hours: float) -> dict:
    """The documented per-seed sample (see the module docstring): ``corral.sim.trace.sample``,
    the same code as ``corral sim --window --seed --jobs --min-duration --max-gpu-hours``."""
    picked, info = sample(trace, seed=seed, window=window, jobs=jobs, min_duration=min_duration,
                          max_gpu_time=max_gpu_hours * HOUR, max_gpus=total_gpus)
    gang = sum(1 for j in picked.jobs if j.requests.get(GPU, 0) > node_gpus)
    return {"seed": seed, "start": info.start, "in_window": info.in_window, "too_short": info.too_short,
            "too_big": info.too_big, "never_fit": info.too_wide, "gang": gang, "jobs": picked.jobs}


def offered_load(jobs, total_gpus: int) -> float | None:
    """GPU work / (arrival span x cluster GPUs): the offered load of a sample as it is."""
    span = jobs[-1].submit - jobs[0].submit if jobs else 0.0
    if span <= 0:
        return None
    return math.fsum(j.duration * j.requests.get(GPU, 0) for j in jobs) / (span * total_gpus)


def load_factor(jobs, load: float, total_gpus: int, basis: str) -> float:
    """The ``rescale_load`` factor that gives ``load``: with basis ``offered`` the factor
    that makes the sample's offered load (GPU work / (arrival span x GPUs)) equal to
    ``load``; with basis ``trace`` ``load`` itself (arrival gaps as in the trace / load)."""
    if basis == "trace":
        return load
    base = offered_load(jobs, total_gpus)
    return load if not base else load / base


def policy_runs(args) -> list[tuple[str, object]]:
    """(label, policy) for part (a): every core policy, then the simulator's multi-tenant
    ones; easy-backfill once per --estimate-factors value (k=1 labelled plainly)."""
    runs: list[tuple[str, object]] = [(p, get_policy(p)) for p in POLICIES]
    runs += [(name, resolve(name)) for name in HISTORY_POLICIES]          # sjf-history (deployable sjf)
    for name in TENANT_POLICIES:
        if name == "easy-backfill":
            for k in floats(args.estimate_factors):
                runs.append((name if k == 1 else f"{name} (k={k:g})", resolve(name, estimate_factor=k)))
        else:
            runs.append((name, resolve(name)))
    runs += [(name, resolve(name)) for name in PREEMPTIVE_POLICIES]   # srtf (oracle), tiresias
    if args.config:
        from corral.sim.policies.configured import load as load_configured

        runs.append(("config", load_configured(str(args.config))))
    if args.policies:
        wanted = [p.strip() for p in args.policies.split(",") if p.strip()]
        known = {label.split(" (")[0] for label, _ in runs}
        unknown = [p for p in wanted if p not in known]
        if unknown:
            raise SystemExit(f"--policies: unknown {unknown} (known: {', '.join(sorted(known))})")
        runs = [(label, policy) for label, policy in runs if label.split(" (")[0] in wanted]
    return runs


def run_philly(args, traces: Path, out: dict) -> None:
    t0 = time.perf_counter()
    trace = load_trace(traces / PHILLY, "philly")
    nodes = parse_cluster(args.cluster)
    node_gpus = max(n.allocatable.get(GPU, 0) for n in nodes)
    total_gpus = sum(n.allocatable.get(GPU, 0) for n in nodes)
    runs = policy_runs(args)
    policies = [label for label, _ in runs]
    loads = floats(args.loads)
    log(f"(a) Philly: {len(trace)} jobs, {args.seeds} seeds x {len(loads)} loads x {len(policies)} policies "
        f"on {args.cluster}, load basis {args.load_basis}")
    samples = [philly_sample(trace, s, jobs=args.sample_jobs, window=args.window_hours * HOUR,
                             node_gpus=node_gpus, total_gpus=total_gpus, min_duration=args.min_duration,
                             max_gpu_hours=args.max_gpu_hours)
               for s in range(args.seeds)]
    rows = []
    for s in samples:
        gpus = [j.requests.get(GPU, 0) for j in s["jobs"]]
        s["gpu_hours"] = math.fsum(j.duration * g for j, g in zip(s["jobs"], gpus)) / HOUR
        s["gpus_asked"] = sum(gpus)
        s["span_h"] = (s["jobs"][-1].submit - s["jobs"][0].submit) / HOUR if s["jobs"] else 0.0
        s["offered_load"] = offered_load(s["jobs"], total_gpus)
        s["max_duration_h"] = max((j.duration for j in s["jobs"]), default=0.0) / HOUR
        rows.append([str(s["seed"]), f"{s['start'] / 86400:.2f}", str(s["in_window"]), str(s["too_short"]),
                     str(s["too_big"]), str(s["never_fit"]), str(s["gang"]), str(len(s["jobs"])),
                     f"{s['gpu_hours']:,.0f}", str(sum(1 for g in gpus if g > 1)),
                     f"{sum(gpus)} ({sum(gpus) / total_gpus:.1f}x)", f"{s['span_h']:.2f}",
                     f2(s["offered_load"]), f"{s['max_duration_h']:.0f}"])
    short = [s["seed"] for s in samples if len(s["jobs"]) < args.sample_jobs]
    used = [s for s in samples if len(s["jobs"]) >= max(1, args.min_sample)]
    dropped = [f"{s['seed']} ({len(s['jobs'])} jobs)" for s in samples if s not in used]
    print(table(
        f"(a) Philly samples: {args.window_hours:g}-hour windows, jobs with duration >= {args.min_duration:g} s "
        f"and GPU-time < {args.max_gpu_hours:g} GPU-h, first {args.sample_jobs} in submit order",
        ["seed", "window start (day)", "jobs in window", "< 60 s", ">= 1000 GPU-h", "> cluster", "gang (> 1 node)",
         "sample", "GPU-hours", "multi-GPU", "GPUs asked (x cluster)", "arrival span (h)",
         "offered load as sampled", "longest job (h)"], rows,
        [f"'gang': jobs of the sample asking for more than {node_gpus} GPUs, which the simulator places "
         f"all-or-nothing on whole nodes (corral.sim.gang). '> cluster': jobs asking for more than all "
         f"{total_gpus} GPUs, which can never run; left out (counted before the cap).",
         "window start: uniform in [0, span - window] of the trace (days from its first submit).",
         f"offered load as sampled: GPU-hours / (arrival span x {total_gpus} GPUs), before any rescaling."]
        + ([f"seeds with fewer than {args.sample_jobs} jobs (the window holds no more): {short}"] if short else [])
        + ([f"left out of the means below (fewer than {args.min_sample} jobs, --min-sample): "
            + ", ".join(dropped) + ". The trace's first 20 days hold only 76 jobs in all and days 100-104 "
            "almost none, so a window start drawn uniformly over the span sometimes lands there."]
           if dropped else [])))

    results: dict = {}
    plotted = None
    for load in loads:
        per_policy = {p: [] for p in policies}
        for s in used:
            factor = load_factor(s["jobs"], load, total_gpus, args.load_basis)
            sample = Trace(jobs=s["jobs"], source=f"philly seed {s['seed']}").rescale_load(factor)
            bound = mean_jct_lower_bound([(j.submit, j.duration, j.requests.get(GPU, 0)) for j in sample.jobs],
                                         total_gpus)
            first, last_submit = sample.jobs[0].submit, sample.jobs[-1].submit
            sims = {}
            for label, policy in runs:
                r = simulate(nodes, sample.jobs, policy)
                if r.infeasible:
                    raise SystemExit(f"unexpected infeasible jobs in the Philly sample: {r.infeasible}")
                sims[label] = r
                summary = summarize(r.outcomes, r.samples, bound=bound)
                summary.pop("per_user", None)
                summary["seed"] = s["seed"]
                summary["rescale"] = factor
                summary["oracle"] = is_oracle(policy, sample.jobs)
                summary["util_arrivals"] = sampled_busy(r.samples, first, last_submit)
                per_policy[label].append(summary)
            if args.plot_dir and s["seed"] == args.plot_seed and load == args.plot_load:
                plotted = (s["seed"], load, sims)
        results[str(load)] = per_policy
        rows = []
        for p in policies:
            runs_p = per_policy[p]
            oracle = any(r["oracle"] for r in runs_p)
            rows.append([p, "oracle" if oracle else "", f2(mean(r["offered_load"] for r in runs_p)),
                         f0(mean(r["jct_mean"] for r in runs_p)), f3(mean(r["jct_ratio"] for r in runs_p)),
                         f3(statistics.median(r["jct_ratio"] for r in runs_p) if runs_p else None),
                         f0(mean(r["jct_p50"] for r in runs_p)), f0(mean(r["jct_p95"] for r in runs_p)),
                         f0(mean(r["wait_mean"] for r in runs_p)), f2(mean(r["slowdown_mean"] for r in runs_p)),
                         f3(mean(r["util_arrivals"] for r in runs_p)), f3(mean(r["utilization"] for r in runs_p)),
                         f3(mean(r["jain_fairness"] for r in runs_p)), f0(mean(r["jct_mean_bound"] for r in runs_p))])
        print(table(f"(a) Philly, load {load:g} ({args.load_basis} basis) on {args.cluster}: mean over "
                    f"{len(used)} of {len(samples)} seeds",
                    ["policy", "", "offered load", "JCT mean (s)", "JCT / LB", "JCT / LB median", "JCT p50 (s)",
                     "JCT p95 (s)", "wait mean (s)", "slowdown", "GPU util (arrivals)", "GPU util", "Jain",
                     "LB (s)"], rows))
        if load == 1.0:
            print(table(f"(a) Philly, load {load:g}: JCT / LB per seed",
                        ["seed", "rescale", *policies],
                        [[str(s["seed"]), f2(per_policy[policies[0]][i]["rescale"]),
                          *(f3(per_policy[p][i]["jct_ratio"]) for p in policies)] for i, s in enumerate(used)],
                        ["rescale: the factor the sample's arrival gaps were divided by (Trace.rescale_load)."]))
    print("JCT / LB: each seed's mean JCT over the lower bound on the mean JCT of any schedule of that sample "
          "(fluid SRPT on one machine of all GPUs, or the mean duration, whichever is larger), averaged over "
          "seeds (JCT / LB median: the median over seeds). 'oracle': the policy uses the trace's real run times (a yardstick, not deployable). "
          "offered load: GPU work / (arrival span x cluster GPUs) of the replayed sample; with the 'offered' "
          "basis (default) each sample's arrival gaps are rescaled so that it equals the load. "
          "GPU util (arrivals): allocated GPU-time between the first and the last submit over its capacity "
          "(how contended the cluster really is while jobs arrive); GPU util: the same over the makespan. "
          "slowdown: mean bounded slowdown, max(JCT / max(duration, 10 s), 1). Jain: over the virtual clusters "
          "(users) of their mean slowdown.")
    if plotted is not None:
        from corral.sim.plots import write_plots

        seed, load, sims = plotted
        paths = write_plots(sims, str(args.plot_dir), dpi=80,
                            title=f"Philly seed {seed}, load {load:g}, {args.cluster}")
        log(f"(a) wrote {len(paths)} plots to {args.plot_dir}")
    out["philly"] = {
        "cluster": args.cluster, "loads": loads, "load_basis": args.load_basis,
        "policies": {p: ("oracle" if any(r["oracle"] for rs in results.values() for r in rs[p]) else "")
                     for p in policies},
        "samples": [{k: v for k, v in s.items() if k != "jobs"} | {"sample": len(s["jobs"]), "used": s in used}
                    for s in samples],
        "results": results, "wall_s": time.perf_counter() - t0}
    log(f"(a) done in {time.perf_counter() - t0:.1f} s")


# (b) Alibaba openb --------------------------------------------------------------------------
def check_running_claim(path: Path) -> dict:
    """How many pods are Running, and how many of those end at the trace's last deletion."""
    running, last, runtimes = [], 0.0, []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            try:
                created, deleted = float(row["creation_time"]), float(row["deletion_time"])
            except (KeyError, ValueError):
                continue
            last = max(last, deleted)
            if row.get("pod_phase", "").strip() == "Running" and row.get("scheduled_time", "").strip():
                running.append(deleted)
                runtimes.append(deleted - created)
    return {"running_scheduled": len(running), "end_at_trace_end": sum(1 for d in running if d >= last),
            "median_runtime_s": statistics.median(runtimes) if runtimes else None}


def sampled_busy(samples, lo: float, hi: float) -> float | None:
    """Allocated GPU-time inside [lo, hi] over its capacity, from the simulator's samples
    (allocated GPUs after each event, a step function): exact for every policy,
    preemptive ones included (a preempted job does not hold GPUs while it waits)."""
    if hi <= lo or not samples:
        return None
    used = 0.0
    for a, b in zip(samples, samples[1:] + [None]):
        start, end = max(a.t, lo), min(b.t if b is not None else hi, hi)
        if end > start:
            used += a.gpus_allocated * (end - start)
    return used / (samples[0].gpus_total * (hi - lo))


def busy_fraction(outcomes, amount, capacity: float, lo: float, hi: float) -> float | None:
    """sum over jobs of amount(job) x (its run time inside [lo, hi]) / (capacity x (hi - lo))."""
    if capacity <= 0 or hi <= lo:
        return None
    used = math.fsum(amount(o) * max(0.0, min(o.end, hi) - max(o.start, lo)) for o in outcomes)
    return used / (capacity * (hi - lo))


def run_alibaba(args, traces: Path, out: dict) -> None:
    t0 = time.perf_counter()
    claim = check_running_claim(traces / ALI_PODS)
    full = load_trace(traces / ALI_PODS, "alibaba", include_running=True)
    trace = full.head(args.alibaba_jobs) if args.alibaba_jobs else full
    if args.alibaba_load != 1:
        trace = trace.rescale_load(args.alibaba_load)
    all_nodes = load_alibaba_nodes(traces / ALI_NODES)
    policy = args.alibaba_policy
    by_id = {j.id: j for j in trace.jobs}
    span_days = trace.jobs[-1].submit / 86400 if trace.jobs else 0
    shared = sum(1 for j in trace.jobs if j.gpu_fraction is not None)
    log(f"(b) Alibaba: {len(trace)} of {len(full)} pods, fractions {args.alibaba_fractions}")
    rows, results = [], []
    for frac in floats(args.alibaba_fractions):
        nodes = downsample_nodes(all_nodes, frac, args.alibaba_seed)
        gpus = sum(n.allocatable.get(GPU, 0) for n in nodes)
        cpus = sum(n.allocatable.get(CPU, 0) for n in nodes)
        t = time.perf_counter()
        r = simulate(nodes, trace.jobs, get_policy(policy))
        wall = time.perf_counter() - t
        s = summarize(r.outcomes, r.samples)
        first, last_submit = min(o.submit for o in r.outcomes), max(o.submit for o in r.outcomes)
        last_end = max(o.end for o in r.outcomes)
        cpu_of = lambda o: by_id[o.id].requests.get(CPU, 0)  # noqa: E731
        cpu_util = busy_fraction(r.outcomes, cpu_of, cpus, first, last_end)
        gpu_util_arr = busy_fraction(r.outcomes, lambda o: o.gpus, gpus, first, last_submit)
        cpu_util_arr = busy_fraction(r.outcomes, cpu_of, cpus, first, last_submit)
        reasons: dict[str, int] = {}
        for why in r.infeasible.values():
            key = why.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        res = {"fraction": frac, "nodes": len(nodes), "gpus": gpus, "cpus": cpus / 1000, "wall_s": wall,
               "cycles": r.cycles, "never_fit": len(r.infeasible), "never_fit_reasons": reasons,
               "cpu_util": cpu_util, "gpu_util_arrivals": gpu_util_arr, "cpu_util_arrivals": cpu_util_arr,
               "per_user": s.pop("per_user")} | s
        results.append(res)
        log(f"  fraction {frac:g}: {len(nodes)} nodes, {wall:.1f} s")
        rows.append([f"{frac:g}", str(len(nodes)), str(gpus), f0(cpus / 1000), f3(s["offered_load"]),
                     f3(s["utilization"]), f3(cpu_util), f3(gpu_util_arr), f3(cpu_util_arr),
                     f0(s["jct_mean"]), f0(s["wait_mean"]),
                     f3(s["jain_fairness"]), str(len(r.infeasible)), f"{wall:.1f}"])
    ok = [r for r in results if r["never_fit"] == 0 and (r["offered_load"] or 0) < 1]
    chosen = max(ok, key=lambda r: r["gpu_util_arrivals"] or 0) if ok else None
    notes = [
        f"pods: the first {len(trace)} of {len(full)} replayable pods by creation time (--alibaba-jobs), "
        f"spanning {span_days:.0f} days; {full.skipped} never-scheduled pods are not replayable "
        f"({full.skip_reasons}). Policy {policy}; node sample seed {args.alibaba_seed}"
        + (f"; arrivals compressed x{args.alibaba_load:g} (rescale_load)." if args.alibaba_load != 1 else "."),
        f"include_running=True: the README says Running pods were cut off by the trace end, but of "
        f"{claim['running_scheduled']} scheduled Running pods only {claim['end_at_trace_end']} end at the "
        f"trace's last deletion time (median run time {f0(claim['median_runtime_s'])} s): the phase is the "
        f"last one observed, not a cut-off marker, so they are replayed.",
        f"{shared} of these pods share a GPU (gpu_milli < 1000); corral allocates whole GPUs, so each takes "
        f"one whole GPU. GPU model constraints (gpu_spec) are empty in this file; the engine ignores them.",
        "GPU/CPU util: allocated GPUs/CPUs (requests x run time) over capacity x makespan [first submit, "
        "last end]; '(arr.)': the same over the arrival window [first submit, last submit]. The first pods "
        "are services that run for ~145 days, so the makespan hardly changes with the load. "
        "Jain: over the qos classes' mean bounded slowdown. 'never fit': pods larger than every sampled node "
        "(corral places a pod on one node), left out by the simulator.",
    ]
    if chosen:
        notes.append(f"highest load with every pod placeable and offered load < 1: fraction "
                     f"{chosen['fraction']:g} ({chosen['nodes']} nodes, {chosen['gpus']} GPUs), GPU util "
                     f"{f3(chosen['utilization'])} over the makespan, {f3(chosen['gpu_util_arrivals'])} "
                     f"over the arrival window.")
    for r in results:
        if r["never_fit"]:
            notes.append(f"fraction {r['fraction']:g}: never fit {r['never_fit_reasons']}")
    print(table("(b) Alibaba openb on a random fraction of its GPU nodes", [
        "fraction", "nodes", "GPUs", "CPUs", "offered load", "GPU util", "CPU util", "GPU util (arr.)",
        "CPU util (arr.)", "JCT mean (s)",
        "wait mean (s)", "Jain (qos)", "never fit", "sim wall (s)"], rows, notes))
    out["alibaba"] = {"pods": len(trace), "pods_total": len(full), "span_days": span_days, "policy": policy,
                      "load": args.alibaba_load,
                      "running_claim": claim, "shared_gpu_pods": shared, "results": results,
                      "chosen_fraction": chosen["fraction"] if chosen else None,
                      "wall_s": time.perf_counter() - t0}
    log(f"(b) done in {time.perf_counter() - t0:.1f} s")


# (c) scale ----------------------------------------------------------------------------------
def pin_one_core() -> int | None:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return cpu
    return None


def proc_status_kib(field: str) -> int | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak of this process image) from /proc, in KiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def replay_child(traces: Path, cluster: str) -> dict:
    """Runs in a fresh interpreter (``--_replay``) so that the peak memory is this replay's own."""
    core = pin_one_core()
    rss0 = proc_status_kib("VmRSS")
    t = time.perf_counter()
    trace = load_trace(traces / PHILLY, "philly")
    load_s = time.perf_counter() - t
    rss_loaded = proc_status_kib("VmRSS")
    nodes = parse_cluster(cluster)
    t = time.perf_counter()
    r = simulate(nodes, trace.jobs, get_policy(DEFAULT_POLICY))
    sim_s = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = proc_status_kib("VmHWM")
    s = summarize(r.outcomes, r.samples)
    reasons: dict[str, int] = {}
    for jid in r.infeasible:
        g = trace.jobs[jid].requests.get(GPU, 0)
        reasons[f"{g} GPUs"] = reasons.get(f"{g} GPUs", 0) + 1
    return {"jobs": len(trace), "cluster": cluster, "policy": DEFAULT_POLICY, "pinned_core": core,
            "load_s": load_s, "sim_s": sim_s, "total_s": load_s + sim_s,
            "rss_kib_after_imports": rss0, "rss_kib_after_load": rss_loaded, "maxrss_kib": rss, "vmhwm_kib": hwm,
            "cycles": r.cycles, "placements": r.placements, "infeasible": len(r.infeasible),
            "infeasible_by_gpus": reasons, "jct_mean": s["jct_mean"], "utilization": s["utilization"],
            "wait_mean": s["wait_mean"]}


def run_child(args_list: list[str], timeout: float) -> tuple[dict | None, float, str]:
    t = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args_list],
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t, f"did not finish within {timeout:g} s (killed)"
    wall = time.perf_counter() - t
    if p.returncode != 0:
        return None, wall, f"child failed ({p.returncode}): {p.stderr.strip()[-2000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1]), wall, ""


def micro_shapes(seed: int):
    """A deterministic stream of job shapes: 85 % GPU jobs (1/2/4/8 GPUs with 4 or 8 CPUs and
    32 or 64 GiB per GPU), 15 % CPU-only (2, 4 or 16 CPUs with 4 GiB per CPU)."""
    rng = random.Random(seed)
    cache: dict = {}

    def shape() -> Resources:
        if rng.random() < 0.15:
            c = rng.choice((2, 4, 16))
            key = (0, c, 4 * c)
        else:
            g = rng.choice((1, 1, 1, 1, 2, 2, 4, 8))
            key = (g, g * rng.choice((4, 8)), g * rng.choice((32, 64)))
        res = cache.get(key)
        if res is None:
            g, c, m = key
            res = cache[key] = Resources({CPU: c * 1000, MEMORY: m * GiB, GPU: g})
        return res
    return shape


def micro_setup(nodes_n: int, pending_n: int, seed: int):
    nodes = parse_cluster(f"{nodes_n}x8gpu")
    policy = get_policy(DEFAULT_POLICY)
    snapshot = Snapshot(nodes, {})
    queue = PendingQueue(policy.order_key)
    shape = micro_shapes(seed)
    for i in range(pending_n):
        queue.add(PendingJob(i, shape(), seq=i))
    return nodes, policy, snapshot, queue, shape


def initial_child(nodes_n: int, pending_n: int, seed: int) -> dict:
    """One cycle from the empty cluster (``--_initial``), in a child so it can be time-limited."""
    _, policy, snapshot, queue, _ = micro_setup(nodes_n, pending_n, seed)
    t = time.perf_counter()
    r = schedule_on(snapshot, queue, policy)
    dt = time.perf_counter() - t
    return {"nodes": nodes_n, "pending": pending_n, "placements": len(r.placements), "cycle_s": dt,
            "per_placement_ms": 1000 * dt / max(1, len(r.placements))}


def fast_fill(snapshot: Snapshot, queue: PendingQueue) -> dict[int, Allocation]:
    """Fill the empty cluster the way a best-effort cycle would decide *which* jobs start
    (policy order; a shape that fails once is skipped), but first-fit with the lowest free
    GPUs: a cheap, untimed set-up for the steady-state cycles."""
    states = sorted(snapshot.nodes.values(), key=lambda s: s.node.name)
    running: dict[int, Allocation] = {}
    failed: set = set()
    start_at: dict = {}          # per shape: nodes before this index are known full for it
    for job in queue.ordered():
        if job.shape in failed:
            continue
        i = start_at.get(job.shape, 0)
        while i < len(states) and not states[i].fits(job.requests):
            i += 1
        start_at[job.shape] = i
        if i == len(states):
            failed.add(job.shape)
            continue
        st = states[i]
        gpus = tuple(sorted(st.free_gpus)[:job.requests.get(GPU, 0)])
        alloc = Allocation(node=st.node.name, requests=job.requests, gpus=gpus, cores=())
        snapshot.assume(alloc)
        running[job.id] = alloc
    for jid in running:
        queue.remove(jid)
    return running


def micro_steady(args) -> dict:
    nodes, policy, snapshot, queue, shape = micro_setup(args.micro_nodes, args.micro_pending, args.micro_seed)
    t = time.perf_counter()
    running = fast_fill(snapshot, queue)
    fill_s = time.perf_counter() - t
    next_id = args.micro_pending
    while len(queue) < args.micro_pending:
        queue.add(PendingJob(next_id, shape(), seq=next_id))
        next_id += 1
    rng = random.Random(args.micro_seed + 1)
    run_ids = list(running)
    lo, hi = (int(x) for x in args.micro_free.split("-")) if "-" in args.micro_free else (int(args.micro_free),) * 2
    per_placement, cycle_times, placed_counts = [], [], []
    empty_cycles = 0
    profiler = None
    if args.profile:
        import cProfile
        profiler = cProfile.Profile()
    for _ in range(args.micro_cycles):
        for _ in range(min(rng.randint(lo, hi), len(run_ids))):
            k = rng.randrange(len(run_ids))
            run_ids[k], run_ids[-1] = run_ids[-1], run_ids[k]
            snapshot.forget(running.pop(run_ids.pop()))
        if profiler:
            profiler.enable()
        t = time.perf_counter()
        r = schedule_on(snapshot, queue, policy)
        dt = time.perf_counter() - t
        if profiler:
            profiler.disable()
        cycle_times.append(dt)
        placed_counts.append(len(r.placements))
        if r.placements:
            per_placement.append(dt / len(r.placements))
        else:
            empty_cycles += 1
        for p in r.placements:
            queue.remove(p.job_id)
            running[p.job_id] = p.allocation
            run_ids.append(p.job_id)
        while len(queue) < args.micro_pending:
            queue.add(PendingJob(next_id, shape(), seq=next_id))
            next_id += 1
    total_t, total_p = math.fsum(cycle_times), sum(placed_counts)
    res = {"nodes": args.micro_nodes, "pending": args.micro_pending, "shapes": len(queue.groups),
           "running_after_fill": len(running), "fill_s": fill_s, "cycles": len(cycle_times),
           "placements": total_p, "empty_cycles": empty_cycles, "free_per_cycle": args.micro_free,
           "per_placement_ms_p50": 1000 * percentile(per_placement, 50) if per_placement else None,
           "per_placement_ms_p99": 1000 * percentile(per_placement, 99) if per_placement else None,
           "cycle_ms_p50": 1000 * percentile(cycle_times, 50), "cycle_ms_p99": 1000 * percentile(cycle_times, 99),
           "placements_per_cycle_mean": total_p / len(cycle_times),
           "placements_per_s": total_p / total_t if total_t > 0 else None}
    if profiler:
        import io
        import pstats
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(12)
        res["profile"] = buf.getvalue()
    return res


def run_scale(args, traces: Path, out: dict) -> None:
    t0 = time.perf_counter()
    res: dict = {}
    if not args.no_replay:
        log(f"(c) full Philly replay on {args.replay_cluster} (child process, one core)")
        rep, wall, err = run_child(["--_replay", "--traces", str(traces), "--replay-cluster", args.replay_cluster],
                                   timeout=args.replay_timeout)
        res["replay"] = rep or {"error": err, "wall_s": wall}
        if rep:
            print(table(f"(c) full Philly trace replayed end to end on {args.replay_cluster}, {DEFAULT_POLICY}, "
                        "one core", ["measure", "value"], [
                            ["jobs in the trace", f"{rep['jobs']:,}"],
                            ["never fit (larger than the whole cluster; left out)",
                             f"{rep['infeasible']:,} ({', '.join(f'{v} x {k}' for k, v in sorted(rep['infeasible_by_gpus'].items(), key=lambda kv: int(kv[0].split()[0])))})"],
                            ["load the CSV (s)", f"{rep['load_s']:.2f}"],
                            ["replay (s)", f"{rep['sim_s']:.2f}"],
                            ["load + replay (s)", f"{rep['total_s']:.2f}"],
                            ["peak RSS, ru_maxrss (MiB)", f"{rep['maxrss_kib'] / 1024:.0f}"],
                            ["peak RSS of the process image, VmHWM (MiB)", mib(rep["vmhwm_kib"])],
                            ["RSS after imports / after loading the trace (MiB)",
                             f"{mib(rep['rss_kib_after_imports'])} / {mib(rep['rss_kib_after_load'])}"],
                            ["cycles", f"{rep['cycles']:,}"], ["placements", f"{rep['placements']:,}"],
                            ["replay time per cycle (ms)", f"{1000 * rep['sim_s'] / max(1, rep['cycles']):.3f}"],
                            ["mean JCT (s) / GPU util", f"{rep['jct_mean']:,.0f} / {rep['utilization']:.3f}"],
                        ], ["Measured in a child process (fresh interpreter, pinned to one core with "
                            "sched_setaffinity). ru_maxrss can carry over the parent's size at fork time; "
                            "VmHWM is the child's own. The full trace overloads "
                            "128 GPUs (hence the JCT): this is a speed test, not a policy result."], left=True))
        else:
            print(f"\n(c) full Philly replay: {err}")
    log(f"(c) micro-benchmark: {args.micro_pending} pending x {args.micro_nodes} nodes, {args.micro_cycles} cycles")
    steady = micro_steady(args)
    res["micro"] = steady
    rows = [["shapes in the queue", str(steady["shapes"])],
            ["jobs running after the (untimed) fill", f"{steady['running_after_fill']:,}"],
            ["cycles (each after freeing " + steady["free_per_cycle"] + " random running jobs)",
             str(steady["cycles"])],
            ["placements", f"{steady['placements']:,} ({steady['placements_per_cycle_mean']:.2f} per cycle, "
             f"{steady['empty_cycles']} cycles placed none)"],
            ["cycle time p50 / p99 (ms)", f"{steady['cycle_ms_p50']:.2f} / {steady['cycle_ms_p99']:.2f}"],
            ["time per placement p50 (ms)", f3(steady["per_placement_ms_p50"])],
            ["time per placement p99 (ms)", f3(steady["per_placement_ms_p99"])],
            ["placements per second (all placements / all cycle time)", f0(steady["placements_per_s"])]]
    if args.initial_cycle != "skip":
        n_nodes = args.micro_nodes if args.initial_cycle == "full" else max(1, args.micro_nodes // 10)
        n_pend = args.micro_pending if args.initial_cycle == "full" else max(1, args.micro_pending // 10)
        log(f"(c) initial cycle: {n_pend} pending on {n_nodes} empty nodes (limit {args.initial_timeout:g} s)")
        ini, wall, err = run_child(["--_initial", "--micro-nodes", str(n_nodes), "--micro-pending", str(n_pend),
                                    "--micro-seed", str(args.micro_seed)], timeout=args.initial_timeout)
        res["initial"] = ini or {"error": err, "nodes": n_nodes, "pending": n_pend, "wall_s": wall}
        label = f"initial cycle, empty cluster: {n_pend:,} pending on {n_nodes:,} nodes"
        if ini:
            rows.append([label, f"{ini['cycle_s']:.2f} s for {ini['placements']:,} placements "
                                f"({ini['per_placement_ms']:.2f} ms each)"])
        else:
            rows.append([label, err])
    print(table(f"(c) scheduler core: {args.micro_pending:,} pending jobs on {args.micro_nodes:,} nodes x 8 GPUs, "
                f"{DEFAULT_POLICY}", ["measure", "value"], rows,
                ["time per placement: a cycle's time / the placements it made (cycles that placed none are "
                 "left out of the percentiles, not of placements per second)."], left=True))
    if steady.get("profile"):
        print("\nprofile of the steady-state cycles (top 12 by own time):\n" + steady["profile"])
    out["scale"] = res | {"wall_s": time.perf_counter() - t0}
    log(f"(c) done in {time.perf_counter() - t0:.1f} s")


def print_targets(out: dict) -> None:
    rows = []
    philly = out.get("philly", {}).get("results", {})
    at1 = philly.get("1.0") or philly.get("1")
    if at1 and DEFAULT_POLICY in at1:
        ratio = lambda p: mean(r["jct_ratio"] for r in at1[p])  # noqa: E731
        jct = lambda p: mean(r["jct_mean"] for r in at1[p])  # noqa: E731
        d = ratio(DEFAULT_POLICY)
        rows.append([f"{DEFAULT_POLICY} at load 1.0 within 1.3x of the lower bound on mean JCT",
                     f"{d:.3f}x", "met" if d <= 1.3 else "MISSED"])
        for other in ("easy-backfill", "strict-fifo"):
            if other in at1:
                a, b = jct(DEFAULT_POLICY), jct(other)
                rows.append([f"{DEFAULT_POLICY} better than {other} at load 1.0 (mean JCT)",
                             f"{a:,.0f} s vs {b:,.0f} s",
                             "met" if a < b else "tie (not better)" if a == b else "MISSED"])
    rep = out.get("scale", {}).get("replay", {})
    if "sim_s" in rep:
        rows.append(["full Philly replay under 60 s on one core",
                     f"{rep['total_s']:.1f} s (load {rep['load_s']:.1f} + replay {rep['sim_s']:.1f})",
                     "met" if rep["total_s"] < 60 else "MISSED"])
    micro = out.get("scale", {}).get("micro")
    if micro and micro.get("placements_per_s"):
        rows.append([f">= 5,000 placements/s at {micro['pending']:,} pending x {micro['nodes']:,} nodes",
                     f"{micro['placements_per_s']:,.0f} /s", "met" if micro["placements_per_s"] >= 5000 else "MISSED"])
    if rows:
        print(table("Targets", ["target", "measured", "status"], rows))


# main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=Path, default=None,
                    help=f"folder of the trace files (default: ../shared/traces from the repo root, {DEFAULT_TRACES})")
    ap.add_argument("--skip", action="append", default=[], choices=["philly", "alibaba", "scale"],
                    help="leave out a part (repeatable)")
    ap.add_argument("--json-out", type=Path, help="also write every number as JSON to this file")
    g = ap.add_argument_group("(a) Philly policy comparison")
    g.add_argument("--seeds", type=int, default=8)
    g.add_argument("--sample-jobs", type=int, default=160)
    g.add_argument("--min-sample", type=int, default=20,
                   help="seeds whose window yields fewer jobs are reported but left out of the means")
    g.add_argument("--window-hours", type=float, default=8.0)
    g.add_argument("--min-duration", type=float, default=60.0, help="seconds")
    g.add_argument("--max-gpu-hours", type=float, default=1000.0)
    g.add_argument("--loads", default="0.5,1.0,1.5,2.0")
    g.add_argument("--cluster", default="16x4gpu")
    g.add_argument("--load-basis", choices=["offered", "trace"], default="offered",
                   help="offered (default): rescale each sample's arrivals so that its offered load (GPU work / "
                        "(arrival span x GPUs)) equals the load; trace: divide the trace's own gaps by the load")
    g.add_argument("--policies", help="only these policies, comma-separated (default: all)")
    g.add_argument("--config", type=Path, help="also run the policy of this daemon config file ('config')")
    g.add_argument("--estimate-factors", default="1,2",
                   help="easy-backfill run-time estimate = duration x k, one run per k (default 1,2)")
    g.add_argument("--plot-dir", type=Path, help="write PNG plots of one run (--plot-seed, --plot-load) here")
    g.add_argument("--plot-seed", type=int, default=0)
    g.add_argument("--plot-load", type=float, default=1.0)
    g = ap.add_argument_group("(b) Alibaba openb")
    g.add_argument("--alibaba-jobs", type=int, default=2000, help="first N pods (0: all)")
    g.add_argument("--alibaba-fractions", default="0.3,0.1,0.03,0.01,0.0075,0.005")
    g.add_argument("--alibaba-seed", type=int, default=0)
    g.add_argument("--alibaba-load", type=float, default=1.0,
                   help="Trace.rescale_load factor for the pods (default 1: as recorded)")
    g.add_argument("--alibaba-policy", default=DEFAULT_POLICY)
    g = ap.add_argument_group("(c) scale")
    g.add_argument("--replay-cluster", default="16x8gpu")
    g.add_argument("--replay-timeout", type=float, default=600.0)
    g.add_argument("--no-replay", action="store_true", help="skip the full Philly replay")
    g.add_argument("--micro-nodes", type=int, default=1000)
    g.add_argument("--micro-pending", type=int, default=10000)
    g.add_argument("--micro-cycles", type=int, default=500)
    g.add_argument("--micro-free", default="1-3", help="running jobs freed before each cycle: N or LO-HI")
    g.add_argument("--micro-seed", type=int, default=0)
    g.add_argument("--initial-cycle", choices=["full", "tenth", "skip"], default="tenth",
                   help="time one cycle from the empty cluster: at full size (slow: see docs/benchmarks.md), "
                        "at a tenth of the nodes and pending jobs (default), or not at all")
    g.add_argument("--initial-timeout", type=float, default=300.0)
    g.add_argument("--profile", action="store_true", help="cProfile the steady-state cycles and print the top")
    ap.add_argument("--_replay", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_initial", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    traces = args.traces if args.traces is not None else DEFAULT_TRACES
    if args._replay:
        print(json.dumps(replay_child(traces, args.replay_cluster)))
        return 0
    if args._initial:
        print(json.dumps(initial_child(args.micro_nodes, args.micro_pending, args.micro_seed)))
        return 0

    needed = ([PHILLY] if ("philly" not in args.skip or "scale" not in args.skip) else []) + \
             ([ALI_PODS, ALI_NODES] if "alibaba" not in args.skip else [])
    missing = [n for n in needed if not (traces / n).is_file()]
    if missing:
        log(f"bench_sim: traces not found: {', '.join(str(traces / n) for n in missing)}\n"
            f"  The benchmark reads the public traces from {DEFAULT_TRACES} (../shared/traces from the "
            f"repo root; see its README.md) or from --traces DIR.")
        return 2

    env = environment()
    out: dict = {"environment": env, "args": {k: (str(v) if isinstance(v, Path) else v)
                                             for k, v in vars(args).items() if not k.startswith("_")}}
    print(f"corral simulator benchmark -- {env['cpu_model']}, {env['cores']} cores, Python {env['python']}, "
          f"kernel {env['kernel']}, commit {env['commit']}, load average {env['loadavg_at_start']}")
    print("policies registered: " + ", ".join(f"{n} ({k})" if k else n for n, k in env["policies"].items()))
    t0 = time.perf_counter()
    if "philly" not in args.skip:
        run_philly(args, traces, out)
    if "alibaba" not in args.skip:
        run_alibaba(args, traces, out)
    if "scale" not in args.skip:
        run_scale(args, traces, out)
    print_targets(out)
    out["wall_s"] = time.perf_counter() - t0
    print(f"\ntotal wall time {out['wall_s']:.0f} s")
    if args.json_out:
        args.json_out.write_text(json.dumps(out, indent=2, default=str))
        log(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
