"""Executors: where and how jobs run. One folder (or module) per engine, one interface
(:mod:`.base`), one contract suite for all (``tests/contract/test_executor.py``).

* ``local`` (:mod:`.local`): process sessions on this machine under per-job supervisors;
* ``ray`` (:mod:`.ray`): the nodes of a running Ray cluster -- corral places, a launcher
  actor on each node starts the job's processes there (the ``ray`` extra);
* ``slurm`` (:mod:`.slurm`): the nodes of a Slurm partition -- corral places, ``sbatch``
  runs each job pinned to its nodes;
* ``simulated`` (:mod:`.simulated`): jobs in virtual time, for the simulator and tests.

:func:`create` builds the one a daemon's config names (``engine: {type: ...}``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Capabilities, Executor, ExitCallback, ExitStatus, Reading, Running, StopReason

if TYPE_CHECKING:
    import asyncio

    from ..config import Config
    from ..paths import Paths

#: Engine names a config may give, with what they are.
ENGINES = {"local": "processes on this machine", "ray": "the nodes of a Ray cluster",
           "slurm": "the nodes of a Slurm partition"}


def create(config: "Config", paths: "Paths", on_exit: ExitCallback, loop: "asyncio.AbstractEventLoop",
           **options: Any) -> tuple[Executor, dict[str, Any]]:
    """The executor the config names, started, and what it found (for ``corral nodes``)."""
    if config.engine == "local":
        from .local.build import build_local

        return build_local(config, paths, on_exit, loop, **options)
    if config.engine == "ray":
        return _create_ray(config, paths, on_exit, loop)
    if config.engine == "slurm":
        return _create_slurm(config, paths, on_exit, loop)
    from ..errors import ValidationError

    raise ValidationError("engine.type", config.engine, "expected one of: " + ", ".join(ENGINES))


def _create_ray(config: "Config", paths: "Paths", on_exit: ExitCallback,
                loop: "asyncio.AbstractEventLoop") -> tuple[Executor, dict[str, Any]]:
    from ..errors import CorralError

    try:
        import ray  # noqa: F401
    except ImportError:
        raise CorralError("engine ray needs the ray package: pip install 'corral[ray]' "
                          "(or ray[default]>=2.40)") from None
    from .ray import RayExecutor

    try:
        executor = RayExecutor(config.engine_address, on_exit, loop, home=str(paths.home),
                               kill_grace=float(config.kill_grace),
                               start_timeout=float(config.engine_start_timeout))
    except Exception as exc:  # noqa: BLE001 - ConnectionError, a timeout, Ray's own errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorralError(f"cannot connect to the Ray cluster at {config.engine_address} "
                          f"(engine.address): {first}") from None
    info = {"gpu_source": f"Ray cluster at {config.engine_address}",
            "enforcement": {"mode": "ray", "hard": False,
                            "description": "soft: Ray placement groups reserve each job's CPUs, memory and GPUs; "
                                           "CUDA_VISIBLE_DEVICES pins its GPUs; no cgroup limits on Ray nodes"}}
    return executor, info


def _create_slurm(config: "Config", paths: "Paths", on_exit: ExitCallback,
                  loop: "asyncio.AbstractEventLoop") -> tuple[Executor, dict[str, Any]]:
    from ..errors import CorralError
    from .slurm import SlurmExecutor
    from .slurm.client import SlurmError

    try:
        executor = SlurmExecutor(config.engine_partition, on_exit, loop, home=str(paths.home),
                                 conf=config.engine_conf, kill_grace=float(config.kill_grace),
                                 start_timeout=float(config.engine_start_timeout))
    except SlurmError as exc:
        raise CorralError(f"cannot use Slurm partition {config.engine_partition} (engine.partition): {exc}") from None
    info = {"gpu_source": f"Slurm partition {config.engine_partition}",
            "enforcement": {"mode": "slurm", "hard": False,
                            "description": "Slurm's: each job is an sbatch allocation of its CPUs, memory and "
                                           "GPUs on the nodes corral chose; limits are held as the cluster's "
                                           "Slurm holds them (its task and cgroup plugins)"}}
    return executor, info


__all__ = ["Capabilities", "Executor", "ExitCallback", "ExitStatus", "Reading", "Running", "StopReason", "create",
           "ENGINES"]
