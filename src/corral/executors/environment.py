"""The environment a job starts with, derived from its allocation.

Base: the submitter's environment (like ``sbatch --export=ALL``) -- or, for a job a root
daemon runs as its submitter (system mode), a clean one from the passwd entry
(:func:`user_environment`) -- then the spec's own
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

import os
from dataclasses import dataclass
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


#: A job that runs as its submitter (system mode) gets this PATH, not the daemon's.
USER_PATH = "/usr/local/bin:/usr/bin:/bin"
#: What such a job keeps of its submitter's environment (the API keeps no more than this).
KEPT_FROM_SUBMITTER = ("LANG",)


@dataclass(frozen=True)
class RunAs:
    """The user a job runs as when the daemon (root) must switch to its submitter."""

    uid: int
    gid: int
    user: str
    home: str
    shell: str


def run_as(uid: int | None, gid: int | None, user: str = "", *, euid: int | None = None) -> RunAs | None:
    """Whom a job with owner ``uid``/``gid`` runs as, or None when it runs as the daemon's
    own user: the daemon is not root, or the job is root's (or its owner is unknown).
    A uid without a passwd entry still runs as that uid (HOME ``/``)."""
    import pwd

    euid = os.geteuid() if euid is None else euid
    if uid is None or euid != 0 or uid == euid:
        return None
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return RunAs(uid, gid if gid is not None else uid, user or str(uid), "/", "/bin/sh")
    return RunAs(uid, gid if gid is not None else pw.pw_gid, pw.pw_name, pw.pw_dir or "/", pw.pw_shell or "/bin/sh")


def user_environment(who: RunAs, base_env: Mapping[str, str]) -> dict[str, str]:
    """A clean environment for a job run as ``who`` (like ``su -l`` would give): HOME,
    USER, LOGNAME, SHELL from the passwd entry, a standard PATH, and LANG if the
    submitter had it. The job's own variables (spec env, CUDA_*, CORRAL_*, OMP_*) are
    added by :func:`job_environment` on top."""
    env = {"HOME": who.home, "USER": who.user, "LOGNAME": who.user, "SHELL": who.shell, "PATH": USER_PATH}
    env.update({k: base_env[k] for k in KEPT_FROM_SUBMITTER if k in base_env})
    return env
