"""Build the local executor from the daemon's config: detect this machine (cores, memory,
GPUs or simulated ones), choose cgroups or the watchdog, open the GPU probe."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ...capacity.detect import detect_node
from ...capacity.gpu import open_probe
from . import LocalExecutor
from .enforcement import choose

if TYPE_CHECKING:
    import asyncio

    from ...config import Config
    from ...paths import Paths
    from ..base import ExitCallback
    from .launcher import Launcher

#: In the home: utilization/memory/power the simulated GPUs report (tests and demos set it).
SIMULATED_GPU_VALUES = "simulated-gpus.json"


def build_local(config: "Config", paths: "Paths", on_exit: "ExitCallback", loop: "asyncio.AbstractEventLoop",
                *, launcher: "Launcher | None" = None) -> tuple[LocalExecutor, dict[str, Any]]:
    node, info = detect_node(name=config.node_name, simulate_gpus=config.simulate_gpus,
                             reserve_cpu=config.reserve_cpu, reserve_memory=config.reserve_memory,
                             gpu_model=config.simulate_gpu_model, labels=config.node_labels,
                             extended=config.node_resources)
    enforcement = choose(config.enforcement, str(paths.home))
    info["enforcement"] = enforcement.to_dict()
    probe = open_probe(config.simulate_gpus, os.path.join(str(paths.home), SIMULATED_GPU_VALUES),
                       model=config.simulate_gpu_model)
    minors = probe.minor_numbers() if probe is not None else {}
    executor = LocalExecutor(paths.jobs, on_exit, loop, launcher=launcher, node=node, enforcement=enforcement,
                             pids_limit=config.pids_limit, gpu_minors=minors, kill_grace=float(config.kill_grace),
                             probe=probe)
    return executor, info
