"""``corral.Executor``: Python functions as corral jobs, through a real daemon -- results,
exceptions with the remote traceback, map as one array job, cancel, and a job that is
killed without answering."""

from __future__ import annotations

import concurrent.futures as cf
import os

import pytest

import corral


def square_on_gpu(x):
    return x * x, os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("CORRAL_JOB_ID")


class Boom(ValueError):
    pass


def explode(text):
    raise Boom(f"bad input: {text}")


@pytest.fixture
def ex(fresh_corral4, tmp_path):
    with corral.Executor(gpus=1, cpus="100m", mem="256Mi", home=fresh_corral4.home, folder=tmp_path / "f",
                         poll=1.0) as executor:
        yield executor


def test_a_function_runs_as_a_job_with_its_gpu_and_returns(ex, fresh_corral4):
    fut = ex.submit(square_on_gpu, 7)
    value, gpus, job = fut.result(timeout=60)
    assert value == 49 and gpus in {"0", "1", "2", "3"} and int(job) == fut.job_id
    view = fresh_corral4.show(fut.job_id)
    assert view["state"] == "Succeeded" and view["requests"]["nvidia.com/gpu"] == "1"
    assert not any((ex.folder).iterdir())                        # the task directory is gone


def test_closures_travel_by_value_and_exceptions_come_back_with_their_traceback(ex):
    offset = 5
    assert ex.submit(lambda y: y + offset, 1).result(timeout=60) == 6
    fut = ex.submit(explode, "x")
    with pytest.raises(Boom, match="bad input: x") as err:
        fut.result(timeout=60)
    assert isinstance(err.value.__cause__, corral.RemoteTraceback)
    assert 'in explode\n    raise Boom(f"bad input: {text}")' in str(err.value.__cause__)


def test_map_is_one_array_job_and_futures_work_with_concurrent_futures(ex, fresh_corral4):
    futs = ex.map(square_on_gpu, [1, 2, 3])
    done, _ = cf.wait(futs, timeout=90)
    assert len(done) == 3 and [f.result()[0] for f in futs] == [1, 4, 9]
    listed = {j["id"]: j for j in fresh_corral4.ps("-a")}
    views = [listed[f.job_id] for f in futs]
    assert len({v["array_id"] for v in views}) == 1 and sorted(v["array_index"] for v in views) == [0, 1, 2]


def test_cancel_and_a_job_that_dies_without_answering(ex, fresh_corral4):
    import time

    fut = ex.submit(time.sleep, 600)
    fresh_corral4.wait_state(fut.job_id, "Running")
    assert fut.cancel() and fut.cancelled()
    assert fresh_corral4.wait_done(fut.job_id)[0]["state"] == "Cancelled"
    killed = ex.submit(os._exit, 3)                                 # no answer written
    with pytest.raises(corral.JobError, match=rf"job {killed.job_id} ended Failed \(Error\)"):
        killed.result(timeout=60)


def test_the_readme_executor_example_runs_as_written(fresh_corral4):
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = text.index("Functions run as jobs the way")
    block = re.compile(r"```python\n(.*?)```", re.S).search(text, start).group(1)
    res = subprocess.run([sys.executable, "-c", block], cwd=fresh_corral4.workdir, env=fresh_corral4.env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    result, rest = res.stdout.strip().split("} ", 1)
    job, mapped = rest.split(" ", 1)
    assert result + "}" == "{'lr': 0.1, 'loss': 10.0}" and int(job) > 0
    assert mapped == "[{'lr': 0.1, 'loss': 10.0}, {'lr': 0.01, 'loss': 100.0}, {'lr': 0.001, 'loss': 1000.0}]"
