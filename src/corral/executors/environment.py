"""The environment a job starts with, derived from its allocation.

Base: the submitter's environment (like ``sbatch --export=ALL``), then the spec's own
``env``, then what corral sets and the job must not get wrong:

* ``CUDA_VISIBLE_DEVICES`` / ``NVIDIA_VISIBLE_DEVICES``: exactly the job's GPUs, by
  index, with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA numbers GPUs as NVML does. A job
  with no GPU gets an empty value, so it never sees a GPU it was not given.
* ``OMP_NUM_THREADS`` and the other thread-pool sizes: the CPU request (at least 1),
  unless the spec sets them explicitly.
* ``CORRAL_JOB_ID``, ``CORRAL_JOB_NAME``, ``CORRAL_CPUS`` (the cores it may run on),
  ``CORRAL_GPUS``, ``CORRAL_NODE``.
"""

from __future__ import annotations

from typing import Mapping

from ..job import Allocation
from ..resources import CPU

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")


def job_environment(job_id: int, name: str, allocation: Allocation, cores: tuple[int, ...],
                    base_env: Mapping[str, str], spec_env: Mapping[str, str]) -> dict[str, str]:
    env = dict(base_env)
    # Variables a previous corral job or the submitter's own allocation left behind
    # must not leak into this one.
    for key in [k for k in env if k.startswith("CORRAL_")]:
        del env[key]
    threads = str(max(1, allocation.requests.get(CPU, 0) // 1000))
    for var in THREAD_VARS:
        env[var] = threads
    env.update(spec_env)
    gpus = ",".join(str(g) for g in allocation.gpus)
    env.update({
        "CUDA_VISIBLE_DEVICES": gpus,
        "NVIDIA_VISIBLE_DEVICES": gpus,
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CORRAL_JOB_ID": str(job_id),
        "CORRAL_JOB_NAME": name,
        "CORRAL_NODE": allocation.node,
        "CORRAL_GPUS": gpus,
        "CORRAL_CPUS": ",".join(str(c) for c in cores),
    })
    return env
