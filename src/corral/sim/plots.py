"""PNG plots of simulation results (``corral sim --plot DIR``), with matplotlib.

matplotlib is imported only here, and only when a plot is drawn: ``corral sim`` without
``--plot`` (and every other command) never pays for it. Figures are drawn with the Agg
canvas directly (no pyplot, no GUI backend, no global state).

Files written into the directory:

* ``jct_cdf.png`` -- the empirical CDF of job completion time, one line per policy
  (log-scale time axis);
* ``timeline_<policy>.png`` -- one per policy, two panels sharing the time axis: GPU
  allocation utilization (allocated / total GPUs) and queue length (pending jobs), as
  step functions of the simulated time in hours.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

from .metrics import JobOutcome, Sample

DPI = 80


def _figure(width: float, height: float, rows: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True) if rows > 1 else fig.subplots()
    return fig, axes


def file_stem(policy: str) -> str:
    """A file-name-safe form of a policy name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", policy).strip("_") or "policy"


def plot_jct_cdf(outcomes: Mapping[str, Sequence[JobOutcome]], path: str, *, title: str = "",
                 dpi: int = DPI) -> str:
    """One CDF line per policy of its jobs' JCT (end - submit)."""
    fig, ax = _figure(7, 4.2)
    styles = ("-", "--", "-.", ":")      # policies with equal results stay visible
    for i, (name, outs) in enumerate(outcomes.items()):
        jcts = sorted(max(o.end - o.submit, 1e-3) for o in outs)
        if not jcts:
            continue
        n = len(jcts)
        ax.step(jcts, [(k + 1) / n for k in range(n)], where="post", label=name,
                linestyle=styles[i % len(styles)], linewidth=1.4)
    ax.set_xscale("log")
    ax.set_xlabel("job completion time (s, log scale)")
    ax.set_ylabel("fraction of jobs")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    ax.set_title(title or "JCT CDF per policy", fontsize="medium")
    fig.savefig(path, dpi=dpi, format="png")
    return path


def plot_timeline(samples: Sequence[Sample], path: str, *, title: str = "", dpi: int = DPI) -> str:
    """GPU utilization and queue length over simulated time (hours), as steps."""
    fig, (top, bottom) = _figure(7, 4.6, rows=2)
    pts = sorted(samples, key=lambda s: s.t)
    # Of several samples at one instant the last one holds (see corral.sim.metrics).
    last: dict[float, Sample] = {}
    for s in pts:
        last[s.t] = s
    pts = list(last.values())
    t0 = pts[0].t if pts else 0.0
    hours = [(s.t - t0) / 3600 for s in pts]
    util = [s.gpus_allocated / s.gpus_total if s.gpus_total else 0.0 for s in pts]
    queue = [s.queue_length for s in pts]
    top.step(hours, util, where="post", color="tab:blue", linewidth=0.8)
    top.set_ylabel("GPU utilization")
    top.set_ylim(0, 1.05)
    top.grid(True, alpha=0.3)
    bottom.step(hours, queue, where="post", color="tab:red", linewidth=0.8)
    bottom.set_ylabel("queue length (jobs)")
    bottom.set_xlabel("simulated time (hours)")
    bottom.grid(True, alpha=0.3)
    top.set_title(title or "utilization and queue length", fontsize="medium")
    fig.savefig(path, dpi=dpi, format="png")
    return path


def write_plots(results: Mapping[str, object], directory: str, *, title: str = "", dpi: int = DPI) -> list[str]:
    """Write ``jct_cdf.png`` and one ``timeline_<policy>.png`` per policy into
    ``directory`` (created if needed). ``results``: policy name -> a
    :class:`~corral.sim.engine.SimResult` (anything with ``outcomes`` and ``samples``).
    Returns the paths written."""
    os.makedirs(directory, exist_ok=True)
    prefix = f"{title}: " if title else ""
    paths = [plot_jct_cdf({name: r.outcomes for name, r in results.items()},  # type: ignore[attr-defined]
                          os.path.join(directory, "jct_cdf.png"), title=f"{prefix}JCT CDF per policy", dpi=dpi)]
    for name, r in results.items():
        paths.append(plot_timeline(r.samples, os.path.join(directory, f"timeline_{file_stem(name)}.png"),  # type: ignore[attr-defined]
                                   title=f"{prefix}{name}: GPU utilization and queue length", dpi=dpi))
    return paths
