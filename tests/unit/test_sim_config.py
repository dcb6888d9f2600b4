"""``corral sim --config``: the daemon's own config file (queues, quotas, fair share,
backfill, preemption) replayed through the daemon's multi-tenant cycle, and the
reproducible samples ``--window/--seed`` draw. Expected answers are worked out by hand."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.cli.main import main
from corral.config import parse_config
from corral.errors import ValidationError
from corral.resources import Resources
from corral.sim.cluster import parse_cluster
from corral.sim.engine import SimJob, simulate
from corral.sim.policies import SimPolicy, from_config, load_config_policy as load
from corral.sim.trace import Trace, TraceJob, sample

QUOTAS = {"queues": [{"name": "a", "nominal": {"nvidia.com/gpu": 2}},
                     {"name": "b", "nominal": {"nvidia.com/gpu": 2}}]}


def job(i, submit, duration, gpus, user):
    return SimJob(i, submit, duration, Resources.parse({"cpu": "1", "gpu": gpus}), user=user)


def spans(result):
    return {o.id: (o.start, o.end) for o in result.outcomes}


# One node of 4 GPUs; queues a and b with a nominal quota of 2 GPUs each (borrowing
# unlimited: a may use b's idle quota).
#   j0 (a) t=0, 2 GPUs, 100 s: a's nominal -> runs 0-100.
#   j1 (a) t=1, 2 GPUs, 100 s: borrows b's idle 2 GPUs -> starts at 1.
#   j2 (b) t=10, 2 GPUs, 50 s: b's nominal is lent out and the node is full.
#     without preemption it waits for the first end: j0 at 100 -> runs 100-150.
#     with preemption b reclaims its quota from the borrower: a's most recently started
#     job, j1, is stopped at 10 and requeued with its work lost; j2 runs 10-60; j1 runs
#     again from 60 (j2's end frees 2 GPUs) to 160. One preemption.
TRACE = [job(0, 0, 100, 2, "a"), job(1, 1, 100, 2, "a"), job(2, 10, 50, 2, "b")]


def test_queues_without_preemption_wait_for_the_borrower():
    policy = from_config(parse_config(QUOTAS))
    assert isinstance(policy, SimPolicy) and not policy.scheduling.preemption
    r = simulate(parse_cluster("1x4gpu"), TRACE, policy, check=True)
    assert spans(r) == {0: (0, 100), 1: (1, 101), 2: (100, 150)}
    assert r.preemptions == 0


def test_quota_reclaim_preempts_the_borrower_and_requeues_it():
    policy = from_config(parse_config({**QUOTAS, "preemption": True}))
    r = simulate(parse_cluster("1x4gpu"), TRACE, policy, check=True)
    assert spans(r) == {0: (0, 100), 1: (60, 160), 2: (10, 60)}
    assert r.preemptions == 1
    assert sorted(o.id for o in r.outcomes) == [0, 1, 2]          # each finished exactly once


def test_borrowing_limit_holds_jobs_back():
    # a may borrow at most 1 GPU beyond its nominal 2: j1 (2 more GPUs) waits for j0.
    cfg = {"queues": [{"name": "a", "nominal": {"nvidia.com/gpu": 2}, "borrowing_limit": {"nvidia.com/gpu": 1}},
                      {"name": "b", "nominal": {"nvidia.com/gpu": 2}}]}
    r = simulate(parse_cluster("1x4gpu"), TRACE[:2], from_config(parse_config(cfg)), check=True)
    assert spans(r) == {0: (0, 100), 1: (100, 200)}


def test_jobs_of_users_without_a_queue_go_to_default():
    policy = from_config(parse_config(QUOTAS))
    assert policy.queue_for(TRACE[0]) == "a"
    assert policy.queue_for(job(9, 0, 1, 1, "someone")) == "default"
    assert set(policy.scheduling.queue_map) == {"a", "b", "default"}


def test_a_config_with_one_user_under_fair_share_decides_like_fifo():
    trace = [job(i, i * 3.0, 10.0 + (i * 7) % 13, 1 + i % 4, "u") for i in range(30)]
    nodes = parse_cluster("2x4gpu")
    policy = from_config(parse_config({"policy": "strict-fifo"}))
    assert policy.scheduling.default_policy == "strict-fifo" and len(policy.scheduling.queues) == 1
    fair = simulate(nodes, trace, from_config(parse_config({"policy": "fair-share"})), check=True)
    fifo = simulate(nodes, trace, from_config(parse_config({"policy": "best-effort-fifo"})), check=True)
    # One user: fair share among users is plain submit order, best effort.
    assert spans(fair) == spans(fifo)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 30), st.integers(1, 4), st.sampled_from("abc"),
                          st.integers(0, 2)), min_size=1, max_size=25),
       st.booleans(), st.booleans())
def test_conservation_and_determinism_with_quotas(rows, preemption, backfill):
    trace = [SimJob(i, float(t), float(d), Resources.parse({"cpu": "1", "gpu": g}), user=u, priority=p)
             for i, (t, d, g, u, p) in enumerate(rows)]
    cfg = {**QUOTAS, "preemption": preemption, "backfill": backfill}
    nodes = parse_cluster("2x4gpu")
    first = simulate(nodes, trace, from_config(parse_config(cfg)), check=True)
    again = simulate(nodes, list(reversed(trace)), from_config(parse_config(cfg)), check=True)
    assert spans(first) == spans(again) and first.preemptions == again.preemptions
    assert sorted(o.id for o in first.outcomes) == list(range(len(trace)))
    for o in first.outcomes:                     # the last run is a whole run, after the submit
        assert o.start >= o.submit and o.end == pytest.approx(o.start + o.duration)
    if not preemption:
        assert first.preemptions == 0


def test_load_reports_bad_files_in_one_line(tmp_path):
    with pytest.raises(ValidationError, match="no such file"):
        load(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "config.yaml"
    bad.write_text("queues:\n  - name: a\n    nominal: {nvidia.com/gpu: lots}\n")
    with pytest.raises(ValidationError) as err:
        load(str(bad))
    assert "\n" not in str(err.value) and "queues[0].nominal" in str(err.value) and "lots" in str(err.value)


# --- samples -----------------------------------------------------------------------------

def trace_of(rows):
    return Trace(jobs=[TraceJob(i, float(t), float(d), Resources.parse({"gpu": g}), user="u")
                       for i, (t, d, g) in enumerate(rows)], source="test")


def test_sample_filters_and_caps_with_counts():
    t = trace_of([(0, 30, 1), (1, 100, 1), (2, 100, 8), (3, 3600, 4), (4, 100, 1), (5, 100, 1)])
    out, info = sample(t, min_duration=60, max_gpu_time=4 * 3600, jobs=2)
    # 30 s is too short; 3600 s x 4 GPUs = 4 GPU-hours is not below the cap; then the first two.
    assert [j.duration for j in out.jobs] == [100, 100] and [j.requests.get("nvidia.com/gpu") for j in out.jobs] == [1, 8]
    assert (info.in_window, info.too_short, info.too_big, info.over_cap, info.kept) == (6, 1, 1, 2, 2)
    assert out.jobs[0].submit == 0 and out.jobs[1].submit == 1      # re-based, ids renumbered
    assert [j.id for j in out.jobs] == [0, 1]
    # At most 4 GPUs: the 8-GPU job goes (counted), so the cap takes the next one.
    out, info = sample(t, min_duration=60, max_gpu_time=4 * 3600, jobs=2, max_gpus=4)
    assert [j.submit for j in out.jobs] == [0, 3] and (info.too_wide, info.over_cap) == (1, 1)


def test_sample_window_is_reproducible_and_depends_on_the_seed():
    t = trace_of([(s * 60, 100, 1) for s in range(1000)])            # one job a minute
    a, ia = sample(t, seed=3, window=3600)
    b, ib = sample(t, seed=3, window=3600)
    c, ic = sample(t, seed=4, window=3600)
    assert ia == ib and a.jobs == b.jobs
    assert ia.start != ic.start
    assert 0 <= ia.start <= 999 * 60 - 3600 and ia.kept == 60           # a whole hour of arrivals
    with pytest.raises(ValidationError, match="window"):
        sample(t, window=0)


def write_philly(path, rows):
    """Philly rows (seconds after 2017-10-09 00:00, duration, GPUs, virtual cluster)."""
    from datetime import datetime, timedelta

    base = datetime(2017, 10, 9)
    path.write_text("timestamp,duration,num_gpus,gpu_time,cluster\n"
                    + "".join(f"{base + timedelta(seconds=t):%Y-%m-%d %H:%M:%S},{d},{g},{d * g},{vc}\n"
                              for t, d, g, vc in rows))


def test_cli_config_and_seeded_window(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    write_philly(trace, [(0, 100, 2, "a"), (1, 100, 2, "a"), (10, 50, 2, "b")])
    cfg = tmp_path / "config.yaml"
    cfg.write_text("queues:\n  - {name: a, nominal: {nvidia.com/gpu: 2}}\n"
                   "  - {name: b, nominal: {nvidia.com/gpu: 2}}\npreemption: true\n")
    assert main(["sim", "--trace", str(trace), "--format", "philly", "--cluster", "1x4gpu",
                 "--policy", "best-effort-fifo", "--config", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # JCTs: FIFO 100, 100, 140 (j2 waits to 100); config 100, 159, 50 (see above).
    assert out["policies"]["best-effort-fifo"]["jct_mean"] == pytest.approx(340 / 3)
    assert out["policies"]["config"]["jct_mean"] == pytest.approx(309 / 3)
    assert out["policies"]["config"]["preemptions"] == 1
    assert main(["sim", "--trace", str(trace), "--cluster", "1x4gpu", "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "config" in text and "jobs per queue (by trace user): a 2, b 1, default 0" in text

    many = tmp_path / "many.csv"
    write_philly(many, [(i * 600, 120 + i, 1, "a") for i in range(200)])
    runs = []
    for seed in (1, 1, 2):
        assert main(["sim", "--trace", str(many), "--cluster", "1x4gpu", "--window", "2h", "--seed", str(seed),
                     "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        for result in out["policies"].values():
            del result["wall_seconds"]                  # the only thing that is not reproducible
        runs.append(out)
    assert runs[0] == runs[1] and runs[0]["sample"]["start"] != runs[2]["sample"]["start"]
    assert runs[0]["jobs"] == 12 and runs[0]["sample"]["kept"] == 12            # 2 h of one job per 10 min


def test_cli_config_errors(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    write_philly(trace, [(0, 100, 2, "a")])
    assert main(["sim", "--trace", str(trace), "--policy", "config"]) == 1
    assert "--config" in capsys.readouterr().err
    assert main(["sim", "--trace", str(trace), "--config", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.yaml" in err
    assert main(["sim", "--trace", str(trace), "--window", "soon"]) == 1
    assert "--window" in capsys.readouterr().err


def test_cli_tiresias_promote_knob(tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    write_philly(trace, [(0, 100, 2, "a"), (1, 100, 2, "a"), (10, 50, 2, "b")])
    assert main(["sim", "--trace", str(trace), "--cluster", "1x4gpu", "--policy", "tiresias",
                 "--tiresias-promote-knob", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tiresias_promote_knob"] == 4.0
    assert main(["sim", "--trace", str(trace), "--policy", "tiresias", "--tiresias-promote-knob", "-1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--tiresias-promote-knob" in err and '"-1"' in err
