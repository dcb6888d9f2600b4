"""EASY backfill and DRF fair share in the simulator, through the daemon's driver and its
one scheduling cycle. Every expected answer is worked out by hand below."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.errors import ValidationError
from corral.resources import Resources
from corral.sim.cluster import parse_cluster
from corral.sim.engine import SimJob, simulate
from corral.sim.policies import PreemptivePolicy, is_oracle, policy_names, resolve

HOUR = 3600.0


def job(i, submit, duration, gpus, user="u", time_limit=None):
    return SimJob(i, submit, duration, Resources.parse({"cpu": "1", "gpu": gpus}), user=user,
                  time_limit=time_limit)


def run(trace, name, cluster="1x4gpu", **kw):
    return simulate(parse_cluster(cluster), trace, resolve(name, **kw), check=True)


def jct(result):
    return {o.id: o.end - o.submit for o in result.outcomes}


def starts(result):
    return {o.id: o.start for o in result.outcomes}


# --- EASY backfill ----------------------------------------------------------------------

# One node of 4 GPUs.
#   A t=0: 2 GPUs, 10 s -> runs 0-10 under every policy.
#   B t=1: 4 GPUs, 10 s -> cannot start while A runs: the head. Its reservation: the node
#          frees at A's expected end, 0 + 10 = 10 (the shadow time), nothing extra then.
#   C t=2: 1 GPU, 20 s  -> would end at 22 > 10: starting it would delay B. EASY holds it.
#   D t=3: 1 GPU, 5 s   -> ends at 8 <= 10: cannot delay B. EASY starts it at once.
TRACE = [job(0, 0, 10, 2), job(1, 1, 10, 4), job(2, 2, 20, 1), job(3, 3, 5, 1)]


def test_easy_lets_a_short_job_jump_ahead_only_when_it_cannot_delay_the_head():
    easy = run(TRACE, "easy-backfill")
    # B starts at 10 (when A ends), C after B (20-40); D backfilled 3-8.
    assert starts(easy) == {0: 0, 1: 10, 2: 20, 3: 3}
    assert jct(easy) == {0: 10, 1: 19, 2: 38, 3: 5}
    # Strict FIFO: nobody jumps; D waits behind B and C and starts with C at 20.
    assert jct(run(TRACE, "strict-fifo")) == {0: 10, 1: 19, 2: 38, 3: 22}
    # Best-effort FIFO: C and D both jump; C holds a GPU until 22 and delays B to 22-32.
    assert jct(run(TRACE, "best-effort-fifo")) == {0: 10, 1: 31, 2: 20, 3: 5}


def test_easy_backfills_into_what_the_head_leaves_free():
    # A t=0 2 GPUs 10 s; B t=1 3 GPUs 10 s (head: shadow 10, and at 10 one GPU is left
    # beyond B's three: the extra). C t=2 1 GPU 100 s ends long after 10, but fits the
    # extra: it starts at 2. D t=3 1 GPU 100 s: the free GPU now is not in the extra any
    # more (C took it) -- held. At 10 A ends: B starts on 3 of the 3 free GPUs; D waits
    # until B ends at 20.
    trace = [job(0, 0, 10, 2), job(1, 1, 10, 3), job(2, 2, 100, 1), job(3, 3, 100, 1)]
    assert starts(run(trace, "easy-backfill")) == {0: 0, 1: 10, 2: 2, 3: 20}
    # Best-effort: D takes the last GPU at 3; when A ends at 10 only two are free, and B
    # (3 GPUs) waits until C ends at 102 (D still holds one).
    assert starts(run(trace, "best-effort-fifo")) == {0: 0, 1: 102, 2: 2, 3: 3}


def test_easy_only_sees_the_future_through_estimates():
    # Requested times (as SWF has them): D asks for 12 s, so by its estimate it would end
    # at 3 + 12 = 15 > 10 and is held, although it really ends at 8. It starts with C at
    # 20 (B runs 10-20 on all four GPUs). All jobs have requested times: not an oracle.
    trace = [job(0, 0, 10, 2, time_limit=10), job(1, 1, 10, 4, time_limit=10),
             job(2, 2, 20, 1, time_limit=20), job(3, 3, 5, 1, time_limit=12)]
    result = run(trace, "easy-backfill")
    assert jct(result) == {0: 10, 1: 19, 2: 38, 3: 22}
    assert not is_oracle(resolve("easy-backfill"), trace)
    assert is_oracle(resolve("easy-backfill"), TRACE)           # estimates from real durations
    assert not is_oracle(resolve("fair-share"), TRACE) and not is_oracle(resolve("best-effort-fifo"))
    assert is_oracle(resolve("sjf"))


def test_estimate_factor_scales_the_estimates():
    # k = 2: A's estimate 20 (shadow 20); D's 10 -> ends by 13 <= 20: still backfilled;
    # C's 40 -> 42 > 20: held. Same decisions as exact estimates.
    assert jct(run(TRACE, "easy-backfill", estimate_factor=2.0)) == {0: 10, 1: 19, 2: 38, 3: 5}
    # k = 0.5 (underestimates): A's estimate 5, so the shadow is 5; D by its estimate
    # (2.5 s) ends at 5.5 > 5: held, and then waits behind B until 20.
    assert jct(run(TRACE, "easy-backfill", estimate_factor=0.5)) == {0: 10, 1: 19, 2: 38, 3: 22}
    with pytest.raises(ValidationError):
        resolve("easy-backfill", estimate_factor=0)


# --- DRF fair share ----------------------------------------------------------------------

# Users A and B each submit four equal jobs (10 s, 1 GPU) at t=0; A's are older (ids 0-3).
EQUAL = [job(i, 0, 10, 1, "A") for i in range(4)] + [job(4 + i, 0, 10, 1, "B") for i in range(4)]


def order(result):
    return [o.id for o in sorted(result.outcomes, key=lambda o: (o.start, o.id))]


def test_fair_share_alternates_between_two_users_with_equal_jobs():
    # One GPU. t=0: both shares 0, A's job is older: A0. At 10 A0 ends; A's decayed usage
    # is now positive and B's 0: B4. At 20 both used the GPU for 10 s, A's longer ago, so
    # A's usage has decayed more: A1. And so on: A, B, A, B ...
    fair = run(EQUAL, "fair-share", cluster="1x1gpu", half_life=HOUR)
    assert order(fair) == [0, 4, 1, 5, 2, 6, 3, 7]
    assert starts(fair) == {0: 0, 4: 10, 1: 20, 5: 30, 2: 40, 6: 50, 3: 60, 7: 70}
    # FIFO runs A's four jobs first.
    assert order(run(EQUAL, "best-effort-fifo", cluster="1x1gpu")) == list(range(8))


def test_fair_share_splits_the_gpus_within_one_cycle():
    # Two GPUs. t=0: A0 placed, A's share is now 1/2 (one of two GPUs), B's 0: B4 gets
    # the other GPU (progressive filling). Every 10 s each user gets one GPU again.
    fair = run(EQUAL, "fair-share", cluster="1x2gpu", half_life=HOUR)
    assert starts(fair) == {0: 0, 4: 0, 1: 10, 5: 10, 2: 20, 6: 20, 3: 30, 7: 30}
    assert starts(run(EQUAL, "best-effort-fifo", cluster="1x2gpu")) == \
        {0: 0, 1: 0, 2: 10, 3: 10, 4: 20, 5: 20, 6: 30, 7: 30}


def test_fair_share_history_decays_with_the_half_life():
    # A used the GPU 0-100. At t=1000 A and B each submit a job (A's first, so FIFO would
    # run it first). With a 7-day half-life A's past still counts: B goes first. With a
    # 10 s half-life 900 s later it has decayed to nothing (2^-90): A goes first.
    trace = [job(0, 0, 100, 1, "A"), job(1, 1000, 10, 1, "A"), job(2, 1000, 10, 1, "B")]
    assert starts(run(trace, "fair-share", cluster="1x1gpu"))[2] == 1000            # default 7 d
    assert starts(run(trace, "fair-share", cluster="1x1gpu", half_life=10))[1] == 1000
    with pytest.raises(ValidationError):
        resolve("fair-share", half_life=-1)


# --- the engine's guarantees, for every policy ---------------------------------------------

traces = st.lists(st.tuples(st.integers(0, 60), st.integers(1, 30), st.integers(0, 4), st.sampled_from("abc"),
                            st.sampled_from([None, 5, 40])),
                  min_size=1, max_size=35)


@settings(max_examples=40, deadline=None)
@given(rows=traces, name=st.sampled_from(sorted(policy_names())), k=st.sampled_from([0.5, 1.0, 3.0]))
def test_conservation_and_determinism_for_every_policy(rows, name, k):
    trace = [job(i, s, d, g, u, time_limit=tl) for i, (s, d, g, u, tl) in enumerate(rows)]
    nodes = parse_cluster("2x4gpu")
    policy = resolve(name, estimate_factor=k, half_life=20.0)
    first = simulate(nodes, trace, policy, check=True)        # check: never over-committed
    assert sorted(o.id for o in first.outcomes) == list(range(len(trace)))   # each ends exactly once
    for o in first.outcomes:
        if isinstance(policy, PreemptivePolicy):     # check=True also verified its work is done in full
            assert o.start >= o.submit and o.end - o.start >= o.duration - 1e-6
        else:
            assert o.start >= o.submit and o.end - o.start == o.duration
    assert max(s.gpus_allocated for s in first.samples) <= 8
    again = simulate(nodes, list(reversed(trace)), resolve(name, estimate_factor=k, half_life=20.0))
    assert again.outcomes == first.outcomes and again.samples == first.samples


@settings(max_examples=40, deadline=None)
@given(rows=traces)
def test_priority_is_best_effort_fifo_under_another_name(rows):
    # ``priority`` (what queue configs use) orders like ``best-effort-fifo``: the same
    # pipeline starts every job at the same time.
    trace = [job(i, s, d, g, u) for i, (s, d, g, u, _) in enumerate(rows)]
    nodes = parse_cluster("2x4gpu")
    assert starts(simulate(nodes, trace, resolve("best-effort-fifo"))) == \
        starts(simulate(nodes, trace, resolve("priority"), check=True))


def test_running_jobs_carry_the_estimate_not_the_real_end(monkeypatch):
    # The scheduler is shown RunningJobs whose expected_end is start + estimate.
    from corral.daemon import driver

    seen = []
    real = driver.schedule

    def spy(state, pending, ctx):
        seen.extend((ctx.now, r.id, r.started_at, r.expected_end) for r in state.running.values())
        return real(state, pending, ctx)

    monkeypatch.setattr(driver, "schedule", spy)
    run(TRACE, "easy-backfill", estimate_factor=3.0)
    # At t=1 the scheduler sees A (started 0, real end 10) expected to end at 0 + 30. The
    # driver numbers jobs in submission order from 1, as the daemon's store does: A is 1.
    assert (1.0, 1, 0.0, 30.0) in seen
    run([job(0, 0, 10, 2, time_limit=50), job(1, 1, 10, 4)], "fair-share")
    assert (1.0, 1, 0.0, 50.0) in seen                       # fair share: the requested time only


def test_unknown_policy_lists_them_all():
    with pytest.raises(ValidationError, match="fair-share, sjf-aging, las, sjf-history, easy-backfill, srtf, tiresias"):
        resolve("magic")
