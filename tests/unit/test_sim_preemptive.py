"""The preemptive policies (SRTF with oracle run times, Tiresias' discretized 2D-LAS) and
the engine's preemption support. Every expected answer is worked out by hand below."""

from __future__ import annotations

import heapq
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.cli.main import main
from corral.errors import ValidationError
from corral.resources import GPU, Resources
from corral.scheduler import Snapshot
from corral.scheduler.placement import needs_gang as is_gang
from corral.scheduler.placement import node_score, place_gang, place_on
from corral.sim.checks import feasible
from corral.sim.cluster import parse_cluster
from corral.sim.engine import SimJob, SimResult, simulate
from corral.sim.metrics import JobOutcome, Sample
from corral.sim.policies import (
    DEFAULT_THRESHOLDS,
    RESEARCH_POLICIES as PREEMPTIVE_POLICIES,
    is_oracle,
    parse_thresholds,
    policy_names,
    resolve,
)
from corral.sim.research.base import JobState
from corral.sim.research.tiresias import Tiresias, parse_promote_knob


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
    # Corral's rules. Two nodes of 2 GPUs. n0 runs two 1-GPU jobs, n1 one 2-GPU job (all long). A 2-GPU
    # short job arrives: preempting the single job on n1 is enough (SRTF ranks all three
    # below it); the two 1-GPU jobs keep running.
    trace = [job(0, 0, 100, 1), job(1, 0, 100, 1), job(2, 0, 100, 2), job(3, 1, 5, 2)]
    result = run(trace, "srtf", cluster="2x2gpu", reference_rules="corral")
    assert result.preemptions == 1
    t = table(result)
    assert t[3] == (1, 6, 10) and t[0][1] == 100 and t[1][1] == 100 and t[2][1] == 105


def test_oracle_flags_and_thresholds():
    assert {"srtf", "tiresias"} <= set(policy_names())
    assert is_oracle(resolve("srtf")) and not is_oracle(resolve("tiresias"))
    assert DEFAULT_THRESHOLDS == (3250.0, 7200.0)          # the authors' simulator's three queues
    assert resolve("tiresias", tiresias_thresholds=(10, 20)).thresholds == (10.0, 20.0)
    assert parse_thresholds("3200,36000") == (3200.0, 36000.0)
    for bad in ("", "abc", "100,50", "0", "-5", "10,10"):
        with pytest.raises(ValidationError):
            parse_thresholds(bad)


# --- Tiresias' starvation promotion (PROMOTEKNOB) ---------------------------------------

def tiresias(thresholds, knob, rules="paper"):
    return PREEMPTIVE_POLICIES["tiresias"](thresholds=thresholds, promote_knob=knob, rules=rules)


def run_tiresias(trace, thresholds, knob, cluster="1x1gpu", rules="paper"):
    return simulate(parse_cluster(cluster), trace, tiresias(thresholds, knob, rules), check=True)


# One GPU, threshold 10 GPU-s. A: 30 s from t=0; then a stream of 8 s jobs (each stays in
# queue 0: it ends with 8 < 10 GPU-s) B..F arriving at 5, 10, 18, 26, 34.
STREAM = [job(0, 0, 30, 1), job(1, 5, 8, 1), job(2, 10, 8, 1), job(3, 18, 8, 1), job(4, 26, 8, 1),
          job(5, 34, 8, 1)]


def test_tiresias_without_the_knob_starves_the_demoted_job():
    # t=10 A reaches 10 GPU-s -> queue 1; B (queue 0) preempts it. Then each short job runs
    # as soon as the one before ends, all of them ahead of A: B 10-18, C 18-26, D 26-34,
    # E 34-42, F 42-50. A waits 40 s and resumes at 50 with 20 s left -> ends 70.
    result = run_tiresias(STREAM, (10,), None)
    assert table(result) == {0: (0, 70, 30), 1: (10, 18, 8), 2: (18, 26, 8), 3: (26, 34, 8), 4: (34, 42, 8),
                             5: (42, 50, 8)}
    assert result.preemptions == 1
    # Knob 0 is off too, and a knob so large the rule never fires changes nothing.
    for knob in (0, 10):
        again = run_tiresias(STREAM, (10,), knob)
        assert again.outcomes == result.outcomes and again.preemptions == 1


def test_tiresias_promotes_a_job_that_waited_knob_times_its_run_time_corral_order():
    # Corral's rules (queues by submit time). PROMOTEKNOB 1: a job in a lower queue that has waited as long as it has run (both
    # counted since its last promotion) goes back to queue 0, its queueing service reset.
    # t=10 A (ran 10 s) -> queue 1, B preempts it (1). A is due at 10 + 1 x 10 = 20.
    # t=18 B ends, C starts (queue 0, ahead of A).
    # t=20 A promoted: queue 0, FIFO first (submitted at 0): preempts C (2; ran 2 s, 6 left).
    #      A's service restarts at 0 -> next demotion at 10 GPU-s, t=30.
    # t=26 E arrives, waits. t=30 A demoted again (ran 10 s since its promotion); C (queue
    #      0, ahead of D, E) preempts it (3) and runs 30-36. A is due at 30 + 10 = 40.
    # t=36 C ends, D starts. t=40 A promoted, preempts D (4; ran 4 s, 4 left) and runs its
    #      last 10 s (it reaches 10 GPU-s again exactly as it ends): ends 50.
    # t=50 D resumes -> 54; E 54-62; F 62-70.
    result = run_tiresias(STREAM, (10,), 1, rules="corral")
    assert table(result) == {0: (0, 50, 30), 1: (10, 18, 8), 2: (18, 36, 8), 3: (36, 54, 8), 4: (54, 62, 8),
                             5: (62, 70, 8)}
    assert result.preemptions == 4


def test_tiresias_promotion_counts_every_wait_since_the_last_promotion():
    # Corral's rules (a promoted job takes its place in queue 0 by submit time). One GPU, threshold 10 GPU-s, knob 1. A: 60 s from 0; B 4 s at 5; C 9 s at 20; D 9 s
    # at 25 (C and D stay in queue 0).
    # t=10 A -> queue 1, B preempts it (1): A ran 10, due at 20. t=14 B ends, A resumes
    #      (waited 4 -- kept: resuming does not reset it).
    # t=20 C preempts A (2): A ran 16, waited 4 -> due when it has waited 12 more, t=32
    #      (not at 20 + 6 = 26: the rule compares the waits and runs since the last
    #      promotion, not the last wait with the last run).
    # t=29 C ends, D starts. t=32 A promoted, preempts D (3; 6 s left), runs with 44 s left.
    # t=42 A demoted (10 GPU-s since its promotion), D preempts it (4), runs 42-48.
    # t=48 A resumes, 34 s left -> ends 82.
    trace = [job(0, 0, 60, 1), job(1, 5, 4, 1), job(2, 20, 9, 1), job(3, 25, 9, 1)]
    result = run_tiresias(trace, (10,), 1, rules="corral")
    assert table(result) == {0: (0, 82, 60), 1: (10, 14, 4), 2: (20, 29, 9), 3: (29, 48, 9)}
    assert result.preemptions == 4
    # Without the knob D runs 29-38 undisturbed and A resumes at 38: same end, 2 preemptions.
    result = run_tiresias(trace, (10,), None, rules="corral")
    assert table(result) == {0: (0, 82, 60), 1: (10, 14, 4), 2: (20, 29, 9), 3: (29, 38, 9)}
    assert result.preemptions == 2


def test_promote_knob_values():
    assert resolve("tiresias").promote_knob is None
    assert tiresias((10,), 2).promote_knob == 2.0 and tiresias((10,), 0).promote_knob is None
    assert Tiresias((10,), promote_knob=0.5).promote_knob == 0.5
    assert parse_promote_knob("4") == 4.0 and parse_promote_knob(" 2.5 ") == 2.5 and parse_promote_knob("0") is None
    for bad in (-1, float("nan"), float("inf"), True, "3"):
        with pytest.raises(ValidationError, match="tiresias promote knob"):
            Tiresias((10,), promote_knob=bad)
    for text in ("", "abc", "-1", "nan", "inf"):
        with pytest.raises(ValidationError) as err:
            parse_promote_knob(text)
        message = str(err.value)
        assert "--tiresias-promote-knob" in message and f'"{text}"' in message and "positive" in message
        assert "\n" not in message


# --- conservation and determinism -------------------------------------------------------

traces = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 120), st.integers(0, 4), st.sampled_from("abc")),
                  min_size=1, max_size=30)


def preemptive(name, thresholds, knob, rules="paper"):
    return PREEMPTIVE_POLICIES[name](thresholds=thresholds, promote_knob=knob, rules=rules)


@settings(max_examples=80, deadline=None)
@given(rows=traces, name=st.sampled_from(["srtf", "tiresias"]),
       thresholds=st.sampled_from([(3200,), (20,), (10, 45), (7.5, 30, 90)]),
       knob=st.sampled_from([None, 0.5, 1, 3]), quarter=st.booleans(), rules=st.sampled_from(["paper", "corral"]),
       placement=st.sampled_from(["best-fit", "first-fit"]))
def test_preemptive_conservation_and_determinism(rows, name, thresholds, knob, quarter, rules, placement):
    scale = 0.25 if quarter else 1.0           # fractional times too
    trace = [job(i, s * scale, d * scale, g, u) for i, (s, d, g, u) in enumerate(rows)]
    nodes = parse_cluster("2x4gpu")
    # check=True: never over-committed after any cycle, the engine's kept waiting order is
    # the policy's current one; at the end every job finished exactly once, in
    # non-overlapping runs adding up to its full duration.
    first = simulate(nodes, trace, preemptive(name, thresholds, knob, rules), check=True, placement=placement)
    assert sorted(o.id for o in first.outcomes) == list(range(len(trace)))
    for o, j in zip(first.outcomes, trace):
        assert o.start >= o.submit and o.end - o.start >= o.duration - 1e-6
        assert o.attained == pytest.approx(j.duration * j.requests.get("nvidia.com/gpu", 0))
    assert max(s.gpus_allocated for s in first.samples) <= 8
    again = simulate(nodes, list(reversed(trace)), preemptive(name, thresholds, knob, rules), placement=placement)
    assert again.outcomes == first.outcomes and again.samples == first.samples
    assert again.preemptions == first.preemptions


# --- the engine against the straightforward loop ----------------------------------------

def reference(nodes, jobs, policy) -> SimResult:
    """Corral's rules: the preemptive loop at its simplest (as it was before the engine kept its waiting
    jobs sorted): at every event every active job is sorted by the policy's key and
    visited in that order; best fit over all nodes; victims searched on every node."""
    result = SimResult(policy=policy.name)
    by_id = feasible(nodes, jobs, result.infeasible)
    snapshot = Snapshot(nodes, {})
    largest = snapshot.largest_gpus
    gangs = {i for i, j in by_id.items() if is_gang(j.requests, largest)}
    total = sum(n.allocatable.get(GPU, 0) for n in nodes)
    events = [(float(j.submit), 2, i, 0) for i, j in by_id.items()]
    heapq.heapify(events)
    active: dict[int, JobState] = {}
    running: dict = {}
    gen: dict[int, int] = {}
    allocated = 0

    def schedule_promotion(state, now):
        due = policy.next_promotion(state, now)
        if due is not None:
            heapq.heappush(events, (max(due, now), 1, state.id, gen[state.id]))

    def stop(state, now):
        nonlocal allocated
        alloc = running.pop(state.id)
        snapshot.forget(alloc)
        allocated -= alloc.gpu_count
        state.pause(now)
        gen[state.id] += 1

    def start(state, alloc, now):
        nonlocal allocated
        snapshot.assume(alloc)
        allocated += alloc.gpu_count
        running[state.id] = alloc
        state.resume(now)
        gen[state.id] += 1
        heapq.heappush(events, (now + state.remaining, 0, state.id, gen[state.id]))
        change = policy.next_change(state, now)
        if change is not None and change < now + state.remaining:
            heapq.heappush(events, (max(change, now), 1, state.id, gen[state.id]))

    def best_fit(requests):
        candidates = sorted((node_score(s, requests), i) for i, s in enumerate(snapshot.ordered) if s.fits(requests))
        for _, i in candidates:
            alloc = place_on(snapshot.ordered[i], requests)
            if alloc is not None:
                return alloc
        return None

    def victims_for(requests, my_rank, rank):
        on_node: dict = {}
        for i, alloc in running.items():
            if alloc.single and rank[i] > my_rank:
                on_node.setdefault(alloc.node, []).append((rank[i], i, alloc))
        best = None
        for name in sorted(on_node):
            state = snapshot.nodes[name]
            if not requests.fits_in(state.allocatable):
                continue
            s, chosen = state.copy(), []
            for _, i, alloc in sorted(on_node[name], reverse=True):
                s.forget(alloc.pieces[0])
                chosen.append(i)
                if place_on(s, requests) is not None:
                    if best is None or len(chosen) < len(best):
                        best = list(chosen)
                    break
        return best

    def cycle(now):
        failed: set = set()
        for state in sorted((s for s in active.values() if s.id in gangs and not s.running),
                            key=lambda s: (s.submit, s.id)):
            requests = by_id[state.id].requests
            alloc = None if requests in failed else place_gang(snapshot, requests)
            if alloc is None:
                failed.add(requests)
            else:
                start(state, alloc, now)
                result.placements += 1
                result.gang_placed += 1
        order = sorted(active.values(), key=lambda s: policy.key(s, now))
        rank = {s.id: r for r, s in enumerate(order)}
        for state in order:
            if state.running or state.id in gangs:
                continue
            requests = by_id[state.id].requests
            alloc = best_fit(requests)
            if alloc is None:
                victims = victims_for(requests, rank[state.id], rank)
                if victims is None:
                    continue
                for v in victims:
                    stop(active[v], now)
                    schedule_promotion(active[v], now)
                    active[v].preemptions += 1
                    result.preemptions += 1
                alloc = best_fit(requests)
            start(state, alloc, now)
            result.placements += 1

    while events:
        now = events[0][0]
        changed = False
        while events and events[0][0] == now:
            _, kind, i, g = heapq.heappop(events)
            if kind == 2:
                j = by_id[i]
                gen[i] = 0
                active[i] = JobState(id=i, submit=float(j.submit), duration=float(j.duration),
                                     gpus=j.requests.get(GPU, 0), remaining=float(j.duration),
                                     waiting_since=float(j.submit))
                schedule_promotion(active[i], now)
                changed = True
            elif g != gen[i]:
                continue
            elif kind == 0:
                state = active.pop(i)
                stop(state, now)
                result.outcomes.append(JobOutcome(
                    id=i, user=by_id[i].user, submit=state.submit, start=state.first_start, end=now,
                    duration=state.duration, gpus=state.gpus, attained=state.attained))
                changed = True
            elif active[i].running:
                state = active[i]
                change = policy.next_change(state, now)
                if change is not None and change < state.since + state.remaining:
                    heapq.heappush(events, (max(change, now), 1, i, g))
                changed = True
            else:
                changed = policy.promote(active[i], now) or changed
                schedule_promotion(active[i], now)
        if not changed:
            continue
        if len(active) > len(running):
            cycle(now)
            result.cycles += 1
        result.samples.append(Sample(t=now, gpus_allocated=allocated, gpus_total=total,
                                     queue_length=len(active) - len(running), running=len(running)))
    result.outcomes.sort(key=lambda o: o.id)
    return result


# Busier traces than above: more jobs than the cluster holds, several shapes on the same
# node (whole and fractional CPUs), gang jobs (more GPUs than a node), zero-GPU jobs.
busy = st.lists(st.tuples(st.integers(0, 200), st.integers(1, 150),
                          st.sampled_from([0, 1, 1, 1, 2, 2, 3, 4, 6, 8, 12]), st.sampled_from(["1", "2", "0.5"])),
                min_size=15, max_size=40)


@settings(max_examples=40, deadline=None)
@given(rows=busy, name=st.sampled_from(["srtf", "tiresias"]),
       thresholds=st.sampled_from([(20,), (10, 45), (7.5, 30, 90)]), knob=st.sampled_from([None, 0.5, 1, 3]),
       cluster=st.sampled_from(["3x4gpu", "2x8gpu", "1x8gpu"]))
def test_engine_decides_exactly_as_the_straightforward_loop(rows, name, thresholds, knob, cluster):
    trace = [SimJob(i, s, d, Resources.parse({"cpu": cpu, "gpu": g}), user="u")
             for i, (s, d, g, cpu) in enumerate(rows)]
    nodes = parse_cluster(cluster)
    got = simulate(nodes, trace, preemptive(name, thresholds, knob, "corral"), check=True)
    want = reference(nodes, trace, preemptive(name, thresholds, knob, "corral"))
    assert got.outcomes == want.outcomes
    assert got.samples == want.samples
    assert (got.preemptions, got.placements, got.cycles, got.gang_placed) == \
        (want.preemptions, want.placements, want.cycles, want.gang_placed)
    assert got.infeasible == want.infeasible


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
