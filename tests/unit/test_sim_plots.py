"""PNG plots of simulation results (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from corral.resources import Resources  # noqa: E402
from corral.sim.cluster import parse_cluster  # noqa: E402
from corral.sim.engine import SimJob, simulate  # noqa: E402
from corral.sim.plots import file_stem, plot_jct_cdf, plot_timeline, write_plots  # noqa: E402
from corral.sim.policies import resolve  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def tiny():
    return [SimJob(i, i, 5 + i, Resources.parse({"cpu": "1", "gpu": 1 + i % 2}), user="ab"[i % 2])
            for i in range(6)]


def test_write_plots_writes_one_cdf_and_a_timeline_per_policy(tmp_path):
    nodes = parse_cluster("1x2gpu")
    results = {name: simulate(nodes, tiny(), resolve(name)) for name in ("best-effort-fifo", "easy-backfill")}
    out = tmp_path / "plots" / "nested"
    paths = write_plots(results, str(out), title="tiny", dpi=40)
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == \
        ["jct_cdf.png", "timeline_best-effort-fifo.png", "timeline_easy-backfill.png"]
    for p in paths:
        data = Path(p).read_bytes()
        assert data[:8] == PNG and len(data) > 1000


def test_single_plots_and_file_names(tmp_path):
    r = simulate(parse_cluster("1x1gpu"), tiny()[:1], resolve("fair-share"))
    assert Path(plot_jct_cdf({"x": r.outcomes}, str(tmp_path / "c.png"))).read_bytes()[:8] == PNG
    assert Path(plot_timeline(r.samples, str(tmp_path / "t.png"))).read_bytes()[:8] == PNG
    assert file_stem("a b/c") == "a_b_c" and file_stem("") == "policy"
    assert file_stem("easy-backfill (k=2)") == "easy-backfill_k_2"
