"""The packing mode (the FGD paper's experiment): arrivals without departures, FGD against
best fit, on hand-made clusters where the answer is worked out by hand."""

from __future__ import annotations

import csv

import pytest

from corral.cli.main import main
from corral.errors import ValidationError
from corral.resources import CPU, GPU, Constraints, Resources
from corral.scheduler.shares import GPU_SHARE, PodShape, node_fragmentation, typical_shapes
from corral.sim.cluster import make_sim_node
from corral.sim.engine import SimJob
from corral.sim.packing import SCORERS, arrivals, pack


def share(i, milli):
    return SimJob(i, 0, 0, Resources({CPU: 1000, GPU_SHARE: milli}))


def two_single_gpu_nodes():
    return [make_sim_node(f"n{i}", cpu=8000, memory=2**34, gpus=1) for i in (1, 2)]


def test_fgd_differs_from_best_fit_and_packs_more():
    # Two nodes of one GPU; jobs of 0.4, 0.4, 0.6, 0.6 GPU (the workload: half 0.4, half 0.6).
    # Best fit puts the second 0.4 on the fullest device (n1: 0.6 -> 0.2 free, which no job
    # of the workload can use); the first 0.6 then takes n2 and the second finds no room.
    # FGD sees that 0.2 left on n1 is fragment (+200) and puts the 0.4 on n2 instead
    # (0.6 left: still holds either shape): both 0.6 jobs fit, all of the GPUs allocated.
    nodes = two_single_gpu_nodes()
    jobs = [share(0, 400), share(1, 400), share(2, 600), share(3, 600)]
    best = pack(nodes, jobs, "best-fit", fill=1.0)
    fgd = pack(nodes, jobs, "fgd", fill=1.0)
    assert best.where[1] == ("n1", (0,)) and fgd.where[1] == ("n2", (0,))
    assert (best.placed, best.failed) == (3, 1)
    assert (fgd.placed, fgd.failed) == (4, 0)
    assert best.ratio_at(1.0) == pytest.approx(0.7)
    # The FGD simulator's own BestFit (least free CPU and GPU left) does as corral's here.
    assert pack(nodes, jobs, "weighted-best-fit", fill=1.0).ratio_at(1.0) == pytest.approx(0.7)
    assert fgd.ratio_at(1.0) == pytest.approx(1.0)
    # Fragmentation at 50 % arrived (after the third job, 1.4 of 2 GPUs requested): best fit
    # left 0.2 on n1 that no shape can use (200) and 0.4 on n2 that the 0.6 half cannot
    # (0.5 x 400): 400 of 2000; FGD left 0.6 on n2, which either shape can use.
    assert dict((m, f) for m, _, f in best.curve)[0.5] == pytest.approx(0.2)
    assert dict((m, f) for m, _, f in fgd.curve)[0.5] == pytest.approx(0.0)


def test_node_fragmentation_follows_fgd():
    shapes = (PodShape(cpu=1000, gpus=1, milli=500, weight=0.5), PodShape(cpu=1000, gpus=2, milli=1000, weight=0.5))
    # Two devices, 300 and 1000 free. The 0.5 job fits: 300 is its fragment. The 2-GPU job does
    # not fit: all 1300 free is fragment. 0.5 x 300 + 0.5 x 1300 = 800.
    assert node_fragmentation(((300, "T4"), (1000, "T4")), 8000, shapes) == pytest.approx(800)
    # Not enough CPU for either: everything free is fragment.
    assert node_fragmentation(((300, "T4"), (1000, "T4")), 500, shapes) == pytest.approx(1300)
    # A shape that wants another model cannot use these GPUs at all.
    other = (PodShape(cpu=0, gpus=1, milli=100, models=("A100",), weight=1.0),)
    assert node_fragmentation(((1000, "T4"),), 8000, other) == pytest.approx(1000)


def test_typical_shapes_cover_the_popular_ones():
    reqs = [Resources({CPU: 1000, GPU: 1})] * 6 + [Resources({CPU: 2000, GPU_SHARE: 500})] * 3 \
        + [Resources({CPU: 1000})] * 5
    shapes = typical_shapes(reqs, step=1)
    # CPU-only jobs left out; the 1-GPU shape alone covers 6/9 >= 60 %: one shape, weight 1.
    assert shapes == (PodShape(cpu=1000, gpus=1, milli=1000, weight=1.0),)
    assert len(typical_shapes(reqs)) == 2            # 10 at a time: both GPU shapes


def test_arrivals_are_shuffled_topped_up_and_stop_below_the_fill():
    jobs = [share(i, 500) for i in range(4)]          # 2 GPUs requested of 4
    order = arrivals(jobs, 4000, 1.3, seed=1)
    assert sum(j.requests[GPU_SHARE] for j in order) == 5000    # 5.2 would pass 1.3 x 4
    assert order == arrivals(jobs, 4000, 1.3, seed=1)          # the seed decides
    assert len(arrivals(jobs, 4000, 0.5, seed=1)) == 4           # cut: 2 of 4 GPUs
    with pytest.raises(ValidationError, match="--fill.*expected a number above 0"):
        arrivals(jobs, 4000, 0)


def test_packing_respects_gpu_models():
    nodes = [make_sim_node("a", cpu=8000, memory=2**34, gpus=2, model="T4"),
             make_sim_node("b", cpu=8000, memory=2**34, gpus=2, model="V100M16")]
    want = Constraints(gpu_models=("V100M16",))
    jobs = [SimJob(i, 0, 0, Resources({CPU: 100, GPU_SHARE: 300}, constraints=want)) for i in range(8)]
    for scorer in SCORERS:
        r = pack(nodes, jobs, scorer, fill=1.0)
        assert {node for node, _ in r.where.values()} == {"b"}
        assert r.placed == 6 and r.failed == 2        # 3 x 0.3 per V100 device


# The CLI ------------------------------------------------------------------------------------

UNTIMED = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n" + \
    "a,1000,1024,1,400,\nb,1000,1024,1,400,\nc,1000,1024,1,600,\nd,1000,1024,1,600,\n"
NODES = "sn,cpu_milli,memory_mib,gpu,model\nn1,8000,16384,1,T4\nn2,8000,16384,1,T4\n"


def test_cli_packing_on_a_pod_list_without_times(tmp_path, capsys):
    pods, nodes = tmp_path / "pods.csv", tmp_path / "nodes.csv"
    pods.write_text(UNTIMED)
    nodes.write_text(NODES)
    per = tmp_path / "placed.csv"
    assert main(["sim", "--trace", str(pods), "--format", "alibaba", "--cluster", str(nodes), "--packing",
                 "--fill", "1.0", "--json", "--per-job", str(per)]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    rows = list(csv.DictReader(per.open()))
    assert len(rows) == 12 and {r["scorer"] for r in rows} == {"fgd", "best-fit", "weighted-best-fit"}
    fgd = [r for r in rows if r["scorer"] == "fgd"]
    assert all(r["node"] in ("n1", "n2") and r["model"] == "T4" and r["gpus"] == "0" for r in fgd)
    assert out["arrivals"] == 4 and set(out["scorers"]) == {"fgd", "best-fit", "weighted-best-fit"}
    assert out["scorers"]["fgd"]["curve"][-1]["arrived"] == 1.0
    # Replaying it needs times: a one-line error that says so.
    assert main(["sim", "--trace", str(pods), "--format", "alibaba", "--cluster", str(nodes)]) == 1
    assert "no time columns" in capsys.readouterr().err
    assert main(["sim", "--trace", str(pods), "--format", "alibaba", "--cluster", str(nodes), "--fill", "1.3"]) == 1
    assert "--fill" in capsys.readouterr().err
    assert main(["sim", "--trace", str(pods), "--format", "philly", "--keep-running"]) == 1
    assert "--keep-running" in capsys.readouterr().err


def test_cli_per_job_output(tmp_path, capsys):
    pods, nodes, per = tmp_path / "pods.csv", tmp_path / "nodes.csv", tmp_path / "jobs.csv"
    pods.write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
                    "deletion_time,scheduled_time\n"
                    "p0,1000,1024,1,250,,LS,Succeeded,0,100,0\np1,1000,1024,1,1000,V100M16,LS,Succeeded,0,50,0\n"
                    "p2,1000,1024,1,250,,LS,Running,10,,10\n")
    nodes.write_text("sn,cpu_milli,memory_mib,gpu,model\nt,8000,16384,1,T4\nv,8000,16384,1,V100M16\n")
    assert main(["sim", "--trace", str(pods), "--format", "alibaba", "--cluster", str(nodes), "--keep-running",
                 "--per-job", str(per)]) == 0
    rows = list(csv.DictReader(per.open()))
    assert [r["id"] for r in rows] == ["0", "1", "2"]
    by = {r["id"]: r for r in rows}
    assert (by["1"]["node"], by["1"]["model"], by["1"]["gpus"], by["1"]["share"]) == ("v", "V100M16", "0", "")
    assert (by["0"]["share"], by["0"]["gpus"]) == ("250", "0")
    assert by["2"]["end"] == "100"                    # still Running: cut at the trace's end
