"""A job's share of one GPU, on the machine: the same device for its sharers, caps by MPS.

A job that asks for a share of one GPU (``corral.dev/gpu-milli``, see
:mod:`corral.scheduler.shares`) is given one device, and every sharer of that device gets
the same ``CUDA_VISIBLE_DEVICES`` (:mod:`.environment` derives it from the piece's
device). What keeps a sharer to its share is CUDA MPS (the Multi-Process Service), where
its control daemon runs on the machine: corral then sets

* ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``: the share in percent of the device's SMs
  (thousandths / 10, rounded up, 1 to 100), the compute cap;
* ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``: ``0=<N>M``, the share of the device's memory in
  MiB (rounded down), the memory cap; ``0`` is the job's one visible device.

Without an MPS control daemon (no ``control`` pipe in ``CUDA_MPS_PIPE_DIRECTORY``,
default ``/tmp/nvidia-mps``) nothing caps a sharer: the share still decides placement,
but the caps are reported as not enforced (``CORRAL_GPU_SHARE_ENFORCED=none`` in the
job's environment, and in ``corral show``'s limits), never set silently. Either way the
job gets ``CORRAL_GPU_SHARE`` (its thousandths).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping

from ..scheduler.shares import GPU_SHARE, MILLI

if TYPE_CHECKING:
    from ..capacity.node import Node
    from ..job import Piece

DEFAULT_PIPE_DIRECTORY = "/tmp/nvidia-mps"
MiB = 2**20


def mps_pipe_directory(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("CUDA_MPS_PIPE_DIRECTORY") or DEFAULT_PIPE_DIRECTORY


def mps_running(env: Mapping[str, str] | None = None) -> bool:
    """Whether a CUDA MPS control daemon listens on this machine (its control pipe exists)."""
    return os.path.exists(os.path.join(mps_pipe_directory(env), "control"))


def share_caps(milli: int, device_memory: int) -> dict[str, str]:
    """The MPS variables that cap a job to ``milli`` thousandths of a device of
    ``device_memory`` bytes (no memory cap when the memory is unknown, 0)."""
    caps = {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": str(min(100, max(1, -(-milli // 10))))}
    if device_memory > 0:
        caps["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={max(1, device_memory * milli // MILLI // MiB)}M"
    return caps


def share_environment(piece: "Piece", node: "Node | None", mps: bool) -> dict[str, str]:
    """What a share job adds to its environment (nothing for a job of whole GPUs)."""
    milli = piece.requests.get(GPU_SHARE, 0)
    if not milli:
        return {}
    env = {"CORRAL_GPU_SHARE": str(milli)}
    if not mps:
        env["CORRAL_GPU_SHARE_ENFORCED"] = "none"
        return env
    memory = 0
    if node is not None and piece.gpus:
        try:
            memory = node.gpu(piece.gpus[0]).memory
        except (KeyError, IndexError, ValueError):
            memory = 0
    env.update(share_caps(milli, memory))
    env["CORRAL_GPU_SHARE_ENFORCED"] = "mps"
    return env


def describe_share(piece: "Piece", mps: bool) -> str | None:
    """One line on how a share job's caps are held (None for whole GPUs)."""
    milli = piece.requests.get(GPU_SHARE, 0)
    if not milli:
        return None
    where = f"GPU share {milli}/1000 of GPU {','.join(map(str, piece.gpus))}"
    if mps:
        return f"{where}: capped by CUDA MPS (compute and memory)"
    return (f"{where}: not enforced (no CUDA MPS control daemon at {mps_pipe_directory()}; sharers are not capped)")
