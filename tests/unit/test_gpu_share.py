"""Shared GPUs in the daemon: the spec, the manager's placement (sharers on one device, the
same CUDA_VISIBLE_DEVICES), the MPS caps where MPS runs, reported as not enforced otherwise."""

from __future__ import annotations

import pytest
from manager_helpers import FakeExecutor, manager

from corral.capacity.node import make_node
from corral.errors import ValidationError
from corral.executors.base import ExitStatus
from corral.executors.environment import job_environment
from corral.executors.gpu_share import describe_share, mps_running, share_caps, share_environment
from corral.job import JobState, Piece
from corral.resources import CPU, GPU_SHARE, Resources
from corral.spec import build_spec


def share_spec(milli, **kw):
    return build_spec(["train"], requests={"cpu": "1", GPU_SHARE: milli}, **kw)


def test_share_spec_errors_name_the_field_value_and_what_is_accepted():
    with pytest.raises(ValidationError, match=r"corral.dev/gpu-milli: 1001 \(expected 1 to 1000"):
        share_spec(1001)
    with pytest.raises(ValidationError, match="not both"):
        build_spec(["x"], requests={"cpu": "1", GPU_SHARE: 100, "gpu": 1})
    with pytest.raises(ValidationError, match=r"nodes: 2 \(expected 1: a share of one GPU runs on one node"):
        share_spec(100, nodes=2)
    assert share_spec(250, gpu_models=["A100"]).demand.constraints.gpu_models == ("A100",)


def test_sharers_get_the_same_device_and_whole_gpus_stay_apart():
    m = manager(gpus=2, cores=8)
    m.submit([share_spec(500), share_spec(500), build_spec(["x"], requests={"cpu": "1", "gpu": 1}),
              share_spec(300)])
    ex: FakeExecutor = m.executor  # type: ignore[assignment]
    env = {i: ex.launched[i].env for i in ex.launched}
    assert sorted(env) == [1, 2, 3]
    assert env[1]["CUDA_VISIBLE_DEVICES"] == env[2]["CUDA_VISIBLE_DEVICES"] == "0"
    assert env[3]["CUDA_VISIBLE_DEVICES"] == "1"
    assert env[1]["CORRAL_GPU_SHARE"] == "500"
    assert m.store.get_job(4).state is JobState.PENDING          # both devices are taken
    m.on_exit(1, ExitStatus(ended_at=5.0, exit_code=0))          # a half frees on device 0
    assert ex.launched[4].env["CUDA_VISIBLE_DEVICES"] == "0"


def test_mps_caps_where_mps_runs_and_not_enforced_otherwise(tmp_path):
    node = make_node("n1", cores=4, memory=2**34, gpus=1)
    piece = Piece("n1", Resources({CPU: 1000, GPU_SHARE: 250}), (0,))
    env = share_environment(piece, node, mps=True)
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    memory = node.gpu(0).memory
    if memory:
        assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == f"0={memory // 4 // 2**20}M"
    assert env["CORRAL_GPU_SHARE_ENFORCED"] == "mps"
    off = share_environment(piece, node, mps=False)
    assert off == {"CORRAL_GPU_SHARE": "250", "CORRAL_GPU_SHARE_ENFORCED": "none"}
    assert "not enforced" in describe_share(piece, False)
    assert "CUDA MPS" in describe_share(piece, True)
    assert share_caps(1, 0) == {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "1"}
    assert share_caps(1000, 16 * 2**30)["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=16384M"
    # Whole GPUs: nothing added.
    whole = Piece("n1", Resources({CPU: 1000, "nvidia.com/gpu": 1}), (0,))
    assert share_environment(whole, node, mps=True) == {}
    assert describe_share(whole, True) is None
    # The control pipe decides whether MPS runs.
    assert not mps_running({"CUDA_MPS_PIPE_DIRECTORY": str(tmp_path)})
    (tmp_path / "control").write_text("")
    assert mps_running({"CUDA_MPS_PIPE_DIRECTORY": str(tmp_path)})


def test_a_share_never_inherits_mps_caps():
    m = manager(gpus=1)
    m.submit([share_spec(500, env={"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "90"})])
    job = m.store.get_job(1)
    env = job_environment(job, job.allocation.pieces[0], (), {"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=1M"})
    assert "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT" not in env and "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE" not in env
    assert env["CORRAL_GPU_SHARE_ENFORCED"] == "none"
