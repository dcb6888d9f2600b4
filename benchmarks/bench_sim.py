#!/usr/bin/env python3
"""Simulator benchmark: scheduling policies on real traces, and the scheduler's speed.

Run it with the project's interpreter::

    .venv/bin/python benchmarks/bench_sim.py [--seeds 8] [--alibaba-jobs 2000] [--json-out PATH]
    .venv/bin/python benchmarks/bench_sim.py --baseline be8aa21 --json-out /tmp/sim.json
    .venv/bin/python benchmarks/bench_sim.py --skip alibaba --skip scale \\
        --window-hours 168 --sample-jobs 1000 --min-sample 200 --plot-dir docs/img

Four parts, each printed as tables (``--skip philly|alibaba|scale|large`` leaves one out):

(a) **Philly policy comparison.** For each seed, ``random.Random(seed)`` picks a window
    start uniformly in ``[0, span - 8 h]`` of the Philly trace (``span`` = last submit,
    so the window lies inside the trace), keeps the jobs submitted in ``[start,
    start + 8 h)`` with duration >= 60 s and GPU-time (duration x GPUs) < 1000 GPU-hours
    and, if more than 160 remain, keeps the first 160 in submit order (fewer are reported
    as such): ``corral.sim.trace.sample``, what ``corral sim --window 8h --seed N --jobs
    160 --min-duration 60 --max-gpu-hours 1000`` replays. Jobs asking for more GPUs than
    one node has are kept and gang-placed on whole nodes; jobs asking for more than the
    whole cluster can never run and are left out (counted). Each sample is replayed at
    loads 0.5, 1, 1.5 and 2 on 16 nodes x 4 GPUs. ``--load-basis offered`` (default): the
    sample's arrival gaps are rescaled (``Trace.rescale_load``) so that its offered load
    -- GPU work / (arrival span x cluster GPUs) -- equals the load; ``--load-basis
    trace``: the trace's own gaps are divided by the load. Policies: every name in
    ``corral.sim.policies.policy_names()`` through ``resolve`` (the daemon's pipeline
    for all but the research references ``srtf`` and ``tiresias``), ``easy-backfill``
    once per ``--estimate-factors`` value, plus ``--config FILE``
    (``load_config_policy``); a policy that reads the real run times is marked "oracle".
    ``srtf`` and ``tiresias`` follow the authors' rules; ``--reference-rules both`` adds
    them under corral's (labelled "corral rules").
    Reported per load and policy: the mean over seeds of the mean JCT, of its ratio to
    the lower bound (``corral.sim.bounds.mean_jct_lower_bound``, the ratio taken per seed,
    then averaged), of the p50/p95 JCT, of the mean wait and slowdown, of the GPU
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
(c) **Scale**, for this checkout and, with ``--baseline REV``, side by side for another
    revision measured in the same run: the script makes a temporary ``git worktree`` of
    REV and runs every measurement below in a child process (a fresh interpreter, pinned
    to one core with ``sched_setaffinity``) with that revision's ``src/`` first on
    ``sys.path``; the worktree is removed at the end. Each child speaks the scheduler
    API its revision has: the one pipeline (``corral.scheduler.schedule`` on a
    ``ClusterState``) or, before the redesign, ``schedule_on`` on a ``Snapshot``.

    1. The full Philly trace replayed end to end on ``--replay-cluster`` (16 x 8 GPUs)
       with best-effort-fifo: load and replay wall time, peak RSS (``ru_maxrss`` and
       ``VmHWM``), cycles and placements, and whether every job's (submit, start, end)
       is the same in both revisions.
    2. The same with the preemptive research references ``srtf`` and ``tiresias``
       (``--skip-preemptive`` leaves them out).
    3. The steady state of the scheduler alone: ``--micro-pending`` (10,000) pending
       jobs of mixed shapes on ``--micro-nodes`` (1,000) nodes of 8 GPUs. The cluster is
       first filled by one real cycle from the empty cluster and the queue topped up to
       10,000. Each steady-state cycle frees 1 to 3 random running jobs
       (``ClusterState.end``, ``Snapshot.forget``), runs one cycle and tops the queue
       up to 10,000 again. After the first cycle (cold: it tries the new jobs' shapes
       on every node), ``--micro-warmup`` (2,000) such cycles run once, timed but not
       the result: right after the fill the queue still holds small jobs that fit as
       soon as anything ends, and the baseline is several times faster then than once
       the mix has settled (both are shown). The state is then deep-copied once; per
       repeat (``--steady-repeats``, 15) a fresh copy replays the same
       ``--micro-cycles`` (500) cycles with the same top-up shapes. Reported:
       placements per second (all placements / all cycle time) of the best and the
       median repeat, time per cycle and per placement p50/p99 of the best repeat, and
       whether the decisions are the same as this commit's. The pipeline is measured
       with ``reasons=False`` (decisions only, what the simulator runs) and
       ``reasons=True`` (a typed reason for every waiting job too, what the daemon runs
       each cycle); ``schedule_on`` decides only (it works reasons out on demand, and
       the benchmark does not ask). A ``schedule_on`` baseline is also measured filled
       as its own ``micro_steady`` did, by the first-fit ``fast_fill``
       (``--no-fast-fill`` leaves that out).
    4. The initial cycle: one cycle from the empty cluster that places as many of the
       10,000 pending jobs as fit, best of ``--initial-repeats`` (3) on a fresh cluster
       each, time-limited (``--initial-timeout``). The pipeline at full size (reasons
       off and on); the ``schedule_on`` API at full size or a tenth of it
       (``--initial-cycle full|tenth|skip``; a tenth by default, plus the full-size
       fill of its steady state, which is the same cycle).
    5. ``simulate`` of 10,000 jobs that all arrive at time 0 on 1,000 nodes x 8 GPUs
       (``--atonce-*``): 1-8 CPUs and 1-8 GPUs each, 60 s to 2 h, from
       ``random.Random(0)``; best and median wall time of ``--atonce-repeats`` (5) runs.

(d) **Replay time on a large cluster.** The first ``--large-jobs`` (2,000) Alibaba pods
    on all 1,213 nodes of its GPU node list, every policy of ``policy_names()`` (and
    ``srtf``, ``tiresias`` again with ``placement="first-fit"``): the ``simulate`` wall
    time, best and median of ``--large-repeats`` (3), loading not timed.

    Then a "Targets" table: each target of the scheduler redesign and the older ones
    with the measured value, the baseline's and met/MISSED.

Stdlib only (plus corral; matplotlib for --plot-dir; git for --baseline). Exit status 2
when the traces are missing or the baseline revision cannot be checked out.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import gc
import json
import math
import os
import platform
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRACES = REPO.parent / "shared" / "traces"


def _corral_src() -> None:
    """Import corral from the checkout this script is in (its src/), whatever the
    interpreter has installed; a child run (``--_child KIND --_src DIR``) from the src/
    of the revision it measures."""
    if len(sys.argv) > 4 and sys.argv[1] == "--_child" and sys.argv[3] == "--_src":
        sys.path.insert(0, sys.argv[4])
    elif (REPO / "src" / "corral").is_dir():
        sys.path.insert(0, str(REPO / "src"))


_corral_src()

# Only what every measured revision has (before and after the scheduler redesign) is
# imported here: a child for the baseline runs this same file on the baseline's src/.
from corral.resources import CPU, GPU, MEMORY, Resources  # noqa: E402
from corral.sim.bounds import mean_jct_lower_bound  # noqa: E402
from corral.sim.cluster import parse_cluster  # noqa: E402
from corral.sim.engine import simulate  # noqa: E402
from corral.sim.loaders import downsample_nodes, load_alibaba_nodes, load_trace  # noqa: E402
from corral.sim.metrics import percentile, summarize  # noqa: E402
from corral.sim.policies import is_oracle as policy_is_oracle  # noqa: E402
from corral.sim.policies import RESEARCH_POLICIES, policy_names, resolve  # noqa: E402
from corral.sim.trace import Trace, sample  # noqa: E402

from benchenv import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

PHILLY = "philly.csv"
ALI_PODS = "alibaba-openb_pod_list_default.csv"
ALI_NODES = "alibaba-openb_node_list_gpu_node.csv"
#: The simulator's and the daemon's default policy.
DEFAULT = "best-effort-fifo"
PREEMPTIVE = ("srtf", "tiresias")
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


def f1(x) -> str:
    return "-" if x is None else f"{x:,.1f}"


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


def is_oracle(policy, jobs=()) -> bool:
    """A policy that reads the real run times of ``jobs``."""
    return policy_is_oracle(policy, jobs)


def policy_kind(name: str) -> str:
    """How a registered policy runs, for the header line."""
    policy = resolve(name)
    if name in PREEMPTIVE:
        return "research reference, preemptive" + (", oracle" if getattr(policy, "oracle", False) else "")
    if name in ("sjf-history", "sjf-aging"):
        return "learned run times"
    if name == "easy-backfill":
        return "backfill on estimates: oracle duration x k"
    if getattr(policy, "resumable", False):
        return "attained service, preempts resumable jobs"
    return "oracle" if getattr(policy, "oracle", False) else ""


def git(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=timeout)


def environment() -> dict:
    try:
        commit = git("rev-parse", "--short", "HEAD", timeout=10).stdout.strip() or None
        dirty = [line[3:] for line in git("status", "--porcelain", "--", "src", timeout=10).stdout.splitlines()]
    except Exception:
        commit, dirty = None, []
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "commit": commit, "src_uncommitted": dirty,
            "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "policies": {n: policy_kind(n) for n in policy_names()}}


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
    """(label, policy) for part (a): every name in ``policy_names()`` through ``resolve``,
    easy-backfill once per --estimate-factors value (k=1 labelled plainly), then the
    policy of --config; --policies keeps only the names it lists."""
    runs: list[tuple[str, object]] = []
    for name in policy_names():
        if name == "easy-backfill":
            for k in floats(args.estimate_factors):
                runs.append((name if k == 1 else f"{name} (k={k:g})", resolve(name, estimate_factor=k)))
        elif name in RESEARCH_POLICIES:
            rules = ["paper", "corral"] if args.reference_rules == "both" else [args.reference_rules]
            for r in rules:
                label = name if r == "paper" else f"{name} (corral rules)"
                runs.append((label, resolve(name, reference_rules=r)))
        else:
            runs.append((name, resolve(name)))
    if args.config:
        from corral.sim.policies import load_config_policy

        runs.append(("config", load_config_policy(str(args.config))))
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
         f"all-or-nothing on whole nodes (corral.scheduler.placement.place_gang). '> cluster': jobs asking for more than all "
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
                summary["preemptions"] = r.preemptions
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
                         f0(mean(r["wait_mean"] for r in runs_p)), f0(mean(r["max_wait"] for r in runs_p)),
                         f2(mean(r["slowdown_mean"] for r in runs_p)), f1(mean(r["slowdown_p99"] for r in runs_p)),
                         f3(mean(r["util_arrivals"] for r in runs_p)), f3(mean(r["utilization"] for r in runs_p)),
                         f3(mean(r["jain_fairness"] for r in runs_p)), f0(mean(r["preemptions"] for r in runs_p)),
                         f0(mean(r["jct_mean_bound"] for r in runs_p))])
        print(table(f"(a) Philly, load {load:g} ({args.load_basis} basis) on {args.cluster}: mean over "
                    f"{len(used)} of {len(samples)} seeds",
                    ["policy", "", "offered load", "JCT mean (s)", "JCT / LB", "JCT / LB median", "JCT p50 (s)",
                     "JCT p95 (s)", "wait mean (s)", "max wait (s)", "slowdown", "slowdown p99",
                     "GPU util (arrivals)", "GPU util", "Jain", "preemptions",
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
          "max wait: the longest wait for a first start (mean over seeds). "
          "slowdown: mean bounded slowdown, max(JCT / max(duration, 10 s), 1); slowdown p99: its 99th percentile. Jain: over the virtual clusters "
          "(users) of their mean slowdown. preemptions: running jobs stopped for another, per sample (mean over seeds).")
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
def run_large(args, traces: Path, out: dict) -> None:
    """(d) Replay time on a large cluster: the first --large-jobs pods on every node of the
    Alibaba GPU node list, every policy (srtf and tiresias once per placement), best of
    --large-repeats (the simulate() call only; loading is not timed)."""
    trace = load_trace(traces / ALI_PODS, "alibaba", include_running=True).head(args.large_jobs)
    nodes = load_alibaba_nodes(traces / ALI_NODES)
    log(f"(d) large cluster: {len(trace)} pods on {len(nodes)} nodes, best of {args.large_repeats}")
    runs = [(name, resolve(name), "best-fit") for name in policy_names()]
    runs += [(f"{name} (first-fit)", resolve(name), "first-fit") for name in ("srtf", "tiresias")]
    rows, results = [], {}
    for label, policy, placement in runs:
        times = []
        for _ in range(args.large_repeats):
            gc.collect()
            t0 = time.perf_counter()
            result = simulate(nodes, trace.jobs, policy, placement=placement)
            times.append(time.perf_counter() - t0)
        s = summarize(result.outcomes, result.samples)
        results[label] = {"best_s": min(times), "median_s": statistics.median(times), "jobs": len(result.outcomes),
                          "jct_mean": s.get("jct_mean"), "cycles": result.cycles, "preemptions": result.preemptions}
        rows.append([label, f2(min(times)), f2(statistics.median(times)), str(len(result.outcomes)),
                     str(result.cycles), f0(s.get("jct_mean"))])
    print(table(f"(d) Replay time: the first {len(trace)} Alibaba openb pods on all {len(nodes)} GPU nodes", [
        "policy", "best s", "median s", "jobs", "cycles", "mean JCT s"], rows,
        [f"simulate() wall time per policy, best and median of {args.large_repeats} (loading not timed); "
         "target: under 1 s per policy."]))
    out["large"] = {"pods": len(trace), "nodes": len(nodes), "repeats": args.large_repeats, "results": results}


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
        r = simulate(nodes, trace.jobs, resolve(policy))
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
        f"{shared} of these pods share a GPU (gpu_milli < 1000): each asks for its share of one GPU "
        f"(corral.dev/gpu-milli), and GPU util counts the share. GPU model constraints (gpu_spec) are empty "
        f"in this file (where given, they constrain the pod's GPUs).",
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


# (c) scale: children (run in a fresh interpreter on one revision's src/) -------------------
def pin_one_core(core: int | None = None) -> int | None:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0)) if core is None else core
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


def scheduler_api() -> str:
    """Which scheduler API the imported corral has: ``pipeline`` (one ``schedule`` over a
    ``ClusterState``) or ``schedule_on`` (the core fast path on a ``Snapshot``, before the
    redesign)."""
    import corral.scheduler as sched

    if hasattr(sched, "ClusterState") and hasattr(sched, "CycleContext"):
        return "pipeline"
    if hasattr(sched, "schedule_on"):
        return "schedule_on"
    raise SystemExit(f"unknown scheduler API in {sched.__file__}")


def hash_of(value) -> str:
    import hashlib

    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def outcome_digest(outcomes) -> str:
    """A hash of every job's (submit, start, end, GPUs), independent of job numbering."""
    return hash_of(sorted((round(o.submit, 6), round(o.start, 6), round(o.end, 6), o.gpus) for o in outcomes))


def child_replay(p: dict) -> dict:
    """The full Philly trace under one policy (measured in its own process, so the peak
    memory is this replay's own)."""
    rss0 = proc_status_kib("VmRSS")
    t = time.perf_counter()
    trace = load_trace(Path(p["traces"]) / PHILLY, "philly")
    load_s = time.perf_counter() - t
    rss_loaded = proc_status_kib("VmRSS")
    nodes = parse_cluster(p["cluster"])
    policy = resolve(p["policy"])
    gc.collect()
    t = time.perf_counter()
    r = simulate(nodes, trace.jobs, policy)
    sim_s = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = proc_status_kib("VmHWM")
    s = summarize(r.outcomes, r.samples)
    by_id = {j.id: j for j in trace.jobs}
    reasons: dict[str, int] = {}
    for jid in r.infeasible:
        g = by_id[jid].requests.get(GPU, 0)
        reasons[f"{g} GPUs"] = reasons.get(f"{g} GPUs", 0) + 1
    return {"jobs": len(trace), "cluster": p["cluster"], "policy": p["policy"],
            "load_s": load_s, "sim_s": sim_s, "total_s": load_s + sim_s,
            "rss_kib_after_imports": rss0, "rss_kib_after_load": rss_loaded, "maxrss_kib": rss, "vmhwm_kib": hwm,
            "cycles": r.cycles, "placements": r.placements, "preemptions": getattr(r, "preemptions", 0),
            "gang_placed": getattr(r, "gang_placed", None), "infeasible": len(r.infeasible),
            "infeasible_by_gpus": reasons, "jct_mean": s["jct_mean"], "utilization": s["utilization"],
            "wait_mean": s["wait_mean"], "outcomes_digest": outcome_digest(r.outcomes)}


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
    shape.cache = cache
    return shape


def share_shapes(shape) -> dict:
    """A deepcopy memo that keeps the (immutable) job shapes themselves: a copied queue
    and the jobs added to it later hold the same shape objects, as in one live run."""
    return {id(r): r for r in shape.cache.values()}


class PipelineCore:
    """The scheduler after the redesign: ``schedule(state, pending, ctx)`` over a
    ``ClusterState`` that keeps its placements; the caller takes placed jobs out of the
    ``PendingSet`` and frees running ones with ``state.end``."""

    def __init__(self, nodes_n: int, pending_n: int, seed: int, reasons: bool):
        from corral.scheduler import ClusterState, CycleContext, PendingJob, PendingSet, QueueSpec, schedule

        self._job, self._ctx, self._schedule = PendingJob, CycleContext, schedule
        self.reasons = reasons
        queues = {"default": QueueSpec("default")}
        self.state = ClusterState(parse_cluster(f"{nodes_n}x8gpu"), queues)
        self.pending = PendingSet(queues)
        self.shape = micro_shapes(seed)
        for i in range(pending_n):
            self.add(i, self.shape())

    @property
    def shapes(self) -> int:
        return sum(len(q.groups) for q in self.pending.queues.values())

    def add(self, job_id: int, shape: Resources) -> None:
        self.pending.add(self._job(job_id, shape, seq=job_id))

    def cycle(self, reasons: bool | None = None) -> tuple[float, list[int]]:
        """One timed cycle: (seconds, the ids it placed), placed jobs taken out of pending."""
        ctx = self._ctx(0.0, reasons=self.reasons if reasons is None else reasons)
        t = time.perf_counter()
        d = self._schedule(self.state, self.pending, ctx)
        dt = time.perf_counter() - t
        placed = [pl.job_id for pl in d.placements]
        for jid in placed:
            self.pending.remove(jid)
        return dt, placed

    def fill(self, how: str = "cycle") -> tuple[float, int, str]:
        """Fill the empty cluster with one real cycle: (seconds, placements, how)."""
        dt, placed = self.cycle(reasons=False)
        return dt, len(placed), "one real cycle from the empty cluster"

    def running_ids(self) -> list[int]:
        return sorted(self.state.running)

    def end(self, job_id: int) -> None:
        self.state.end(job_id)

    def __len__(self) -> int:
        return len(self.pending)

    def clone(self) -> "PipelineCore":
        twin = copy.copy(self)
        twin.state, twin.pending = copy.deepcopy((self.state, self.pending), share_shapes(self.shape))
        return twin


class SnapshotCore:
    """The scheduler before the redesign (``be8aa21`` and earlier): the core fast path
    ``schedule_on(snapshot, queue, policy)`` on a persistent ``Snapshot`` + ``PendingQueue``;
    it decides only (reasons are worked out on demand, and nobody asks here)."""

    def __init__(self, nodes_n: int, pending_n: int, seed: int, reasons: bool = False):
        from corral.scheduler import DEFAULT_POLICY, PendingJob, PendingQueue, Snapshot, get_policy, schedule_on

        self._job, self._schedule_on = PendingJob, schedule_on
        self.policy = get_policy(DEFAULT_POLICY)
        self.snapshot = Snapshot(parse_cluster(f"{nodes_n}x8gpu"), {})
        self.queue = PendingQueue(self.policy.order_key)
        self.running: dict = {}
        self.shape = micro_shapes(seed)
        for i in range(pending_n):
            self.add(i, self.shape())

    @property
    def shapes(self) -> int:
        return len(self.queue.groups)

    def add(self, job_id: int, shape: Resources) -> None:
        self.queue.add(self._job(job_id, shape, seq=job_id))

    def cycle(self) -> tuple[float, list[int]]:
        t = time.perf_counter()
        r = self._schedule_on(self.snapshot, self.queue, self.policy)
        dt = time.perf_counter() - t
        placed = []
        for pl in r.placements:
            self.queue.remove(pl.job_id)
            self.running[pl.job_id] = pl.allocation
            placed.append(pl.job_id)
        return dt, placed

    def fill(self, how: str = "cycle") -> tuple[float, int, str]:
        """Fill the empty cluster: with one real cycle (``cycle``: the same state as the
        pipeline's fill, as both place alike), or (``fast``) as the old benchmark's own
        ``micro_steady`` did with ``fast_fill``: the jobs a best-effort cycle would start,
        in policy order (a shape that fails once is skipped), but placed first-fit on the
        lowest free GPUs. (seconds, placements, how)."""
        from corral.job import Allocation

        if how == "cycle":
            dt, placed = self.cycle()
            return dt, len(placed), "one real cycle from the empty cluster"
        t = time.perf_counter()
        states = sorted(self.snapshot.nodes.values(), key=lambda s: s.node.name)
        failed: set = set()
        start_at: dict = {}          # per shape: nodes before this index are known full for it
        for job in self.queue.ordered():
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
            self.snapshot.assume(alloc)
            self.running[job.id] = alloc
        for jid in self.running:
            self.queue.remove(jid)
        return time.perf_counter() - t, len(self.running), "first-fit fast_fill (the old benchmark's own set-up)"

    def running_ids(self) -> list[int]:
        return sorted(self.running)

    def end(self, job_id: int) -> None:
        self.snapshot.forget(self.running.pop(job_id))

    def __len__(self) -> int:
        return len(self.queue)

    def clone(self) -> "SnapshotCore":
        twin = copy.copy(self)
        twin.snapshot, twin.queue, twin.running = copy.deepcopy((self.snapshot, self.queue, self.running),
                                                                share_shapes(self.shape))
        return twin


def core_class():
    return PipelineCore if scheduler_api() == "pipeline" else SnapshotCore


def run_cycles(core, n: int, rng: random.Random, free: tuple[int, int], pending_n: int, next_id: int,
               shape_at, profiler=None) -> tuple[list[float], list[int], list[tuple], int]:
    """``n`` steady-state cycles on ``core``: before each, free ``free`` (lo, hi) random
    running jobs; after each, top the queue up to ``pending_n`` with ``shape_at(k)`` for
    the k-th job added. (cycle times, placements per cycle, the ids placed per cycle,
    the next job id)."""
    run_ids = core.running_ids()
    lo, hi = free
    times, counts, decided = [], [], []
    k = 0
    for _ in range(n):
        for _ in range(min(rng.randint(lo, hi), len(run_ids))):
            i = rng.randrange(len(run_ids))
            run_ids[i], run_ids[-1] = run_ids[-1], run_ids[i]
            core.end(run_ids.pop())
        if profiler:
            profiler.enable()
        dt, placed = core.cycle()
        if profiler:
            profiler.disable()
        times.append(dt)
        counts.append(len(placed))
        decided.append(tuple(placed))
        run_ids.extend(placed)
        while len(core) < pending_n:
            core.add(next_id, shape_at(k))
            k += 1
            next_id += 1
    return times, counts, decided, next_id


def child_steady(p: dict) -> dict:
    """The steady-state micro-benchmark: fill, warm up, copy, then replay the same cycles
    on a fresh copy per repeat."""
    nodes_n, pending_n, seed = p["nodes"], p["pending"], p["seed"]
    free = tuple(int(x) for x in p["free"].split("-")) if "-" in p["free"] else (int(p["free"]),) * 2
    base = core_class()(nodes_n, pending_n, seed, p["reasons"])
    fill_s, fill_placed, fill_how = base.fill(p.get("fill", "cycle"))
    running_after_fill = len(base.running_ids())
    next_id = pending_n
    while len(base) < pending_n:
        base.add(next_id, base.shape())
        next_id += 1
    # The first cycle after the fill is cold (it tries the new jobs' shapes on every
    # node); then --micro-warmup cycles, timed once, until the queue's mix has settled
    # (right after the fill it still holds the small jobs that fit as soon as anything ends).
    first_s, first_placed = base.cycle()
    while len(base) < pending_n:
        base.add(next_id, base.shape())
        next_id += 1
    warm = min(p["cycles"], p["warmup"])
    times, counts, _, next_id = run_cycles(base, p["warmup"], random.Random(seed + 2), free, pending_n, next_id,
                                           lambda k: base.shape())
    early_t, early_n = math.fsum(times[:warm]), sum(counts[:warm])
    late_t, late_n = math.fsum(times[warm:]), sum(counts[warm:])
    shapes_n = base.shapes
    stream: list = []            # the top-up shapes, the same in every repeat

    def shape_at(k: int) -> Resources:
        while k >= len(stream):
            stream.append(base.shape())
        return stream[k]

    repeats = []
    profiler = None
    for rep in range(p["repeats"] + (1 if p.get("profile") else 0)):
        if rep == p["repeats"]:
            import cProfile
            profiler = cProfile.Profile()
        core = base.clone()
        gc.collect()
        times, counts, decided, _ = run_cycles(core, p["cycles"], random.Random(seed + 1), free, pending_n, next_id,
                                               shape_at, profiler)
        if profiler is None:
            repeats.append((math.fsum(times), times, counts, hash_of(decided)))
        del core
    totals = sorted(r[0] for r in repeats)
    placements = sum(repeats[0][2])
    if any(r[3] != repeats[0][3] for r in repeats):
        raise SystemExit("steady state: the repeats decided differently (not deterministic)")
    best = min(repeats, key=lambda r: r[0])
    per_placement = [dt / n for dt, n in zip(best[1], best[2]) if n]
    res = {"nodes": nodes_n, "pending": pending_n, "reasons": p["reasons"], "shapes": shapes_n,
           "fill": fill_how, "fill_s": fill_s, "fill_placed": fill_placed, "running_after_fill": running_after_fill,
           "first_cycle_ms": 1000 * first_s, "first_cycle_placed": len(first_placed),
           "warmup": p["warmup"], "early_cycles": warm, "early_placements": early_n,
           "early_placements_per_s": early_n / early_t if early_t > 0 else None,
           "late_warmup_placements_per_s": late_n / late_t if late_t > 0 else None,
           "cycles": p["cycles"], "repeats": len(repeats), "free_per_cycle": p["free"],
           "placements": placements, "empty_cycles": sum(1 for n in best[2] if not n),
           "decisions_digest": repeats[0][3],
           "placements_per_cycle_mean": placements / p["cycles"],
           "total_s_best": totals[0], "total_s_median": statistics.median(totals),
           "placements_per_s": placements / totals[0] if totals[0] > 0 else None,
           "placements_per_s_median": placements / statistics.median(totals) if totals[0] > 0 else None,
           "per_placement_ms_p50": 1000 * percentile(per_placement, 50) if per_placement else None,
           "per_placement_ms_p99": 1000 * percentile(per_placement, 99) if per_placement else None,
           "cycle_ms_p50": 1000 * percentile(best[1], 50), "cycle_ms_p99": 1000 * percentile(best[1], 99)}
    if profiler:
        import io
        import pstats
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(12)
        res["profile"] = buf.getvalue()
    return res


def child_initial(p: dict) -> dict:
    """One cycle from the empty cluster that places as many pending jobs as fit; the
    best of ``repeats``, each on a freshly built cluster and queue."""
    times, counts = [], set()
    for _ in range(p.get("repeats", 1)):
        core = core_class()(p["nodes"], p["pending"], p["seed"], p["reasons"])
        gc.collect()
        dt, placed = core.cycle()
        times.append(dt)
        counts.add(len(placed))
        del core
    if len(counts) != 1:
        raise SystemExit(f"initial cycle: the repeats placed different numbers of jobs: {sorted(counts)}")
    n, dt = counts.pop(), min(times)
    return {"nodes": p["nodes"], "pending": p["pending"], "reasons": p["reasons"], "placements": n,
            "repeats": len(times), "times_s": times, "cycle_s": dt, "cycle_s_median": statistics.median(times),
            "per_placement_ms": 1000 * dt / max(1, n), "placements_per_s": n / dt if dt > 0 else None}


def child_atonce(p: dict) -> dict:
    """``simulate`` of N jobs that all arrive at time 0, best-effort-fifo, best of R."""
    from corral.sim.engine import SimJob

    rng = random.Random(p["seed"])
    jobs = [SimJob(i, 0.0, float(rng.randint(60, 7200)),
                   Resources.parse({"cpu": rng.choice((1, 2, 4, 8)), "gpu": rng.choice((1, 1, 1, 1, 2, 2, 4, 8))}))
            for i in range(p["jobs"])]
    times, r = [], None
    for _ in range(p["repeats"]):
        gc.collect()
        t = time.perf_counter()
        r = simulate(parse_cluster(p["cluster"]), jobs, resolve(DEFAULT))
        times.append(time.perf_counter() - t)
    return {"jobs": p["jobs"], "cluster": p["cluster"], "repeats": p["repeats"], "times_s": times,
            "best_s": min(times), "median_s": statistics.median(times), "cycles": r.cycles,
            "placements": r.placements, "makespan_s": max(o.end for o in r.outcomes),
            "outcomes_digest": outcome_digest(r.outcomes)}


CHILDREN = {"replay": child_replay, "steady": child_steady, "initial": child_initial, "atonce": child_atonce}


def child_main(argv: list[str]) -> int:
    """``--_child KIND --_src DIR --_params JSON``: one measurement, its result as one JSON line."""
    kind, params = argv[1], json.loads(argv[argv.index("--_params") + 1])
    core = pin_one_core(params.get("core"))
    import corral as imported

    res = CHILDREN[kind](params)
    res |= {"api": scheduler_api(), "corral": str(Path(imported.__file__).parent), "pinned_core": core}
    print(json.dumps(res))
    return 0


# (c) scale: the parent -----------------------------------------------------------------------
def run_child(kind: str, src: Path, params: dict, timeout: float) -> tuple[dict | None, float, str]:
    """Run one measurement in a fresh interpreter on ``src`` (stopped at ``timeout``)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", kind, "--_src", str(src),
           "--_params", json.dumps(params)]
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(src.parent))
    except subprocess.TimeoutExpired:           # subprocess.run has killed and reaped it
        return None, time.perf_counter() - t, f"did not finish within {timeout:g} s (stopped)"
    wall = time.perf_counter() - t
    if p.returncode != 0:
        return None, wall, f"child failed ({p.returncode}): {p.stderr.strip()[-2000:]}"
    res = json.loads(p.stdout.strip().splitlines()[-1])
    if Path(res["corral"]).resolve() != (src / "corral").resolve():
        return None, wall, f"child imported corral from {res['corral']}, not from {src}"
    return res, wall, ""


@contextlib.contextmanager
def baseline_worktree(rev: str | None):
    """A temporary ``git worktree`` of ``rev`` (detached) -> (its src/, short commit, subject);
    removed again on the way out, on error too. None without a revision."""
    if not rev:
        yield None
        return
    found = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if found.returncode != 0:
        raise BaselineError(f"--baseline {rev}: not a commit of {REPO}")
    commit = found.stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="corral-bench-baseline-"))
    tree = tmp / "tree"
    added = False
    try:
        made = git("worktree", "add", "--detach", str(tree), commit, timeout=300)
        if made.returncode != 0:
            raise BaselineError(f"--baseline {rev}: git worktree add failed: {made.stderr.strip()}")
        added = True
        if not (tree / "src" / "corral").is_dir():
            raise BaselineError(f"--baseline {rev}: no src/corral in that revision")
        short = git("rev-parse", "--short", commit).stdout.strip()
        subject = git("log", "-1", "--format=%s", commit).stdout.strip()
        log(f"baseline {rev} = {short} checked out at {tree}")
        yield {"rev": rev, "commit": short, "subject": subject, "src": tree / "src"}
    finally:
        if added:
            gone = git("worktree", "remove", "--force", str(tree), timeout=300)
            if gone.returncode != 0:
                log(f"warning: git worktree remove {tree} failed: {gone.stderr.strip()}")
        git("worktree", "prune")
        shutil.rmtree(tmp, ignore_errors=True)


class BaselineError(Exception):
    pass


def revisions(args, baseline: dict | None) -> list[tuple[str, Path]]:
    """(column label, src/) of each measured revision: this checkout, then the baseline."""
    revs = [("this commit", REPO / "src")]
    if baseline:
        revs.append((f"baseline {baseline['commit']}", baseline["src"]))
    return revs


def measure(res: dict, key: str, kind: str, revs, params, timeout: float, what: str) -> dict:
    """Run one measurement for every revision (one after the other, so they share the
    machine's conditions); res[key][label] = the result or {"error": ...}."""
    out = res.setdefault(key, {})
    for label, src in revs:
        p = params(label) if callable(params) else params
        if p is None:
            continue
        log(f"(c) {what}: {label}")
        r, wall, err = run_child(kind, src, p, timeout)
        out[label] = r if r else {"error": err, "wall_s": wall} | {k: v for k, v in p.items() if k != "traces"}
        if err:
            log(f"    {err}")
    return out


def cell(r: dict | None, fmt) -> str:
    if not r:
        return "-"
    if "error" in r:
        return "failed: " + r["error"].splitlines()[0][:80]
    try:
        return fmt(r)
    except (KeyError, TypeError):
        return "-"


def scale_table(title: str, columns: dict[str, dict], rows: list[tuple[str, object]], notes=()) -> str:
    labels = list(columns)
    body = [[name, *(cell(columns[lb], fmt) if i == 0 or "error" not in (columns[lb] or {}) else "-"
                     for lb in labels)] for i, (name, fmt) in enumerate(rows)]
    return table(title, ["measure", *labels], body, notes)


def replay_rows(ref: dict | None) -> list[tuple[str, object]]:
    def same(r):
        if ref is None or r is ref or "outcomes_digest" not in ref:
            return "-"
        return "yes" if r["outcomes_digest"] == ref["outcomes_digest"] else "no"

    def never(r):
        by = sorted(r["infeasible_by_gpus"].items(), key=lambda kv: int(kv[0].split()[0]))
        return f"{r['infeasible']:,}" + (f" ({', '.join(f'{v} x {k}' for k, v in by)})" if by else "")

    return [
        ("scheduler API", lambda r: r["api"]),
        ("jobs in the trace", lambda r: f"{r['jobs']:,}"),
        ("never fit (larger than the whole cluster; left out)", never),
        ("gang-placed across nodes", lambda r: f0(r["gang_placed"])),
        ("load the CSV (s)", lambda r: f"{r['load_s']:.2f}"),
        ("replay (s)", lambda r: f"{r['sim_s']:.2f}"),
        ("**load + replay (s)**", lambda r: f"**{r['total_s']:.2f}**"),
        ("peak RSS, ru_maxrss (MiB)", lambda r: f"{r['maxrss_kib'] / 1024:.0f}"),
        ("peak RSS of the process image, VmHWM (MiB)", lambda r: mib(r["vmhwm_kib"])),
        ("RSS after imports / after loading the trace (MiB)",
         lambda r: f"{mib(r['rss_kib_after_imports'])} / {mib(r['rss_kib_after_load'])}"),
        ("cycles", lambda r: f"{r['cycles']:,}"),
        ("placements", lambda r: f"{r['placements']:,}"),
        ("preemptions", lambda r: f"{r['preemptions']:,}"),
        ("replay time per cycle (ms)", lambda r: f"{1000 * r['sim_s'] / max(1, r['cycles']):.3f}"),
        ("mean JCT (s) / GPU util", lambda r: f"{r['jct_mean']:,.0f} / {r['utilization']:.3f}"),
        ("every job's submit, start, end as in the first column", same),
    ]


def run_scale(args, traces: Path, out: dict, revs) -> None:
    t0 = time.perf_counter()
    res: dict = {"columns": [label for label, _ in revs]}
    core = args.child_core
    pinned = core if core is not None else (min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                            else None)
    notes_child = ("Each column measured in a child process (a fresh interpreter on that revision's src/"
                   + (f", pinned to core {pinned} with sched_setaffinity" if pinned is not None else "")
                   + "), the revisions one after the other for each measurement.")
    # 1-2. full replays
    if not args.no_replay:
        policies = [DEFAULT] + ([] if args.skip_preemptive else list(PREEMPTIVE))
        for policy in policies:
            cols = measure(res.setdefault("replay", {}), policy, "replay", revs,
                           {"traces": str(traces), "cluster": args.replay_cluster, "policy": policy, "core": core},
                           args.replay_timeout, f"full Philly replay, {policy}")
            ref = next(iter(cols.values()), None)
            title = (f"(c) full Philly trace replayed end to end on {args.replay_cluster}, {policy}, one core"
                     if policy == DEFAULT else
                     f"(c) preemptive policies on the full trace: {policy} on {args.replay_cluster}, one core")
            notes = [notes_child]
            if policy == DEFAULT:
                notes.append("ru_maxrss can carry over the parent's size at fork time; VmHWM is the child's own. "
                             "The full trace overloads the 128 GPUs (hence the JCT): this is a speed test, "
                             "not a policy result.")
            print(scale_table(title, cols, replay_rows(ref if ref and "error" not in ref else None), notes))
    # 3. steady state
    steady_params = lambda reasons, fill="cycle": {  # noqa: E731
        "nodes": args.micro_nodes, "pending": args.micro_pending, "cycles": args.micro_cycles, "free": args.micro_free,
        "seed": args.micro_seed, "repeats": args.steady_repeats, "reasons": reasons, "fill": fill, "core": core,
        "warmup": args.micro_warmup}
    steady: dict = {}
    this, *others = revs
    for reasons in (False, True):
        label = f"this commit, reasons {'on' if reasons else 'off'}"
        p = steady_params(reasons) | {"profile": bool(args.profile and not reasons)}
        log(f"(c) steady state: {label}")
        r, wall, err = run_child("steady", this[1], p, args.steady_timeout)
        steady[label] = r or {"error": err, "wall_s": wall}
    for label, src in others:
        log(f"(c) steady state: {label}")
        r, wall, err = run_child("steady", src, steady_params(False), args.steady_timeout)
        if r and r.get("api") == "pipeline":      # a baseline that has the reasons switch
            steady[f"{label}, reasons off"] = r
            r2, wall, err = run_child("steady", src, steady_params(True), args.steady_timeout)
            steady[f"{label}, reasons on"] = r2 or {"error": err, "wall_s": wall}
        elif r:
            steady[f"{label} (schedule_on: decisions only)"] = r
            if not args.no_fast_fill:         # and as its own micro_steady set it up
                log(f"(c) steady state: {label}, fast_fill")
                r2, wall, err = run_child("steady", src, steady_params(False, "fast"), args.steady_timeout)
                steady[f"{label} (schedule_on), its own fast_fill"] = r2 or {"error": err, "wall_s": wall}
        else:
            steady[label] = {"error": err, "wall_s": wall}
    res["steady"] = steady
    first_steady = next(iter(steady.values()))
    print(scale_table(
        f"(c) scheduler steady state: {args.micro_pending:,} pending jobs on {args.micro_nodes:,} full nodes x "
        f"8 GPUs, {DEFAULT}", steady, [
            ("scheduler API", lambda r: r["api"]),
            ("how the cluster was filled (untimed)", lambda r: r["fill"]),
            ("fill time (s) / placements", lambda r: f"{r['fill_s']:.2f} / {r['fill_placed']:,}"),
            ("shapes in the queue", lambda r: str(r["shapes"])),
            ("jobs running after the fill", lambda r: f"{r['running_after_fill']:,}"),
            ("first cycle after the fill (ms)",
             lambda r: f"{r['first_cycle_ms']:.1f} ({r['first_cycle_placed']} placed)"),
            ("warm-up: placements per second over its first cycles (one pass)",
             lambda r: f"{f0(r['early_placements_per_s'])} (cycles 2-{r['early_cycles'] + 1}, "
                       f"{r['early_placements']:,} placed)"),
            ("warm-up: placements per second over the rest (one pass)",
             lambda r: f"{f0(r['late_warmup_placements_per_s'])} (cycles {r['early_cycles'] + 2}-{r['warmup'] + 1})"),
            ("measured: cycles x repeats (each cycle after freeing " + args.micro_free + " random running jobs)",
             lambda r: f"{r['cycles']} x {r['repeats']} (cycles {r['warmup'] + 2}-{r['warmup'] + r['cycles'] + 1})"),
            ("placements per repeat", lambda r: f"{r['placements']:,} ({r['placements_per_cycle_mean']:.2f} per "
                                                f"cycle, {r['empty_cycles']} cycles placed none)"),
            ("**placements per second, best repeat**", lambda r: f"**{f0(r['placements_per_s'])}**"),
            ("placements per second, median repeat", lambda r: f0(r["placements_per_s_median"])),
            ("cycle time p50 / p99 (ms)", lambda r: f"{r['cycle_ms_p50']:.3f} / {r['cycle_ms_p99']:.3f}"),
            ("time per placement p50 / p99 (ms)",
             lambda r: f"{f3(r['per_placement_ms_p50'])} / {f3(r['per_placement_ms_p99'])}"),
            ("the same jobs placed in the same cycles as the first column",
             lambda r: "-" if r is first_steady else "yes" if r["decisions_digest"] == first_steady.get(
                 "decisions_digest") else "no"),
        ], [notes_child,
            "placements per second: all placements of a repeat / all its cycle time (the same cycles in every "
            "repeat, replayed on a deep copy of the state after the fill and the warm-up); cycle time and time "
            "per placement (a cycle's time / its placements; cycles that placed none left out) from the best "
            "repeat. reasons on: the "
            "cycle also works out a typed reason for every waiting job (what the daemon does); off: decisions "
            "only (what the simulator does); schedule_on decides only."]))
    for label, r in steady.items():
        if r.get("profile"):
            print(f"\nprofile of the steady-state cycles, {label} (top 12 by own time):\n" + r["profile"])
    # 4. initial cycle
    if args.initial_cycle != "skip":
        initial: dict = {}
        size = lambda frac: (max(1, args.micro_nodes // frac), max(1, args.micro_pending // frac))  # noqa: E731
        for label, src in revs:
            first = label == this[0]
            for reasons in (False, True):
                pipeline = any(r.get("api") == "pipeline" for k, r in steady.items() if k.startswith(label))
                n_nodes, n_pend = size(1 if first or pipeline or args.initial_cycle == "full" else 10)
                p = {"nodes": n_nodes, "pending": n_pend, "seed": args.micro_seed, "reasons": reasons, "core": core,
                     "repeats": args.initial_repeats}
                log(f"(c) initial cycle: {label}, {n_pend} pending on {n_nodes} nodes, reasons {reasons} "
                    f"(limit {args.initial_timeout:g} s)")
                r, wall, err = run_child("initial", src, p, args.initial_timeout)
                if r is None:
                    initial[label if not first else f"{label}, reasons {'on' if reasons else 'off'}"] = \
                        {"error": err, "wall_s": wall} | p
                    if not first:
                        break                               # a baseline that failed once: not again
                    continue
                if r["api"] == "schedule_on":
                    initial[f"{label} (schedule_on)"] = r
                    break                                   # no reasons switch
                initial[f"{label}, reasons {'on' if reasons else 'off'}"] = r
        for label, r in steady.items():        # a real fill is the initial cycle at full size
            if (args.initial_cycle == "tenth" and not label.startswith(this[0]) and r.get("api") == "schedule_on"
                    and r.get("fill", "").startswith("one real cycle")):
                initial[label.split(" (")[0] + " (schedule_on), full size: its steady-state fill"] = {
                    "nodes": r["nodes"], "pending": r["pending"], "placements": r["fill_placed"], "repeats": 1,
                    "cycle_s": r["fill_s"], "cycle_s_median": r["fill_s"],
                    "per_placement_ms": 1000 * r["fill_s"] / max(1, r["fill_placed"]),
                    "placements_per_s": r["fill_placed"] / r["fill_s"] if r["fill_s"] > 0 else None}
        res["initial"] = initial
        print(scale_table("(c) initial cycle: one cycle from the empty cluster, as many of the pending jobs placed "
                          "as fit", initial, [
                              ("nodes x 8 GPUs / pending", lambda r: f"{r['nodes']:,} / {r['pending']:,}"),
                              ("placements", lambda r: f"{r['placements']:,}"),
                              ("cycle time, best / median of the repeats (s)",
                               lambda r: f"{r['cycle_s']:.3f} / {r['cycle_s_median']:.3f} ({r['repeats']})"),
                              ("time per placement (ms)", lambda r: f"{r['per_placement_ms']:.3f}"),
                              ("**placements per second** (best)", lambda r: f"**{f0(r['placements_per_s'])}**"),
                          ], [notes_child] + ([
                              "The baseline's own child runs at a tenth of the size (--initial-cycle tenth, the "
                              "default; its time per placement grows with the cluster, --initial-cycle full runs it "
                              "at full size); 'its steady-state fill' is the same full-size cycle timed as the "
                              "untimed set-up of its steady state above."]
                              if args.initial_cycle == "tenth" and any("(schedule_on)" in k for k in initial)
                              else [])))
    # 5. N jobs at once
    if args.atonce_jobs > 0:
        cols = measure(res, "atonce", "atonce", revs,
                       {"jobs": args.atonce_jobs, "cluster": args.atonce_cluster, "repeats": args.atonce_repeats,
                        "seed": 0, "core": core}, args.atonce_timeout, f"{args.atonce_jobs} jobs at once")
        ref = next(iter(cols.values()), None)
        print(scale_table(
            f"(c) corral sim of {args.atonce_jobs:,} jobs arriving at once on {args.atonce_cluster}, {DEFAULT}",
            cols, [
                ("scheduler API", lambda r: r["api"]),
                (f"**simulate wall time, best of {args.atonce_repeats} (s)**", lambda r: f"**{r['best_s']:.2f}**"),
                ("median (s)", lambda r: f"{r['median_s']:.2f}"),
                ("cycles / placements", lambda r: f"{r['cycles']:,} / {r['placements']:,}"),
                ("simulated makespan (s)", lambda r: f0(r["makespan_s"])),
                ("every job's submit, start, end as in the first column",
                 lambda r: "-" if r is ref or not ref or "outcomes_digest" not in ref
                 else "yes" if r["outcomes_digest"] == ref["outcomes_digest"] else "no"),
            ], [notes_child,
                "Jobs: SimJob(i, 0.0, randint(60, 7200) s, cpu choice(1,2,4,8), gpu choice(1,1,1,1,2,2,4,8)) "
                "from random.Random(0); wall time of simulate() only (job list and cluster built outside)."]))
    out["scale"] = res | {"wall_s": time.perf_counter() - t0}
    log(f"(c) done in {time.perf_counter() - t0:.1f} s")


# targets -------------------------------------------------------------------------------------
def print_targets(out: dict) -> None:
    rows = []
    philly = out.get("philly", {}).get("results", {})
    at1 = philly.get("1.0") or philly.get("1")
    if at1 and DEFAULT in at1:
        ratio = lambda p: mean(r["jct_ratio"] for r in at1[p])  # noqa: E731
        jct = lambda p: mean(r["jct_mean"] for r in at1[p])  # noqa: E731
        d = ratio(DEFAULT)
        rows.append([f"{DEFAULT} at load 1.0 within 1.3x of the lower bound on mean JCT, part (a)",
                     f"{d:.3f}x", "<= 1.3x", "-", "met" if d <= 1.3 else "MISSED"])
        for other in ("easy-backfill", "strict-fifo"):
            if other in at1:
                a, b = jct(DEFAULT), jct(other)
                rows.append([f"{DEFAULT} better than {other} at load 1.0 (mean JCT), part (a)",
                             f"{a:,.0f} s vs {b:,.0f} s", "lower", "-",
                             "met" if a < b else "tie (not better)" if a == b else "MISSED"])
    scale = out.get("scale", {})
    columns = scale.get("columns", [])
    base_label = columns[1] if len(columns) > 1 else None

    def add(target: str, value, limit: float, higher: bool, fmt, base=None, base_note: str = "") -> None:
        if value is None:
            return
        ok = value >= limit if higher else value <= limit
        b = "-" if base is None else (f"{fmt(base)}{base_note} "
                                      f"({'met' if (base >= limit if higher else base <= limit) else 'MISSED'})")
        rows.append([target, fmt(value), (">= " if higher else "<= ") + fmt(limit), b, "met" if ok else "MISSED"])

    def got(section: dict, label: str | None, key: str):
        r = section.get(label) if label else None
        return r.get(key) if r and "error" not in r else None

    secs = lambda x: f"{x:.1f} s"  # noqa: E731
    per_s = lambda x: f"{x:,.0f} /s"  # noqa: E731
    replay = scale.get("replay", {})
    bef = replay.get(DEFAULT, {})
    this = columns[0] if columns else None
    if got(bef, this, "total_s") is not None:
        add(f"full Philly replay, {DEFAULT}, load + replay, one core", got(bef, this, "total_s"), 25.0, False,
            secs, got(bef, base_label, "total_s"))
        add("  (older target: under 60 s)", got(bef, this, "total_s"), 60.0, False, secs,
            got(bef, base_label, "total_s"))
    for policy in PREEMPTIVE:
        cols = replay.get(policy, {})
        v = got(cols, this, "total_s")
        if v is not None or cols:
            if v is None:
                rows.append([f"preemptive policy {policy} on the full trace, load + replay", "failed",
                             "<= 60.0 s", "-", "MISSED"])
            else:
                add(f"preemptive policy {policy} on the full trace, load + replay", v, 60.0, False, secs,
                    got(cols, base_label, "total_s"))
    steady = scale.get("steady", {})
    base_steady = next((k for k in steady if base_label and k.startswith(base_label)
                        and not k.endswith("reasons on")), None)
    for reasons in ("off", "on"):
        v = got(steady, f"this commit, reasons {reasons}", "placements_per_s")
        add(f"steady state, reasons {reasons}: placements/s at 10,000 pending x 1,000 nodes (best repeat)", v,
            20000, True, per_s, got(steady, base_steady, "placements_per_s") if reasons == "off" else None)
    v = got(steady, "this commit, reasons off", "placements_per_s")
    add("  (older target: >= 5,000 placements/s)", v, 5000, True, per_s, got(steady, base_steady, "placements_per_s"))
    initial = scale.get("initial", {})
    base_initials = [k for k in initial if base_label and k.startswith(base_label) and not k.endswith("reasons on")]
    base_initial = next((k for k in base_initials if "full size" in k), base_initials[0] if base_initials else None)
    for reasons in ("off", "on"):
        v = got(initial, f"this commit, reasons {reasons}", "placements_per_s")
        base = got(initial, base_initial, "placements_per_s") if reasons == "off" else None
        note = ""
        base_nodes = got(initial, base_initial, "nodes")
        if base is not None and base_nodes != got(initial, "this commit, reasons off", "nodes"):
            note = f" at {base_nodes:,} nodes"
        add(f"initial cycle, reasons {reasons}: placements/s, 10,000 pending on 1,000 empty nodes", v, 10000, True,
            per_s, base, note)
    at = scale.get("atonce", {})
    v = got(at, this, "best_s")
    if v is not None:
        add(f"corral sim of {at[this]['jobs']:,} jobs at once on {at[this]['cluster']} (best of "
            f"{at[this]['repeats']})", v, 1.0, False, lambda x: f"{x:.2f} s", got(at, base_label, "best_s"))
    if rows:
        print(table("Targets", ["target", "this commit", "target", base_label or "baseline", "status"], rows,
                    ["status: this commit's value against the target"
                     + ("; the baseline's in brackets" if base_label else "")
                     + ". Speeds are the best repeat (median in the tables above)."]))
    out["targets"] = [dict(zip(["target", "measured", "limit", "baseline", "status"], r)) for r in rows]


# main ---------------------------------------------------------------------------------------
def _stop(signum, frame):           # SIGTERM/SIGHUP: unwind, so children are stopped and the worktree removed
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_child":
        return child_main(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=Path, default=None,
                    help=f"folder of the trace files (default: ../shared/traces from the repo root, {DEFAULT_TRACES})")
    ap.add_argument("--skip", action="append", default=[], choices=["philly", "alibaba", "scale", "large"],
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
    g.add_argument("--policies", help="only these policies, comma-separated (default: all of policy_names())")
    g.add_argument("--config", type=Path, help="also run the policy of this daemon config file ('config')")
    g.add_argument("--reference-rules", choices=["paper", "corral", "both"], default="paper",
                   help="srtf and tiresias by the authors' rules (default), corral's (gangs first and never "
                        "preempted, victims on one node, no moves), or both")
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
    g.add_argument("--alibaba-policy", default=DEFAULT, choices=policy_names())
    g = ap.add_argument_group("(d) replay time on a large cluster")
    g.add_argument("--large-jobs", type=int, default=2000, help="first N Alibaba pods on all GPU nodes")
    g.add_argument("--large-repeats", type=int, default=3)
    g = ap.add_argument_group("(c) scale")
    g.add_argument("--baseline", metavar="REV",
                   help="also measure (c) on this git revision, side by side (e.g. --baseline be8aa21, the "
                        "scheduler before the redesign): a temporary git worktree, removed at the end")
    g.add_argument("--child-core", type=int, default=None,
                   help="the core the measuring children are pinned to (default: the lowest one allowed)")
    g.add_argument("--replay-cluster", default="16x8gpu")
    g.add_argument("--replay-timeout", type=float, default=600.0, help="seconds per replay")
    g.add_argument("--no-replay", action="store_true", help="skip the full Philly replays")
    g.add_argument("--skip-preemptive", action="store_true",
                   help="skip the full Philly replays with srtf and tiresias (up to ~80 s each per revision)")
    g.add_argument("--micro-nodes", type=int, default=1000)
    g.add_argument("--micro-pending", type=int, default=10000)
    g.add_argument("--micro-cycles", type=int, default=500)
    g.add_argument("--micro-free", default="1-3", help="running jobs freed before each cycle: N or LO-HI")
    g.add_argument("--micro-warmup", type=int, default=2000,
                   help="steady-state cycles run (and timed once) after the fill, before the measured ones")
    g.add_argument("--micro-seed", type=int, default=0)
    g.add_argument("--steady-repeats", type=int, default=15,
                   help="replays of the same steady-state cycles, each on a fresh copy of the filled state")
    g.add_argument("--steady-timeout", type=float, default=600.0)
    g.add_argument("--initial-cycle", choices=["full", "tenth", "skip"], default="tenth",
                   help="a schedule_on baseline's initial cycle (one cycle from the empty cluster): at full "
                        "size, at a tenth of the nodes and pending jobs (default), or not at all (skip: neither "
                        "revision); this commit and a pipeline baseline are always measured at full size")
    g.add_argument("--initial-timeout", type=float, default=300.0)
    g.add_argument("--initial-repeats", type=int, default=3,
                   help="initial cycles timed per column, each on a fresh cluster (best and median reported)")
    g.add_argument("--atonce-jobs", type=int, default=10000,
                   help="jobs arriving at once for the corral sim measurement (0: skip it)")
    g.add_argument("--atonce-cluster", default="1000x8gpu")
    g.add_argument("--atonce-repeats", type=int, default=5)
    g.add_argument("--atonce-timeout", type=float, default=600.0)
    g.add_argument("--no-fast-fill", action="store_true",
                   help="leave out the baseline's steady state as its own micro_steady set it up (fast_fill)")
    g.add_argument("--profile", action="store_true",
                   help="cProfile one extra repeat of this commit's steady-state cycles and print the top")
    args = ap.parse_args(argv)

    traces = args.traces if args.traces is not None else DEFAULT_TRACES
    needed = ([PHILLY] if ("philly" not in args.skip or "scale" not in args.skip) else []) + \
             ([ALI_PODS, ALI_NODES] if ("alibaba" not in args.skip or "large" not in args.skip) else [])
    missing = [n for n in needed if not (traces / n).is_file()]
    if missing:
        log(f"bench_sim: traces not found: {', '.join(str(traces / n) for n in missing)}\n"
            f"  The benchmark reads the public traces from {DEFAULT_TRACES} (../shared/traces from the "
            f"repo root; see its README.md) or from --traces DIR.")
        return 2
    traces = traces.resolve()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    try:
        with baseline_worktree(args.baseline if "scale" not in args.skip else None) as baseline:
            return run_all(args, traces, baseline)
    except BaselineError as e:
        log(f"bench_sim: {e}")
        return 2


def run_all(args, traces: Path, baseline: dict | None) -> int:
    env = environment()
    if baseline:
        env["baseline"] = {k: v for k, v in baseline.items() if k != "src"}
    out: dict = {"environment": env, "args": {k: (str(v) if isinstance(v, Path) else v)
                                             for k, v in vars(args).items()}}
    print(f"corral simulator benchmark -- {env['cpu_model']}, {env['cores']} cores, Python {env['python']}, "
          f"kernel {env['kernel']}, commit {env['commit']}"
          + (f" (uncommitted changes in {', '.join(env['src_uncommitted'])})" if env["src_uncommitted"] else "")
          + f", load average {env['loadavg_at_start']}")
    if baseline:
        print(f"baseline for (c): {baseline['rev']} = {baseline['commit']} ({baseline['subject']})")
    print("policies registered: " + ", ".join(f"{n} ({k})" if k else n for n, k in env["policies"].items()))
    t0 = time.perf_counter()
    if "philly" not in args.skip:
        run_philly(args, traces, out)
    if "alibaba" not in args.skip:
        run_alibaba(args, traces, out)
    if "large" not in args.skip:
        run_large(args, traces, out)
    if "scale" not in args.skip:
        run_scale(args, traces, out, revisions(args, baseline))
    print_targets(out)
    out["wall_s"] = time.perf_counter() - t0
    out["environment"]["loadavg_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\ntotal wall time {out['wall_s']:.0f} s, load average at the end {out['environment']['loadavg_at_end']}")
    if args.json_out:
        args.json_out.write_text(json.dumps(out, indent=2, default=str))
        log(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
