"""The environment a job starts with, derived from its allocation.

Portable: every executor gives a job these variables for the piece of its allocation it
runs on. Base: the submitter's environment (like ``sbatch --export=ALL``) -- or, for a job
a root daemon runs as its submitter (system mode), a clean one (see
:mod:`corral.executors.local.users`) -- then the spec's own ``env``, then what corral sets
and the job must not get wrong:

* ``CUDA_VISIBLE_DEVICES`` / ``NVIDIA_VISIBLE_DEVICES``: exactly the job's GPUs, by
  index, with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA numbers GPUs as NVML does. A job
  with no GPU gets an empty value, so it never sees a GPU it was not given.
* ``OMP_NUM_THREADS`` and the other thread-pool sizes: the CPU request (at least 1),
  unless the spec sets them explicitly.
* ``PYTHONUNBUFFERED=1`` unless the submitter's environment or the spec says otherwise
  (the logs are files: Python would hold a job's prints until it exits).
* a share of one GPU (``corral.dev/gpu-milli``): the one device it shares, the same
  ``CUDA_VISIBLE_DEVICES`` as its other sharers, ``CORRAL_GPU_SHARE`` and, where CUDA MPS
  runs, its caps (:mod:`.gpu_share`; reported as not enforced elsewhere).
* ``CORRAL_JOB_ID``, ``CORRAL_JOB_NAME``, ``CORRAL_CPUS`` (the cores it may run on),
  ``CORRAL_GPUS``, ``CORRAL_NODE``, ``CORRAL_ATTEMPT`` (1, 2 ... counting retries and
  requeues); for an array task ``CORRAL_ARRAY_ID`` and ``CORRAL_ARRAY_INDEX``; for a
  resumable job ``CORRAL_SERVED``, the seconds its earlier attempts ran whose work it kept
  (above 0: continue from the checkpoint).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from ..resources import CPU
from .gpu_share import share_environment

if TYPE_CHECKING:
    from ..capacity.node import Node
    from ..job import Job, Piece

#: What a job run as its submitter keeps of the submitter's environment (system mode;
#: the API keeps no more than this).
KEPT_FROM_SUBMITTER = ("LANG",)

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")


def job_environment(job: "Job", piece: "Piece", cores: tuple[int, ...],
                    base_env: Mapping[str, str] | None = None, *, node: "Node | None" = None,
                    mps: bool = False) -> dict[str, str]:
    """The environment of ``job`` on ``piece`` (its part of the allocation on one node),
    running on ``cores``. ``base_env``: the job's recorded environment unless given.
    ``node`` and ``mps`` (a CUDA MPS control daemon runs there): for a GPU share's caps."""
    env = dict(job.base_env if base_env is None else base_env)
    # Variables a previous corral job or the submitter's own allocation left behind
    # must not leak into this one.
    for key in [k for k in env if k.startswith("CORRAL_")]:
        del env[key]
    threads = str(max(1, piece.requests.get(CPU, 0) // 1000))
    for var in THREAD_VARS:
        env[var] = threads
    # stdout is a file: unbuffered, a training loop's prints reach `corral logs -f` as they happen.
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(job.spec.env)
    gpus = ",".join(str(g) for g in piece.gpus)
    env.update({
        "CUDA_VISIBLE_DEVICES": gpus,
        "NVIDIA_VISIBLE_DEVICES": gpus,
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CORRAL_JOB_ID": str(job.id),
        "CORRAL_JOB_NAME": job.spec.name,
        "CORRAL_NODE": piece.node,
        "CORRAL_GPUS": gpus,
        "CORRAL_CPUS": ",".join(str(c) for c in cores),
        "CORRAL_ATTEMPT": str(max(job.attempts, 1)),      # 1, then 2 after a retry or requeue
    })
    if job.spec.resumable:
        # Seconds its earlier attempts ran whose work it kept: > 0 means resume.
        env["CORRAL_SERVED"] = f"{job.served:.0f}"
    share_env = share_environment(piece, node, mps)
    if share_env:                        # a share: its own caps only, never inherited ones
        for key in ("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"):
            env.pop(key, None)
        env.update(share_env)
    if job.array_id is not None:
        env["CORRAL_ARRAY_ID"], env["CORRAL_ARRAY_INDEX"] = str(job.array_id), str(job.array_index or 0)
    return env
