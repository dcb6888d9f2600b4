"""`corral sim` end to end on a trace the test writes itself."""

from __future__ import annotations

import json

from corral.cli.main import main

PHILLY = """timestamp,duration,num_gpus,gpu_time,cluster
2017-10-09 07:00:00,10,3,30,vc1
2017-10-09 07:00:01,10,2,20,vc2
2017-10-09 07:00:02,5,1,5,vc1
2017-10-09 07:00:03,5,8,40,vc2
"""


def test_sim_compares_policies_side_by_side(tmp_path, capsys):
    trace = tmp_path / "philly.csv"
    trace.write_text(PHILLY)
    out = tmp_path / "results.csv"
    code = main(["sim", "--trace", str(trace), "--format", "philly", "--cluster", "1x4gpu",
                 "--policy", "strict-fifo", "--policy", "best-effort-fifo", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "4 jobs" in text and "1 jobs can never fit this cluster" in text
    assert "strict-fifo" in text and "best-effort-fifo" in text
    assert out.read_text().count("\n") == 3        # header + one row per policy

    assert main(["sim", "--trace", str(trace), "--cluster", "1x4gpu", "--policy", "strict-fifo",
                 "--policy", "best-effort-fifo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    strict, best = data["policies"]["strict-fifo"], data["policies"]["best-effort-fifo"]
    # The hand-worked example of tests/unit/test_sim_engine.py: JCTs 10, 19, 13 vs 10, 19, 5.
    assert strict["jct_mean"] == 14.0 and best["jct_mean"] == 34 / 3
    assert data["infeasible"] == 1 and data["gpus"] == 4
    assert best["jct_ratio"] >= 1.0 and strict["jct_ratio"] > best["jct_ratio"]


def test_sim_bad_input_is_one_line(tmp_path, capsys):
    trace = tmp_path / "philly.csv"
    trace.write_text(PHILLY.replace("07:00:02,5", "07:00:02,five"))
    assert main(["sim", "--trace", str(trace), "--cluster", "1x4gpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 4" in err[0] and '"five"' in err[0]
    assert main(["sim", "--trace", str(trace), "--cluster", "lots"]) == 1
    assert "expected e.g. 16x4gpu" in capsys.readouterr().err
    assert main(["sim", "--trace", str(trace), "--policy", "magic"]) == 1
    assert 'invalid value for policy: "magic"' in capsys.readouterr().err
