"""The preemptive policies (SRTF with oracle run times, Tiresias' discretized 2D-LAS) and
the engine's preemption support. Every expected answer is worked out by hand below."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.cli.main import main
from corral.errors import ValidationError
from corral.resources import Resources
from corral.sim.cluster import parse_cluster
from corral.sim.engine import SimJob, simulate
from corral.sim.policies import DEFAULT_THRESHOLDS, is_oracle, parse_thresholds, policy_names, resolve


def job(i, submit, duration, gpus, user="u"):
    return SimJob(i, submit, duration, Resources.parse({"cpu": "1", "gpu": gpus}), user=user)


def run(trace, name, cluster="1x1gpu", **kw):
    return simulate(parse_cluster(cluster), trace, resolve(name, **kw), check=True)


def table(result):
    """id -> (first start, end, attained GPU-seconds)."""
    return {o.id: (o.start, o.end, o.attained) for o in result.outcomes}


# One GPU. A: 100 s from t=0. B: 10 s from t=5.
AB = [job(0, 0, 100, 1), job(1, 5, 10, 1)]


def test_srtf_preempts_the_longer_job():
    # t=5: remaining A 95 > B 10 -> A preempted (95 s left), B runs 5-15. t=15: A resumes,
    # 95 s left -> ends 110. JCTs 110 and 10; one preemption.
    result = run(AB, "srtf")
    assert table(result) == {0: (0, 110, 100), 1: (5, 15, 10)}
    assert result.preemptions == 1


def test_srtf_does_not_preempt_on_a_tie():
    # A 20 s from 0; B 10 s from 10: at t=10 both have 10 s left -> the running one stays.
    result = run([job(0, 0, 20, 1), job(1, 10, 10, 1)], "srtf")
    assert table(result) == {0: (0, 20, 20), 1: (20, 30, 10)}
    assert result.preemptions == 0


def test_tiresias_demotes_at_the_threshold_then_the_short_job_preempts():
    # Threshold 20 GPU-s. t=0 A starts (queue 0). t=5 B arrives, queue 0 too, FIFO: behind
    # A, waits. t=20: A has attained 1 GPU x 20 s = 20 -> queue 1 (an engine event); B
    # (queue 0) preempts it and runs 20-30 (attains 10 < 20, stays in queue 0). t=30: A
    # resumes with 80 s left -> ends 110. JCTs 110 and 25; one preemption.
    result = run(AB, "tiresias", tiresias_thresholds=(20,))
    assert table(result) == {0: (0, 110, 100), 1: (20, 30, 10)}
    assert result.preemptions == 1
    # With the default threshold (3200 GPU-s) neither job is ever demoted: plain FIFO.
    result = run(AB, "tiresias")
    assert table(result) == {0: (0, 100, 100), 1: (100, 110, 10)}
    assert result.preemptions == 0


def test_tiresias_counts_gpus_times_time_and_is_fifo_within_a_queue():
    # One node of 2 GPUs, thresholds 20 and 100 GPU-s.
    #   A: 2 GPUs, 30 s, t=0.  B: 1 GPU, 30 s, t=5.
    # t=5:  A (attained 10, queue 0) runs; B (queue 0, later) waits: no free GPU.
    # t=10: A attains 2 x 10 = 20 -> queue 1. B (queue 0) preempts A (20 s left) and runs
    #       on one GPU; A needs two, one is free: it waits.
    # t=30: B attains 1 x 20 = 20 -> queue 1. Now both in queue 1, FIFO: A (t=0) first; it
    #       does not fit, B ranks below it -> B preempted (10 s left), A runs 30-50 (it
    #       would reach 100 GPU-s exactly as it ends: no event needed).
    # t=50: A ends (attained 60); B resumes, ends 60 (attained 30). Two preemptions.
    trace = [job(0, 0, 30, 2), job(1, 5, 30, 1)]
    result = run(trace, "tiresias", cluster="1x2gpu", tiresias_thresholds=(20, 100))
    assert table(result) == {0: (0, 50, 60), 1: (10, 60, 30)}
    assert result.preemptions == 2


def test_preemption_picks_the_node_needing_fewest_victims():
    # Two nodes of 2 GPUs. n0 runs two 1-GPU jobs, n1 one 2-GPU job (all long). A 2-GPU
    # short job arrives: preempting the single job on n1 is enough (SRTF ranks all three
    # below it); the two 1-GPU jobs keep running.
    trace = [job(0, 0, 100, 1), job(1, 0, 100, 1), job(2, 0, 100, 2), job(3, 1, 5, 2)]
    result = run(trace, "srtf", cluster="2x2gpu")
    assert result.preemptions == 1
    t = table(result)
    assert t[3] == (1, 6, 10) and t[0][1] == 100 and t[1][1] == 100 and t[2][1] == 105


def test_oracle_flags_and_thresholds():
    assert {"srtf", "tiresias"} <= set(policy_names())
    assert is_oracle(resolve("srtf")) and not is_oracle(resolve("tiresias"))
    assert DEFAULT_THRESHOLDS == (3200.0,)
    assert resolve("tiresias", tiresias_thresholds=(10, 20)).thresholds == (10.0, 20.0)
    assert parse_thresholds("3200,36000") == (3200.0, 36000.0)
    for bad in ("", "abc", "100,50", "0", "-5", "10,10"):
        with pytest.raises(ValidationError):
            parse_thresholds(bad)


# --- conservation and determinism -------------------------------------------------------

traces = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 120), st.integers(0, 4), st.sampled_from("abc")),
                  min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(rows=traces, name=st.sampled_from(["srtf", "tiresias"]),
       thresholds=st.sampled_from([(3200,), (20,), (10, 45), (7.5, 30, 90)]),
       quarter=st.booleans())
def test_preemptive_conservation_and_determinism(rows, name, thresholds, quarter):
    scale = 0.25 if quarter else 1.0           # fractional times too
    trace = [job(i, s * scale, d * scale, g, u) for i, (s, d, g, u) in enumerate(rows)]
    nodes = parse_cluster("2x4gpu")
    # check=True: never over-committed after any cycle; at the end every job finished
    # exactly once, in non-overlapping runs adding up to its full duration.
    first = simulate(nodes, trace, resolve(name, tiresias_thresholds=thresholds), check=True)
    assert sorted(o.id for o in first.outcomes) == list(range(len(trace)))
    for o, j in zip(first.outcomes, trace):
        assert o.start >= o.submit and o.end - o.start >= o.duration - 1e-6
        assert o.attained == pytest.approx(j.duration * j.requests.get("nvidia.com/gpu", 0))
    assert max(s.gpus_allocated for s in first.samples) <= 8
    again = simulate(nodes, list(reversed(trace)), resolve(name, tiresias_thresholds=thresholds))
    assert again.outcomes == first.outcomes and again.samples == first.samples
    assert again.preemptions == first.preemptions


# --- the CLI ----------------------------------------------------------------------------

# The AB trace above as Philly rows, on one GPU.
PHILLY = """timestamp,duration,num_gpus,gpu_time,cluster
2017-10-09 07:00:00,100,1,100,vc1
2017-10-09 07:00:05,10,1,10,vc2
"""


def test_cli_runs_both_preemptive_policies(tmp_path, capsys):
    trace = tmp_path / "philly.csv"
    trace.write_text(PHILLY)
    args = ["sim", "--trace", str(trace), "--format", "philly", "--cluster", "1x1gpu", "--policy", "srtf",
            "--policy", "tiresias", "--tiresias-thresholds", "20"]
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    srtf, tiresias = data["policies"]["srtf"], data["policies"]["tiresias"]
    assert srtf["jct_mean"] == 60.0 and srtf["preemptions"] == 1 and srtf["oracle"]   # (110 + 10) / 2
    assert tiresias["jct_mean"] == 67.5 and tiresias["preemptions"] == 1 and not tiresias["oracle"]
    assert data["tiresias_thresholds"] == [20.0]

    out = tmp_path / "r.csv"
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "srtf (oracle)" in text and "PREEMPT" in text and "tiresias" in text
    header, *rows = out.read_text().splitlines()
    assert "preemptions" in header.split(",") and len(rows) == 2

    assert main([*args[:-1], "9,3"]) == 1
    assert "tiresias thresholds" in capsys.readouterr().err
