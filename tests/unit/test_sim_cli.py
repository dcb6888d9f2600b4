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


# The hand-worked EASY trace of tests/unit/test_sim_policies.py, as Philly rows (users: the
# virtual clusters vc1 = jobs 0 and 2, vc2 = jobs 1 and 3).
EASY = """timestamp,duration,num_gpus,gpu_time,cluster
2017-10-09 07:00:00,10,2,20,vc1
2017-10-09 07:00:01,10,4,40,vc2
2017-10-09 07:00:02,20,1,20,vc1
2017-10-09 07:00:03,5,1,5,vc2
"""
PNG = b"\x89PNG\r\n\x1a\n"


def test_sim_runs_easy_backfill_and_fair_share_end_to_end(tmp_path, capsys):
    trace = tmp_path / "philly.csv"
    trace.write_text(EASY)
    assert main(["sim", "--trace", str(trace), "--format", "philly", "--cluster", "1x4gpu",
                 "--policy", "easy-backfill", "--policy", "fair-share", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    easy, fair = data["policies"]["easy-backfill"], data["policies"]["fair-share"]
    # EASY: JCTs 10, 19, 38, 5 (D backfilled, C held so as not to delay B).
    assert easy["jct_mean"] == 72 / 4 and easy["oracle"] is True
    # DRF: at t=2 vc2's B (share 0) is tried first but does not fit; vc1's C starts. At 3
    # vc2's D starts. B waits for A and C: 22-32. JCTs 10, 31, 20, 5.
    assert fair["jct_mean"] == 66 / 4 and fair["oracle"] is False
    assert fair["users"] == 2 and data["estimate_factor"] == 1.0 and data["half_life"] == 7 * 86400

    assert main(["sim", "--trace", str(trace), "--cluster", "1x4gpu", "--policy", "easy-backfill",
                 "--estimate-factor", "0.5", "--policy", "fair-share", "--half-life", "1h",
                 "--plot", str(tmp_path / "plots")]) == 0
    captured = capsys.readouterr()
    assert "easy-backfill (oracle)" in captured.out and "fair-share " in captured.out
    assert "actual duration x 0.5" in captured.out and "wrote 3 plots" in captured.err
    files = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert files == ["jct_cdf.png", "timeline_easy-backfill.png", "timeline_fair-share.png"]
    for p in (tmp_path / "plots").iterdir():
        assert p.read_bytes()[:8] == PNG


def test_sim_bad_policy_options(tmp_path, capsys):
    trace = tmp_path / "philly.csv"
    trace.write_text(EASY)
    assert main(["sim", "--trace", str(trace), "--policy", "easy-backfill", "--estimate-factor", "0"]) == 1
    assert "--estimate-factor" in capsys.readouterr().err
    assert main(["sim", "--trace", str(trace), "--policy", "fair-share", "--half-life", "soon"]) == 1
    assert "invalid half-life for --half-life" in capsys.readouterr().err


def test_sim_without_plot_does_not_import_matplotlib(tmp_path):
    import subprocess
    import sys

    trace = tmp_path / "philly.csv"
    trace.write_text(EASY)
    code = ("import sys; from corral.cli.main import main; "
            f"rc = main(['sim', '--trace', {str(trace)!r}, '--cluster', '1x4gpu', '--policy', 'easy-backfill', "
            "'--policy', 'fair-share']); "
            "assert rc == 0; assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_sim_easy_backfill_uses_swf_requested_times(tmp_path, capsys):
    # The EASY trace in CPUs on a 4-CPU machine, with requested times (field 9): D asks
    # for 12 s, so by its estimate it would end at 15, after B's reservation at 10: held,
    # although it really runs 5 s. JCTs 10, 19, 38, 22. Estimates come from the trace,
    # not from the real run times: not an oracle.
    rows = [(1, 0, 10, 2, 10), (2, 1, 10, 4, 10), (3, 2, 20, 1, 20), (4, 3, 5, 1, 12)]
    text = "; MaxProcs: 4\n" + "".join(
        f"{n} {t} -1 {run} {p} -1 -1 {p} {req} -1 1 {n % 2} 1 -1 1 -1 -1 -1\n" for n, t, run, p, req in rows)
    trace = tmp_path / "tiny.swf"
    trace.write_text(text)
    assert main(["sim", "--trace", str(trace), "--format", "swf", "--cluster", "1x0gpu,4cpu",
                 "--policy", "easy-backfill", "--policy", "best-effort-fifo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    easy, best = data["policies"]["easy-backfill"], data["policies"]["best-effort-fifo"]
    assert easy["jct_mean"] == (10 + 19 + 38 + 22) / 4 and easy["oracle"] is False
    assert best["jct_mean"] == (10 + 31 + 20 + 5) / 4


def test_sim_reports_gang_placed_jobs(tmp_path, capsys):
    trace = tmp_path / "philly.csv"
    trace.write_text(PHILLY)
    # 2 nodes x 2 GPUs: the 3-GPU job spans both nodes; the 8-GPU job exceeds the cluster.
    assert main(["sim", "--trace", str(trace), "--format", "philly", "--cluster", "2x2gpu",
                 "--policy", "best-effort-fifo"]) == 0
    text = capsys.readouterr().out
    assert "1 jobs need more GPUs than any one node and were gang-placed" in text
    assert "1 jobs can never fit this cluster" in text
    assert main(["sim", "--trace", str(trace), "--cluster", "2x2gpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gang_jobs"] == 1 and data["infeasible"] == 1
    assert data["policies"]["best-effort-fifo"]["gang_placed"] == 1
