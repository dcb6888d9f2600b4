"""The research references under the paper's rules: hand-worked traces, and a port of the
Tiresias authors' simulator's loops (SymbioticLab/Tiresias, simulator/run_sim.py) to
compare with on random traces.

Every hand-worked answer below is also what the authors' simulator gives for that trace
(run with ``--scheme=count`` on one node of that many GPUs, the thresholds set in its
``jobs.py``)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.cli.main import main
from corral.errors import ValidationError
from corral.resources import GPU, Resources
from corral.scheduler import Snapshot
from corral.scheduler.placement import best_fit, first_fit, place_gang, place_whole_nodes
from corral.sim.cluster import parse_cluster
from corral.sim.engine import SimJob, simulate
from corral.sim.policies import resolve


def job(i, submit, duration, gpus):
    return SimJob(i, submit, duration, Resources.parse({"cpu": "1", "gpu": gpus}), user="u")


def run(trace, name, cluster, *, placement="best-fit", **kw):
    return simulate(parse_cluster(cluster), trace, resolve(name, **kw), check=True, placement=placement)


def table(result):
    return {o.id: (o.start, o.end) for o in result.outcomes}


# --- Tiresias: the order within a queue -------------------------------------------------

# Two GPUs. X: 1 GPU, 50 s from 0. A: 2 GPUs, 10 s from 1 (does not fit: waits). B: 1 GPU,
# 50 s from 2 (fits: runs, fit-first). All in queue 0 (default thresholds).
ORDER = [job(0, 0, 50, 1), job(1, 1, 10, 2), job(2, 2, 50, 1)]


def test_a_waiting_job_never_preempts_a_running_job_of_its_queue():
    # t=50 X ends. Queue 0's list is [B (running), A (waiting)]: B keeps running, A waits
    # for it and runs 52-62. No preemption.
    result = run(ORDER, "tiresias", "1x2gpu")
    assert table(result) == {0: (0, 50), 1: (52, 62), 2: (2, 52)}
    assert result.preemptions == 0
    # Corral's rules order the queue by submit time: A (older) preempts B at 50, runs
    # 50-60; B resumes with 2 s left.
    result = run(ORDER, "tiresias", "1x2gpu", reference_rules="corral")
    assert table(result) == {0: (0, 50), 1: (50, 60), 2: (2, 62)}
    assert result.preemptions == 1


def test_a_demoted_job_goes_behind_the_waiting_jobs_of_its_new_queue():
    # Two GPUs, thresholds 20 and 100 GPU-s. A: 2 GPUs, 30 s at 0. B: 1 GPU, 30 s at 5.
    # t=10 A (20 GPU-s) -> queue 1; B (queue 0) runs, A is preempted (1): one GPU free.
    # t=30 B (20 GPU-s) -> the back of queue 1, behind A, which waits: A runs, B is
    # preempted (2) with 10 s left. t=50 A ends; B runs 50-60.
    result = run([job(0, 0, 30, 2), job(1, 5, 30, 1)], "tiresias", "1x2gpu", tiresias_thresholds=(20, 100))
    assert table(result) == {0: (0, 50), 1: (10, 60)}
    assert result.preemptions == 2


def test_demotion_at_the_threshold_lets_the_first_queue_preempt():
    # One GPU, threshold 20. A: 100 s at 0; B: 10 s at 5 waits behind A in queue 0 until A
    # reaches 20 GPU-s at t=20 and moves to queue 1; B runs 20-30; A resumes, ends 110.
    result = run([job(0, 0, 100, 1), job(1, 5, 10, 1)], "tiresias", "1x1gpu", tiresias_thresholds=(20,))
    assert table(result) == {0: (0, 110), 1: (20, 30)}
    assert result.preemptions == 1


# One GPU, threshold 10 GPU-s. A: 30 s at 0; 8 s jobs B..F at 5, 10, 18, 26, 34.
STREAM = [job(0, 0, 30, 1), job(1, 5, 8, 1), job(2, 10, 8, 1), job(3, 18, 8, 1), job(4, 26, 8, 1),
          job(5, 34, 8, 1)]


def test_promotion_appends_to_the_first_queue():
    # Knob 1. t=10 A -> queue 1, B runs (A preempted: 1), A due at 20 (waited = ran).
    # t=18 C runs. t=20 A promoted: the back of queue 0, behind C (running) and D: waits.
    # t=26 D runs; t=34 A (ahead of E, F) runs, 20 s left, its service restarted at 0.
    # t=44 A reaches 10 GPU-s again -> queue 1; E runs (A preempted: 2), A due at 54.
    # t=52 F runs. t=54 A promoted, behind F. t=60 A runs its last 10 s: ends 70.
    result = run(STREAM, "tiresias", "1x1gpu", tiresias_thresholds=(10,), tiresias_promote_knob=1)
    assert table(result) == {0: (0, 70), 1: (10, 18), 2: (18, 26), 3: (26, 34), 4: (44, 52), 5: (52, 60)}
    assert result.preemptions == 2
    # Without promotion A waits in queue 1 until the stream is through.
    result = run(STREAM, "tiresias", "1x1gpu", tiresias_thresholds=(10,))
    assert table(result) == {0: (0, 70), 1: (10, 18), 2: (18, 26), 3: (26, 34), 4: (34, 42), 5: (42, 50)}
    assert result.preemptions == 1


# --- gangs are preempted like any job ---------------------------------------------------

GANG = [job(0, 0, 100, 8), job(1, 1, 5, 1)]      # 8 GPUs on 2 nodes of 4; then 1 GPU


def test_srtf_preempts_a_gang():
    # t=1: the short job (5 s left) ranks first; the gang (99 s left) no longer fits.
    result = run(GANG, "srtf", "2x4gpu")
    assert table(result) == {0: (0, 105), 1: (1, 6)}
    assert result.preemptions == 1 and result.gang_placed == 1
    # Corral's rules: gangs are never preempted; the short job waits for it.
    result = run(GANG, "srtf", "2x4gpu", reference_rules="corral")
    assert table(result) == {0: (0, 100), 1: (100, 105)}
    assert result.preemptions == 0


def test_tiresias_preempts_a_gang_once_demoted():
    # Threshold 80: the gang (8 GPUs) reaches it at t=10 and the waiting 1-GPU job of
    # queue 0 runs 10-15, preempting it.
    result = run(GANG, "tiresias", "2x4gpu", tiresias_thresholds=(80, 7200))
    assert table(result) == {0: (0, 105), 1: (10, 15)}
    assert result.preemptions == 1


# --- preemptions counted as the papers count them ---------------------------------------

def test_srtf_counts_a_job_preempted_only_when_it_stops():
    # Two nodes of 2 GPUs, first fit. A: 1 GPU on n0, long. B: 1 GPU, long, also n0 (first
    # fit). C: 2 GPUs, 5 s, at 1: fits n1 as it is -- nothing running is touched.
    trace = [job(0, 0, 100, 1), job(1, 0, 90, 1), job(2, 1, 5, 2)]
    result = run(trace, "srtf", "2x2gpu", placement="first-fit")
    assert table(result) == {0: (0, 100), 1: (0, 90), 2: (1, 6)}
    assert result.preemptions == 0 and result.migrations == 0


def test_a_running_job_whose_place_is_taken_moves_instead_of_being_preempted():
    # Two nodes of 2 GPUs, first fit. At 0: P (1 GPU, 5 s) and X (1 GPU, 100 s) on n0, Y
    # (1 GPU, 100 s) on n1. t=5 P ends: one GPU free on each node. t=6 C (2 GPUs, 10 s)
    # ranks first and fits nowhere as it is: the pass gives it n0 (first fit); X, whose
    # GPU that takes, moves to n1 -- nobody is preempted.
    trace = [job(0, 0, 5, 1), job(1, 0, 100, 1), job(2, 0, 100, 1), job(3, 6, 10, 2)]
    result = run(trace, "srtf", "2x2gpu", placement="first-fit")
    assert table(result) == {0: (0, 5), 1: (0, 100), 2: (0, 100), 3: (6, 16)}
    assert result.preemptions == 0 and result.migrations >= 1
    # Best fit put X and Y on n0 (the fullest), P on n1: C gets n1 when P ends.
    result = run(trace, "srtf", "2x2gpu")
    assert table(result) == {0: (0, 5), 1: (0, 100), 2: (0, 100), 3: (6, 16)}
    assert result.preemptions == 0


# --- the papers' placement --------------------------------------------------------------

def test_first_fit_takes_the_first_node_best_fit_the_fullest():
    nodes = parse_cluster("2x4gpu")
    snap = Snapshot(nodes, {})
    snap.assume(first_fit(snap, Resources({GPU: 3})))           # n0000: 1 GPU left
    one = Resources({GPU: 1})
    assert first_fit(snap, one).node == "n0000" and best_fit(snap, one).node == "n0000"
    snap.assume(first_fit(snap, one))                           # n0000 full
    two = Resources({GPU: 2})
    snap.assume(first_fit(snap, two))                           # n0001: 2 left
    snap2 = Snapshot(nodes, {})
    snap2.assume(place_on_node(snap2, "n0001", 3))              # n0001: 1 left, n0000 free
    assert first_fit(snap2, one).node == "n0000"
    assert best_fit(snap2, one).node == "n0001"


def place_on_node(snap, name, gpus):
    from corral.scheduler.placement import place_on

    return place_on(snap.nodes[name], Resources({GPU: gpus}))


def test_whole_free_nodes_plus_one_for_the_rest():
    nodes = parse_cluster("3x4gpu")
    snap = Snapshot(nodes, {})
    snap.assume(place_on_node(snap, "n0000", 1))                # n0000: 3 free, not whole
    six = Resources({GPU: 6})
    papers = place_whole_nodes(snap, six)
    assert [(p.node, len(p.gpus)) for p in papers.pieces] == [("n0001", 4), ("n0000", 2)]
    corral = place_gang(snap, six)
    assert [(p.node, len(p.gpus)) for p in corral.pieces] == [("n0001", 4), ("n0002", 2)]
    snap.assume(place_on_node(snap, "n0001", 3))                # one whole free node left
    assert place_whole_nodes(snap, Resources({GPU: 8})) is None
    assert place_whole_nodes(snap, Resources({GPU: 5})) is not None     # n0002 + 1 on n0000


# --- a port of the authors' simulator's loops (count placement) -------------------------

def authors(rows, gpus, name, thresholds, knob):
    """``dlas_sim_jobs`` (Tiresias) and ``shortest_first_sim_jobs`` (SRTF) of the authors'
    simulator with ``--scheme=count``, in floats, demotions at the exact crossing, each
    job's (start, end) and the preemptions."""
    jobs = [dict(id=i, submit=float(s), duration=float(d), gpus=g, total=0.0, executed=0.0, pending=0.0,
                 q=0, running=False, start=None, end=None) for i, (s, d, g) in enumerate(rows)]
    arrivals = sorted(jobs, key=lambda j: (j["submit"], j["id"]))
    queues = [[] for _ in range(len(thresholds) + 1)]
    runnable: list[dict] = []
    preemptions, now, nxt = 0, 0.0, 0
    eps = 1e-9
    while nxt < len(arrivals) or runnable:
        times = [arrivals[nxt]["submit"]] if nxt < len(arrivals) else []
        for j in runnable:
            if j["running"]:
                times.append(now + j["duration"] - j["total"])
                if name == "tiresias" and j["q"] < len(thresholds):
                    times.append(now + (thresholds[j["q"]] - j["executed"] * j["gpus"]) / j["gpus"])
            elif knob and j["q"] > 0 and j["executed"] > 0:
                times.append(now + j["executed"] * knob - j["pending"])
        t = min(times)
        dt, now = t - now, t
        for j in runnable:
            if j["running"]:
                j["total"] += dt
                j["executed"] += dt
            elif j["executed"] > 0:
                j["pending"] += dt
        for j in [j for j in runnable if j["running"] and j["total"] >= j["duration"] - eps]:
            j["end"] = now
            runnable.remove(j)
            if name == "tiresias":
                queues[j["q"]].remove(j)
        while nxt < len(arrivals) and arrivals[nxt]["submit"] <= now:
            j = arrivals[nxt]
            nxt += 1
            runnable.append(j)
            if name == "tiresias":
                queues[0].append(j)
        if name == "tiresias":
            for j in runnable:
                if j["running"]:
                    if j["q"] < len(thresholds) and j["executed"] * j["gpus"] >= thresholds[j["q"]] - eps:
                        queues[j["q"]].remove(j)
                        j["q"] += 1
                        queues[j["q"]].append(j)
                elif knob and j["q"] > 0 and j["executed"] > 0 and j["pending"] >= j["executed"] * knob - eps:
                    j["executed"] = j["pending"] = 0.0
                    queues[j["q"]].remove(j)
                    j["q"] = 0
                    queues[0].append(j)
            order = [j for q in queues for j in q]
        else:
            runnable.sort(key=lambda j: j["duration"] - j["total"])       # stable, as theirs
            order = runnable
        free = gpus
        for j in order:
            if free >= j["gpus"]:
                free -= j["gpus"]
                if not j["running"]:
                    j["running"] = True
                    if j["start"] is None:
                        j["start"] = now
            elif j["running"]:
                j["running"] = False
                preemptions += 1
        if name == "tiresias":
            for q in queues:
                q[:] = [j for j in q if j["running"]] + [j for j in q if not j["running"]]
    return {j["id"]: (j["start"], j["end"]) for j in jobs}, preemptions


rows = st.lists(st.tuples(st.integers(0, 100), st.integers(1, 80), st.sampled_from([1, 1, 1, 2, 2, 4, 8])),
                min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(rows=rows, name=st.sampled_from(["srtf", "tiresias"]),
       thresholds=st.sampled_from([(3250, 7200), (20,), (16, 64), (8, 40, 120)]),
       knob=st.sampled_from([None, 1, 2, 4]), gpus=st.sampled_from([4, 8]))
def test_one_node_decides_as_the_authors_simulator(rows, name, thresholds, knob, gpus):
    trace = [job(i, s, d, min(g, gpus)) for i, (s, d, g) in enumerate(rows)]
    got = simulate(parse_cluster(f"1x{gpus}gpu"), trace,
                   resolve(name, tiresias_thresholds=thresholds, tiresias_promote_knob=knob), check=True)
    want, preemptions = authors([(s, d, min(g, gpus)) for s, d, g in rows], gpus, name, thresholds, knob)
    flat = {(o.id, k): v for o in got.outcomes for k, v in enumerate((o.start, o.end))}
    assert flat == pytest.approx({(i, k): v for i, pair in want.items() for k, v in enumerate(pair)})
    assert got.preemptions == preemptions


# --- the CLI ----------------------------------------------------------------------------

PHILLY = """timestamp,duration,num_gpus,gpu_time,cluster
2017-10-09 07:00:00,100,8,800,vc1
2017-10-09 07:00:01,5,1,5,vc2
"""


def test_cli_placement_and_rules(tmp_path, capsys):
    trace = tmp_path / "philly.csv"
    trace.write_text(PHILLY)
    args = ["sim", "--trace", str(trace), "--format", "philly", "--cluster", "2x4gpu", "--policy", "srtf", "--json"]
    assert main([*args, "--placement", "first-fit"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["placement"] == "first-fit" and data["reference_rules"] == "paper"
    assert data["policies"]["srtf"]["preemptions"] == 1 and data["gang_jobs"] == 1
    assert main([*args, "--reference-rules", "corral"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["policies"]["srtf"]["preemptions"] == 0 and data["placement"] == "best-fit"
    assert main([*args, "--placement", "worst-fit"]) == 1
    assert "--placement" in capsys.readouterr().err
    assert main([*args, "--reference-rules", "mine"]) == 1
    assert "--reference-rules" in capsys.readouterr().err
    fifo = [a if a != "srtf" else "best-effort-fifo" for a in args]
    assert main([*fifo, "--placement", "first-fit"]) == 1       # not silently ignored
    err = capsys.readouterr().err
    assert "--placement" in err and "first-fit" in err and "srtf or tiresias" in err and "Traceback" not in err
    with pytest.raises(ValidationError):
        resolve("srtf", reference_rules="mine")
